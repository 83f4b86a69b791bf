import { PITR_PARAMETER_NAMES } from '../runtime/render/postgres';
import { policyChecks } from './checks/policy';
import { pitrCovers } from './pitr';
import { dockerHostIdentity, isWindowsDockerHost } from './docker-host';
import { containerName, deploymentName } from './naming';
import type { ParsedDeployment, ParsedEnvironment } from './parsed';
import { portList, SLOT_SIZE, slotCount } from './ports';
import { BACKUP_SERVICES, TenantFile } from './schema';
import { ConfigPath, formatProblem, Problem, SourceFile } from './source';
import { SHARED_TENANT } from './storage-layout';
import { dotted, suggest } from './issues';
import { offsiteRules } from './checks/offsite';
import { storageRules } from './checks/storage';

/** Rules that span files: names, references between files, ports on a shared Docker host, policy. */
export function crossCheck(
  environments: ParsedEnvironment[],
  tenants: { file: SourceFile; tenant: TenantFile }[],
  deployments: ParsedDeployment[],
  /** Every environment a file defines, valid or not: a tenant naming a broken one is not wrong. */
  declared: string[],
): Problem[] {
  return mergeInherited([
    ...duplicateNames(environments.map((e) => ({ file: e.file, name: e.env.name })), 'environment'),
    ...duplicateNames(tenants.map((t) => ({ file: t.file, name: t.tenant.name })), 'tenant'),
    ...sharedNetworks(environments),
    // With no environment file at all, that one problem says it all.
    ...(declared.length === 0 ? [] : tenants.flatMap((t) => environmentReferences(t.file, t.tenant, declared))),
    ...deployments.flatMap((d) => deploymentRules(d)),
    ...portConflicts(environments, deployments),
    ...containerNameClashes(deployments),
    ...offsiteRules(environments, deployments, declared),
    ...storageRules(environments, deployments),
    ...policyChecks(environments, tenants, deployments),
    ...sharedServerDatabases(deployments),
  ]);
}

/** A problem at an environment's setting that is wrong for a tenant because the tenant inherits it. */
interface InheritedProblem extends Problem {
  readonly inheritedBy: string;
}

/** One line per environment setting that several tenants inherit, naming them all. */
function mergeInherited(problems: (Problem | InheritedProblem)[]): Problem[] {
  const groups = new Map<string, { problem: Problem; tenants: string[] }>();
  const out: Problem[] = [];
  for (const p of problems) {
    if (!('inheritedBy' in p)) {
      out.push(p);
      continue;
    }
    const { inheritedBy, ...problem } = p;
    const key = formatProblem(problem);
    const group = groups.get(key) ?? { problem, tenants: [] };
    group.tenants.push(inheritedBy);
    groups.set(key, group);
  }
  for (const { problem, tenants } of groups.values()) {
    const names = [...new Set(tenants)].sort();
    const who = names.length === 1 ? `tenant ${names[0]} inherits it` : `tenants ${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} inherit it`;
    out.push({ ...problem, message: `${problem.message} (${who})` });
  }
  return out;
}

function duplicateNames(items: { file: SourceFile; name: string }[], what: string): Problem[] {
  const first = new Map<string, SourceFile>();
  const problems: Problem[] = [];
  for (const { file, name } of items) {
    const earlier = first.get(name);
    if (earlier) {
      problems.push(file.problem(['name'], `${what} name "${name}" is already used by ${earlier.position(['name'])}: names must be unique`));
    } else {
      first.set(name, file);
    }
  }
  return problems;
}

