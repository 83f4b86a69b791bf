import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import type { StorageConfig } from '../../../config/model';
import { DEFAULT_PUBLISH_ADDRESS, servicesSchema } from '../../../config/schema';
import type { HostPort } from '../../../constructs/service-container';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { CONFIG_JSON_ENV } from '../../../runtime/agent/config';

/*
 * Helpers for construct tests: synthesize a scope and read the JSON with just enough typing to
 * assert on it. The shapes below are the Terraform JSON attribute names (snake_case), which is
 * what the provider receives; tests assert on them, never on construct fields.
 */

/** What the config layer resolves for a tenant that sets nothing but turns the services on. */
const RESOLVED = servicesSchema.parse({ postgres: {}, redis: {} });

function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, from[k]])) as Pick<T, K>;
}

/** The construct props the config layer fills with its defaults: constructs state none of their own. */
export const CONFIG_DEFAULTS = {
  postgres: pick(RESOLVED.postgres!, ['parameters']),
  pgbouncer: pick(RESOLVED.pgbouncer!, ['poolMode', 'poolSize', 'maxClients', 'memoryMb']),
  redis: pick(RESOLVED.redis!, ['replicas', 'sentinels', 'quorum', 'downAfterMs', 'minReplicasToWrite', 'maxmemory', 'memoryMb']),
};

export interface UploadJson {
  readonly file: string;
  readonly content: string;
  readonly executable: boolean;
}

export interface ContainerJson {
  readonly name: string;
  readonly hostname: string;
  readonly image: string;
  readonly entrypoint?: string[];
  readonly command?: string[];
  readonly env?: string[];
  readonly upload?: UploadJson[];
  readonly volumes?: { container_path: string; volume_name?: string; host_path?: string; read_only?: boolean }[];
  readonly ports?: { internal: number; external: number; ip: string }[];
  readonly security_opts?: string[];
  readonly capabilities?: { add?: string[]; drop: string[] };
  readonly read_only?: boolean;
  readonly labels: { label: string; value: string }[];
  readonly networks_advanced: { name: string; aliases: string[] }[];
  readonly memory?: number;
  readonly cpus?: string;
  readonly restart: string;
  readonly must_run: boolean;
  readonly depends_on?: string[];
  readonly healthcheck?: { test: string[] };
}

export interface VolumeJson {
  readonly name: string;
  readonly driver: string;
  readonly driver_opts?: Record<string, string>;
  readonly labels: { label: string; value: string }[];
}

export interface SynthDoc {
  readonly resource?: Record<string, Record<string, Record<string, unknown>>>;
  readonly output?: Record<string, { value: unknown; sensitive?: boolean; description?: string }>;
}

export interface Synthesized {
  /** The JSON text, for cdktf's `toHaveResourceWithProperties` matchers. */
  readonly json: string;
  readonly doc: SynthDoc;
}

export function synth(build: (scope: Construct) => void): Synthesized {
  const json = Testing.synthScope(build);
  return { json, doc: JSON.parse(json) as SynthDoc };
}

/** Every resource of one Terraform type, by logical ID. */
export function resourcesOf<T = Record<string, unknown>>(doc: SynthDoc, type: string): Record<string, T> {
  return (doc.resource?.[type] ?? {}) as Record<string, T>;
}

export function containers(doc: SynthDoc): ContainerJson[] {
  return Object.values(resourcesOf<ContainerJson>(doc, 'docker_container'));
}

export function container(doc: SynthDoc, name: string): ContainerJson {
  const found = containers(doc).filter((c) => c.name === name);
  if (found.length !== 1) {
    throw new Error(`expected one container named ${name}, found ${found.length} (containers: ${containers(doc).map((c) => c.name).join(', ')})`);
  }
  return found[0];
}

export function volumes(doc: SynthDoc): VolumeJson[] {
  return Object.values(resourcesOf<VolumeJson>(doc, 'docker_volume'));
}

export function upload(c: ContainerJson, file: string): UploadJson {
  const found = (c.upload ?? []).find((u) => u.file === file);
  if (!found) throw new Error(`container ${c.name} has no upload ${file} (uploads: ${(c.upload ?? []).map((u) => u.file).join(', ')})`);
  return found;
}

/** `NAME=value` entries of a container's env as a map. */
export function envOf(c: ContainerJson): Record<string, string> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** A secret as it must appear in the JSON: a reference to a random_password's result, never a value. */
/** The agent config a backup container carries (JSON in an env var, escaped for Terraform), parsed. */
export function agentConfigOf<T = Record<string, unknown>>(c: ContainerJson): T | undefined {
  const json = envOf(c)[CONFIG_JSON_ENV];
  return json === undefined ? undefined : (JSON.parse(unescapeTerraformTemplate(json)) as T);
}

export const RANDOM_PASSWORD_REF = /^\$\{random_password\.[A-Za-z0-9_-]+\.result\}$/;

/** The logical ID inside a `${random_password.<id>.result}` reference. */
export function passwordId(reference: string): string {
  const match = /^\$\{random_password\.([A-Za-z0-9_-]+)\.result\}$/.exec(reference);
  if (!match) throw new Error(`not a random_password reference: ${reference}`);
  return match[1];
}

export const NETWORK = 'tenantry-test';

export const STORAGE = {
  volume: { kind: 'volume' } as StorageConfig,
  bind: { kind: 'bind', dataRoot: '/srv/tenantry/dev' } as StorageConfig,
  nfs: { kind: 'nfs', server: 'nfs-1.example.com', export: '/exports/tenantry/', options: 'nfsvers=4.1,hard' } as StorageConfig,
};

export function labels(environment: string, tenant: string, service: string): { label: string; value: string }[] {
  return [
    { label: 'tenantry.env', value: environment },
    { label: 'tenantry.service', value: service },
    { label: 'tenantry.tenant', value: tenant },
  ];
}

/** A host port, on the environments' default address unless another is given. */
export function onHost(port: number, address = DEFAULT_PUBLISH_ADDRESS): HostPort {
  return { address, port };
}
