import * as fs from 'fs';
import * as path from 'path';
import type { z } from 'zod';
import { policyChecks } from './checks/policy';
import { crossCheck } from './cross-checks';
import { describeIssues, describeValue } from './issues';
import { resolvePitrSettings, sharedArchiveUsesOffsite, sharedServerArchive, stripUndefined } from './pitr';
import { BackupJobConfig, DEFAULT_BACKUP_JOBS, EnvironmentConfig, holdsBackupData, OffsiteTargetConfig, PitrConfig, StorageConfig, TenantConfig, TenantryConfig } from './model';
import { offsiteCredentialName, offsitePrefix, perTenantBucketName, usesOffsite } from './offsite';
import type { ParsedDeployment, ParsedEnvironment } from './parsed';
import { publishedPorts, slotCount } from './ports';
import {
  BACKUP_SERVICES,
  EnvironmentFile,
  environmentSchema,
  TenantFile,
  tenantEnvironmentSchema,
  tenantFileSchema,
} from './schema';
import { ConfigPath, Problem, sortProblems, SourceFile } from './source';
import { SHARED_TENANT } from './storage-layout';

export type LoadResult = { ok: true; config: TenantryConfig } | { ok: false; problems: Problem[] };

/** The config root: TENANTRY_CONFIG_DIR, or the working directory. */
export function configRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.TENANTRY_CONFIG_DIR || '.');
}

/**
 * Reads `environments/*.yaml` and `tenants/*.yaml` under `root` and validates everything,
 * collecting every problem in every file rather than stopping at the first. Relative paths in the
 * files resolve against `home`: a copy of the configuration read from elsewhere (an older commit
 * checked out in a temporary worktree) must resolve them where the configuration lives.
 */
export function loadConfig(root: string, home: string = root): LoadResult {
  const problems: Problem[] = [];
  const envFiles = readYamlFolder(root, 'environments', problems);
  const tenantFiles = readYamlFolder(root, 'tenants', problems);

  const environments = envFiles.flatMap((file) => parseEnvironment(home, file, problems));
  const tenants = tenantFiles.flatMap((file) => parseTenantFile(file, problems));
  const byName = new Map(environments.map((e) => [e.env.name, e]));
  const envNames = new Set(byName.keys());
  const deployments = tenants.flatMap(({ file, tenant }) =>
    unique(tenant.environments)
      .filter((name) => envNames.has(name))
      .flatMap((name) => parseDeployment(file, tenant, byName.get(name)!, problems)),
  );
  // A tenant file with a broken top-level field still has its services checked, so one run
  // reports every problem; such a tenant takes no part in the cross-file checks.
  for (const file of tenantFiles.filter((f) => !tenants.some((t) => t.file === f))) {
    const raw = bestEffortTenant(file.data, envNames);
    for (const name of raw?.environments ?? []) parseDeployment(file, raw!, byName.get(name)!, problems);
  }

  // An environment whose file has problems still exists: tenants naming it are not wrong.
  const declared = envFiles.map((f) => declaredName(f));
  problems.push(...crossCheck(environments, tenants, deployments, declared));
  problems.push(...policyInBrokenEnvironments(home, envFiles, environments, tenants, problems));
  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  return { ok: true, config: resolve(environments, deployments) };
}

/**
 * An environment file with schema problems would hide every policy problem of its tenants there
 * until it is fixed. Its sections without problems are usable: with the broken ones left to their
 * defaults (which never make a policy stricter: production false, nothing published), its tenants'
 * settings there are validated and the policy checks run. Nothing else is derived from it.
 */
function policyInBrokenEnvironments(root: string, envFiles: SourceFile[], valid: ParsedEnvironment[], tenants: { file: SourceFile; tenant: TenantFile }[], problems: Problem[]): Problem[] {
  const taken = new Set(valid.map((e) => e.env.name));
  const usable = envFiles.filter((f) => !valid.some((e) => e.file === f)).flatMap((f) => usableSections(root, f));
  const byName = new Map(usable.filter((e) => !taken.has(e.env.name)).map((e) => [e.env.name, e]));
  const deployments = tenants.flatMap(({ file, tenant }) =>
    unique(tenant.environments)
      .filter((name) => byName.has(name))
      .flatMap((name) => parseDeployment(file, tenant, byName.get(name)!, problems)),
  );
  return policyChecks([...byName.values()], tenants, deployments);
}