/** Two environments on one Docker host need their own network, on subnets that do not overlap (Docker refuses those). */
function sharedNetworks(environments: ParsedEnvironment[]): Problem[] {
  const problems: Problem[] = [];
  environments.forEach((e, i) => {
    for (const other of environments.slice(0, i)) {
      // A duplicated environment file is reported as such; its network would only repeat that.
      if (dockerHostIdentity(other.env.docker.host) !== dockerHostIdentity(e.env.docker.host) || other.env.name === e.env.name) continue;
      const host = `the same Docker host ${e.env.docker.host}${writtenElsewhere(e.env.docker.host, other.env.name, other.env.docker.host)}`;
      if (other.env.network.name === e.env.network.name) {
        problems.push(e.file.problem(['network', 'name'], `network.name: "${e.env.network.name}" is also used by environment "${other.env.name}" on ${host}: give each environment its own network`));
      } else if (overlap(e.env.network.subnet, other.env.network.subnet)) {
        problems.push(
          e.file.problem(['network', 'subnet'], `network.subnet: ${e.env.network.subnet} overlaps ${other.env.network.subnet} of environment "${other.env.name}" on ${host}, which Docker refuses: pick a subnet outside it`),
        );
      }
    }
  });
  return problems;
}

/** How another environment writes a Docker host that is this one's machine, when it writes it differently. */
function writtenElsewhere(host: string, otherEnvironment: string, otherHost: string): string {
  return otherHost === host ? '' : ` (environment "${otherEnvironment}" reaches it as ${otherHost})`;
}

function overlap(a: string, b: string): boolean {
  const [aStart, aEnd] = cidrRange(a);
  const [bStart, bEnd] = cidrRange(b);
  return aStart <= bEnd && bStart <= aEnd;
}

/** First and last address of an IPv4 CIDR, as numbers (the schema has validated its shape). */
function cidrRange(cidr: string): [number, number] {
  const [address, prefix] = cidr.split('/');
  const base = address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(prefix));
  const start = base - (base % size);
  return [start, start + size - 1];
}

function environmentReferences(file: SourceFile, tenant: TenantFile, declared: string[]): Problem[] {
  const known = [...new Set(declared)].sort();
  const problems: Problem[] = [];
  const unknown = (name: string) => {
    const hint = suggest(name, known);
    return `environment "${name}" does not exist${hint ? `; did you mean "${hint}"?` : ''} (environments: ${known.join(', ') || 'none'})`;
  };
  tenant.environments.forEach((name, i) => {
    if (!known.includes(name)) problems.push(file.problem(['environments', i], `environments[${i}]: ${unknown(name)}`));
    if (tenant.environments.indexOf(name) !== i) problems.push(file.problem(['environments', i], `environments[${i}]: "${name}" is listed twice`));
  });
  for (const name of Object.keys(tenant.overrides ?? {})) {
    if (!tenant.environments.includes(name)) {
      const message = known.includes(name)
        ? `overrides.${name}: the tenant is not in environment "${name}": add it to "environments" or remove this override`
        : `overrides.${name}: ${unknown(name)}`;
      problems.push(file.problem(['overrides', name], message, { key: true }));
    }
  }
  return problems;
}

function deploymentRules(d: ParsedDeployment): (Problem | InheritedProblem)[] {
  const env = d.environment.env;
  const problems: (Problem | InheritedProblem)[] = [];
  const at = (p: (string | number)[], message: string) => d.file.problem(d.locate(p), message);
  const pg = d.services.postgres;

  if (pg?.enabled && pg.mode === 'shared' && !env.sharedPostgres) {
    problems.push(at(['services', 'postgres', 'mode'], `services.postgres.mode: "shared" needs a shared server, but environment "${env.name}" has no sharedPostgres section: add one to ${env.name}.yaml or use mode: dedicated`));
  }
  const windows = isWindowsDockerHost(env.docker);
  const pgStorage = pg?.storage?.kind ?? env.storage.kind;
  if (windows && pg?.enabled && pg.mode === 'dedicated' && pgStorage === 'bind') {
    problems.push(
      at(['services', 'postgres'], `services.postgres: environment "${env.name}" runs on a Windows Docker host, where Postgres cannot chmod a bind-mounted data directory and refuses to start: set services.postgres.storage: { kind: volume } (backups may stay on bind or NFS)`),
    );
  }

  if (env.ports.publish) {
    const slots = slotCount(env.ports.from, env.ports.to);
    if (d.tenant.portSlot === undefined) {
      problems.push(d.file.problem(['name'], `environment "${env.name}" publishes ports (ports.publish: true), so this tenant needs a portSlot: add "portSlot: <0-${slots - 1}>" (each slot is ${SLOT_SIZE} host ports)`, { key: true }));
    } else if (d.tenant.portSlot >= slots) {
      problems.push(d.file.problem(['portSlot'], `portSlot: ${d.tenant.portSlot} is outside environment "${env.name}"'s port range ${env.ports.from}-${env.ports.to}, which has slots 0-${slots - 1}: pick a lower slot or widen ports.from/ports.to`));
    }
  }

  const pinned = env.images.postgres;
  const pinnedMajor = pinned === undefined ? undefined : imageMajor(pinned);
  const versionAt = writtenAt(d, ['services', 'postgres', 'version']);
  if (pg?.enabled && pg.mode === 'dedicated' && pinnedMajor !== undefined && versionAt && pinnedMajor !== pg.version) {
    problems.push(
      d.file.problem(versionAt, `${dotted(versionAt)}: ${pg.version}, but environment "${env.name}" pins images.postgres "${pinned}" (PostgreSQL ${pinnedMajor}), which every dedicated server there runs: set it to ${pinnedMajor}, or remove images.postgres from ${env.name}.yaml`),
    );
  }

  if (env.production) problems.push(...productionBackupPolicy(d));
  problems.push(...pitrParameters(d));
  return problems;
}

