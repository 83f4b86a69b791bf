#!/usr/bin/env bash
# Make Debian trixie's PostgreSQL 17 (server + client tools) runnable on a
# bookworm machine from a private directory, without touching the system's
# apt state, /usr/lib/postgresql or libc.
#
# Usage: bash bench/fetch-postgres-trixie.sh <dest-dir>
#   e.g. bash bench/fetch-postgres-trixie.sh /work/pg17
# Idempotent. The last stdout line is the bin dir:
#   <dest>/usr/lib/postgresql/17/bin
#
# How:
#  * apt-get/apt-cache run with a private config (sources, lists, cache,
#    status all under <dest>/.fetch), trixie + trixie-updates +
#    trixie-security, signed by debian-archive-keyring.gpg.
#  * The package set is postgresql-17, postgresql-client-17 plus the closure
#    of their shared-library dependencies (Depends/Pre-Depends, following only
#    lib* and zlib1g packages, which dpkg-shlibdeps derives from DT_NEEDED).
#    LLVM (JIT) is skipped and llvmjit.so is removed, so JIT is unavailable.
#  * Every .deb is extracted with dpkg-deb -x into <dest>; each ELF executable
#    in the bin dir gets the trixie loader as interpreter and a DT_RPATH
#    (inherited by its libraries and dlopen()ed modules) on <dest>'s lib dirs.
#  * Verifies with the trixie loader that every ELF in bin/ and lib/ resolves
#    all its libraries inside <dest>, then chmod -R a+rX (for the postgres
#    user).
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: bash $0 <dest-dir>" >&2
  exit 2
fi