function usableSections(root: string, file: SourceFile): ParsedEnvironment[] {
  if (!isMap(file.data)) return [];
  const result = environmentSchema.safeParse(file.data);
  if (result.success) return [];
  const broken = new Set(result.error.issues.flatMap((i) => (i.path.length > 0 ? [String(i.path[0])] : i.code === 'unrecognized_keys' ? i.keys : [])));
  const rest = Object.fromEntries(Object.entries(file.data).filter(([key]) => !broken.has(key)));
  const again = environmentSchema.safeParse(rest);
  return again.success ? [{ file, env: again.data, storage: resolveStorage(root, again.data.storage) }] : [];
}

function unique<T>(items: T[]): T[] {
  return items.filter((item, i) => items.indexOf(item) === i);
}

/** The environment a file means to define, even when it does not validate. */
function declaredName(file: SourceFile): string {
  const name = (file.data as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : fileStem(file);
}

/** The parts of an invalid tenant file that per-environment validation needs, when they are usable. */
function bestEffortTenant(data: unknown, envNames: Set<string>): TenantFile | undefined {
  if (!isMap(data) || !Array.isArray(data.environments)) return undefined;
  const environments = unique(data.environments.filter((e): e is string => typeof e === 'string' && envNames.has(e)));
  const services = isMap(data.services) ? data.services : {};
  const backup = isMap(data.backup) ? data.backup : undefined;
  const overrides = isMap(data.overrides) ? (Object.fromEntries(Object.entries(data.overrides).filter(([, v]) => isMap(v))) as TenantFile['overrides']) : undefined;
  return { name: String(data.name), environments, services, backup, overrides };
}

function readYamlFolder(root: string, folder: string, problems: Problem[]): SourceFile[] {
  const dir = path.join(root, folder);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    if (folder === 'environments') {
      problems.push({ file: shown(dir), line: 1, col: 1, message: `no "${folder}" folder under ${shown(root)}: create it with one YAML file per environment, or point TENANTRY_CONFIG_DIR at your config` });
    }
    return [];
  }
  const files = names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => SourceFile.read(path.join(dir, n)));
  if (folder === 'environments' && files.length === 0) {
    problems.push({ file: shown(dir), line: 1, col: 1, message: 'no environment files (*.yaml) found: add one, e.g. environments/dev.yaml' });
  }
  for (const file of files) problems.push(...file.syntaxProblems);
  return files.filter((f) => f.syntaxProblems.length === 0);
}

/** A path as problems show it: relative to the working directory when inside it. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

function validate<S extends z.ZodType>(schema: S, file: SourceFile, data: unknown, problems: Problem[], locate: (p: ConfigPath) => ConfigPath = (p) => p): z.output<S> | undefined {
  if (data === undefined || data === null || typeof data !== 'object' || Array.isArray(data)) {
    const found = data == null ? 'an empty file' : Array.isArray(data) ? 'a list' : `a single value (${describeValue(data)})`;
    problems.push(file.wholeFile(`expected a map of settings (key: value), found ${found}`));
    return undefined;
  }
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  for (const m of describeIssues(result.error.issues, schema, data, locate)) {
    problems.push(file.problem(locate(m.path), m.message, { key: m.key }));
  }
  return undefined;
}

function parseEnvironment(root: string, file: SourceFile, problems: Problem[]): ParsedEnvironment[] {
  const env = validate(environmentSchema, file, file.data, problems);
  if (!env) return [];
  checkNameMatchesFile(file, env.name, problems);
  return [{ file, env, storage: resolveStorage(root, env.storage) }];
}

function parseTenantFile(file: SourceFile, problems: Problem[]): { file: SourceFile; tenant: TenantFile }[] {
  const tenant = validate(tenantFileSchema, file, file.data, problems);
  if (!tenant) return [];
  checkNameMatchesFile(file, tenant.name, problems);
  return [{ file, tenant }];
}

/** "dev" for environments/dev.yaml. */
function fileStem(file: SourceFile): string {
  return path.basename(file.absolutePath).replace(/\.ya?ml$/, '');
}