/** Server parameters point-in-time recovery sets itself: a tenant's own value would be silently replaced, or break streaming. */
function pitrParameters(d: ParsedDeployment): Problem[] {
  if (!d.jobs.postgres?.pitr) return [];
  const parameters = d.services.postgres?.parameters ?? {};
  return PITR_PARAMETER_NAMES.filter((name) => Object.hasOwn(parameters, name)).flatMap((name) => {
    const where = writtenAt(d, ['services', 'postgres', 'parameters', name]);
    if (!where) return [];
    return [
      d.file.problem(where, `${dotted(where)}: point-in-time recovery (on for this tenant) sets ${name} itself; remove it (maxSlotWalKeepMb under backup.postgres.pitr sets max_slot_wal_keep_size), or turn PITR off`, { key: true }),
    ];
  });
}

/**
 * The PostgreSQL major version an image reference names in its tag ("postgres:16-alpine",
 * "registry:5000/pg:15.4"); undefined when the tag does not start with one ("latest", a digest).
 */
export function imageMajor(image: string): number | undefined {
  const name = image.split('@')[0];
  const tag = name.lastIndexOf(':') > name.lastIndexOf('/') ? name.slice(name.lastIndexOf(':') + 1) : '';
  const match = /^(\d+)(?:$|[._-])/.exec(tag);
  return match ? Number(match[1]) : undefined;
}

/** Production data must be recoverable after losing the host: every stateful service backed up off-site, a week of dailies. */
function productionBackupPolicy(d: ParsedDeployment): (Problem | InheritedProblem)[] {
  const { env, file: envFile } = d.environment;
  const problems: (Problem | InheritedProblem)[] = [];
  for (const service of BACKUP_SERVICES) {
    if (!d.services[service]?.enabled) continue;
    const job = d.jobs[service];
    const rule = !job
      ? { setting: ['enabled'], why: 'refuses a stateful service without a backup job', fix: 'set it to true (or remove it)' }
      : !job.offsite
        ? { setting: ['offsite'], why: 'requires off-site copies', fix: 'set it to true' }
        : job.retention.daily < 7
          ? { setting: ['retention', 'daily'], why: `keeps at least 7 daily backups (this keeps ${job.retention.daily})`, fix: 'set it to 7 or more' }
          : undefined;
    if (!rule) continue;
    const own = ['backup', service, ...rule.setting];
    const where = writtenAt(d, own);
    const because = `environment "${env.name}" is production and ${rule.why}`;
    if (where) {
      problems.push(d.file.problem(where, `${dotted(where)}: ${because}: ${rule.fix}`));
    } else {
      // The tenant inherits the setting from the environment's defaults: that is the line to fix.
      const envPath = ['backup', 'defaults', service, ...rule.setting];
      problems.push({ ...envFile.problem(envPath, `${dotted(envPath)}: ${because}: ${rule.fix}`), inheritedBy: d.tenant.name });
    }
  }
  problems.push(...productionPitrPolicy(d));
  return problems;
}

