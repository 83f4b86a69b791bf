/**
 * Redis data nodes and Sentinels. Both start from a shell script that turns a rendered template
 * into the live config file Redis or Sentinel runs with, because:
 *   - passwords arrive only through the environment, never in an uploaded file;
 *   - Sentinel rewrites its own file, and on a failover it rewrites the nodes' files too
 *     (`CONFIG REWRITE` of `replicaof`), so the live files sit in the writable data directory;
 *   - what Sentinel recorded there must survive a restart, or a restart would undo a failover.
 */
import { requireEnvLine, shQuote, shellScript } from './shell';
import { startScriptLaunch } from './start-script';
import type { ContainerLaunch } from './types';
import { checkOptions } from './validate';

const NODE_RENDERER = 'renderRedisNode';
const SENTINEL_RENDERER = 'renderSentinel';
const DEFAULT_DATA_DIR = '/data';
const DEFAULT_CONFIG_DIR = '/usr/local/etc/redis';
/** The rendered templates, in the config directory; the start scripts build `<name>.live.conf` from them in the data directory. */
const NODE_CONFIG = 'redis';
const SENTINEL_CONFIG = 'sentinel';

/** What a data node and a Sentinel are both given: where they listen, who they are, their first master, their directories. */
export interface RedisProcessRenderOptions {
  /** 6379 for a node, 26379 for a Sentinel, in containers. */
  port: number;
  /**
   * Address to listen on.
   * @default '0.0.0.0'
   */
  listenAddr?: string;
  /** The container's own hostname (its name), announced to the master and to the Sentinels. */
  announceHost: string;
  /** The initial master: replicas replicate from it; after a failover Sentinel's live config holds the current one. */
  masterHost: string;
  masterPort: number;
  /**
   * Writable, persistent: the live config (a Sentinel rewrites its own), and a node's data and AOF.
   * @default '/data'
   */
  dataDir?: string;
  /**
   * Where the template and start script are uploaded.
   * @default '/usr/local/etc/redis'
   */
  configDir?: string;
}

export interface RedisNodeRenderOptions extends RedisProcessRenderOptions {
  /** The node's role at first start; afterwards Sentinel decides. */
  role: 'master' | 'replica';
  /** e.g. '256mb'. */
  maxmemory: string;
  /** min-replicas-to-write; 0 disables. */
  minReplicasToWrite: number;
  /** @default 10 */
  minReplicasMaxLagSeconds?: number;
}

export interface SentinelRenderOptions extends RedisProcessRenderOptions {
  masterName: string;
  quorum: number;
  downAfterMs: number;
  /** @default 60000 */
  failoverTimeoutMs?: number;
  /** @default 1 */
  parallelSyncs?: number;
}


/**
 * A shell function writing its argument as a Redis config string: double-quoted, with quotes and
 * backslashes escaped. A function, not a command, so passwords never appear in any argv.
 */
const REDIS_QUOTE_FUNCTION = `redis_quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\\\"]/\\\\&/g')"; }`;

/**
 * The official images start as root and leave it in their entrypoint, which drops to the `redis`
 * user; the start scripts replace that entrypoint, so they drop themselves. Started as root, a
 * script finds su-exec (Alpine images) or gosu (Debian images) first, builds the live config as
 * root, then hands the data directory (a fresh bind mount or NFS export belongs to root) to the
 * redis user, as the entrypoint does, and runs the server as that user. An image with neither
 * tool, or with no `redis` user, runs the server as it is, and says so in its log.
 */
const FIND_PRIVILEGE_DROP = [
  'drop=""',
  'if [ "$(id -u)" = 0 ]; then',
  '  drop="$(command -v su-exec || command -v gosu || true)"',
  '  if [ -z "$drop" ] || ! id redis >/dev/null 2>&1; then',
  '    drop=""',
  '    echo "tenantry-start: no su-exec or gosu, or no redis user, in this image: the server runs as root" >&2',
  '  fi',
  'fi',
];

/**
 * The last lines of a start script: `server` with the live config, as the redis user when `drop`
 * is set and the data directory could be given to that user. Storage where root may not chown
 * (NFS with root_squash) keeps the server running as root, as before, with a warning, instead of
 * stopping the container.
 */
function execServer(server: string, dataDir: string): string[] {
  return [
    `if [ -n "$drop" ] && ! find ${shQuote(dataDir)} \\! -user redis -exec chown redis '{}' +; then`,
    '  drop=""',
    `  echo "tenantry-start: could not give ${dataDir} to the redis user: the server runs as root" >&2`,
    'fi',
    `if [ -n "$drop" ]; then exec "$drop" redis ${server} "$live"; fi`,
    `exec ${server} "$live"`,
  ];
}

// ---------------------------------------------------------------------------------------------
// Data nodes
// ---------------------------------------------------------------------------------------------

