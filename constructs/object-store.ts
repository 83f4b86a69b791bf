import { Construct } from 'constructs';
import { SERVICE_PORTS } from '../config/ports';
import { MINIO_SETUP_ENV, renderMinioSetup } from '../runtime/render/minio-setup';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer, SIDE_CONTAINER_MEMORY_MB } from './service-container';
import { StatefulServiceProps, StatefulVolume } from './storage';

export interface ObjectStoreBucket {
  readonly name: string;
  /** Keep every version of an object (MinIO versioning). */
  readonly versioned: boolean;
}

export interface ObjectStoreProps extends StatefulServiceProps {
  /** The S3-compatible server image (MinIO by default; any S3-compatible image with the same env contract). */
  readonly image: string;
  /** The `mc` client image that creates buckets after start. */
  readonly clientImage: string;
  /** Created after the server starts; the users' policies reach exactly these. */
  readonly buckets: readonly ObjectStoreBucket[];
  /** The container's memory limit in MiB. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /** Host ports for the S3 API (9000) and console (9001). @default not published */
  readonly publishedPorts?: {
    /** Where the host publishes the S3 API. */
    readonly api: HostPort;
    /** Where the host publishes the web console. */
    readonly console: HostPort;
  };
}

/** An access key and a reference to its secret (never the value). */
export interface ObjectStoreCredential {
  readonly accessKey: string;
  readonly secretKey: string;
}

/**
 * S3-compatible object storage (MinIO). Buckets, their versioning and two users are set after the
 * server starts by a one-shot `mc` container, idempotently, so adding a bucket to the config adds
 * it (and extends both users' policies to it). Root goes only to the server, the setup container
 * and the operators' output; applications and the backup agent get users limited to the buckets.
 */
export class ObjectStore extends Construct {
  readonly endpoint: string;
  /** For operators only (and a restore, which writes): never for applications. */
  readonly root: ObjectStoreCredential;
  /** Read, write and list on the tenant's buckets. Absent when the config lists no bucket. */
  readonly application?: ObjectStoreCredential;
  /** Exactly what the backup job calls: list and read the tenant's buckets. Absent when the config lists no bucket. */
  readonly backup?: ObjectStoreCredential;
  readonly buckets: readonly ObjectStoreBucket[];

  constructor(scope: Construct, id: string, props: ObjectStoreProps) {
    super(scope, id);
    this.buckets = props.buckets;
    this.root = { accessKey: `${props.tenant}-admin`, secretKey: generatedSecret(this, 'root-password') };
    const data = new StatefulVolume(this, 'data', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'minio',
      purpose: 'data',
      storage: props.storage,
      override: props.storageOverride,
      containerPath: '/data',
    });
    const credentials = { [MINIO_SETUP_ENV.rootUser]: this.root.accessKey, [MINIO_SETUP_ENV.rootPassword]: this.root.secretKey };
    const server = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'minio',
      image: props.image,
      network: props.network,
      launch: { files: [], command: ['server', '/data', '--console-address', `:${SERVICE_PORTS.minioConsole}`], env: Object.keys(credentials) },
      env: credentials,
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPorts && [
        { internal: SERVICE_PORTS.minioApi, host: props.publishedPorts.api },
        { internal: SERVICE_PORTS.minioConsole, host: props.publishedPorts.console },
      ],
      healthcheck: 'mc ready local',
    });
    this.endpoint = `http://${server.hostname}:${SERVICE_PORTS.minioApi}`;

    if (this.buckets.length > 0) {
      this.application = { accessKey: `${props.tenant}-app`, secretKey: generatedSecret(this, 'application-password') };
      this.backup = { accessKey: `${props.tenant}-backup`, secretKey: generatedSecret(this, 'backup-password') };
      new ServiceContainer(this, 'setup', {
        environment: props.environment,
        tenant: props.tenant,
        service: 'minio-setup',
        image: props.clientImage,
        network: props.network,
        launch: renderMinioSetup({
          endpoint: this.endpoint,
          buckets: this.buckets.map((b) => ({ name: b.name, versioned: b.versioned })),
          applicationUser: this.application.accessKey,
          backupUser: this.backup.accessKey,
        }),
        env: { ...credentials, [MINIO_SETUP_ENV.applicationSecret]: this.application.secretKey, [MINIO_SETUP_ENV.backupSecret]: this.backup.secretKey },
        memoryMb: SIDE_CONTAINER_MEMORY_MB,
        oneShot: true,
        dependsOn: [server.resource],
      });
    }
  }
}
