#!/usr/bin/env bash
# The compose scenario end to end, as root:
#   1. the local base image and a running dockerd (make-base-image.sh);
#   2. the image mptun:demo, from this checkout's build (no compilation in the image);
#   3. `compose up` of the server (kernel MPTCP iperf3 server on both links);
#   4. references, in a client container without mptun (same links, same shaping):
#      plain TCP over link1 alone, and the kernel's own MPTCP over both links (mptcpize);
#   5. the client with mptun (`mptun up` over both links) and a plain `iperf3 -c` inside it,
#      which mptun captures and carries over MPTCP; then `iperf3 -R` (server to client);
#   6. the concentrator: the client again, now `mptun up --server 172.31.1.3:7443` (the
#      server container's `mptun server`), and a plain `iperf3 -c` (then -R) inside it to `dest`,
#      a plain-TCP iperf3 server (no MPTCP) behind the concentrator on link3, which the client
#      cannot reach any other way (the host does not forward);
#   7. a JSON summary on stdout; exit 1 unless mptun relayed the flows and each run through it
#      (directly to the MPTCP server, and through the concentrator to the plain server) used
#      both links (each > MIN_SHARE of the bytes) and beat one link alone by MIN_GAIN, and the
#      concentrator connected to the destination and answered the client's Convert messages;
#      the containers and networks are always removed, on failure and on a signal too
#      (dockerd keeps running).
#
# Usage: sudo bash docker/run-scenario.sh [run|build|down]
#   build   only stage the context and build the image
#   down    only remove the compose project (after a --keep run, say)
# Environment: SECONDS_PER_RUN (10), RATE (100mbit), MIN_GAIN (1.3), MIN_SHARE (0.2),
#   KEEP=1 (leave the containers up), SKIP_BUILD=1 (use the image as it is), REVERSE=0 (no
#   iperf3 -R run through mptun),
#   KERNEL_REF=0 (skip the kernel MPTCP reference), MPTUN_ARGS (more `mptun up` options),
#   MPTUN=0 (no mptun run: the checks then apply to the kernel MPTCP reference, which
#   validates the links and the shaping), CONCENTRATOR=0 (no concentrator run), MPTUN_KEY (the
#   key the concentrator and the client share; default: a new random one).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
PROJECT=mptun-demo
IMAGE=${MPTUN_IMAGE:-mptun:demo}
export MPTUN_IMAGE=$IMAGE
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
MIN_GAIN=${MIN_GAIN:-1.3}
MIN_SHARE=${MIN_SHARE:-0.2}
export RATE=${RATE:-100mbit}
SERVER=172.31.1.3
CON_PORT=7443
DEST=172.31.3.2
cmd=${1:-run}

MPTUN=${MPTUN:-1}
[ "$MPTUN" = 1 ] || KERNEL_REF=1
CONCENTRATOR=${CONCENTRATOR:-1}
[ "$MPTUN" = 1 ] || CONCENTRATOR=0
# the key of the concentrator and its client (compose hands it to both containers)
if [ "$CONCENTRATOR" = 1 ] && [ -z "${MPTUN_KEY:-}" ]; then
  MPTUN_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
fi
export MPTUN_KEY=${MPTUN_KEY:-}
ctx=
project_started=0
cleanup() {
  if [ -n "$ctx" ]; then rm -rf "$ctx" "$ctx.log"; fi
  if [ "$project_started" = 1 ] && [ "${KEEP:-0}" != 1 ]; then teardown; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run-scenario: $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sudo bash $0)"

# --- 1. engine and base image ----------------------------------------------------------------
bash "$here/make-base-image.sh"

if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$PROJECT" -f "$here/compose.yaml" "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
  compose() { docker-compose -p "$PROJECT" -f "$here/compose.yaml" "$@"; }
else
  die "no docker compose (make-base-image.sh installs Debian's docker-compose)"
fi

teardown() {
  log "removing the compose project $PROJECT (containers, networks)"
  compose down --remove-orphans --volumes --timeout 10 >/dev/null 2>&1 || true
  # leftovers of an interrupted run: containers and networks labelled with the project
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker network rm >/dev/null 2>&1 || true
}
if [ "$cmd" = down ]; then teardown; exit 0; fi