/**
 * A production tenant's Postgres can be restored to any moment unless its file says why not:
 * without point-in-time recovery, losing the server loses up to a day of writes. A tenant on the
 * shared server has it through the environment's archive (config/pitr.ts), which only the
 * environment turns off.
 */
function productionPitrPolicy(d: ParsedDeployment): Problem[] {
  const { env, file: envFile } = d.environment;
  const pg = d.services.postgres;
  if (!pg?.enabled || pitrCovers(d) || !d.jobs.postgres) return [];
  if (d.backup.postgres?.pitr?.reason !== undefined) return [];
  const shared = pg.mode === 'shared';
  // Without a shared server the tenant's mode is the problem, reported on its own.
  if (shared && !env.sharedPostgres) return [];
  const because = shared
    ? `environment "${env.name}" is production and refuses a tenant on its shared server without point-in-time recovery of that server unless the tenant file says why`
    : `environment "${env.name}" is production and refuses a Postgres server without point-in-time recovery unless the tenant file says why`;
  const own = ['backup', 'postgres', 'pitr', 'enabled'];
  const where = shared ? undefined : writtenAt(d, own);
  if (where) {
    const reasonAt = [...where.slice(0, -1), 'reason'];
    return [d.file.problem(where, `${dotted(where)}: ${because}: set it to true (or remove it), or say why beside it in ${dotted(reasonAt)}: "…"`)];
  }
  const envPath = ['backup', 'defaults', 'postgres', 'pitr', 'enabled'];
  return [envFile.problem(envPath, `${dotted(envPath)}: ${because}: set it to true (or remove it), or say why in ${d.file.displayName} (tenant ${d.tenant.name}, which inherits it), in backup.postgres.pitr.reason`)];
}

/** Where the tenant file itself sets `at` for this environment (its override first), if it does. */
function writtenAt(d: ParsedDeployment, at: (string | number)[]): (string | number)[] | undefined {
  const located = d.locate(at);
  if (d.file.has(located)) return [...located];
  return d.file.has(at) ? at : undefined;
}

interface PortClaim {
  readonly port: number;
  /** The container claiming the port, e.g. "dev-acme-postgres". */
  readonly owner: string;
  /** Claims are reported once per pair of groups (a tenant in an environment, or a shared server). */
  readonly group: string;
  readonly environment: string;
  /** The environment's shared Postgres server claims it (its `sharedPostgres.hostPort`), rather than a tenant. */
  readonly sharedServer: boolean;
  /** The Docker host as the claim's environment writes it. */
  readonly host: string;
  /** The setting that claims it. */
  readonly file: SourceFile;
  readonly at: ConfigPath;
}

/**
 * Container and volume names are `<env>-<tenant>-…`: environment "dev" with tenant "a-b" and
 * environment "dev-a" with tenant "b" would both own "dev-a-b-postgres" on one Docker host.
 */
function containerNameClashes(deployments: ParsedDeployment[]): Problem[] {
  const owners = new Map<string, ParsedDeployment>();
  const problems: Problem[] = [];
  for (const d of deployments) {
    const env = d.environment.env;
    const prefix = deploymentName(env.name, d.tenant.name);
    const key = `${dockerHostIdentity(env.docker.host)}\u0000${prefix}`;
    const other = owners.get(key);
    if (!other) {
      owners.set(key, d);
    } else if (other.environment !== d.environment || other.tenant.name !== d.tenant.name) {
      const otherEnv = other.environment.env.name;
      problems.push(
        d.file.problem(['name'], `name: containers of tenant "${d.tenant.name}" in environment "${env.name}" would be named "${prefix}-…", like those of tenant "${other.tenant.name}" in environment "${otherEnv}" (${other.file.position(['name'])}) on the same Docker host${writtenElsewhere(env.docker.host, otherEnv, other.environment.env.docker.host)}: rename one of the tenants or environments`),
      );
    }
  }
  return problems;
}

