import { Volume } from '@cdktf/provider-docker/lib/volume';
import { Construct } from 'constructs';
import type { StorageConfig } from '../config/model';
import { ServiceStorage, volumeLocation } from '../config/storage-layout';
import { tenantryLabels } from './naming';

/** How a container mounts a volume: a named Docker volume, or a host path (bind storage). */
export interface VolumeMount {
  readonly containerPath: string;
  readonly volumeName?: string;
  readonly hostPath?: string;
  /** @default false */
  readonly readOnly?: boolean;
}

/** A service's own storage choice, overriding the environment's. */
export type ServiceStorageOverride = ServiceStorage;

/** What every stateful service of a tenant needs: where it runs, and where its data lives. */
export interface StatefulServiceProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** Image ID or pinned reference (the image policy aspect checks it). */
  readonly image: string;
  /** The environment's Docker network, on which containers reach each other by name. */
  readonly network: string;
  /** The environment's storage. */
  readonly storage: StorageConfig;
  /** The service's own storage, from its `storage` setting. @default the environment's storage */
  readonly storageOverride?: ServiceStorageOverride;
}

export interface StatefulVolumeProps {
  /** The environment's name: the first part of every container and volume name, and their `tenantry.env` label. */
  readonly environment: string;
  /** The tenant's name: the second part of every container and volume name, and their `tenantry.tenant` label. */
  readonly tenant: string;
  /** The container this volume belongs to, e.g. "postgres" or "redis-1". */
  readonly service: string;
  /** What the volume holds, e.g. "data" or "snapshots". */
  readonly purpose: string;
  /** The environment's storage. */
  readonly storage: StorageConfig;
  /** The service's own storage. @default the environment's storage */
  readonly override?: ServiceStorageOverride;
  /** Where the container sees the volume. */
  readonly containerPath: string;
}

/**
 * One stateful volume, where config/storage-layout.ts says it lives: a named `docker_volume` (local
 * driver; with `driver_opts` type=nfs on NFS storage), or a host path that Docker creates on first
 * run (bind storage, nothing to declare).
 *
 * driver_opts force replacement of the volume in kreuzwerker/docker, so they depend only on the
 * environment's storage settings and the names, never on anything that changes between runs.
 */
export class StatefulVolume extends Construct {
  readonly mount: VolumeMount;

  constructor(scope: Construct, id: string, props: StatefulVolumeProps) {
    super(scope, id);
    const location = volumeLocation(props.storage, props.override, props);
    if (location.kind === 'bind') {
      this.mount = { containerPath: props.containerPath, hostPath: location.hostPath };
      return;
    }
    const volume = new Volume(this, 'volume', {
      name: location.name,
      driver: 'local',
      driverOpts: location.kind === 'nfs' ? { type: 'nfs', o: `addr=${location.server},${location.options}`, device: `:${location.path}` } : undefined,
      labels: tenantryLabels(props.environment, props.tenant, props.service),
    });
    this.mount = { containerPath: props.containerPath, volumeName: volume.name };
  }
}
