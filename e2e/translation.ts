/**
 * THE translation table: every change the drill makes to what a container would get from Docker,
 * so that it can run as a local process on this machine. Nothing outside this file alters a
 * container's files, command, entrypoint, environment or user; the launcher runs the result
 * as it is. The table is printed at the start of every drill report.
 *
 * Why each change is needed is in its row. The common cause: there is no Docker network (so no
 * container hostnames and one shared set of ports on 127.0.0.1), no container filesystem (so
 * container paths become temp dirs) and no images (so Debian's binaries stand in).
 */
import { deploymentName } from '../config/naming';
import { RESTORE_ON_START_SCRIPT } from '../runtime/render/postgres-restore-on-start';
import * as fs from 'fs';
import * as path from 'path';
import type { RenderedFile } from '../runtime/render/types';
import { evaluateValue, generateSecrets, SynthesizedStack } from './terraform';
import { TenantContainer, tenantContainers } from './tenant';

/** A compiled agent CLI the drill runs instead of the checkout's dist (one its postgres user can read). */
export const DRILL_AGENT_CLI_ENV = 'TENANTRY_DRILL_AGENT_CLI';

/** Services the drill starts; the others have no binary here (see the `not run` rows). */
export const RUN_SERVICES = ['postgres', 'pgbouncer', 'redis', 'sentinel', 'backup'] as const;

/** How a translated container is started. */
export type LaunchKind =
  /** `argv` as is (its program is a shell running the uploaded start script, or the agent). */
  | 'exec'
  /** The official Postgres image's docker-entrypoint.sh, emulated step by step (postgres-entrypoint.ts). */
  | 'postgres-image-entrypoint';

export interface LocalContainer {
  name: string;
  service: string;
  launch: LaunchKind;
  /** Program and arguments: the entrypoint and command, translated. */
  argv: string[];
  env: Record<string, string>;
  /** Uploaded files at their local paths. */
  files: RenderedFile[];
  /** Local directories standing in for the container's paths (created before start). */
  dirs: string[];
  user: 'postgres' | 'root';
  /** Local port of each internal port. */
  ports: Record<number, number>;
  /** Local port of the service's first internal port: where it accepts connections. */
  port: number;
  healthcheck?: string;
  /** Run to completion, as root with `env`, before the container's program (a wrapper the translation split off). */
  preStart?: string[];
}

/** One row: what changes, where, from what to what, and why. `apply` is what the code does. */
export interface TranslationRow {
  change: string;
  /** Container names the row applies to, or '*' for every container the drill runs. */
  scope: string[] | '*';
  from: string;
  to: string;
  why: string;
  apply: Apply;
}

type Apply =
  /** Replace in file contents, file locations, argv, env values and the healthcheck. */
  | { text: RegExp; replacement: string }
  /** Set environment variables (overriding the image's or the container's). */
  | { env: Record<string, string> }
  /** Arguments appended to the command. */
  | { appendArgs: string[] }
  /** The image's entrypoint, which the synthesized container keeps, as a local program. */
  | { imageEntrypoint: string[]; launch: LaunchKind; /** The container's own entrypoint only wraps the image's: replace it too. */ replacesWrapper?: boolean }
  | { user: 'postgres' | 'root' }
  /** Applied while reading the stack (tenant.ts evaluates strings with these values). */
  | { secret: string }
  | { notRun: true }
  /** A Docker runtime behaviour the drill does not reproduce. */
  | { notReproduced: true };

export interface DrillLayout {
  environment: string;
  tenant: string;
  /** Temp dir owned by the postgres OS user; every container path maps below it. */
  root: string;
  /** The repository, whose compiled agent stands in for the backup image. */
  repoDir: string;
  /** Debian's PostgreSQL bin dir (initdb, postgres, pg_dump, …). */
  postgresBinDir: string;
  /** Hands out a free port on 127.0.0.1 below 32768. */
  freePort: () => Promise<number>;
}

export interface Translation {
  rows: TranslationRow[];
  /** Every container of the tenant, translated; those with a `notRun` row are absent. */
  containers: LocalContainer[];
  /** The tenant's containers as Docker would create them (secrets filled in), untranslated. */
  original: TenantContainer[];
  /** Generated value per random_password resource. */
  secrets: Record<string, string>;
  /**
   * The tenant's output (`tenant_<name>`: database URLs, sentinels, passwords), evaluated and
   * with the address rows applied: what an application here is handed.
   */
  output: TenantOutput;
}

