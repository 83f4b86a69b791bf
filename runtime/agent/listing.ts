/** `tenantry-agent list`: the backups as a table for people, or as JSON for scripts. */
import { BackupEntry, startedAtFromId } from './store';

export interface ListedBackup {
  job: string;
  id: string;
  /** `local`: on the backup volume (and maybe off-site too, see `offsite`); `offsite`: only the off-site bucket still holds it (`restore --from-offsite`). */
  location: 'local' | 'offsite';
  /** ok | failed | running | interrupted | damaged; an off-site-only backup: ok (the bucket holds only finished backups) */
  status: string;
  startedAt: string;
  endedAt: string | null;
  durationSeconds: number | null;
  sizeBytes: number | null;
  verified: { at: string; result: string; method: string } | null;
  offsite: string | null;
  problem: string | null;
}

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
  };
}

/** A backup retention removed here that the bucket still holds: the rest of its facts are in its manifest there. */
export function describeOffsiteOnly(job: string, id: string): ListedBackup {
  return { job, id, location: 'offsite', status: 'ok', startedAt: startedAtFromId(id).toISOString(), endedAt: null, durationSeconds: null, sizeBytes: null, verified: null, offsite: 'uploaded', problem: null };
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
