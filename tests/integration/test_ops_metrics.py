#!/usr/bin/env python3
# /metrics counts exactly what happened: after a scripted mix of misses,
# hits, bad input, an unknown route, an upstream failure and a group of
# concurrent requests sharing one fetch, every counter an operator would
# graph equals the number of requests the test made -- also when several
# worker processes answer (the scrape sums them all).

import http.client
import os
import re
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

COALESCE_CLIENTS = 10
COALESCE_LATENCY_MS = 300

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(gw):
    """GET /metrics parsed as {(name, frozenset(labels)): value}; fails on
    a line that is neither a comment nor a sample."""
    status, headers, body = gw.get("/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %r" % (status, body))
    if not headers.get("content-type", "").startswith("text/plain"):
        raise AssertionError("/metrics content type %r"
                             % headers.get("content-type"))
    out = {}
    for line in body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        if key in out:
            raise AssertionError("sample repeated: %r" % line)
        out[key] = float(m.group(3))
    return out


def series(metrics, name):
    """{frozenset(labels): value} of every sample of one metric."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


def requests_by(metrics):
    """recgate_requests_total as {(code, cache): value}, zeros left out."""
    out = {}
    for labels, v in series(metrics, "recgate_requests_total").items():
        d = dict(labels)
        if v:
            out[(d.get("code"), d.get("cache"))] = v
    return out


def upstream_by(metrics):
    out = {}
    for labels, v in series(metrics,
                            "recgate_upstream_requests_total").items():
        if v:
            out[dict(labels).get("code")] = v
    return out


def concurrent_gets(gw, path, n, timeout=20):
    """n clients connect, wait for each other, then GET path at once.
    Returns [(status, headers, body) or an exception text]."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        conn = gw.connection(timeout)
        try:
            conn.connect()
            barrier.wait(20)
            results[i] = harness.http_request(conn, "GET", path)
        except (OSError, http.client.HTTPException,
                threading.BrokenBarrierError) as e:
            results[i] = repr(e)
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class OpsMetrics(harness.RecgateTestCase):

    def config(self, workers):
        return {"server.workers": str(workers),
                "upstream.retries": "0",
                "upstream.rate": "1000",
                "upstream.burst": "1000",
                "upstream.breaker_failures": "100",
                "cache.ttl": "1h"}

    def run_mix(self, workers):
        gw = self.start_recgate(self.config(workers))

        # The harness waited for one /healthz 200 (Recgate.wait_healthy
        # stops polling at the first 200); nothing else was asked yet.
        # Scrape 1 does not count itself: a scrape is counted once it has
        # been answered.
        m0 = scrape(gw)
        self.assertEqual(requests_by(m0), {("200", "none"): 1.0},
                         "before any traffic")
        self.assertEqual(upstream_by(m0), {})
        self.assertEqual(value(m0, "recgate_upstream_seconds_count"), 0)
        for name in ("recgate_coalesced_total", "recgate_cache_writes_total",
                     "recgate_ratelimited_total",
                     "recgate_validation_failures_total",
                     "recgate_redis_errors_total"):
            self.assertIn((name, frozenset()), m0, "%s is not exported"
                          % name)
            self.assertEqual(value(m0, name), 0, name)
        self.assertIn(("recgate_l1_bytes", frozenset()), m0)

        # 3 misses of distinct finished records.
        misses = ["rec-success-1", "rec-failed-1", "rec-timeout-1"]
        for rid in misses:
            status, headers, body = gw.get(harness.record_path(rid))
            self.assertEqual((status, headers.get("x-cache")), (200, "MISS"),
                             body)

        # 5 hits of those records.
        for rid in ["rec-success-1", "rec-failed-1", "rec-timeout-1",
                    "rec-success-1", "rec-failed-1"]:
            status, headers, body = gw.get(harness.record_path(rid))
            self.assertEqual((status, headers.get("x-cache")), (200, "HIT"),
                             body)

        # 2 bad inputs (400, never looked up) and 1 unknown route (404).
        bad = ["/v2/not-a-project/script-execution-records/rec-success-1",
               harness.record_path("rec.with.dots")]
        for path in bad:
            self.assertEqual(gw.get(path)[0], 400, path)
        self.assertEqual(gw.get("/no/such/route")[0], 404)

        # 1 upstream 500, no retry: the client gets 502.
        self.sim.fault(record="rec-err-500", kind="status", status=500,
                       count=1)
        status, _, body = gw.get(harness.record_path("rec-err-500"))
        self.assertEqual(status, 502, body)

        # 10 clients at once for one uncached finished record whose fetch
        # takes 300 ms: one fetch, 9 requests answered by it.
        rid = "rec-coalesce-1"
        self.sim.put_record(rid, body=dict(
            harness.load_fixture("rec-success-1"), id=rid))
        self.sim.fault(record=rid, kind="latency", ms=COALESCE_LATENCY_MS)
        results = concurrent_gets(gw, harness.record_path(rid),
                                  COALESCE_CLIENTS)
        for r in results:
            self.assertIsInstance(r, tuple, "a client failed: %s" % (r,))
            self.assertEqual((r[0], r[1].get("x-cache")), (200, "MISS"),
                             r[2])
        stats = self.sim.stats()
        self.assertEqual(stats["by_record"].get(rid), 1, stats)
        self.assertEqual(stats["requests"], 5, stats)

        # What the test sent, as the metrics must say it.
        expected_requests = {
            ("200", "miss"): 3 + COALESCE_CLIENTS,
            ("200", "hit"): 5,
            ("400", "none"): 2,
            ("404", "none"): 1,
            ("502", "miss"): 1,
            ("200", "none"): 1 + 1,      # harness /healthz + scrape 1
        }
        expected_upstream = {"200": 3 + 1, "500": 1}
        m1 = scrape(gw)
        self.assertEqual(requests_by(m1), expected_requests)
        self.assertEqual(upstream_by(m1), expected_upstream)
        self.assertEqual(value(m1, "recgate_upstream_seconds_count"), 5)
        self.assertEqual(value(m1, "recgate_coalesced_total"),
                         COALESCE_CLIENTS - 1)
        self.assertEqual(value(m1, "recgate_cache_writes_total"), 3 + 1)
        self.assertEqual(value(m1, "recgate_ratelimited_total"), 0)
        self.assertEqual(value(m1, "recgate_validation_failures_total"), 0)
        self.assertEqual(value(m1, "recgate_redis_errors_total"), 0)

        # The histogram is cumulative and consistent with its count; the
        # one 300 ms fetch lies above the 0.25 s bucket.
        buckets = {dict(labels)["le"]: v for labels, v in
                   series(m1, "recgate_upstream_seconds_bucket").items()}
        self.assertIn("+Inf", buckets)
        self.assertEqual(buckets["+Inf"], 5)
        bounds = sorted((float(le), v) for le, v in buckets.items())
        counts = [v for _, v in bounds]
        self.assertEqual(counts, sorted(counts), "buckets not cumulative: "
                         "%s" % bounds)
        below = [v for le, v in bounds if le <= 0.25]
        self.assertTrue(below and below[-1] <= 4, bounds)
        self.assertGreaterEqual(value(m1, "recgate_upstream_seconds_sum"),
                                COALESCE_LATENCY_MS / 1000.0)

        # Scrape 2 shows up in scrape 3, and nothing else moved.
        m2 = scrape(gw)
        expected_requests[("200", "none")] += 1
        self.assertEqual(requests_by(m2), expected_requests)
        self.assertEqual(upstream_by(m2), expected_upstream)
        self.assertEqual(value(m2, "recgate_coalesced_total"),
                         COALESCE_CLIENTS - 1)
        return gw

    def test_counts_with_two_workers(self):
        """server.workers = 2: every scrape, whichever worker answers it,
        reports the sum of both workers' counts, equal to what was sent."""
        gw = self.run_mix(2)
        pids = {line.get("pid") for line in gw.log_lines()
                if line.get("msg") == "request"}
        self.assertEqual(len(pids), 2, "requests were answered by pids %s: "
                         "the mix did not exercise both workers" % pids)

    def test_counts_with_one_worker(self):
        """server.workers = 1: the same mix, the same counts."""
        self.run_mix(1)


if __name__ == "__main__":
    harness.main()
