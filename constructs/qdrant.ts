import { Construct } from 'constructs';
import { SERVICE_PORTS } from '../config/ports';
import { generatedSecret } from './secrets';
import { HostPort, ServiceContainer } from './service-container';
import { StatefulServiceProps, StatefulVolume } from './storage';

export interface QdrantProps extends StatefulServiceProps {
  /** The container's memory limit in MiB. */
  readonly memoryMb: number;
  /** CPU limit in cores. @default no CPU limit */
  readonly cpus?: number;
  /** Host ports for the HTTP (6333) and gRPC (6334) APIs. @default not published */
  readonly publishedPorts?: {
    /** Where the host publishes the HTTP API. */
    readonly http: HostPort;
    /** Where the host publishes the gRPC API. */
    readonly grpc: HostPort;
  };
}

/** A vector database with an API key, its storage and its snapshots on separate volumes. */
export class Qdrant extends Construct {
  readonly url: string;
  readonly apiKey: string;

  constructor(scope: Construct, id: string, props: QdrantProps) {
    super(scope, id);
    this.apiKey = generatedSecret(this, 'api-key');
    const volume = (purpose: string, containerPath: string) =>
      new StatefulVolume(this, purpose, {
        environment: props.environment,
        tenant: props.tenant,
        service: 'qdrant',
        purpose,
        storage: props.storage,
        override: props.storageOverride,
        containerPath,
      }).mount;

    const container = new ServiceContainer(this, 'server', {
      environment: props.environment,
      tenant: props.tenant,
      service: 'qdrant',
      image: props.image,
      network: props.network,
      launch: { files: [], env: ['QDRANT__SERVICE__API_KEY'] },
      env: {
        QDRANT__SERVICE__API_KEY: this.apiKey,
        QDRANT__STORAGE__SNAPSHOTS_PATH: '/qdrant/snapshots',
        QDRANT__TELEMETRY_DISABLED: 'true',
      },
      memoryMb: props.memoryMb,
      cpus: props.cpus,
      volumes: [volume('storage', '/qdrant/storage'), volume('snapshots', '/qdrant/snapshots')],
      publishedPorts: props.publishedPorts && [
        { internal: SERVICE_PORTS.qdrantHttp, host: props.publishedPorts.http },
        { internal: SERVICE_PORTS.qdrantGrpc, host: props.publishedPorts.grpc },
      ],
      // The image has bash but no curl; a TCP connect is the honest readiness signal it allows.
      healthcheck: `bash -c ':> /dev/tcp/127.0.0.1/${SERVICE_PORTS.qdrantHttp}'`,
    });
    this.url = `http://${container.hostname}:${SERVICE_PORTS.qdrantHttp}`;
  }
}
