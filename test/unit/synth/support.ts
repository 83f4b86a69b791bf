import { AnnotationMetadataEntryType, Testing, TerraformResource } from 'cdktf';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { stringify } from 'yaml';
import { loadConfig, LoadResult } from '../../../config/load';
import type { EnvironmentConfig, TenantConfig, TenantryConfig } from '../../../config/model';
import { formatProblem, Problem } from '../../../config/source';
import { isPinned } from '../../../config/images';
import { EnvironmentStack } from '../../../stacks/environment-stack';
import { ContainerJson, containers, resourcesOf, SynthDoc, VolumeJson } from '../constructs/support';

export type { ContainerJson, SynthDoc } from '../constructs/support';
export { containers } from '../constructs/support';

export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** What main.ts passes for the agent image; fixed here so the output does not depend on paths. */
export const BACKUP_IMAGE_BUILD = { context: '../../backup-agent-context', dockerfile: 'runtime/agent/Dockerfile', version: '0.1.0', contextHash: '0123456789ab'.repeat(5) + '0123' };

export function loadOrThrow(root: string): TenantryConfig {
  const result = loadConfig(root);
  if (!result.ok) throw new Error(`config under ${root} has problems:\n${result.problems.map(formatProblem).join('\n')}`);
  return result.config;
}

export interface SynthesizedEnvironment {
  readonly env: EnvironmentConfig;
  readonly stack: EnvironmentStack;
  readonly json: string;
  readonly doc: SynthDoc & { output?: Record<string, { value: unknown; sensitive?: boolean }> };
}

/** One environment through EnvironmentStack, aspects and validations included, as JSON. */
export function synthEnvironment(env: EnvironmentConfig): SynthesizedEnvironment {
  const stack = new EnvironmentStack(Testing.app(), env.name, { environment: env, backupImageBuild: BACKUP_IMAGE_BUILD });
  const json = Testing.synth(stack, true);
  return { env, stack, json, doc: JSON.parse(json) as SynthesizedEnvironment['doc'] };
}

export function errorAnnotations(stack: EnvironmentStack): { path: string; message: string }[] {
  return stack.node
    .findAll()
    .flatMap((node) => node.node.metadata.filter((m) => m.type === AnnotationMetadataEntryType.ERROR).map((m) => ({ path: node.node.path, message: String(m.data) })));
}

const configRoots: string[] = [];
// Registered from here so that every test file that writes configs also removes them.
afterAll(() => {
  for (const root of configRoots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
});

function newConfigRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-config-'));
  configRoots.push(root);
  return root;
}

/** A config root under TMPDIR (removed after the test file) with these files, objects written as YAML. */
export function writeConfig(files: Record<string, unknown>, root = newConfigRoot()): string {
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), typeof content === 'string' ? content : stringify(content));
  }
  return root;
}

/** Every resource a construct subtree owns, as `type.logicalId`, with its JSON body from `doc`. */
export function ownedResources(scope: { node: { findAll(): unknown[] } }, s: SynthesizedEnvironment): Map<string, unknown> {
  const owned = new Map<string, unknown>();
  for (const node of scope.node.findAll()) {
    if (!(node instanceof TerraformResource)) continue;
    const id = s.stack.getLogicalId(node);
    owned.set(`${node.terraformResourceType}.${id}`, resourcesOf(s.doc, node.terraformResourceType)[id]);
  }
  return owned;
}

const label = (c: { labels: { label: string; value: string }[] }, name: string) => c.labels.find((l) => l.label === name)?.value;

/** Secrets by env var name: their value must be exactly one reference to a generated or issued secret. */
const SECRET_ENV = /PASSWORD|SECRET|API_KEY/;
const SECRET_REF = /^\$\{(random_password\.[A-Za-z0-9_-]+\.result|aws_iam_access_key\.[A-Za-z0-9_-]+\.secret)\}$/;

/** Terraform references in JSON text: `${type.name.attr}`. */
const REFERENCE = /\$\{[a-z0-9_]+\.[A-Za-z0-9_-]+\.[a-z_]+\}/g;

/**
 * Looks like a generated secret: 16+ alphanumerics mixing lower case, upper case and digits. The
 * logical IDs' hashes (8 upper-case hex) and image digests (lower-case hex) do not match.
 */
