#!/usr/bin/env bash
# Installs what mptun needs on a fresh Debian machine of this kind, then builds it.
# Idempotent: a second run installs nothing and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (sudo): it installs Debian packages and the tests build network namespaces" >&2
    exit 1
  fi
}

# Debian packages, by the commands the scripts, tests and benchmarks run. One line a command:
# "command package". test/setup/commands.test.ts checks that every external command the project
# runs is listed here, so a fresh machine has it (on Debian 12 `mptcpize` is a package of its
# own, not part of `mptcpd`: a machine that had it by chance hid that once).
COMMANDS='
ip iproute2
tc iproute2
ss iproute2
nstat iproute2
nft nftables
iperf3 iperf3
mptcpize mptcpize
tshark tshark
tcpdump tcpdump
ping iputils-ping
modprobe kmod
sysctl procps
setpriv util-linux
hping3 hping3
curl curl
python3 python3
systemd-analyze systemd
systemctl systemd
debootstrap debootstrap
make make
g++ g++
'
PKGS=()
while read -r cmd pkg; do
  [ -n "$cmd" ] || continue
  case " ${PKGS[*]} " in *" $pkg "*) ;; *) PKGS+=("$pkg") ;; esac
done <<<"$COMMANDS"
if [ "${1:-}" = "--commands" ]; then   # the map, for the test that checks it
  printf '%s\n' "$COMMANDS" | sed '/^$/d'
  exit 0
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# every command of the map must now be there: a package that no longer ships its command
# (as mptcpd stopped shipping mptcpize) is said here, not in a test far away
for cmd in $(printf '%s\n' "$COMMANDS" | awk 'NF{print $1}'); do
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd" >/dev/null 2>&1 \
    || { echo "setup: '$cmd' is still missing after installing its package" >&2; exit 1; }
done

# The TUN device must exist (it does on this kind of machine; a container needs --device).
if [ ! -c /dev/net/tun ]; then
  modprobe tun 2>/dev/null || true
fi

# npm packages and the native TUN addon (node-gyp, run by npm's install script: make, g++ and
# python3 above). node-gyp builds against the headers of the Node that runs it, from that Node's
# installation (NodeSource's nodejs has them in <prefix>/include/node) rather than a download
# from nodejs.org, which a machine that reaches only the npm registry and Debian cannot make.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir=$node_prefix
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f build/Release/mptun_tun.node ]; then
  echo "setup: npm ci (with the native build of src/tun)"
  npm ci --no-audit --no-fund --loglevel=error
elif [ -n "$(find binding.gyp src/tun/native -newer build/Release/mptun_tun.node 2>/dev/null | head -1)" ]; then
  # the addon's sources changed since it was built (a pull, a merge): build it again
  echo "setup: rebuilding the native addon of src/tun"
  node_modules/.bin/node-gyp rebuild --loglevel=error >/dev/null
fi
npm run --silent build
