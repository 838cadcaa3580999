#!/bin/bash
# Entry point of the demo's containers (installed in the image as /usr/local/bin/mptun-demo).
#
#   mptun-demo server            kernel MPTCP iperf3 server on both links; with MPTUN_KEY also
#                                the concentrator, `mptun server` on port 7443 (log in
#                                /var/log/mptun-server.log), allowed to connect to
#                                CONCENTRATOR_ALLOW only
#   mptun-demo dest              a plain-TCP iperf3 server (no MPTCP) on LINK3_ADDR
#   mptun-demo client            shapes the links, then runs `mptun up` over both (foreground)
#   mptun-demo client CMD...     shapes the links, then runs CMD instead of mptun
#   mptun-demo measure CMD...    runs CMD (e.g. iperf3 -J) and prints one JSON object:
#                                { "links": {link1: {dev, txBytes, rxBytes}, link2: ...},
#                                  "output": <CMD's stdout, parsed as JSON when it is> }
#   mptun-demo links             the two links as JSON (device, counters)
#
# The links are found by address, not by name (Docker does not promise which network becomes
# eth0): LINK1_ADDR and LINK2_ADDR are this container's addresses on link1 and link2. The
# client's paths go to the server's address on the same link (SERVER1, SERVER2) as gateway.
# RATE (default 100mbit) shapes every link's egress with tbf; RATE=0 turns shaping off.
# MPTUN_KEY (64 hex digits): the key the concentrator and the client share, written to
# /run/mptun-demo.key (mode 0600) for their --key.
set -euo pipefail

RATE=${RATE:-100mbit}
log() { echo "mptun-demo: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The interface that holds the IPv4 address $1 (waits a little: Docker may attach the second
# network just after the container starts).
iface_of() {
  local addr=$1 dev
  for _ in $(seq 1 50); do
    dev=$(ip -o -4 addr show | awk -v a="$addr" '{ split($4, p, "/"); if (p[1] == a) { sub(/@.*/, "", $2); print $2; exit } }')
    if [ -n "$dev" ]; then echo "$dev"; return 0; fi
    sleep 0.1
  done
  die "no interface has address $addr"
}

shape() {
  local dev=$1
  [ "$RATE" = 0 ] && return 0
  tc qdisc replace dev "$dev" root tbf rate "$RATE" burst 64kb latency 50ms
}

links_json() {
  local d1 d2
  d1=$(iface_of "${LINK1_ADDR:?}")
  d2=$(iface_of "${LINK2_ADDR:?}")
  printf '{"link1":{"dev":"%s","addr":"%s","txBytes":%s,"rxBytes":%s},"link2":{"dev":"%s","addr":"%s","txBytes":%s,"rxBytes":%s}}\n' \
    "$d1" "$LINK1_ADDR" "$(cat /sys/class/net/"$d1"/statistics/tx_bytes)" "$(cat /sys/class/net/"$d1"/statistics/rx_bytes)" \
    "$d2" "$LINK2_ADDR" "$(cat /sys/class/net/"$d2"/statistics/tx_bytes)" "$(cat /sys/class/net/"$d2"/statistics/rx_bytes)"
}

setup_links() {
  IF1=$(iface_of "${LINK1_ADDR:?LINK1_ADDR is not set}")
  IF2=$(iface_of "${LINK2_ADDR:?LINK2_ADDR is not set}")
  shape "$IF1"
  shape "$IF2"
  log "link1 $LINK1_ADDR on $IF1, link2 $LINK2_ADDR on $IF2, egress ${RATE/#0/unshaped}"
}

KEY_FILE=/run/mptun-demo.key
write_key() {
  [ -n "${MPTUN_KEY:-}" ] || return 1
  [[ $MPTUN_KEY =~ ^[0-9a-fA-F]{64}$ ]] || die "MPTUN_KEY must be 64 hex digits"
  (umask 077 && printf '%s\n' "$MPTUN_KEY" > "$KEY_FILE")
}

mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
  server)
    setup_links
    # the kernel's MPTCP: joins accepted, and the link2 address announced (ADD_ADDR)
    ip mptcp limits set subflows 4 add_addr_accepted 4
    ip mptcp endpoint flush
    ip mptcp endpoint add "$LINK2_ADDR" dev "$IF2" signal
    log "kernel MPTCP iperf3 server: $(ip mptcp limits show | tr '\n' ' ')/ $(ip mptcp endpoint show | tr '\n' ' ')"
    if write_key; then
      # the concentrator: the kernel is already as it needs it (compose's sysctls, the limits
      # and the link2 endpoint above), so --no-system-setup; it would also announce link3
      mptun server --listen 7443 --key "$KEY_FILE" --allow "${CONCENTRATOR_ALLOW:?}" --no-system-setup \
        --control-socket /run/mptun/server.sock > /var/log/mptun-server.log 2>&1 &
      log "concentrator: mptun server on port 7443 (pid $!), --allow $CONCENTRATOR_ALLOW"
    fi
    exec mptcpize run iperf3 -s
    ;;
  dest)
    dev=$(iface_of "${LINK3_ADDR:?LINK3_ADDR is not set}")
    log "plain-TCP iperf3 server on $LINK3_ADDR ($dev), no MPTCP"
    exec iperf3 -s
    ;;
  client)
    setup_links
    # for the kernel-MPTCP reference run (mptcpize) without mptun: joins to announced addresses
    ip mptcp limits set subflows 4 add_addr_accepted 4
    write_key || true
    if [ $# -gt 0 ]; then exec "$@"; fi
    # shellcheck disable=SC2086 # MPTUN_ARGS: several options, split on purpose
    exec mptun up --path "$IF1:${SERVER1:?}" --path "$IF2:${SERVER2:?}" ${MPTUN_ARGS:-}
    ;;
  measure)
    [ $# -gt 0 ] || die "measure: no command"
    before=$(links_json)
    out=$(mktemp)
    rc=0
    "$@" > "$out" || rc=$?
    after=$(links_json)
    BEFORE=$before AFTER=$after RC=$rc node -e '
      const fs = require("node:fs");
      const b = JSON.parse(process.env.BEFORE), a = JSON.parse(process.env.AFTER);
      const text = fs.readFileSync(process.argv[1], "utf8");
      let output; try { output = JSON.parse(text); } catch { output = text; }
      const links = {};
      for (const k of ["link1", "link2"]) {
        links[k] = { dev: a[k].dev, addr: a[k].addr, txBytes: a[k].txBytes - b[k].txBytes, rxBytes: a[k].rxBytes - b[k].rxBytes };
      }
      console.log(JSON.stringify({ exitCode: Number(process.env.RC), links, output }));
    ' "$out"
    rm -f "$out"
    exit "$rc"
    ;;
  links)
    links_json
    ;;
  *)
    sed -n '2,23p' "$0" >&2
    exit 2
    ;;
esac