/** One file per environment or tenant, named after it: that is how people find it. */
function checkNameMatchesFile(file: SourceFile, name: string, problems: Problem[]): void {
  const expected = fileStem(file);
  if (name !== expected) {
    problems.push(file.problem(['name'], `name: "${name}" does not match the file name "${path.basename(file.absolutePath)}": rename the file to ${name}.yaml or set name: ${expected}`));
  }
}

/** Merges the environment's override over the tenant's base settings and validates the result. */
function parseDeployment(file: SourceFile, tenant: TenantFile, environment: ParsedEnvironment, problems: Problem[]): ParsedDeployment[] {
  const env = environment.env;
  const override = tenant.overrides?.[env.name] ?? {};
  const merged = {
    services: emptySectionsAsDefaults(deepMerge(tenant.services, override.services)),
    backup: deepMerge(tenant.backup ?? {}, override.backup),
  };
  const overridden = { services: override.services, backup: override.backup };
  const locate = (at: ConfigPath): ConfigPath => (writtenIn(overridden, at) ? ['overrides', env.name, ...at] : at);
  const parsed = validate(tenantEnvironmentSchema, file, merged, problems, locate);
  if (!parsed) return [];
  const jobs = resolveBackupJobs(env, parsed);
  // A slot outside the range is reported as such; its ports would only repeat it as clashes.
  const ports =
    env.ports.publish && tenant.portSlot !== undefined && tenant.portSlot < slotCount(env.ports.from, env.ports.to)
      ? publishedPorts(parsed.services, Object.keys(jobs).length > 0, env.ports.from, tenant.portSlot)
      : {};
  return [{ file, tenant, environment, services: parsed.services, backup: parsed.backup, jobs, ports, locate }];
}

/** `redis:` with nothing under it is how people write "redis with the defaults". */
function emptySectionsAsDefaults(services: unknown): unknown {
  if (!isMap(services)) return services;
  return Object.fromEntries(Object.entries(services).map(([k, v]) => [k, v === null ? {} : v]));
}

/** Maps merge key by key; anything else (lists included) is replaced by the override. */
function deepMerge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (isMap(base) && isMap(override)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(override)) out[k] = deepMerge(base[k], v);
    return out;
  }
  return override;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Whether the override itself holds something at `at` (or a non-map ancestor that replaced it). */
function writtenIn(overridden: unknown, at: ConfigPath): boolean {
  let node = overridden;
  for (const segment of at) {
    if (!isMap(node) && !Array.isArray(node)) return node !== undefined;
    node = (node as Record<string | number, unknown>)[segment];
    if (node === undefined) return false;
  }
  return true;
}

function resolve(environments: ParsedEnvironment[], deployments: ParsedDeployment[]): TenantryConfig {
  const sorted = [...environments].sort((a, b) => a.env.name.localeCompare(b.env.name));
  const byName = new Map(environments.map((e) => [e.env.name, e.env]));
  return {
    environments: sorted.map(({ file, env, storage }): EnvironmentConfig => {
      const { backup, ...rest } = env;
      const owner = byName.get(env.backup.offsite.managedBy ?? env.name)!;
      const tenants = deployments
        .filter((d) => d.environment.env === env)
        .sort((a, b) => a.tenant.name.localeCompare(b.tenant.name))
        .map((d): TenantConfig => ({
          name: d.tenant.name,
          environment: env.name,
          source: d.file.displayName,
          services: d.services,
          backup: d.jobs,
          publishedPorts: d.ports,
          portSlot: d.tenant.portSlot,
          offsite: usesOffsite(d) ? offsiteTarget(env, owner, d.tenant.name) : undefined,
        }));
      return {
        ...rest,
        storage,
        offsite: backup.offsite,
        sharedOffsiteBucket: sharedOffsiteBucket(env, environments, deployments),
        sharedPostgresArchive: sharedArchive(env, owner),
        backupWebhook: backup.webhook,
        source: file.displayName,
        tenants,
      };
    }),
  };
}

