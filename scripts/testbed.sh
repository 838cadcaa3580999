#!/usr/bin/env bash
# testbed.sh — the two-link reference test bed of mptun, in network namespaces.
#
#   client ns "${P}-cli"                               server ns "${P}-srv"
#   ┌──────────────────────────┐  link 1 (veth)  ┌──────────────────────────────┐
#   │ ${P}c1 10.201.1.1/24  ───┼─────────────────┼─── ${P}s1 10.201.1.2/24        │
#   │ ${P}c2 10.201.2.1/24  ───┼─────────────────┼─── ${P}s2 10.201.2.2/24        │
#   │  mptun runs here         │  link 2 (veth)  │  kernel MPTCP: mptcpize iperf3 │
#   └──────────────────────────┘                 └──────────────┬───────────────┘
#                                   with up --dest: link 3 (veth) │ ${P}x3 10.201.3.1/24
#                                                  dest ns "${P}-dst" ${P}y3 10.201.3.2/24
#                                                  (plain TCP servers, reached through the
#                                                   concentrator in the server ns only)
#
# Everything is named after a prefix (TESTBED_PREFIX, default "mptb"), so that several users
# and tests can each have a bed of their own; nothing is changed in the root namespace.
# Run `testbed.sh --help` for the commands.
set -euo pipefail

