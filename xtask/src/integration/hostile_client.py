"""Hostile clients, all at once, against an echo server (`cargo xtask integration`, hostile.rs).

usage: hostile_client.py HOST:PORT SLOWLORIS NEVER_READERS RESETTERS SECONDS

- SLOWLORIS connections send one byte, then another to each once a second, never a line end
  and never reading;
- NEVER_READERS connections, each with a 4 KiB SO_RCVBUF, send until their own send buffer is
  full and never read the echo, so the server's writes to them block;
- RESETTERS connections send 64 KiB, read the first KiB of the echo, then reset (SO_LINGER 0
  and close), mid-reply.

Prints `ready slowloris=N never_readers=N resets=N` once all are in place, then keeps the
slowloris dribbling and the rest open until stdin closes or SECONDS pass, and exits 0. A
connection the server refuses or closes is counted, not fatal: the server may cut them off.
"""

import select
import socket
import struct
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
address = (host, int(port))
slowloris, never_readers, resetters, seconds = map(int, sys.argv[2:6])
deadline = time.monotonic() + seconds


def connect(small=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small:
        # Both buffers small (set before connect, so the window is small from the start): the
        # server's writes block soon, and little data sits in the kernel.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.settimeout(10)
    s.connect(address)
    return s


lorises = []
for _ in range(slowloris):
    s = connect()
    s.sendall(b"x")
    s.setblocking(False)
    lorises.append(s)

readers = []
chunk = b"n" * 65536
for _ in range(never_readers):
    s = connect(small=True)
    s.setblocking(False)
    sent = 0
    # Until our send buffer is full: the server's echo has filled our tiny receive buffer and
    # the server's own send buffer, so its write blocks.
    while sent < 16 << 20:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            break
    readers.append(s)

resets = unanswered = 0
for _ in range(resetters):
    s = connect()
    s.sendall(b"r" * 65536)
    got = 0
    try:
        while got < 1024:
            part = s.recv(1024 - got)
            if not part:
                break
            got += len(part)
    except socket.timeout:
        unanswered += 1  # reset all the same, before any reply
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    resets += 1

print(
    f"ready slowloris={len(lorises)} never_readers={len(readers)} resets={resets} "
    f"resets_unanswered={unanswered}",
    flush=True,
)

cut = 0
while time.monotonic() < deadline:
    ready, _, _ = select.select([sys.stdin], [], [], 1.0)
    if ready and not sys.stdin.read(1):
        break
    for s in list(lorises):
        try:
            s.send(b"x")
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            lorises.remove(s)
            cut += 1
print(f"done cut_slowloris={cut}", flush=True)
