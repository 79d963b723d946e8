# The CPython clients of the `http_server` cases (xtask/src/integration/http.rs).
#
#   http_client.py CASE ADDR ROOT SERVER_PID TIMEOUT_SECONDS
#
# ROOT is the served directory, as http.rs lays it out (hello.txt, docs/ with odd names,
# with-index/, leak.txt and up/ leading out of it, big.bin: 1 GiB, sparse; ../secret.txt beside
# it). TIMEOUT_SECONDS is the server's --timeout. CASE is one of:
#   python   urllib.request and http.client: files, headers, listing, redirect, keep-alive,
#            If-Modified-Since, pipelining, bodies, Expect: 100-continue
#   safety   request targets that try to leave the root: each 400, 403 or 404, never the file
#   bad      malformed and oversized requests: each its 4xx/5xx with a status line
#   stalled  300 clients that stop mid-request, and one that dribbles: the server serves others meanwhile, holds no
#            thread for them (threads read from /proc/SERVER_PID/status), drops each at its
#            deadline
#   rss      the 1 GiB sparse file, its VmRSS sampled while it streams
# Prints one line of figures and exits 0, or exits non-zero saying what failed. Every socket
# has a timeout; every wait is bounded.
import http.client, os, socket, sys, time, urllib.request

case, addr, root, pid, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
host, _, port = addr.rpartition(":")
port = int(port)
base = f"http://{addr}"
SECRET = b"TOP-SECRET"


def fail(message):
    sys.exit(f"http client ({case}): {message}")


def check(condition, message):
    if not condition:
        fail(message)