log() { echo "fetch-postgres-trixie: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PGMAJOR=17
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
ARCH=amd64
TRIPLET=x86_64-linux-gnu

mkdir -p "$1"
DEST=$(cd "$1" && pwd -P)
W=$DEST/.fetch                       # private apt state + downloaded debs
BIN=$DEST/usr/lib/postgresql/$PGMAJOR/bin
PKGLIB=$DEST/usr/lib/postgresql/$PGMAJOR/lib
LOADER=$DEST/usr/lib64/ld-linux-x86-64.so.2
RPATH=$DEST/usr/lib/$TRIPLET:$DEST/lib/$TRIPLET:$PKGLIB

[ -r "$KEYRING" ] || die "missing $KEYRING (install debian-archive-keyring)"
for t in apt-get apt-cache dpkg-deb; do
  command -v "$t" >/dev/null || die "missing $t"
done
if ! command -v patchelf >/dev/null; then
  [ "$(id -u)" = 0 ] || die "patchelf missing; install it: apt-get install -y patchelf"
  log "installing patchelf (bookworm)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q patchelf >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q patchelf >&2; }
fi

mkdir -p "$W/etc/preferences.d" "$W/state/lists/partial" \
         "$W/cache/archives/partial" "$W/debs"
touch "$W/state/status"
cat > "$W/etc/trixie.list" <<EOF
deb [arch=$ARCH signed-by=$KEYRING] $MIRROR trixie main
deb [arch=$ARCH signed-by=$KEYRING] $MIRROR trixie-updates main
deb [arch=$ARCH signed-by=$KEYRING] $SECMIRROR trixie-security main
EOF

APTOPTS=(
  -o "Dir::Etc::SourceList=$W/etc/trixie.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=$W/etc/preferences.d"
  -o "Dir::State=$W/state"
  -o "Dir::State::Lists=$W/state/lists"
  -o "Dir::State::Status=$W/state/status"
  -o "Dir::Cache=$W/cache"
  -o "Dir::Cache::pkgcache=$W/cache/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$W/cache/srcpkgcache.bin"
  -o "APT::Architecture=$ARCH"
  -o "APT::Architectures=$ARCH"
  -o "APT::Sandbox::User=root"
  -o "Debug::NoLocking=1"
)

log "apt-get update (private trixie lists in $W/state/lists)"
apt-get "${APTOPTS[@]}" -q update >&2

# --- dependency closure ----------------------------------------------------
# Follow Depends/Pre-Depends (first alternative) of shared-library packages.
follow() {
  case "$1" in
    libllvm*|libclang*|*-perl|*-dev|*-bin|*-common|*-doc) return 1 ;;
    lib*|zlib1g) return 0 ;;
    *) return 1 ;;
  esac
}
# Prints "<pkg> <version> <dep> <dep>..." per package (one apt-cache call).
info_of() {
  apt-cache "${APTOPTS[@]}" show --no-all-versions "$@" | awk '
    function flush() { if (pkg != "") print pkg, ver, deps; pkg = ""; ver = ""; deps = "" }
    /^Package:/ { flush(); pkg = $2 }
    /^Version:/ { ver = $2 }
    /^(Pre-)?Depends:/ {
      line = $0; sub(/^[^:]*: */, "", line)
      n = split(line, alts, ",")
      for (i = 1; i <= n; i++) {
        d = alts[i]; sub(/\|.*/, "", d); sub(/\(.*/, "", d); sub(/:any/, "", d)
        gsub(/[[:space:]]/, "", d); if (d != "") deps = deps " " d
      }
    }
    END { flush() }'
}
declare -A SEEN=() VER=()
FRONTIER=(postgresql-$PGMAJOR postgresql-client-$PGMAJOR libc6)
for p in "${FRONTIER[@]}"; do SEEN[$p]=1; done
while [ ${#FRONTIER[@]} -gt 0 ]; do
  NEXT=()
  while read -r p v deps; do
    VER[$p]=$v
    for d in $deps; do
      if follow "$d" && [ -z "${SEEN[$d]:-}" ]; then SEEN[$d]=1; NEXT+=("$d"); fi
    done
  done < <(info_of "${FRONTIER[@]}")
  FRONTIER=("${NEXT[@]}")
done
mapfile -t PKGS < <(printf '%s\n' "${!SEEN[@]}" | sort)
for p in "${PKGS[@]}"; do
  [ -n "${VER[$p]:-}" ] || die "package $p not found in trixie"
done
log "packages (${#PKGS[@]}): ${PKGS[*]}"

# --- download (cached) -------------------------------------------------------
debfile() { ls "$W/debs/${1}_${2//:/%3a}_"*.deb 2>/dev/null | head -n1; }
WANT=()
for p in "${PKGS[@]}"; do
  [ -n "$(debfile "$p" "${VER[$p]}")" ] || WANT+=("$p=${VER[$p]}")
done
if [ ${#WANT[@]} -gt 0 ]; then
  log "downloading ${#WANT[@]} package(s)"
  (cd "$W/debs" && apt-get "${APTOPTS[@]}" -q download "${WANT[@]}" >&2)
else
  log "all packages already downloaded"
fi
DEBS=()
for p in "${PKGS[@]}"; do
  f=$(debfile "$p" "${VER[$p]}")
  [ -n "$f" ] || die "download of $p=${VER[$p]} missing"
  DEBS+=("$f")
done
log "download size: $(du -ch "${DEBS[@]}" | tail -n1 | cut -f1)"

# --- extract + patch (skipped if same deb set already done) ----------------
STAMP=$W/installed.list
NEWSTAMP=$(printf '%s\n' "${DEBS[@]##*/}")
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$NEWSTAMP" ] && [ -x "$BIN/postgres" ]; then
  log "already extracted and patched (stamp $STAMP)"
else
  rm -f "$STAMP"
  for f in "${DEBS[@]}"; do
    dpkg-deb -x "$f" "$DEST"
  done
  # JIT is not supported here: no libLLVM shipped.
  rm -f "$PKGLIB"/llvmjit*.so
  rm -rf "$PKGLIB"/bitcode "$PKGLIB"/llvmjit_types.bc
  [ -e "$LOADER" ] || die "trixie loader $LOADER not found after extraction"
  [ -x "$BIN/postgres" ] || die "$BIN/postgres not found after extraction"
  n=0
  while IFS= read -r -d '' exe; do
    # ELF executables only (skip Perl/shell scripts such as pg_ctlcluster).
    head -c4 "$exe" | grep -q $'^\x7fELF' || continue
    patchelf --print-interpreter "$exe" >/dev/null 2>&1 || continue
    patchelf --set-interpreter "$LOADER" --force-rpath --set-rpath "$RPATH" "$exe"
    n=$((n + 1))
  done < <(find "$BIN" -maxdepth 1 -type f -print0)
  log "patched $n executables in $BIN"
  printf '%s\n' "$NEWSTAMP" > "$STAMP"
fi

# --- verify: every ELF in bin/ and lib/ resolves inside $DEST --------------
bad=0
check() {  # $1 file, rest: extra loader args
  local f=$1; shift
  local out
  out=$("$LOADER" "$@" --list "$f" 2>&1) || { log "ldd failed for $f: $out"; bad=1; return; }
  local miss
  miss=$(printf '%s\n' "$out" | awk -v d="$DEST/" '
    /not found/ {print; next}
    /=>/ { if ($3 !~ "^" d && $3 != "") print }')
  if [ -n "$miss" ]; then log "unresolved for $f:"; printf '%s\n' "$miss" >&2; bad=1; fi
}
while IFS= read -r -d '' f; do
  head -c4 "$f" | grep -q $'^\x7fELF' || continue
  check "$f"
done < <(find "$BIN" -maxdepth 1 -type f -print0)
while IFS= read -r -d '' f; do
  check "$f" --library-path "$RPATH"
done < <(find "$PKGLIB" "$DEST/usr/lib/$TRIPLET" -maxdepth 1 -name 'lib*pq*.so*' -type f -print0;
         find "$PKGLIB" -name '*.so' -type f -print0)
[ $bad = 0 ] || die "library closure incomplete (see above)"
"$BIN/postgres" --version >&2 || die "postgres does not run"
[ -f "$DEST/usr/share/postgresql/$PGMAJOR/postgres.bki" ] || die "postgres.bki missing"

chmod -R a+rX "$DEST"
# make sure the path down to $DEST is traversable for other users
d=$DEST
while [ "$d" != / ]; do
  [ -x "$d" ] && [ "$(stat -c %A "$d" | cut -c10)" = x ] || log "warning: $d not world-executable"
  d=$(dirname "$d")
done
echo "$BIN"
