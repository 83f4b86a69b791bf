/**
 * The rendered MinIO setup script, run by /bin/sh. No MinIO server can run here (no image can be
 * pulled and there is no Debian package), so `mc` is a recording stand-in on PATH: these tests
 * prove what the script asks mc to do, in which order, and how it waits and gives up.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { renderMinioSetup, MinioSetupRenderOptions } from '../../runtime/render/minio-setup';
import { tempDir } from '../helpers/servers';

/**
 * Appends its arguments to $MC_LOG, one call per line. While $MC_DOWN_CALLS (a count) is not
 * used up, `ls` fails the way mc does when the server is not answering yet.
 */
const RECORDING_MC = `#!/bin/sh
printf '%s\\n' "$*" >> "$MC_LOG"
if [ "$1" = ls ]; then
  calls=$(cat "$MC_LOG.down" 2>/dev/null || echo 0)
  if [ "$calls" -lt "\${MC_DOWN_CALLS:-0}" ]; then
    echo $((calls + 1)) > "$MC_LOG.down"
    echo "mc: <ERROR> Unable to list folder. dial tcp: connection refused" >&2
    exit 1
  fi
fi
if [ "$1 $2 $3" = "admin policy attach" ] && [ -n "\${MC_ATTACH_ERROR:-}" ]; then
  echo "$MC_ATTACH_ERROR" >&2
  exit 1
fi
`;

const USER = 'tenant-root';
const PASSWORD = 'root-secret-Pw';

interface Run {
  code: number;
  stderr: string;
  calls: string[];
}

