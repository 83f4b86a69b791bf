import { imageTag } from '../images';
import { dotted } from '../issues';
import type { ParsedDeployment, ParsedEnvironment } from '../parsed';
import { holdsBackupData } from '../model';
import { portList } from '../ports';
import { onSharedServer, pitrCovers, sharedServerArchive } from '../pitr';
import { PITR_PARAMETER_NAMES } from '../../runtime/render/postgres';
import { BACKUP_SERVICES, BackupService, PITR_SETTINGS, TenantFile } from '../schema';
import { ConfigPath, Problem, SourceFile } from '../source';

/*
 * Policies the synthesized stacks must meet, and settings that would have no effect, reported at the
 * key to change and in the same run as every other problem. The aspects in constructs/policy.ts hold
 * the same rules for constructs used as a library; a configuration that passes these checks never
 * trips them. Unpinned images are refused by the schema (config/images.ts), and every container's
 * memory limit comes from a schema field with a minimum, so neither needs a rule here.
 */
export function policyChecks(
  environments: ParsedEnvironment[],
  tenants: { file: SourceFile; tenant: TenantFile }[],
  deployments: ParsedDeployment[],
): Problem[] {
  return [
    ...environments.flatMap((e) => sharedPostgresPort(e)),
    ...environments.flatMap((e) => sharedPostgresPitrParameters(e)),
    ...environments.flatMap((e) => productionDataPorts(e, deployments)),
    ...deployments.flatMap((d) => qdrantVersionAgainstImage(d)),
    ...tenants.flatMap((t) => ignoredTenantSettings(t, deployments)),
  ];
}

/** Mirrors ProductionDataPortsPolicy: one line per environment, naming the tenants that would publish data ports. */
function productionDataPorts(environment: ParsedEnvironment, deployments: ParsedDeployment[]): Problem[] {
  const { env, file } = environment;
  if (!env.production || env.ports.allowDataPortsInProduction) return [];
  const tenants = deployments.filter((d) => d.environment === environment && portList(d.ports).some((p) => p.dataPort)).map((d) => d.tenant.name);
  if (tenants.length === 0) return [];
  const who = tenants.length === 1 ? `tenant ${tenants[0]} publishes them` : `tenants ${tenants.slice(0, -1).join(', ')} and ${tenants[tenants.length - 1]} publish them`;
  return [
    file.problem(
      ['ports', 'publish'],
      `ports.publish: environment "${env.name}" is production, and publishing ports would expose Postgres, PgBouncer and Redis outside the Docker network (${who}): set ports.publish: false, or ports.allowDataPortsInProduction: true if you really mean it`,
    ),
  ];
}

/** Server parameters the shared server's archive sets itself: the environment's own value would be silently replaced, or break streaming. */
function sharedPostgresPitrParameters({ env, file }: ParsedEnvironment): Problem[] {
  if (!sharedServerArchive(env)) return [];
  const parameters = env.sharedPostgres?.parameters ?? {};
  return PITR_PARAMETER_NAMES.filter((name) => Object.hasOwn(parameters, name) && file.has(['sharedPostgres', 'parameters', name])).map((name) => {
    const at = ['sharedPostgres', 'parameters', name];
    return file.problem(
      at,
      `${dotted(at)}: point-in-time recovery of the shared server (on: backup.defaults.postgres.pitr) sets ${name} itself; remove it (backup.defaults.postgres.pitr.maxSlotWalKeepMb sets max_slot_wal_keep_size), or turn PITR off there`,
      { key: true },
    );
  });
}

function sharedPostgresPort({ env, file }: ParsedEnvironment): Problem[] {
  const hostPort = env.sharedPostgres?.hostPort;
  if (hostPort === undefined) return [];
  const at = ['sharedPostgres', 'hostPort'];
  if (!env.ports.publish) {
    return [file.problem(at, `sharedPostgres.hostPort: ${hostPort} would be ignored: this environment publishes no ports (ports.publish is false): set ports.publish: true, or remove hostPort`)];
  }
  if (env.production && !env.ports.allowDataPortsInProduction) {
    return [
      file.problem(at, `sharedPostgres.hostPort: environment "${env.name}" is production, and this would expose every shared-server tenant's databases outside the Docker network: remove hostPort, or set ports.allowDataPortsInProduction: true if you really mean it`),
    ];
  }
  return [];
}

/** images.qdrant replaces the image a tenant's `qdrant.version` would choose: a different version there would be ignored. */
function qdrantVersionAgainstImage(d: ParsedDeployment): Problem[] {
  const { env } = d.environment;
  const qdrant = d.services.qdrant;
  const pinned = env.images.qdrant;
  const tag = pinned === undefined ? undefined : imageTag(pinned);
  if (!qdrant?.enabled || tag === undefined || tag === qdrant.version || tag.startsWith(`${qdrant.version}-`)) return [];
  const at = ['services', 'qdrant', 'version'];
  const where = d.file.has(d.locate(at)) ? d.locate(at) : d.file.has(at) ? at : undefined;
  if (!where) return [];
  return [
    d.file.problem(where, `${dotted(where)}: "${qdrant.version}" would be ignored: environment "${env.name}" pins images.qdrant "${pinned}", which every Qdrant there runs: make the two agree, or remove images.qdrant from ${env.name}.yaml`),
  ];
}