# The system's tools come first: under `npm test`/`npx`, node_modules/.bin leads PATH, and it
# has an `nft` of its own (@vercel/nft, a dependency of ava) that is not nftables.
TESTBED_PATH=${TESTBED_PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
PATH=$TESTBED_PATH${PATH:+:$PATH}

PROG=${0##*/}
ARGS="$*"

usage() {
  cat <<'EOF'
Usage: testbed.sh COMMAND [ARGS...]          (as root; TESTBED_PREFIX=name picks the bed)

The two-link reference test bed of mptun: a client namespace joined to a server namespace by
two veth links, each optionally rate-limited (tbf or htb, both directions) and lossy
(nftables in the server namespace). The server runs the Linux kernel's MPTCP; mptun runs in
the client namespace (`testbed.sh exec-client node bin/mptun.js up ...`).

Commands:
  up [OPTIONS]          build the bed (removes leftovers of the same prefix first)
  down                  remove everything of this prefix: processes in its namespaces,
                        namespaces, links, run dir. Succeeds when nothing is there.
  status                show the bed (links, addresses, routes, qdiscs, nftables, MPTCP
                        endpoints, servers); exits 1 when the bed is not up
  env [--export]        print the topology as shell variables (KEY=value, one a line):
                          eval "$(scripts/testbed.sh env)"
                        After `up` it prints what `up` built; before, what it would build.
  set [OPTIONS]         change rates, qdisc or loss of a bed that is up (same options as up)
  exec-client CMD...    run CMD in the client namespace (the TESTBED_* variables exported)
  exec-server CMD...    run CMD in the server namespace (the TESTBED_* variables exported)
  server-start [--port N] [--plain]
                        start an iperf3 server in the server namespace, under the kernel's
                        MPTCP (`mptcpize run iperf3 -s`; --plain: plain TCP). Default port
                        5201; several ports may run at once. Waits until it listens.
  server-stop [--port N]
                        stop the iperf3 server of that port (all of them without --port)
  exec-dest CMD...      run CMD in the destination namespace (a bed made with up --dest)
  dest-start [--port N] start a plain-TCP iperf3 server (no mptcpize) in the destination
                        namespace; default port 5201. Waits until it listens.
  dest-stop [--port N]  stop the destination's iperf3 server of that port (all without --port)
  link-down N [--blackhole]
                        take link N (1 or 2) down: the client's veth end administratively
                        down, so the client's kernel sees it and drops its routes (a pulled
                        cable), while the server, as one far away, only stops hearing from
                        the client (what it sends is dropped in silence). With
                        --blackhole the link stays up and nftables drops everything on it
                        (a silent failure: only timeouts tell).
  link-up N             undo link-down N (routes of the link are put back)
  help, --help, -h      this text

Options of up and set:
  --rate MBIT           rate limit of both links, each direction (e.g. 100 = 100 Mbit/s);
                        0 = unlimited (default)
  --rate1 MBIT, --rate2 MBIT
                        rate limit of one link
  --qdisc tbf|htb       the shaper (default tbf)
  --loss PCT            drop PCT % (integer 0..100) of the packets of both links, in each
                        direction (nftables `numgen random mod 100 < PCT drop` in the server
                        namespace); 0 = none (default). A lossy link's veth ends carry
                        wire-size packets (gso_max_segs 1): each drop takes one packet, as on
                        a real link, not a GSO super-packet of up to 64 KB
  --loss1 PCT, --loss2 PCT
                        loss on one link
  --delay MS            one-way delay of both links, each direction (so the RTT grows by
                        2 × MS), made by the delay line (below); 0 = none (default)
  --delay1 MS, --delay2 MS
                        delay of one link
  --jitter MS           each packet's delay varies by up to ± MS (uniform), without
                        reordering (--jitter1, --jitter2: one link)
  --burst-loss P,R[,LOSS_BAD[,LOSS_GOOD]]
                        bursty loss in the delay line (Gilbert-Elliott, as netem's gemodel; all
                        in %): Good->Bad with P, Bad->Good with R after each packet; loss LOSS_BAD
                        in Bad (default 100), LOSS_GOOD in Good (default 0); mean loss
                        P/(P+R) × LOSS_BAD with the defaults. 0 = none (--burst-loss1, ...2)
  --queue BYTES|MSms    queue limit at the rate, e.g. 60000 or 30ms (tail drop); default 20ms
                        (--queue1, --queue2: one link)
  A link with a delay, jitter or bursty loss goes through the delay line: a process in the
  server namespace (dist/bench/delayline.js, on mptun's TUN addon) that holds each packet of
  that link, both directions, and also does that link's --rate and --queue (instead of the
  qdisc). See the "Delay line" block of this script for how and why.
Options of up only:
  --no-client-mptcp     no kernel MPTCP endpoint on the client (when mptun is the client)
  --dest                also build the destination namespace ${P}-dst behind the server (for
                        mptun's concentrator, `mptun server`, run in the server namespace):
                        client ==two links== server --one fast link-- destination. Link 3 is
                        neither shaped nor delayed. The destination is a plain (non-MPTCP)
                        host, reached from the client only through the concentrator: the server
                        namespace does not forward into it from the client (nftables table
                        `inet ${P}_dest` drops what would be forwarded to or from link 3, also
                        when the delay line turns forwarding on).

Topology (defaults; each can be overridden by the environment variable of that name at `up`):
  namespaces            ${P}-cli (client), ${P}-srv (server)
  link 1                ${P}c1 10.201.1.1/24 fd00:201:1::1/64  <->  ${P}s1 10.201.1.2/24 fd00:201:1::2/64
  link 2                ${P}c2 10.201.2.1/24 fd00:201:2::1/64  <->  ${P}s2 10.201.2.2/24 fd00:201:2::2/64
                        (TESTBED_CLI_ADDR1, TESTBED_SRV_ADDR1, TESTBED_CLI_ADDR2, TESTBED_SRV_ADDR2,
                         TESTBED_PLEN4, TESTBED_CLI_ADDR6_1, ..., TESTBED_PLEN6)
  client routing        main table: default via link 1; table 102 (TESTBED_CLI_TABLE2):
                        default via link 2, rule `from <client addr 2> lookup 102`; the same for
                        link 1 with table 101 (so each source address leaves by its own link)
  kernel MPTCP          net.mptcp.enabled=1 in both namespaces. Server: `ip mptcp limits set
                        subflows 4 add_addr_accepted 4`, endpoint <server addr 2> dev ${P}s2
                        signal. Client: endpoint <client addr 2> dev ${P}c2 subflow, limits
                        subflows 4 add_addr_accepted 0, so a kernel client makes exactly one
                        subflow per link; with --no-client-mptcp no endpoint and
                        add_addr_accepted 4. The same endpoints for IPv6.
  sysctls               in both namespaces only: rp_filter 0, IPv6 keep_addr_on_down 1 (a link
                        that comes back up keeps its addresses); the root namespace is untouched
  destination (--dest)  ${P}-dst; link 3: ${P}x3 10.201.3.1/24 fd00:201:3::1/64 (server) <->
                        ${P}y3 10.201.3.2/24 fd00:201:3::2/64 (destination); the destination's
                        default routes (v4, v6) via the server's end; the server has no route
                        beyond link 3's network (TESTBED_SRV_ADDR3, TESTBED_DST_ADDR,
                        TESTBED_SRV_ADDR6_3, TESTBED_DST_ADDR6; `env` says TESTBED_DEST=1)
  loss/blackhole        nftables tables `inet ${P}_testbed` in the server namespace (what
                        arrives there) and `netdev ${P}_testbed` in the client namespace
  delay line            TUN devices ${P}d1i ${P}d1o ${P}d2i ${P}d2o in the server namespace, rules
                        pref 91/92, 100 (local), 111/112, tables 201/202, 211/212 there; the
                        server namespace forwards (ip_forward) with early demux off
  run dir               /run/mptun-testbed/${P} (TESTBED_RUN_DIR): state, iperf3 pidfiles, logs
  tools                 looked up first in TESTBED_PATH (default: the system's sbin and bin
                        directories), then in PATH

Examples:
  sudo scripts/testbed.sh up --rate 100
  sudo scripts/testbed.sh server-start
  sudo scripts/testbed.sh exec-client mptcpize run iperf3 -c 10.201.1.2 -t 5
  sudo scripts/testbed.sh exec-client node bin/mptun.js up        # mptun as the client
  sudo scripts/testbed.sh link-down 2; sudo scripts/testbed.sh link-up 2
  sudo TESTBED_PREFIX=mine scripts/testbed.sh up --rate1 50 --rate2 10 --loss2 1
  sudo scripts/testbed.sh up --rate 100 --delay1 5 --delay2 25 --jitter2 2 --burst-loss2 1,30
  sudo scripts/testbed.sh up --delay 20 --no-client-mptcp --dest; sudo scripts/testbed.sh dest-start
  sudo scripts/testbed.sh down
EOF
}

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "${PROG}[${P}]: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Configuration: everything is a TESTBED_* variable, from the environment or a default. Once the
# bed is up, its state file (written by `up`, updated by `set`/`link-*`) is the truth.

P=${TESTBED_PREFIX:-mptb}
# ${P}c1 must fit IFNAMSIZ (15 characters) and ${P}_testbed must be an nftables identifier.
[[ $P =~ ^[A-Za-z][A-Za-z0-9_]{0,11}$ ]] \
  || die "TESTBED_PREFIX must be a letter then up to 11 letters, digits or _ (got '$P')"

RUN_DIR=${TESTBED_RUN_DIR:-/run/mptun-testbed/$P}
STATE=$RUN_DIR/state

# load_config [fresh]: the topology from the environment and the defaults; unless "fresh"
# (used by `up`), the state file of a bed that is up overrides them.
load_config() {
  if [[ ${1:-} != fresh && -r $STATE ]]; then
    # shellcheck source=/dev/null
    . "$STATE"
  fi
  : "${TESTBED_CLI_ADDR1:=10.201.1.1}"
  : "${TESTBED_SRV_ADDR1:=10.201.1.2}"
  : "${TESTBED_CLI_ADDR2:=10.201.2.1}"
  : "${TESTBED_SRV_ADDR2:=10.201.2.2}"
  : "${TESTBED_PLEN4:=24}"
  : "${TESTBED_CLI_ADDR6_1:=fd00:201:1::1}"
  : "${TESTBED_SRV_ADDR6_1:=fd00:201:1::2}"
  : "${TESTBED_CLI_ADDR6_2:=fd00:201:2::1}"
  : "${TESTBED_SRV_ADDR6_2:=fd00:201:2::2}"
  : "${TESTBED_PLEN6:=64}"
  : "${TESTBED_CLI_TABLE1:=101}"
  : "${TESTBED_CLI_TABLE2:=102}"
  : "${TESTBED_IPERF_PORT:=5201}"
  : "${TESTBED_SRV_ADDR3:=10.201.3.1}"
  : "${TESTBED_DST_ADDR:=10.201.3.2}"
  : "${TESTBED_SRV_ADDR6_3:=fd00:201:3::1}"
  : "${TESTBED_DST_ADDR6:=fd00:201:3::2}"
  if [[ ${1:-} == fresh || ! -r $STATE ]]; then
    # What `up`, `set` and `link-*` decide: options, not environment
    TESTBED_QDISC=tbf TESTBED_RATE1=0 TESTBED_RATE2=0 TESTBED_LOSS1=0 TESTBED_LOSS2=0
    TESTBED_LINK1=up TESTBED_LINK2=up TESTBED_CLIENT_MPTCP=1 TESTBED_DEST=0
    # the delay line (see "Delay line" below)
    TESTBED_DELAY1=0 TESTBED_DELAY2=0 TESTBED_JITTER1=0 TESTBED_JITTER2=0
    TESTBED_BURST1=0 TESTBED_BURST2=0 TESTBED_QUEUE1=0 TESTBED_QUEUE2=0
  fi
  # a state file of a bed made before the delay line existed
  : "${TESTBED_DELAY1:=0}" "${TESTBED_DELAY2:=0}" "${TESTBED_JITTER1:=0}" "${TESTBED_JITTER2:=0}"
  : "${TESTBED_BURST1:=0}" "${TESTBED_BURST2:=0}" "${TESTBED_QUEUE1:=0}" "${TESTBED_QUEUE2:=0}"
  : "${TESTBED_DEST:=0}"   # a state file of a bed made before --dest existed
}

NS_CLI=$P-cli
NS_SRV=$P-srv
NS_DST=$P-dst
NFT_TABLE=${P}_testbed
DST_NFT_TABLE=${P}_dest
DST_SRV_IF=${P}x3   # link 3 (--dest): the server's end
DST_IF=${P}y3       # and the destination's
RULE_PREF_BASE=20000   # client rules `from <addr N>` get 20001, 20002: below main (32766),
                       # above the low numbers an appliance like mptun would pick for itself

cli_if() { echo "${P}c$1"; }
srv_if() { echo "${P}s$1"; }
var() { local n=$1; echo "${!n}"; }                   # value of the variable named $1
cli_addr() { var "TESTBED_CLI_ADDR$1"; }
srv_addr() { var "TESTBED_SRV_ADDR$1"; }
cli_addr6() { var "TESTBED_CLI_ADDR6_$1"; }
srv_addr6() { var "TESTBED_SRV_ADDR6_$1"; }

ENV_VARS=(
  TESTBED_PREFIX TESTBED_NS_CLIENT TESTBED_NS_SERVER
  TESTBED_CLI_IF1 TESTBED_CLI_IF2 TESTBED_SRV_IF1 TESTBED_SRV_IF2
  TESTBED_CLI_ADDR1 TESTBED_CLI_ADDR2 TESTBED_SRV_ADDR1 TESTBED_SRV_ADDR2 TESTBED_PLEN4
  TESTBED_CLI_ADDR6_1 TESTBED_CLI_ADDR6_2 TESTBED_SRV_ADDR6_1 TESTBED_SRV_ADDR6_2 TESTBED_PLEN6
  TESTBED_CLI_TABLE1 TESTBED_CLI_TABLE2 TESTBED_IPERF_PORT TESTBED_NFT_TABLE TESTBED_RUN_DIR
  TESTBED_QDISC TESTBED_RATE1 TESTBED_RATE2 TESTBED_LOSS1 TESTBED_LOSS2
  TESTBED_LINK1 TESTBED_LINK2 TESTBED_CLIENT_MPTCP TESTBED_UP
  TESTBED_DELAY1 TESTBED_DELAY2 TESTBED_JITTER1 TESTBED_JITTER2 TESTBED_BURST1 TESTBED_BURST2
  TESTBED_QUEUE1 TESTBED_QUEUE2
  TESTBED_DEST TESTBED_NS_DEST TESTBED_SRV_IF3 TESTBED_DST_IF
  TESTBED_SRV_ADDR3 TESTBED_DST_ADDR TESTBED_SRV_ADDR6_3 TESTBED_DST_ADDR6
)

# The derived names, as variables (for `env`, the state file and exec-*)
# shellcheck disable=SC2034  # read through ${!v} in print_env and cmd_exec
set_derived() {
  TESTBED_PREFIX=$P
  TESTBED_NS_CLIENT=$NS_CLI
  TESTBED_NS_SERVER=$NS_SRV
  TESTBED_NS_DEST=$NS_DST
  TESTBED_SRV_IF3=$DST_SRV_IF; TESTBED_DST_IF=$DST_IF
  TESTBED_CLI_IF1=$(cli_if 1); TESTBED_CLI_IF2=$(cli_if 2)
  TESTBED_SRV_IF1=$(srv_if 1); TESTBED_SRV_IF2=$(srv_if 2)
  TESTBED_NFT_TABLE=$NFT_TABLE
  TESTBED_RUN_DIR=$RUN_DIR
  if bed_exists; then TESTBED_UP=1; else TESTBED_UP=0; fi
}

print_env() {   # $1: "export " or ""
  local v
  set_derived
  for v in "${ENV_VARS[@]}"; do
    printf '%s%s=%q\n' "$1" "$v" "${!v}"
  done
}

save_state() {
  mkdir -p "$RUN_DIR"
  print_env "" | grep -v '^TESTBED_UP=' > "$STATE.tmp"
  mv "$STATE.tmp" "$STATE"
}

# ---------------------------------------------------------------------------------------------
# Preconditions

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (it creates network namespaces): sudo $0 $ARGS"
}