/** The parts of the tenant output the drill's application-like clients use. */
export interface TenantOutput {
  database_urls: Record<string, string>;
  redis?: { master_name: string; password: string; sentinel_password: string; sentinels: string[] };
}

const LOCALHOST = '127.0.0.1';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Container paths that are neither volumes nor upload dirs but are used by the image or the
 * rendered scripts, so they need a local stand-in too.
 */
const IMAGE_PATHS: Readonly<Record<string, readonly string[]>> = {
  postgres: ['/var/run/postgresql'],
  pgbouncer: ['/tmp/pgbouncer'],
  // The redis image declares VOLUME /data: sentinels get an anonymous volume there.
  sentinel: ['/data'],
};

/**
 * The image entrypoint each run service keeps (when the container sets none) and what stands in
 * for it here.
 */
function imageEntrypointRows(containers: TenantContainer[], layout: DrillLayout): TranslationRow[] {
  const rows: TranslationRow[] = [];
  const postgres = containers.filter((c) => c.service === 'postgres' && !c.entrypoint).map((c) => c.name);
  if (postgres.length > 0) {
    rows.push({
      change: 'image entrypoint',
      scope: postgres,
      from: 'postgres image: docker-entrypoint.sh postgres <command>',
      to: 'e2e/postgres-entrypoint.ts: initdb --auth=scram-sha-256 with POSTGRES_PASSWORD, temp server (socket only), /docker-entrypoint-initdb.d/* with the container env, stop, then postgres <command>',
      why: 'no image; the same steps in the same order (initdb here also requires the password on the local socket, which the image trusts)',
      apply: { imageEntrypoint: [], launch: 'postgres-image-entrypoint' },
    });
  }
  const wrapped = containers.filter((c) => c.service === 'postgres' && c.entrypoint?.[1] === RESTORE_ON_START_SCRIPT).map((c) => c.name);
  if (wrapped.length > 0) {
    rows.push({
      change: 'image entrypoint',
      scope: wrapped,
      from: `/bin/sh ${RESTORE_ON_START_SCRIPT} docker-entrypoint.sh postgres <command> (point-in-time recovery: applies a prepared restore, then the image's entrypoint)`,
      to: '/bin/sh <the script> true (as root, with the container env: applies a prepared restore), then e2e/postgres-entrypoint.ts as for the image entrypoint',
      why: 'the script ends by exec-ing its arguments, the image\'s entrypoint, which has no program here: it execs `true` instead and the emulated entrypoint follows',
      apply: { imageEntrypoint: [], launch: 'postgres-image-entrypoint', replacesWrapper: true },
    });
  }
  const agents = containers.filter((c) => c.service === 'backup' && !c.entrypoint).map((c) => c.name);
  if (agents.length > 0) {
    // The agent runs as the postgres user (restores run recovery as it); a checkout it cannot
    // enter (a private clone in CI) hands it a standalone copy instead (test/e2e/drill.test.ts).
    const cli = process.env[DRILL_AGENT_CLI_ENV] || path.join(layout.repoDir, 'dist', 'runtime', 'agent', 'cli.js');
    rows.push({
      change: 'image entrypoint',
      scope: agents,
      from: 'backup image (runtime/agent/Dockerfile): /sbin/tini -- tenantry-entrypoint <command> (chown /backups, then su-exec tenantry tenantry-agent <command>)',
      to: `${process.execPath} ${cli} <command>`,
      why: 'the image is built from this repository; the drill runs the compiled agent CLI directly (no tini: the drill reaps and stops its own children; entrypoint.sh is tested in test/agent/entrypoint.test.ts)',
      apply: { imageEntrypoint: [process.execPath, cli], launch: 'exec' },
    });
    rows.push({
      change: 'program in healthcheck',
      scope: agents,
      from: 'tenantry-agent',
      to: `${process.execPath} ${cli}`,
      why: 'the same program, not installed on PATH here',
      apply: { text: /(?<![\w/.-])tenantry-agent(?![\w-])/g, replacement: `${process.execPath} ${cli}` },
    });
  }
  return rows;
}

/** '*' when the names are every container the drill runs, else the names. */
function scopeOf(names: string[], run: TenantContainer[]): TranslationRow['scope'] {
  return run.every((c) => names.includes(c.name)) ? '*' : names;
}

