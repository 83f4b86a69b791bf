/**
 * manifest.json: what one backup is, written last into its folder. It travels with the backup
 * (off-site too), so a copy fetched years later still says what it holds and how to check it.
 *
 * The manifest carries its own checksum, `checksum: "sha256:<hex>"`, the last key: the sha256 of
 * the manifest's text as rendered here without that key. One file, so the atomic rewrite that
 * records a verification or an off-site copy keeps text and checksum together. A manifest whose
 * checksum does not match is damaged and refused before anything is restored, verified or
 * uploaded. A manifest without the key was written by an agent before checksums: it is read, and
 * listed as "manifest without checksum" (its data files are still checked against their sha256),
 * unless it shows it is not that old: a field only checksum-writing agents write, or a key that
 * looks like "checksum" with a byte changed. Otherwise one damaged byte in the key's name would
 * pass any change to the rest as a legacy manifest.
 */
import { createHash } from 'crypto';
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
  kind: z.enum(['postgres', 'postgres-pitr', 'redis', 'qdrant', 'minio']),
  id: z.string(),
  /**
   * What started the run: the schedule of `serve`, or `tenantry-agent run` by hand. Retention
   * never lets a manual backup displace a scheduled one (retention.ts). Absent in manifests written
   * before this field: counted as scheduled.
   */
  trigger: z.enum(['schedule', 'manual']).optional(),
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
export type Trigger = NonNullable<Manifest['trigger']>;
export type ManifestFile = z.infer<typeof fileEntry>;
export type CheckResult = z.infer<typeof checkResult>;
export type OffsiteState = z.infer<typeof offsiteState>;

const CHECKSUM_KEY = 'checksum';
/**
 * Fields that came with the checksum (agents before it never wrote them), each with why: their
 * presence in a manifest without a checksum means the checksum key was lost or damaged.
 */
const WRITTEN_ONLY_WITH_CHECKSUM: readonly string[] = [
  // Added by the same change as the checksum (manual runs); every manifest since carries it.
  'trigger',
];
/** How many characters of a key may differ from "checksum" for it to count as a damaged one. */
const CHECKSUM_KEY_LOOKALIKE_DIFFERENCES = 2;

/** `verified`: the manifest's own checksum matched; `absent`: written before checksums. */
export type ManifestIntegrity = 'verified' | 'absent';

/** The manifest's text without its checksum, the text the checksum covers. */
const renderBody = (value: object) => `${JSON.stringify(value, null, 2)}\n`;
const digestOf = (body: string) => `sha256:${createHash('sha256').update(body).digest('hex')}`;

/** Reads a manifest; a damaged one (bad JSON, wrong checksum, wrong shape) throws, naming `where`. */
export function readManifest(text: string, where: string): { manifest: Manifest; integrity: ManifestIntegrity } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: manifest is not JSON (${(e as Error).message})`);
  }
  let integrity: ManifestIntegrity = 'absent';
  if (typeof value === 'object' && value !== null && CHECKSUM_KEY in value) {
    const { [CHECKSUM_KEY]: recorded, ...body } = value as Record<string, unknown>;
    const actual = digestOf(renderBody(body));
    if (recorded !== actual) throw new Error(`${where}: manifest is damaged: its checksum is ${String(recorded)}, its content hashes to ${actual}`);
    value = body;
    integrity = 'verified';
  } else if (typeof value === 'object' && value !== null) {
    refuseFalseLegacy(value as Record<string, unknown>, where);
  }
  const result = manifestSchema.safeParse(value);
  if (!result.success) throw new Error(`${where}: manifest is malformed: ${result.error.issues[0]?.message ?? 'unknown problem'}`);
  return { manifest: result.data, integrity };
}

/** A manifest without a checksum that an agent before checksums cannot have written is damaged. */
function refuseFalseLegacy(value: Record<string, unknown>, where: string): void {
  const newer = WRITTEN_ONLY_WITH_CHECKSUM.find((key) => key in value);
  if (newer !== undefined) {
    throw new Error(`${where}: manifest is damaged: it has no "${CHECKSUM_KEY}" key but carries "${newer}", which only agents that write checksums write`);
  }
  const known = new Set(Object.keys(manifestSchema.shape));
  const lookalike = Object.keys(value).find((key) => !known.has(key) && looksLikeChecksumKey(key, value[key]));
  if (lookalike !== undefined) {
    throw new Error(`${where}: manifest is damaged: its key ${JSON.stringify(lookalike)} looks like a damaged "${CHECKSUM_KEY}" key`);
  }
}

/**
 * A changed byte keeps the name's length (an invalid UTF-8 byte reads as one U+FFFD) and the
 * value's "sha256:" prefix, unless it hit the value too.
 */
function looksLikeChecksumKey(key: string, recorded: unknown): boolean {
  if (typeof recorded === 'string' && recorded.startsWith('sha256:')) return true;
  if (key.length !== CHECKSUM_KEY.length) return false;
  let differences = 0;
  for (let i = 0; i < key.length; i++) if (key[i].toLowerCase() !== CHECKSUM_KEY[i]) differences++;
  return differences <= CHECKSUM_KEY_LOOKALIKE_DIFFERENCES;
}

export function parseManifest(text: string, where: string): Manifest {
  return readManifest(text, where).manifest;
}

export function renderManifest(manifest: Manifest): string {
  const body = JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>;
  return renderBody({ ...body, [CHECKSUM_KEY]: digestOf(renderBody(body)) });
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
