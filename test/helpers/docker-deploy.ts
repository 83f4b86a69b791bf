import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';
import type Docker from 'dockerode';
import { evaluateString, generateSecrets, readStack, resourceReference, SynthesizedContainer, SynthesizedStack } from '../../e2e/terraform';
import { LABELS as LABEL } from '../../config/container-labels';
import type { ImageSubstitution } from './docker-images';

/*
 * What `terraform apply` of a synthesized stack would create for one tenant, created through the
 * Engine API from the cdk.tf.json itself: the containers with their exact names, hostnames,
 * networks (aliases, so names resolve between containers), env (random_password references
 * replaced by generated values, one per resource, as Terraform does), uploads (put into the
 * container before it starts, as the provider does), named and bind volumes, healthchecks, user,
 * read-only root, capabilities, security options, memory, restart policy, log options,
 * entrypoint and command. The one change is the image: each is replaced by the substitution for
 * it, and an image without one is an error.
 *
 * Published ports are refused rather than published: the tests reach containers on the
 * network's addresses, and a fixed host port could collide with anything on the machine.
 */


export interface DeployOptions {
  readonly tenant: string;
  /** `tenantry.service` labels to create. @default every service of the tenant */
  readonly services?: readonly string[];
  readonly substitutions: readonly ImageSubstitution[];
  /** Values of random_password resources by id. @default one generated per resource */
  readonly secrets?: Record<string, string>;
}

export interface DeployedContainer {
  /** The container name (also its hostname and network alias). */
  readonly name: string;
  /** Its `tenantry.service` label. */
  readonly service: string;
  readonly container: Docker.Container;
  /** The environment it was created with (secrets filled in). */
  readonly env: Readonly<Record<string, string>>;
  /** The production image it stands in for, and the local image it runs. */
  readonly image: { readonly production: string; readonly local: string };
  /** As synthesized. */
  readonly synthesized: SynthesizedContainer;
}