need_tools() {   # need_tools tool... — each with the Debian package that has it
  local t pkg
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 && continue
    case $t in
      ip|tc|ss|nstat) pkg=iproute2 ;;
      nft) pkg=nftables ;;
      iperf3) pkg=iperf3 ;;
      mptcpize) pkg=mptcpd ;;
      ping) pkg=iputils-ping ;;
      sysctl) pkg=procps ;;
      *) pkg=$t ;;
    esac
    die "'$t' is missing: apt-get install $pkg"
  done
}

ns_exists() { [[ -e /run/netns/$1 ]]; }
bed_exists() { ns_exists "$NS_CLI" && ns_exists "$NS_SRV"; }
need_bed() { bed_exists || die "the bed '$P' is not up (run: $PROG up)"; }
need_dest() { need_bed; ns_exists "$NS_DST" || die "the bed '$P' has no destination (run: $PROG up --dest)"; }

check_link_arg() { [[ ${1:-} == 1 || ${1:-} == 2 ]] || die "link number must be 1 or 2 (got '${1:-}')"; }
check_rate() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "rate must be a number of Mbit/s (got '$1')"; }
check_loss() {
  if ! [[ $1 =~ ^[0-9]+$ ]] || (( $1 > 100 )); then
    die "loss must be an integer percentage 0..100 (got '$1')"
  fi
}

# ---------------------------------------------------------------------------------------------
# Building blocks

in_srv() { ip netns exec "$NS_SRV" "$@"; }

# Rate limit of one link, both directions: the egress qdisc of each veth end.
# tbf: the bucket holds at least 2 ms at the rate (and two full frames), the queue 20 ms.
# htb: one class at the rate (ceil = rate), the default class for all traffic.
apply_rate() {   # apply_rate N
  local n=$1 rate ns dev burst
  rate=$(var "TESTBED_RATE$n")
  for ns in "$NS_CLI" "$NS_SRV"; do
    if [[ $ns == "$NS_CLI" ]]; then dev=$(cli_if "$n"); else dev=$(srv_if "$n"); fi
    tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
    if awk -v r="$rate" 'BEGIN { exit !(r + 0 == 0) }'; then continue; fi   # 0: unlimited
    if dl_link_on "$n"; then continue; fi   # the delay line paces this link (dl_* below)
    burst=$(awk -v r="$rate" 'BEGIN { b = r * 1e6 / 8 * 0.002; if (b < 3100) b = 3100; printf "%d", b }')
    case $TESTBED_QDISC in
      tbf)
        if [[ $(var "TESTBED_QUEUE$n") != 0 ]]; then   # --queue: the tbf's limit in bytes
          tc -n "$ns" qdisc add dev "$dev" root tbf rate "${rate}mbit" burst "$burst" limit "$(dl_queue_bytes "$n")"
        else
          tc -n "$ns" qdisc add dev "$dev" root tbf rate "${rate}mbit" burst "$burst" latency 20ms
        fi
        ;;
      htb)
        tc -n "$ns" qdisc add dev "$dev" root handle 1: htb default 10
        tc -n "$ns" class add dev "$dev" parent 1: classid 1:10 htb \
          rate "${rate}mbit" ceil "${rate}mbit" burst "$burst" cburst "$burst" quantum 1514
        ;;
      *) die "unknown qdisc '$TESTBED_QDISC' (tbf or htb)" ;;
    esac
    tc -n "$ns" qdisc show dev "$dev" | grep -q "$TESTBED_QDISC" \
      || die "the $TESTBED_QDISC qdisc did not take on $dev in $ns"
  done
}

# A lossy link carries wire-size packets: GSO super-packets (a TCP sender's TSO, or what mptun
# writes into its TUN device with vnet_hdr) are cut into MTU-size packets before its veth, so
# that the nftables rule below drops one packet at a time, as loss on a real link does (veth
# carries a super-packet whole: one drop would take up to 64 KB at once, which favours the
# senders of large super-packets). gso_max_segs 1 on both ends: a local sender builds no
# super-packet for the device, a forwarded one is segmented in software at its egress.
apply_wire_packets() {   # apply_wire_packets N
  local n=$1 segs=65535
  if (( $(var "TESTBED_LOSS$n") > 0 )); then segs=1; fi
  ip -n "$NS_CLI" link set dev "$(cli_if "$n")" gso_max_segs "$segs"
  ip -n "$NS_SRV" link set dev "$(srv_if "$n")" gso_max_segs "$segs"
}

# The nftables tables of random loss and blackholes, per link and direction, rebuilt whole
# (atomically) from the state, removed when they have nothing to do. Each direction is dropped
# where the packet arrives, never where it leaves: client -> server in the server namespace
# (inet, prerouting), server -> client in the client namespace (netdev, ingress of the client's
# veth end). A drop in the sender's own output path is no loss on a wire: the kernel's
# ip_local_out returns it as an error (NF_DROP: -EPERM), so its TCP keeps the segment and sends
# it again later, and a listener whose SYN-ACK retransmission fails that way drops the request
# at once (inet_rtx_syn_ack in reqsk_timer_handler): every connection caught half-open by a
# blackhole was reset when the link came back.
apply_nft() {
  local n dev loss out ingress="" cli_chains=""
  apply_wire_packets 1
  apply_wire_packets 2
  for n in 1 2; do
    dev=$(srv_if "$n")
    loss=$(var "TESTBED_LOSS$n")
    out=""
    if [[ $(var "TESTBED_LINK$n") == blackhole ]]; then
      ingress+="    iifname \"$dev\" counter drop comment \"blackhole link $n\""$'\n'
      out="    counter drop comment \"blackhole link $n\""$'\n'
    elif (( loss > 0 )); then
      ingress+="    iifname \"$dev\" numgen random mod 100 < $loss counter drop comment \"loss link $n in\""$'\n'
      out="    numgen random mod 100 < $loss counter drop comment \"loss link $n out\""$'\n'
    fi
    if [[ -n $out ]]; then
      cli_chains+="  chain link$n {"$'\n'
      cli_chains+="    type filter hook ingress device \"$(cli_if "$n")\" priority -500; policy accept;"$'\n'
      cli_chains+="$out  }"$'\n'
    fi
  done
  local srv_chains=""
  if [[ -n $ingress ]]; then
    srv_chains="  chain ingress {"$'\n'"    type filter hook prerouting priority raw; policy accept;"$'\n'"$ingress  }"$'\n'
  fi
  nft_replace "$NS_SRV" inet "$srv_chains"
  nft_replace "$NS_CLI" netdev "$cli_chains"
}

# Replaces the bed's table of FAMILY in namespace NS by one with CHAINS, atomically; removes it
# when CHAINS is empty (`add table` then `delete table` succeeds whether or not it existed).
nft_replace() {   # nft_replace NS FAMILY CHAINS
  local ns=$1 fam=$2 chains=$3
  {
    printf 'add table %s %s\ndelete table %s %s\n' "$fam" "$NFT_TABLE" "$fam" "$NFT_TABLE"
    if [[ -n $chains ]]; then printf 'table %s %s {\n%s}\n' "$fam" "$NFT_TABLE" "$chains"; fi
  } | ip netns exec "$ns" nft -f -
}

