/**
 * Stand-ins for what cannot run here (see shared/TESTING.md):
 * - S3: s3rver, an implementation of the S3 REST protocol (not AWS, not MinIO);
 * - Qdrant: a small HTTP server that follows Qdrant's documented snapshot API
 *   (https://qdrant.tech/documentation/concepts/snapshots/), since no Qdrant can run here.
 */
import { createHash, randomBytes } from 'crypto';
import * as http from 'http';
import * as net from 'net';
import { freePort, tempDir } from '../helpers/servers';

// ------------------------------------------------------------------------------------ s3rver

/** The part of s3rver's API these tests use (it ships no type declarations). */
interface S3rverInstance {
  run(): Promise<net.AddressInfo>;
  close(): Promise<void>;
  httpServer?: http.Server;
}
type S3rverClass = new (options: { port: number; address: string; silent: boolean; directory: string; configureBuckets: { name: string }[] }) => S3rverInstance;
const S3rver = require('s3rver') as S3rverClass;

export interface S3StandIn {
  readonly endpoint: string;
  readonly port: number;
  readonly directory: string;
  /** Stops answering (sockets closed at once, as a crashed server would). */
  stop(): Promise<void>;
  /** Starts again on the same port with the same stored objects. */
  restart(): Promise<void>;
}

/** Credentials s3rver accepts (its documented defaults). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3StandIn(buckets: string[]): Promise<S3StandIn> {
  const port = await freePort();
  const directory = tempDir('s3rver');
  let server: S3rverInstance | undefined;
  const start = async () => {
    server = new S3rver({ port, address: '127.0.0.1', silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
    await server.run();
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    stop: async () => {
      server?.httpServer?.closeAllConnections();
      await server?.close();
      server = undefined;
    },
    restart: start,
  };
}

// ------------------------------------------------------------------------- Qdrant stand-in

export interface QdrantStandInOptions {
  apiKey: string;
  /** Collection name -> size of its (random) data; a snapshot of it is exactly this data. */
  collections: Record<string, number>;
}

export interface QdrantStandIn {
  readonly url: string;
  /** Current data of each collection (changed by snapshot uploads). */
  readonly collections: Map<string, Buffer>;
  /** Snapshots that exist on the "server" (`collection/name`). */
  readonly snapshots: Map<string, Buffer>;
  /** Every request as `METHOD path`, with whether its api-key was right. */
  readonly requests: { route: string; authorized: boolean }[];
  /** Make the next snapshot descriptions carry a wrong checksum. */
  reportWrongChecksum: boolean;
  /** Delay before answering a snapshot creation (to hold a run open). */
  snapshotDelayMs: number;
  close(): Promise<void>;
}

function json(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function readBody(request: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** The `snapshot` file field of a multipart/form-data body. */
function multipartFile(body: Buffer, contentType: string, field: string): Buffer | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  let start = body.indexOf(delimiter);
  while (start >= 0) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next < 0) return undefined;
    const part = body.subarray(start + delimiter.length + 2, next - 2);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (part.subarray(0, headerEnd).toString().includes(`name="${field}"`)) return part.subarray(headerEnd + 4);
    start = next;
  }
  return undefined;
}

export async function startQdrantStandIn(options: QdrantStandInOptions): Promise<QdrantStandIn> {
  const port = await freePort();
  const collections = new Map<string, Buffer>(Object.entries(options.collections).map(([name, size]) => [name, randomBytes(size)]));
  const snapshots = new Map<string, Buffer>();
  const requests: QdrantStandIn['requests'] = [];
  let counter = 0;
  const state = { reportWrongChecksum: false, snapshotDelayMs: 0 };

  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://stand-in');
    const route = `${request.method} ${decodeURIComponent(url.pathname)}`;
    const authorized = request.headers['api-key'] === options.apiKey;
    requests.push({ route, authorized });
    const body = await readBody(request);
    if (!authorized) return json(response, 401, { status: { error: 'Must provide an API key or an Authorization bearer token' } });

    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const missing = (name: string) => json(response, 404, { status: { error: `Not found: Collection \`${name}\` doesn't exist!` } });
    if (route === 'GET /') return json(response, 200, { title: 'qdrant - vector search engine', version: '1.12.4' });
    if (route === 'GET /collections') return json(response, 200, { result: { collections: [...collections.keys()].map((name) => ({ name })) }, status: 'ok', time: 0 });
    const [root, name, sub, snapshotName] = parts;
    if (root !== 'collections' || name === undefined) return json(response, 404, { status: { error: 'unknown route' } });

    if (request.method === 'GET' && sub === undefined) {
      const data = collections.get(name);
      if (!data) return missing(name);
      return json(response, 200, { result: { status: 'green', points_count: data.length > 0 ? 1 : 0 }, status: 'ok', time: 0 });
    }
    if (request.method === 'POST' && sub === 'snapshots' && snapshotName === undefined) {
      const data = collections.get(name);
      if (!data) return missing(name);
      await new Promise((resolve) => setTimeout(resolve, state.snapshotDelayMs));
      const snapshot = `${name}-${++counter}-2025-06-30-02-15-00.snapshot`;
      snapshots.set(`${name}/${snapshot}`, Buffer.from(data));
      const checksum = state.reportWrongChecksum ? '0'.repeat(64) : createHash('sha256').update(data).digest('hex');
      return json(response, 200, { result: { name: snapshot, creation_time: '2025-06-30T02:15:00', size: data.length, checksum }, status: 'ok', time: 0.1 });
    }
    if (request.method === 'POST' && sub === 'snapshots' && snapshotName === 'upload') {
      const file = multipartFile(body, request.headers['content-type'] ?? '', 'snapshot');
      if (!file) return json(response, 400, { status: { error: 'no snapshot file in the form' } });
      const expected = url.searchParams.get('checksum');
      if (expected && createHash('sha256').update(file).digest('hex') !== expected) return json(response, 400, { status: { error: 'Checksum mismatch' } });
      collections.set(name, file);
      return json(response, 200, { result: true, status: 'ok', time: 0.1 });
    }
    const key = `${name}/${snapshotName}`;
    if (sub === 'snapshots' && snapshotName !== undefined && request.method === 'GET') {
      const data = snapshots.get(key);
      if (!data) return json(response, 404, { status: { error: `Snapshot ${snapshotName} not found` } });
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
      return response.end(data);
    }
    if (sub === 'snapshots' && snapshotName !== undefined && request.method === 'DELETE') {
      return snapshots.delete(key) ? json(response, 200, { result: true, status: 'ok', time: 0 }) : json(response, 404, { status: { error: 'not found' } });
    }
    json(response, 404, { status: { error: 'unknown route' } });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    collections,
    snapshots,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}
