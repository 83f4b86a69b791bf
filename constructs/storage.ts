import { Volume } from '@cdktf/provider-docker/lib/volume';
import { Construct } from 'constructs';
import type { StorageConfig } from '../config/model';
import { tenantryLabels } from './naming';

/** How a container mounts a volume: a named Docker volume, or a host path (bind storage). */
export interface VolumeMount {
  readonly containerPath: string;
  readonly volumeName?: string;
  readonly hostPath?: string;
}

/** A service's own storage choice, overriding the environment's. */
export type ServiceStorageOverride = { readonly kind: 'volume' } | { readonly kind: 'bind'; readonly path: string };

/** What every stateful service of a tenant needs: where it runs, and where its data lives. */
export interface StatefulServiceProps {
  readonly environment: string;
  readonly tenant: string;
  readonly image: string;
  readonly network: string;
  /** The environment's storage. */
  readonly storage: StorageConfig;
  /** @default the environment's storage */
  readonly storageOverride?: ServiceStorageOverride;
}

export interface StatefulVolumeProps {
  readonly environment: string;
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
 * One stateful volume on the environment's storage:
 *
 * | storage | what is created                                          | where the data lives                           |
 * |---------|----------------------------------------------------------|------------------------------------------------|
 * | volume  | `docker_volume` (local driver)                           | Docker's volume directory on the host          |
 * | bind    | nothing (Docker creates the host directory on first run) | `<dataRoot>/<tenant>/<service>/<purpose>`      |
 * | nfs     | `docker_volume` with `driver_opts` type=nfs              | `<server>:<export>/<tenant>/<service>/<purpose>` |
 *
 * driver_opts force replacement of the volume in kreuzwerker/docker, so they depend only on the
 * environment's storage settings and the names, never on anything that changes between runs.
 */
export class StatefulVolume extends Construct {
  readonly mount: VolumeMount;
  readonly name: string;

  constructor(scope: Construct, id: string, props: StatefulVolumeProps) {
    super(scope, id);
    this.name = `${props.environment}-${props.tenant}-${props.service}-${props.purpose}`;
    const kind = props.override?.kind ?? props.storage.kind;

    if (props.override?.kind === 'bind') {
      this.mount = { containerPath: props.containerPath, hostPath: `${props.override.path}/${props.service}/${props.purpose}` };
    } else if (kind === 'bind' && props.storage.kind === 'bind') {
      this.mount = { containerPath: props.containerPath, hostPath: `${props.storage.dataRoot}/${props.tenant}/${props.service}/${props.purpose}` };
    } else {
      const driverOpts = kind === 'nfs' && props.storage.kind === 'nfs' ? nfsOptions(props.storage, `${props.tenant}/${props.service}/${props.purpose}`) : undefined;
      const volume = new Volume(this, 'volume', {
        name: this.name,
        driver: 'local',
        driverOpts,
        labels: tenantryLabels(props.environment, props.tenant, props.service),
      });
      this.mount = { containerPath: props.containerPath, volumeName: volume.name };
    }
  }
}

function nfsOptions(nfs: Extract<StorageConfig, { kind: 'nfs' }>, subdirectory: string): Record<string, string> {
  return { type: 'nfs', o: `addr=${nfs.server},${nfs.options}`, device: `:${nfs.export.replace(/\/$/, '')}/${subdirectory}` };
}
