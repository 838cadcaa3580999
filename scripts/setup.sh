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

# Debian packages: the kernel's peers and oracles (iperf3, mptcpize from mptcpd, tshark),
# the tools of the test bed (iproute2, nftables, tcpdump), and the native build.
PKGS=(iperf3 mptcpd nftables tshark tcpdump iproute2 iputils-ping kmod procps)
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

# The TUN device must exist (it does on this kind of machine; a container needs --device).
if [ ! -c /dev/net/tun ]; then
  modprobe tun 2>/dev/null || true
fi

# npm packages and the native TUN addon (node-gyp, run by npm's install script).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f build/Release/mptun_tun.node ]; then
  echo "setup: npm ci (with the native build of src/tun)"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
