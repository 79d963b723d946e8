# The client of the `echo_server --park` cases (xtask/src/integration/park.rs): many
# keep-alive connections to one echo server, every one answered twice.
#
#   park_client.py ADDR COUNT SERVER_PID STYLE LIMIT_SECONDS
#
# STYLE `burst`: open COUNT connections, each sending its first message as it connects, then
# read every echo (one selector over all); then, with all open and answered, read the
# server's VmRSS and Threads from /proc/SERVER_PID/status; then a message on every connection
# at once and every echo again.
# STYLE `silent`: open COUNT connections that send nothing, wait until the server holds them
# all (COUNT descriptors more in /proc/SERVER_PID/fd than before), read its VmRSS and
# Threads then (silent new connections wait in its reactor: no thread each), then a message
# on every connection at once and every echo, twice.
# STYLE `one-by-one`: open a connection, send, read its echo, keep it open, then the next; the
# same again over the open connections. (A sync server that held a connection in a handler
# would never answer the second client.)
# Prints `answered=N rss_kib=R threads=T open_s=O round1_s=A round2_s=B` and exits 0, or
# exits non-zero saying what failed. Every wait is bounded by LIMIT_SECONDS in all.
import os, resource, selectors, socket, sys, time

addr, count, pid, style, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
host, _, port = addr.rpartition(":")
deadline = time.monotonic() + limit


def left():
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        sys.exit(f"park client: not done within {limit:.0f} s")
    return remaining


# One descriptor a connection, and a few more for the interpreter itself.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = count + 64
if soft < want:
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"park client: {count} connections need {want} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def connect(i):
    try:
        s = socket.create_connection((host.strip("[]"), int(port)), timeout=min(left(), 10))
    except OSError as e:
        sys.exit(f"park client: connection {i}: {e} (is the server accepting?)")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def message(i, round_):
    return f"round {round_} client {i}\n".encode()


def exchange(s, i, round_):
    """One message on `s` and its whole echo, blocking (bounded)."""
    sent = message(i, round_)
    s.settimeout(left())
    s.sendall(sent)
    got = b""
    while len(got) < len(sent):
        chunk = s.recv(len(sent) - len(got))
        if not chunk:
            sys.exit(f"park client: connection {i} closed in round {round_} after {got!r}")
        got += chunk
    if got != sent:
        sys.exit(f"park client: connection {i}, round {round_}: sent {sent!r}, got {got!r}")


def burst(socks, round_, sent=False):
    """A message on every connection (unless `sent`), then every echo, through one selector."""
    sel = selectors.DefaultSelector()
    pending = {}
    for i, s in enumerate(socks):
        if not sent:
            s.settimeout(left())
            s.sendall(message(i, round_))
        s.setblocking(False)
        pending[s.fileno()] = (i, s, b"")
        sel.register(s, selectors.EVENT_READ)
    while pending:
        events = sel.select(timeout=min(left(), 10))
        if not events:
            continue
        for key, _ in events:
            i, s, got = pending[key.fd]
            chunk = s.recv(4096)
            if not chunk:
                sys.exit(f"park client: connection {i} closed in round {round_} after {got!r}")
            got += chunk
            want = message(i, round_)
            if len(got) < len(want):
                pending[key.fd] = (i, s, got)
                continue
            if got != want:
                sys.exit(f"park client: connection {i}, round {round_}: sent {want!r}, got {got!r}")
            del pending[key.fd]
            sel.unregister(s)
    sel.close()
    for s in socks:
        s.setblocking(True)


def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))


def status():
    """The server's VmRSS (KiB) and Threads, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


began = time.monotonic()
socks = []
try:
    if style == "burst":
        for i in range(count):
            socks.append(connect(i))
            socks[i].sendall(message(i, 1))
        opened = time.monotonic()
        burst(socks, 1, sent=True)
        answered = time.monotonic()
        rss, threads = status()
        burst(socks, 2)
    elif style == "silent":
        before = fds()
        for i in range(count):
            socks.append(connect(i))
        while fds() < before + count:
            left()
            time.sleep(0.05)  # polling the server's /proc entry: nothing to wait on
        opened = time.monotonic()
        rss, threads = status()
        burst(socks, 1)
        answered = time.monotonic()
        burst(socks, 2)
    elif style == "one-by-one":
        for i in range(count):
            socks.append(connect(i))
            exchange(socks[i], i, 1)
        opened = answered = time.monotonic()
        rss, threads = status()
        for i, s in enumerate(socks):
            exchange(s, i, 2)
    else:
        sys.exit(f"park client: unknown style {style!r}")
    done = time.monotonic()
except OSError as e:
    sys.exit(f"park client: {e} (with {len(socks)} connections open)")
finally:
    for s in socks:
        s.close()
print(
    f"answered={2 * count} rss_kib={rss} threads={threads} "
    f"open_s={opened - began:.1f} round1_s={answered - opened:.1f} round2_s={done - answered:.1f}"
)
