import type { EnvironmentConfig, TenantConfig } from '../../../config/model';
import { tenantRoles } from '../../../config/postgres-names';
import { unescapeTerraformTemplate } from '../../../constructs/terraform-text';
import { CONFIG_JSON_ENV, readAgentConfig } from '../../../runtime/agent/config';
import { renderMinioSetup } from '../../../runtime/render/minio-setup';
import { renderPgBouncer } from '../../../runtime/render/pgbouncer';
import { renderPostgres } from '../../../runtime/render/postgres';
import { POSTGRES_PITR_JOB } from '../../../runtime/agent/pitr/layout';
import { renderRedisNode, renderSentinel } from '../../../runtime/render/redis';
import type { ContainerLaunch } from '../../../runtime/render/types';
import { ContainerJson, containers, loadOrThrow, REPO_ROOT, synthEnvironment, SynthesizedEnvironment } from './support';
import { terraformReads, withTerraform } from './terraform-console';

/*
 * What a container sees is what Terraform makes of the upload content in the JSON. For every
 * container of the example stacks, these tests re-render the launch from the config with the
 * runtime/render functions (independently of the constructs) and compare.
 */

const stacks = loadOrThrow(REPO_ROOT).environments.map(synthEnvironment);

const label = (c: ContainerJson, name: string) => c.labels.find((l) => l.label === name)!.value;

/** Rendered from the tenant's config alone: what this container must receive. Undefined: not rendered (the backup agent config). */
function expectedLaunch(env: EnvironmentConfig, tenant: TenantConfig, c: ContainerJson): ContainerLaunch | undefined {
  const s = tenant.services;
  const service = label(c, 'tenantry.service');
  const index = Number(/-(\d+)$/.exec(c.name)?.[1]);
  const host = (name: string) => `${env.name}-${tenant.name}-${name}`;
  const roles = tenantRoles(tenant.name);
  const pitrOn = tenant.backup.postgres?.pitr;
  const pitr = pitrOn && { maxSlotWalKeepMb: pitrOn.maxSlotWalKeepMb };
  switch (service) {
    case 'postgres':
      return renderPostgres({ databases: s.postgres!.databases, ...roles, parameters: s.postgres!.parameters, pitr });
    case 'postgres-provision': {
      // The server's init script (only that file), run against it by a one-shot container once it answers.
      const init = renderPostgres({ databases: s.postgres!.databases, ...roles, parameters: {}, pitr });
      return { ...init, files: [init.files[0]], entrypoint: ['/bin/sh', '-c', `until pg_isready -q; do sleep 2; done; exec /bin/sh ${init.files[0].path}`], command: undefined };
    }
    case 'pgbouncer':
      return renderPgBouncer({
        listenPort: 6432,
        serverHost: host('postgres'),
        serverPort: 5432,
        databases: s.postgres!.databases,
        user: roles.appRole,
        poolMode: s.pgbouncer?.poolMode ?? 'transaction',
        poolSize: s.pgbouncer?.poolSize ?? 25,
        maxClients: s.pgbouncer?.maxClients ?? 1000,
      });
    case 'redis':
      return renderRedisNode({
        role: index === 0 ? 'master' : 'replica',
        port: 6379,
        announceHost: c.name,
        masterHost: host('redis-0'),
        masterPort: 6379,
        maxmemory: s.redis!.maxmemory,
        minReplicasToWrite: s.redis!.minReplicasToWrite,
      });
    case 'sentinel':
      return renderSentinel({
        port: 26379,
        announceHost: c.name,
        masterName: tenant.name,
        masterHost: host('redis-0'),
        masterPort: 6379,
        quorum: s.redis!.quorum,
        downAfterMs: s.redis!.downAfterMs,
      });
    case 'minio':
      return { files: [], command: ['server', '/data', '--console-address', ':9001'], env: [] };
    case 'minio-setup':
      return renderMinioSetup({ endpoint: `http://${host('minio')}:9000`, buckets: s.minio!.buckets.map((b) => ({ name: b.name, versioned: b.versioned })), applicationUser: `${tenant.name}-app`, backupUser: `${tenant.name}-backup` });
    case 'qdrant':
      return { files: [], env: [] };
    case 'backup':
      return undefined;
    default:
      throw new Error(`no expectation for service ${service} (${c.name}): add one here`);
  }
}

interface Case {
  readonly s: SynthesizedEnvironment;
  readonly tenant: TenantConfig;
  readonly c: ContainerJson;
}

const cases: Case[] = stacks.flatMap((s) =>
  containers(s.doc).map((c) => ({ s, c, tenant: s.env.tenants.find((t) => t.name === label(c, 'tenantry.tenant'))! })),
);

const asUploads = (launch: ContainerLaunch) =>
  [...launch.files].sort((a, b) => a.path.localeCompare(b.path)).map((f) => ({ file: f.path, content: f.content, executable: f.executable ?? false }));

