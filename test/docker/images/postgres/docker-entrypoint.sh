#!/bin/sh
# What the official postgres image's docker-entrypoint.sh does for `postgres <arguments>`, in the
# same order: as root, hand PGDATA and the socket dir to postgres and re-run as postgres; on an
# empty PGDATA, initdb with POSTGRES_USER/POSTGRES_PASSWORD, `host all all all scram-sha-256`, a
# temporary socket-only server, POSTGRES_DB, every /docker-entrypoint-initdb.d file (executable
# *.sh run, other *.sh sourced, *.sql through psql), the temporary server stopped; then postgres.
set -eu
if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

# As the official image, in its order: chmod while root still owns what it made (the container
# has no CAP_FOWNER), then hand everything to postgres.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 3777 /var/run/postgresql || :
  find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
  find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
  exec gosu postgres "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?the database is uninitialized and POSTGRES_PASSWORD is not set}"
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image.
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"

  shift
  options=""
  for arg in "$@" -c listen_addresses= -p "${PGPORT:-5432}"; do
    options="$options '$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'"
  done
  set -- postgres "$@"
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$options" -w start
  psql_init() { psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"; }
  if [ "$POSTGRES_DB" != postgres ]; then
    psql_init --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) psql_init --dbname "$POSTGRES_DB" -f "$f" ;;
      */\*) ;;
      *) echo "docker-entrypoint.sh: ignoring $f" >&2 ;;
    esac
  done
  PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec "$@"