def status_of(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    fail(f"no {field} in /proc/{pid}/status")


def connect():
    return socket.create_connection((host, port), timeout=10)


def read_response(f, head=False):
    """One response from the file `f`: (status, headers, body); the body by Content-Length."""
    line = f.readline(65537)
    check(line.startswith(b"HTTP/1.1 "), f"expected a status line, got {line!r}")
    status = int(line.split()[1])
    headers = {}
    while True:
        field = f.readline(65537)
        check(field.endswith(b"\r\n"), f"a header line cut short: {field!r}")
        if field == b"\r\n":
            break
        name, _, value = field.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if not head and status not in (100, 304):
        length = int(headers.get("content-length", "-1"))
        check(length >= 0, f"{status} without Content-Length: {headers}")
        body = f.read(length)
        check(len(body) == length, f"body cut short: {len(body)} of {length} bytes")
    return status, headers, body


def exchange(data, head=False):
    """Sends `data` on a fresh connection; its response, and whether the server then closed."""
    with connect() as s:
        s.sendall(data)
        f = s.makefile("rb")
        response = read_response(f, head)
        try:
            closed = f.read(1) == b""
        except (ConnectionResetError, socket.timeout) as e:
            fail(f"after the response to {data[:60]!r}: {e!r}, not a clean close")
        return response, closed


def python_case():
    hello = open(os.path.join(root, "hello.txt"), "rb").read()
    # urllib.request: a file, its headers.
    with urllib.request.urlopen(f"{base}/hello.txt", timeout=10) as r:
        check(r.status == 200 and r.read() == hello, "GET /hello.txt")
        check(r.headers["Content-Type"] == "text/plain; charset=utf-8", f"type {r.headers}")
        check(r.headers["Content-Length"] == str(len(hello)), f"length {r.headers}")
        check(r.headers["Server"].startswith("sockserve-http_server/"), f"server {r.headers}")
        check(r.headers["Date"].endswith(" GMT"), f"date {r.headers}")
        last_modified = r.headers["Last-Modified"]
        mtime = int(os.stat(os.path.join(root, "hello.txt")).st_mtime)
        from email.utils import parsedate_to_datetime
        check(int(parsedate_to_datetime(last_modified).timestamp()) == mtime, f"{last_modified} vs {mtime}")
    # A directory without its slash: 301 to it, followed; the listing escapes and encodes.
    with urllib.request.urlopen(f"{base}/docs", timeout=10) as r:
        check(r.url == f"{base}/docs/", f"redirected to {r.url}")
        page = r.read().decode()
        check('<a href="a%26b%20%3Cc%3E.txt">a&amp;b &lt;c&gt;.txt</a>' in page, page)
        check('<a href="sub/">sub/</a>' in page, page)
    with urllib.request.urlopen(f"{base}/docs/a%26b%20%3Cc%3E.txt", timeout=10) as r:
        check(r.read() == b"odd name\n", "the file behind the encoded link")
    with urllib.request.urlopen(f"{base}/with-index/", timeout=10) as r:
        check(r.read() == b"<h1>index</h1>\n", "index.html")
        check(r.headers["Content-Type"].startswith("text/html"), f"{r.headers}")
    try:
        urllib.request.urlopen(f"{base}/no-such-file", timeout=10)
        fail("GET /no-such-file succeeded")
    except urllib.error.HTTPError as e:
        check(e.code == 404, f"GET /no-such-file: {e.code}")

    # http.client: one connection for every request (keep-alive), HEAD, 404, 304, 200 again.
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/hello.txt")
    r = conn.getresponse()
    check(r.status == 200 and r.read() == hello, "http.client GET")
    sock = conn.sock
    plan = [
        ("HEAD", "/hello.txt", {}, 200, b""),
        ("GET", "/missing", {}, 404, None),
        ("GET", "/hello.txt", {"If-Modified-Since": last_modified}, 304, b""),
        ("GET", "/hello.txt", {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200, hello),
        ("GET", "/hello.txt", {"If-Modified-Since": "not a date"}, 200, hello),
        ("GET", "/docs", {}, 301, None),
    ]
    for method, target, headers, want, body in plan:
        conn.request(method, target, headers=headers)
        r = conn.getresponse()
        got = r.read()
        check(r.status == want, f"{method} {target} {headers}: {r.status}, not {want}")
        check(body is None or got == body, f"{method} {target}: body {got[:80]!r}")
        check(conn.sock is sock, f"{method} {target}: the connection was not kept")
    check(r.headers["Location"] == "/docs/", f"Location {r.headers}")
    conn.close()

    # Pipelined: 60 requests in one write, answered in order.
    kinds = [("/hello.txt", 200, hello), ("/missing", 404, None), ("/with-index/", 200, b"<h1>index</h1>\n")]
    data = b"".join(f"GET {kinds[i % 3][0]} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(60))
    with connect() as s:
        s.sendall(data + b"GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        for i in range(60):
            status, _, body = read_response(f)
            target, want, want_body = kinds[i % 3]
            check(status == want and (want_body is None or body == want_body), f"pipelined #{i} {target}: {status}")
        status, headers, body = read_response(f)
        check(status == 200 and headers.get("connection") == "close" and body == hello, "the closing request")
        check(f.read(1) == b"", "the connection stays open after Connection: close")

    # HTTP/1.0: closed after the response unless asked to keep it.
    (status, headers, _), closed = exchange(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    check(status == 200 and closed and headers.get("connection") == "close", f"HTTP/1.0: {headers}")
    with connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        f = s.makefile("rb")
        _, headers, _ = read_response(f)
        check(headers.get("connection") == "keep-alive", f"HTTP/1.0 keep-alive: {headers}")
        s.sendall(b"HEAD /hello.txt HTTP/1.0\r\n\r\n")
        status, _, _ = read_response(f, head=True)
        check(status == 200 and f.read(1) == b"", "HTTP/1.0 second request, then closed")

    # A body is read and thrown away: the next request on the connection is still understood;
    # with Expect: 100-continue the server says so before the body comes.
    with connect() as s:
        f = s.makefile("rb")
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        status, _, _ = read_response(f)
        check(status == 100, f"Expect: 100-continue got {status}")
        s.sendall(b"x" * 5000 + b"GET /missing HTTP/1.1\r\nConnection: close\r\n\r\n")
        check(read_response(f)[:1] == (200,) and read_response(f)[0] == 404, "after a body")
    print(f"python: urllib.request and http.client ok; 61 pipelined answered in order")


def safety_case():
    secret = os.path.join(os.path.dirname(root), "secret.txt")
    targets = {
        "/../secret.txt": 404,
        "/docs/../../secret.txt": 404,
        "/./../secret.txt": 404,
        "/%2e%2e/secret.txt": 404,
        "/%2E%2E/secret.txt": 404,
        "/.%2e/secret.txt": 404,
        "/%2e%2e%2fsecret.txt": 404,
        "/docs%2f..%2f..%2fsecret.txt": 404,
        "/..%5csecret.txt": 404,
        "/..\\secret.txt": 404,
        "/docs\\..\\..\\secret.txt": 404,
        "/hello.txt%00": 404,
        "/%00/../secret.txt": 404,
        "/leak.txt": 403,
        "/up/secret.txt": 403,
        "/up/": 403,
        "/up": 403,
        "/docs/sub/out.txt": 403,
        secret: 404,
        "/" + secret: 404,
        "http://example.com/../secret.txt": 404,
        "secret.txt": 400,
        "/%zz": 400,
    }
    for target, want in targets.items():
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        (status, _, body), _ = exchange(request.encode())
        check(SECRET not in body, f"GET {target}: the secret file was sent")
        check(status == want, f"GET {target}: {status}, not {want}")
    print(f"safety: {len(targets)} targets refused (400, 403, 404), none sent the file outside the root")


def bad_case():
    cases = [
        (b"garbage\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /a\x00b HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"BREW / HTTP/1.1\r\n\r\n", 501),
        (b"POST /hello.txt HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 501),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /" + b"a" * 100000, 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"y" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        # A body past the limit, still being sent: the 413 arrives whole, no reset destroys it.
        (b"GET / HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n" + b"z" * 200000, 413),
    ]
    for data, want in cases:
        (status, headers, body), closed = exchange(data)
        check(status == want, f"{data[:50]!r}: {status}, not {want}")
        check(closed and headers.get("connection") == "close", f"{data[:50]!r}: not closed after {status}")
        check(b"Error code: %d" % want in body, f"{data[:50]!r}: body {body[:200]!r}")
    # A client that gives up mid-request (closes its side): the server closes too, no answer.
    with connect() as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHo")
        s.shutdown(socket.SHUT_WR)
        check(s.recv(100) == b"", "a half-sent request got an answer")
    # And the server is still serving.
    (status, _, _), _ = exchange(b"GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(status == 200, f"after the bad requests: {status}")
    print(f"bad: {len(cases)} bad requests each answered with its status line and closed")


def stalled_case():
    count = 300
    started = time.monotonic()
    stalled = []
    for i in range(count):
        s = connect()
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: stalled\r\nX-Part: " + b"%d" % i)
        stalled.append(s)
    # All of them open and silent: another client is served at once, even by a sync server.
    t = time.monotonic()
    (status, _, _), _ = exchange(b"GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
    answered_in = time.monotonic() - t
    check(status == 200 and answered_in < 2.0, f"a client among {count} stalled: {status} in {answered_in:.2f}s")
    # A pool may grow under the burst of their first turns, but not to a thread each.
    threads = status_of(pid, "Threads")
    check(threads < count, f"{threads} server threads with {count} stalled clients: one each?")
    # Each stalled connection is dropped at its deadline (the idle timeout after its last byte).
    limit = started + timeout + 5
    for s in stalled:
        s.settimeout(max(0.1, limit - time.monotonic()))
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            fail(f"a stalled client was not dropped within --timeout {timeout}s + 5s")
        check(data == b"", f"a stalled client got {data!r}")
        s.close()
    dropped_in = time.monotonic() - started
    # A dribbler, a byte every timeout/4, each well within the idle timeout: its request is
    # cut off (408) once --timeout has passed since its first byte.
    gap = timeout / 4
    dribbled, t0 = b"", time.monotonic()
    with connect() as dribbler:
        dribbler.settimeout(gap)
        while time.monotonic() - t0 < timeout * 3:
            try:
                dribbler.sendall(b"G")
                got = dribbler.recv(4096)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not got:
                break
            dribbled += got
        else:
            fail("a dribbling client was not cut off within 3 x --timeout")
    cut_off = time.monotonic() - t0
    check(dribbled.startswith(b"HTTP/1.1 408 "), f"the dribbler got {dribbled[:80]!r}")
    check(timeout * 0.9 <= cut_off <= timeout + gap + 3, f"the dribbler was cut off after {cut_off:.1f}s")
    print(
        f"stalled: {count} stalled clients: another answered in {answered_in * 1000:.0f} ms, "
        f"server threads {threads}, all dropped {dropped_in:.1f}s after they stalled; "
        f"a dribbler cut off (408) {cut_off:.1f}s after its first byte (--timeout {timeout:g})"
    )


def rss_case():
    size = os.path.getsize(os.path.join(root, "big.bin"))
    before = status_of(pid, "VmRSS")
    peak, received = before, 0
    with connect() as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        line = f.readline()
        check(line.startswith(b"HTTP/1.1 200 "), f"big.bin: {line!r}")
        while True:
            field = f.readline()
            if field == b"\r\n":
                break
            if field.lower().startswith(b"content-length:"):
                check(int(field.split(b":")[1]) == size, f"big.bin: {field!r}")
        buf = bytearray(1 << 20)
        next_sample = 0
        while True:
            n = f.readinto(buf)
            if not n:
                break
            received += n
            if received >= next_sample:
                peak = max(peak, status_of(pid, "VmRSS"))
                next_sample += 32 << 20
    check(received == size, f"big.bin: {received} bytes of {size}")
    growth = peak - before
    check(growth < 16 * 1024, f"the server's RSS grew by {growth} KiB while it sent {size >> 20} MiB")
    print(f"rss: {size >> 20} MiB sent; server VmRSS {before} KiB before, {peak} KiB at most (+{growth} KiB)")


{"python": python_case, "safety": safety_case, "bad": bad_case, "stalled": stalled_case, "rss": rss_case}[case]()