# The client's routes through link N: link 1 carries the default route of the main table;
# each link has a table of its own with a default route and a rule `from <its address>`.
client_routes() {   # client_routes N
  local n=$1 dev table gw gw6
  dev=$(cli_if "$n")
  table=$(var "TESTBED_CLI_TABLE$n")
  gw=$(srv_addr "$n")
  gw6=$(srv_addr6 "$n")
  ip -n "$NS_CLI" route replace "$(net4 "$n")" dev "$dev" src "$(cli_addr "$n")" table "$table"
  ip -n "$NS_CLI" route replace default via "$gw" dev "$dev" table "$table"
  ip -n "$NS_CLI" -6 route replace "$(net6 "$n")" dev "$dev" table "$table"
  ip -n "$NS_CLI" -6 route replace default via "$gw6" dev "$dev" table "$table"
  if [[ $n == 1 ]]; then
    ip -n "$NS_CLI" route replace default via "$gw" dev "$dev"
    ip -n "$NS_CLI" -6 route replace default via "$gw6" dev "$dev"
  fi
}

client_rules() {   # client_rules N (once, at up)
  local n=$1 table pref
  table=$(var "TESTBED_CLI_TABLE$n")
  pref=$((RULE_PREF_BASE + n))
  ip -n "$NS_CLI" rule add from "$(cli_addr "$n")" lookup "$table" pref "$pref"
  ip -n "$NS_CLI" -6 rule add from "$(cli_addr6 "$n")" lookup "$table" pref "$pref"
}

# The network of client address N with its prefix length, e.g. 10.201.2.1/24 -> 10.201.2.0/24
# (the kernel refuses a route to an address with host bits set).
net4() {
  local a
  a=$(cli_addr "$1")
  awk -v a="$a" -v l="$TESTBED_PLEN4" 'BEGIN {
    split(a, o, "."); v = ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4]
    m = 2 ^ (32 - l); v = int(v / m) * m
    printf "%d.%d.%d.%d/%d", int(v / 16777216) % 256, int(v / 65536) % 256, int(v / 256) % 256, v % 256, l }'
}
net6() {
  # the kernel accepts a route whose destination has host bits only if they are zero, so
  # take the prefix from the connected route the address made
  ip -n "$NS_CLI" -6 -o route show dev "$(cli_if "$1")" proto kernel \
    | awk '$1 !~ /^fe80/ { print $1; exit }'
}

# Down is the client's end only: its kernel (mptun) sees the link and its routes go, as when a
# laptop's WiFi drops. The server's end loses its carrier and drops what it sends in silence (its
# neighbour entries for the client are permanent, see server_neighbours), as a server far away
# does not hear that a client's access link failed. Both ends down made the server's own sends
# fail (no route, or ARP failing into a local ICMP host-unreachable), which Linux answers by
# dropping a half-open connection's request (tcp_req_err, inet_rtx_syn_ack): the client's next
# segment after link-up was reset.
set_link_state() {   # set_link_state N up|down
  ip -n "$NS_CLI" link set "$(cli_if "$1")" "$2"
  if [[ $2 == up ]]; then ip -n "$NS_SRV" link set "$(srv_if "$1")" up; fi
}

# The server's neighbour entries for the client's link addresses, permanent: kept while the
# client's end is down (see set_link_state).
server_neighbours() {   # server_neighbours N
  local n=$1 mac
  mac=$(ip -n "$NS_CLI" -j link show dev "$(cli_if "$n")" | sed -n 's/.*"address":"\([0-9a-f:]*\)".*/\1/p')
  ip -n "$NS_SRV" neigh replace "$(cli_addr "$n")" lladdr "$mac" dev "$(srv_if "$n")" nud permanent
  ip -n "$NS_SRV" -6 neigh replace "$(cli_addr6 "$n")" lladdr "$mac" dev "$(srv_if "$n")" nud permanent
}

# Wait until the four veth ends are operationally up (the kernel's link watch makes a freshly
# raised link wait for up to a second; until then it drops what is sent).
wait_links_up() {   # wait_links_up [N...] (default: both links)
  local n all links=("$@")
  [[ ${#links[@]} -gt 0 ]] || links=(1 2)
  for _ in $(seq 1 50); do
    all=1
    for n in "${links[@]}"; do
      ip -n "$NS_CLI" -o link show dev "$(cli_if "$n")" | grep -q 'state UP' || all=0
      ip -n "$NS_SRV" -o link show dev "$(srv_if "$n")" | grep -q 'state UP' || all=0
    done
    [[ $all == 1 ]] && return 0
    sleep 0.1
  done
  die "the links did not come up within 5 s"
}

sysctl_ns() {   # sysctl_ns NS key=value...
  local ns=$1; shift
  ip netns exec "$ns" sysctl -qw "$@" >/dev/null
}

# Processes started in one of our namespaces (iperf3 servers, mptun, tests' leftovers)
ns_pids() {
  if ns_exists "$1"; then ip netns pids "$1" 2>/dev/null || true; fi
}

kill_ns_processes() {
  local ns pids pid
  for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
    pids=$(ns_pids "$ns")
    [[ -z $pids ]] && continue
    log "stopping processes in $ns: ${pids//$'\n'/ }"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 20); do
      pids=$(ns_pids "$ns"); [[ -z $pids ]] && break
      sleep 0.1
    done
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      for pid in $pids; do wait_exit "$pid"; done
    fi
  done
}

# The destination (up --dest): a namespace behind the server by link 3, neither shaped nor
# delayed, for mptun's concentrator (which runs in the server namespace) to connect to. The
# server namespace forwards nothing to or from link 3 (it forwards when the delay line runs),
# so the client reaches the destination only through a process of the server namespace.
dest_up() {
  ip netns add "$NS_DST"
  ip -n "$NS_DST" link set lo up
  ip link add "$DST_SRV_IF" netns "$NS_SRV" type veth peer name "$DST_IF" netns "$NS_DST"
  ip -n "$NS_SRV" addr add "$TESTBED_SRV_ADDR3/$TESTBED_PLEN4" dev "$DST_SRV_IF"
  ip -n "$NS_DST" addr add "$TESTBED_DST_ADDR/$TESTBED_PLEN4" dev "$DST_IF"
  ip -n "$NS_SRV" addr add "$TESTBED_SRV_ADDR6_3/$TESTBED_PLEN6" dev "$DST_SRV_IF" nodad
  ip -n "$NS_DST" addr add "$TESTBED_DST_ADDR6/$TESTBED_PLEN6" dev "$DST_IF" nodad
  ip -n "$NS_SRV" link set "$DST_SRV_IF" up
  ip -n "$NS_DST" link set "$DST_IF" up
  ip -n "$NS_DST" route replace default via "$TESTBED_SRV_ADDR3" dev "$DST_IF"
  ip -n "$NS_DST" -6 route replace default via "$TESTBED_SRV_ADDR6_3" dev "$DST_IF"
  in_srv nft -f - <<EOF
add table inet $DST_NFT_TABLE
delete table inet $DST_NFT_TABLE
table inet $DST_NFT_TABLE {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "$DST_SRV_IF" counter drop comment "no forwarding from the destination"
    oifname "$DST_SRV_IF" counter drop comment "no forwarding to the destination"
  }
}
EOF
  for _ in $(seq 1 50); do
    if ip -n "$NS_SRV" -o link show dev "$DST_SRV_IF" | grep -q 'state UP' \
      && ip -n "$NS_DST" -o link show dev "$DST_IF" | grep -q 'state UP'; then
      return 0
    fi
    sleep 0.1
  done
  die "link 3 (the destination's) did not come up within 5 s"
}

# ---------------------------------------------------------------------------------------------
# Delay line: per-link one-way delay, jitter, bursty loss, rate and queue, in both directions.
#
# This kernel has no netem (nor fq, fq_codel, cake), so the delay is made in userspace, by
# bench/delayline.ts on mptun's own TUN addon (batched reads and writes, one timer for the
# earliest due packet). It runs in the server namespace and holds four TUN devices, one per
# link and direction: ${P}d<N>i (towards the server) and ${P}d<N>o (towards the client).
# Policy routing in the server namespace hairpins each delayed link's packets through them:
#   pref 91/92   iif ${P}s<N> lookup 20<N>        (default dev ${P}d<N>i): what arrives from the
#                client is forwarded into the TUN, not delivered; when the delay line writes it
#                back, it arrives on ${P}d<N>i and the local table delivers it. For IPv4 only
#                tcp, udp and icmp (ARP's "is this address mine?" lookup must not match).
#   pref 100     lookup local                      (moved down from pref 0, so the rule above
#                comes first even for packets to the server's own addresses)
#   pref 111/112 iif lo to <net N> lookup 21<N>   (default dev ${P}d<N>o): what the server sends
#                goes into the TUN; written back, it arrives on ${P}d<N>o and is forwarded out
#                of ${P}s<N> by the main table (accept_local on ${P}d<N>o: its source is ours).
# With ip_forward on and the early demux off (tcp/udp/ip_early_demux=0: otherwise an
# established socket's cached input route would skip the rules). The delay line also paces
# the delayed link at --rate with a byte-limited queue (tail drop; the tbf/htb qdisc of that
# link is then removed, so there is one bottleneck, remote to both ends, as on a real path),
# counting 14 bytes of Ethernet header per packet as the tbf on a veth does. --loss stays in
# nftables (prerouting/postrouting of ${P}s<N>: each packet meets it once either way).
# Why not NFQUEUE: a verdict per packet over netlink, a kernel queue (1024 packets by default)
# that must hold delay × rate, and a binding we do not have; the TUN addon reads and writes in
# batches and is ours. The devices live as long as the process: `down` (or a crash) removes
# them with it.

DL_PREF_IN=90 DL_PREF_LOCAL=100 DL_PREF_OUT=110 DL_TABLE_IN=200 DL_TABLE_OUT=210
DL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DL_JS=${TESTBED_DELAYLINE_JS:-$DL_REPO/dist/bench/delayline.js}
dl_pidfile() { echo "$RUN_DIR/delayline.pid"; }
dl_dev() { echo "${P}d$1$2"; }   # dl_dev N i|o

check_ms() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$2 must be a number of milliseconds (got '$1')"; }

dl_parse_opt() {   # dl_parse_opt OPTION VALUE
  local opt=$1 v=$2 links=(1 2) n
  case $opt in *1) links=(1) ;; *2) links=(2) ;; esac
  case $opt in
    --delay*|--jitter*) check_ms "$v" "$opt" ;;
    --burst-loss*)
      [[ $v == 0 || $v =~ ^[0-9.]+,[0-9.]+(,[0-9.]+(,[0-9.]+)?)?$ ]] \
        || die "$opt is P,R[,LOSS_BAD[,LOSS_GOOD]] in % (Gilbert-Elliott), or 0 (got '$v')" ;;
    --queue*)
      [[ $v =~ ^[0-9]+(\.[0-9]+)?ms$ || $v =~ ^[0-9]+$ ]] || die "$opt is BYTES or MSms, e.g. 60000 or 20ms (got '$v')" ;;
  esac
  for n in "${links[@]}"; do
    case $opt in
      --delay*) printf -v "TESTBED_DELAY$n" %s "$v" ;;
      --jitter*) printf -v "TESTBED_JITTER$n" %s "$v" ;;
      --burst-loss*) printf -v "TESTBED_BURST$n" %s "$v" ;;
      --queue*) printf -v "TESTBED_QUEUE$n" %s "$v" ;;
    esac
  done
}

