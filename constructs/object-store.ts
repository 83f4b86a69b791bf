import { Construct } from 'constructs';
import { renderMinioSetup } from '../runtime/render/minio-setup';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer } from './service-container';
import { StatefulServiceProps, StatefulVolume } from './storage';

export interface ObjectStoreBucket {
  readonly name: string;
  /** @default false */
  readonly versioned?: boolean;
}

export interface ObjectStoreProps extends StatefulServiceProps {
  /** The S3-compatible server image (MinIO by default; any S3-compatible image with the same env contract). */
  readonly image: string;
  /** The `mc` client image that creates buckets after start. */
  readonly clientImage: string;
  /** @default none */
  readonly buckets?: readonly ObjectStoreBucket[];
  readonly memoryMb: number;
  /** @default no CPU limit */
  readonly cpus?: number;
  /** Host ports for the S3 API (9000) and console (9001). @default not published */
  readonly publishedPorts?: { readonly api: HostPort; readonly console: HostPort };
}

/**
 * S3-compatible object storage (MinIO). Buckets and their versioning are set after the server
 * starts by a one-shot `mc` container, idempotently, so adding a bucket to the config adds it.
 */
export class ObjectStore extends Construct {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly buckets: readonly ObjectStoreBucket[];

  constructor(scope: Construct, id: string, props: ObjectStoreProps) {
    super(scope, id);
    this.buckets = props.buckets ?? [];
    this.accessKey = `${props.tenant}-admin`;
    this.secretKey = generatedSecret(this, 'root-password');
    const data = new StatefulVolume(this, 'data', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'minio',
      purpose: 'data',
      storage: props.storage,
      override: props.storageOverride,
      containerPath: '/data',
    });
    const credentials = { MINIO_ROOT_USER: this.accessKey, MINIO_ROOT_PASSWORD: this.secretKey };
    const server = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'minio',
      image: props.image,
      network: props.network,
      launch: { files: [], command: ['server', '/data', '--console-address', ':9001'], env: ['MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD'] },
      env: credentials,
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [data.mount],
      publishedPorts: props.publishedPorts && [
        { internal: 9000, host: props.publishedPorts.api },
        { internal: 9001, host: props.publishedPorts.console },
      ],
      healthcheck: 'mc ready local',
    });
    this.endpoint = `http://${server.hostname}:9000`;

    if (this.buckets.length > 0) {
      new ServiceContainer(this, 'setup', {
        environment: props.environment,
        tenant: props.tenant,
        service: 'minio-setup',
        image: props.clientImage,
        network: props.network,
        launch: renderMinioSetup({ endpoint: this.endpoint, buckets: this.buckets.map((b) => ({ name: b.name, versioned: b.versioned ?? false })) }),
        env: credentials,
        memoryMb: 64,
        oneShot: true,
        dependsOn: [server.resource],
      });
    }
  }
}
