#!/usr/bin/env bash
# capture-kernel.sh — how the kernel fixtures of test/mptcp/fixtures.ts were captured.
#
# Two throwaway namespaces (mptmp-c, the client; mptmp-s, the server) joined by two veth
# pairs, the Linux kernel's MPTCP on both ends, tcpdump on both links (in the server
# namespace). Four runs, each with its own pcap:
#   1. iperf3:      `mptcpize run iperf3 -s -1` against `mptcpize run iperf3 -c ... -n 200K`;
#                   the server signals its second address (ADD_ADDR), the client joins (MP_JOIN).
#   2. checksum:    the same with net.mptcp.checksum_enabled=1 on both ends (python3, IPPROTO_MPTCP):
#                   MP_CAPABLE with the A flag, DSS with checksums.
#   3. prio/remove: a long connection during which the server marks its endpoint backup
#                   (MP_PRIO) then deletes it (REMOVE_ADDR).
#   4. fastclose:   the client closes with unread data: MP_FASTCLOSE + MP_TCPRST on RSTs.
#   5. mpcdata:     no address signalled, so the client's first data goes with MP_CAPABLE
#                   (the data-level length form), checksums off then on.
#   6. addaddr6:    over IPv6, the server signals a second address with a port (ADD_ADDR with
#                   an IPv6 address and a port); the client joins it as a backup subflow.
#                   TCP timestamps off (net.ipv4.tcp_timestamps=0): the 30-byte option does not
#                   fit beside them, and the kernel then never sends it.
# Usage: capture-kernel.sh OUTDIR (as root). The namespaces are deleted on exit, even on failure.
set -euo pipefail
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
OUT=${1:?usage: capture-kernel.sh OUTDIR}
mkdir -p "$OUT"
C=mptmp-c S=mptmp-s
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  ip netns del $C 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $C; ip netns add $S
ip link add mptmp-c1 netns $C type veth peer name mptmp-s1 netns $S
ip link add mptmp-c2 netns $C type veth peer name mptmp-s2 netns $S
ip -n $C addr add 10.91.1.1/24 dev mptmp-c1; ip -n $S addr add 10.91.1.2/24 dev mptmp-s1
ip -n $C addr add 10.91.2.1/24 dev mptmp-c2; ip -n $S addr add 10.91.2.2/24 dev mptmp-s2
for ns in $C $S; do
  ip -n $ns link set lo up
  for d in $(ip -n $ns -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1); do ip -n $ns link set "$d" up; done
  ip netns exec $ns sysctl -qw net.mptcp.enabled=1
  ip netns exec $ns sysctl -qw net.mptcp.checksum_enabled=0
  ip -n $ns mptcp limits set subflows 2 add_addr_accepted 2
done
ip -n $S mptcp endpoint add 10.91.2.2 dev mptmp-s2 signal
sleep 1

capture() { # name
  ip netns exec $S tcpdump -i mptmp-s1 -n -U -s 0 -w "$OUT/$1-link1.pcap" tcp 2>/dev/null & PIDS+=($!)
  ip netns exec $S tcpdump -i mptmp-s2 -n -U -s 0 -w "$OUT/$1-link2.pcap" tcp 2>/dev/null & PIDS+=($!)
  sleep 1
}
stop_capture() {
  sleep 1
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# 1. iperf3
capture iperf3
ip netns exec $S mptcpize run iperf3 -s -1 -p 5201 >/dev/null 2>&1 & PIDS+=($!)
sleep 1
ip netns exec $C mptcpize run iperf3 -c 10.91.1.2 -p 5201 -n 200K >/dev/null
stop_capture

# 2. checksums
for ns in $C $S; do ip netns exec $ns sysctl -qw net.mptcp.checksum_enabled=1; done
capture csum
ip netns exec $S python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5202)); s.listen(1)
c, _ = s.accept()
n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.sendall(b"got %d\n" % n)
c.close()
' & PIDS+=($!)
sleep 1
ip netns exec $C python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("10.91.1.2", 5202))
s.sendall(b"hello, kernel MPTCP with checksums\n")
time.sleep(1.0)
s.sendall(bytes(range(256)) * 16)
time.sleep(0.5)
s.shutdown(socket.SHUT_WR)
print(s.recv(100))
s.close()
'
stop_capture
for ns in $C $S; do ip netns exec $ns sysctl -qw net.mptcp.checksum_enabled=0; done

# 3. MP_PRIO and REMOVE_ADDR
capture prio
ip netns exec $S python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5203)); s.listen(1)
c, _ = s.accept()
while c.recv(65536): pass
c.close()
' & PIDS+=($!)
sleep 1
ip netns exec $C python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect(("10.91.1.2", 5203))
for i in range(40):
    s.sendall(b"tick %d\n" % i)
    time.sleep(0.1)
s.close()
' & CLI=$!
sleep 1.5
ip -n $S mptcp endpoint change id 1 backup
sleep 1
ip -n $S mptcp endpoint delete id 1
wait $CLI
stop_capture
ip -n $S mptcp endpoint add 10.91.2.2 dev mptmp-s2 signal

# 4. MP_FASTCLOSE: the client closes with unread data
capture fastclose
ip netns exec $S python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5204)); s.listen(1)
c, _ = s.accept()
c.sendall(b"unread data\n" * 100)
time.sleep(2)
c.close()
' & PIDS+=($!)
sleep 1
ip netns exec $C python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect(("10.91.1.2", 5204))
time.sleep(1)
s.close()
'
stop_capture

# 5. MP_CAPABLE with data: no ADD_ADDR before the client's first data
ip -n $S mptcp endpoint flush
mpcdata() { # port
  ip netns exec $S python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept()
while c.recv(65536): pass
c.close()
' "$1" & PIDS+=($!)
  sleep 1
  ip netns exec $C python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("10.91.1.2", int(sys.argv[1])))
s.sendall(b"first data\n")
time.sleep(0.3)
s.close()
' "$1"
}
capture mpcdata
mpcdata 5205
for ns in $C $S; do ip netns exec $ns sysctl -qw net.mptcp.checksum_enabled=1; done
mpcdata 5206
for ns in $C $S; do ip netns exec $ns sysctl -qw net.mptcp.checksum_enabled=0; done
stop_capture

# 6. IPv6, ADD_ADDR with an IPv6 address and a port, a backup join
ip -n $C addr add fd00:91:1::1/64 dev mptmp-c1 nodad; ip -n $S addr add fd00:91:1::2/64 dev mptmp-s1 nodad
ip -n $C addr add fd00:91:2::1/64 dev mptmp-c2 nodad; ip -n $S addr add fd00:91:2::2/64 dev mptmp-s2 nodad
ip -n $S mptcp endpoint add fd00:91:2::2 dev mptmp-s2 signal port 5299
ip -n $C mptcp endpoint add fd00:91:2::1 dev mptmp-c2 backup
for ns in $C $S; do ip netns exec $ns sysctl -qw net.ipv4.tcp_timestamps=0; done
sleep 1
capture addaddr6
ip netns exec $S python3 -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5207)); s.listen(1)
c, _ = s.accept()
while c.recv(65536): pass
c.close()
' & PIDS+=($!)
sleep 1
ip netns exec $C python3 -c '
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 262)
s.connect(("fd00:91:1::2", 5207))
for i in range(10):
    s.sendall(b"v6 tick %d\n" % i)
    time.sleep(0.1)
s.close()
'
stop_capture
echo "captured into $OUT"
