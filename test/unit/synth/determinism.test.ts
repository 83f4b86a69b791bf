import { App } from 'cdktf';
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { reservedDatabase, reservedRole, tenantRoles } from '../../../config/postgres-names';
import { EnvironmentStack } from '../../../stacks/environment-stack';
import {
  BACKUP_IMAGE_BUILD,
  containers,
  errorAnnotations,
  invariantViolations,
  loadOrThrow,
  ownedResources,
  REPO_ROOT,
  synthEnvironment,
  SynthesizedEnvironment,
  writeConfig,
} from './support';

/** The example config through a real App (as main.ts runs it), each stack's cdk.tf.json as written. */
function appSynth(outdir: string): Map<string, Buffer> {
  const app = new App({ outdir, stackTraces: false });
  const environments = loadOrThrow(REPO_ROOT).environments;
  for (const environment of environments) new EnvironmentStack(app, environment.name, { environment, backupImageBuild: BACKUP_IMAGE_BUILD });
  app.synth();
  const files = new Map(environments.map((e) => [e.name, fs.readFileSync(path.join(outdir, 'stacks', e.name, 'cdk.tf.json'))]));
  fs.rmSync(outdir, { recursive: true, force: true });
  return files;
}

describe('determinism of the example config', () => {
  test('two syntheses in one process write byte-identical cdk.tf.json files', () => {
    const first = appSynth(fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-synth-a-')));
    const second = appSynth(fs.mkdtempSync(path.join(os.tmpdir(), 'tenantry-synth-b-')));

    expect([...first.keys()]).toEqual(['dev', 'prod']);
    for (const [env, bytes] of first) expect(second.get(env)!.equals(bytes)).toBe(true);
  });

  test('Testing.synth of freshly loaded configs gives identical JSON', () => {
    const once = loadOrThrow(REPO_ROOT).environments.map((e) => synthEnvironment(e).json);
    const twice = loadOrThrow(REPO_ROOT).environments.map((e) => synthEnvironment(e).json);
    expect(twice).toEqual(once);
  });
});

/*
 * Random tenant sets in one environment. The configs are written as YAML files and read with
 * loadConfig rather than built as TenantryConfig objects: defaults, overrides, port slots and
 * backup jobs then come from the real loader, so the property covers the path a user's file takes,
 * and a generated config the loader refuses shows up as a failure (with its problems) instead of
 * silently testing an impossible config.
 */

// Names the loader accepts: not "shared", no role or database PostgreSQL reserves.
const name = fc
  .stringMatching(/^[a-z][a-z0-9-]{0,9}[a-z0-9]$/)
  .filter((n) => !n.includes('--') && n !== 'shared' && Object.values(tenantRoles(n)).every((role) => reservedRole(role) === undefined));
const identifier = fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/).filter((d) => reservedDatabase(d) === undefined);
const bucketName = fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,10}[a-z0-9]$/);

const redis = fc
  .record({ replicas: fc.integer({ min: 0, max: 5 }), sentinels: fc.integer({ min: 1, max: 7 }) })
  .chain(({ replicas, sentinels }) =>
    fc.record({
      replicas: fc.constant(replicas),
      sentinels: fc.constant(sentinels),
      quorum: fc.integer({ min: 1, max: sentinels }),
      minReplicasToWrite: fc.integer({ min: 0, max: replicas }),
    }),
  );

const services = fc
  .record({
    postgres: fc.option(
      fc.record({ databases: fc.uniqueArray(identifier, { minLength: 1, maxLength: 3 }), parameters: fc.constantFrom({}, { max_connections: 150, jit: false }) }),
      { nil: undefined },
    ),
    pgbouncer: fc.constantFrom(undefined, { enabled: false }, { poolMode: 'session', poolSize: 10, maxClients: 100 }),
    redis: fc.option(redis, { nil: undefined }),
    qdrant: fc.option(fc.constant({}), { nil: undefined }),
    // At least one bucket: MinIO without buckets as a tenant's only service is a known synth crash
    // (test/unit/constructs/tenant.test.ts), kept out of this property so it tests what it says.
    minio: fc.option(
      fc.record({ buckets: fc.uniqueArray(bucketName, { minLength: 1, maxLength: 3 }).map((names) => names.map((n, i) => ({ name: n, versioned: i % 2 === 0 }))) }),
      { nil: undefined },
    ),
  })
  // A PgBouncer without Postgres is a config error, not a case for this property.
  .map((s) => (s.postgres ? s : { ...s, pgbouncer: s.pgbouncer && { enabled: false } }))
  .map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)));

