#!/usr/bin/env python3
# Every answer is framed so that a kept-alive client stays in step: HEAD
# gets the headers of GET, Content-Length included, and no body bytes; a
# CONNECT gets a 405 with its Content-Length and the connection closed;
# answers sent while the gateway drains after SIGTERM say
# Connection: close.  Read from raw sockets, byte for byte, since
# http.client forgives what a stricter client would trip over.

import json
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RECORD = "rec-success-1"
# Headers that may differ between two answers to the same request.
PER_ANSWER = ("date", "x-request-id")
STOP_LINE = "stopping: draining requests in flight"


class RawConnection:
    """One client connection: requests written as bytes, answers read as
    bytes and parsed strictly (a status line, headers, then exactly
    Content-Length body bytes unless the answer has none)."""

    def __init__(self, gw, timeout=5):
        self.sock = socket.create_connection((gw.host, gw.port), timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, method, target, headers=None, version="1.1"):
        lines = ["%s %s HTTP/%s" % (method, target, version),
                 "Host: recgate"]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed; unread: %r" % self.buf)
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_answer(self, has_body=True):
        """(status, lower-case headers, body).  has_body=False for an
        answer to HEAD, or a 304: headers only, whatever they say."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        match = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", lines[0])
        if not match:
            raise AssertionError("not a status line: %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise AssertionError("not a header line: %r" % line)
            key = name.strip().lower()
            if key in headers:
                raise AssertionError("header %s twice" % key)
            headers[key] = value.strip()
        body = b""
        if has_body:
            if "content-length" not in headers:
                raise AssertionError("answer without Content-Length: %r"
                                     % head)
            body = self._take(int(headers["content-length"]))
        return int(match.group(1)), headers, body

    def exchange(self, method, target, headers=None):
        self.send(method, target, headers)
        return self.read_answer(has_body=method != "HEAD")

    def nothing_more(self, wait=0.3):
        """True when no byte beyond the answers read so far arrives within
        wait seconds (and the connection is still open)."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(5)
        self.buf += data
        return False

    def read_to_end(self, timeout=5):
        """Every byte until the gateway closes the connection; raises
        socket.timeout when it keeps it open."""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536)
            if not data:
                out, self.buf = self.buf, b""
                return out
            self.buf += data