export interface Deployment {
  readonly environment: string;
  readonly tenant: string;
  /** Sorted by name. */
  readonly containers: readonly DeployedContainer[];
  readonly secrets: Readonly<Record<string, string>>;
  /** The stack as read. */
  readonly stack: SynthesizedStack;
  /** The container of that name (an error if the deployment has none). */
  get(name: string): DeployedContainer;
  /**
   * Waits until every container that must run is running and healthy (those with a healthcheck),
   * and every run-once container (`must_run: false`) has exited 0; a failure names the container
   * and ends with its log.
   */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Removes the containers, then the networks and named volumes this deployment created. */
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function label(c: SynthesizedContainer, name: string): string | undefined {
  return c.labels?.find((l) => l.label === name)?.value;
}

const labelMap = (labels: { label: string; value: string }[] | undefined) => Object.fromEntries((labels ?? []).map((l) => [l.label, l.value]));

/** "10s", "1m30s", "500ms" as nanoseconds (the Engine API's unit). */
export function durationNs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const unit: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  const rest = text.replace(/(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g, (_, value: string, u: string) => {
    total += Number(value) * unit[u];
    return '';
  });
  if (rest !== '' || text === '') throw new Error(`"${text}" is not a duration`);
  return total;
}

/** The image a container runs, as its production name (or `build:<dockerfile>` for a built one). */
function productionImage(stack: SynthesizedStack, c: SynthesizedContainer): string {
  const reference = c.image === undefined ? undefined : resourceReference(c.image);
  if (!reference) return c.image ?? '';
  const image = stack.images[reference.id];
  if (reference.type !== 'docker_image' || !image) throw new Error(`${c.name}: image ${c.image} names no docker_image of the stack`);
  return image.build ? `build:${image.build.dockerfile ?? 'Dockerfile'}` : image.name;
}

/** A `${docker_network.X.name}` / `${docker_volume.X.name}` reference as the resource's name. */
function resolveName(stack: SynthesizedStack, text: string, where: string): string {
  const reference = resourceReference(text);
  if (!reference) return text;
  const resource = reference.type === 'docker_network' ? stack.networks[reference.id] : reference.type === 'docker_volume' ? stack.volumes[reference.id] : undefined;
  if (!resource || reference.attribute !== 'name') throw new Error(`${where}: ${text} names no ${reference.type} of the stack`);
  return resource.name;
}

/** The uploads as a tar of file entries only (no directories: the image's own keep their owner and mode), root-owned, as the provider writes them. */
async function uploadTar(files: { file: string; content: string; executable: boolean }[]): Promise<Buffer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upload-'));
  try {
    const names = files.map((f) => {
      const relative = f.file.replace(/^\/+/, '');
      fs.mkdirSync(path.join(dir, path.dirname(relative)), { recursive: true });
      // The provider's modes: 0744 for `executable`, else 0644.
      fs.writeFileSync(path.join(dir, relative), f.content, { mode: f.executable ? 0o744 : 0o644 });
      fs.chmodSync(path.join(dir, relative), f.executable ? 0o744 : 0o644);
      return relative;
    });
    const tar = spawn('tar', ['-C', dir, '--no-recursion', '--owner=0', '--group=0', '--numeric-owner', '-c', ...names], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    tar.stdout.on('data', (c: Buffer) => chunks.push(c));
    tar.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => tar.on('close', resolve));
    if (code !== 0) throw new Error(`tar of the uploads failed: ${stderr}`);
    return Buffer.concat(chunks);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Orders containers so that each comes after the containers its depends_on names. */
function inDependencyOrder(stack: SynthesizedStack, containers: SynthesizedContainer[]): SynthesizedContainer[] {
  const byName = new Map(containers.map((c) => [c.name, c]));
  const done = new Set<string>();
  const ordered: SynthesizedContainer[] = [];
  const visit = (c: SynthesizedContainer) => {
    if (done.has(c.name)) return;
    done.add(c.name);
    for (const dependency of c.depends_on ?? []) {
      const id = /^docker_container\.(.+)$/.exec(dependency)?.[1];
      const target = id === undefined ? undefined : stack.containersById[id];
      if (target && byName.has(target.name)) visit(target);
    }
    ordered.push(c);
  };
  [...containers].sort((a, b) => a.name.localeCompare(b.name)).forEach(visit);
  return ordered;
}

/** Removes whatever an earlier, interrupted run left of this tenant (its labelled containers first, then its networks and volumes by name). */
async function removeLeftovers(docker: Docker, environment: string, tenant: string, networks: string[], volumes: string[]): Promise<void> {
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.environment}=${environment}`, `${LABEL.tenant}=${tenant}`] } });
  for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true, v: true });
  for (const name of networks) {
    for (const n of await docker.listNetworks({ filters: { name: [name] } })) if (n.Name === name) await docker.getNetwork(n.Id).remove();
  }
  for (const name of volumes) {
    try {
      await docker.getVolume(name).remove({ force: true });
    } catch {
      // absent: nothing left
    }
  }
}

/**
 * Creates and starts one tenant's containers from a synthesized cdk.tf.json (see the file
 * comment); returns handles and destroy(). Call waitReady() to wait for health.
 */
export async function deployFromSynth(docker: Docker, cdkTfJsonPath: string, options: DeployOptions): Promise<Deployment> {
  const stack = readStack(cdkTfJsonPath);
  const secrets = options.secrets ?? generateSecrets(stack);
  const all = stack.containers.filter((c) => label(c, LABEL.tenant) === options.tenant);
  if (all.length === 0) throw new Error(`${cdkTfJsonPath}: no docker_container labelled ${LABEL.tenant}=${options.tenant}`);
  const environment = label(all[0], LABEL.environment) ?? '';
  const selected = options.services ? all.filter((c) => options.services!.includes(label(c, LABEL.service) ?? '')) : all;
  for (const service of options.services ?? []) {
    if (!selected.some((c) => label(c, LABEL.service) === service)) throw new Error(`${cdkTfJsonPath}: tenant ${options.tenant} has no container of service "${service}"`);
  }
  const substitution = new Map(options.substitutions.map((s) => [s.production, s.local]));

  // Everything is checked before anything is created.
  const plans = selected.map((c) => {
    const where = (part: string) => `${cdkTfJsonPath}: ${c.name} ${part}`;
    const evaluate = (text: string, part: string) => evaluateString(text, secrets, where(part));
    const production = productionImage(stack, c);
    const local = substitution.get(production);
    if (local === undefined) throw new Error(`${c.name}: no local image stands in for ${production} (add a substitution in test/helpers/docker-images.ts)`);
    if ((c.ports ?? []).some((p) => p.external !== undefined)) throw new Error(`${c.name}: publishes host ports; the Docker tests deploy environments that publish none`);
    const env = Object.fromEntries((c.env ?? []).map((entry) => {
      const value = evaluate(entry, 'env');
      const eq = value.indexOf('=');
      return [value.slice(0, eq), value.slice(eq + 1)];
    }));
    const networks = (c.networks_advanced ?? []).map((n) => ({ name: resolveName(stack, n.name, where('network')), aliases: n.aliases ?? [] }));
    const volumes = (c.volumes ?? []).map((v) => {
      if (v.volume_name !== undefined) return { named: resolveName(stack, v.volume_name, where('volume')), bind: `${resolveName(stack, v.volume_name, where('volume'))}:${v.container_path}${v.read_only ? ':ro' : ''}` };
      if (v.host_path !== undefined) return { named: undefined, bind: `${v.host_path}:${v.container_path}${v.read_only ? ':ro' : ''}` };
      throw new Error(where(`volume ${v.container_path}: neither volume_name nor host_path (an anonymous volume the tests do not create)`));
    });
    const uploads = (c.upload ?? []).map((u) => ({ file: u.file, content: evaluate(u.content, `upload ${u.file}`), executable: u.executable ?? false }));
    const test = c.healthcheck?.test.map((part) => evaluate(part, 'healthcheck'));
    const spec: Docker.ContainerCreateOptions = {
      name: c.name,
      Hostname: c.hostname,
      Image: local,
      Entrypoint: c.entrypoint?.map((arg) => evaluate(arg, 'entrypoint')),
      Cmd: c.command?.map((arg) => evaluate(arg, 'command')),
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      User: c.user,
      Labels: labelMap(c.labels),
      Healthcheck: test && {
        Test: test,
        Interval: durationNs(c.healthcheck?.interval),
        Timeout: durationNs(c.healthcheck?.timeout),
        StartPeriod: durationNs(c.healthcheck?.start_period),
        Retries: c.healthcheck?.retries,
      },
      HostConfig: {
        Binds: volumes.map((v) => v.bind),
        NetworkMode: networks[0]?.name,
        Memory: c.memory === undefined ? undefined : c.memory * 1024 * 1024,
        CapAdd: c.capabilities?.add,
        CapDrop: c.capabilities?.drop,
        SecurityOpt: c.security_opts,
        ReadonlyRootfs: c.read_only ?? false,
        RestartPolicy: c.restart ? { Name: c.restart } : undefined,
        LogConfig: c.log_driver ? { Type: c.log_driver, Config: c.log_opts ?? {} } : undefined,
      },
      NetworkingConfig: networks[0] ? { EndpointsConfig: { [networks[0].name]: { Aliases: networks[0].aliases } } } : undefined,
    };
    return { c, service: label(c, LABEL.service) ?? '', production, local, env, networks, volumes, uploads, spec };
  });

  const networkNames = [...new Set(plans.flatMap((p) => p.networks.map((n) => n.name)))];
  const volumeNames = [...new Set(plans.flatMap((p) => p.volumes.flatMap((v) => (v.named ? [v.named] : []))))];
  await removeLeftovers(docker, environment, options.tenant, networkNames, volumeNames);

  const createdNetworks: string[] = [];
  const createdVolumes: string[] = [];
  const created: DeployedContainer[] = [];
  const destroy = async () => {
    for (const d of created) await d.container.remove({ force: true, v: true }).catch(() => undefined);
    for (const name of createdNetworks) await docker.getNetwork(name).remove().catch(() => undefined);
    for (const name of createdVolumes) await docker.getVolume(name).remove({ force: true }).catch(() => undefined);
  };
  try {
    for (const name of networkNames) {
      const synthesized = Object.values(stack.networks).find((n) => n.name === name);
      if (!synthesized) throw new Error(`${cdkTfJsonPath}: network ${name} is not a docker_network of the stack`);
      await docker.createNetwork({
        Name: name,
        Driver: synthesized.driver ?? 'bridge',
        CheckDuplicate: true,
        Labels: labelMap(synthesized.labels),
        IPAM: synthesized.ipam_config ? { Config: synthesized.ipam_config.map((i) => ({ Subnet: i.subnet, Gateway: i.gateway })) } : undefined,
      });
      createdNetworks.push(name);
    }
    for (const name of volumeNames) {
      const synthesized = Object.values(stack.volumes).find((v) => v.name === name);
      await docker.createVolume({ Name: name, Driver: synthesized?.driver ?? 'local', DriverOpts: synthesized?.driver_opts ?? {}, Labels: labelMap(synthesized?.labels) });
      createdVolumes.push(name);
    }
    const byName = new Map(plans.map((p) => [p.c.name, p]));
    for (const c of inDependencyOrder(stack, plans.map((p) => p.c))) {
      const plan = byName.get(c.name)!;
      const container = await docker.createContainer(plan.spec);
      created.push({ name: c.name, service: plan.service, container, env: plan.env, image: { production: plan.production, local: plan.local }, synthesized: c });
      for (const extra of plan.networks.slice(1)) await docker.getNetwork(extra.name).connect({ Container: container.id, EndpointConfig: { Aliases: extra.aliases } });
      if (plan.uploads.length > 0) await container.putArchive(await uploadTar(plan.uploads), { path: '/' });
      await container.start();
    }
  } catch (error) {
    await destroy();
    throw error;
  }

  const containers = [...created].sort((a, b) => a.name.localeCompare(b.name));
  return {
    environment,
    tenant: options.tenant,
    containers,
    secrets,
    stack,
    get(name: string) {
      const found = containers.find((c) => c.name === name);
      if (!found) throw new Error(`the deployment has no container ${name} (it has ${containers.map((c) => c.name).join(', ')})`);
      return found;
    },
    async waitReady(timeoutMs = 180_000) {
      const deadline = Date.now() + timeoutMs;
      for (const d of containers) {
        for (;;) {
          const state = (await d.container.inspect()).State;
          const runOnce = d.synthesized.must_run === false;
          if (runOnce ? state.Status === 'exited' && state.ExitCode === 0 : state.Running && (!d.synthesized.healthcheck || state.Health?.Status === 'healthy')) break;
          const failed = runOnce ? state.Status === 'exited' && state.ExitCode !== 0 : state.Status === 'exited' || state.Health?.Status === 'unhealthy';
          if (failed || Date.now() > deadline) {
            const log = (await d.container.logs({ stdout: true, stderr: true, tail: 40 })).toString('utf8');
            const health = state.Health?.Log?.slice(-1)[0]?.Output ?? '';
            throw new Error(`${d.name} is not ready (${state.Status}, exit ${state.ExitCode}, health ${state.Health?.Status ?? 'none'}${health ? `: ${health.trim()}` : ''}); its log:\n${log}`);
          }
          await sleep(1000);
        }
      }
    },
    destroy,
  };
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command in a running container (docker exec through the Engine API) and waits for it:
 * as `user` (default: the image's), with `env` added to the container's.
 */
export async function execIn(container: Docker.Container, cmd: readonly string[], options: { user?: string; env?: Record<string, string> } = {}): Promise<ExecResult> {
  const exec = await container.exec({
    Cmd: [...cmd],
    User: options.user,
    Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const sink = (chunks: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
  container.modem.demuxStream(stream, sink(stdout), sink(stderr));
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
}
