import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/*
 * runtime/agent/entrypoint.sh runs inside the agent image, which cannot be built here (no Docker
 * engine). The test runs the real script with recording stand-ins for id, chown, su-exec and
 * tenantry-agent on PATH: what it proves is the script's decisions and the exact commands it runs.
 */
const SCRIPT = path.resolve(__dirname, '../../runtime/agent/entrypoint.sh');

function run(uid: string, args: string[], env: Record<string, string> = {}): { status: number | null; calls: string[] } {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'entrypoint-'));
  const log = path.join(dir, 'calls');
  const stub = (name: string, body: string) => fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  stub('id', `[ "$1" = "-u" ] && echo ${uid}`);
  for (const name of ['chown', 'su-exec', 'tenantry-agent']) stub(name, `printf '%s\\n' "${name} $*" >> "${log}"`);
  const result = spawnSync('/bin/sh', [SCRIPT, ...args], { env: { PATH: `${dir}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
  const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
  fs.rmSync(dir, { recursive: true, force: true });
  return { status: result.status, calls };
}

describe('agent image entrypoint (stand-ins for id/chown/su-exec: the image cannot be built here)', () => {
  it('as root, takes ownership of the backup directory and runs the agent as tenantry with the same arguments', () => {
    expect(run('0', ['serve', '--config', '/etc/tenantry/agent.json'])).toEqual({
      status: 0,
      calls: ['chown tenantry:tenantry /backups', 'su-exec tenantry:tenantry tenantry-agent serve --config /etc/tenantry/agent.json'],
    });
  });

  it('honours TENANTRY_BACKUP_DIR', () => {
    expect(run('0', ['serve'], { TENANTRY_BACKUP_DIR: '/data/backups' }).calls[0]).toBe('chown tenantry:tenantry /data/backups');
  });

  it('as another user, changes nothing and runs the agent directly', () => {
    expect(run('10001', ['list', '--json'])).toEqual({ status: 0, calls: ['tenantry-agent list --json'] });
  });

  it('passes "sh -n"', () => {
    expect(spawnSync('/bin/sh', ['-n', SCRIPT]).status).toBe(0);
  });
});