/** `row` for the containers of `service`, or no row when the run has none. */
function serviceRow(run: TenantContainer[], service: string, { change, ...row }: Omit<TranslationRow, 'scope'>): TranslationRow[] {
  const names = run.filter((c) => c.service === service).map((c) => c.name);
  return names.length > 0 ? [{ change, scope: names, ...row }] : [];
}

/** What Docker does around the process that the drill does not do. */
function runtimeRows(run: TenantContainer[]): TranslationRow[] {
  const rows: TranslationRow[] = [];
  const restarting = run.filter((c) => c.runtime.restart && c.runtime.restart !== 'no');
  if (restarting.length > 0) {
    rows.push({
      change: 'restart policy',
      scope: scopeOf(restarting.map((c) => c.name), run),
      from: `restart: ${[...new Set(restarting.map((c) => c.runtime.restart))].join(', ')}`,
      to: 'not reproduced: a process that dies stays down (the failover benchmark restarts it itself)',
      why: 'the Redis step kills the master to model losing its host; Docker would restart a killed process within about a second, before down-after-milliseconds, and no failover would happen',
      apply: { notReproduced: true },
    });
  }
  const limited = run.filter((c) => c.runtime.memoryMb !== undefined);
  if (limited.length > 0) {
    rows.push({
      change: 'memory limit',
      scope: scopeOf(limited.map((c) => c.name), run),
      from: limited.map((c) => `${c.name.split('-').slice(2).join('-')} ${c.runtime.memoryMb} MB`).join(', '),
      to: 'not enforced',
      why: 'no cgroup per process here; the drill\'s data sets are small',
      apply: { notReproduced: true },
    });
  }
  const published = run.filter((c) => c.runtime.published.length > 0);
  if (published.length > 0) {
    rows.push({
      change: 'published ports',
      scope: scopeOf(published.map((c) => c.name), run),
      from: published.flatMap((c) => c.runtime.published).join(', '),
      to: 'not published: clients use the local ports of the address rows',
      why: 'one loopback, nothing reachable from outside',
      apply: { notReproduced: true },
    });
  }
  const checked = run.filter((c) => c.healthcheck);
  if (checked.length > 0) {
    rows.push({
      change: 'healthcheck',
      scope: scopeOf(checked.map((c) => c.name), run),
      from: 'CMD-SHELL every 10 s by Docker',
      to: 'run once by the drill after every container started, with the container\'s env and user',
      why: 'no Docker daemon watching',
      apply: { notReproduced: true },
    });
  }
  return rows;
}

