import Table from 'cli-table3';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Document, Scalar, YAMLSeq } from 'yaml';
import { dockerHostIdentity } from '../../config/docker-host';
import { suggest } from '../../config/issues';
import { displayPath } from '../../config/source';
import type { EnvironmentConfig, TenantryConfig } from '../../config/model';
import { lowestFreeSlot, portList, SLOT_SIZE, SlotRange } from '../../config/ports';
import { SERVICE_DEFAULTS, tenantFileSchema } from '../../config/schema';
import { TENANT_SCHEMA_LINE } from '../../config/write-json-schema';
import type { CliCommand } from '../context';
import { ConfigurationError, UsageError } from '../errors';
import { diffStacks } from '../plan/diff';
import { loadOrThrow, StackJson, synthesize } from '../synthesis';

const SERVICES = Object.keys(SERVICE_DEFAULTS);

export const addTenant: CliCommand = {
  register(program, context) {
    program
      .command('add-tenant')
      .argument('<name>', 'the tenant: a lowercase DNS label (it becomes part of container, volume and bucket names)')
      .description('Write tenants/<name>.yaml with the next free portSlot, check the whole configuration with it, and print what it adds per environment. Nothing is written if the result would be invalid.')
      .option('--env <names...>', 'environments the tenant joins (repeat, or separate by commas; default: every environment)')
      .option('--services <list>', `services, comma-separated, of: ${SERVICES.join(', ')} (default: all; pgbouncer comes with postgres)`)
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  tenantry add-tenant initech                                  # every environment, every service',
          '  tenantry add-tenant initech --env dev --env prod --services postgres,redis',
          '  tenantry --config-dir ./ops add-tenant umbrella --env dev',
          '',
          'The file then gets its settings as any tenant file does (see the README\'s configuration reference);',
          'run npm run synth (or tenantry plan) and deploy as usual.',
        ].join('\n'),
      )
      .action(async (name: string, options: { env?: string[]; services?: string }, command) => {
        const root = context.configDir(command);
        checkName(name);
        const target = tenantFile(root, name);
        const config = loadOrThrow(root);
        const environments = chosenEnvironments(config, options.env);
        const services = chosenServices(options.services);
        const slot = freeSlot(config, environments);
        const text = tenantYaml(name, environments.map((e) => e.name), slot, services, environments);
        const added = await validateWith(root, name, text);
        writeAtomically(target, text);
        context.io.stdout(describe(displayPath(target), slot, added, context.colors(command).bold));
      });
  },
};

function checkName(name: string): void {
  const result = tenantFileSchema.shape.name.safeParse(name);
  if (!result.success) throw new UsageError(`tenant name "${name}" ${result.error.issues[0].message}`);
}

/** tenants/<name>.yaml, refused when the tenant exists (as .yaml or .yml). */
function tenantFile(root: string, name: string): string {
  for (const ext of ['yaml', 'yml']) {
    const existing = path.join(root, 'tenants', `${name}.${ext}`);
    if (fs.existsSync(existing)) throw new UsageError(`tenant "${name}" exists already (${displayPath(existing)}): edit that file, or choose another name`);
  }
  return path.join(root, 'tenants', `${name}.yaml`);
}

function chosenEnvironments(config: TenantryConfig, requested: string[] | undefined): EnvironmentConfig[] {
  if (requested === undefined) return config.environments;
  const known = config.environments.map((e) => e.name);
  const names = [...new Set(requested.flatMap((r) => r.split(',')).map((n) => n.trim()).filter((n) => n !== ''))];
  for (const n of names) {
    if (known.includes(n)) continue;
    const close = suggest(n, known);
    throw new UsageError(`--env ${n}: no such environment${close ? `; did you mean "${close}"?` : ''} (environments: ${known.join(', ')})`);
  }
  if (names.length === 0) throw new UsageError('--env names no environment');
  return config.environments.filter((e) => names.includes(e.name));
}

function chosenServices(requested: string | undefined): string[] {
  if (requested === undefined) return SERVICES;
  const names = [...new Set(requested.split(',').map((n) => n.trim()).filter((n) => n !== ''))];
  for (const n of names) {
    if (SERVICES.includes(n)) continue;
    const close = suggest(n, SERVICES);
    throw new UsageError(`--services ${n}: no such service${close ? `; did you mean "${close}"?` : ''} (services: ${SERVICES.join(', ')})`);
  }
  if (names.length === 0) throw new UsageError('--services names no service');
  return SERVICES.filter((s) => names.includes(s));
}

/** The lowest slot (config/ports.ts) no tenant has, clear on the Docker hosts of the publishing environments it joins. */
function freeSlot(config: TenantryConfig, joining: EnvironmentConfig[]): number {
  const taken = new Set(config.environments.flatMap((e) => e.tenants.flatMap((t) => (t.portSlot === undefined ? [] : [t.portSlot]))));
  const ranges = joining
    .filter((e) => e.ports.publish)
    .map((e): SlotRange => {
      const host = dockerHostIdentity(e.docker.host);
      const neighbours = config.environments.filter((n) => n.ports.publish && dockerHostIdentity(n.docker.host) === host);
      const claimed = new Set(neighbours.flatMap((n) => [...n.tenants.flatMap((t) => portList(t.publishedPorts).map((p) => p.external)), ...(n.sharedPostgres?.hostPort === undefined ? [] : [n.sharedPostgres.hostPort])]));
      return { from: e.ports.from, to: e.ports.to, claimed };
    });
  const slot = lowestFreeSlot(taken, ranges);
  if (slot === undefined) {
    const full = joining.filter((e) => e.ports.publish).map((e) => `${e.name} (${e.ports.from}-${e.ports.to})`);
    throw new UsageError(`no free portSlot in the port ranges of ${full.join(', ')}: widen ports.from/ports.to there`);
  }
  return slot;
}

