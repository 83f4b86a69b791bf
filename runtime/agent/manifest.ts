/**
 * manifest.json: what one backup is, written last into its folder. It travels with the backup
 * (off-site too), so a copy fetched years later still says what it holds and how to check it.
 */
import { z } from 'zod';

export const MANIFEST_FILE = 'manifest.json';

const fileEntry = z.object({
  /** Relative to the backup folder, '/'-separated. */
  path: z.string(),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const checkResult = z.object({
  at: z.string(),
  /** e.g. "pg_restore --list", "redis-check-rdb", "test-restore+row-counts". */
  method: z.string(),
  result: z.enum(['passed', 'failed']),
  details: z.string().optional(),
});

const offsiteState = z.object({
  status: z.enum(['pending', 'uploaded', 'failed']),
  at: z.string().optional(),
  error: z.string().optional(),
  /** Where the copy lives: s3://bucket/prefix/job/id/. */
  location: z.string().optional(),
});

export const manifestSchema = z.object({
  /**
   * 1: every backup before chunked tables. 2: a Postgres backup whose big tables' rows are in
   * chunk files beside the archive (`details.databases.*.split`); an agent that knows only 1
   * refuses it instead of restoring those tables empty.
   */
  formatVersion: z.union([z.literal(1), z.literal(2)]),
  tenant: z.string(),
  environment: z.string(),
  job: z.string(),
  kind: z.enum(['postgres', 'redis', 'qdrant', 'minio']),
  id: z.string(),
  /** Only 'ok' backups are restorable; a 'failed' manifest is a record of the failure. */
  status: z.enum(['ok', 'failed']),
  startedAt: z.string(),
  endedAt: z.string(),
  sizeBytes: z.number().int().min(0),
  files: z.array(fileEntry),
  /** The server backed up: its version and, where it matters, which one (e.g. a Redis replica). */
  source: z.object({ version: z.string(), address: z.string().optional(), role: z.string().optional() }),
  /** Versions of the programs that wrote the files (pg_dump, redis-cli, …). */
  tools: z.record(z.string(), z.string()),
  /** The fast check every run does before the backup counts as finished. */
  check: checkResult.optional(),
  /** A deeper check done later (Postgres test restore; checksums for the other kinds). */
  verified: checkResult.optional(),
  offsite: offsiteState.optional(),
  error: z.string().optional(),
  /** Kind-specific facts the restore or verification needs (e.g. row counts at dump time). */
  details: z.record(z.string(), z.unknown()).default({}),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestFile = z.infer<typeof fileEntry>;
export type CheckResult = z.infer<typeof checkResult>;
export type OffsiteState = z.infer<typeof offsiteState>;

export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: manifest is not JSON (${(e as Error).message})`);
  }
  const result = manifestSchema.safeParse(value);
  if (!result.success) throw new Error(`${where}: manifest is malformed: ${result.error.issues[0]?.message ?? 'unknown problem'}`);
  return result.data;
}

export function renderManifest(manifest: Manifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** A good backup: finished, passed its check, and not failed by a later verification. */
export function isGood(manifest: Manifest): boolean {
  return isIntact(manifest) && manifest.verified?.result !== 'failed';
}

/**
 * Finished and passed its check: its files are what the run wrote. A later verification that
 * disagreed does not change that, so such a backup is still kept by retention and restorable on
 * request (`restore --ignore-verification`); its files are checked against their sha256 first.
 */
export function isIntact(manifest: Manifest): boolean {
  return manifest.status === 'ok' && manifest.check?.result === 'passed';
}
