# The helpers every stream client script of `echo.rs` starts with: argv[1] is the family,
# argv[2] the address the server announced.
import os, socket, sys, threading, time
family, addr = sys.argv[1], sys.argv[2]

def connect():
    if family == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(addr)
        return s
    host, _, port = addr.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=10)

def recv_exact(s, n, what):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(65536, n - len(buf)))
        if not chunk:
            sys.exit(f"{what}: the server closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)

def check(what, sent, got):
    if got != sent:
        at = next((i for i, (a, b) in enumerate(zip(sent, got)) if a != b), min(len(sent), len(got)))
        sys.exit(f"{what}: sent {len(sent)} bytes, got {len(got)} back, first difference at byte {at}")
