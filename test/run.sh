#!/usr/bin/env bash
# The whole test suite: type-check, then every jest test (unit, config corpus, real servers, e2e drill).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
export TMPDIR="$PWD/.tmp"
bash test/install-servers.sh
# Test servers run as the postgres user, who must reach TMPDIR. A checkout inside a private
# directory (mktemp -d makes them 0700) hides .tmp/ from it: use a reachable one under /tmp then.
if [ "$(id -u)" = "0" ] && ! runuser -u postgres -- test -x "$TMPDIR" 2>/dev/null; then
  TMPDIR="$(mktemp -d /tmp/tenantry-test.XXXXXX)"
  chmod 755 "$TMPDIR"
  trap 'rm -rf "$TMPDIR"' EXIT
  echo "the postgres user cannot reach $PWD/.tmp; test files go to $TMPDIR" >&2
fi
npx tsc -p tsconfig.test.json
npx jest "$@"
