#!/usr/bin/env python3
# Single-flight for a finished record: many clients asking at once for one
# that is not cached yet share one upstream fetch, inside one process and
# across processes, so that each finished record is fetched once, ever.

import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_quota_running_across import SlowLink  # noqa: E402

CLIENTS = 200
LATENCY_MS = 300


def concurrent_gets(gw, path, n, timeout=15):
    """n threads each open a connection, wait for all the others, then
    send one GET at the same moment.  Returns a list of dicts with
    status, headers, body, seconds, error."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        out = {"status": None, "headers": {}, "body": b"", "seconds": None,
               "error": None}
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


class QuotaCoalesce(harness.RecgateTestCase):

    def test_concurrent_clients_share_one_fetch(self):
        """200 clients ask at once for one uncached finished record whose
        upstream answer takes 300 ms: every one gets 200 with the same
        normalized body, and the cloud is asked exactly once."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        rid = "rec-success-1"
        self.sim.fault(record=rid, kind="latency", ms=LATENCY_MS)
        expected = harness.compact_json(harness.load_fixture(rid))

        results = concurrent_gets(gw, harness.record_path(rid), CLIENTS)

        errors = [r["error"] for r in results if r["error"]]
        self.assertEqual(errors, [], "%d of %d clients failed"
                         % (len(errors), CLIENTS))
        statuses = sorted({r["status"] for r in results})
        self.assertEqual(statuses, [200], "statuses seen: %s" % statuses)
        bodies = {r["body"] for r in results}
        self.assertEqual(len(bodies), 1, "%d different bodies" % len(bodies))
        self.assertEqual(bodies.pop(), expected)
        for r in results:
            self.assertEqual(r["headers"].get("content-type"),
                             "application/json")
            self.assertEqual(r["headers"].get("cache-control"),
                             "max-age=3600")
            self.assertIn(r["headers"].get("x-cache"), ("MISS", "HIT"))
            self.assertTrue(r["headers"].get("x-request-id"))
        ids = {r["headers"].get("x-request-id") for r in results}
        self.assertEqual(len(ids), CLIENTS, "request ids are not unique")

        stats = self.sim.stats()
        self.assertEqual(stats["requests"], 1, stats)
        self.assertEqual(stats["by_record"], {rid: 1}, stats)

        # Every MISS shared the one fetch: all but the fetcher were
        # coalesced (a client that arrived after the record was stored
        # got a HIT and shared nothing).
        misses = sum(1 for r in results if r["headers"]["x-cache"] == "MISS")
        self.assertGreaterEqual(misses, 1)
        metrics = gw.metrics()
        self.assertEqual(metrics.get("recgate_coalesced_total"),
                         float(misses - 1), "MISS answers: %d" % misses)
        self.assertEqual(
            metrics.get('recgate_upstream_requests_total{code="200"}'), 1.0)
        self.assertEqual(self.record_keys(), [harness.record_key(rid)])

        # And afterwards it is a plain cache hit, still one fetch.
        status, headers, body = gw.get(harness.record_path(rid))
        self.assertEqual((status, headers.get("x-cache"), body),
                         (200, "HIT", expected))
        self.assertEqual(self.upstream_count(), 1)

    def test_finished_record_fetched_once_across_processes(self):
        """Gateway A fetches a finished record (upstream latency L) while
        gateway B, whose Redis answers 200 ms late, is asked for it just
        after A's request reached the cloud: B waits for A and answers
        A's record; the cloud is asked once per record.  L sweeps over
        the moments at which B's ~200 ms poll (GET the record, then SET NX
        the lease) can be under way when A stores the record, publishes
        and gives the lease back."""
        cfg = {"upstream.timeout": "5s", "cache.ttl": "1h"}
        gw_a = self.start_recgate(cfg)
        link = SlowLink(self.redis.port, 0.200)
        self.addCleanup(link.close)
        gw_b = self.start_recgate(dict(cfg, **{"redis.url": link.url}))
        base = harness.load_fixture("rec-success-1")

        twice = []
        for latency in (500, 600, 650, 700, 725, 750, 775, 800, 900, 1000):
            rid = "rec-across-%d" % latency
            self.sim.put_record(rid, body=dict(base, id=rid))
            self.sim.fault(record=rid, kind="latency", ms=latency)
            path = harness.record_path(rid)
            out_a, out_b = {}, {}

            def ask(gw, out):
                try:
                    out["reply"] = gw.get(path, timeout=15)
                except (OSError, http.client.HTTPException) as e:
                    out["reply"] = (None, {}, repr(e).encode())

            ta = threading.Thread(target=ask, args=(gw_a, out_a))
            ta.start()
            self.assertTrue(harness.wait_for(
                lambda: self.upstream_count(rid) >= 1, 5, 0.005),
                "A did not reach the cloud for %s" % rid)
            tb = threading.Thread(target=ask, args=(gw_b, out_b))
            tb.start()
            ta.join(20)
            tb.join(20)
            expected = harness.compact_json(dict(base, id=rid))
            for name, out in (("A", out_a), ("B", out_b)):
                status, headers, body = out["reply"]
                self.assertEqual(status, 200, "%s %s: %r" % (rid, name, body))
                self.assertEqual(body, expected, "%s %s" % (rid, name))
                self.assertEqual(headers.get("cache-control"),
                                 "max-age=3600")
            if self.upstream_count(rid) != 1:
                twice.append((latency, self.upstream_count(rid)))
        self.assertEqual(
            twice, [],
            "finished records fetched more than once (A's upstream latency "
            "in ms, upstream fetches)")


if __name__ == "__main__":
    harness.main()
