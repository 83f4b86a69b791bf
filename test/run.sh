#!/usr/bin/env bash
# The whole test suite: type-check, then every jest test (unit, config corpus, real servers, e2e drill).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
export TMPDIR="$PWD/.tmp"
bash test/install-servers.sh
npx tsc -p tsconfig.test.json
npx jest "$@"