/**
 * On an environment's shared server every tenant's databases live side by side: two tenants
 * naming the same database would both be given it (owner, CONNECT), so one could read the other's data.
 */
function sharedServerDatabases(deployments: ParsedDeployment[]): Problem[] {
  const owners = new Map<string, { d: ParsedDeployment; at: (string | number)[] }>();
  const problems: Problem[] = [];
  for (const d of deployments) {
    const pg = d.services.postgres;
    if (!pg?.enabled || pg.mode !== 'shared') continue;
    pg.databases.forEach((database, i) => {
      const at = d.locate(['services', 'postgres', 'databases', i]);
      const key = `${d.environment.env.name}\u0000${database}`;
      const first = owners.get(key);
      if (!first) {
        owners.set(key, { d, at: [...at] });
        return;
      }
      problems.push(
        d.file.problem(at, `${dotted(at)}: database "${database}" is already tenant "${first.d.tenant.name}"'s on environment "${d.environment.env.name}"'s shared Postgres server (${first.d.file.position(first.at)}): tenants on one server need different database names; rename this one`),
      );
    });
  }
  return problems;
}

function portAdvice(claim: PortClaim, first: PortClaim): string {
  const shared = [claim, first].find((c) => c.sharedServer);
  if (shared) return `move sharedPostgres.hostPort of ${shared.environment} outside the tenants' port range, or give the tenant another portSlot`;
  if (claim.environment !== first.environment) return `environments "${first.environment}" and "${claim.environment}" share this Docker host: give them port ranges (ports.from/ports.to) that do not overlap`;
  return 'give one of them another portSlot';
}

/** Published host ports must be unique per Docker host, across every environment on that host. */
function portConflicts(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): Problem[] {
  const claims = new Map<string, PortClaim[]>();
  const claim = (c: PortClaim) => {
    const machine = dockerHostIdentity(c.host);
    let list = claims.get(machine);
    if (!list) claims.set(machine, (list = []));
    list.push(c);
  };

  for (const e of environments) {
    if (e.env.ports.publish && e.env.sharedPostgres?.hostPort !== undefined) {
      const server = containerName(e.env.name, SHARED_TENANT, 'postgres');
      claim({
        port: e.env.sharedPostgres.hostPort,
        owner: server,
        group: server,
        environment: e.env.name,
        sharedServer: true,
        host: e.env.docker.host,
        file: e.file,
        at: ['sharedPostgres', 'hostPort'],
      });
    }
  }
  for (const d of deployments) {
    const env = d.environment.env;
    for (const p of portList(d.ports)) {
      claim({
        port: p.external,
        owner: containerName(env.name, d.tenant.name, p.container),
        group: `${env.name}/${d.tenant.name}`,
        environment: env.name,
        sharedServer: false,
        host: env.docker.host,
        file: d.file,
        at: ['portSlot'],
      });
    }
  }

  const problems: Problem[] = [];
  for (const list of claims.values()) {
    const byPort = new Map<number, PortClaim>();
    const conflicts = new Map<string, { claim: PortClaim; first: PortClaim; count: number }>();
    for (const c of list) {
      const first = byPort.get(c.port);
      if (!first) {
        byPort.set(c.port, c);
        continue;
      }
      const pair = `${c.group}\u0000${first.group}`;
      const known = conflicts.get(pair);
      if (known) known.count++;
      else conflicts.set(pair, { claim: c, first, count: 1 });
    }
    for (const { claim: c, first, count } of conflicts.values()) {
      const firstAt = first.file.position(first.at);
      const more = count > 1 ? ` (and ${count - 1} more port${count > 2 ? 's' : ''})` : '';
      problems.push(c.file.problem(c.at, `host port ${c.port} of ${c.owner} is already claimed by ${first.owner} (${firstAt}) on Docker host ${c.host}${writtenElsewhere(c.host, first.environment, first.host)}${more}: ${portAdvice(c, first)}`));
    }
  }
  return problems;
}
