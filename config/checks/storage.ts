import { dockerHostIdentity, isWindowsDockerHost } from '../docker-host';
import { dotted } from '../issues';
import type { ParsedDeployment, ParsedEnvironment } from '../parsed';
import { ConfigPath, Problem, SourceFile } from '../source';
import { SHARED_POSTGRES_VOLUME, ServiceStorage, tenantDirectory, tenantVolumes, VolumeIdentity, volumeLocation } from '../storage-layout';

/**
 * Rules that keep every deployment's data its own: no two stateful volumes share a directory or
 * sit inside each other's (per Docker host for bind paths, per NFS server for NFS, whatever the
 * Docker host: every host that mounts an export shares it), and production data stays on the
 * environment's storage.
 */
export function storageRules(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): Problem[] {
  return [...sharedLocations(environments, deployments), ...deployments.flatMap(productionStorage)];
}

/** Where a location was decided: a service's `storage.path`, or the environment's storage. */
interface Site {
  readonly file: SourceFile;
  readonly at: ConfigPath;
  readonly override: boolean;
}

/** A directory some deployment keeps data in, on a file system another may also reach. */
interface Claim {
  /** The file system: one Docker host's (the machine, see dockerHostIdentity), or one NFS server's. */
  readonly space: string;
  /** The file system as the environment writes it, for messages. */
  readonly shown: string;
  readonly path: string;
  /** e.g. `tenant "acme"'s postgres data in environment "dev"`. */
  readonly owner: string;
  /** `<env>/<tenant>`: a tenant's own directory may hold its own volumes. */
  readonly deployment: string;
  /** A tenant's whole directory under the environment's storage, rather than one volume. */
  readonly whole: boolean;
  readonly environment: string;
  readonly site: Site;
  /** The root the location is under: the service's path, dataRoot or export as written. */
  readonly root: string;
}

function claimsOf(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): Claim[] {
  const claims: Claim[] = [];
  const envSite = (e: ParsedEnvironment): Site => ({ file: e.file, at: ['storage', e.storage.kind === 'nfs' ? 'export' : 'dataRoot'], override: false });
  const envRoot = (e: ParsedEnvironment) => (e.storage.kind === 'nfs' ? e.storage.export : e.storage.kind === 'bind' ? e.storage.dataRoot : '');
  const place = (e: ParsedEnvironment, location: { kind: 'bind'; hostPath: string } | { kind: 'nfs'; server: string; path: string }) =>
    location.kind === 'bind'
      ? { space: `Docker host ${dockerHostIdentity(e.env.docker.host)}`, shown: `Docker host ${e.env.docker.host}`, path: location.hostPath }
      : { space: `NFS server ${location.server.toLowerCase()}`, shown: `NFS server ${location.server}`, path: location.path };

  const claimDeployment = (e: ParsedEnvironment, tenant: string, who: string, volumes: { id: VolumeIdentity; what: string; override?: ServiceStorage; site?: Site }[]) => {
    const deployment = `${e.env.name}/${tenant}`;
    const environment = e.env.name;
    let onEnvironmentStorage = false;
    for (const v of volumes) {
      const location = volumeLocation(e.storage, v.override, v.id);
      if (location.kind === 'volume') continue;
      const own = v.override?.kind === 'bind' && v.site;
      onEnvironmentStorage ||= !own;
      const site = own ? v.site! : envSite(e);
      const root = v.override?.kind === 'bind' ? v.override.path : envRoot(e);
      claims.push({ ...place(e, location), owner: `${who}'s ${v.what} in environment "${environment}"`, deployment, whole: false, environment, site, root });
    }
    const directory = tenantDirectory(e.storage, tenant);
    if (onEnvironmentStorage && directory) {
      claims.push({ ...place(e, directory), owner: `${who}'s directory in environment "${environment}"`, deployment, whole: true, environment, site: envSite(e), root: envRoot(e) });
    }
  };

  for (const e of environments) {
    if (e.env.sharedPostgres) claimDeployment(e, SHARED_POSTGRES_VOLUME.tenant, 'the shared Postgres server', [{ id: { environment: e.env.name, ...SHARED_POSTGRES_VOLUME }, what: 'data' }]);
  }
  const seen = new Set<string>();
  for (const d of deployments) {
    const e = d.environment;
    // A tenant name used twice is the duplicate-name rule's to report; its second file claims nothing here.
    if (seen.has(`${e.env.name}/${d.tenant.name}`)) continue;
    seen.add(`${e.env.name}/${d.tenant.name}`);
    const volumes = tenantVolumes(d.services, Object.keys(d.jobs).length > 0).map((v) => {
      const override = v.section ? d.services[v.section]?.storage : undefined;
      return {
        id: { environment: e.env.name, tenant: d.tenant.name, service: v.service, purpose: v.purpose },
        what: v.service === 'backup' ? 'backups' : `${v.service} ${v.purpose}`,
        override,
        site: v.section ? { file: d.file, at: d.locate(['services', v.section, 'storage', 'path']), override: true } : undefined,
      };
    });
    claimDeployment(e, d.tenant.name, `tenant "${d.tenant.name}"`, volumes);
  }
  return claims;
}

