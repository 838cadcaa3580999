#!/usr/bin/env bash
# Makes what docker/Dockerfile needs on a Debian 12 machine with no image registry:
#   1. Debian's Docker engine (docker.io), debootstrap and a compose (Debian's docker-compose);
#   2. a running dockerd (systemd when there is one, else dockerd in the background, logs in
#      /var/log/dockerd.log);
#   3. the local base image mptun-base:bookworm: a minbase debootstrap of bookworm from the
#      machine's own Debian mirror, imported with `docker import`.
# Idempotent: each step is skipped when it is already done. Run as root.
#
# Environment: MIRROR (default: the first Debian mirror in /etc/apt/sources.list*),
#              BASE_IMAGE (default mptun-base:bookworm), SUITE (default bookworm).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-mptun-base:bookworm}
SUITE=${SUITE:-bookworm}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

log() { echo "make-base-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo bash $0)"

# --- 1. packages ---------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  need+=(docker-compose)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d: the package's own start script must not start dockerd with its defaults;
  # step 2 starts it with the settings below
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
  [ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get install ${need[*]} failed"
fi

# --- 2. dockerd ------------------------------------------------------------------------------
# The engine leaves the root namespace's firewall and forwarding alone ("iptables": false,
# "ip-forward": false): a Docker engine's iptables rules set the FORWARD policy to DROP, which
# breaks the namespace test beds of this repository that run on the same machine. The demo's
# containers only talk to each other on their own bridges, which needs neither; builds reach
# the Debian mirror with `docker build --network host`.
if [ ! -e /etc/docker/daemon.json ]; then
  mkdir -p /etc/docker
  cat > /etc/docker/daemon.json <<'EOF'
{
  "iptables": false,
  "ip6tables": false,
  "ip-forward": false,
  "ip-masq": false
}
EOF
  log "wrote /etc/docker/daemon.json (no iptables rules, no ip_forward)"
fi

docker_up() { docker info >/dev/null 2>&1; }
if ! docker_up; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    log "starting docker through systemd"
    systemctl start docker || true
  fi
  if ! docker_up && ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon outlives this script and the shell that ran it
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do docker_up && break; sleep 1; done
  docker_up || die "dockerd does not answer after 60 s; see $DOCKERD_LOG"
fi
log "docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"

# --- 3. the base image -----------------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE exists"
  exit 0
fi

if [ -z "${MIRROR:-}" ]; then
  # the first non-security Debian archive of apt's sources: deb822 "URIs:" or one-line "deb URL"
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' |
    awk '{print $1}' | grep -E '/debian/?$' | grep -v security | head -n1 || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
log "debootstrap --variant=minbase $SUITE from $MIRROR"

work=$(mktemp -d /var/tmp/mptun-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed"
}
# the image's apt uses the same mirror; no package caches or lists in the image
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$BASE_IMAGE" >/dev/null
log "made $BASE_IMAGE ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
