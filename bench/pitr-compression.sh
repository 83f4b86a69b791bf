#!/bin/bash
# pg_basebackup's compression choices side by side on a pgbench database (issue 12; the table is
# in docs/benchmarks.md, "PITR base backup compression"). Run as root from the repository root:
#   bash bench/pitr-compression.sh [scale, default 20] [bin dir, default Debian's PostgreSQL 15]
set -eu
scale=${1:-20}
bin=${2:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/pitr-compression-XXXXXX")
chown postgres "$work"
trap 'su postgres -c "$bin/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
su postgres -c "$bin/initdb -D $work/data -U postgres --auth=trust --no-sync" >/dev/null
printf "port=15999\nlisten_addresses='127.0.0.1'\nunix_socket_directories='%s'\n" "$work" >>"$work/data/postgresql.conf"
su postgres -c "$bin/pg_ctl -D $work/data -l $work/log -w start" >/dev/null
export PGHOST=127.0.0.1 PGPORT=15999 PGUSER=postgres
"$bin/pgbench" -i -s "$scale" -q postgres >/dev/null 2>&1
echo "cores: $(nproc); database: $("$bin/psql" -Atc "select pg_size_pretty(pg_database_size('postgres'))" postgres); server $("$bin/postgres" --version)"
echo "| --compress | run 1 s | run 2 s | size (bytes) | files |"
echo "|---|---|---|---|---|"
for mode in none server-zstd:1 server-zstd:3 server-zstd:6 client-zstd:1 client-zstd:3 server-lz4 server-gzip:1; do
  times=()
  for _ in 1 2; do
    rm -rf "$work/out"
    start=$(date +%s.%N)
    "$bin/pg_basebackup" -D "$work/out" -Ft -X stream --checkpoint=fast --compress="$mode" --no-sync
    times+=("$(echo "$(date +%s.%N) - $start" | bc)")
  done
  echo "| $mode | ${times[0]} | ${times[1]} | $(du -sb "$work/out" | cut -f1) | $(ls "$work/out" | tr '\n' ' ')|"
done
start=$(date +%s.%N)
"$bin/pg_dump" postgres | gzip >"$work/dump.gz"
echo "| (pg_dump \| gzip) | $(echo "$(date +%s.%N) - $start" | bc) | - | $(stat -c %s "$work/dump.gz") | dump.gz |"
