/** `tenantry-agent list`: the backups as a table for people, or as JSON for scripts. */
import { z } from 'zod';
import { BackupEntry, startedAtFromId } from './store';

/** One backup in `list --json`; the operator CLI reads it with this schema. */
export const listedBackupSchema = z.object({
  job: z.string(),
  id: z.string(),
  /** `local`: on the backup volume (and maybe off-site too, see `offsite`); `offsite`: only the off-site bucket still holds it (`restore --from-offsite`). */
  location: z.enum(['local', 'offsite']),
  /** ok | failed | running | interrupted | damaged; an off-site-only backup: ok (the bucket holds only finished backups) */
  status: z.string(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  durationSeconds: z.number().nullable(),
  sizeBytes: z.number().nullable(),
  verified: z.object({ at: z.string(), result: z.string(), method: z.string() }).nullable(),
  /** pending | uploaded | failed | not configured; null for unfinished runs */
  offsite: z.string().nullable(),
  problem: z.string().nullable(),
  /** What a restore of it replaces: its databases, collections or buckets (`--only` picks one); empty for Redis (one keyspace) and for unfinished runs. */
  contents: z.array(z.string()),
});

export type ListedBackup = z.infer<typeof listedBackupSchema>;

export function describeEntry(entry: BackupEntry): ListedBackup {
  const m = entry.manifest;
  const verified = entry.state === 'ok' ? m?.verified : undefined;
  return {
    job: entry.job,
    id: entry.id,
    location: 'local',
    status: entry.state,
    startedAt: entry.startedAt.toISOString(),
    endedAt: m?.endedAt ?? null,
    durationSeconds: m ? Math.round((Date.parse(m.endedAt) - Date.parse(m.startedAt)) / 1000) : null,
    sizeBytes: entry.state === 'ok' ? (m?.sizeBytes ?? null) : null,
    verified: verified ? { at: verified.at, result: verified.result, method: verified.method } : null,
    offsite: entry.state === 'ok' ? (m?.offsite?.status ?? 'not configured') : null,
    problem: entry.problem ?? null,
    contents: entry.state === 'ok' && m ? contentsOf(m.details) : [],
  };
}

/** The parts of a backup a restore can pick with --only, by kind: the keys of its details' databases, collections or buckets. */
function contentsOf(details: Record<string, unknown>): string[] {
  const parts = details.databases ?? details.collections ?? details.buckets;
  return parts !== null && typeof parts === 'object' ? Object.keys(parts).sort() : [];
}

/** A backup retention removed here that the bucket still holds: the rest of its facts are in its manifest there. */
export function describeOffsiteOnly(job: string, id: string): ListedBackup {
  return { job, id, location: 'offsite', status: 'ok', startedAt: startedAtFromId(id).toISOString(), endedAt: null, durationSeconds: null, sizeBytes: null, verified: null, offsite: 'uploaded', problem: null, contents: [] };
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

function localTime(iso: string, timeZone: string): string {
  return new Date(iso).toLocaleString('sv-SE', { timeZone, hour12: false });
}

export function renderTable(rows: ListedBackup[], timeZone: string): string {
  if (rows.length === 0) return 'no backups yet\n';
  const header = ['JOB', 'BACKUP', `STARTED (${timeZone})`, 'DURATION', 'SIZE', 'STATUS', 'VERIFIED', 'OFF-SITE'];
  const body = rows.map((r) => [
    r.job,
    r.id,
    localTime(r.startedAt, timeZone),
    r.durationSeconds === null ? '-' : formatDuration(r.durationSeconds),
    r.sizeBytes === null ? '-' : formatSize(r.sizeBytes),
    r.problem && r.status !== 'ok' ? `${r.status}: ${r.problem.split('\n')[0].slice(0, 60)}` : r.status,
    r.verified ? `${r.verified.result} ${localTime(r.verified.at, timeZone).slice(0, 10)}` : 'no',
    r.location === 'offsite' ? 'only off-site' : (r.offsite ?? '-'),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return `${[line(header), ...body.map(line)].join('\n')}\n`;
}