/** Which binaries, which environment and which OS user stand in for the images'. */
function userAndEnvRows(run: TenantContainer[], layout: DrillLayout): TranslationRow[] {
  const rows: TranslationRow[] = [];
  const serverPath = [layout.postgresBinDir, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
  rows.push({
    change: 'image → Debian binaries',
    scope: '*',
    from: 'the image PATH (postgres 16, pgbouncer 1.23, redis 7.4, busybox)',
    to: `PATH=${serverPath} (PostgreSQL 15, pgbouncer 1.18 in /usr/sbin, redis 7.0, dash + GNU tools)`,
    why: 'no image can be pulled; the start scripts call their programs through PATH',
    apply: { env: { PATH: serverPath } },
  });
  rows.push({
    change: 'env',
    scope: '*',
    from: 'HOME from the image user; HOSTNAME=<container name>',
    to: `HOME=${layout.root}; no HOSTNAME`,
    why: 'nothing here reads HOSTNAME; HOME must be a directory every server user can use',
    apply: { env: { HOME: layout.root } },
  });
  rows.push(...serviceRow(run, 'postgres', {
    change: 'image env',
    from: 'LANG=en_US.utf8 (image ENV); psql in init scripts finds /var/run/postgresql by default',
    to: 'LANG=C.UTF-8; PGHOST=/var/run/postgresql (the path row maps it)',
    why: 'Debian here has only the C locales; the socket dir is a temp dir here (path row), so psql is told where',
    apply: { env: { LANG: 'C.UTF-8', PGHOST: '/var/run/postgresql' } },
  }));
  const servers = run.filter((c) => c.service !== 'backup').map((c) => c.name);
  rows.push({
    change: 'user',
    scope: servers,
    from: 'the image user (postgres via gosu, pgbouncer\'s postgres user, root for the redis start scripts until they drop to redis)',
    to: 'OS user postgres',
    why: 'pgbouncer refuses root and the test harness never runs servers as root',
    apply: { user: 'postgres' },
  });
  rows.push(...serviceRow(run, 'backup', {
    change: 'user',
    from: 'the agent process as user tenantry (uid 10001, after the entrypoint chowns /backups)',
    to: 'OS user postgres, owner of the backup dir the drill creates',
    why: 'no tenantry user exists on this machine; like the image\'s, a user that is not root: an agent run as root runs the recovery server as postgres, which cannot read the WAL its receiver wrote',
    apply: { user: 'postgres' },
  }));

  return rows;
}

/**
 * Builds the table for one tenant of a synthesized stack, and applies it. Ports are allocated here
 * (free ports on 127.0.0.1), so the printed table holds the actual values.
 */
export async function translateTenant(stack: SynthesizedStack, layout: DrillLayout): Promise<Translation> {
  const rows: TranslationRow[] = [];
  const secrets = generateSecrets(stack);
  // Only the tenant's own secrets are listed (other tenants' values are generated but unused).
  const tenantJson = JSON.stringify([stack.containers.filter((c) => c.labels?.some((l) => l.label === 'tenantry.tenant' && l.value === layout.tenant)), stack.outputs[`tenant_${layout.tenant}`]]);
  for (const [id, spec] of Object.entries(stack.randomPasswords).filter(([id]) => tenantJson.includes(`random_password.${id}.result`))) {
    rows.push({
      change: 'secret',
      scope: '*',
      from: `\${random_password.${id}.result}`,
      to: `a value generated here: ${spec.length} chars${spec.special === false ? ', no specials' : ''}, one per resource, the same in every reference`,
      why: 'the random provider cannot run; Terraform substitutes one result per resource',
      apply: { secret: id },
    });
  }
  // Unescaped template text in an upload is an error here: Terraform would evaluate it.
  const original = tenantContainers(stack, layout.tenant, secrets);
  const runs = (c: TenantContainer) => (RUN_SERVICES as readonly string[]).includes(c.service);
  const run = original.filter(runs);

  for (const c of original.filter((c) => !runs(c))) {
    rows.push({ change: 'not run', scope: [c.name], from: c.name, to: '(not started)', why: `no ${c.service} program here (only its image has one); its address still gets a free port nobody listens on`, apply: { notRun: true } });
  }
  rows.push(...runtimeRows(run));
  // Programs, users and environment first: the text rows below then also map the container
  // paths these name (PGHOST=/var/run/postgresql, backupDir in TENANTRY_AGENT_CONFIG_JSON).
  rows.push(...imageEntrypointRows(run, layout), ...userAndEnvRows(run, layout));

  // Addresses: every container is a hostname on the Docker network; here all share 127.0.0.1.
  const ports = new Map<string, number>();
  const taken = new Set(original.flatMap((c) => c.internalPorts));
  for (const c of original) {
    for (const internal of c.internalPorts) {
      let port = await layout.freePort();
      // A local port equal to some internal port would be rewritten again by an own-port row.
      for (let i = 0; taken.has(port) && i < 20; i++) port = await layout.freePort();
      taken.add(port);
      ports.set(`${c.name}:${internal}`, port);
      rows.push({
        change: 'address',
        scope: '*',
        from: `${c.name} …${internal}`,
        to: `${LOCALHOST} …${port}`,
        why: 'no Docker network: the hostname followed by its port in any syntax (host:port, "host port", host=… port=…, JSON host/port)',
        apply: { text: new RegExp(`(?<![\\w.-])${escapeRegExp(c.name)}((?:["':=,\\s]|port)+)${internal}(?!\\d)`, 'g'), replacement: `${LOCALHOST}$1${port}` },
      });
    }
  }
  for (const c of original) {
    rows.push({
      change: 'hostname',
      scope: '*',
      from: c.name,
      to: LOCALHOST,
      why: 'announced names (replica-announce-ip, sentinel announce-ip) and any other mention: one host here',
      apply: { text: new RegExp(`(?<![\\w.-])${escapeRegExp(c.name)}(?![\\w-])`, 'g'), replacement: LOCALHOST },
    });
  }
  for (const c of run) {
    for (const internal of c.internalPorts) {
      const port = ports.get(`${c.name}:${internal}`)!;
      rows.push({
        change: 'own port',
        scope: [c.name],
        from: String(internal),
        to: String(port),
        why: 'every container has its ports to itself; here they share one loopback',
        apply: { text: new RegExp(`(?<![\\w.-])${internal}(?!\\w)`, 'g'), replacement: String(port) },
      });
    }
    if (c.service === 'redis' && c.healthcheck?.includes('redis-cli ')) {
      const port = ports.get(`${c.name}:6379`)!;
      rows.push({ change: 'own port', scope: [c.name], from: 'redis-cli (default port 6379)', to: `redis-cli -p ${port}`, why: 'the healthcheck relies on the default port', apply: { text: /redis-cli (?!-p )/g, replacement: `redis-cli -p ${port} ` } });
    }
    if (c.service === 'postgres') {
      const port = ports.get(`${c.name}:5432`)!;
      rows.push({
        change: 'server settings',
        scope: [c.name],
        from: "the image's listen_addresses='*', port 5432, socket in /var/run/postgresql",
        to: `-c listen_addresses=${LOCALHOST} -c port=${port} -c unix_socket_directories=/var/run/postgresql (the path row below maps it)`,
        why: 'loopback only, a free port; appended after the synthesized -c arguments, which are kept',
        apply: { appendArgs: ['-c', `listen_addresses=${LOCALHOST}`, '-c', `port=${port}`, '-c', 'unix_socket_directories=/var/run/postgresql'] },
      });
    }
  }
  rows.push({
    change: 'listen address',
    scope: '*',
    from: '0.0.0.0',
    to: LOCALHOST,
    why: 'loopback only: nothing the drill starts is reachable from outside',
    apply: { text: /(?<![\d.])0\.0\.0\.0(?![\d.])/g, replacement: LOCALHOST },
  });

  for (const c of run) {
    const uploadDirs = c.files.map((f) => path.posix.dirname(f.path));
    const containerPaths = [...new Set([...c.volumes, ...uploadDirs, ...(IMAGE_PATHS[c.service] ?? [])])]
      // Longest first, so /var/lib/postgresql/data wins over a shorter prefix of it.
      .sort((a, b) => b.length - a.length);
    for (const containerPath of containerPaths) {
      // Named by the part after <env>-<tenant>-, so local paths never contain a container hostname.
      const localOf = (owner: TenantContainer, at: string) => path.join(layout.root, owner.name.slice(`${deploymentName(layout.environment, layout.tenant)}-`.length), at);
      const writer = sharedVolumeWriter(run, c, containerPath);
      const local = writer ? localOf(writer.container, writer.path) : localOf(c, containerPath);
      rows.push({
        change: 'path',
        scope: [c.name],
        from: containerPath,
        to: local,
        why: writer
          ? `volume shared with ${writer.container.name} (the same host path or volume, mounted there at ${writer.path}): its temp dir`
          : c.volumes.includes(containerPath) ? 'volume: a temp dir instead of the bind path/volume' : 'container filesystem: a temp dir per container',
        apply: { text: new RegExp(`(?<![\\w./-])${escapeRegExp(containerPath)}(?=[/\\s'"]|$)`, 'gm'), replacement: local },
      });
    }
  }

  const containers = run.map((c) => applyRows(c, rows, ports));
  const outputName = `tenant_${layout.tenant}`;
  if (stack.outputs[outputName] === undefined) throw new Error(`${stack.file}: no output ${outputName}`);
  const output = mapStrings(evaluateValue(stack.outputs[outputName], secrets, `output ${outputName}`), (s) =>
    rows.filter((r) => r.scope === '*').reduce((text, r) => ('text' in r.apply ? text.replace(r.apply.text, r.apply.replacement) : text), s),
  ) as TenantOutput;
  const result: Translation = {
    rows,
    containers,
    original,
    secrets,
    output,
  };
  checkNothingLeft(result, layout.root);
  return result;
}

/**
 * The container that mounts the same host path or volume as `c` does at `at`, writable, when `c`
 * mounts it read-only (the Postgres container reading the backup volume): both must see one dir.
 */
function sharedVolumeWriter(run: TenantContainer[], c: TenantContainer, at: string): { container: TenantContainer; path: string } | undefined {
  const mine = c.volumeSources[at];
  if (!mine?.readOnly) return undefined;
  for (const other of run) {
    if (other === c) continue;
    const found = Object.entries(other.volumeSources).find(([, v]) => v.source === mine.source && !v.readOnly);
    if (found) return { container: other, path: found[0] };
  }
  return undefined;
}

function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)]));
  return value;
}