const scenario = fc
  .record({
    storage: fc.constantFrom(
      { kind: 'volume' },
      { kind: 'bind', dataRoot: './data' },
      { kind: 'nfs', server: 'nfs-1.example.com', export: '/exports/pt', options: 'nfsvers=4.1,hard' },
    ),
    production: fc.boolean(),
    publish: fc.boolean(),
    tenants: fc.uniqueArray(fc.record({ name, services }), { minLength: 2, maxLength: 5, selector: (t) => t.name }),
  })
  .chain((s) =>
    fc.record({
      scenario: fc.constant(s),
      slots: fc.uniqueArray(fc.integer({ min: 0, max: 49 }), { minLength: s.tenants.length, maxLength: s.tenants.length }),
    }),
  );

function environmentFile(s: { storage: object; production: boolean; publish: boolean }) {
  return {
    name: 'pt',
    production: s.production,
    docker: { host: 'unix:///var/run/docker.sock' },
    network: { name: 'tenantry-pt', subnet: '172.28.0.0/16' },
    storage: s.storage,
    // Production refuses published data ports (a policy error, not what this property is about).
    ports: { publish: s.publish && !s.production, from: 20000, to: 20999 },
  };
}

const tenantFile = (t: { name: string; services: object }, slot: number) => ({ name: t.name, environments: ['pt'], portSlot: slot, services: t.services });

/** `type.id` → body, for every resource in a synthesized stack. */
function allResources(s: SynthesizedEnvironment): Map<string, string> {
  const out = new Map<string, string>();
  for (const [type, byId] of Object.entries(s.doc.resource ?? {})) for (const [id, body] of Object.entries(byId)) out.set(`${type}.${id}`, JSON.stringify(body));
  return out;
}

function tenantView(s: SynthesizedEnvironment, tenant: string) {
  const construct = s.stack.tenants.find((t) => t.node.id === tenant)!;
  return {
    resources: [...ownedResources(construct, s)].map(([address, body]) => [address, JSON.stringify(body)]).sort(),
    containers: containers(s.doc)
      .filter((c) => c.labels.some((l) => l.label === 'tenantry.tenant' && l.value === tenant))
      .map((c) => ({ name: c.name, ports: c.ports ?? [] }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    output: JSON.stringify(s.doc.output?.[`tenant_${tenant.replace(/-/g, '_')}`]),
  };
}

describe('random tenant sets in one environment', () => {
  test('synthesize deterministically, follow the invariants, and adding a tenant changes no other tenant', () => {
    fc.assert(
      fc.property(scenario, ({ scenario: s, slots }) => {
        const root = writeConfig({ 'environments/pt.yaml': environmentFile(s) });
        const base = s.tenants.slice(0, -1);
        const added = s.tenants[s.tenants.length - 1];
        base.forEach((t, i) => writeConfig({ [`tenants/${t.name}.yaml`]: tenantFile(t, slots[i]) }, root));

        // Same files, loaded and synthesized twice: the same bytes.
        const before = synthEnvironment(loadOrThrow(root).environments[0]);
        expect(synthEnvironment(loadOrThrow(root).environments[0]).json).toBe(before.json);

        writeConfig({ [`tenants/${added.name}.yaml`]: tenantFile(added, slots[slots.length - 1]) }, root);
        const after = synthEnvironment(loadOrThrow(root).environments[0]);
        fs.rmSync(root, { recursive: true, force: true });

        expect(invariantViolations([before])).toEqual([]);
        expect(invariantViolations([after])).toEqual([]);
        expect(errorAnnotations(after.stack)).toEqual([]);
        expect(after.stack.tenants.map((t) => t.node.id).sort()).toEqual(s.tenants.map((t) => t.name).sort());

        // Nothing that existed changes: every resource body is byte-identical after the addition.
        const afterResources = allResources(after);
        for (const [address, body] of allResources(before)) expect({ address, body: afterResources.get(address) }).toEqual({ address, body });
        // And every earlier tenant owns exactly what it owned, with the same names, ports and output.
        for (const t of base) expect(tenantView(after, t.name)).toEqual(tenantView(before, t.name));
      }),
      { numRuns: 20 },
    );
  });
});
