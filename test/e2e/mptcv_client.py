#!/usr/bin/env python3
"""A test client of `mptun server` (the e2e test builds the Convert message, this sends it).

Opens an MPTCP (IPPROTO_MPTCP, the kernel's) or plain TCP connection to the concentrator, writes
the Convert message -- in the SYN with TCP Fast Open (sendto MSG_FASTOPEN) when --fastopen --
then N bytes of data, half-closes, reads everything back, and prints one JSON line: the hex of
what it received, the sha256 of what it sent, and how the connection ended.
With --hold it prints READY after the Converter's reply and keeps the connection until SIGTERM.
"""
import argparse, hashlib, json, os, signal, socket, sys, threading

IPPROTO_MPTCP = 262

p = argparse.ArgumentParser()
p.add_argument('--host', required=True)
p.add_argument('--port', type=int, required=True)
p.add_argument('--msg', required=True, help='hex of the Convert message')
p.add_argument('--bytes', type=int, default=0)
p.add_argument('--mptcp', action='store_true')
p.add_argument('--fastopen', action='store_true')
p.add_argument('--hold', action='store_true')
a = p.parse_args()

msg = bytes.fromhex(a.msg)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP if a.mptcp else socket.IPPROTO_TCP)
sent = hashlib.sha256()
out = {'received': '', 'end': 'fin', 'sentBytes': 0}
if a.fastopen:
    s.sendto(msg, socket.MSG_FASTOPEN, (a.host, a.port))
else:
    s.connect((a.host, a.port))
    s.sendall(msg)

def writer():
    try:
        block = os.urandom(65536)
        left = a.bytes
        while left > 0:
            chunk = block[:min(left, len(block))]
            s.sendall(chunk)
            sent.update(chunk)
            left -= len(chunk)
            out['sentBytes'] += len(chunk)
        if not a.hold:
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        out['writeError'] = e.strerror

t = threading.Thread(target=writer)
t.start()
got = bytearray()
try:
    if a.hold:
        while len(got) < 4 or len(got) < got[1] * 4:
            d = s.recv(65536)
            if not d:
                break
            got += d
        print('READY', flush=True)
        signal.sigwait([signal.SIGTERM])
        s.shutdown(socket.SHUT_WR)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
except ConnectionResetError:
    out['end'] = 'reset'
t.join()
out['received'] = got.hex()
out['sha256'] = sent.hexdigest()
print(json.dumps(out), flush=True)