const SERVICE_LABELS: Record<BackupService, string> = { postgres: 'Postgres', redis: 'Redis', qdrant: 'Qdrant', minio: 'MinIO' };

/** Postgres settings that only a dedicated server reads: a shared server has the environment's. */
const DEDICATED_POSTGRES_SETTINGS = ['version', 'parameters', 'memoryMb', 'cpus', 'storage'] as const;

/**
 * Settings a tenant writes that no environment would use. A setting in an override is checked in
 * its environment; one in the base is wrong only when every environment of the tenant ignores it
 * (a base setting used somewhere is not silently ignored), and only when all of them are checked together.
 */
function ignoredTenantSettings(t: { file: SourceFile; tenant: TenantFile }, deployments: ParsedDeployment[]): Problem[] {
  const mine = deployments.filter((d) => d.file === t.file);
  // Environments that could not be read (or were checked apart) might use a base setting.
  const complete = t.tenant.environments.every((name) => mine.some((d) => d.environment.env.name === name));
  const problems: Problem[] = [];
  const check = (at: ConfigPath, ignored: (d: ParsedDeployment) => Ignored | undefined) => {
    for (const d of mine) {
      const override = ['overrides', d.environment.env.name, ...at];
      const why = ignored(d);
      if (why && t.file.has(override)) problems.push(t.file.problem(override, `${dotted(override)}: would be ignored: in environment "${d.environment.env.name}" ${why.reason}: ${why.fix}`, { key: true }));
    }
    if (!complete || !t.file.has(at)) return;
    const whys = mine.map((d) => ignored(d));
    if (whys.some((w) => w === undefined)) return;
    const names = mine.map((d) => `"${d.environment.env.name}"`);
    const where = names.length === 1 ? `environment ${names[0]}` : `environments ${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
    const reasons = whys.map((w) => w!.reason);
    const reason = new Set(reasons).size === 1 ? reasons[0] : reasons.map((r, i) => `${names[i]}: ${r}`).join('; ');
    problems.push(t.file.problem(at, `${dotted(at)}: would be ignored: in ${where} ${reason}: ${whys[0]!.fix}`, { key: true }));
  };

  for (const service of BACKUP_SERVICES) check(['backup', service], (d) => nothingToBackUp(d, service));
  for (const setting of PITR_SETTINGS) {
    check(['backup', 'postgres', 'pitr', setting], (d) =>
      onSharedServer(d)
        ? {
            reason: `the tenant's databases live on the environment's shared server (services.postgres.mode: shared), whose point-in-time recovery the environment's archive gives every tenant on it, set by backup.defaults.postgres.pitr in ${d.environment.file.displayName}`,
            fix: 'remove it, or use mode: dedicated',
          }
        : undefined,
    );
  }
  check(['backup', 'postgres', 'pitr', 'reason'], (d) =>
    !pitrCovers(d)
      ? undefined
      : onSharedServer(d)
        ? { reason: "point-in-time recovery is on (the environment's archive of its shared server covers the tenant; a reason is for when it is off)", fix: 'remove it' }
        : { reason: 'point-in-time recovery is on (a reason is for turning it off)', fix: 'remove it, or set backup.postgres.pitr.enabled: false' },
  );
  for (const setting of DEDICATED_POSTGRES_SETTINGS) {
    check(['services', 'postgres', setting], (d) =>
      d.services.postgres?.enabled && d.services.postgres.mode === 'shared'
        ? { reason: `the tenant's databases live on the environment's shared server (services.postgres.mode: shared), whose ${setting} the environment file sets`, fix: 'remove it, or use mode: dedicated' }
        : undefined,
    );
  }
  return problems;
}

interface Ignored {
  readonly reason: string;
  readonly fix: string;
}

/** Why a service's backup settings have nothing to apply to in this deployment (no backup job is made then). */
function nothingToBackUp(d: ParsedDeployment, service: BackupService): Ignored | undefined {
  const settings = d.services[service];
  const label = SERVICE_LABELS[service];
  if (!settings) return { reason: `the tenant has no ${label} (no services.${service})`, fix: `remove it, or add services.${service}` };
  if (!settings.enabled) return { reason: `the tenant's ${label} is off (services.${service}.enabled: false)`, fix: 'remove it' };
  if (!holdsBackupData(d.services, service)) return { reason: "the tenant's MinIO has no buckets, so there is nothing to back up", fix: 'remove it, or list buckets under services.minio.buckets' };
  return undefined;
}