function randomLooking(text: string): string[] {
  return (text.replace(REFERENCE, '').match(/[A-Za-z0-9]{16,}/g) ?? []).filter((w) => /[a-z]/.test(w) && /[A-Z]/.test(w) && /[0-9]/.test(w));
}

/**
 * The rules every synthesized environment must follow (DESIGN.md, "Contracts users rely on").
 * Returns one line per violation, so a failure lists all of them.
 */
export function invariantViolations(stacks: readonly SynthesizedEnvironment[]): string[] {
  const problems: string[] = [];

  // Names and host ports are per Docker host, across every environment deployed to it.
  const byHost = new Map<string, SynthesizedEnvironment[]>();
  for (const s of stacks) byHost.set(s.env.docker.host, [...(byHost.get(s.env.docker.host) ?? []), s]);
  for (const [host, group] of byHost) {
    const all = group.flatMap((s) => containers(s.doc));
    const seen = new Set<string>();
    for (const c of all) {
      if (seen.has(c.name)) problems.push(`container name ${c.name} is used twice on Docker host ${host}`);
      seen.add(c.name);
    }
    const volumeNames = new Set<string>();
    for (const v of group.flatMap((s) => Object.values(resourcesOf<VolumeJson>(s.doc, 'docker_volume')))) {
      if (volumeNames.has(v.name)) problems.push(`volume name ${v.name} is used twice on Docker host ${host}`);
      volumeNames.add(v.name);
    }
    const ports = new Map<number, string>();
    for (const c of all) {
      for (const p of c.ports ?? []) {
        const other = ports.get(p.external);
        if (other) problems.push(`host port ${p.external} is published by ${other} and ${c.name} on Docker host ${host}`);
        ports.set(p.external, c.name);
      }
    }
  }

  for (const s of stacks) {
    const where = `[${s.env.name}]`;
    const networkIds = Object.keys(resourcesOf(s.doc, 'docker_network'));
    if (networkIds.length !== 1) problems.push(`${where} expected one docker_network, found ${networkIds.length}`);
    const networkRef = `\${docker_network.${networkIds[0]}.name}`;
    const volumeIds = new Set(Object.keys(resourcesOf(s.doc, 'docker_volume')));
    const tenants = new Set(s.env.tenants.map((t) => t.name));

    for (const c of containers(s.doc)) {
      const at = `${where} ${c.name}:`;
      if (JSON.stringify(c.networks_advanced) !== JSON.stringify([{ aliases: [c.name], name: networkRef }])) {
        problems.push(`${at} not attached to the environment network as ${networkRef} (networks_advanced: ${JSON.stringify(c.networks_advanced)})`);
      }
      const env = label(c, 'tenantry.env');
      const tenant = label(c, 'tenantry.tenant');
      const service = label(c, 'tenantry.service');
      if (env !== s.env.name) problems.push(`${at} label tenantry.env is ${env}`);
      if (!tenant || !(tenants.has(tenant) || tenant === 'shared')) problems.push(`${at} label tenantry.tenant is ${tenant}`);
      if (!service) problems.push(`${at} has no tenantry.service label`);
      if (!new RegExp(`^${s.env.name}-${tenant}-${service}(-\\d+)?$`).test(c.name)) problems.push(`${at} name is not <env>-<tenant>-<service>[-<n>]`);
      if (c.hostname !== c.name) problems.push(`${at} hostname ${c.hostname} differs from its name`);
      if (!(typeof c.memory === 'number' && c.memory > 0)) problems.push(`${at} has no memory limit`);

      for (const v of c.volumes ?? []) {
        if (v.volume_name !== undefined) {
          const id = /^\$\{docker_volume\.([A-Za-z0-9_-]+)\.name\}$/.exec(v.volume_name)?.[1];
          if (!id || !volumeIds.has(id)) problems.push(`${at} mounts volume ${v.volume_name}, which is not a docker_volume of this stack`);
        } else if (s.env.storage.kind === 'bind' && !v.host_path?.startsWith(`${s.env.storage.dataRoot}/`)) {
          const override = Object.values(s.env.tenants.find((t) => t.name === tenant)?.services ?? {}).some((svc) => svc && 'storage' in svc && svc.storage?.kind === 'bind');
          if (!override) problems.push(`${at} binds ${v.host_path}, outside the data root ${s.env.storage.dataRoot}`);
        }
      }

      for (const entry of c.env ?? []) {
        const [name, ...rest] = entry.split('=');
        const value = rest.join('=');
        if (SECRET_ENV.test(name) && !SECRET_REF.test(value)) problems.push(`${at} env ${name} is not a secret reference: ${value}`);
      }
    }

    for (const [id, v] of Object.entries(resourcesOf<VolumeJson>(s.doc, 'docker_volume'))) {
      const names = v.labels.map((l) => l.label).sort();
      if (JSON.stringify(names) !== JSON.stringify(['tenantry.env', 'tenantry.service', 'tenantry.tenant'])) problems.push(`${where} volume ${id} labels: ${names.join(', ')}`);
    }

    for (const [id, image] of Object.entries(resourcesOf<{ name: string }>(s.doc, 'docker_image'))) {
      if (!isPinned(image.name)) problems.push(`${where} image ${id} (${image.name}) is not pinned`);
    }

    for (const [id, p] of Object.entries(resourcesOf<{ length: number; special: boolean }>(s.doc, 'random_password'))) {
      if (!(p.length >= 32)) problems.push(`${where} random_password ${id} is only ${p.length} characters`);
    }

    for (const [name, output] of Object.entries(s.doc.output ?? {})) {
      const text = JSON.stringify(output.value);
      if (/\$\{(random_password|aws_iam_access_key)\./.test(text) && output.sensitive !== true) problems.push(`${where} output ${name} carries a secret but is not sensitive`);
    }
    // One output for each tenant's applications, one for its operators where it has Postgres or MinIO.
    const outputsOf = (kind: string) => Object.keys(s.doc.output ?? {}).filter((name) => name.startsWith(`${kind}_`)).sort().join();
    const tenantOutputs = (kind: string, tenants: TenantConfig[]) => tenants.map((t) => `${kind}_${t.name.replace(/-/g, '_')}`).sort().join();
    const withAdmin = s.env.tenants.filter((t) => t.services.postgres?.enabled || t.services.minio?.enabled);
    if (outputsOf('tenant') !== tenantOutputs('tenant', s.env.tenants) || outputsOf('admin') !== tenantOutputs('admin', withAdmin)) {
      problems.push(`${where} outputs ${Object.keys(s.doc.output ?? {}).join(', ')} are not one per tenant (and one admin_ per tenant with Postgres or MinIO)`);
    }
    // Applications get their own users: root and superuser credentials go to operators (admin_<name>) only.
    for (const name of s.env.tenants.map((t) => `tenant_${t.name.replace(/-/g, '_')}`)) {
      const root = /\$\{random_password\.[^.}]*(root|superuser)-password[^}]*\}/.exec(JSON.stringify(s.doc.output?.[name]?.value ?? ''));
      if (root) problems.push(`${where} output ${name}, which applications read, holds an operator credential ${root[0]}`);
    }
    if (Object.keys(s.doc.output ?? {}).some((name) => !/^(tenant|admin)_/.test(name))) problems.push(`${where} has an output that is neither tenant_ nor admin_`);

    for (const word of randomLooking(s.json)) problems.push(`${where} random-looking string in the JSON (a secret in plain text?): ${word}`);
  }
  return problems;
}

/** A container's Terraform address as `depends_on` spells it. */
export function containerAddress(doc: SynthDoc, name: string): string | undefined {
  const entry = Object.entries(resourcesOf<ContainerJson>(doc, 'docker_container')).find(([, c]) => c.name === name);
  return entry && `docker_container.${entry[0]}`;
}

/**
 * Loads the config under `root` with one rule switched off (a jest spy returning no problems), to
 * see what the rule keeps out: property tests synthesize that and check the clash is real.
 */
export function loadWithRuleOff<M extends object>(root: string, rules: M, rule: jest.FunctionPropertyNames<Required<M>>): LoadResult {
  const none: Problem[] = [];
  const spy = jest.spyOn(rules, rule).mockReturnValue(none as never);
  try {
    return loadConfig(root);
  } finally {
    spy.mockRestore();
  }
}