nonzero() { awk -v x="$1" 'BEGIN { exit !(x + 0 != 0) }'; }

# Does link N go through the delay line? (a delay, a jitter or a bursty loss asked for it)
dl_link_on() {
  nonzero "$(var "TESTBED_DELAY$1")" || nonzero "$(var "TESTBED_JITTER$1")" || [[ $(var "TESTBED_BURST$1") != 0 ]]
}
dl_wanted() { dl_link_on 1 || dl_link_on 2; }
dl_signature() {
  echo "$TESTBED_DELAY1 $TESTBED_DELAY2 $TESTBED_JITTER1 $TESTBED_JITTER2 $TESTBED_BURST1 $TESTBED_BURST2" \
    "$TESTBED_QUEUE1 $TESTBED_QUEUE2 $TESTBED_RATE1 $TESTBED_RATE2"
}

dl_need() {
  need_tools node
  [[ -r $DL_JS ]] || die "the delay line is not built ($DL_JS): run \`npm run build\` in $DL_REPO"
}

# The queue of link N in bytes: --queue BYTES, or --queue MSms at the link's rate; by default
# 20 ms at the rate (as the tbf's `latency 20ms`); 0 without a rate. At least two full frames.
dl_queue_bytes() {
  local q rate
  q=$(var "TESTBED_QUEUE$1"); rate=$(var "TESTBED_RATE$1")
  [[ $q == 0 ]] && q=20ms
  awk -v q="$q" -v r="$rate" 'BEGIN {
    if (q ~ /ms$/) { if (r + 0 == 0) { print 0; exit } b = r * 1e6 / 8 * (q + 0) / 1000 } else b = q + 0
    if (b < 3028) b = 3028
    printf "%d", b }'
}

dl_write_config() {
  local n d g json="" p r bad good
  for n in 1 2; do
    g=null
    if [[ $(var "TESTBED_BURST$n") != 0 ]]; then
      IFS=, read -r p r bad good <<<"$(var "TESTBED_BURST$n")"
      g="{\"p\": $p, \"r\": $r, \"lossBad\": ${bad:-100}, \"lossGood\": ${good:-0}}"
    fi
    for d in i o; do
      json+="${json:+,}"$'\n'"  {\"dev\": \"$(dl_dev "$n" "$d")\", \"delayMs\": $(var "TESTBED_DELAY$n"), \"jitterMs\": $(var "TESTBED_JITTER$n"),"
      json+=" \"rateMbit\": $(var "TESTBED_RATE$n"), \"queueBytes\": $(dl_queue_bytes "$n"), \"overheadBytes\": 14, \"ge\": $g}"
    done
  done
  mkdir -p "$RUN_DIR"
  printf '{"pipes": [%s\n]}\n' "$json" > "$RUN_DIR/delayline.json.tmp"
  mv "$RUN_DIR/delayline.json.tmp" "$RUN_DIR/delayline.json"
}

