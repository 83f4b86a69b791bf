/**
 * What each of Tenantry's containers may do. Every container runs with `no-new-privileges`, drops
 * ALL Linux capabilities and gets back only those its image's start path uses, as root, before it
 * drops to its own user; the service then runs without any. This table is the one place that
 * says which, and why: test/integration/container-privileges.test.ts runs the start scripts that
 * are in this repository (Redis node, Sentinel, the backup agent's entrypoint) as root with
 * exactly these capabilities and shows that each one is needed.
 *
 * Capability names are Docker's canonical spelling (`CAP_…`): the daemon reports them that way in
 * `docker inspect`, which the provider reads back, so any other spelling would show as a change
 * on every plan.
 */
export type Capability = 'CAP_CHOWN' | 'CAP_DAC_OVERRIDE' | 'CAP_DAC_READ_SEARCH' | 'CAP_SETGID' | 'CAP_SETUID';

export interface ContainerPrivileges {
  /** Added back after dropping ALL; each needs a reason next to it. */
  readonly capabilities: readonly Capability[];
  /**
   * The image's own files are mounted read-only. Docker refuses `upload` blocks into such a
   * container (the provider copies them to "/", which is then read-only), so a container with a
   * read-only root gets everything it needs through its environment and volumes.
   */
  readonly readOnlyRootFilesystem: boolean;
}

/** The privilege drop of su-exec (Alpine images) and gosu (Debian images): setgroups/setgid, then setuid. */
const DROP_TO_USER: readonly Capability[] = ['CAP_SETGID', 'CAP_SETUID'];

export const CONTAINER_PRIVILEGES = {
  /*
   * The official image's entrypoint, as root: `find "$PGDATA" \! -user postgres -exec chown
   * postgres` (CHOWN; on a restart PGDATA is postgres's and 0700, so root needs DAC_READ_SEARCH
   * to walk it), then gosu/su-exec postgres. Its `chmod 00700 "$PGDATA"` as root may fail (no
   * FOWNER; it says `|| :`): it runs again as postgres, the owner, after the drop. Init scripts,
   * initdb and the server run as postgres. That script is not in this repository, so the suite
   * cannot run it; it was run by hand (docker-library/postgres 16/alpine3.22 with Debian's
   * Postgres 15 under the same setpriv): fresh and restarted data directories start with this
   * list, and without CHOWN (fresh), DAC_READ_SEARCH (restart), SETGID or SETUID they do not.
   */
  postgres: { capabilities: ['CAP_CHOWN', 'CAP_DAC_READ_SEARCH', ...DROP_TO_USER], readOnlyRootFilesystem: false },
  /** psql as a client of the shared server: reads its uploaded script, writes nothing. */
  'postgres-provision': { capabilities: [], readOnlyRootFilesystem: false },
  /** The image runs as its `postgres` user (USER in its Dockerfile); the start script writes the auth file as that user. */
  pgbouncer: { capabilities: [], readOnlyRootFilesystem: false },
  /*
   * runtime/render/redis.ts's start script, as root: rebuilds the live config from the one the
   * redis user owns (0600) in the data directory the redis user owns (DAC_OVERRIDE: read the old
   * file, write and rename the new one there), `find … -exec chown redis` (CHOWN), su-exec redis.
   */
  redis: { capabilities: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', ...DROP_TO_USER], readOnlyRootFilesystem: false },
  sentinel: { capabilities: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', ...DROP_TO_USER], readOnlyRootFilesystem: false },
  /** Runs as root on volumes only it has written (root-owned): no capability is needed for that. */
  qdrant: { capabilities: [], readOnlyRootFilesystem: false },
  /** The image's entrypoint changes user only when MINIO_USERNAME is set, which Tenantry does not; the server runs as root on its own files. */
  minio: { capabilities: [], readOnlyRootFilesystem: false },
  /** mc as root: its config lands in root's own home. */
  'minio-setup': { capabilities: [], readOnlyRootFilesystem: false },
  /*
   * runtime/agent/entrypoint.sh, as root: `chown tenantry:tenantry /backups` (CHOWN; the
   * directory may be a bind path Docker created as root), then su-exec tenantry. The agent writes
   * only under /backups (a volume) and reads its config from the environment, so the rest of the
   * file system is read-only.
   */
  backup: { capabilities: ['CAP_CHOWN', ...DROP_TO_USER], readOnlyRootFilesystem: true },
} as const satisfies Record<string, ContainerPrivileges>;

/** The services Tenantry runs containers for (the `tenantry.service` label and part of the name). */
export type ContainerService = keyof typeof CONTAINER_PRIVILEGES;

/** Docker's security option that keeps setuid binaries and file capabilities from raising privileges. */
export const NO_NEW_PRIVILEGES = 'no-new-privileges:true';