class HeadFraming(harness.RecgateTestCase):

    def connect(self, gw):
        conn = RawConnection(gw)
        self.addCleanup(conn.close)
        return conn

    def assert_head_matches_get(self, conn, target, same_length=True):
        """HEAD, then GET on the same connection: the HEAD answer has the
        GET answer's status and headers, a Content-Length of the GET
        body's length, and no body; the GET answer follows at once."""
        h_status, h_headers, _ = conn.exchange("HEAD", target)
        self.assertTrue(conn.nothing_more(),
                        "HEAD %s: bytes after the headers: %r"
                        % (target, conn.buf[:200]))
        g_status, g_headers, g_body = conn.exchange("GET", target)

        self.assertEqual(h_status, g_status, target)
        self.assertIn("content-length", h_headers, target)
        if same_length:
            self.assertEqual(int(h_headers["content-length"]), len(g_body),
                             target)
        else:
            self.assertGreater(int(h_headers["content-length"]), 0, target)
        self.assertGreater(len(g_body), 0, target)
        for name in PER_ANSWER:
            self.assertIn(name, h_headers, target)
        drop = PER_ANSWER + ("content-length", "x-cache")
        self.assertEqual({k: v for k, v in h_headers.items() if k not in drop},
                         {k: v for k, v in g_headers.items() if k not in drop},
                         target)
        self.assertTrue(conn.nothing_more(), target)
        return h_headers, g_headers, g_body

    def test_head_of_a_record_miss_then_hit(self):
        """HEAD of a record not yet cached (MISS) and then cached (HIT),
        each followed by a GET on one connection: Content-Length is the
        record's length, no body bytes, and the GET reads cleanly."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        conn = self.connect(gw)
        path = harness.record_path(RECORD)
        expected = harness.compact_json(harness.load_fixture(RECORD))

        head, get, body = self.assert_head_matches_get(conn, path)
        self.assertEqual(head["x-cache"], "MISS")
        self.assertEqual(get["x-cache"], "HIT")
        self.assertEqual(body, expected)
        self.assertEqual(int(head["content-length"]), len(expected))

        head, get, body = self.assert_head_matches_get(conn, path)
        self.assertEqual((head["x-cache"], get["x-cache"]), ("HIT", "HIT"))
        self.assertEqual(body, expected)
        self.assertEqual(self.upstream_count(), 1)

    def test_head_of_errors_and_small_routes(self):
        """Errors (404 route, 400 id, the cloud's 404), /healthz, /readyz
        and /metrics: HEAD carries the GET answer's headers with its
        Content-Length and no body, and the GET answer follows on the
        same kept-alive connection."""
        gw = self.start_recgate()
        targets = ["/no/such/route",
                   harness.record_path("bad.id"),
                   harness.record_path("rec-does-not-exist"),
                   "/healthz", "/readyz"]
        for target in targets:
            with self.subTest(target=target):
                self.assert_head_matches_get(self.connect(gw), target)
        # Its counters move between the two requests, so only the
        # presence of a length can be compared.
        conn = self.connect(gw)
        self.assert_head_matches_get(conn, "/metrics", same_length=False)

        _, headers, body = conn.exchange("GET", "/no/such/route")
        self.assertEqual(json.loads(body)["error_code"], "RECGATE.4040")
        self.assertEqual(headers["content-type"], "application/json")

    def test_not_modified_has_no_length_and_no_body(self):
        """A 304 (HEAD or GET) has neither a Content-Length nor a body, and
        the next answer on the connection reads cleanly."""
        gw = self.start_recgate()
        conn = self.connect(gw)
        path = harness.record_path(RECORD)
        _, headers, _ = conn.exchange("GET", path)
        etag = {"If-None-Match": headers["etag"]}

        for method in ("HEAD", "GET"):
            conn.send(method, path, etag)
            status, headers, _ = conn.read_answer(has_body=False)
            self.assertEqual(status, 304, method)
            self.assertNotIn("content-length", headers, method)
            self.assertTrue(conn.nothing_more(), method)
        status, _, body = conn.exchange("GET", "/healthz")
        self.assertEqual((status, body), (200, b'{"status":"ok"}'))


# The headers of an answer with a record: recgate's own (written with the
# status line, see reply.h) and evhttp's (Date, Content-Length).
RECORD_HEADERS = {"content-type", "x-request-id", "x-cache", "cache-control",
                  "etag", "date", "content-length"}


class RecordHeaders(harness.RecgateTestCase):

    def test_record_answers_carry_each_header_once(self):
        """A miss, an in-process hit, a hit from Redis in a second
        gateway, a 304 and an HTTP/1.0 keep-alive request: the status
        line is exactly the status and its reason, and each header comes
        once (RawConnection refuses a header seen twice), with the
        documented values."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        other = self.start_recgate({"cache.ttl": "1h"})
        path = harness.record_path(RECORD)
        expected = harness.compact_json(harness.load_fixture(RECORD))
        conn = RawConnection(gw)
        self.addCleanup(conn.close)
        answers = {}

        for label, target in (("miss", gw), ("hit", gw), ("redis", other)):
            c = conn if target is gw else RawConnection(target)
            if c is not conn:
                self.addCleanup(c.close)
            status, headers, body = c.exchange(
                "GET", path, {"X-Request-Id": "client-id-%s" % label})
            self.assertEqual(c.status_line, "HTTP/1.1 200 OK", label)
            self.assertEqual(set(headers), RECORD_HEADERS, label)
            self.assertEqual(body, expected, label)
            self.assertEqual(int(headers["content-length"]), len(body))
            self.assertEqual(headers["x-request-id"], "client-id-%s" % label)
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(headers["cache-control"], "max-age=3600")
            answers[label] = headers
        self.assertEqual([answers[k]["x-cache"] for k in answers],
                         ["MISS", "HIT", "HIT"])
        self.assertEqual(len({answers[k]["etag"] for k in answers}), 1)

        conn.send("GET", path, {"If-None-Match": answers["hit"]["etag"]})
        status, headers, _ = conn.read_answer(has_body=False)
        self.assertEqual(conn.status_line, "HTTP/1.1 304 Not Modified")
        self.assertEqual(set(headers), RECORD_HEADERS - {"content-length"})
        self.assertTrue(conn.nothing_more())

        conn.send("GET", path, {"Connection": "keep-alive"}, version="1.0")
        status, headers, body = conn.read_answer()
        self.assertEqual(conn.status_line, "HTTP/1.0 200 OK")
        self.assertEqual(set(headers), RECORD_HEADERS | {"connection"})
        self.assertEqual(headers["connection"].lower(), "keep-alive")
        self.assertEqual(body, expected)
        status, _, body = conn.exchange("GET", "/healthz")
        self.assertEqual((status, body), (200, b'{"status":"ok"}'))
        self.assertEqual(self.upstream_count(), 1)


# Far above a hit's time even in the sanitizer build, far below the
# delayed ACK (40 ms) that an answer held back by Nagle's algorithm waits.
HELD_BACK_MS = 25


def median_ms(times):
    return sorted(times)[len(times) // 2] * 1000


class NotHeldBack(harness.RecgateTestCase):
    """Answers that go out in more than one write (over libevent's 16 KiB
    a write, or several pipelined ones) are not held back on a kept-alive
    connection waiting for the client's delayed ACK."""

    def test_large_hits_on_one_connection(self):
        big = dict(harness.load_fixture(RECORD), id="rec-big",
                   output="x" * 40000)
        self.sim.put_record("rec-big", body=big)
        conn = RawConnection(self.start_recgate())
        self.addCleanup(conn.close)
        path = harness.record_path("rec-big")
        conn.exchange("GET", path)
        times = []
        for _ in range(9):
            started = time.monotonic()
            status, headers, body = conn.exchange("GET", path)
            times.append(time.monotonic() - started)
            self.assertEqual((status, headers["x-cache"]), (200, "HIT"))
            self.assertGreater(len(body), 40000)
        self.assertLess(median_ms(times), HELD_BACK_MS, times)

    def test_pipelined_hits(self):
        conn = RawConnection(self.start_recgate())
        self.addCleanup(conn.close)
        path = harness.record_path(RECORD)
        request = ("GET %s HTTP/1.1\r\nHost: recgate\r\n\r\n" % path).encode()
        conn.exchange("GET", path)
        times = []
        for _ in range(9):
            started = time.monotonic()
            conn.sock.sendall(request * 3)
            answers = [conn.read_answer() for _ in range(3)]
            times.append(time.monotonic() - started)
            self.assertEqual([a[0] for a in answers], [200, 200, 200])
        self.assertLess(median_ms(times), HELD_BACK_MS, times)
        self.assertTrue(conn.nothing_more())


class ConnectFraming(harness.RecgateTestCase):

    def connect_answer(self, target):
        gw = self.start_recgate()
        conn = RawConnection(gw)
        self.addCleanup(conn.close)
        conn.send("CONNECT", target)
        status, headers, body = conn.read_answer()
        try:
            rest = conn.read_to_end()
        except socket.timeout:
            self.fail("the connection stayed open after the CONNECT answer")
        self.assertEqual(rest, b"", "bytes after the answer")
        self.assertEqual(self.upstream_count(), 0)
        return status, headers, body

    def test_connect_to_the_record_route_gets_405_and_close(self):
        """CONNECT on a record path: 405 RECGATE.4050 with Allow, a
        Content-Length equal to the body, Connection: close, and then the
        gateway closes the connection."""
        status, headers, body = self.connect_answer(
            harness.record_path(RECORD))
        self.assertErrorReply((status, headers, body), 405, "RECGATE.4050")
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertEqual(headers.get("connection"), "close")
        self.assertRegex(headers["x-request-id"], r"^[0-9a-f]{32}$")

    def test_connect_to_a_host_is_framed_and_closed(self):
        """The proxy form, CONNECT host:port: an error with a
        Content-Length equal to the body and Connection: close."""
        status, headers, body = self.connect_answer("localhost:443")
        self.assertIn(status, (404, 405), body)
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertEqual(headers.get("connection"), "close")
        self.assertIn(json.loads(body)["error_code"],
                      ("RECGATE.4040", "RECGATE.4050"))


class DrainFraming(harness.RecgateTestCase):

    LATENCY_MS = 2000

    def test_answers_while_draining_say_connection_close(self):
        """SIGTERM while a slow request is in flight on a kept-alive
        connection: its answer is a 200 with Connection: close and the
        connection is then closed; a request sent meanwhile on another
        kept-alive connection is answered with Connection: close too."""
        gw = self.start_recgate({"server.drain_timeout": "20s",
                                 "upstream.timeout": "15s",
                                 "server.request_timeout": "20s"})
        slow, idle = RawConnection(gw), RawConnection(gw)
        self.addCleanup(slow.close)
        self.addCleanup(idle.close)
        for conn in (slow, idle):
            status, headers, _ = conn.exchange("GET", "/healthz")
            self.assertEqual(status, 200)
            self.assertNotIn("connection", headers, "not kept alive")

        self.sim.fault(kind="latency", ms=self.LATENCY_MS, record=RECORD)
        slow.send("GET", harness.record_path(RECORD))
        self.assertTrue(harness.wait_for(
            lambda: self.upstream_count(RECORD) == 1, 5, 0.02),
            "the fetch did not reach the cloud")
        gw.proc.send_signal(signal.SIGTERM)
        self.assertTrue(harness.wait_for(
            lambda: any(l.get("msg") == STOP_LINE for l in gw.log_lines()),
            2, 0.01), "the drain did not begin")

        status, headers, body = idle.exchange("GET", "/healthz")
        self.assertEqual((status, body), (200, b'{"status":"ok"}'))
        self.assertEqual(headers.get("connection"), "close")

        status, headers, body = slow.read_answer()
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(headers.get("connection"), "close")
        for conn in (idle, slow):
            try:
                self.assertEqual(conn.read_to_end(), b"")
            except socket.timeout:
                self.fail("a connection stayed open after its answer "
                          "said Connection: close")
        self.assertEqual(gw.wait_exit(20), 0)


if __name__ == "__main__":
    harness.main()
