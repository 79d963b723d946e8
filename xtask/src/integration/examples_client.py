# The CPython client of xtask/src/integration/examples.rs:
#   examples_client.py FAMILY ADDR MODE N REQUEST REPLY PID
# FAMILY: tcp | unix | unix-dgram. REQUEST and REPLY may hold `{i}`, the client's number.
# MODE load:   N clients at once, each sends REQUEST, reads REPLY (byte for byte), closes.
# MODE hold:   N connections at once, each answered, all kept open; then the server's
#              Threads (/proc/PID/status) while all are open; then each answered again.
# MODE vanish: N clients each send half a request and vanish (half with FIN, half with RST;
#              datagram clients close before the reply comes), then one whole request.
# Prints `ok MODE n=N threads=T` last; exits non-zero, saying which client failed, otherwise.
import os, socket, struct, sys, tempfile, threading

family, addr, mode, n, request, reply, pid = sys.argv[1:8]
n = int(n)
TIMEOUT = 20
tmp = tempfile.mkdtemp(prefix="sockserve-examples-client-")
errors = []


def connect():
    if family == "tcp":
        host, _, port = addr.rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if family == "unix-dgram" else socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    if family == "unix-dgram":
        s.bind(os.path.join(tmp, "c%d-%d" % (threading.get_ident(), id(s))))
        s.connect(addr)
    else:
        s.connect(addr)
    return s


def exchange(s, i):
    want = reply.format(i=i).encode()
    s.sendall(request.format(i=i).encode())
    got = b""
    while len(got) < len(want):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    if got != want:
        raise AssertionError("client %d: expected %r, got %r" % (i, want, got))


def run_all(work):
    threads = [threading.Thread(target=guard, args=(work, i)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
        if t.is_alive():
            errors.append("a client did not finish within %d s" % (TIMEOUT * 2))


def guard(work, i):
    try:
        work(i)
    except Exception as e:  # every failure is reported, the first ends the run
        errors.append("client %d: %r" % (i, e))


def check():
    if errors:
        sys.exit("examples_client %s: %d failure(s); first: %s" % (mode, len(errors), errors[0]))


def server_threads():
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def sockname(s):
    return s.getsockname() if family == "unix-dgram" else None


threads = -1
if mode == "load":
    def one(i):
        with connect() as s:
            exchange(s, i)
            name = sockname(s)
        if name:
            os.unlink(name)
    run_all(one)
elif mode == "hold":
    conns = [None] * n
    def first(i):
        conns[i] = connect()
        exchange(conns[i], i)
    run_all(first)
    check()
    threads = server_threads()
    run_all(lambda i: exchange(conns[i], i))
    for s in conns:
        s.close()
elif mode == "vanish":
    def vanish(i):
        s = connect()
        data = request.format(i=i).encode()
        s.sendall(data[: max(1, len(data) // 2)])
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        name = sockname(s)
        s.close()
        if name:
            os.unlink(name)
    run_all(vanish)
    check()
    with connect() as s:
        exchange(s, n)
        name = sockname(s)
    if name:
        os.unlink(name)
else:
    sys.exit("unknown mode " + mode)
check()
os.rmdir(tmp)
print("ok %s n=%d threads=%d" % (mode, n, threads))
