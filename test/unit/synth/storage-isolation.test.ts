import fc from 'fast-check';
import * as storageChecks from '../../../config/checks/storage';
import { dockerHostIdentity } from '../../../config/docker-host';
import { loadConfig, LoadResult } from '../../../config/load';
import type { TenantryConfig } from '../../../config/model';
import { formatProblem } from '../../../config/source';
import { configFiles, GeneratedConfig, generatedConfig } from '../../helpers/generated-config';
import { ContainerJson, resourcesOf, VolumeJson } from '../constructs/support';
import { loadWithRuleOff, SynthesizedEnvironment, synthEnvironment, writeConfig } from './support';

/*
 * The class, not the example (issue 9, item 1): over generated configurations built to collide,
 * a configuration that loads synthesizes stacks in which no two deployments share or nest a
 * directory (bind paths per Docker host, NFS paths per NFS server) and production data stays on
 * its environment's storage; a configuration that is refused is refused by the storage rules
 * only, and for a reason the synthesized output confirms: the rules are switched off (the one
 * spy below), the same files are loaded and synthesized, and the output must show a clash.
 */

/** Every storage rule's message says where the data would go, or that it would leave production's storage. */
const STORAGE_RULE = /^[^:]+:\d+:\d+: \S+: (.* would be \/\S* on (Docker host|NFS server) |"(volume|bind)" would move tenant )/;

interface Place {
  /** The file system: a Docker host's, an NFS server's, or a Docker host's named volumes. */
  readonly space: string;
  readonly path: string;
  /** `<env>/<tenant>`. */
  readonly deployment: string;
  /** A tenant's whole directory on its environment's storage (its own volumes may sit inside). */
  readonly whole: boolean;
  readonly what: string;
}

const label = (labels: { label: string; value: string }[], name: string) => labels.find((l) => l.label === name)?.value ?? '';

/** Which `services.<s>` section a container's storage follows. */
const SECTION: Record<string, string | undefined> = { postgres: 'postgres', redis: 'redis', sentinel: 'redis', minio: 'minio', qdrant: 'qdrant' };

/** Every place the synthesized stacks keep data, read from the JSON alone (plus which mounts follow a service override). */
function places(stacks: SynthesizedEnvironment[], config: TenantryConfig): Place[] {
  const found: Place[] = [];
  const tenantDirectory = (p: Omit<Place, 'whole' | 'what'>) => ({ ...p, path: p.path.split('/').slice(0, -2).join('/'), whole: true, what: `directory of ${p.deployment}` });
  for (const s of stacks) {
    // Two URLs of one machine (another user, say) reach one file system and one set of volume names.
    const host = dockerHostIdentity((s.doc as { provider: { docker: { host: string }[] } }).provider.docker[0].host);
    for (const v of Object.values(resourcesOf<VolumeJson>(s.doc, 'docker_volume'))) {
      const deployment = `${label(v.labels, 'tenantry.env')}/${label(v.labels, 'tenantry.tenant')}`;
      if (v.driver_opts?.type === 'nfs') {
        const server = /addr=([^,]+)/.exec(v.driver_opts.o)![1].toLowerCase();
        const place = { space: `nfs ${server}`, path: v.driver_opts.device.replace(/^:/, ''), deployment };
        found.push({ ...place, whole: false, what: v.name }, tenantDirectory(place));
      } else {
        found.push({ space: `volumes on ${host}`, path: v.name, deployment, whole: false, what: v.name });
      }
    }
    for (const c of Object.values(resourcesOf<ContainerJson>(s.doc, 'docker_container'))) {
      const tenant = label(c.labels, 'tenantry.tenant');
      const section = SECTION[label(c.labels, 'tenantry.service')];
      const services = config.environments.find((e) => e.name === s.env.name)!.tenants.find((t) => t.name === tenant)?.services as Record<string, { storage?: { kind: string } } | undefined> | undefined;
      const overridden = section !== undefined && services?.[section]?.storage?.kind === 'bind';
      for (const m of c.volumes ?? []) {
        // A read-only mount reads a place another container owns (the tenant's backups, in its Postgres for PITR restores).
        if (m.host_path === undefined || m.read_only) continue;
        const place = { space: `bind on ${host}`, path: m.host_path, deployment: `${s.env.name}/${tenant}` };
        found.push({ ...place, whole: false, what: `${c.name}:${m.container_path}` });
        if (!overridden) found.push(tenantDirectory(place));
      }
    }
  }
  return found.filter((p, i) => !p.whole || found.findIndex((q) => q.whole && q.space === p.space && q.path === p.path && q.deployment === p.deployment) === i);
}