describe('minio setup (mc is a recording stand-in: no MinIO server can run here)', () => {
  let dir: string;
  let log: string;

  const options: MinioSetupRenderOptions = {
    endpoint: 'http://dev-acme-minio:9000',
    buckets: [
      { name: 'images', versioned: true },
      { name: 'thumbnails', versioned: false },
    ],
    applicationUser: 'acme-app',
    backupUser: 'acme-backup',
    readyAttempts: 4,
    readyIntervalSeconds: 0,
  };

  beforeEach(() => {
    dir = tempDir('minio-setup');
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'mc'), RECORDING_MC, { mode: 0o755 });
    log = path.join(dir, 'mc-calls.log');
  });

  function runSetup(o: MinioSetupRenderOptions, env: Record<string, string>): Promise<Run> {
    const launch = renderMinioSetup({ ...o, scriptDir: dir });
    for (const file of launch.files) fs.writeFileSync(file.path, file.content, { mode: 0o755 });
    const [shell, script] = launch.entrypoint ?? [];
    const fullEnv = { PATH: `${path.join(dir, 'bin')}:/usr/bin:/bin`, MC_LOG: log, ...env };
    return new Promise((resolve) => {
      execFile(shell, [script], { env: fullEnv, timeout: 30_000 }, (error, _stdout, stderr) => {
        const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
        resolve({ code: error ? Number(error.code ?? 1) : 0, stderr: String(stderr), calls });
      });
    });
  }

  const credentials = { MINIO_ROOT_USER: USER, MINIO_ROOT_PASSWORD: PASSWORD, MINIO_APPLICATION_SECRET_KEY: 'app-secret', MINIO_BACKUP_SECRET_KEY: 'backup-secret' };
  const aliasCall = `alias set --api S3v4 tenantry http://dev-acme-minio:9000 ${USER} ${PASSWORD}`;
  const bucketCalls = [
    'mb --ignore-existing tenantry/images',
    'version enable tenantry/images',
    'mb --ignore-existing tenantry/thumbnails',
    'version suspend tenantry/thumbnails',
  ];
  const userCalls = () => [
    `admin policy create tenantry tenantry-application ${dir}/application-policy.json`,
    'admin user add tenantry acme-app app-secret',
    'admin policy attach tenantry tenantry-application --user acme-app',
    `admin policy create tenantry tenantry-backup ${dir}/backup-policy.json`,
    'admin user add tenantry acme-backup backup-secret',
    'admin policy attach tenantry tenantry-backup --user acme-backup',
  ];

  it('waits until the object store answers, then creates each bucket and sets its versioning', async () => {
    const run = await runSetup(options, { ...credentials, MC_DOWN_CALLS: '2' });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.calls).toEqual([aliasCall, 'ls tenantry', aliasCall, 'ls tenantry', aliasCall, 'ls tenantry', ...bucketCalls, ...userCalls()]);
  });

  it('issues the same idempotent commands when run again', async () => {
    const first = await runSetup(options, credentials);
    fs.rmSync(log);
    const second = await runSetup(options, credentials);
    expect(first).toEqual(second);
    expect(second.calls).toEqual([aliasCall, 'ls tenantry', ...bucketCalls, ...userCalls()]);
  });

  it('gives up after the configured attempts, naming the endpoint and the last error, creating nothing', async () => {
    const run = await runSetup(options, { ...credentials, MC_DOWN_CALLS: '100' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('tenantry: http://dev-acme-minio:9000 did not answer after 4 attempts: mc: <ERROR> Unable to list folder');
    expect(run.calls.filter((call) => call === 'ls tenantry')).toHaveLength(4);
    expect(run.calls.some((call) => call.startsWith('mb '))).toBe(false);
  });

  it('stops before calling mc when a credential is missing', async () => {
    const run = await runSetup(options, { MINIO_ROOT_USER: USER });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('MINIO_ROOT_PASSWORD must be set');
    expect(run.calls).toEqual([]);
    const noBackupSecret = await runSetup(options, { ...credentials, MINIO_BACKUP_SECRET_KEY: '' });
    expect(noBackupSecret.stderr).toContain('MINIO_BACKUP_SECRET_KEY must be set');
    expect(noBackupSecret.calls).toEqual([]);
  });

  it('a policy already attached (mc before 2024-10 fails on it) is success; any other attach error stops the setup', async () => {
    const again = await runSetup(options, { ...credentials, MC_ATTACH_ERROR: 'mc: <ERROR> Unable to make user/group policy association. The specified policy change is already in effect.' });
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(again.calls).toEqual([aliasCall, 'ls tenantry', ...bucketCalls, ...userCalls()]);
    fs.rmSync(log);
    const refused = await runSetup(options, { ...credentials, MC_ATTACH_ERROR: 'mc: <ERROR> Unable to make user/group policy association. Access Denied.' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('tenantry: attaching policy tenantry-application to acme-app failed: mc: <ERROR> Unable to make user/group policy association. Access Denied.');
    expect(refused.calls).not.toContain('admin user add tenantry acme-backup backup-secret');
  });

  /*
   * Contract with MinIO's policy format (MinIO's docs, "Policy Based Access Control": the AWS IAM
   * policy language; Version "2012-10-17", statements of Effect, Action "s3:…", Resource
   * "arn:aws:s3:::<bucket>" for bucket actions and "arn:aws:s3:::<bucket>/*" for object actions).
   * No MinIO can run here to evaluate them, so the documents are checked against that shape.
   */
  describe('policy documents (contract with MinIO\'s documented policy format; no MinIO runs here)', () => {
    const documents = () => {
      const launch = renderMinioSetup({ ...options, scriptDir: '/tenantry' });
      const file = (name: string) => JSON.parse(launch.files.find((f) => f.path === `/tenantry/${name}`)!.content);
      return { application: file('application-policy.json'), backup: file('backup-policy.json') };
    };
    const buckets = ['arn:aws:s3:::images', 'arn:aws:s3:::thumbnails'];
    const objects = ['arn:aws:s3:::images/*', 'arn:aws:s3:::thumbnails/*'];

    it('both have the shape MinIO reads: Version 2012-10-17, Allow statements of s3 actions on these buckets only, no wildcard action', () => {
      for (const policy of Object.values(documents())) {
        expect(Object.keys(policy).sort()).toEqual(['Statement', 'Version']);
        expect(policy.Version).toBe('2012-10-17');
        for (const statement of policy.Statement) {
          expect(Object.keys(statement).sort()).toEqual(['Action', 'Effect', 'Resource', 'Sid']);
          expect(statement.Effect).toBe('Allow');
          for (const action of statement.Action) expect(action).toMatch(/^s3:[A-Z][A-Za-z]+$/);
          expect([buckets, objects]).toContainEqual(statement.Resource);
        }
      }
    });

    it("the backup agent's user holds exactly what the backup job calls (MINIO_BACKUP_S3_CALLS): list and read", () => {
      expect(documents().backup.Statement).toEqual([
        { Sid: 'TenantBuckets', Effect: 'Allow', Action: ['s3:ListBucket'], Resource: buckets },
        { Sid: 'TenantObjects', Effect: 'Allow', Action: ['s3:GetObject'], Resource: objects },
      ]);
    });

    it("the application's user reads, writes and lists objects of its buckets, and cannot change or delete the buckets", () => {
      expect(documents().application.Statement).toEqual([
        { Sid: 'TenantBuckets', Effect: 'Allow', Action: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'], Resource: buckets },
        { Sid: 'TenantObjects', Effect: 'Allow', Action: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'], Resource: objects },
      ]);
    });
  });
});