/** Two claims on one directory, or one inside the other. */
interface Clash {
  readonly claim: Claim;
  readonly other: Claim;
  readonly relation: 'same' | 'inside' | 'around';
}

function clashes(claims: Claim[]): Clash[] {
  const holders = new Map<string, Claim[]>();
  const key = (space: string, p: string) => `${space}\u0000${p}`;
  for (const c of claims) holders.set(key(c.space, c.path), [...(holders.get(key(c.space, c.path)) ?? []), c]);
  const found: Clash[] = [];
  for (const c of claims) {
    const segments = c.path.split('/');
    // Each nesting is found once, from the inner claim; each equal pair once, from the later one.
    for (let n = 2; n < segments.length; n++) {
      for (const other of holders.get(key(c.space, segments.slice(0, n).join('/'))) ?? []) found.push({ claim: c, other, relation: 'inside' });
    }
    const same = holders.get(key(c.space, c.path))!;
    for (const other of same.slice(0, same.indexOf(c))) found.push({ claim: c, other, relation: 'same' });
  }
  return found.filter((f) => !((f.claim.whole || f.other.whole) && f.claim.deployment === f.other.deployment));
}

function where(site: Site): string {
  return site.file.position(site.at);
}

/**
 * One problem per pair of settings that clash, at the one to change: a service's `storage.path`
 * rather than an environment's storage, the later file rather than the earlier.
 */
function sharedLocations(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): Problem[] {
  const groups = new Map<string, { clash: Clash; paths: Set<string>; environments: Set<string> }>();
  const telling = (c: Clash) => (c.relation === 'same' ? 2 : 0) + (c.claim.whole || c.other.whole ? 0 : 1);
  for (const found of clashes(claimsOf(environments, deployments))) {
    const clash = reporterFirst(found);
    const key = `${where(clash.claim.site)}\u0000${where(clash.other.site)}`;
    const group = groups.get(key);
    if (!group) groups.set(key, { clash, paths: new Set([clash.claim.path]), environments: new Set([clash.claim.environment, clash.other.environment]) });
    else {
      group.paths.add(clash.claim.path);
      group.environments.add(clash.claim.environment).add(clash.other.environment);
      // Show the most telling clash of the pair: two volumes in one directory, rather than whole tenant directories.
      if (telling(clash) > telling(group.clash)) group.clash = clash;
    }
  }
  return [...groups.values()].map(({ clash, paths, environments }) => {
    const { claim, other, relation } = clash;
    const more = paths.size > 1 ? `, and so would ${paths.size - 1} more of its directories` : '';
    const sameSite = where(claim.site) === where(other.site);
    const otherAt = (sameSite ? 'set on the same line' : where(other.site)) + (other.shown === claim.shown ? '' : `, on ${other.shown}: the same machine`);
    const how =
      relation === 'same' ? `the same directory as ${other.owner} (${otherAt})` : relation === 'inside' ? `inside ${other.path}, ${other.owner} (${otherAt})` : `which holds ${other.path}, ${other.owner} (${otherAt})`;
    return claim.site.file.problem(claim.site.at, `${dotted(claim.site.at)}: ${claim.owner} would be ${claim.path} on ${claim.shown}, ${how}${more}: ${fix(claim, other, sameSite ? [...environments].sort() : undefined)}`);
  });
}