/** Two places that are one directory, or one inside the other (named volumes: the same name). */
function sharedPlaces(all: Place[]): string[] {
  const clashes: string[] = [];
  all.forEach((a, i) => {
    for (const b of all.slice(i + 1)) {
      if (a.space !== b.space || ((a.whole || b.whole) && a.deployment === b.deployment)) continue;
      const nests = !a.space.startsWith('volumes') && (b.path.startsWith(`${a.path}/`) || a.path.startsWith(`${b.path}/`));
      if (a.path === b.path || nests) clashes.push(`${a.what} (${a.path}) and ${b.what} (${b.path}) on ${a.space}`);
    }
  });
  return clashes;
}

/** Mounts of a production environment that are not on its storage kind. */
function dataOffProductionStorage(stacks: SynthesizedEnvironment[]): string[] {
  const off: string[] = [];
  for (const s of stacks.filter((x) => x.env.production)) {
    const kind = s.env.storage.kind;
    const volumes = resourcesOf<VolumeJson>(s.doc, 'docker_volume');
    for (const c of Object.values(resourcesOf<ContainerJson>(s.doc, 'docker_container'))) {
      for (const m of c.volumes ?? []) {
        const volume = m.volume_name && volumes[/docker_volume\.([^.]+)\.name/.exec(m.volume_name)![1]];
        const mountKind = m.host_path !== undefined ? 'bind' : volume && volume.driver_opts?.type === 'nfs' ? 'nfs' : 'volume';
        if (mountKind !== kind) off.push(`${c.name}:${m.container_path} is on ${mountKind} in production environment ${s.env.name} (${kind})`);
      }
    }
  }
  return off;
}

const SEED = 9_0001;

test('generated configurations: loaded ones share no directory and keep production data on its storage; refused ones truly would', () => {
  const outcomes = { loaded: 0, refused: 0 };
  fc.assert(
    fc.property(generatedConfig(), (generated) => {
      const root = writeConfig(configFiles(generated));
      const result = loadConfig(root);
      const unchecked = loadWithRuleOff(root, storageChecks, 'storageRules');
      if (!unchecked.ok) throw new Error(`the generator wrote a config that breaks other rules:\n${unchecked.problems.map(formatProblem).join('\n')}`);
      const stacks = unchecked.config.environments.map(synthEnvironment);
      const found = [...sharedPlaces(places(stacks, unchecked.config)), ...dataOffProductionStorage(stacks)];

      if (result.ok) {
        outcomes.loaded++;
        expect(found).toEqual([]);
      } else {
        outcomes.refused++;
        expect(result.problems.map(formatProblem).filter((line) => !STORAGE_RULE.test(line))).toEqual([]);
        expect(found).not.toEqual([]);
      }
    }),
    { seed: SEED, numRuns: 40 },
  );
  // The generator must exercise both sides, or the property proves little.
  expect(outcomes.loaded).toBeGreaterThanOrEqual(5);
  expect(outcomes.refused).toBeGreaterThanOrEqual(5);
});

/** The same machines written another way in each environment: another user, the name's case, the default port. */
function rewrittenHosts(generated: GeneratedConfig): GeneratedConfig {
  const alias = (host: string, i: number) => (host.startsWith('unix://') ? `ssh://user${i}@localhost` : `${host.replace(/^ssh:\/\/[^@]*@/, `ssh://user${i}@`).toUpperCase().replace(/^SSH/, 'ssh').replace(/:22$/, '')}:22`);
  return { ...generated, environments: generated.environments.map((e, i) => ({ ...e, dockerHost: alias(e.dockerHost, i) })) };
}

/** Where a configuration is refused: each problem's file (within its root), line and column. */
const where = (result: LoadResult) => (result.ok ? [] : result.problems.map((p) => `${p.file.replace(/^.*?(?=(environments|tenants)\/)/, '')}:${p.line}:${p.col}`).sort());

test('generated configurations: how each environment writes its Docker host changes nothing the rules refuse', () => {
  let refused = 0;
  fc.assert(
    fc.property(generatedConfig(), (generated) => {
      const asGenerated = loadConfig(writeConfig(configFiles(generated)));
      const rewritten = loadConfig(writeConfig(configFiles(rewrittenHosts(generated))));
      if (!asGenerated.ok) refused++;
      expect(where(rewritten)).toEqual(where(asGenerated));
    }),
    { seed: SEED, numRuns: 60 },
  );
  expect(refused).toBeGreaterThanOrEqual(5);
});