/** `owner` is the environment whose stack declares the bucket: this one, or the one it names in managedBy. */
function offsiteTarget(env: EnvironmentFile, owner: EnvironmentFile, tenant: string): OffsiteTargetConfig {
  const settings = env.backup.offsite;
  return {
    bucket: settings.mode === 'shared' ? settings.bucket! : perTenantBucketName(settings.bucket, env.name, tenant),
    prefix: offsitePrefix(env.name, tenant),
    credentialName: offsiteCredentialName(env.name, tenant),
    region: owner.aws.region,
    endpoint: owner.backup.offsite.endpoint,
    kmsKeyArn: owner.backup.offsite.kmsKeyArn,
  };
}

/** The shared server's archive, placed off-site as a tenant named SHARED_TENANT would be: one rule for both. */
function sharedArchive(env: EnvironmentFile, owner: EnvironmentFile): EnvironmentConfig['sharedPostgresArchive'] {
  const archive = sharedServerArchive(env);
  return archive?.offsite ? { ...archive, offsiteTarget: offsiteTarget(env, owner, SHARED_TENANT) } : archive;
}

/**
 * A shared bucket exists where a tenant of this environment, or of one naming it in managedBy,
 * or the archive of such an environment's shared server, copies off-site.
 */
function sharedOffsiteBucket(env: EnvironmentFile, environments: ParsedEnvironment[], deployments: ParsedDeployment[]): EnvironmentConfig['sharedOffsiteBucket'] {
  const settings = env.backup.offsite;
  if (settings.mode !== 'shared' || settings.bucket === undefined) return undefined;
  const declared = settings.managedBy === undefined;
  const users = declared ? environments.filter((e) => e.env === env || e.env.backup.offsite.managedBy === env.name).map((e) => e.env) : [env];
  const used = users.some(sharedArchiveUsesOffsite) || deployments.some((d) => users.includes(d.environment.env) && usesOffsite(d));
  return used ? { name: settings.bucket, declared } : undefined;
}

function resolveStorage(root: string, storage: EnvironmentFile['storage']): StorageConfig {
  if (storage.kind !== 'bind') return storage;
  return { kind: 'bind', dataRoot: path.resolve(root, storage.dataRoot) };
}

function resolveBackupJobs(env: EnvironmentFile, d: Pick<ParsedDeployment, 'services' | 'backup'>): TenantConfig['backup'] {
  const jobs: TenantConfig['backup'] = {};
  for (const service of BACKUP_SERVICES) {
    const settings = d.services[service];
    if (!settings?.enabled) continue;
    if (!holdsBackupData(d.services, service)) continue;
    const base = DEFAULT_BACKUP_JOBS[service];
    const envDefault = env.backup.defaults[service] ?? {};
    const own = d.backup[service] ?? {};
    if ((own.enabled ?? envDefault.enabled ?? true) === false) continue;
    const job: BackupJobConfig = {
      schedule: own.schedule ?? envDefault.schedule ?? base.schedule,
      verifySchedule: own.verifySchedule ?? envDefault.verifySchedule ?? base.verifySchedule,
      retention: { ...base.retention, ...stripUndefined(envDefault.retention), ...stripUndefined(own.retention) },
      offsite: own.offsite ?? envDefault.offsite ?? base.offsite,
    };
    const pitr = service === 'postgres' ? resolvePitr(env, d) : undefined;
    jobs[service] = pitr ? { ...job, pitr } : job;
  }
  return jobs;
}

/**
 * The tenant's own point-in-time recovery, or undefined when it is off. A tenant on the shared
 * server has none of its own: streaming that server's WAL to one tenant's backup volume would hand
 * it every tenant's data, so the environment's archive (config/pitr.ts sharedServerArchive) covers it.
 */
function resolvePitr(env: EnvironmentFile, d: Pick<ParsedDeployment, 'services' | 'backup'>): PitrConfig | undefined {
  if (d.services.postgres?.mode !== 'dedicated') return undefined;
  return resolvePitrSettings(env, d.backup.postgres?.pitr);
}
