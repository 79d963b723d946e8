# The client of `cargo xtask integration`'s many-connections case (many.rs): HOST:PORT N
# LIMIT_SECS on the command line. It raises its own open-file limit, opens N connections to
# the server and keeps every one open, sends a line on each, and reads each one's echo. It
# prints `connected N in SECS`, then `answered N in SECS`, then waits: the caller reads the
# server's figures while every connection is open, and closes this process's stdin to let it
# close them all and exit. It exits non-zero, saying why, on any failure, and gives up once
# LIMIT_SECS have passed since it started.
import resource
import socket
import sys
import time

addr, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, _, port = addr.rpartition(":")
started = time.monotonic()
deadline = started + limit


def left():
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        sys.exit(f"many_clients: gave up after {limit:.0f} s")
    return remaining


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = n + 64
if soft < need:
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"many_clients: the open-file hard limit {hard} is under the {need} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

conns = []
for i in range(n):
    try:
        conns.append(socket.create_connection((host, int(port)), timeout=left()))
    except OSError as e:
        sys.exit(f"many_clients: connection {i + 1} of {n} failed: {e}")
connected = time.monotonic() - started
print(f"connected {n} in {connected:.2f}", flush=True)

for i, conn in enumerate(conns):
    conn.sendall(b"line %d\n" % i)
for i, conn in enumerate(conns):
    expected = b"line %d\n" % i
    reply = b""
    while len(reply) < len(expected):
        conn.settimeout(left())
        try:
            chunk = conn.recv(len(expected) - len(reply))
        except OSError as e:
            sys.exit(f"many_clients: connection {i + 1} of {n} got no answer: {e}")
        if not chunk:
            sys.exit(f"many_clients: connection {i + 1} of {n} closed after {reply!r}")
        reply += chunk
    if reply != expected:
        sys.exit(f"many_clients: connection {i + 1} of {n} got {reply!r}, not {expected!r}")
answered = time.monotonic() - started - connected
print(f"answered {n} in {answered:.2f}", flush=True)

sys.stdin.read()  # until the caller closes it
for conn in conns:
    conn.close()
