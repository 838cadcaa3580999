#!/usr/bin/env bash
# The fresh-machine check (outside CI: it takes minutes). In a freshly made Debian bookworm root
# (a chroot): a clean `git clone` of this repository under /root (mode 700, where root usually
# clones), then `bash scripts/setup.sh` (the README's set-up, which must install everything it
# needs) and a smoke test: `npm run build`, a few unit test files with ava, every command of
# `scripts/setup.sh --commands` found, and `scripts/install.sh` / `mptun --help` from / /
# `scripts/install.sh --uninstall`. Prints PASS or FAIL; unmounts and removes the root on any exit.
#
# The root: `debootstrap --variant=minbase` (the least a Debian machine has, as
# docker/make-base-image.sh makes for the Docker scenario) from the machine's Debian mirror. The
# finished root is cached as a tarball under /var/cache/mptun-fresh-root, so a rerun unpacks it
# in seconds (--refresh makes it again).
#
# Node: the machines mptun targets have Node 20 and npm 11 installed (NodeSource's `nodejs`
# package, with npm upgraded under /usr/lib/node_modules). A fresh Debian root has no Node, so
# the host's installation is copied in (the node binary, /usr/lib/node_modules with npm,
# /usr/include/node: the headers node-gyp builds the addon with) and the Debian packages that
# the host's `nodejs` package depends on are installed, as they are on such a machine. That, and
# nothing else, is put there before setup.sh runs.
#
# usage: sudo bash scripts/fresh-root-check.sh [--refresh] [--keep] [--commit REV]
#   --refresh  make the root again (ignore the cached tarball)
#   --keep     keep the root (its path is printed; unmounted all the same)
#   --commit   what to clone (default: HEAD of this repository; commit first, the clone takes
#              only committed work)
# Environment: MIRROR (default: the first Debian mirror in /etc/apt/sources.list*), SUITE
#              (default bookworm), CACHE_DIR (default /var/cache/mptun-fresh-root), SMOKE_TESTS
#              (the ava files of the smoke test, relative to the clone; default below).
set -euo pipefail

