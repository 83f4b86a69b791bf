import { PITR_FOLDERS, POSTGRES_PITR_JOB, PREPARED_RESTORE } from '../agent/pitr/layout';
import { shellScript, shQuote } from './shell';
import { checkPath } from './validate';

/*
 * Step 2 of a point-in-time restore of a dedicated server (docs: README, "Point-in-time
 * recovery"): the backup agent has recovered a data directory into the backup volume and named it
 * in `restores/pending`; restarting the Postgres container swaps it in before the server starts.
 * No container gets the Docker socket: the agent never touches the server's volume, and this
 * script, the only writer of that volume besides the server, reads the backup volume read-only.
 */

/** Where the Postgres container sees the tenant's backup volume (read-only). */
export const BACKUP_MOUNT = '/var/lib/tenantry/backup';


/** Beside the data directory (PGDATA) on the data volume: one empty file per applied restore, named by its id. */
export const RESTORES_APPLIED_FOLDER = 'restores-applied';

/** Where the script is uploaded in the Postgres container. */
export const RESTORE_ON_START_SCRIPT = '/usr/local/bin/tenantry-restore-on-start.sh';

export interface RestoreOnStartOptions {
  /** @default BACKUP_MOUNT */
  readonly backupMount?: string;
}

/**
 * The wrapper runs as root with the Postgres container's capabilities (CHOWN, DAC_READ_SEARCH,
 * SETUID, SETGID: constructs/container-privileges.ts), then execs its arguments (the image's
 * entrypoint and the server's command), whatever happened: the server always starts, on the
 * restored data directory or on the one it had.
 *
 * Who does what: root can read the backup volume (DAC_READ_SEARCH) but, without DAC_OVERRIDE and
 * FOWNER, cannot write into a data volume postgres owns (0700 on NFS) nor rename postgres's data
 * directory in a sticky one (a named volume is 1777 from the image). So root only reads (tar -c),
 * and the owner of the data volume's root writes and renames (tar -x, mv) through the image's
 * su-exec (Alpine) or gosu (Debian). On a bind volume (root's) root does both, then hands the copy
 * to postgres (CHOWN). tar -o: files belong to whoever extracts them, never to the agent's user.
 *
 * Order, so that a stop at any point leaves a server that starts on a whole data directory:
 * copy into `pgdata.restore-<id>.partial`, sync, rename to `pgdata.restore-<id>` (complete), move
 * the live one aside to `pgdata.before-restore-<id>` (kept: the operator removes it), rename the
 * copy to `pgdata`, record `restores-applied/<id>`. A start after a stop between the two renames
 * finishes the second; a copy that fails is removed and the live directory was never touched.
 */
export function renderRestoreOnStart(o: RestoreOnStartOptions = {}): string {
  const backupMount = o.backupMount ?? BACKUP_MOUNT;
  checkPath('renderRestoreOnStart', 'backupMount', backupMount);
  const restores = `${backupMount}/${POSTGRES_PITR_JOB}/${PITR_FOLDERS.restores}`;
  return shellScript(
    [
      'Tenantry: applies a prepared point-in-time restore (tenantry-agent restore postgres-pitr) before',
      'the server starts, keeping the data directory it replaces, then starts the image as usual.',
    ],
    [
      `restores=${shQuote(restores)}`,
      ': "${PGDATA:?PGDATA must be set}"',
      'volume=$(dirname "$PGDATA")',
      `applied="$volume/${RESTORES_APPLIED_FOLDER}"`,
      'say() { echo "tenantry-restore-on-start: $*" >&2; }',
      '',
      'owner=$(stat -c %u "$volume")',
      'group=$(stat -c %g "$volume")',
      'drop=$(command -v su-exec || command -v gosu || true)',
      'as_owner() {',
      '  if [ "$owner" = "$(id -u)" ]; then "$@"; else "$drop" "$owner:$group" "$@"; fi',
      '}',
      '',
      '# POSIX sh has no pipefail: each side of the pipe reports its own status on fd 3.',
      'copy() {',
      '  status=$( { { (cd "$1" && tar -cf - .) 3>&-; echo "read $?" >&3; } | { as_owner tar -x -o -f - -C "$2" 3>&- >&2; echo "write $?" >&3; }; } 3>&1 )',
      '  case "$status" in *"read 0"*"write 0"*|*"write 0"*"read 0"*) return 0 ;; *) return 1 ;; esac',
      '}',
      '',
      '# A complete copy, postgres\'s and 0700, at $2; any failure returns non-zero (set -e does not act in a condition).',
      'stage() {',
      '  as_owner rm -rf "$2.partial" &&',
      '    as_owner mkdir -m 700 "$2.partial" &&',
      `    copy "$restores/$1/${PREPARED_RESTORE.pgdata}" "$2.partial" &&`,
      '    as_owner chmod 700 "$2.partial" &&',
      '    { [ "$owner" != 0 ] || chown -R postgres:postgres "$2.partial"; } &&',
      '    sync &&',
      '    as_owner mv "$2.partial" "$2" &&',
      '    sync',
      '}',
      '',
      'apply() {',
      '  id=$1',
      '  staged="$volume/pgdata.restore-$id"',
      '  kept="$volume/pgdata.before-restore-$id"',
      '  if [ ! -e "$kept" ]; then',
      '    if [ ! -d "$staged" ] && ! stage "$id" "$staged"; then',
      '      as_owner rm -rf "$staged.partial" || true',
      '      say "could not copy restore $id into $volume (see above): starting on the current data directory, which is untouched"',
      '      return 0',
      '    fi',
      '    if [ -e "$PGDATA" ]; then as_owner mv "$PGDATA" "$kept"; fi',
      '  fi',
      '  if [ ! -e "$PGDATA" ]; then',
      '    if [ -d "$staged" ] && as_owner mv "$staged" "$PGDATA"; then',
      '      say "restore $id applied; the data directory it replaced is kept as $kept"',
      '    else',
      '      # Never let the image initialise an empty server in place of the kept one.',
      '      as_owner mv "$kept" "$PGDATA"',
      '      say "restore $id could not be put in place: starting on the previous data directory"',
      '      return 0',
      '    fi',
      '  fi',
      '  as_owner mkdir -p "$applied"',
      '  as_owner touch "$applied/$id"',
      '  sync',
      '}',
      '',
      `if [ -f "$restores/${PREPARED_RESTORE.pending}" ]; then`,
      '  id=',
      `  IFS= read -r id < "$restores/${PREPARED_RESTORE.pending}" || true`,
      '  case "$id" in',
      '    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z)',
      `      if [ -e "$applied/$id" ]; then :`,
      `      elif [ ! -f "$restores/$id/${PREPARED_RESTORE.ready}" ] || [ ! -d "$restores/$id/${PREPARED_RESTORE.pgdata}" ]; then say "pending names restore $id, which is not ready: ignored"`,
      '      else apply "$id"',
      '      fi ;;',
      '    *) say "pending holds \\"$id\\", which is not a restore id: ignored" ;;',
      '  esac',
      'fi',
      'exec "$@"',
    ],
  );
}
