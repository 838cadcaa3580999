#!/usr/bin/env bash
# Installs mptun as a system tool, or removes it.
#
#   sudo bash scripts/install.sh                 # install (or update) from this clone
#   sudo bash scripts/install.sh --uninstall     # remove what install put there
#   sudo bash scripts/install.sh --uninstall --purge   # ... and /etc/mptun, config and all
#   options: --root DIR (or DESTDIR=DIR): install into DIR instead of / (tests, packaging)
#
# What goes where (DIR is / unless --root):
#   /usr/local/lib/mptun/          a self-contained copy of the built tree: package.json,
#                                  bin/mptun.js, dist/src (the compiled JavaScript), the TUN
#                                  addon build/Release/mptun_tun.node, the production node_modules
#                                  (no dev tools), scripts/testbed.sh (for `mptun demo`), docs/
#                                  (the config schema and the full example), README.md, and
#                                  install-manifest: every file and directory install made.
#   /usr/local/bin/mptun           a two-line wrapper: exec <the node found at install>
#                                  /usr/local/lib/mptun/bin/mptun.js "$@"
#   /etc/systemd/system/mptun.service   the unit: `mptun up --config /etc/mptun/mptun.yaml` in
#                                  the foreground, `mptun down` after every stop
#   /etc/systemd/system/mptun-server.service   the concentrator's unit (for a VPS): `mptun server
#                                  --listen 7443 --key /etc/mptun/key`, or the arguments in
#                                  MPTUN_SERVER_ARGS of /etc/mptun/server.env when that file is
#                                  there; not enabled by install (`mptun server --genkey
#                                  /etc/mptun/key && systemctl enable --now mptun-server`)
#   /etc/mptun/mptun.yaml          the config, only when there is none: the full example
#                                  (docs/mptun.example.yaml) with every setting commented out,
#                                  so that the defaults apply until it is edited
#
# Why a copy and a wrapper (not `npm install -g`, not a symlink into the clone):
#   - the clone may be deleted, moved, or live where other users cannot enter (/root, mode
#     700); the installed tool needs none of it afterwards;
#   - nothing is fetched at install: the copy is of what scripts/setup.sh built (it runs first
#     when the tree is not built), so install reaches no network beyond what setup.sh does
#     (the Debian mirror and the npm registry), and installs exactly what the tests ran;
#   - the wrapper names the node binary by its absolute path: the TUN addon is compiled for
#     that Node's ABI, and neither sudo's secure_path nor systemd's PATH need find `node`;
#   - /usr/local is where the local administrator's software goes (hier(7)); Debian's packages
#     never write there, so nothing of theirs is overwritten or removed.
# Uninstall reads the manifest: it stops and disables mptun.service first when systemd runs
# it, removes every file and directory install made (and nothing else), and keeps
# /etc/mptun/mptun.yaml when it was changed since install or was not made by install (saying
# so) unless --purge. Both are idempotent: install again updates in place (the copy is swapped
# whole), uninstall again says there is nothing to remove.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${DESTDIR:-/}
mode=install purge=0
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ $purge = 0 ] || [ $mode = uninstall ] || { echo "install: --purge goes with --uninstall" >&2; exit 2; }
ROOT=$(realpath -m "$ROOT")
R=${ROOT%/}                      # prefix of every installed path ('' for /)

log() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
  [ -z "$R" ] && die "run as root: sudo bash $0$([ $mode = uninstall ] && echo ' --uninstall')"
fi
[ -d "$ROOT" ] || die "$ROOT is not a directory"

# --- the installed paths (as seen from the installed system) --------------------------------
LIB=/usr/local/lib/mptun
BIN=/usr/local/bin/mptun
UNIT_DIR=/etc/systemd/system
ETC=/etc/mptun
CONFIG=$ETC/mptun.yaml
MANIFEST=$LIB/install-manifest
# The units install puts there (their texts in unit_text below).
UNITS='mptun.service mptun-server.service'
# the concentrator's key and its optional arguments file (mptun-server.service reads both)
SERVER_KEY=$ETC/key
SERVER_ENV=$ETC/server.env