function inScope(row: TranslationRow, container: string): boolean {
  return row.scope === '*' || row.scope.includes(container);
}

/** Applies every row in table order; text rows also reach env values and args added by earlier rows. */
function applyRows(c: TenantContainer, rows: TranslationRow[], ports: Map<string, number>): LocalContainer {
  let entrypoint = c.entrypoint;
  let launch: LaunchKind = 'exec';
  let command = [...(c.command ?? [])];
  let env = { ...c.env };
  let user: LocalContainer['user'] = 'root';
  let files = c.files.map((f) => ({ ...f }));
  let healthcheck = c.healthcheck;
  let preStart: string[] | undefined;
  const dirs: string[] = [];
  for (const row of rows.filter((r) => inScope(r, c.name))) {
    const apply = row.apply;
    if ('text' in apply) {
      const edit = (s: string) => s.replace(apply.text, apply.replacement);
      files = files.map((f) => ({ ...f, path: edit(f.path), content: edit(f.content) }));
      entrypoint = entrypoint?.map(edit);
      preStart = preStart?.map(edit);
      command = command.map(edit);
      env = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, edit(v)]));
      healthcheck = healthcheck === undefined ? undefined : edit(healthcheck);
      if (row.change === 'path') dirs.push(row.to);
    } else if ('env' in apply) {
      env = { ...env, ...apply.env };
    } else if ('appendArgs' in apply) {
      command = [...command, ...apply.appendArgs];
    } else if ('imageEntrypoint' in apply) {
      launch = apply.launch;
      // The wrapper (a shell and its script) runs first with `true` in place of what it would exec.
      if (entrypoint && apply.replacesWrapper) preStart = [...entrypoint.slice(0, 2), 'true'];
      if (!entrypoint || apply.replacesWrapper) entrypoint = apply.imageEntrypoint;
    } else if ('user' in apply) {
      user = apply.user;
    }
  }
  const internal = c.internalPorts;
  const localPorts = Object.fromEntries(internal.map((p) => [p, ports.get(`${c.name}:${p}`)!]));
  return {
    name: c.name,
    service: c.service,
    launch,
    argv: [...(entrypoint ?? []), ...command],
    env,
    files,
    dirs: [...new Set(dirs)],
    user,
    ports: localPorts,
    port: localPorts[internal[0]],
    healthcheck,
    ...(preStart ? { preStart } : {}),
  };
}

