import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArguments } from '../../runtime/agent/arguments';
import { CONFIG_JSON_ENV, DEFAULT_CONFIG_PATH, loadAgentConfig, parseAgentConfig, readAgentConfig } from '../../runtime/agent/config';
import { UserError } from '../../runtime/agent/errors';

const valid = {
  tenant: 'acme',
  environment: 'prod',
  timeZone: 'Europe/Berlin',
  backupDir: '/backups',
  http: { port: 9187 },
  jobs: [
    {
      name: 'pg',
      kind: 'postgres',
      schedule: '15 2 * * *',
      verifySchedule: '@weekly',
      retention: { daily: 7, weekly: 4, monthly: 6 },
      offsite: false,
      postgres: { host: 'db', port: 5432, user: 'backup', passwordEnv: 'PG_PASSWORD', databases: ['app'] },
    },
  ],
};

function problems(value: unknown): string[] {
  try {
    parseAgentConfig(value, 'agent.json');
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message.split('\n');
  }
  throw new Error('expected the config to be rejected');
}

describe('agent config', () => {
  test('applies the documented defaults', () => {
    const config = parseAgentConfig(valid, 'agent.json');
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.jobs[0]).toMatchObject({ postgres: { parallelJobs: 2, splitTablesLargerThanMb: 256 } });
  });

  test('lists every problem with its path, one per line', () => {
    const bad = {
      ...valid,
      timeZone: 'Mars/Olympus',
      http: { port: 0 },
      jobs: [
        { ...valid.jobs[0], schedule: '0 25 * * *', offsite: true, postgres: { ...valid.jobs[0].postgres, passwordEnv: 'not a var' } },
        { ...valid.jobs[0], extra: 1 },
      ],
    };
    expect(problems(bad)).toEqual([
      'agent.json: timeZone: is not an IANA time zone (e.g. "UTC", "Europe/Berlin")',
      'agent.json: http.port: Too small: expected number to be >=1',
      'agent.json: jobs[0].schedule: invalid cron expression "0 25 * * *": hour field: 25 is out of range 0-23',
      'agent.json: jobs[0].postgres.passwordEnv: must be an environment variable name like "PG_PASSWORD"',
      'agent.json: jobs[1]: Unrecognized key: "extra"',
    ]);
  });

  test('cross-field rules: unique job names, off-site jobs need an offsite section', () => {
    expect(problems({ ...valid, jobs: [{ ...valid.jobs[0], offsite: true }, valid.jobs[0]] })).toEqual([
      'agent.json: jobs[0].offsite: is true but the file has no top-level "offsite" section',
      'agent.json: jobs[1].name: duplicate job name "pg"',
    ]);
  });

  describe('postgres-pitr job (issue 12)', () => {
    const pitrJob = {
      name: 'postgres-pitr',
      kind: 'postgres-pitr',
      schedule: '0 3 * * *',
      verifySchedule: '@weekly',
      retention: { daily: 7, weekly: 4, monthly: 6 },
      offsite: false,
      pitr: { host: 'db', port: 5432, user: 'replicator', passwordEnv: 'PG_REPLICATION_PASSWORD', slot: 'tenantry_acme', windowDays: 7, maxLagSeconds: 60, maxSlotWalKeepMb: 10240, databases: ['app'] },
    };

    test('accepts the shape pitr-design.md gives', () => {
      expect(parseAgentConfig({ ...valid, jobs: [valid.jobs[0], pitrJob] }, 'agent.json').jobs[1]).toEqual(pitrJob);
    });

    test('refuses a slot name Postgres would refuse, a negative window, no limit and no databases', () => {
      const pitr = { ...pitrJob.pitr, slot: 'Tenantry-acme', windowDays: -1, maxLagSeconds: 0, maxSlotWalKeepMb: 0.5, databases: [] };
      expect(problems({ ...valid, jobs: [{ ...pitrJob, pitr }] })).toEqual([
        'agent.json: jobs[0].pitr.slot: must be 1-63 lowercase letters, digits and "_" (a replication slot name), e.g. "tenantry_acme"',
        'agent.json: jobs[0].pitr.windowDays: Too small: expected number to be >=0',
        'agent.json: jobs[0].pitr.maxLagSeconds: Too small: expected number to be >0',
        'agent.json: jobs[0].pitr.maxSlotWalKeepMb: Invalid input: expected int, received number',
        'agent.json: jobs[0].pitr.databases: Too small: expected array to have >=1 items',
      ]);
    });
  });

  test('a missing field says "is required"', () => {
    const { tenant: _tenant, ...rest } = valid;
    expect(problems(rest)).toEqual(['agent.json: tenant: is required (string)']);
  });

  test('loadAgentConfig: a missing or broken file is a user error naming the path', () => {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'agent-config-'));
    expect(() => loadAgentConfig(path.join(dir, 'nope.json'))).toThrow(`agent config ${path.join(dir, 'nope.json')} does not exist; pass --config <path> or set TENANTRY_AGENT_CONFIG`);
    fs.writeFileSync(path.join(dir, 'broken.json'), '{ "tenant": ');
    expect(() => loadAgentConfig(path.join(dir, 'broken.json'))).toThrow(/^agent config .*broken\.json is not valid JSON: /);
  });

  test('where the config comes from: --config, else the JSON in TENANTRY_AGENT_CONFIG_JSON, else the TENANTRY_AGENT_CONFIG file, else the default path', () => {
    const json = JSON.stringify(valid);
    expect(parseArguments(['serve', '--config', '/x.json'], { [CONFIG_JSON_ENV]: json, TENANTRY_AGENT_CONFIG: '/y.json' }).config).toEqual({ path: '/x.json' });
    expect(parseArguments(['serve'], { [CONFIG_JSON_ENV]: json, TENANTRY_AGENT_CONFIG: '/y.json' }).config).toEqual({ variable: CONFIG_JSON_ENV });
    expect(parseArguments(['serve'], { TENANTRY_AGENT_CONFIG: '/y.json' }).config).toEqual({ path: '/y.json' });
    expect(parseArguments(['serve'], {}).config).toEqual({ path: DEFAULT_CONFIG_PATH });
  });

  test('readAgentConfig: the JSON from the environment, validated like a file; broken JSON names the variable', () => {
    expect(readAgentConfig({ variable: CONFIG_JSON_ENV }, { [CONFIG_JSON_ENV]: JSON.stringify(valid) })).toEqual(parseAgentConfig(valid, 'agent.json'));
    expect(() => readAgentConfig({ variable: CONFIG_JSON_ENV }, { [CONFIG_JSON_ENV]: '{ "tenant": ' })).toThrow(/^agent config in TENANTRY_AGENT_CONFIG_JSON is not valid JSON: /);
    expect(() => readAgentConfig({ variable: CONFIG_JSON_ENV }, { [CONFIG_JSON_ENV]: '{}' })).toThrow(/^agent config in TENANTRY_AGENT_CONFIG_JSON: tenant: is required/);
  });
});