type ResolvedProcess = Required<Pick<RedisProcessRenderOptions, 'listenAddr' | 'dataDir' | 'configDir'>>;

/** The defaults and checks of what nodes and Sentinels share. */
function resolveProcess(renderer: string, o: RedisProcessRenderOptions): ResolvedProcess {
  const resolved = { listenAddr: o.listenAddr ?? '0.0.0.0', dataDir: o.dataDir ?? DEFAULT_DATA_DIR, configDir: o.configDir ?? DEFAULT_CONFIG_DIR };
  checkOptions(renderer, { ...o, ...resolved }, { ports: ['port', 'masterPort'], hosts: ['listenAddr', 'announceHost', 'masterHost'], paths: ['dataDir', 'configDir'] });
  return resolved;
}

/**
 * What both start scripts do first, as root: find how to drop privileges, name the template and
 * the live file built from it, and define redis_quote.
 */
function liveConfigSetup(o: ResolvedProcess, config: string): string[] {
  return [
    ...FIND_PRIVILEGE_DROP,
    `template=${shQuote(`${o.configDir}/${config}.conf`)}`,
    `live=${shQuote(`${o.dataDir}/${config}.live.conf`)}`,
    REDIS_QUOTE_FUNCTION,
  ];
}

type ResolvedNode = RedisNodeRenderOptions & ResolvedProcess & { minReplicasMaxLagSeconds: number };

function resolveNode(o: RedisNodeRenderOptions): ResolvedNode {
  const resolved = { ...o, ...resolveProcess(NODE_RENDERER, o), minReplicasMaxLagSeconds: o.minReplicasMaxLagSeconds ?? 10 };
  if (!/^[0-9]+(b|k|kb|m|mb|g|gb)?$/i.test(resolved.maxmemory)) {
    throw new Error(`${NODE_RENDERER}: maxmemory must be a Redis memory size such as '256mb' (value: ${JSON.stringify(resolved.maxmemory)})`);
  }
  checkOptions(NODE_RENDERER, resolved, { atLeast: { minReplicasToWrite: 0, minReplicasMaxLagSeconds: 1 } });
  return resolved;
}

/** Where a node or Sentinel listens and keeps its files: the first lines of both templates. */
function listenAndDirLines(o: RedisProcessRenderOptions & ResolvedProcess): string[] {
  return [`port ${o.port}`, `bind ${o.listenAddr}`, `dir ${o.dataDir}`];
}

function nodeConfigText(o: ResolvedNode): string {
  return [
    '# Rendered by Tenantry. tenantry-start.sh builds the live config in the data directory from this',
    '# template and the password in the environment.',
    ...listenAndDirLines(o),
    'appendonly yes',
    `maxmemory ${o.maxmemory}`,
    '# A data store, not a cache: refuse writes when full instead of dropping keys.',
    'maxmemory-policy noeviction',
    `replica-announce-ip ${o.announceHost}`,
    '# On every node, because after a failover any of them can be the master.',
    `min-replicas-to-write ${o.minReplicasToWrite}`,
    `min-replicas-max-lag ${o.minReplicasMaxLagSeconds}`,
    ...(o.role === 'replica' ? [`replicaof ${o.masterHost} ${o.masterPort}`] : []),
    '',
  ].join('\n');
}

export function renderRedisConfig(o: RedisNodeRenderOptions): string {
  return nodeConfigText(resolveNode(o));
}

/**
 * Every setting comes from the template on every start, so a changed template always applies.
 * The one exception is the role: Sentinel records a failover by rewriting `replicaof` in the live
 * file, so once that file exists its `replicaof` line (or the lack of one) wins over the
 * template's. `masterauth` is set on the master too: after a failover it replicates like the rest.
 */
function nodeStartScript(o: ResolvedNode): string {
  return shellScript(
    ['Tenantry: starts a Redis node from its template, its last known role and REDIS_PASSWORD.'],
    [
      requireEnvLine('REDIS_PASSWORD'),
      ...liveConfigSetup(o, NODE_CONFIG),
      'role_source="$template"',
      'if [ -f "$live" ]; then role_source="$live"; fi',
      '# The live file holds the password: readable by Redis only.',
      'umask 077',
      '{',
      '  grep -v \'^replicaof \' "$template"',
      '  grep \'^replicaof \' "$role_source" || true',
      '  printf \'requirepass %s\\nmasterauth %s\\n\' "$(redis_quote "$REDIS_PASSWORD")" "$(redis_quote "$REDIS_PASSWORD")"',
      '} > "$live.next"',
      'mv -f "$live.next" "$live"',
      ...execServer('redis-server', o.dataDir),
    ],
  );
}