dl_pid() {   # the pid of our running delay line, or nothing
  local pid
  pid=$(cat "$(dl_pidfile)" 2>/dev/null || true)
  if [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q delayline \
    && [[ $(ip netns identify "$pid" 2>/dev/null) == "$NS_SRV" ]]; then
    echo "$pid"
  fi
}

dl_start() {
  local log=$RUN_DIR/delayline.log pid n d v
  mkdir -p "$RUN_DIR"
  # the server namespace as a router of its own packets (see the header of this block)
  sysctl_ns "$NS_SRV" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.ip_early_demux=0 net.ipv4.tcp_early_demux=0 net.ipv4.udp_early_demux=0
  for v in "" -6; do
    if ! ip -n "$NS_SRV" $v rule show pref "$DL_PREF_LOCAL" | grep -q 'lookup local'; then
      ip -n "$NS_SRV" $v rule add pref "$DL_PREF_LOCAL" lookup local
      ip -n "$NS_SRV" $v rule del pref 0 lookup local 2>/dev/null || true
    fi
  done
  # Real-time priority (SCHED_FIFO 10; TESTBED_DELAYLINE_RTPRIO, 0 = none): its timing is the
  # link's delay, and on a loaded machine a normal process wakes milliseconds late (median RTT
  # 20.2 ms for 20 asked with it, up to 22.8 without, at load 14 on 2 cores). It only spins
  # for sparse traffic, for at most 1.5 ms; the kernel's RT throttling bounds it anyway.
  # Without chrt or the right to use it: nice -10.
  local sched=(nice -n -10) prio=${TESTBED_DELAYLINE_RTPRIO:-10}
  if [[ $prio != 0 ]] && command -v chrt >/dev/null 2>&1 && chrt -f "$prio" true 2>/dev/null; then
    sched=(chrt -f "$prio")
  fi
  ip netns exec "$NS_SRV" "${sched[@]}" node "$DL_JS" --config "$RUN_DIR/delayline.json" --stats "$RUN_DIR/delayline.stats" \
    </dev/null >"$log" 2>&1 &
  echo $! > "$(dl_pidfile)"
  for _ in $(seq 1 100); do
    grep -q '^ready' "$log" 2>/dev/null && break
    kill -0 "$(cat "$(dl_pidfile)")" 2>/dev/null || die "the delay line did not start: $(tail -5 "$log")"
    sleep 0.1
  done
  grep -q '^ready' "$log" || die "the delay line did not get ready within 10 s (see $log)"
  pid=$(dl_pid)
  [[ -n $pid ]] || die "the delay line runs, but not in $NS_SRV"
  for n in 1 2; do
    for d in i o; do
      ip -n "$NS_SRV" link set dev "$(dl_dev "$n" "$d")" up txqueuelen 1000
      sysctl_ns "$NS_SRV" "net.ipv4.conf.$(dl_dev "$n" "$d").rp_filter=0" "net.ipv4.conf.$(dl_dev "$n" "$d").accept_local=1"
    done
  done
  log "delay line: pid $pid, devices $(dl_dev 1 i) $(dl_dev 1 o) $(dl_dev 2 i) $(dl_dev 2 o)"
}

dl_net() {   # dl_net N 4|6: the network of link N
  local net
  if [[ $2 == 4 ]]; then net4 "$1"; return; fi
  net=$(net6 "$1" 2>/dev/null || true)
  echo "${net:-$(cli_addr6 "$1")/$TESTBED_PLEN6}"
}

dl_routes() {   # dl_routes N on|off
  local n=$1 v fam proto
  for fam in 4 6; do
    v=-$fam
    while ip -n "$NS_SRV" "$v" rule del pref $((DL_PREF_IN + n)) 2>/dev/null; do :; done
    while ip -n "$NS_SRV" "$v" rule del pref $((DL_PREF_OUT + n)) 2>/dev/null; do :; done
    ip -n "$NS_SRV" "$v" route flush table $((DL_TABLE_IN + n)) 2>/dev/null || true
    ip -n "$NS_SRV" "$v" route flush table $((DL_TABLE_OUT + n)) 2>/dev/null || true
    [[ $2 == on ]] || continue
    ip -n "$NS_SRV" "$v" route replace default dev "$(dl_dev "$n" i)" table $((DL_TABLE_IN + n))
    ip -n "$NS_SRV" "$v" route replace default dev "$(dl_dev "$n" o)" table $((DL_TABLE_OUT + n))
    if [[ $fam == 4 ]]; then
      # by protocol: ARP asks the same routing whether the server's address is local (and would
      # get no answer, so no reply, if it were sent to the TUN); its lookup has no protocol
      for proto in tcp udp icmp; do
        ip -n "$NS_SRV" "$v" rule add pref $((DL_PREF_IN + n)) iif "$(srv_if "$n")" ipproto "$proto" lookup $((DL_TABLE_IN + n))
      done
    else
      ip -n "$NS_SRV" "$v" rule add pref $((DL_PREF_IN + n)) iif "$(srv_if "$n")" lookup $((DL_TABLE_IN + n))
    fi
    ip -n "$NS_SRV" "$v" rule add pref $((DL_PREF_OUT + n)) iif lo to "$(dl_net "$n" "$fam")" lookup $((DL_TABLE_OUT + n))
  done
}

# Make the delay line what the state asks: started (or told to reread its config), each link
# routed through it or not; stopped when no link wants it.
dl_apply() {
  local pid n
  pid=$(dl_pid)
  if ! dl_wanted; then
    [[ -n $pid ]] && dl_stop
    return 0
  fi
  dl_write_config
  if [[ -n $pid ]]; then kill -HUP "$pid"; else dl_start; fi
  for n in 1 2; do
    if dl_link_on "$n" && [[ $(var "TESTBED_LINK$n") != down ]]; then dl_routes "$n" on; else dl_routes "$n" off; fi
  done
}

# True while PID has not finished exiting: a zombie has (its parent reaps it), a process still
# in exit does not (a killed one spends a while closing its files, the TUN device among them,
# with its command line already gone).
pid_exiting_or_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]]
}

# Wait up to 5 s for PID to finish exiting.
wait_exit() {
  for _ in $(seq 1 50); do pid_exiting_or_alive "$1" || return 0; sleep 0.1; done
  log "process $1 has not exited after 5 s"
}

# Stop the delay line and remove its rules (its devices and their routes go with the process).
dl_stop() {
  local pid n raw
  pid=$(dl_pid)
  raw=$(cat "$(dl_pidfile)" 2>/dev/null || true)
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait_exit "$pid"
  elif [[ -n $raw && -e /proc/$raw/cmdline && ! -s /proc/$raw/cmdline ]]; then
    # Killed from outside and still exiting (its command line is already gone): let it finish,
    # so that nothing of it is left when down returns.
    wait_exit "$raw"
  fi
  rm -f "$(dl_pidfile)"
  if ns_exists "$NS_SRV"; then
    for n in 1 2; do dl_routes "$n" off; done
  fi
}

dl_describe() {   # ", 10 ms ±1 delay, burst loss 1,30" for a delayed link
  local n=$1 out=""
  dl_link_on "$n" || return 0
  out+=", $(var "TESTBED_DELAY$n") ms delay"
  nonzero "$(var "TESTBED_JITTER$n")" && out+=" ±$(var "TESTBED_JITTER$n") ms"
  [[ $(var "TESTBED_BURST$n") != 0 ]] && out+=", burst loss $(var "TESTBED_BURST$n")"
  nonzero "$(var "TESTBED_RATE$n")" && out+=", queue $(dl_queue_bytes "$n") B"
  out+=" (delay line)"
  echo "$out"
}

