import { Container, ContainerHealthcheck } from '@cdktf/provider-docker/lib/container';
import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import type { ContainerLaunch } from '../runtime/render/types';
import { CONTAINER_PRIVILEGES, ContainerService, NO_NEW_PRIVILEGES } from './container-privileges';
import { containerName, tenantryLabels } from './naming';
import { escapeTerraformTemplate, uploadBlocks } from './terraform-text';
import type { VolumeMount } from './storage';

export interface ServiceContainerProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /**
   * The service this container belongs to; becomes the `tenantry.service` label and part of the
   * name, and decides what the container may do (constructs/container-privileges.ts).
   */
  readonly service: ContainerService;
  /** Numbers containers of a service that runs several (redis-0, sentinel-1). @default no number */
  readonly index?: number;
  /** Image ID or reference (pinned; the image policy aspect checks it). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** Rendered files, entrypoint and command, and the env var names the container needs. */
  readonly launch: ContainerLaunch;
  /** Values for every variable `launch.env` names (secrets as Terraform references). */
  readonly env: Readonly<Record<string, string>>;
  /** The container's memory limit in MiB: Docker kills the container beyond it. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no limit */
  readonly cpus?: number;
  /** Volumes and host paths mounted into the container. @default no volumes */
  readonly volumes?: readonly VolumeMount[];
  /** Container ports published on the Docker host. @default none */
  readonly publishedPorts?: readonly { readonly internal: number; readonly host: HostPort }[];
  /** A shell command that exits 0 when the service is healthy. @default no healthcheck */
  readonly healthcheck?: string;
  /** One-shot containers (setup jobs) run once and are not restarted. @default false */
  readonly oneShot?: boolean;
  /** Resources that must exist before this container starts. @default none */
  readonly dependsOn?: ITerraformDependable[];
}

/**
 * The memory limit of the small containers beside a service (a setup job, a sentinel): a shell and
 * one client, which fit in 64 MiB with room to spare.
 */
export const SIDE_CONTAINER_MEMORY_MB = 64;

/**
 * Docker's json-file driver keeps a container's log forever unless told otherwise: at most three
 * files of 10 MB each per container bounds the disk a chatty or crash-looping service can fill.
 */
const LOG_ROTATION = { 'max-size': '10m', 'max-file': '3' };

/**
 * Probe every 10 s, allow 5 s for an answer, call the container unhealthy after 5 misses in a row;
 * the first 30 s of a start (Postgres recovery, Redis loading its RDB) do not count.
 */
const HEALTHCHECK_TIMING = { interval: '10s', timeout: '5s', retries: 5, startPeriod: '30s' };

/** A port on the Docker host and the host address it listens on (the environment's `ports.address`). */
export interface HostPort {
  readonly address: string;
  readonly port: number;
}

/**
 * Every container Tenantry creates goes through here, so that the rules every container must
 * follow (name, hostname, labels, network, memory limit, uploads escaped for Terraform, restart
 * policy, no new privileges, only its service's capabilities) hold by construction rather than by
 * each service remembering them.
 */
export class ServiceContainer extends Construct {
  /** Name and hostname on the environment network. */
  readonly hostname: string;
  readonly resource: Container;
  private readonly volumes: VolumeMount[];

  constructor(scope: Construct, id: string, props: ServiceContainerProps) {
    super(scope, id);
    validateEnv(props);
    if (!(props.memoryMb > 0)) throw new Error(`${props.service}: memoryMb must be positive (value: ${props.memoryMb})`);
    this.hostname = containerName(props.environment, props.tenant, props.service, props.index);
    const privileges = CONTAINER_PRIVILEGES[props.service];
    if (privileges.readOnlyRootFilesystem && props.launch.files.length > 0) {
      throw new Error(`${props.service}: the container's root file system is read-only, so Docker would refuse its upload(s) ${props.launch.files.map((f) => f.path).join(', ')}; pass them through the environment or a volume`);
    }

    this.resource = new Container(this, 'container', {
      name: this.hostname,
      hostname: this.hostname,
      image: props.image,
      // Arguments come from YAML too (Postgres `-c key=value`): Terraform must pass "${" through.
      entrypoint: props.launch.entrypoint?.map(escapeTerraformTemplate),
      command: props.launch.command?.map(escapeTerraformTemplate),
      env: Object.keys(props.env)
        .sort()
        .map((k) => `${k}=${props.env[k]}`),
      upload: uploadBlocks(props.launch.files),
      memory: props.memoryMb,
      cpus: props.cpus === undefined ? undefined : String(props.cpus),
      labels: tenantryLabels(props.environment, props.tenant, props.service),
      networksAdvanced: [{ name: props.network, aliases: [this.hostname] }],
      volumes: props.volumes?.map(volumeBlock),
      ports: props.publishedPorts?.map((p) => ({ internal: p.internal, external: p.host.port, ip: p.host.address })),
      securityOpts: [NO_NEW_PRIVILEGES],
      capabilities: { drop: ['ALL'], add: privileges.capabilities.length > 0 ? [...privileges.capabilities] : undefined },
      readOnly: privileges.readOnlyRootFilesystem || undefined,
      healthcheck: props.healthcheck ? healthcheck(props.healthcheck) : undefined,
      restart: props.oneShot ? 'no' : 'unless-stopped',
      mustRun: !props.oneShot,
      attach: false,
      logDriver: 'json-file',
      logOpts: { ...LOG_ROTATION },
      dependsOn: props.dependsOn,
    });
    this.volumes = [...(props.volumes ?? [])];
  }

  /** Mounts a volume another construct owns (created after this container), e.g. the backup volume. */
  addVolume(mount: VolumeMount): void {
    this.volumes.push(mount);
    this.resource.putVolumes(this.volumes.map(volumeBlock));
  }
}

function volumeBlock(v: VolumeMount) {
  return { containerPath: v.containerPath, volumeName: v.volumeName, hostPath: v.hostPath, readOnly: v.readOnly };
}

function healthcheck(command: string): ContainerHealthcheck {
  return { test: ['CMD-SHELL', command], ...HEALTHCHECK_TIMING };
}

function validateEnv(props: ServiceContainerProps): void {
  const missing = props.launch.env.filter((name) => props.env[name] === undefined);
  if (missing.length > 0) {
    throw new Error(`${props.service}: the container needs environment variable(s) ${missing.join(', ')} but no value was given`);
  }
}
