#!/usr/bin/env python3
"""Count-exact HTTP/1.1 client for spec/bench/run.sh.

    client.py [--head] HOST:PORT PATH N [EXPECT_BYTES]

Sends exactly N GET requests for PATH, one after the other, on a single
keep-alive connection, and reads each response in full (Content-Length
framing) before sending the next. Exits 0 only if all N answered 200 with a
body of EXPECT_BYTES (when given); otherwise prints what went wrong on
stderr and exits 1. wrk runs for a duration, not a count, so the callgrind
and strace measurements use this instead: their per-request figures divide
by a request count that has to be exact. --head prints the head of the
last response on stdout (the script checks who answered).
"""
import socket
import sys

TIMEOUT_S = 60.0  # generous: the proxy may be running under callgrind


def fail(msg):
    sys.stderr.write("client: %s\n" % msg)
    sys.exit(1)


def main():
    args = sys.argv[1:]
    show_head = bool(args) and args[0] == "--head"
    if show_head:
        args = args[1:]
    if len(args) not in (3, 4):
        fail("usage: client.py [--head] HOST:PORT PATH N [EXPECT_BYTES]")
    host, port = args[0].rsplit(":", 1)
    path, n = args[1], int(args[2])
    expect = int(args[3]) if len(args) == 4 else None
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-bench\r\n\r\n"
           % (path, args[0])).encode()

    s = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    head = b""
    for i in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                fail("request %d of %d: connection closed before the response head" % (i + 1, n))
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"200":
            fail("request %d of %d: status line %r" % (i + 1, n, lines[0]))
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"connection" and value.strip().lower() == b"close":
                fail("request %d of %d: proxy closed the keep-alive connection" % (i + 1, n))
        if length is None:
            fail("request %d of %d: no Content-Length (chunked is not expected here)" % (i + 1, n))
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                fail("request %d of %d: connection closed after %d of %d body bytes"
                     % (i + 1, n, len(buf), length))
            buf += chunk
        if expect is not None and length != expect:
            fail("request %d of %d: body of %d bytes, expected %d" % (i + 1, n, length, expect))
        buf = buf[length:]
    s.close()
    if show_head:
        sys.stdout.write(head.decode("latin-1").replace("\r\n", "\n") + "\n")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError) as e:
        fail(str(e))