SUITE=${SUITE:-bookworm}
# unit tests of the codecs and the config, and the TUN device's (the native addon, /dev/net/tun,
# an unprivileged user reading the clone)
SMOKE_TESTS=${SMOKE_TESTS:-dist/test/ip/*.test.js dist/test/cli/config.test.js dist/test/mptcp/options.test.js dist/test/tun/*.test.js}
CACHE_DIR=${CACHE_DIR:-/var/cache/mptun-fresh-root}
REPO=$(cd "$(dirname "$0")/.." && pwd)
refresh=0 keep=0 rev=HEAD
while [ $# -gt 0 ]; do
  case "$1" in
    --refresh) refresh=1 ;;
    --keep) keep=1 ;;
    --commit) rev=$2; shift ;;
    *) echo "usage: $0 [--refresh] [--keep] [--commit REV]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "fresh-root-check: $*" >&2; }
started=$(date +%s)
root=''
result=FAIL

cleanup() {
  local rc=$?
  set +e
  if [ -n "$root" ]; then
    # every mount under the root, deepest first; a lazy unmount when one is still busy
    for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m"
    done
    if awk -v r="$root" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
      log "still mounted under $root: not removing it"
      result=FAIL
    elif [ $keep = 1 ]; then
      log "kept $root"
    else
      # --one-file-system: never follows into a mount, were one left
      rm -rf --one-file-system "$root"
    fi
  fi
  [ $rc = 0 ] || result=FAIL
  echo "fresh-root-check: $result ($(( $(date +%s) - started )) s)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { log "run as root (sudo bash $0): it debootstraps, mounts and chroots"; exit 1; }
commit=$(git -C "$REPO" rev-parse --verify "$rev^{commit}")
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] || log "note: the work tree has uncommitted changes; the clone has only $commit"

# --- the root --------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi
if [ -z "${MIRROR:-}" ]; then
  # as docker/make-base-image.sh: the first non-security Debian archive of apt's sources
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' |
    awk '{print $1}' | grep -E '/debian/?$' | grep -v security | head -n1 || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
tarball=$CACHE_DIR/$SUITE-minbase.tar
mkdir -p "$CACHE_DIR" /var/tmp
root=$(mktemp -d /var/tmp/mptun-fresh-root.XXXXXX)
chmod 755 "$root"
if [ $refresh = 1 ] || [ ! -s "$tarball" ]; then
  log "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached in $tarball)"
  t0=$(date +%s)
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" > "$CACHE_DIR/debootstrap.log" 2>&1 || {
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  log "made the root in $(( $(date +%s) - t0 )) s"
else
  log "unpacking the cached root $tarball"
  tar --numeric-owner -C "$root" -xf "$tarball"
fi

# --- what the target machines have besides Debian: Node 20 + npm 11 (see the header) ---------
node_bin=$(readlink -f "$(command -v node)")
node_prefix=$(dirname "$(dirname "$node_bin")")
log "copying the host's Node $(node --version) (prefix $node_prefix) and npm $(npm --version) into the root"
mkdir -p "$root$node_prefix/bin" "$root$node_prefix/lib" "$root$node_prefix/include"
cp -a "$node_bin" "$root$node_prefix/bin/"
[ -d "$node_prefix/lib/node_modules" ] && cp -a "$node_prefix/lib/node_modules" "$root$node_prefix/lib/"
[ -d "$node_prefix/include/node" ] && cp -a "$node_prefix/include/node" "$root$node_prefix/include/"
for tool in npm npx corepack; do
  [ -L "$node_prefix/bin/$tool" ] && cp -a "$node_prefix/bin/$tool" "$root$node_prefix/bin/"
done
node_deps=''
if dpkg-query -W nodejs >/dev/null 2>&1; then
  # the Debian packages the host's nodejs package depends on (names only: "a (>= 1) | b" -> a)
  node_deps=$(dpkg-query -W -f='${Depends}' nodejs | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' | awk 'NF{print $1}' | tr '\n' ' ')
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network's TLS trust, as the host has it: the local CA certificates (public certificates;
# a network that inspects TLS needs them for the npm registry) and NODE_EXTRA_CA_CERTS when the
# host's Node is told to use them. Nothing else of the host's configuration goes in.
local_cas=$(find /usr/local/share/ca-certificates -name '*.crt' 2>/dev/null | wc -l)
if [ "$local_cas" -gt 0 ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  case " $node_deps " in *" ca-certificates "*) ;; *) node_deps="$node_deps ca-certificates" ;; esac
fi

# --- the clone, where root usually clones ------------------------------------------------------
chmod 700 "$root/root"
git clone -q --no-hardlinks "$REPO" "$root/root/mptun"
git -C "$root/root/mptun" -c advice.detachedHead=false checkout -q "$commit"
log "cloned $commit into /root/mptun (/root mode $(stat -c %a "$root/root"))"

# --- mounts ------------------------------------------------------------------------------------
# the root a mount point of its own, as / is on a machine: `ip -n NS` (the tests) makes its mount
# namespace a slave of /, which the kernel refuses for a plain directory
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --bind /dev "$root/dev"          # with /dev/net/tun
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs tmpfs "$root/run"       # a /run of its own, as a machine has (/run/netns inside)
mkdir -p "$root/run/netns" "$root/run/lock"

# --- inside ------------------------------------------------------------------------------------
extra_env=()
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && extra_env+=("NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS")
inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${extra_env[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -euo pipefail -c "$1"
}
if [ -n "$node_deps" ]; then
  log "installing what the host's nodejs package depends on: $node_deps"
  inside "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $node_deps >/dev/null"
fi
if [ "$local_cas" -gt 0 ]; then
  log "the host's $local_cas local CA certificates: update-ca-certificates${NODE_EXTRA_CA_CERTS:+, NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS}"
  inside 'update-ca-certificates >/dev/null'
fi

log "inside: bash scripts/setup.sh"
t0=$(date +%s)
inside 'cd /root/mptun && bash scripts/setup.sh'
log "setup.sh took $(( $(date +%s) - t0 )) s"

log "inside: the smoke test"
inside '
cd /root/mptun
npm run --silent build
npx ava '"$SMOKE_TESTS"' > /tmp/ava.log 2>&1 ||
  { cat /tmp/ava.log; exit 1; }
tail -n 3 /tmp/ava.log
missing=""
for cmd in $(bash scripts/setup.sh --commands | awk "{print \$1}"); do
  command -v "$cmd" >/dev/null || missing="$missing $cmd"
done
[ -z "$missing" ] || { echo "commands of setup.sh --commands not found:$missing" >&2; exit 1; }
echo "every command of setup.sh --commands is there ($(bash scripts/setup.sh --commands | wc -l))"
bash scripts/install.sh
cd /
mptun --version
mptun --help >/dev/null
test -f /etc/systemd/system/mptun.service
bash /root/mptun/scripts/install.sh --uninstall
! command -v mptun >/dev/null
echo "install: mptun on the PATH from /; uninstall: gone"
'
result=PASS
