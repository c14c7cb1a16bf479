#!/usr/bin/env python3
# Single-flight across processes for a record that is still running: the
# workers of one gateway and a second gateway on the same Redis share one
# upstream read through the Redis lease and the "done" message, and
# nothing of the running record is stored.  Also with a gateway whose
# Redis answers 200 ms late (SlowLink, a delaying TCP proxy).

import collections
import http.client
import json
import os
import selectors
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLIENTS = 40
LATENCY_MS = 300
RID = "rec-quota-running"


def spread_gets(gateways, path, n, timeout=15):
    """n threads, client i on gateways[i % len(gateways)], each connects,
    waits for all the others, then sends one GET.  Returns dicts with
    gateway, status, headers, body, seconds, error."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        gw = gateways[i % len(gateways)]
        out = {"gateway": i % len(gateways), "status": None, "headers": {},
               "body": b"", "seconds": None, "error": None}
        conn = gw.connection(timeout)
        try:
            conn.connect()
            try:
                barrier.wait(30)
            except threading.BrokenBarrierError:
                pass
            started = time.monotonic()
            out["status"], out["headers"], out["body"] = \
                harness.http_request(conn, "GET", path)
            out["seconds"] = time.monotonic() - started
        except (OSError, http.client.HTTPException) as e:
            out["error"] = repr(e)
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass
        finally:
            conn.close()
            results[i] = out

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class SlowLink:
    """A TCP proxy to Redis that delays everything Redis sends back by a
    fixed time (a Redis some milliseconds away).  One thread moves all the
    bytes, so what Redis sent over several connections arrives in the
    order Redis sent it, only later.  Client-to-Redis traffic passes at
    once."""

    def __init__(self, redis_port, delay_s):
        self.redis_port = redis_port
        self.delay = delay_s
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        due = collections.deque()     # (time, client socket, bytes)
        socks = []

        def drop(client, server):
            for sk in (client, server):
                try:
                    sel.unregister(sk)
                except (KeyError, ValueError):
                    pass
                sk.close()

        while not self.stop_event.is_set():
            timeout = 0.05
            if due:
                timeout = max(0.0, min(timeout, due[0][0] - time.monotonic()))
            for key, _ in sel.select(timeout):
                kind, peer = key.data
                if kind == "accept":
                    client, _ = self.listener.accept()
                    server = socket.create_connection(("127.0.0.1",
                                                       self.redis_port))
                    for sk in (client, server):
                        sk.setsockopt(socket.IPPROTO_TCP,
                                      socket.TCP_NODELAY, 1)
                    sel.register(client, selectors.EVENT_READ,
                                 ("client", server))
                    sel.register(server, selectors.EVENT_READ,
                                 ("server", client))
                    socks += [client, server]
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if kind == "client":
                    if not data:
                        drop(key.fileobj, peer)
                        continue
                    try:
                        peer.sendall(data)
                    except OSError:
                        drop(key.fileobj, peer)
                else:
                    due.append((time.monotonic() + self.delay, peer, data))
                    if not data:
                        sel.unregister(key.fileobj)
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, client, data = due.popleft()
                try:
                    if data:
                        client.sendall(data)
                    else:
                        client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        for sk in socks:
            try:
                sk.close()
            except OSError:
                pass
        sel.close()

    def close(self):
        self.stop_event.set()
        self.thread.join(5)
        self.listener.close()


def metric_sum(gateways, name):
    return sum(gw.metrics().get(name, 0.0) for gw in gateways)


class QuotaRunningAcross(harness.RecgateTestCase):

    def assert_round(self, results, expected_doc):
        errors = [(i, r["error"]) for i, r in enumerate(results)
                  if r["error"]]
        self.assertEqual(errors, [], "clients failed")
        bad = [(r["gateway"], r["status"], r["body"][:200]) for r in results
               if r["status"] != 200]
        self.assertEqual(bad, [], "non-200 answers (gateway, status, body)")
        bodies = {r["body"] for r in results}
        self.assertEqual(len(bodies), 1,
                         "%d different bodies: %r" % (len(bodies), bodies))
        body = bodies.pop()
        self.assertEqual(json.loads(body), expected_doc)
        for r in results:
            self.assertEqual(r["headers"].get("content-type"),
                             "application/json")
            self.assertEqual(r["headers"].get("x-cache"), "MISS")
            self.assertEqual(r["headers"].get("cache-control"), "no-store")
            self.assertTrue(r["headers"].get("x-request-id"))
        return body

    def assert_nothing_stored(self):
        key = harness.record_key(RID)
        self.assertNotIn(key, self.redis.keys("recgate:rec:*"),
                         "the running record was stored")
        self.assertEqual(self.redis.keys("recgate:rec:*%s*" % RID), [])
        self.assertIsNone(self.redis.get(key))

    def lease_key(self):
        return "recgate:lease:%s:%s" % (harness.PROJECT_ID, RID)

    def test_running_record_read_once_per_round_across_processes(self):
        """40 clients spread over a 2-worker gateway and a second gateway
        on the same Redis ask at once for an always-RUNNING record (300 ms
        upstream): all get the same 200, the cloud is read once per round,
        the record is never stored and no lease is left behind."""
        # upstream.timeout 5s: an unreleased lease would live 6 s, so a
        # lease that is gone within 1 s was released, not expired.
        cfg = {"upstream.timeout": "5s", "cache.ttl": "1h"}
        multi = self.start_recgate(dict(cfg, **{"server.workers": "2"}))
        single = self.start_recgate(cfg)
        gateways = [multi, single]

        base = harness.load_fixture("rec-stuck-1")
        self.sim.put_record(RID, body=dict(base, id=RID),
                            running_reads=10 ** 9)
        self.sim.fault(record=RID, kind="latency", ms=LATENCY_MS)
        expected = dict(base, id=RID)
        path = harness.record_path(RID)

        # Round 1.
        results = spread_gets(gateways, path, CLIENTS)
        body1 = self.assert_round(results, expected)
        stats = self.sim.stats()
        self.assertEqual(stats["by_record"].get(RID), 1,
                         "round 1: upstream reads of %s: %s"
                         % (RID, stats["by_record"]))
        self.assertEqual(stats["requests"], 1, stats)
        self.assert_nothing_stored()
        self.assertTrue(
            harness.wait_for(lambda: self.redis.get(self.lease_key()) is None,
                             1.0),
            "lease %s still held after round 1: %r" % (
                self.lease_key(), self.redis.get(self.lease_key())))
        self.assertEqual(
            metric_sum(gateways, 'recgate_upstream_requests_total{code="200"}'),
            1.0)
        # All but the one fetcher shared its read, wherever they were.
        self.assertEqual(metric_sum(gateways, "recgate_coalesced_total"),
                         float(CLIENTS - 1))

        time.sleep(0.5)

        # Round 2: a new read, again exactly one.
        results = spread_gets(gateways, path, CLIENTS)
        body2 = self.assert_round(results, expected)
        self.assertEqual(body2, body1)
        stats = self.sim.stats()
        self.assertEqual(stats["by_record"].get(RID), 2,
                         "round 2: upstream reads of %s: %s"
                         % (RID, stats["by_record"]))
        self.assertEqual(stats["requests"], 2, stats)
        self.assert_nothing_stored()
        self.assertTrue(
            harness.wait_for(lambda: self.redis.get(self.lease_key()) is None,
                             1.0),
            "lease %s still held after round 2" % self.lease_key())
        self.assertEqual(metric_sum(gateways, "recgate_coalesced_total"),
                         float(2 * (CLIENTS - 1)))

        # Nothing but what the contract names lives in Redis: no record
        # key, no lease; the rate limiter's bucket may be there.
        leftover = [k for k in self.redis.keys("recgate:*")
                    if k not in ("recgate:ratelimit",)]
        self.assertEqual(leftover, [])

    def test_waiter_on_a_slower_redis_link_reads_nothing_itself(self):
        """Gateway A reads a running record (upstream latency L) while
        gateway B, whose Redis answers 200 ms late, is asked for it just
        after A's read reached the cloud: B waits for A's "done" message
        and answers A's reading; the cloud is read once per round.  L
        sweeps over the moments at which B's ~200 ms poll (GET the record,
        then SET NX the lease) can be under way when the message comes."""
        cfg = {"upstream.timeout": "5s", "cache.ttl": "1h"}
        gw_a = self.start_recgate(cfg)
        link = SlowLink(self.redis.port, 0.200)
        self.addCleanup(link.close)
        gw_b = self.start_recgate(dict(cfg, **{"redis.url": link.url}))

        base = harness.load_fixture("rec-stuck-1")
        expected = dict(base, id=RID)
        self.sim.put_record(RID, body=expected, running_reads=10 ** 9)
        path = harness.record_path(RID)

        extra = []
        reads = 0
        # From at least 500 ms: B's first look at the lease reaches Redis
        # some 200 ms after B is asked (the GET's answer comes late), and
        # A's read must certainly be under way then for B to be a waiter.
        # A round in which A had its answer less than 250 ms after B was
        # asked proves nothing (a busy host) and is run again.
        for latency in (500, 550, 600, 650, 700, 750, 800, 900, 1000):
            self.sim.clear_faults()
            self.sim.fault(record=RID, kind="latency", ms=latency)
            for attempt in range(3):
                out_a, out_b = {}, {}

                def ask(gw, out):
                    try:
                        out["reply"] = gw.get(path, timeout=15)
                    except (OSError, http.client.HTTPException) as e:
                        out["reply"] = (None, {}, repr(e).encode())
                    out["done"] = time.monotonic()

                ta = threading.Thread(target=ask, args=(gw_a, out_a))
                ta.start()
                # A has the lease and is at the cloud; only then B is
                # asked.
                self.assertTrue(harness.wait_for(
                    lambda: self.upstream_count(RID) > reads, 5, 0.005),
                    "L=%d: A did not reach the cloud" % latency)
                b_asked = time.monotonic()
                tb = threading.Thread(target=ask, args=(gw_b, out_b))
                tb.start()
                ta.join(20)
                tb.join(20)
                for name, out in (("A", out_a), ("B", out_b)):
                    status, headers, body = out["reply"]
                    self.assertEqual(status, 200, "L=%d, %s: %r"
                                     % (latency, name, body))
                    self.assertEqual(json.loads(body), expected)
                    self.assertEqual(headers.get("cache-control"),
                                     "no-store")
                now = self.upstream_count(RID)
                conclusive = out_a["done"] - b_asked >= 0.25
                if conclusive and now - reads != 1:
                    extra.append((latency, now - reads))
                reads = now
                self.assertTrue(harness.wait_for(
                    lambda: self.redis.get(self.lease_key()) is None, 1.0),
                    "L=%d: lease left behind" % latency)
                if conclusive:
                    break
            else:
                self.fail("L=%d: A answered within 250 ms of B being asked "
                          "three times: the host is too busy" % latency)
        self.assert_nothing_stored()
        self.assertEqual(
            extra, [],
            "rounds in which B read the cloud itself although A's read was "
            "in flight when B was asked (A's upstream latency in ms, "
            "upstream reads in that round)")

if __name__ == "__main__":
    harness.main()