describe('upload content, after Terraform unescaping, is exactly what the renderers produce', () => {
  test('the example stacks have containers of every service kind', () => {
    expect(new Set(cases.map(({ c }) => label(c, 'tenantry.service')))).toEqual(
      new Set(['postgres', 'postgres-provision', 'pgbouncer', 'redis', 'sentinel', 'minio', 'minio-setup', 'qdrant', 'backup']),
    );
  });

  test.each(cases.filter(({ c }) => label(c, 'tenantry.service') !== 'backup').map((x) => [x.c.name, x] as const))('%s', (_name, { s, tenant, c }) => {
    const expected = expectedLaunch(s.env, tenant, c)!;

    expect((c.upload ?? []).map((u) => ({ ...u, content: unescapeTerraformTemplate(u.content) }))).toEqual(asUploads(expected));
    expect(c.entrypoint?.map(unescapeTerraformTemplate)).toEqual(expected.entrypoint);
    expect(c.command?.map(unescapeTerraformTemplate)).toEqual(expected.command);
    expect((c.env ?? []).map((e) => e.split('=')[0])).toEqual(expect.arrayContaining(expected.env));
  });

  test.each(cases.filter(({ c }) => label(c, 'tenantry.service') === 'backup').map((x) => [x.c.name, x] as const))(
    '%s: the agent reads the config in its environment as the construct built it, with one job per configured backup',
    (_name, { s, tenant, c }) => {
      expect(c.upload).toEqual([]);
      const read = readAgentConfig({ variable: CONFIG_JSON_ENV }, { [CONFIG_JSON_ENV]: unescapeTerraformTemplate(agentConfigText(c)) });

      const construct = s.stack.tenants.find((t) => t.node.id === tenant.name)!.backup!;
      expect(read).toEqual(construct.agentConfig);
      expect([read.tenant, read.environment, read.timeZone]).toEqual([tenant.name, s.env.name, s.env.timeZone]);
      const pitrJob = tenant.backup.postgres?.pitr ? [POSTGRES_PITR_JOB] : [];
      expect(read.jobs.map((j) => j.name)).toEqual(Object.keys(tenant.backup).flatMap((service) => (service === 'postgres' ? [service, ...pitrJob] : [service])));
      for (const job of read.jobs) {
        const service = job.name === POSTGRES_PITR_JOB ? 'postgres' : (job.name as keyof TenantConfig['backup']);
        const configured = tenant.backup[service]!;
        expect({ schedule: job.schedule, retention: job.retention, offsite: job.offsite }).toEqual({
          schedule: job.name === POSTGRES_PITR_JOB ? configured.pitr!.baseBackupSchedule : configured.schedule,
          retention: configured.retention,
          offsite: configured.offsite,
        });
      }
      expect(read.offsite !== undefined).toBe(Object.values(tenant.backup).some((j) => j.offsite));
    },
  );
});

/** The agent config as the JSON holds it (Terraform unescapes it into the container's environment). */
function agentConfigText(c: ContainerJson): string {
  const entry = (c.env ?? []).find((e) => e.startsWith(`${CONFIG_JSON_ENV}=`));
  if (!entry) throw new Error(`${c.name} has no ${CONFIG_JSON_ENV}`);
  return entry.slice(CONFIG_JSON_ENV.length + 1);
}

/** `${` or `%{` that Terraform would evaluate (not preceded by its doubled escape) and that is not a plain reference. */
function unescapedTemplates(content: string): string[] {
  const introducers = content.match(/(?<!\$)\$\{[^}\n]{0,40}\}?|(?<!%)%\{[^}\n]{0,40}\}?/g) ?? [];
  return introducers.filter((snippet) => !/^\$\{[a-z0-9_]+\.[A-Za-z0-9_-]+\.[a-z_]+\}$/.test(snippet));
}

describe('no upload hands Terraform a template it would evaluate', () => {
  test('the detector finds shell parameter expansions and ignores escaped ones and references', () => {
    expect(unescapedTemplates(': "${PGPASSWORD:?}" $${HOME} %%{x} ${random_password.a_b_1.result}')).toEqual(['${PGPASSWORD:?}']);
    expect(unescapedTemplates('%{ if x }')).toEqual(['%{ if x }']);
    expect(unescapedTemplates('${A}${B}$$${C}')).toEqual(['${A}', '${B}']);
  });

  test('the example stacks do upload scripts with shell ${...} expansions (so the next test has something to check)', () => {
    const all = cases.flatMap(({ c }) => (c.upload ?? []).map((u) => unescapeTerraformTemplate(u.content)));
    expect(all.some((content) => content.includes('${'))).toBe(true);
  });

  // BUG (constructs/terraform-text.ts): escapeTerraformTemplate's replacement '$${' inserts "${"
  // (String.prototype.replace reads "$$" as one "$"), so every shell `${VAR:?…}` reaches the JSON
  // unescaped and `terraform plan` fails ("Extra characters after interpolation expression").
  // Fix: `.replace(/\$\{(?!TfToken\[)/g, '$$$${')` or a replacer function `() => '$${'`.
  test('every ${ and %{ in every upload and in the agent config is escaped, or a Terraform reference', () => {
    const offenders = cases.flatMap(({ s, c }) => [
      ...(c.upload ?? []).flatMap((u) => unescapedTemplates(u.content).map((snippet) => `${s.env.name} ${c.name} ${u.file}: ${snippet}`)),
      ...(label(c, 'tenantry.service') === 'backup' ? unescapedTemplates(agentConfigText(c)).map((snippet) => `${s.env.name} ${c.name} ${CONFIG_JSON_ENV}: ${snippet}`) : []),
    ]);
    expect(offenders).toEqual([]);
  });

  // The same, judged by Terraform itself: it must read every upload as the rendered file.
  withTerraform('Terraform reads every upload of the example stacks as the rendered file (needs terraform on PATH)', () => {
    const uploads = cases.flatMap(({ c }) => c.upload ?? []);
    expect(terraformReads(uploads.map((u) => u.content))).toEqual(uploads.map((u) => unescapeTerraformTemplate(u.content)));
  });
});