# systemd manages units only on a running system installed to /
systemd_running() { [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# --- the manifest ------------------------------------------------------------------------------
# One line an entry, tab-separated: "d PATH" a directory install made; "f PATH" a file;
# "c PATH SHA256" the config file install made, with its content's hash at install (kept at
# uninstall when it differs). Paths are those of the installed system (no --root prefix).
declare -a M_DIRS=() M_FILES=()
M_CONFIG='' M_CONFIG_SHA=''
read_manifest() {
  M_DIRS=() M_FILES=() M_CONFIG='' M_CONFIG_SHA=''
  [ -f "$R$MANIFEST" ] || return 1
  local kind path sha
  while IFS=$'\t' read -r kind path sha; do
    case "$kind" in
      d) M_DIRS+=("$path") ;;
      f) M_FILES+=("$path") ;;
      c) M_CONFIG=$path M_CONFIG_SHA=$sha ;;
    esac
  done < "$R$MANIFEST"
}

sha_of() { sha256sum "$1" | awk '{print $1}'; }

# mkdir -p, noting each directory it makes (for the manifest)
declare -a NEW_DIRS=()
make_dirs() {
  local d=$1 missing=()
  while [ "$d" != / ] && [ ! -d "$R$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
  for d in "${missing[@]}"; do mkdir -m 755 "$R$d"; NEW_DIRS+=("$d"); done
}

# --- uninstall ---------------------------------------------------------------------------------
uninstall() {
  if ! read_manifest; then
    local left=()
    for p in "$BIN" "$LIB" $(printf "$UNIT_DIR/%s " $UNITS); do [ -e "$R$p" ] || [ -L "$R$p" ] && left+=("$p"); done
    [ ${#left[@]} = 0 ] || die "no manifest at $R$MANIFEST, but ${left[*]} exist: not made by this script, left alone"
    log "mptun is not installed under $ROOT (no $MANIFEST): nothing to remove"
    [ $purge = 1 ] && [ -d "$R$ETC" ] && { rm -rf "$R$ETC"; log "--purge: removed $ETC"; }
    return 0
  fi
  if systemd_running; then
    for u in $UNITS; do
      if systemctl is-active --quiet "$u" || systemctl is-enabled --quiet "$u" 2>/dev/null; then
        log "stopping and disabling $u (its ExecStopPost puts the routing back)"
        systemctl disable --now "$u" || true
      fi
    done
  fi
  # `systemctl enable` links (made offline with --root, or left by a systemctl that failed)
  for u in $UNITS; do
    if [ -d "$R$UNIT_DIR" ]; then
      find "$R$UNIT_DIR" -mindepth 2 -maxdepth 2 -path '*.wants/*' -name "$u" -type l -print -delete | sed "s|^$R|install: removed the enable link |"
      find "$R$UNIT_DIR" -mindepth 1 -maxdepth 1 -name '*.wants' -type d -empty -delete 2>/dev/null || true
    fi
    [ -d "$R$UNIT_DIR/$u.d" ] && log "kept $UNIT_DIR/$u.d (drop-ins are yours, not install's)"
  done
  local f removed=0
  for f in "${M_FILES[@]}"; do
    if [ -e "$R$f" ] || [ -L "$R$f" ]; then
      rm -f "$R$f"
      case "$f" in "$LIB"/*) ;; *) removed=$((removed + 1)) ;; esac
    fi
  done
  if [ -n "$M_CONFIG" ] && [ -f "$R$M_CONFIG" ]; then
    if [ $purge = 1 ]; then
      rm -f "$R$M_CONFIG"; log "--purge: removed $M_CONFIG"
    elif [ "$(sha_of "$R$M_CONFIG")" = "$M_CONFIG_SHA" ]; then
      rm -f "$R$M_CONFIG"; log "removed $M_CONFIG (unchanged since install)"
    else
      log "kept $M_CONFIG: changed since install (uninstall --purge removes it)"
    fi
  elif [ -z "$M_CONFIG" ] && [ -f "$R$CONFIG" ]; then
    if [ $purge = 1 ]; then rm -f "$R$CONFIG"; log "--purge: removed $CONFIG";
    else log "kept $CONFIG: it was there before install (uninstall --purge removes it)"; fi
  fi
  [ $purge = 1 ] && [ -d "$R$ETC" ] && { rm -rf "$R$ETC"; log "--purge: removed $ETC"; }
  # the copy is install's alone: whatever is under it goes (the manifest with it)
  rm -rf "$R$LIB"
  # directories install made, deepest first, when empty
  local d
  for d in $(printf '%s\n' "${M_DIRS[@]}" | sort -r); do
    [ -d "$R$d" ] || continue
    if rmdir "$R$d" 2>/dev/null; then :; else log "kept $d: not empty ($(ls -A "$R$d" | head -n 3 | tr '\n' ' '))"; fi
  done
  systemd_running && systemctl daemon-reload
  log "uninstalled mptun from $ROOT ($LIB and $removed files elsewhere)"
}

# --- install -----------------------------------------------------------------------------------
# The hardening both units share: each adds its capabilities and devices before it
hardening_common() {
  cat <<'EOF'
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0077
EOF
}

unit_text() {  # $1: unit name
  case "$1" in
    mptun.service) cat <<EOF
# Installed by mptun's scripts/install.sh; removed by \`scripts/install.sh --uninstall\`.
# Local changes: \`systemctl edit mptun\` (a drop-in in /etc/systemd/system/mptun.service.d).
[Unit]
Description=mptun: this host's TCP over every uplink at once (Multipath TCP)
Documentation=file:$LIB/README.md
# the paths are the interfaces with a default route: wait for the network to be configured
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart=$BIN up --config $CONFIG
# After every stop, a crash and a SIGKILL included: remove whatever mptun set up (rules, routes,
# the nft table, sysctls), so that the routing is never left pointing at a device that is gone.
# After a clean stop there is nothing left and it says so.
ExecStopPost=$BIN down --config $CONFIG
# (5 s apart: a start that finds no path yet is retried without reaching the start limit of
# 5 starts in 10 s)
Restart=on-failure
RestartSec=5s
# SIGTERM to mptun only (it tears down, running nft); the rest of the group is killed after it
KillMode=mixed
TimeoutStopSec=20s
# the state dir of the default config (stateDir: /run/mptun), kept after a stop: the record of
# what was set up must outlive a crash until \`mptun down\` has undone it. A config with another
# stateDir under /run needs ReadWritePaths= for it in a drop-in.
RuntimeDirectory=mptun
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes

# Hardening. mptun needs CAP_NET_ADMIN (the TUN device, routes, rules, nftables, the net
# sysctls under /proc/sys/net) and /dev/net/tun, nothing more; the rest of the system is
# read-only or hidden.
CapabilityBoundingSet=CAP_NET_ADMIN
NoNewPrivileges=yes
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
$(hardening_common)
# Not set, on purpose: ProtectKernelTunables (mptun writes net sysctls), PrivateNetwork and
# PrivateDevices (it is the host's network, through /dev/net/tun), MemoryDenyWriteExecute
# (Node's JIT).

[Install]
WantedBy=multi-user.target
EOF
    ;;
    mptun-server.service) cat <<EOF
# Installed by mptun's scripts/install.sh; removed by \`scripts/install.sh --uninstall\`.
# The concentrator (\`mptun server\`) for a VPS: clients run \`mptun up --server THIS_HOST:7443
# --key FILE\` with a copy of $SERVER_KEY. Once: \`mptun server --genkey $SERVER_KEY\`, then
# \`systemctl enable --now mptun-server\`. Other arguments (--listen, --allow, --max-open ...):
# MPTUN_SERVER_ARGS=... in $SERVER_ENV (all of them: it replaces the default below), or
# \`systemctl edit mptun-server\`.
[Unit]
Description=mptun server: the concentrator (RFC 8803 Convert over the kernel's Multipath TCP)
Documentation=file:$LIB/README.md
# it announces the host's addresses to clients (MPTCP signal endpoints): wait for them
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
Environment="MPTUN_SERVER_ARGS=--listen 7443 --key $SERVER_KEY"
EnvironmentFile=-$SERVER_ENV
# \$MPTUN_SERVER_ARGS unbraced: systemd splits it into words
ExecStart=$BIN server \$MPTUN_SERVER_ARGS
# SIGTERM: it closes the connections and puts back what it changed in the kernel (MPTCP on,
# the TCP Fast Open server bit, MPTCP limits, its signal endpoints)
Restart=on-failure
RestartSec=5s
KillMode=mixed
TimeoutStopSec=20s
# the control socket (/run/mptun/server.sock) for \`mptun server status\`
RuntimeDirectory=mptun
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes

# Hardening. The concentrator needs CAP_NET_ADMIN (net sysctls, \`ip mptcp\` limits and
# endpoints) and CAP_NET_BIND_SERVICE (a --listen port below 1024), no device at all.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
PrivateDevices=yes
$(hardening_common)
# Not set, on purpose: ProtectKernelTunables (it writes net sysctls), PrivateNetwork (it is the
# host's network), MemoryDenyWriteExecute (Node's JIT).

[Install]
WantedBy=multi-user.target
EOF
    ;;
    *) die "no unit text for $1" ;;
  esac
}

# the example config, every setting commented out: the defaults apply until it is edited
config_text() {
  cat <<EOF
# mptun's configuration: \`mptun up --config $CONFIG\` (mptun.service runs that).
# Installed by scripts/install.sh as the full example ($LIB/docs/mptun.example.yaml) with
# every setting commented out: the defaults apply (every interface with a default route and a
# global address is a path). Uncomment and edit, then \`systemctl restart mptun\`. The fields
# are described in $LIB/docs/config.schema.json; a bad value is refused, naming the field.
# Uninstall keeps this file once it is changed (uninstall --purge removes it).
\$schema: $LIB/docs/config.schema.json

EOF
  # the example's own first lines (its usage line and its \$schema) are replaced by the above
  sed -e '/^\$schema:/d' -e '1{/^# mptun up --config/d}' "$SRC/docs/mptun.example.yaml" |
    sed -e 's/^\([^#[:space:]]\)/# \1/' -e 's/^\(  [^#[:space:]]\)/# \1/'
}

built() {
  [ -f "$SRC/dist/src/cli/main.js" ] && [ -f "$SRC/build/Release/mptun_tun.node" ] && [ -d "$SRC/node_modules" ] || return 1
  # a source newer than the compiled CLI: build again (setup.sh is quick when all is there)
  [ -z "$(find "$SRC/src" -newer "$SRC/dist/src/cli/main.js" -name '*.ts' -print -quit)" ]
}

install_all() {
  if ! built; then
    log "the tree is not built (or older than its sources): bash scripts/setup.sh"
    bash "$SRC/scripts/setup.sh"
  fi
  built || die "scripts/setup.sh did not build the tree"
  local node
  node=${NODE:-$(command -v node || true)}
  [ -n "$node" ] && [ -x "$node" ] || die "no node on PATH (mptun needs Node >= 20)"
  node=$(realpath -s "$node")

  local had_manifest=0
  declare -a OLD_DIRS=() OLD_FILES=()
  local old_config='' old_config_sha=''
  if read_manifest; then
    had_manifest=1 OLD_DIRS=("${M_DIRS[@]}") OLD_FILES=("${M_FILES[@]}") old_config=$M_CONFIG old_config_sha=$M_CONFIG_SHA
  elif [ -e "$R$LIB" ] || [ -e "$R$BIN" ] || [ -L "$R$BIN" ]; then
    die "$R$LIB or $R$BIN exists without an install manifest: not made by this script; remove it first"
  fi

  make_dirs "$(dirname "$LIB")"
  make_dirs "$(dirname "$BIN")"
  make_dirs "$UNIT_DIR"
  make_dirs "$ETC"

  # 1. the copy, made aside and swapped in whole
  local stage=$R$LIB.new.$$ old=$R$LIB.old.$$
  rm -rf "$stage"
  # a failed copy leaves no half-made folder behind (the installed one is untouched until the swap)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/dist" "$stage/build/Release" "$stage/docs" "$stage/scripts" "$stage/node_modules"
  cp -a "$SRC/package.json" "$SRC/README.md" "$SRC/bin" "$stage/"
  cp -a "$SRC/dist/src" "$stage/dist/"
  cp -a "$SRC/build/Release/mptun_tun.node" "$stage/build/Release/"
  cp -a "$SRC/docs/config.schema.json" "$SRC/docs/mptun.example.yaml" "$stage/docs/"
  cp -a "$SRC/scripts/testbed.sh" "$stage/scripts/"
  # the production dependencies, as npm resolves them (`npm ls --omit=dev`): top-level
  # package folders only (a nested one is inside its parent)
  local pkg kept=''
  while read -r pkg; do
    case "$pkg" in "$SRC/node_modules/"*) ;; *) continue ;; esac
    [ -n "$kept" ] && case "$pkg/" in "$kept"/*) continue ;; esac
    kept=$pkg
    mkdir -p "$stage/$(dirname "${pkg#"$SRC"/}")"
    cp -a "$pkg" "$stage/${pkg#"$SRC"/}"
  done < <(cd "$SRC" && npm ls --omit=dev --all --parseable 2>/dev/null | sort)
  [ -d "$stage/node_modules/yaml" ] || die "npm ls --omit=dev listed no dependencies (is node_modules complete? run scripts/setup.sh)"
  # root's, readable by all, written by none else (the clone may have had any owner and umask)
  [ "$(id -u)" = 0 ] && chown -R 0:0 "$stage"
  chmod -R u=rwX,go=rX "$stage"
  if [ -d "$R$LIB" ]; then mv "$R$LIB" "$old"; fi
  mv "$stage" "$R$LIB"
  trap - EXIT
  rm -rf "$old"

  # 2. the command
  rm -f "$R$BIN"
  cat > "$R$BIN" <<EOF
#!/bin/sh
# mptun, installed by scripts/install.sh ($MANIFEST). The copy in $LIB runs with
# the Node it was built for: the TUN addon is compiled for its ABI.
exec $node $LIB/bin/mptun.js "\$@"
EOF
  chmod 755 "$R$BIN"

  # 3. the units
  local u
  for u in $UNITS; do
    unit_text "$u" > "$R$UNIT_DIR/$u.tmp"
    chmod 644 "$R$UNIT_DIR/$u.tmp"
    mv "$R$UNIT_DIR/$u.tmp" "$R$UNIT_DIR/$u"
  done

  # 4. the config: never over one that is there
  local config_sha=''
  if [ -e "$R$CONFIG" ]; then
    if [ -n "$old_config" ]; then
      config_sha=$old_config_sha
      if [ "$(sha_of "$R$CONFIG")" = "$old_config_sha" ]; then
        # still the untouched example: it follows the new one
        config_text > "$R$CONFIG"; config_sha=$(sha_of "$R$CONFIG")
      else
        log "kept $CONFIG (yours: changed since install)"
      fi
    else
      log "kept $CONFIG (yours: there before install)"
    fi
  else
    config_text > "$R$CONFIG"
    chmod 644 "$R$CONFIG"
    config_sha=$(sha_of "$R$CONFIG")
    log "wrote $CONFIG (the example, all commented out: the defaults apply)"
  fi

  # 5. the manifest: what install made, old directories included
  {
    printf '# mptun install manifest (scripts/install.sh --uninstall reads it): d = a directory install made,\n'
    printf '# f = a file, c = the config install made and its sha256 then. Paths on the installed system.\n'
    local d
    for d in $(printf '%s\n' "${OLD_DIRS[@]}" "${NEW_DIRS[@]}" | awk 'NF && !seen[$0]++'); do printf 'd\t%s\n' "$d"; done
    printf 'd\t%s\n' "$LIB"
    (cd "$R$LIB" && find . -mindepth 1 -type d | sort | sed "s|^\.|d\t$LIB|")
    (cd "$R$LIB" && find . \( -type f -o -type l \) ! -name 'install-manifest*' | sort | sed "s|^\.|f\t$LIB|")
    printf 'f\t%s\n' "$MANIFEST" "$BIN"
    for u in $UNITS; do printf 'f\t%s\n' "$UNIT_DIR/$u"; done
    if [ -n "$config_sha" ]; then printf 'c\t%s\t%s\n' "$CONFIG" "$config_sha"; fi
  } | awk '!seen[$0]++' > "$R$MANIFEST.tmp"
  chmod 644 "$R$MANIFEST.tmp"
  mv "$R$MANIFEST.tmp" "$R$MANIFEST"

  # files of an earlier install that this one no longer has (a unit dropped, a dependency gone)
  local f
  for f in "${OLD_FILES[@]}"; do
    case "$f" in "$LIB"/*) continue ;; esac
    grep -qxF "f	$f" "$R$MANIFEST" || { rm -f "$R$f"; log "removed $f (no longer installed)"; }
  done

  log "installed mptun $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$SRC/package.json" | head -n1) into $ROOT: $BIN -> $LIB (node $node), units $UNITS in $UNIT_DIR, config $CONFIG"
  if systemd_running; then
    systemctl daemon-reload
    if systemctl is-active --quiet mptun.service; then
      log "mptun.service is running the earlier copy: \`systemctl restart mptun\` to use this one"
    else
      log "start it: \`systemctl enable --now mptun\` (now and at boot), or by hand: \`sudo mptun up\`"
    fi
    if ! systemctl is-active --quiet mptun-server.service; then
      log "or, on a VPS, the concentrator: \`mptun server --genkey $SERVER_KEY && systemctl enable --now mptun-server\` (port 7443; other arguments: MPTUN_SERVER_ARGS in $SERVER_ENV)"
    fi
  elif [ -z "$R" ]; then
    log "systemd is not running here: \`sudo mptun up\` starts it by hand"
  fi
  [ $had_manifest = 1 ] && log "(updated an earlier install)"
  return 0
}

case $mode in
  install) install_all ;;
  uninstall) uninstall ;;
esac
