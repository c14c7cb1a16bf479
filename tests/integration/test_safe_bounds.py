#!/usr/bin/env python3
# The request-size bounds and the cap on concurrent upstream fetches. Past
# server.max_header_size a request (a long request line, one huge header,
# many headers) gets 400 and its connection is closed, before Redis or the
# cloud; past upstream.max_in_flight a fetch gets 503 RECGATE.5030 with
# Retry-After at once. Either way the gateway keeps serving other clients.

import concurrent.futures
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RECORD = "rec-success-1"
PATH = harness.record_path(RECORD)


def raw_exchange(gw, data, timeout=5):
    """Sends data on a new connection; returns (status or None, everything
    the gateway sent until it closed)."""
    sock = socket.create_connection((gw.host, gw.port), timeout=timeout)
    try:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    reply = b"".join(chunks)
    status = None
    if reply.startswith(b"HTTP/1.1 "):
        status = int(reply[9:12])
    return status, reply


class SafeRequestSize(harness.RecgateTestCase):

    LIMIT = 4096

    def setUp(self):
        super().setUp()
        self.gw = self.start_recgate({"server.max_header_size": "4KiB"})

    def assert_refused_then_serving(self, data):
        status, reply = raw_exchange(self.gw, data)
        self.assertEqual(status, 400, reply[:300])
        self.assertEqual(self.upstream_count(), 0)
        self.assertEqual(self.record_keys(), [])

        status, headers, body = self.gw.get(PATH)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.upstream_count(), 1)

    def test_one_header_over_the_limit(self):
        """A single 8 KB header with a 4 KiB limit: 400."""
        self.assert_refused_then_serving(
            b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"X-Padding: " + b"a" * (2 * self.LIMIT) + b"\r\n\r\n")

    def test_many_small_headers_over_the_limit(self):
        """800 short headers (about 9 KB) with a 4 KiB limit: 400."""
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(800))
        self.assert_refused_then_serving(
            b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            + headers + b"\r\n")

    def test_request_line_over_the_limit(self):
        """A request target of 8 KB with a 4 KiB limit: 400."""
        target = PATH.encode() + b"?q=" + b"a" * (2 * self.LIMIT)
        self.assert_refused_then_serving(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    def test_headers_under_the_limit_are_served(self):
        """Headers totalling about 3 KB with a 4 KiB limit are fine: the
        bound is not stricter than configured."""
        status, headers, body = self.gw.get(
            PATH, headers={"X-Padding": "a" * 3000})
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")

    def test_default_limit_refuses_a_100_kb_header(self):
        """The default (16 KiB) is a bound too."""
        gw = self.start_recgate({"server.max_header_size": None})
        status, reply = raw_exchange(
            gw, b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"X-Padding: " + b"a" * 100000 + b"\r\n\r\n")
        self.assertEqual(status, 400, reply[:300])
        self.assertEqual(self.upstream_count(), 0)
        self.assertEqual(gw.get(PATH)[0], 200)


class SafeFetchCap(harness.RecgateTestCase):

    CAP = 2
    RECORDS = ["cap-%d" % i for i in range(5)]

    def put_records(self):
        fixture = harness.load_fixture(RECORD)
        for record in self.RECORDS:
            self.sim.put_record(record, body=dict(fixture, id=record))

    def test_fetches_past_the_cap_get_503_at_once(self):
        """upstream.max_in_flight = 2, five distinct uncached records
        asked for at once while the cloud takes 1.5 s: two are fetched
        (200), three get 503 RECGATE.5030 with Retry-After straight away,
        and a cached record is served meanwhile."""
        gw = self.start_recgate({"upstream.max_in_flight": str(self.CAP),
                                 "upstream.timeout": "5s"})
        self.assertEqual(gw.get(PATH)[0], 200)
        self.sim.reset()
        self.put_records()
        self.sim.fault(kind="latency", ms=1500)

        def timed_get(record):
            started = time.monotonic()
            reply = gw.get(harness.record_path(record), timeout=15)
            return reply, time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(len(self.RECORDS)) as ex:
            futures = [ex.submit(timed_get, r) for r in self.RECORDS]
            time.sleep(0.5)
            started = time.monotonic()
            status, headers, _ = gw.get(PATH)
            hit_took = time.monotonic() - started
            results = [f.result() for f in futures]

        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-cache"), "HIT")
        self.assertLess(hit_took, 1.0)

        served = [r for r in results if r[0][0] == 200]
        refused = [r for r in results if r[0][0] != 200]
        self.assertEqual(len(served), self.CAP, [r[0][:2] for r in results])
        for reply, took in refused:
            self.assertErrorReply(reply, 503, "RECGATE.5030")
            self.assertTrue(reply[1].get("retry-after", "").isdigit(),
                            reply[1])
            self.assertLess(took, 1.0)
        self.assertEqual(self.upstream_count(), self.CAP)

        # The cap is on fetches at once, not in all: with the others done,
        # a refused record is fetched now.
        self.sim.clear_faults()
        refused_id = [r for r in self.RECORDS
                      if gw.get(harness.record_path(r))[1]
                      .get("x-cache") == "MISS"]
        self.assertEqual(len(refused_id), len(self.RECORDS) - self.CAP)


if __name__ == "__main__":
    unittest.main()
