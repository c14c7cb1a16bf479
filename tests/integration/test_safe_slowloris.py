#!/usr/bin/env python3
# server.read_timeout and server.keepalive_timeout: a client trickling its
# request a byte at a time is cut off about read_timeout after its first
# byte while other clients are served; an idle kept-alive connection is
# closed after keepalive_timeout.

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RECORD = "rec-success-1"
BYTE_EVERY_S = 0.3
# Long enough that at one byte per 0.3 s it would take ~40 s to send.
TRICKLED = (b"GET /v2/%s/script-execution-records/%s HTTP/1.1\r\n"
            b"Host: recgate.test\r\nUser-Agent: slowloris\r\n"
            b"X-Padding: %s\r\n\r\n" % (harness.PROJECT_ID.encode(),
                                        RECORD.encode(), b"p" * 40))
CUT_MIN_S, CUT_MAX_S = 1.5, 4.0


def peer_closed(sock):
    """(closed, data): whether the peer closed or reset the connection,
    and any bytes it sent, without blocking."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, data
            data += chunk
    except BlockingIOError:
        return False, data
    except OSError:
        return True, data
    finally:
        sock.settimeout(timeout)


class Trickler(threading.Thread):
    """Sends payload one byte every BYTE_EVERY_S on sock, until the peer
    closes the connection or the payload runs out."""

    def __init__(self, sock, payload):
        super().__init__(daemon=True)
        self.sock, self.payload = sock, payload
        self.first_byte_at = None
        self.closed_at = None
        self.sent = 0
        self.received = b""
        self.started_event = threading.Event()

    def run(self):
        for i in range(len(self.payload)):
            try:
                self.sock.send(self.payload[i:i + 1])
            except OSError:
                self.closed_at = time.monotonic()
                return
            if self.first_byte_at is None:
                self.first_byte_at = time.monotonic()
                self.started_event.set()
            self.sent += 1
            deadline = time.monotonic() + BYTE_EVERY_S
            while time.monotonic() < deadline:
                closed, data = peer_closed(self.sock)
                self.received += data
                if closed:
                    self.closed_at = time.monotonic()
                    return
                time.sleep(0.02)

    @property
    def cut_after(self):
        if self.closed_at is None or self.first_byte_at is None:
            return None
        return self.closed_at - self.first_byte_at


class SafeSlowloris(harness.RecgateTestCase):

    def start(self):
        return self.start_recgate({"server.read_timeout": "2s",
                                   "server.keepalive_timeout": "60s"})

    def assert_cut_in_time(self, t, gw):
        t.join(CUT_MAX_S + 10)
        self.assertFalse(t.is_alive(), "the trickling client was never cut")
        self.assertIsNotNone(t.cut_after,
                             "not cut after %d bytes (%r)" % (t.sent,
                                                              t.received))
        self.assertGreaterEqual(t.cut_after, CUT_MIN_S, t.cut_after)
        self.assertLessEqual(t.cut_after, CUT_MAX_S, t.cut_after)
        self.assertLess(t.sent, len(t.payload))
        # Whatever was sent before the close is not a record.
        self.assertNotIn(b"HTTP/1.1 200", t.received)
        self.assertTrue(gw.running())

    def test_trickling_headers_are_cut_at_the_read_timeout(self):
        """One byte every 0.3 s: cut off 1.5-4 s after the first byte
        (server.read_timeout = 2s); meanwhile a normal request is served
        at once."""
        gw = self.start()
        sock = socket.create_connection((gw.host, gw.port), 5)
        self.addCleanup(sock.close)
        t = Trickler(sock, TRICKLED)
        t.start()
        self.assertTrue(t.started_event.wait(5))

        time.sleep(0.8)
        for _ in range(3):
            started = time.monotonic()
            status, _, body = gw.get(harness.record_path(RECORD), timeout=5)
            self.assertEqual(status, 200, body)
            self.assertLess(time.monotonic() - started, 0.5)
        self.assertIsNone(t.closed_at, "cut off before the read timeout")

        self.assert_cut_in_time(t, gw)
        self.assertEqual(self.upstream_count(), 1)
        self.assertEqual(gw.get("/healthz")[0], 200)

    def test_trickled_second_request_on_a_kept_alive_connection(self):
        """The read deadline starts again with the first byte of each
        request: a connection that was served once and then trickles its
        next request is cut about read_timeout after that first byte."""
        gw = self.start()
        sock = socket.create_connection((gw.host, gw.port), 5)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        self.assertTrue(first.startswith(b"HTTP/1.1 200 "), first)
        time.sleep(2.5)    # longer than read_timeout, idle: not a request
        closed, data = peer_closed(sock)
        self.assertFalse(closed, "idle connection cut by the read timeout")
        t = Trickler(sock, TRICKLED)
        t.start()
        self.assert_cut_in_time(t, gw)

    def test_trickled_body_is_cut_at_the_read_timeout(self):
        """Whole headers at once, then the announced body a byte every
        0.3 s (a slow POST): cut about read_timeout after the first
        byte, the same as trickled headers."""
        gw = self.start()
        sock = socket.create_connection((gw.host, gw.port), 5)
        self.addCleanup(sock.close)
        head = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n"
                b"Content-Type: application/json\r\n\r\n"
                % harness.record_path(RECORD).encode())
        t = Trickler(sock, b"x" * 200)
        sock.sendall(head)
        t.first_byte_at = time.monotonic()
        t.start()
        self.assert_cut_in_time(t, gw)
        self.assertEqual(self.upstream_count(), 0)

    def test_many_tricklers_do_not_stop_service(self):
        """Twenty trickling clients at once are all cut in time, and a
        normal client is served throughout."""
        gw = self.start()
        threads = []
        for _ in range(20):
            sock = socket.create_connection((gw.host, gw.port), 5)
            self.addCleanup(sock.close)
            t = Trickler(sock, TRICKLED)
            t.start()
            threads.append(t)
        for t in threads:
            self.assertTrue(t.started_event.wait(5))
        started = time.monotonic()
        while any(t.is_alive() for t in threads) and \
                time.monotonic() - started < CUT_MAX_S + 5:
            t0 = time.monotonic()
            self.assertEqual(gw.get("/healthz", timeout=5)[0], 200)
            self.assertLess(time.monotonic() - t0, 0.5)
            time.sleep(0.2)
        for t in threads:
            self.assert_cut_in_time(t, gw)

    def test_idle_keepalive_connection_is_closed(self):
        """server.keepalive_timeout = 2s: after one answer the idle
        connection stays open for about 2 s and is closed by ~4 s."""
        gw = self.start_recgate({"server.keepalive_timeout": "2s",
                                 "server.read_timeout": "10s"})
        conn = gw.connection(timeout=5)
        self.addCleanup(conn.close)
        status, headers, _ = harness.http_request(
            conn, "GET", harness.record_path(RECORD))
        self.assertEqual(status, 200)
        answered = time.monotonic()
        sock = conn.sock
        self.assertIsNotNone(sock, "the gateway did not keep the "
                             "connection alive")
        closed_at = harness.wait_for(
            lambda: peer_closed(sock)[0] and time.monotonic(), 6, 0.05)
        self.assertTrue(closed_at, "idle connection still open after 6 s")
        idle = closed_at - answered
        self.assertGreaterEqual(idle, 1.5, "closed after only %.2f s" % idle)
        self.assertLessEqual(idle, 4.0, "closed after %.2f s" % idle)
        self.assertTrue(gw.running())
        self.assertEqual(gw.get("/healthz")[0], 200)


if __name__ == "__main__":
    harness.main()
