#!/usr/bin/env python3
# server.max_connections: a thousand idle connections do not stop the
# gateway from serving; past the cap a new connection gets a 503 (RECGATE.5030)
# straight away and is closed, and once some connections go, new ones are
# served again; a closed connection stops counting at once.

import errno
import json
import os
import resource
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

IDLE = 1000
CAP = 200
EXTRA = 30
ROUNDS = 300
RECORD = "rec-success-1"


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def still_open(sock):
    """True while the peer has neither closed nor reset the connection and
    sent nothing: a non-blocking peek finds no data and no end of file."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False if data == b"" else "data: %r" % data


def read_all(sock, timeout=5):
    """Everything the peer sends until it closes: (bytes, error or None)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks), None
            chunks.append(data)
    except OSError as e:
        return b"".join(chunks), e


class SafeConnections(harness.RecgateTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        limit = raise_nofile(IDLE + 512)
        if limit < IDLE + 256:
            raise unittest.SkipTest("open-file limit %d too low" % limit)

    def base_config(self):
        # Not a timing test: a loaded machine must not turn a slow
        # upstream answer into a 504 here.
        cfg = super().base_config()
        cfg["upstream.timeout"] = "10s"
        return cfg

    def open_idle(self, gw, n):
        socks = []
        for _ in range(n):
            s = socket.create_connection((gw.host, gw.port), 5)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        return socks

    def assert_503(self, data, err, what):
        self.assertIsNone(err, "%s: %r after %r" % (what, err, data))
        head, sep, body = data.partition(b"\r\n\r\n")
        self.assertTrue(sep, "%s: no complete answer: %r" % (what, data))
        lines = head.decode("latin-1").split("\r\n")
        self.assertTrue(lines[0].startswith("HTTP/1.1 503 "),
                        "%s: %r" % (what, lines[0]))
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(int(headers.get("content-length", -1)), len(body))
        doc = json.loads(body)
        self.assertEqual(doc.get("error_code"), "RECGATE.5030", body)
        self.assertTrue(doc.get("error_msg"), body)
        # A fresh id, like every other answer's, in header and body.
        self.assertRegex(headers.get("x-request-id", ""), r"^[0-9a-f]{32}$",
                         "%s: %r" % (what, head))
        self.assertEqual(doc.get("request_id"), headers["x-request-id"],
                         body)
        return headers["x-request-id"]

    def test_thousand_idle_connections_do_not_block_service(self):
        """1,000 connections that send nothing, held open: a normal
        request still gets its record, the idle ones stay open, and some
        of them can still be used for a request."""
        gw = self.start_recgate()
        socks = self.open_idle(gw, IDLE)
        time.sleep(0.5)

        started = time.monotonic()
        status, headers, body = gw.get(harness.record_path(RECORD),
                                       timeout=5)
        self.assertEqual(status, 200, body)
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual(gw.get("/healthz")[0], 200)

        closed = [i for i, s in enumerate(socks) if still_open(s) is not True]
        self.assertEqual(closed, [], "idle connections closed early")
        for s in socks[::100]:
            s.settimeout(5)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % harness.record_path(RECORD).encode())
            data = s.recv(65536)
            self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertTrue(gw.running())

    def test_connections_past_the_cap_get_503_and_are_closed(self):
        """server.max_connections = 200: with 200 open, each further
        connection reads a whole 503 RECGATE.5030 answer, with a fresh
        request id in X-Request-Id and in the body, and then end of file,
        whether it sent a request or not; the 200 stay open and usable;
        after some close, a new request is served."""
        gw = self.start_recgate({"server.max_connections": str(CAP)})
        # The start-up probe's closed connection leaves the count at the
        # guard's next sweep (every 250 ms).
        time.sleep(0.6)
        held = self.open_idle(gw, CAP)
        time.sleep(0.5)    # all accepted and counted

        ids = set()
        for i in range(EXTRA):
            s = socket.create_connection((gw.host, gw.port), 5)
            self.addCleanup(s.close)
            if i % 2:
                # A real client sends its request at once.
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data, err = read_all(s)
            what = "connection %d past the cap (%s)" % (
                i, "with a request" if i % 2 else "idle")
            ids.add(self.assert_503(data, err, what))
        self.assertEqual(len(ids), EXTRA, "request ids repeat: %s" % ids)
        # The normal client path sees the same.
        conn = gw.connection(timeout=5)
        self.addCleanup(conn.close)
        reply = harness.http_request(conn, "GET", "/healthz")
        self.assertErrorReply(reply, 503, "RECGATE.5030")
        self.assertNotIn(reply[1]["x-request-id"], ids)

        closed = [i for i, s in enumerate(held) if still_open(s) is not True]
        self.assertEqual(closed, [], "connections within the cap closed")
        s = held[0]
        s.settimeout(5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200 "))

        for s in held[:20]:
            s.close()
        ok = harness.wait_for(
            lambda: gw.get(harness.record_path(RECORD), timeout=5)[0] == 200,
            5, 0.3)
        self.assertTrue(ok, "no request served after 20 connections closed")
        self.assertTrue(gw.running())
        warnings = [l for l in gw.log_lines()
                    if "max_connections" in l.get("msg", "")]
        self.assertTrue(warnings, "the refusals were not logged")

    def test_closed_connections_leave_the_count_at_once(self):
        """server.max_connections = 50: 300 rounds one after the other,
        each a fresh connection that sends one request and closes, only
        one open at a time: every one is served, none refused as if the
        closed ones still counted."""
        gw = self.start_recgate({"server.max_connections": "50"})
        statuses = []
        for _ in range(ROUNDS):
            statuses.append(gw.get("/healthz", timeout=5)[0])
        refused = [i for i, s in enumerate(statuses) if s != 200]
        self.assertEqual(refused, [], "rounds not answered 200: %d of %d"
                         % (len(refused), ROUNDS))
        self.assertTrue(gw.running())


if __name__ == "__main__":
    harness.main()