# --- 2. the image ----------------------------------------------------------------------------
build_image() {
  local node
  node=$(command -v node) || die "no node on this host"
  "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "the host's node is $("$node" --version); mptun needs >= 20"
  [ -f "$repo/dist/src/cli/main.js" ] || die "mptun is not built: run npm ci && npm run build in $repo"
  [ -f "$repo/build/Release/mptun_tun.node" ] || die "the TUN addon is not built: run npm ci in $repo"
  ctx=$(mktemp -d /var/tmp/mptun-context.XXXXXX)
  mkdir -p "$ctx/app/build/Release"
  cp "$(readlink -f "$node")" "$ctx/node"
  cp "$here/entry.sh" "$ctx/entry.sh"
  cp -r "$repo/bin" "$repo/dist" "$repo/package.json" "$ctx/app/"
  rm -rf "$ctx/app/dist/test" "$ctx/app/dist/bench"
  cp "$repo/build/Release/mptun_tun.node" "$ctx/app/build/Release/"
  # the production dependencies only, as npm resolved them in this checkout
  (cd "$repo" && npm ls --omit=dev --parseable --all 2>/dev/null) | tail -n +2 | while read -r dir; do
    rel=${dir#"$repo"/}
    mkdir -p "$ctx/app/$(dirname "$rel")"
    cp -r "$dir" "$ctx/app/$rel"
  done
  [ -d "$ctx/app/node_modules/netlink" ] || die "npm ls found no production node_modules in $repo (run npm ci)"
  log "building $IMAGE (context $(du -sh "$ctx" | cut -f1))"
  # the legacy builder (Debian's engine has no buildx); --network host: the RUN step reaches
  # the Debian mirror without Docker's NAT (make-base-image.sh turns Docker's iptables off)
  if ! DOCKER_BUILDKIT=0 docker build --network host -f "$here/Dockerfile" -t "$IMAGE" "$ctx" > "$ctx.log" 2>&1; then
    tail -n 30 "$ctx.log" >&2
    rm -f "$ctx.log"
    die "docker build failed"
  fi
  log "built $IMAGE ($(docker image inspect --format '{{.Id}}' "$IMAGE" | cut -c8-19))"
  rm -rf "$ctx" "$ctx.log"
  ctx=
}
if [ "${SKIP_BUILD:-0}" != 1 ] || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then build_image; fi
if [ "$cmd" = build ]; then exit 0; fi
[ "$cmd" = run ] || die "unknown command $cmd (run, build, down)"

# --- 3. the server ---------------------------------------------------------------------------
teardown
project_started=1
compose up -d server >/dev/null 2>&1 || { compose logs server >&2 || true; die "compose up server failed"; }
if [ "$CONCENTRATOR" = 1 ]; then
  compose up -d dest >/dev/null 2>&1 || { compose logs dest >&2 || true; die "compose up dest failed"; }
fi

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2; shift 2
  for _ in $(seq 1 "$((t * 5))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out waiting for $what"
}
wait_for 30 "the iperf3 server" compose exec -T server sh -c 'ss -Hltn "sport = :5201" | grep -q .'
log "server up: $(compose exec -T server ip mptcp endpoint show | tr -s ' \r\n' ' ')"

# the client without mptun: `compose run` makes a container with the client's own links,
# addresses and shaping, whose command replaces mptun
measure_ref() { compose run --rm -T client client mptun-demo measure "$@" 2>/dev/null; }
iperf_args=(-c "$SERVER" -t "$SECONDS_PER_RUN" -J)

# --- 4. references ---------------------------------------------------------------------------
log "reference: plain TCP over link1 alone (${SECONDS_PER_RUN}s)"
ref_tcp=$(measure_ref iperf3 "${iperf_args[@]}") || die "reference plain TCP run failed: $ref_tcp"
ref_mptcp=null
if [ "${KERNEL_REF:-1}" = 1 ]; then
  log "reference: the kernel's MPTCP over both links (mptcpize, ${SECONDS_PER_RUN}s)"
  ref_mptcp=$(measure_ref mptcpize run iperf3 "${iperf_args[@]}") || die "reference kernel MPTCP run failed: $ref_mptcp"
fi

# --- 5. mptun --------------------------------------------------------------------------------
mib_snapshot() { # the server's MPTCP counters, "name value" lines
  # shellcheck disable=SC2016 # expanded by the container's shell
  compose exec -T server sh -c 'nstat -az 2>/dev/null | awk "/^MPTcpExt/ {print \$1, \$2}"' || true
}
mptun_run=null mptun_rev=null status_after=null client_logs='' mib_before='' client_restarts=null
mptun_ready() { compose exec -T client mptun status --json 2>/dev/null | node -e 'JSON.parse(require("fs").readFileSync(0, "utf8"))'; }
wait_mptun() {
  for _ in $(seq 1 150); do mptun_ready >/dev/null 2>&1 && break; sleep 0.2; done
  if ! mptun_ready >/dev/null 2>&1; then
    compose logs --no-color --tail 40 client >&2 || true
    die "mptun did not come up in the client (no answer to mptun status --json after 30 s)"
  fi
}
if [ "$MPTUN" = 1 ]; then
  log "starting the client with mptun (mptun up --path LINK1:$SERVER --path LINK2:172.31.2.3)"
  compose up -d client >/dev/null 2>&1 || die "compose up client failed"
  wait_mptun
  mib_before=$(mib_snapshot)
  log "mptun is up; iperf3 -c $SERVER inside the client, captured by mptun (${SECONDS_PER_RUN}s)"
  mptun_run=$(compose exec -T client mptun-demo measure iperf3 "${iperf_args[@]}") || {
    compose logs --no-color --tail 40 client >&2 || true
    die "iperf3 through mptun failed: $mptun_run"
  }
  if [ "${REVERSE:-1}" = 1 ]; then
    log "and the reverse direction, server to client (iperf3 -R, ${SECONDS_PER_RUN}s)"
    mptun_rev=$(compose exec -T client mptun-demo measure iperf3 "${iperf_args[@]}" -R) || {
      compose logs --no-color --tail 40 client >&2 || true
      die "iperf3 -R through mptun failed: $mptun_rev"
    }
  fi
  status_after=$(compose exec -T client mptun status --json 2>/dev/null || echo null)
  client_restarts=$(docker inspect -f '{{.RestartCount}}' "$(compose ps -q client)" 2>/dev/null || echo null)
  if [ "$client_restarts" != 0 ]; then
    compose logs --no-color --tail 40 client >&2 || true
    die "the client container restarted $client_restarts time(s): mptun died (see its logs above)"
  fi
  client_logs=$(compose logs --no-color --tail 30 client 2>&1 || true)
fi
mib_after=$(mib_snapshot)

# --- 6. the concentrator ---------------------------------------------------------------------
conc_run=null conc_rev=null conc_status=null server_status=null conc_restarts=null
if [ "$CONCENTRATOR" = 1 ]; then
  wait_for 30 "the plain iperf3 server (dest)" compose exec -T dest sh -c 'ss -Hltn "sport = :5201" | grep -q .'
  wait_for 30 "the concentrator (mptun server in the server container)" \
    compose exec -T server sh -c "ss -Hltn 'sport = :$CON_PORT' | grep -q ."
  log "the client again, now with mptun up --server $SERVER:$CON_PORT (the concentrator)"
  MPTUN_ARGS="--server $SERVER:$CON_PORT --key /run/mptun-demo.key ${MPTUN_ARGS:-}" \
    compose up -d --force-recreate client >/dev/null 2>&1 || die "compose up client (with --server) failed"
  wait_mptun
  log "iperf3 -c $DEST (plain TCP server behind the concentrator) inside the client (${SECONDS_PER_RUN}s)"
  conc_run=$(compose exec -T client mptun-demo measure iperf3 -c "$DEST" -t "$SECONDS_PER_RUN" -J) || {
    compose logs --no-color --tail 40 client >&2 || true
    compose exec -T server tail -n 20 /var/log/mptun-server.log >&2 || true
    die "iperf3 through the concentrator failed: $conc_run"
  }
  if [ "${REVERSE:-1}" = 1 ]; then
    log "and the reverse direction through the concentrator (iperf3 -R, ${SECONDS_PER_RUN}s)"
    conc_rev=$(compose exec -T client mptun-demo measure iperf3 -c "$DEST" -t "$SECONDS_PER_RUN" -J -R) || {
      compose logs --no-color --tail 40 client >&2 || true
      die "iperf3 -R through the concentrator failed: $conc_rev"
    }
  fi
  conc_status=$(compose exec -T client mptun status --json 2>/dev/null || echo null)
  server_status=$(compose exec -T server mptun server status --json --control-socket /run/mptun/server.sock 2>/dev/null || echo null)
  conc_restarts=$(docker inspect -f '{{.RestartCount}}' "$(compose ps -q client)" 2>/dev/null || echo null)
  if [ "$conc_restarts" != 0 ]; then
    compose logs --no-color --tail 40 client >&2 || true
    die "the client container (with --server) restarted $conc_restarts time(s): mptun died (see its logs above)"
  fi
fi

# --- 7. the summary --------------------------------------------------------------------------
REF_TCP=$ref_tcp REF_MPTCP=$ref_mptcp MPTUN_RUN=$mptun_run MPTUN_REV=$mptun_rev \
STATUS_AFTER=$status_after MIB_BEFORE=$mib_before MIB_AFTER=$mib_after MIN_GAIN=$MIN_GAIN MIN_SHARE=$MIN_SHARE \
RATE=$RATE MPTUN=$MPTUN CLIENT_RESTARTS=$client_restarts CLIENT_LOGS=$client_logs \
CONCENTRATOR=$CONCENTRATOR CONC_RUN=$conc_run CONC_REV=$conc_rev CONC_STATUS=$conc_status SERVER_STATUS=$server_status \
node - <<'EOF'
const parse = (s) => { try { return JSON.parse(s); } catch { return s || null; } };
const env = process.env;
const minGain = Number(env.MIN_GAIN), minShare = Number(env.MIN_SHARE);
// One run: throughput as the receiver counted it, and the bytes each of the client's links
// carried in the direction of the data (sent for iperf3 -c, received for iperf3 -R).
const run = (r, reverse = false) => {
  if (!r || typeof r !== 'object') return null;
  const end = r.output?.end ?? {};
  const key = reverse ? 'rxBytes' : 'txBytes';
  const bytes = r.links.link1[key] + r.links.link2[key];
  const share = (n) => (bytes > 0 ? Number((n / bytes).toFixed(3)) : 0);
  const link = (l) => ({ dev: l.dev, txBytes: l.txBytes, rxBytes: l.rxBytes, share: share(l[key]) });
  const out = {
    direction: reverse ? 'server to client' : 'client to server',
    mbit: Number(((end.sum_received?.bits_per_second ?? 0) / 1e6).toFixed(1)),
    retransmits: end.sum_sent?.retransmits ?? null,
    links: { link1: link(r.links.link1), link2: link(r.links.link2) },
  };
  const error = r.output?.error ?? (typeof r.output === 'string' ? r.output.slice(0, 300) : undefined);
  if (error) out.error = error;
  return out;
};
const mib = (text) => new Map((text || '').trim().split('\n').filter(Boolean).map((l) => { const [k, v] = l.split(/\s+/); return [k, Number(v)]; }));
const mibBefore = mib(env.MIB_BEFORE), mibAfter = mib(env.MIB_AFTER);
const serverMib = {};
for (const [k, v] of mibAfter) {
  const d = v - (mibBefore.get(k) ?? 0);
  if (d !== 0) serverMib[k] = d;
}
const tcp = run(parse(env.REF_TCP));
const kernel = run(parse(env.REF_MPTCP));
const mptun = run(parse(env.MPTUN_RUN));
const mptunReverse = run(parse(env.MPTUN_REV), true);
const concentrator = run(parse(env.CONC_RUN));
const concentratorReverse = run(parse(env.CONC_REV), true);
const concStatus = parse(env.CONC_STATUS);
const serverStatus = parse(env.SERVER_STATUS);
const status = parse(env.STATUS_AFTER);
const mptunStatus = status && typeof status === 'object'
  ? { version: status.version, containerRestarts: Number(env.CLIENT_RESTARTS), tun: status.tun, paths: status.paths, flowsOpen: status.flows?.length, counters: status.counters }
  : status;

// what the checks judge: mptun's runs, or the kernel's MPTCP when mptun was not run (MPTUN=0)
const judged = env.MPTUN === '1' ? { mptunTwoLinks: mptun, mptunTwoLinksReverse: mptunReverse } : { kernelMptcpTwoLinks: kernel };
if (env.CONCENTRATOR === '1') Object.assign(judged, { concentratorTwoLinks: concentrator, concentratorTwoLinksReverse: concentratorReverse });
const checks = { minShare, minGain, oneLinkMbit: tcp?.mbit ?? null };
let ok = Boolean(tcp && tcp.mbit > 0);
if (env.MPTUN === '1') {
  // the flows went through mptun's relay (not the kernel's own TCP)
  checks.mptunRelayedFlows = mptunStatus?.counters?.relay?.flowsEstablished ?? 0;
  ok &&= checks.mptunRelayedFlows > 0;
}
if (env.CONCENTRATOR === '1') {
  // the concentrator connected to the plain server, and the client's Convert messages were answered
  checks.concentratorConnected = serverStatus?.counters?.connected ?? 0;
  checks.concentratorConvertAccepted = concStatus?.counters?.concentrator?.convertAccepted ?? 0;
  checks.concentratorConvertInSyn = concStatus?.counters?.concentrator?.convertInSyn ?? 0;
  ok &&= checks.concentratorConnected > 0 && checks.concentratorConvertAccepted > 0;
}
for (const [name, r] of Object.entries(judged)) {
  if (r === null && name.endsWith('Reverse')) continue; // REVERSE=0
  const gain = r && tcp?.mbit ? Number((r.mbit / tcp.mbit).toFixed(2)) : null;
  const c = {
    mbit: r?.mbit ?? null,
    gainOverOneLink: gain,
    link1Share: r?.links.link1.share ?? null,
    link2Share: r?.links.link2.share ?? null,
  };
  c.pass = Boolean(r && !r.error && gain !== null && gain >= minGain && c.link1Share > minShare && c.link2Share > minShare);
  ok &&= c.pass;
  checks[name] = c;
}
const summary = {
  scenario: 'docker compose mptun-demo: client (mptun up over link1, link2) -> server (kernel MPTCP, mptcpize iperf3 -s); '
    + 'then client (mptun up --server) -> server (mptun server) -> link3 -> dest (plain-TCP iperf3 -s)',
  ratePerLink: env.RATE,
  oneLinkTcp: tcp,
  kernelMptcpTwoLinks: kernel,
  mptunTwoLinks: mptun,
  mptunTwoLinksReverse: mptunReverse,
  serverMptcpMibDelta: env.MPTUN === '1' ? serverMib : undefined,
  mptunStatus,
  concentratorTwoLinks: concentrator,
  concentratorTwoLinksReverse: concentratorReverse,
  concentratorServer: serverStatus && typeof serverStatus === 'object'
    ? { counters: serverStatus.counters, errorsByCode: serverStatus.errorsByCode, bytesUp: serverStatus.bytesUp, bytesDown: serverStatus.bytesDown }
    : serverStatus,
  concentratorClientCounters: concStatus?.counters?.concentrator ?? null,
  checks,
  ok,
};
console.log(JSON.stringify(summary, null, 2));
if (!ok) {
  console.error('run-scenario: FAILED' + (env.CLIENT_LOGS ? '; the client\'s last log lines:\n' + env.CLIENT_LOGS : ''));
  process.exit(1);
}
EOF
