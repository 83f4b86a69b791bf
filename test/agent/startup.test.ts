/**
 * What an agent command loads: the AWS SDK (about 50 ms of start-up, measured with a module-load
 * hook) only when the command copies off-site or runs a MinIO job. `tenantry status` runs the
 * agent once per tenant, so every command that needs no S3 must not pay for it.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { compiledCli } from './compiled';
import { writeConfig } from './harness';
import { tempDir } from '../helpers/servers';

/** Runs the compiled agent with a hook that prints, on exit, every loaded module whose path names @aws-sdk. */
function loadedSdkModules(args: string[]): { code: number | null; sdk: string[]; stderr: string } {
  const hook = path.join(tempDir('startup-hook'), 'hook.js');
  fs.writeFileSync(hook, "process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify(Object.keys(require.cache).filter((m) => m.includes('@aws-sdk'))) + '\\n'));\n");
  const run = spawnSync(process.execPath, ['--require', hook, compiledCli(), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  const line = run.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  return { code: run.status, sdk: line ? (JSON.parse(line.slice('LOADED '.length)) as string[]) : ['(no report)'], stderr: run.stderr };
}

test('status and list load no AWS SDK module; the off-site client and the MinIO driver load it when used', () => {
  const minio = { name: 'minio', kind: 'minio' as const, schedule: '0 3 * * *', retention: { daily: 1, weekly: 0, monthly: 0 }, offsite: false, minio: { endpoint: 'http://127.0.0.1:1', accessKeyEnv: 'K', secretKeyEnv: 'S', buckets: ['b'] } };
  const { path: config } = writeConfig({ jobs: [minio] });
  for (const command of [['status', '--json'], ['list'], ['list', 'minio']]) {
    const run = loadedSdkModules([...command, '--config', config]);
    expect({ command, code: run.code, sdk: run.sdk }).toEqual({ command, code: 0, sdk: [] });
  }
  // The MinIO job's run needs S3: the driver loads the SDK then (and fails on the closed port).
  const run = loadedSdkModules(['run', 'minio', '--config', config]);
  expect(run.sdk.some((m) => m.includes('client-s3'))).toBe(true);
});
