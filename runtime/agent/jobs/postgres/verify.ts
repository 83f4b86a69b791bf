/**
 * Checking a Postgres backup: the cheap check every run does (the archives' tables of contents
 * read, the chunks zstd files, globals.sql present), and verification (every database restored
 * into a scratch copy and its row counts compared with the dump's snapshot).
 */
import * as fs from 'fs';
import * as path from 'path';
import { runTool } from '../../exec';
import type { DriverContext } from '../driver';
import { archiveOf, GLOBALS_FILE, PostgresDetails } from './layout';
import { compareWithDump, loadDatabase, Loader } from './load';
import type { PostgresTools } from './tools';

export async function checkBackup(dir: string, { databases }: PostgresDetails, tools: PostgresTools): Promise<string> {
  const summaries: string[] = [];
  for (const [database, { split = [] }] of Object.entries(databases)) {
    const toc = await runTool('pg_restore', ['--list', path.join(dir, archiveOf(database))], { env: tools.path });
    const entries = toc.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(';')).length;
    const parts = split.flatMap((table) => table.parts);
    for (const part of parts) checkZstdFile(path.join(dir, part.file));
    summaries.push(`${database}: ${entries} archive entries${parts.length > 0 ? `, ${split.length} tables in ${parts.length} chunks` : ''}`);
  }
  if (!fs.existsSync(path.join(dir, GLOBALS_FILE))) throw new Error(`${GLOBALS_FILE} is missing`);
  return summaries.join(', ');
}

/**
 * Restores each database into a scratch database on the source server, compares the row count
 * of every table with the counts taken at dump time (compareWithDump), and drops the scratch
 * database again.
 * Runs as the backup role: it needs CREATEDB, and restores without owners and grants (the
 * scratch copy is its own), which row counts do not need.
 */
export async function verifyBackup(loader: Loader, dir: string, { databases }: PostgresDetails, ctx: DriverContext): Promise<string> {
  const { server } = loader;
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const summaries: string[] = [];
  for (const [database, details] of Object.entries(databases)) {
    const scratch = scratchName(database, stamp);
    await server.createDatabase(scratch);
    try {
      await loadDatabase(loader, dir, database, scratch, { extra: ['--no-owner', '--no-privileges'], details }, ctx);
      const problems = await compareWithDump(server, scratch, details.tables);
      if (problems.length > 0) throw new Error(`${database}: restored copy differs from the dump's snapshot: ${problems.join('; ')}`);
      const rows = Object.values(details.tables).reduce((a, b) => a + b, 0);
      summaries.push(`${database}: ${Object.keys(details.tables).length} tables, ${rows} rows match`);
    } finally {
      await server.dropDatabase(scratch);
    }
  }
  return summaries.join(', ');
}

/** A chunk the cheap per-run check can vouch for: present, and a zstd frame (its magic number). */
function checkZstdFile(file: string): void {
  const header = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, header, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (header.readUInt32LE(0) !== 0xfd2fb528) throw new Error(`${path.basename(file)} is not a zstd file`);
}

/** `tenantry_verify_<db>_<stamp>`, within Postgres's 63-byte identifier limit. */
function scratchName(database: string, stamp: string): string {
  const safe = database.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `tenantry_verify_${safe.slice(0, 63 - 'tenantry_verify_'.length - stamp.length - 1)}_${stamp}`;
}
