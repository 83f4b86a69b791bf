/**
 * What a Postgres backup holds: per database, a directory-format archive plus the chunks of its
 * big tables (chunks.ts), and the roles (globals.sql); and the facts its manifest records for
 * the check, verification and restore.
 */
import type { SplitTable } from './chunks';

/** gzip level of the archive: the fastest whose archive is as small as `pg_dump | gzip`'s (PG 15's pg_dump writes no zstd; docs/benchmarks.md). */
export const PG_DUMP_COMPRESSION = 5;
export const GLOBALS_FILE = 'globals.sql';
export const archiveOf = (database: string) => `${database}.dump`;
/** Chunks of the database's big tables (chunks.ts). */
export const chunksOf = (database: string) => `${database}.tables`;

/** Row count per table ("schema.table"), as taken in the dump's snapshot. */
export type RowCounts = Record<string, number>;

export interface DatabaseDetails {
  /** Row counts of every table. */
  tables: RowCounts;
  /** The tables whose data is in chunk files, not the archive. */
  split?: SplitTable[];
  /**
   * The database's size on the server at dump time (pg_database_size; absent in backups of older
   * agents), what a restore needs beside the database it replaces.
   */
  bytes?: number;
}

export interface PostgresDetails {
  databases: Record<string, DatabaseDetails>;
  compression: string;
  rolePasswords: boolean;
}

/** A manifest's details, as a Postgres backup wrote them. */
export function postgresDetails(details: Record<string, unknown>): PostgresDetails {
  return details as unknown as PostgresDetails;
}