/** A container hostname, a container path or 0.0.0.0 left anywhere means a row is missing. */
function checkNothingLeft(t: Translation, root: string): void {
  const names = t.original.map((c) => c.name);
  const problems: string[] = [];
  for (const c of t.containers) {
    const texts: [string, string][] = [
      ...c.files.map((f): [string, string] => [`file ${f.path}`, f.content]),
      ['argv', c.argv.join(' ')],
      ['env', Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join('\n')],
      ['healthcheck', c.healthcheck ?? ''],
      ['pre-start', (c.preStart ?? []).join(' ')],
    ];
    for (const [where, text] of texts) {
      for (const name of names) if (new RegExp(`(?<![\\w.-])${escapeRegExp(name)}(?![\\w-])`).test(text)) problems.push(`${c.name} ${where}: still names ${name}`);
      if (/(?<![\d.])0\.0\.0\.0(?![\d.])/.test(text)) problems.push(`${c.name} ${where}: still listens on 0.0.0.0`);
    }
    for (const file of c.files) {
      if (!file.path.startsWith(`${root}/`)) problems.push(`${c.name}: file ${file.path} has no local path (no path row)`);
    }
  }
  if (problems.length > 0) throw new Error(`the translation table misses something:\n  ${problems.join('\n  ')}`);
}

/** The table as text, for the report: one line per row; a reason is printed once per run of rows sharing it. */
export function formatTable(rows: TranslationRow[]): string {
  const scope = (r: TranslationRow) => (r.scope === '*' ? 'all' : r.scope.join(', '));
  const lines: string[] = [];
  rows.forEach((r, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${r.change.padEnd(16)} ${scope(r)}: ${r.from}  →  ${r.to}`);
    if (i + 1 === rows.length || rows[i + 1].why !== r.why) lines.push(`       why: ${r.why}`);
  });
  return lines.join('\n');
}

/** Writes a translated container's files and creates its dirs (owned by uid/gid). */
export function materialize(c: LocalContainer, owner: { uid: number; gid: number }): void {
  for (const dir of c.dirs) {
    fs.mkdirSync(dir, { recursive: true });
    fs.chownSync(dir, owner.uid, owner.gid);
  }
  for (const file of c.files) {
    fs.writeFileSync(file.path, file.content, { mode: file.executable ? 0o755 : 0o644 });
  }
}
