/**
 * Qdrant: one snapshot per collection through the HTTP API (create, download, compare with the
 * sha256 Qdrant reports, delete on the server). Per-collection rather than full-storage snapshots
 * because only those can be restored through the API (a full snapshot needs a server restart
 * with --storage-snapshot), and a restore target here is a collection.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import type { JobConfig } from '../config';
import { secretFromEnv } from '../config';
import { sha256File } from '../durable';
import { UserError } from '../errors';
import { BackupOutcome, DriverContext, JobDriver, RestoreRequest, selectParts } from './driver';

type QdrantJob = Extract<JobConfig, { kind: 'qdrant' }>;

interface SnapshotDescription {
  name: string;
  size: number;
  checksum?: string | null;
}

interface QdrantDetails {
  collections: Record<string, { file: string; snapshot: string; sha256: string; size: number }>;
}

const fileOf = (collection: string) => `${collection}.snapshot`;

export class QdrantDriver implements JobDriver {
  private readonly qdrant: QdrantJob['qdrant'];

  constructor(job: QdrantJob) {
    this.qdrant = job.qdrant;
  }

  async backup(dir: string, ctx: DriverContext): Promise<BackupOutcome> {
    const api = this.api(ctx);
    const version = (await api.serverInfo()).version ?? 'unknown';
    const collections = this.qdrant.collections ?? (await this.listCollections(api));
    const details: QdrantDetails = { collections: {} };
    for (const collection of collections) {
      details.collections[collection] = await this.snapshotCollection(api, collection, dir, ctx);
    }
    return { source: { version, address: this.qdrant.url }, tools: {}, details: { ...details } };
  }

  private async listCollections(api: QdrantApi): Promise<string[]> {
    const result = (await api.json('GET', '/collections')) as { collections: { name: string }[] };
    return result.collections.map((c) => c.name).sort();
  }

  private async snapshotCollection(api: QdrantApi, collection: string, dir: string, ctx: DriverContext): Promise<QdrantDetails['collections'][string]> {
    const base = `/collections/${encodeURIComponent(collection)}/snapshots`;
    const snapshot = (await api.json('POST', `${base}?wait=true`)) as SnapshotDescription;
    try {
      const file = fileOf(collection);
      const sha256 = await api.download(`${base}/${encodeURIComponent(snapshot.name)}`, path.join(dir, file));
      if (snapshot.checksum && snapshot.checksum !== sha256) {
        throw new Error(`snapshot ${snapshot.name} of ${collection}: downloaded sha256 ${sha256} differs from Qdrant's ${snapshot.checksum}`);
      }
      if (!snapshot.checksum) ctx.log.warn('Qdrant reported no checksum for the snapshot; only the manifest checksum protects it', { collection });
      ctx.log.info('collection snapshot downloaded', { collection, snapshot: snapshot.name, size: snapshot.size });
      return { file, snapshot: snapshot.name, sha256, size: snapshot.size };
    } finally {
      // Snapshots fill the server's snapshot volume; the copy here is what we keep.
      await api.json('DELETE', `${base}/${encodeURIComponent(snapshot.name)}?wait=true`).catch((error: Error) =>
        ctx.log.warn('could not delete the snapshot on the server', { collection, snapshot: snapshot.name, error: error.message }),
      );
    }
  }

  /** Each file against the sha256 Qdrant reported when it made the snapshot. */
  async check(dir: string, details: Record<string, unknown>): Promise<string> {
    const { collections } = details as unknown as QdrantDetails;
    for (const [collection, entry] of Object.entries(collections)) {
      const actual = await sha256File(path.join(dir, entry.file));
      if (actual !== entry.sha256) throw new Error(`${entry.file} (collection ${collection}) has sha256 ${actual}, Qdrant reported ${entry.sha256}`);
    }
    return `${Object.keys(collections).length} collection snapshots match Qdrant's checksums`;
  }

  async restore(request: RestoreRequest, ctx: DriverContext): Promise<string> {
    const { collections } = request.manifest.details as unknown as QdrantDetails;
    const sources = selectParts(Object.keys(collections), request.only, 'collection');
    if (request.target !== undefined && sources.length > 1) {
      throw new UserError(`--target names one collection but the backup has ${sources.length} (${sources.join(', ')}); add --only <collection>`);
    }
    const api = this.api(ctx);
    const done: string[] = [];
    for (const source of sources) {
      const target = request.target ?? source;
      await this.refuseNonEmpty(api, target, request.force);
      const entry = collections[source];
      const query = `priority=snapshot&wait=true&checksum=${entry.sha256}`;
      await api.upload(`/collections/${encodeURIComponent(target)}/snapshots/upload?${query}`, path.join(request.dir, entry.file));
      done.push(source === target ? target : `${source} -> ${target}`);
    }
    return `restored collection(s) ${done.join(', ')} on ${this.qdrant.url}`;
  }

  private async refuseNonEmpty(api: QdrantApi, collection: string, force: boolean): Promise<void> {
    const info = (await api.json('GET', `/collections/${encodeURIComponent(collection)}`, { allowNotFound: true })) as { points_count?: number } | undefined;
    const points = info?.points_count ?? 0;
    if (points > 0 && !force) throw new UserError(`collection "${collection}" already holds ${points} points; restore into another --target, or pass --force to replace it`);
  }

  private api(ctx: DriverContext): QdrantApi {
    return new QdrantApi(this.qdrant.url, secretFromEnv(this.qdrant.apiKeyEnv, ctx.env), ctx.signal);
  }
}