dl_status() {
  local pid
  dl_wanted || return 0
  pid=$(dl_pid)
  echo
  echo "== delay line"
  echo "$(describe_link 1)"
  echo "$(describe_link 2)"
  if [[ -z $pid ]]; then echo "NOT RUNNING (see $RUN_DIR/delayline.log)"; return 0; fi
  kill -USR1 "$pid"
  sleep 0.2
  echo "pid $pid; counters:"
  cat "$RUN_DIR/delayline.stats" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_down() {
  need_root
  need_tools ip
  local ns dev n
  dl_stop   # the delay line (its devices go with it)
  # iperf3 servers and anything else that runs in our namespaces
  kill_ns_processes
  for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
    if ns_exists "$ns"; then
      ip netns del "$ns" 2>/dev/null || rm -f "/run/netns/$ns"
    fi
  done
  # A veth that an interrupted `up` might have left in the root namespace (up creates them
  # directly inside the namespaces, so this is only a safety net)
  for n in 1 2; do
    for dev in "$(cli_if "$n")" "$(srv_if "$n")"; do
      if ip link show dev "$dev" >/dev/null 2>&1; then ip link del dev "$dev" 2>/dev/null || true; fi
    done
  done
  for dev in "$DST_SRV_IF" "$DST_IF"; do
    if ip link show dev "$dev" >/dev/null 2>&1; then ip link del dev "$dev" 2>/dev/null || true; fi
  done
  rm -rf "$RUN_DIR"
  rmdir "${RUN_DIR%/*}" 2>/dev/null || true   # the parent, when no other bed uses it
  if ns_exists "$NS_CLI" || ns_exists "$NS_SRV" || ns_exists "$NS_DST"; then die "could not remove the namespaces of '$P'"; fi
}

parse_shaping_opt() {   # sets SHIFT_BY; returns 1 when $1 is not a shaping option
  SHIFT_BY=2
  case $1 in
    --rate) [[ $# -ge 2 ]] || die "$1 needs a value"; check_rate "$2"; TESTBED_RATE1=$2; TESTBED_RATE2=$2 ;;
    --rate1) [[ $# -ge 2 ]] || die "$1 needs a value"; check_rate "$2"; TESTBED_RATE1=$2 ;;
    --rate2) [[ $# -ge 2 ]] || die "$1 needs a value"; check_rate "$2"; TESTBED_RATE2=$2 ;;
    --qdisc) [[ $# -ge 2 ]] || die "$1 needs a value"
             [[ $2 == tbf || $2 == htb ]] || die "--qdisc is tbf or htb (got '$2')"; TESTBED_QDISC=$2 ;;
    --loss) [[ $# -ge 2 ]] || die "$1 needs a value"; check_loss "$2"; TESTBED_LOSS1=$2; TESTBED_LOSS2=$2 ;;
    --loss1) [[ $# -ge 2 ]] || die "$1 needs a value"; check_loss "$2"; TESTBED_LOSS1=$2 ;;
    --loss2) [[ $# -ge 2 ]] || die "$1 needs a value"; check_loss "$2"; TESTBED_LOSS2=$2 ;;
    --delay|--delay1|--delay2|--jitter|--jitter1|--jitter2|--burst-loss|--burst-loss1|--burst-loss2|--queue|--queue1|--queue2)
      [[ $# -ge 2 ]] || die "$1 needs a value"; dl_parse_opt "$1" "$2" ;;
    *) return 1 ;;
  esac
}

describe_link() {   # describe_link N: "link N a <-> b (100 Mbit/s tbf, 1 % loss)"
  local n=$1 rate loss
  rate=$(var "TESTBED_RATE$n"); loss=$(var "TESTBED_LOSS$n")
  if awk -v r="$rate" 'BEGIN { exit !(r + 0 == 0) }'; then rate="unlimited"; else rate="$rate Mbit/s $TESTBED_QDISC"; fi
  if [[ $rate != unlimited ]] && dl_link_on "$n"; then rate="${rate% *} delay line"; fi
  echo "link $n $(cli_addr "$n") <-> $(srv_addr "$n") ($rate, $loss % loss$(dl_describe "$n"))"
}

up_failed() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "up failed; removing what was built"
    cmd_down || true
  fi
}

cmd_up() {
  need_root
  # `up` starts from the defaults and the environment, never from an old state file
  load_config fresh
  while [[ $# -gt 0 ]]; do
    if parse_shaping_opt "$@"; then shift "$SHIFT_BY"; continue; fi
    case $1 in
      --no-client-mptcp) TESTBED_CLIENT_MPTCP=0; shift ;;
      --dest) TESTBED_DEST=1; shift ;;
      *) die "up: unknown option '$1' (see --help)" ;;
    esac
  done
  need_tools ip tc sysctl
  if (( TESTBED_LOSS1 > 0 || TESTBED_LOSS2 > 0 )) || [[ $TESTBED_DEST == 1 ]]; then need_tools nft; fi
  if dl_wanted; then dl_need; fi

  cmd_down
  # If anything fails from here on, leave nothing half-built behind.
  trap up_failed EXIT
  trap 'exit 130' INT TERM

  local ns n
  for ns in "$NS_CLI" "$NS_SRV"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Settings for the interfaces made next: IPv6 addresses survive a link going down (so
    # link-up restores them), no reverse-path filter (subflows arrive where they please).
    sysctl_ns "$ns" net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    if ! sysctl_ns "$ns" net.mptcp.enabled=1 2>/dev/null; then
      die "this kernel has no MPTCP (net.mptcp.enabled is missing: CONFIG_MPTCP)"
    fi
  done

  for n in 1 2; do
    ip link add "$(cli_if "$n")" netns "$NS_CLI" type veth peer name "$(srv_if "$n")" netns "$NS_SRV"
    ip -n "$NS_CLI" addr add "$(cli_addr "$n")/$TESTBED_PLEN4" dev "$(cli_if "$n")"
    ip -n "$NS_SRV" addr add "$(srv_addr "$n")/$TESTBED_PLEN4" dev "$(srv_if "$n")"
    ip -n "$NS_CLI" addr add "$(cli_addr6 "$n")/$TESTBED_PLEN6" dev "$(cli_if "$n")" nodad
    ip -n "$NS_SRV" addr add "$(srv_addr6 "$n")/$TESTBED_PLEN6" dev "$(srv_if "$n")" nodad
    set_link_state "$n" up
    server_neighbours "$n"
  done

  for n in 1 2; do
    client_routes "$n"
    client_rules "$n"
    apply_rate "$n"
  done

  # Kernel MPTCP. The server announces its second address (ADD_ADDR). The kernel client
  # (unless mptun is the client) opens a subflow from its second address, to the server's
  # address it connected to, by link 2 (table 102): one subflow per link, the same shape as
  # mptun's. It does not act on the ADD_ADDR (add_addr_accepted 0), which would otherwise
  # add a third subflow, a second one on link 2. Without the client endpoint
  # (--no-client-mptcp) the client accepts ADD_ADDRs, so a kernel client there still gets
  # one subflow per link (to the announced address).
  ip -n "$NS_SRV" mptcp limits set subflows 4 add_addr_accepted 4
  ip -n "$NS_SRV" mptcp endpoint add "$(srv_addr 2)" dev "$(srv_if 2)" signal
  ip -n "$NS_SRV" mptcp endpoint add "$(srv_addr6 2)" dev "$(srv_if 2)" signal
  if [[ $TESTBED_CLIENT_MPTCP == 1 ]]; then
    ip -n "$NS_CLI" mptcp limits set subflows 4 add_addr_accepted 0
    ip -n "$NS_CLI" mptcp endpoint add "$(cli_addr 2)" dev "$(cli_if 2)" subflow
    ip -n "$NS_CLI" mptcp endpoint add "$(cli_addr6 2)" dev "$(cli_if 2)" subflow
  else
    ip -n "$NS_CLI" mptcp limits set subflows 4 add_addr_accepted 4
  fi

  wait_links_up
  # the destination before the delay line (which turns forwarding on)
  if [[ $TESTBED_DEST == 1 ]]; then dest_up; fi

  if (( TESTBED_LOSS1 > 0 || TESTBED_LOSS2 > 0 )); then apply_nft; fi
  if dl_wanted; then dl_apply; fi

  save_state
  trap - EXIT INT TERM
  log "up: $(describe_link 1), $(describe_link 2)$([[ $TESTBED_DEST == 1 ]] && echo ", destination $NS_DST $TESTBED_DST_ADDR [$TESTBED_DST_ADDR6] by link 3")"
}

cmd_set() {
  need_root
  need_bed
  [[ $# -gt 0 ]] || die "set: nothing to change (see --help)"
  local old_qdisc=$TESTBED_QDISC r1=$TESTBED_RATE1 r2=$TESTBED_RATE2 l1=$TESTBED_LOSS1 l2=$TESTBED_LOSS2
  local dl_old
  dl_old=$(dl_signature)
  while [[ $# -gt 0 ]]; do
    parse_shaping_opt "$@" || die "set: unknown option '$1' (see --help)"
    shift "$SHIFT_BY"
  done
  need_tools tc
  if [[ $(dl_signature) != "$dl_old" ]]; then
    # the delay line first (it takes over or gives back the rate of a link), then the qdiscs
    if dl_wanted; then dl_need; fi
    dl_apply
    apply_rate 1; apply_rate 2
  else
    if [[ $TESTBED_QDISC != "$old_qdisc" || $TESTBED_RATE1 != "$r1" ]]; then apply_rate 1; fi
    if [[ $TESTBED_QDISC != "$old_qdisc" || $TESTBED_RATE2 != "$r2" ]]; then apply_rate 2; fi
  fi
  if [[ $TESTBED_LOSS1 != "$l1" || $TESTBED_LOSS2 != "$l2" ]]; then need_tools nft; apply_nft; fi
  save_state
}

cmd_link_down() {
  need_root
  need_bed
  local n=${1:-} mode=down
  check_link_arg "$n"; shift
  case ${1:-} in
    "") ;;
    --blackhole) mode=blackhole ;;
    *) die "link-down: unknown option '$1'" ;;
  esac
  if [[ $mode == blackhole ]]; then
    need_tools nft
    printf -v "TESTBED_LINK$n" blackhole
    apply_nft
  else
    set_link_state "$n" down
    # the server's packets leave by the link itself meanwhile, dropped in silence as without
    # delay (its end has no carrier), not queued in the delay line to come out at link-up
    if dl_link_on "$n" && [[ -n $(dl_pid) ]]; then dl_routes "$n" off; fi
    printf -v "TESTBED_LINK$n" down
  fi
  save_state
}

cmd_link_up() {
  need_root
  need_bed
  local n=${1:-} was
  check_link_arg "$n"
  was=$(var "TESTBED_LINK$n")
  set_link_state "$n" up
  wait_links_up "$n"
  client_routes "$n"
  if dl_link_on "$n" && [[ -n $(dl_pid) ]]; then dl_routes "$n" on; fi
  printf -v "TESTBED_LINK$n" up
  if [[ $was == blackhole ]]; then need_tools nft; apply_nft; fi
  save_state
}

cmd_status() {
  need_root
  if ! bed_exists; then
    echo "testbed '$P': not up"
    return 1
  fi
  local ns
  echo "testbed '$P': up  (qdisc $TESTBED_QDISC; rate Mbit/s: link 1 $TESTBED_RATE1, link 2 $TESTBED_RATE2;" \
    "loss %: link 1 $TESTBED_LOSS1, link 2 $TESTBED_LOSS2; links: $TESTBED_LINK1, $TESTBED_LINK2)"
  for ns in "$NS_CLI" "$NS_SRV"; do
    echo
    echo "== $ns"
    ip -n "$ns" -br addr show
    echo "-- rules and routes"
    ip -n "$ns" rule show | grep -v -E 'lookup (local|main|default)$' || true
    ip -n "$ns" route show table all | grep -v -E '^(local|broadcast|multicast|fe80|ff00)|table local' || true
    echo "-- qdiscs"
    tc -n "$ns" -s qdisc show | grep -E -A2 "dev ${P}[cs][12] " | grep -v '^--$' || true
    echo "-- mptcp"
    ip -n "$ns" mptcp limits show
    ip -n "$ns" mptcp endpoint show
    if command -v nft >/dev/null 2>&1; then
      local fam
      for fam in inet netdev; do
        if ip netns exec "$ns" nft list table "$fam" "$NFT_TABLE" >/dev/null 2>&1; then
          echo "-- nftables"
          ip netns exec "$ns" nft list table "$fam" "$NFT_TABLE"
        fi
      done
    fi
  done
  dl_status
  echo
  echo "== iperf3 servers"
  local f pid any=0
  for f in "$RUN_DIR"/iperf3-*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      echo "port ${f##*/iperf3-}: pid $pid" | sed 's/\.pid:/:/'
      any=1
    fi
  done
  [[ $any == 1 ]] || echo "none"
  ns_exists "$NS_DST" || return 0
  echo
  echo "== $NS_DST (destination, by link 3 from $NS_SRV; no forwarding into it)"
  ip -n "$NS_DST" -br addr show
  ip -n "$NS_DST" route show
  ip -n "$NS_DST" -6 route show | grep -v -E '^(fe80|multicast)' || true
  if command -v nft >/dev/null 2>&1; then in_srv nft list table inet "$DST_NFT_TABLE" 2>/dev/null || true; fi
  echo "-- iperf3 servers (plain TCP)"
  any=0
  for f in "$RUN_DIR"/dst-iperf3-*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if is_our_iperf3 "$pid" "$NS_DST"; then
      echo "port ${f##*/dst-iperf3-}: pid $pid" | sed 's/\.pid:/:/'
      any=1
    fi
  done
  [[ $any == 1 ]] || echo "none"
}

cmd_exec() {   # cmd_exec NS CMD...
  need_root
  need_tools ip
  need_bed
  local ns=$1; shift
  if [[ $ns == "$NS_DST" ]]; then need_dest; fi
  [[ $# -gt 0 ]] || die "exec-client/exec-server/exec-dest: no command given"
  set_derived
  local v
  for v in "${ENV_VARS[@]}"; do export "${v?}"; done
  exec ip netns exec "$ns" "$@"
}

# Is the process of this pid an iperf3 of ours (pids are reused)? In NS (default the server's).
is_our_iperf3() {   # is_our_iperf3 PID [NS]
  local pid=$1
  [[ -n $pid && -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == iperf3 ]] \
    && [[ $(ip netns identify "$pid" 2>/dev/null) == "${2:-$NS_SRV}" ]]
}

listening() {   # listening PORT [NS]: some TCP socket listens on PORT in NS (default the server's)
  [[ -n $(ip netns exec "${2:-$NS_SRV}" ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

stop_iperf3() {   # stop_iperf3 PIDFILE NS: stop the iperf3 of that pid file, remove the file
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  if is_our_iperf3 "$pid" "$2"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$1"
}

cmd_server_start() {
  need_root
  need_bed
  local port=$TESTBED_IPERF_PORT plain=0
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--port needs a number"; port=$2; shift 2 ;;
      --plain) plain=1; shift ;;
      *) die "server-start: unknown option '$1'" ;;
    esac
  done
  need_tools iperf3 ss
  if ! ((plain)); then need_tools mptcpize; fi
  mkdir -p "$RUN_DIR"
  local pidfile=$RUN_DIR/iperf3-$port.pid logfile=$RUN_DIR/iperf3-$port.log
  if [[ -e $pidfile ]] && is_our_iperf3 "$(cat "$pidfile")"; then
    die "an iperf3 server already runs on port $port (pid $(cat "$pidfile"))"
  fi
  listening "$port" && die "port $port is already taken in $NS_SRV"
  rm -f "$pidfile"
  local wrap=(mptcpize run)
  if ((plain)); then wrap=(); fi
  in_srv "${wrap[@]}" iperf3 -s -p "$port" -D -I "$pidfile" --logfile "$logfile"
  for _ in $(seq 1 50); do
    if [[ -s $pidfile ]] && listening "$port"; then break; fi
    sleep 0.1
  done
  if ! { [[ -s $pidfile ]] && listening "$port"; }; then die "iperf3 did not start (see $logfile)"; fi
  if ! ((plain)) && [[ -z $(in_srv ss -HMln 2>/dev/null) ]]; then
    die "iperf3 listens, but not with MPTCP (is mptcpize working?)"
  fi
  log "iperf3 server on port $port ($( ((plain)) && echo plain TCP || echo MPTCP)), pid $(cat "$pidfile")"
}

# Stops the iperf3 servers of one namespace: COMMAND (for messages), the pid files' prefix in
# the run dir, the namespace, then server-stop's options (--port N: that one only)
stop_iperf3_servers() {
  local cmd=$1 prefix=$2 ns=$3 port="" f
  shift 3
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--port needs a number"; port=$2; shift 2 ;;
      *) die "$cmd: unknown option '$1'" ;;
    esac
  done
  for f in "$RUN_DIR"/"$prefix"-${port:-*}.pid; do
    [[ -e $f ]] || continue
    stop_iperf3 "$f" "$ns"
  done
}

cmd_server_stop() {
  need_root
  stop_iperf3_servers server-stop iperf3 "$NS_SRV" "$@"
}

# The destination's iperf3 servers: plain TCP, pid files dst-iperf3-PORT.pid in the run dir
cmd_dest_start() {
  need_root
  need_dest
  local port=$TESTBED_IPERF_PORT
  while [[ $# -gt 0 ]]; do
    case $1 in
      --port) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--port needs a number"; port=$2; shift 2 ;;
      *) die "dest-start: unknown option '$1'" ;;
    esac
  done
  need_tools iperf3 ss
  mkdir -p "$RUN_DIR"
  local pidfile=$RUN_DIR/dst-iperf3-$port.pid logfile=$RUN_DIR/dst-iperf3-$port.log
  if [[ -e $pidfile ]] && is_our_iperf3 "$(cat "$pidfile")" "$NS_DST"; then
    die "an iperf3 server already runs on port $port of the destination (pid $(cat "$pidfile"))"
  fi
  listening "$port" "$NS_DST" && die "port $port is already taken in $NS_DST"
  rm -f "$pidfile"
  ip netns exec "$NS_DST" iperf3 -s -p "$port" -D -I "$pidfile" --logfile "$logfile"
  for _ in $(seq 1 50); do
    if [[ -s $pidfile ]] && listening "$port" "$NS_DST"; then break; fi
    sleep 0.1
  done
  if ! { [[ -s $pidfile ]] && listening "$port" "$NS_DST"; }; then die "iperf3 did not start (see $logfile)"; fi
  log "destination: iperf3 server on $TESTBED_DST_ADDR port $port (plain TCP), pid $(cat "$pidfile")"
}

cmd_dest_stop() {
  need_root
  stop_iperf3_servers dest-stop dst-iperf3 "$NS_DST" "$@"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  [[ $cmd == up ]] || load_config
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env)
      case ${1:-} in
        "") print_env "" ;;
        --export) print_env "export " ;;
        *) die "env: unknown option '$1'" ;;
      esac ;;
    set) cmd_set "$@" ;;
    exec-client) cmd_exec "$NS_CLI" "$@" ;;
    exec-server) cmd_exec "$NS_SRV" "$@" ;;
    exec-dest) cmd_exec "$NS_DST" "$@" ;;
    server-start) cmd_server_start "$@" ;;
    server-stop) cmd_server_stop "$@" ;;
    dest-start) cmd_dest_start "$@" ;;
    dest-stop) cmd_dest_stop "$@" ;;
    link-down) cmd_link_down "$@" ;;
    link-up) cmd_link_up "$@" ;;
    help|--help|-h) usage ;;
    "") usage >&2; exit 2 ;;
    *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