/** A Redis data node container: template and start script uploaded, the script as entrypoint. */
export function renderRedisNode(o: RedisNodeRenderOptions): ContainerLaunch {
  const resolved = resolveNode(o);
  return startScriptLaunch(resolved.configDir, { name: `${NODE_CONFIG}.conf`, content: nodeConfigText(resolved) }, nodeStartScript(resolved), ['REDIS_PASSWORD']);
}

// ---------------------------------------------------------------------------------------------
// Sentinels
// ---------------------------------------------------------------------------------------------

type ResolvedSentinel = SentinelRenderOptions & ResolvedProcess & { failoverTimeoutMs: number; parallelSyncs: number };

function resolveSentinel(o: SentinelRenderOptions): ResolvedSentinel {
  const resolved = { ...o, ...resolveProcess(SENTINEL_RENDERER, o), failoverTimeoutMs: o.failoverTimeoutMs ?? 60_000, parallelSyncs: o.parallelSyncs ?? 1 };
  if (!/^[A-Za-z0-9_-]+$/.test(resolved.masterName)) {
    throw new Error(`${SENTINEL_RENDERER}: masterName must be [A-Za-z0-9_-]+ (value: ${JSON.stringify(resolved.masterName)})`);
  }
  checkOptions(SENTINEL_RENDERER, resolved, { atLeast: { quorum: 1, downAfterMs: 1, failoverTimeoutMs: 1, parallelSyncs: 1 } });
  return resolved;
}

function sentinelConfigText(o: ResolvedSentinel): string {
  const name = o.masterName;
  return [
    '# Rendered by Tenantry. tenantry-start.sh builds Sentinel\'s live, writable config in the data',
    '# directory from this template, what Sentinel learned before a restart, and the passwords.',
    ...listenAndDirLines(o),
    '# Containers are known by name, and their addresses change when they are recreated. Placed',
    '# before `sentinel monitor` for Sentinels that apply lines in order (7.0 defers them).',
    'sentinel resolve-hostnames yes',
    'sentinel announce-hostnames yes',
    `sentinel announce-ip ${o.announceHost}`,
    `sentinel monitor ${name} ${o.masterHost} ${o.masterPort} ${o.quorum}`,
    `sentinel down-after-milliseconds ${name} ${o.downAfterMs}`,
    `sentinel failover-timeout ${name} ${o.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${name} ${o.parallelSyncs}`,
    '',
  ].join('\n');
}

export function renderSentinelConfig(o: SentinelRenderOptions): string {
  return sentinelConfigText(resolveSentinel(o));
}

/**
 * Settings always come from the template, so a changed quorum or timeout applies on restart.
 * What Sentinel learned comes from its live file: the current master (moved by a failover), the
 * epochs that make the other sentinels accept that master, its own id (so peers do not see a
 * stranger at a known address) and the known replicas and sentinels. Without these a restart
 * would point the sentinel back at the first master. Passwords come from the environment on each
 * start, so rotating them needs only a restart.
 */
function sentinelStartScript(o: ResolvedSentinel): string {
  const name = o.masterName;
  return shellScript(
    ['Tenantry: starts Sentinel from its template, what it learned before a restart, and the passwords.'],
    [
      requireEnvLine('REDIS_PASSWORD'),
      requireEnvLine('SENTINEL_PASSWORD'),
      ...liveConfigSetup(o, SENTINEL_CONFIG),
      '# The live file holds both passwords: readable by Sentinel only.',
      'umask 077',
      'cp "$template" "$live.next"',
      'if [ -f "$live" ]; then',
      `  master="$(awk '$1 == "sentinel" && $2 == "monitor" && $3 == "${name}" { print $4 " " $5 }' "$live")"`,
      '  if [ -n "$master" ]; then',
      `    sed -i "s/^sentinel monitor ${name} [^ ]* [^ ]* /sentinel monitor ${name} $master /" "$live.next"`,
      '  fi',
      `  grep -E '^sentinel (myid|current-epoch) |^sentinel (config-epoch|leader-epoch|known-replica|known-sentinel) ${name} ' "$live" >> "$live.next" || true`,
      'fi',
      `printf 'requirepass %s\\nsentinel auth-pass ${name} %s\\n' "$(redis_quote "$SENTINEL_PASSWORD")" "$(redis_quote "$REDIS_PASSWORD")" >> "$live.next"`,
      'mv -f "$live.next" "$live"',
      ...execServer('redis-sentinel', o.dataDir),
    ],
  );
}

/** A Sentinel container: template and start script uploaded, the script as entrypoint. */
export function renderSentinel(o: SentinelRenderOptions): ContainerLaunch {
  const resolved = resolveSentinel(o);
  return startScriptLaunch(resolved.configDir, { name: `${SENTINEL_CONFIG}.conf`, content: sentinelConfigText(resolved) }, sentinelStartScript(resolved), ['REDIS_PASSWORD', 'SENTINEL_PASSWORD']);
}
