/**
 * The little of Terraform the drill needs, written from Terraform's documented behaviour rather
 * than from Tenantry's own escaping code, so that a bug there cannot hide itself here:
 *   - string evaluation: `$${` and `%%{` are escapes for a literal `${` / `%{`; any other `${…}` is
 *     an interpolation, and the only interpolations a container may receive are
 *     `random_password` results;
 *   - `random_password`: a value per resource, from the character classes the resource asks for.
 */
import { randomInt } from 'crypto';
import * as fs from 'fs';

/**
 * The parts of a kreuzwerker/docker `docker_container` the drill and the Docker tests
 * (test/helpers/docker-deploy.ts) read, as synthesized.
 */
export interface SynthesizedContainer {
  name: string;
  hostname?: string;
  /** A reference to a docker_image resource (`${docker_image.<id>.image_id}`) or an image name. */
  image?: string;
  entrypoint?: string[];
  command?: string[];
  env?: string[];
  user?: string;
  read_only?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  security_opts?: string[];
  upload?: { file: string; content: string; executable?: boolean }[];
  ports?: { internal: number; external?: number; ip?: string; protocol?: string }[];
  /** MB. */
  memory?: number;
  restart?: string;
  must_run?: boolean;
  networks_advanced?: { name: string; aliases?: string[] }[];
  volumes?: { container_path: string; host_path?: string; volume_name?: string; read_only?: boolean }[];
  labels?: { label: string; value: string }[];
  healthcheck?: { test: string[]; interval?: string; timeout?: string; start_period?: string; retries?: number };
  log_driver?: string;
  log_opts?: Record<string, string>;
  /** `docker_container.<id>` of containers created first. */
  depends_on?: string[];
}

/** A `docker_image`: pulled by name, or built (the backup agent) from a context. */
export interface SynthesizedImage {
  name: string;
  build?: { context: string; dockerfile?: string; build_args?: Record<string, string> };
}

export interface SynthesizedNetwork {
  name: string;
  driver?: string;
  ipam_config?: { subnet?: string; gateway?: string }[];
  labels?: { label: string; value: string }[];
}

export interface SynthesizedVolume {
  name: string;
  driver?: string;
  driver_opts?: Record<string, string>;
  labels?: { label: string; value: string }[];
}

interface RandomPassword {
  length: number;
  special?: boolean;
  upper?: boolean;
  lower?: boolean;
  numeric?: boolean;
  override_special?: string;
}

export interface SynthesizedStack {
  file: string;
  containers: SynthesizedContainer[];
  /** By resource id, as `${docker_container.<id>…}` references name them. */
  containersById: Record<string, SynthesizedContainer>;
  images: Record<string, SynthesizedImage>;
  networks: Record<string, SynthesizedNetwork>;
  volumes: Record<string, SynthesizedVolume>;
  randomPasswords: Record<string, RandomPassword>;
  /** Output values by name (e.g. tenant_acme: what an application is handed). */
  outputs: Record<string, unknown>;
}

export function readStack(file: string): SynthesizedStack {
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    resource?: {
      docker_container?: Record<string, SynthesizedContainer>;
      docker_image?: Record<string, SynthesizedImage>;
      docker_network?: Record<string, SynthesizedNetwork>;
      docker_volume?: Record<string, SynthesizedVolume>;
      random_password?: Record<string, RandomPassword>;
    };
    output?: Record<string, { value: unknown }>;
  };
  return {
    file,
    containers: Object.values(json.resource?.docker_container ?? {}),
    containersById: json.resource?.docker_container ?? {},
    images: json.resource?.docker_image ?? {},
    networks: json.resource?.docker_network ?? {},
    volumes: json.resource?.docker_volume ?? {},
    randomPasswords: json.resource?.random_password ?? {},
    outputs: Object.fromEntries(Object.entries(json.output ?? {}).map(([name, o]) => [name, o.value])),
  };
}

const RESOURCE_ATTRIBUTE = /^\$\{(docker_[a-z_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$/;

/**
 * A string that is exactly one reference to another resource's attribute
 * (`${docker_network.network_C8AC2FB3.name}`), as its parts; undefined for any other string.
 */
export function resourceReference(text: string): { type: string; id: string; attribute: string } | undefined {
  const match = RESOURCE_ATTRIBUTE.exec(text);
  return match ? { type: match[1], id: match[2], attribute: match[3] } : undefined;
}

/** random_password's defaults: every class on, `special` drawing from this set. */
const DEFAULT_SPECIAL = '!@#$%&*()-_=+[]{}<>:?';

/** A value as `random_password` would generate it (uniform over the allowed characters). */
export function generatePassword(spec: RandomPassword): string {
  const classes = [
    spec.upper === false ? '' : 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
    spec.lower === false ? '' : 'abcdefghijklmnopqrstuvwxyz',
    spec.numeric === false ? '' : '0123456789',
    spec.special === false ? '' : (spec.override_special ?? DEFAULT_SPECIAL),
  ].join('');
  if (classes.length === 0 || !(spec.length > 0)) throw new Error(`random_password ${JSON.stringify(spec)} allows no value`);
  let value = '';
  for (let i = 0; i < spec.length; i++) value += classes[randomInt(classes.length)];
  return value;
}

const REFERENCE = /^random_password\.([A-Za-z0-9_-]+)\.result$/;

/**
 * Evaluates a Terraform template string: escapes become literal text, `${random_password.X.result}`
 * becomes X's value. Any other `${…}` or `%{…}` is an error (a container would get whatever
 * Terraform made of it, which the drill cannot reproduce: almost certainly a missing escape).
 */
export function evaluateString(text: string, secrets: Record<string, string>, where: string): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    const two = text.slice(i, i + 2);
    if (text.startsWith('$${', i) || text.startsWith('%%{', i)) {
      out += text[i] + '{';
      i += 3;
    } else if (two === '${' || two === '%{') {
      const end = text.indexOf('}', i);
      const expression = end < 0 ? '' : text.slice(i + 2, end).trim();
      const match = two === '${' ? REFERENCE.exec(expression) : null;
      if (match && secrets[match[1]] !== undefined) {
        out += secrets[match[1]];
        i = end + 1;
      } else {
        throw new Error(`${where}: Terraform would evaluate ${text.slice(i, end < 0 ? i + 40 : end + 1)}; only random_password results are expected here (an unescaped "${two}" in a script?)`);
      }
    } else {
      out += text[i];
      i += 1;
    }
  }
  return out;
}

/** One generated value per random_password resource, used for every reference to it. */
export function generateSecrets(stack: SynthesizedStack): Record<string, string> {
  return Object.fromEntries(Object.entries(stack.randomPasswords).map(([id, spec]) => [id, generatePassword(spec)]));
}

/** Every string in a JSON value, evaluated (an output's value, as `terraform output -json` gives it). */
export function evaluateValue(value: unknown, secrets: Record<string, string>, where: string): unknown {
  if (typeof value === 'string') return evaluateString(value, secrets, where);
  if (Array.isArray(value)) return value.map((v, i) => evaluateValue(v, secrets, `${where}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, evaluateValue(v, secrets, `${where}.${k}`)]));
  }
  return value;
}
