#!/usr/bin/env bash
# Installs the Debian server packages the integration tests run for real (see TESTING.md).
# As root it installs what is missing; otherwise it prints the exact command and fails.
set -eu

packages="postgresql postgresql-client pgbouncer redis-server redis-sentinel zstd gosu docker.io debootstrap openssh-server openssh-client"
missing=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || missing="$missing postgresql"
have pg_dump || missing="$missing postgresql-client"
have /usr/sbin/pgbouncer || missing="$missing pgbouncer"
have redis-server || missing="$missing redis-server"
have redis-sentinel || missing="$missing redis-sentinel"
have zstd || missing="$missing zstd"
# The privilege drop of the Redis start scripts (the Debian redis images ship gosu).
have gosu || missing="$missing gosu"
# The Docker tests (test/docker, test/helpers/docker.ts) start their own dockerd and make their
# base image with debootstrap (nothing can be pulled from a registry here).
have /usr/sbin/dockerd || missing="$missing docker.io"
have /usr/sbin/debootstrap || missing="$missing debootstrap"
# docker.host ssh:// (test/docker/cli-ssh.test.ts): the tests' own sshd, and the ssh the CLI runs.
have /usr/sbin/sshd || missing="$missing openssh-server"
have ssh || missing="$missing openssh-client"

# PostgreSQL 17 beside Debian's 15: the real-server tests run on both (Tenantry supports 15-17).
# Debian trixie's packages, unpacked into a cache that outlives the checkout (test/helpers/servers.ts
# looks there); about 14 s the first time (40 MB of packages), nothing once there.
pg_cache="/var/cache/tenantry-postgres"
ensure_postgres_17() {
  [ -x "$pg_cache/17/usr/lib/postgresql/17/bin/postgres" ] && return 0
  if [ "$(id -u)" != "0" ]; then
    echo "The integration tests need PostgreSQL 17. Fetch it with:" >&2
    echo "  sudo bash bench/fetch-postgres-trixie.sh $pg_cache/17" >&2
    exit 2
  fi
  echo "fetching PostgreSQL 17 (Debian trixie) into $pg_cache/17" >&2
  mkdir -p "$pg_cache"
  bash "$(dirname "$0")/../bench/fetch-postgres-trixie.sh" "$pg_cache/17" >/dev/null 2>"$pg_cache/fetch-17.log" ||
    { cat "$pg_cache/fetch-17.log" >&2; exit 1; }
}
# The backup image's user (runtime/agent/Dockerfile: tenantry, uid and gid 10001), which the
# agent's entrypoint drops to in test/integration/container-privileges.test.ts.
if ! id tenantry >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "The integration tests need the agent image's user. Create it with:" >&2
    echo "  sudo groupadd --system --gid 10001 tenantry && sudo useradd --system --no-create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin tenantry" >&2
    exit 2
  fi
  groupadd --system --gid 10001 tenantry
  # (useradd warns that 10001 is above the system range; the image uses it all the same.)
  useradd --system --no-create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin tenantry 2>/dev/null
fi

if [ -z "$missing" ]; then
  ensure_postgres_17
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "The integration tests need:$missing. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
  exit 2
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $packages >/dev/null
# The packages start system-wide services; tests run their own servers on free ports (and their
# own dockerd, with its own data root and socket).
for svc in postgresql pgbouncer redis-server redis-sentinel docker containerd; do
  service "$svc" stop >/dev/null 2>&1 || true
done
# The tests run their own sshd on a free port. The system's is stopped only when installed just
# now: one that ran before may be how someone reaches this machine.
case " $missing " in *" openssh-server "*) service ssh stop >/dev/null 2>&1 || true ;; esac
ensure_postgres_17
