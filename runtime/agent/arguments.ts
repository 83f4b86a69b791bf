/** The command line: `tenantry-agent <command> [arguments] [--options]`. */
import { AgentConfigSource, CONFIG_JSON_ENV, CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH } from './config';
import { UserError } from './errors';

export const USAGE = `usage: tenantry-agent <command> [--config <path>]

commands:
  serve                             run the schedules and serve GET /metrics and GET /health
  run <job> [--progress=json]       back up one job now; --progress=json: a JSON line per update
                                    (job, id, phase, bytesDone, bytesTotal, totalIsEstimate, at)
  list [job] [--json] [--offsite]   backups with time, size, status, verification, off-site copy;
                                    --offsite adds those only the off-site bucket still holds
  status [--json]                   each job's newest good backup, its age against the schedule,
                                    off-site lag, failures since, restore credential variables
  verify <backup-id>                check a backup's files (and test-restore a Postgres backup)
  verify <postgres-pitr job>        recover the newest base backup + WAL into a scratch server
                                    and compare row counts with the source at that point
  restore <job> --from <backup-id|latest> [--target <t>] [--only <name>] [--force]
          [--from-offsite] [--with-globals] [--ignore-verification]
                                    target: database (Postgres), host:port (Redis),
                                    collection (Qdrant), bucket (MinIO)
  restore <postgres-pitr job> --to-time <ISO time with zone> | --to-lsn <lsn> | --to-name <restore point> | --latest
          [--target-dir <dir> [--port <port>]]
          | [--only-databases <db,db> --into <host:port> --port <scratch port>]
                                    recover into restores/<id> and mark it pending for the
                                    Postgres container's next start (or only into <dir>, then
                                    with --port start it there on 127.0.0.1)
  health                            exit 0 if the running agent's /health is fine, 1 if not

Without --config: the JSON in $${CONFIG_JSON_ENV}, else the file $${CONFIG_PATH_ENV}, else ${DEFAULT_CONFIG_PATH}.
`;

/** How a restore to a point names its target: exactly one of these. */
export const PITR_TARGET_OPTIONS = ['to-time', 'to-lsn', 'to-name', 'latest'] as const;

type Command = 'serve' | 'run' | 'list' | 'status' | 'verify' | 'restore' | 'health' | 'help';

interface CommandSpec {
  positional: { min: number; max: number; names: string };
  values: readonly string[];
  switches: readonly string[];
}

const SPECS: Record<Command, CommandSpec> = {
  serve: { positional: { min: 0, max: 0, names: '' }, values: [], switches: [] },
  run: { positional: { min: 1, max: 1, names: '<job>' }, values: ['progress'], switches: [] },
  list: { positional: { min: 0, max: 1, names: '[job]' }, values: [], switches: ['json', 'offsite'] },
  status: { positional: { min: 0, max: 0, names: '' }, values: [], switches: ['json'] },
  verify: { positional: { min: 1, max: 1, names: '<backup-id|postgres-pitr job>' }, values: [], switches: [] },
  restore: {
    positional: { min: 1, max: 1, names: '<job>' },
    values: ['from', 'target', 'only', ...PITR_TARGET_OPTIONS.filter((o) => o !== 'latest'), 'target-dir', 'port', 'only-databases', 'into'],
    switches: ['force', 'from-offsite', 'with-globals', 'ignore-verification', 'latest'],
  },
  health: { positional: { min: 0, max: 0, names: '' }, values: [], switches: [] },
  help: { positional: { min: 0, max: 0, names: '' }, values: [], switches: [] },
};

export interface ParsedArguments {
  command: Command;
  config: AgentConfigSource;
  positional: string[];
  values: Record<string, string>;
  switches: Set<string>;
}

export function parseArguments(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArguments {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    return { command: 'help', config: { path: '' }, positional: [], values: {}, switches: new Set() };
  }
  if (!(first in SPECS)) throw new UserError(`unknown command "${first}" (commands: ${Object.keys(SPECS).filter((c) => c !== 'help').join(', ')}); see tenantry-agent --help`);
  const command = first as Command;
  const spec = SPECS[command];
  const positional: string[] = [];
  const values: Record<string, string> = {};
  const switches = new Set<string>();
  let configPath: string | undefined;

  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (name === 'config' || spec.values.includes(name)) {
      const value = inline ?? rest[++i];
      if (value === undefined || value === '') throw new UserError(`--${name} needs a value`);
      if (name === 'config') configPath = value;
      else values[name] = value;
    } else if (spec.switches.includes(name) && inline === undefined) {
      switches.add(name);
    } else {
      const known = [...spec.values, ...spec.switches].map((o) => `--${o}`).join(', ');
      throw new UserError(`unknown option --${name} for "${command}"${known ? ` (options: ${known}, --config)` : ' (only --config)'}`);
    }
  }
  const { min, max, names } = spec.positional;
  if (positional.length < min || positional.length > max) {
    throw new UserError(`"${command}" takes ${names ? names : 'no arguments'}, got ${positional.length ? positional.map((p) => `"${p}"`).join(' ') : 'none'}`);
  }
  if (values.progress !== undefined && values.progress !== 'json') throw new UserError(`--progress ${values.progress}: the only progress format is json`);
  if (command === 'restore') {
    const targets = PITR_TARGET_OPTIONS.filter((o) => values[o] !== undefined || switches.has(o));
    if (values.from === undefined && targets.length === 0) throw new UserError('restore needs --from <backup-id|latest>, or for a postgres-pitr job one of --to-time, --to-lsn, --to-name, --latest');
    if (targets.length + (values.from === undefined ? 0 : 1) > 1) throw new UserError(`restore takes one of --from, ${PITR_TARGET_OPTIONS.map((o) => `--${o}`).join(', ')}; got ${[...(values.from ? ['--from'] : []), ...targets.map((o) => `--${o}`)].join(' and ')}`);
  }
  const config: AgentConfigSource =
    configPath !== undefined ? { path: configPath } : env[CONFIG_JSON_ENV] ? { variable: CONFIG_JSON_ENV } : { path: env[CONFIG_PATH_ENV] || DEFAULT_CONFIG_PATH };
  return { command, config, positional, values, switches };
}
