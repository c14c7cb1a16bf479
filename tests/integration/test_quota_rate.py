#!/usr/bin/env python3
# The upstream rate limit is global: three gateway processes on one Redis
# together stay under upstream.rate with upstream.burst, and a request the
# limiter cannot admit in time is a 429 with Retry-After.

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RATE = 5
BURST = 5
REQUESTS = 60
SEND_WINDOW_S = 2.0
REQUEST_TIMEOUT_S = 10
POLL_S = 0.01


class StatsPoller:
    """Polls the simulator's request count every few milliseconds, to
    time upstream requests without the simulator having timestamps of
    its own."""

    def __init__(self, sim, interval=POLL_S):
        self.sim = sim
        self.interval = interval
        self.samples = []     # (t_before_poll, t_after_poll, count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            before = time.monotonic()
            count = self.sim.stats()["requests"]
            after = time.monotonic()
            self.samples.append((before, after, count))
            time.sleep(self.interval)

    def arrivals(self):
        """For each upstream request seen, the window (lo, hi) in which it
        reached the simulator: after the previous poll began, before the
        poll that first counted it ended."""
        out = []
        for (before0, _, count0), (_, after1, count1) in zip(
                self.samples, self.samples[1:]):
            out.extend([(before0, after1)] * (count1 - count0))
        return out


class QuotaRate(harness.RecgateTestCase):

    def test_three_gateways_share_one_rate(self):
        """rate 5/s, burst 5, three gateways, 60 distinct running records
        asked for within 2 s: the cloud sees at most rate x elapsed +
        burst requests; every client gets 200 or 429 with Retry-After,
        none waits longer than server.request_timeout + 1 s."""
        cfg = {"upstream.rate": str(RATE), "upstream.burst": str(BURST),
               "server.request_timeout": "%ds" % REQUEST_TIMEOUT_S}
        gateways = [self.start_recgate(cfg) for _ in range(3)]

        base = harness.load_fixture("rec-stuck-1")
        rids = ["rec-rate-%02d" % i for i in range(REQUESTS)]
        for rid in rids:
            self.sim.put_record(rid, body=dict(base, id=rid),
                                running_reads=10 ** 9)
        self.assertEqual(self.upstream_count(), 0)

        results = [None] * REQUESTS
        poller = StatsPoller(self.sim).start()
        time.sleep(0.1)
        run_start = time.monotonic()

        def client(i):
            gw = gateways[i % 3]
            out = {"status": None, "headers": {}, "body": b"",
                   "seconds": None, "error": None, "sent": None}
            at = run_start + SEND_WINDOW_S * i / REQUESTS
            time.sleep(max(0.0, at - time.monotonic()))
            out["sent"] = time.monotonic() - run_start
            started = time.monotonic()
            try:
                out["status"], out["headers"], out["body"] = gw.get(
                    harness.record_path(rids[i]),
                    timeout=REQUEST_TIMEOUT_S + 5)
            except (OSError, http.client.HTTPException) as e:
                out["error"] = repr(e)
            out["seconds"] = time.monotonic() - started
            results[i] = out

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(REQUESTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S + 10)
        run_end = time.monotonic()
        time.sleep(0.2)
        poller.stop()

        sent_last = max(r["sent"] for r in results)
        self.assertLessEqual(sent_last, SEND_WINDOW_S + 0.5,
                             "the test could not send its requests in time")

        errors = [(i, r["error"]) for i, r in enumerate(results)
                  if r["error"]]
        self.assertEqual(errors, [], "clients failed")
        for i, r in enumerate(results):
            with self.subTest(client=i, record=rids[i]):
                self.assertIn(r["status"], (200, 429), r["body"][:300])
                self.assertLessEqual(
                    r["seconds"], REQUEST_TIMEOUT_S + 1,
                    "client %d waited %.2f s" % (i, r["seconds"]))
                if r["status"] == 200:
                    doc = json.loads(r["body"])
                    self.assertEqual(doc["id"], rids[i])
                    self.assertEqual(doc["status"], "RUNNING")
                    self.assertEqual(r["headers"].get("cache-control"),
                                     "no-store")
                else:
                    self.assertErrorReply(
                        (r["status"], r["headers"], r["body"]), 429,
                        "RECGATE.4290")
                    retry = r["headers"].get("retry-after", "")
                    self.assertTrue(retry.isdigit() and int(retry) >= 1,
                                    "Retry-After %r" % retry)

        ok = [rids[i] for i, r in enumerate(results) if r["status"] == 200]
        limited = [rids[i] for i, r in enumerate(results)
                   if r["status"] == 429]
        stats = self.sim.stats()
        total = stats["requests"]
        # Each 200 is one upstream read of its own record, a 429 none.
        self.assertEqual(sorted(stats["by_record"]), sorted(ok), stats)
        self.assertEqual(set(stats["by_record"].values()), {1}, stats)
        self.assertEqual(total, len(ok))
        self.assertGreaterEqual(len(ok), BURST,
                                "the limiter refused even the burst")
        self.assertGreater(len(limited), 0,
                           "60 requests in 2 s at 5/s: some must be refused")
        self.assertEqual(
            sum(gw.metrics().get("recgate_ratelimited_total", 0.0)
                for gw in gateways), float(len(limited)))

        # Elapsed time of the upstream traffic, from the first request to
        # the last, as the poller saw them: each arrival is known to lie
        # in a window (lo, hi); the longest elapsed consistent with the
        # observations is hi(last) - lo(first).
        arrivals = poller.arrivals()
        self.assertEqual(len(arrivals), total,
                         "poller saw %d of %d" % (len(arrivals), total))
        elapsed = arrivals[-1][1] - arrivals[0][0]
        bound = RATE * elapsed + BURST
        self.assertLessEqual(
            total, bound,
            "upstream requests %d > rate x elapsed + burst = %d x %.3f + %d"
            " = %.2f" % (total, RATE, elapsed, BURST, bound))
        window = run_end - run_start
        sys.stderr.write(
            "\n  %d requests: %d x 200, %d x 429; %d upstream in %.3f s "
            "(bound %.2f); run window %.3f s\n" % (
                REQUESTS, len(ok), len(limited), total, elapsed, bound,
                window))
        self.assertLessEqual(
            total, RATE * window + BURST,
            "upstream requests %d > rate x run window + burst = %d x %.3f "
            "+ %d" % (total, RATE, window, BURST))

        # The same bound in every sliding stretch: between any two
        # arrivals i < j, j - i + 1 requests in at most hi(j) - lo(i).
        for i in range(len(arrivals)):
            for j in range(i + 1, len(arrivals)):
                span = arrivals[j][1] - arrivals[i][0]
                n = j - i + 1
                self.assertLessEqual(
                    n, RATE * span + BURST,
                    "%d upstream requests within %.3f s > rate x span + "
                    "burst = %d x %.3f + %d" % (n, span, RATE, span, BURST))


if __name__ == "__main__":
    harness.main()