function tenantYaml(name: string, environments: string[], slot: number, services: string[], joining: EnvironmentConfig[]): string {
  const doc = new Document({ name, environments, portSlot: slot, services: Object.fromEntries(services.map((s) => [s, {}])) });
  (doc.get('environments', true) as YAMLSeq).flow = true;
  const publishing = joining.find((e) => e.ports.publish);
  if (publishing) {
    const from = publishing.ports.from + slot * SLOT_SIZE;
    (doc.get('portSlot', true) as Scalar).comment = ` host ports ${from}-${from + SLOT_SIZE - 1} in ${publishing.name}`;
  }
  return `${TENANT_SCHEMA_LINE}\n${doc.toString({ lineWidth: 0, flowCollectionPadding: false })}`;
}

interface Added {
  readonly environment: string;
  readonly containers: string[];
  readonly ports: string[];
  readonly volumes: string[];
  readonly buckets: string[];
}

/**
 * Checks the whole configuration with the new file (schema, cross-file rules, then synthesis with
 * its policies) in a temporary copy of the folder layout, and returns what the tenant adds. A
 * problem is reported at the new file's place in the real folder, and nothing is written.
 */
async function validateWith(root: string, name: string, text: string): Promise<Added[]> {
  const overlay = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-add-tenant-'));
  try {
    fs.symlinkSync(path.join(root, 'environments'), path.join(overlay, 'environments'));
    fs.mkdirSync(path.join(overlay, 'tenants'));
    const tenants = path.join(root, 'tenants');
    for (const file of fs.existsSync(tenants) ? fs.readdirSync(tenants) : []) fs.symlinkSync(path.join(tenants, file), path.join(overlay, 'tenants', file));
    fs.writeFileSync(path.join(overlay, 'tenants', `${name}.yaml`), text);
    let result;
    try {
      result = await synthesize(overlay, root);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      const lines = error.lines.map((l) => l.split(displayPath(overlay)).join(displayPath(root)).split(overlay).join(root));
      throw new ConfigurationError(lines, `${lines.length} problem(s) with tenants/${name}.yaml as it would be written; nothing was written.`);
    }
    return result.config.environments.filter((e) => e.tenants.some((t) => t.name === name)).map((e) => added(e, name, result.stacks.get(e.name)!));
  } finally {
    fs.rmSync(overlay, { recursive: true, force: true });
  }
}

function added(env: EnvironmentConfig, name: string, stack: StackJson): Added {
  const tenant = env.tenants.find((t) => t.name === name)!;
  const own = diffStacks(env.name, undefined, stack).filter((c) => c.tenant === name);
  const containers = own.filter((c) => c.type === 'docker_container').map((c) => c.name);
  const hostPaths = own
    .filter((c) => c.type === 'docker_container')
    .flatMap((c) => ((stack.resource?.docker_container?.[c.address.split('.')[1]]?.volumes ?? []) as { host_path?: string }[]).flatMap((v) => (v.host_path ? [v.host_path] : [])));
  const volumes = [...own.filter((c) => c.type === 'docker_volume').map((c) => c.name), ...[...new Set(hostPaths)].sort()];
  const minio = (tenant.services.minio?.enabled ? tenant.services.minio.buckets : []).map((b) => `MinIO ${b.name}`);
  const offsite = tenant.offsite ? [`off-site s3://${tenant.offsite.bucket}/${tenant.offsite.prefix}/`] : [];
  const ports = portList(tenant.publishedPorts).map((p) => `${p.container} ${p.external}->${p.internal}`);
  return { environment: env.name, containers, ports, volumes, buckets: [...minio, ...offsite] };
}

/** Written next to the target and linked into place: the file appears whole, and an existing one is never replaced. */
function writeAtomically(target: string, text: string): void {
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.tmp`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const fd = fs.openSync(temporary, 'wx', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(temporary, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${target} appeared while checking it; nothing was written`);
    throw error;
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

function describe(file: string, slot: number, added: Added[], bold: (s: string) => string): string {
  const out = [`wrote ${file} (portSlot ${slot}); it adds:`];
  for (const a of added) {
    const table = new Table({ style: { head: [], border: [] }, colWidths: [17, 72], wordWrap: true });
    const row = (kind: string, items: string[]) => table.push({ [kind]: items.length > 0 ? items.join(', ') : '-' });
    row('containers', a.containers);
    row('published ports', a.ports);
    row('volumes', a.volumes);
    row('buckets', a.buckets);
    out.push('', `environment ${bold(a.environment)}`, table.toString());
  }
  out.push('', 'Next: npm run synth (or tenantry plan), then deploy each environment.');
  return `${out.join('\n')}\n`;
}