/** Qdrant's REST conventions: `api-key` header, JSON bodies `{ result, status, time }`. */
class QdrantApi {
  constructor(private readonly url: string, private readonly apiKey: string, private readonly signal: AbortSignal) {}

  async json(method: string, route: string, options: { allowNotFound?: boolean } = {}): Promise<unknown> {
    const response = await this.request(method, route);
    if (response.status === 404 && options.allowNotFound) return undefined;
    await this.ensureOk(response, method, route);
    return ((await response.json()) as { result: unknown }).result;
  }

  /** `GET /` answers `{ title, version }` unwrapped, unlike every other route. */
  async serverInfo(): Promise<{ version?: string }> {
    const response = await this.request('GET', '/');
    await this.ensureOk(response, 'GET', '/');
    return (await response.json()) as { version?: string };
  }

  /** Streams a file to disk and returns its sha256. */
  async download(route: string, file: string): Promise<string> {
    const response = await this.request('GET', route);
    await this.ensureOk(response, 'GET', route);
    if (response.body === null) throw new Error(`GET ${route}: empty response`);
    const hash = createHash('sha256');
    await pipeline(
      Readable.fromWeb(response.body as import('stream/web').ReadableStream<Uint8Array>),
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          yield chunk;
        }
      },
      fs.createWriteStream(file),
    );
    return hash.digest('hex');
  }

  async upload(route: string, file: string): Promise<void> {
    const form = new FormData();
    form.append('snapshot', await fs.openAsBlob(file), path.basename(file));
    const response = await this.request('POST', route, form);
    await this.ensureOk(response, 'POST', route);
  }

  private async request(method: string, route: string, body?: FormData): Promise<Response> {
    try {
      return await fetch(`${this.url.replace(/\/$/, '')}${route}`, { method, body, headers: { 'api-key': this.apiKey }, signal: this.signal });
    } catch (error) {
      throw new Error(`Qdrant at ${this.url} is unreachable (${method} ${route}): ${(error as Error).cause ?? (error as Error).message}`);
    }
  }

  private async ensureOk(response: Response, method: string, route: string): Promise<void> {
    if (response.ok) return;
    const text = (await response.text()).slice(0, 500);
    throw new Error(`Qdrant ${method} ${route} answered ${response.status}: ${text}`);
  }
}