/** The clash as seen from the setting that should change. */
function reporterFirst(c: Clash): Clash {
  const swap = (): Clash => ({ claim: c.other, other: c.claim, relation: c.relation === 'same' ? 'same' : c.relation === 'inside' ? 'around' : 'inside' });
  if (c.claim.site.override !== c.other.site.override) return c.claim.site.override ? c : swap();
  const [a, b] = [c.claim.site.file.problem(c.claim.site.at, ''), c.other.site.file.problem(c.other.site.at, '')];
  const order = a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col;
  return order >= 0 ? c : swap();
}

/** `sameSiteEnvironments`: one setting gives several environments the same directories (one tenant file). */
function fix(claim: Claim, other: Claim, sameSiteEnvironments: string[] | undefined): string {
  if (claim.site.override && sameSiteEnvironments) {
    const overrides = sameSiteEnvironments.map((e) => `overrides.${e}`);
    return `a service's path holds <path>/<service>/<purpose> whatever the environment: put this storage under ${overrides.slice(0, -1).join(', ')} and ${overrides[overrides.length - 1]}, with a path for each`;
  }
  if (claim.site.override && !other.site.override) {
    return `a service's path holds <path>/<service>/<purpose>, without the tenant: choose one outside ${other.root} (environment "${other.environment}"'s data root, where every tenant has its own directory)`;
  }
  if (claim.site.override) return `a service's path holds <path>/<service>/<purpose>, without the tenant or environment: give each of them a path of its own, neither inside nor around the other`;
  const setting = claim.site.at[claim.site.at.length - 1];
  const root = claim.root.replace(/(.)\/$/, '$1');
  const example = root === other.root.replace(/(.)\/$/, '$1') ? `, e.g. ${root}/${claim.environment}` : '';
  return `give each environment its own ${setting}, neither inside nor around another environment's tenant directories${example}`;
}

/**
 * A production environment's storage is where its data is provisioned, monitored and backed up;
 * a service override that takes data elsewhere (a local disk instead of NFS) is how it was lost.
 */
function productionStorage(d: ParsedDeployment): Problem[] {
  const e = d.environment;
  if (!e.env.production) return [];
  const problems: Problem[] = [];
  const windows = isWindowsDockerHost(e.env.docker);
  for (const section of ['postgres', 'redis', 'qdrant', 'minio'] as const) {
    const service = d.services[section];
    const own = service?.storage;
    if (!service?.enabled || !own || own.kind === e.storage.kind) continue;
    if (section === 'postgres' && d.services.postgres?.mode === 'shared') continue;
    // The Windows rule (cross-checks.ts) sends Postgres data to a named volume there.
    if (windows && section === 'postgres' && own.kind === 'volume') continue;
    const at = d.locate(['services', section, 'storage', 'kind']);
    const inOverride = at[0] === 'overrides';
    const others = d.tenant.environments.filter((n) => n !== e.env.name);
    const fixText = inOverride
      ? `remove overrides.${e.env.name}.services.${section}.storage, or change storage.kind in ${e.file.displayName}`
      : `move it under ${others.length > 0 ? others.map((n) => `overrides.${n}`).join(' or ') : 'overrides.<env>'} for the non-production environments that need it, or change storage.kind in ${e.file.displayName}`;
    problems.push(
      d.file.problem(at, `${dotted(at)}: "${own.kind}" would move tenant "${d.tenant.name}"'s ${section} data off environment "${e.env.name}"'s ${e.storage.kind} storage, and "${e.env.name}" is production (its data stays on the storage it provisions and backs up): ${fixText}`),
    );
  }
  return problems;
}
