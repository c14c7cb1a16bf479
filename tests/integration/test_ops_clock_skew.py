#!/usr/bin/env python3
# Clock skew against the cloud: when the Date header of the cloud's
# latest answer is more than 600 s off this host's clock, /readyz says
# 503 not_ready (signatures would soon be refused) and /metrics shows
# recgate_clock_skew_seconds; once the cloud's clock agrees again, the
# next answer makes the gateway ready again.

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AHEAD_S = 720
TOLERANCE_S = 5
SKEW_METRIC = "recgate_clock_skew_seconds"


class OpsClockSkew(harness.RecgateTestCase):

    def readyz(self, gw):
        status, headers, body = gw.get("/readyz")
        self.assertEqual(headers.get("content-type"), "application/json")
        try:
            doc = json.loads(body)
        except ValueError:
            self.fail("/readyz body is not JSON: %r" % body)
        self.assertIsInstance(doc, dict, body)
        self.assertIsInstance(doc.get("clock_skew_seconds"), (int, float),
                              body)
        return status, doc

    def fetch(self, gw):
        """One upstream read (a record that is always RUNNING, so never
        cached)."""
        status, headers, body = gw.get(harness.record_path("rec-stuck-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"),
                         body)

    def assert_skewed(self, gw, expected):
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc.get("status")), (503, "not_ready"),
                         doc)
        self.assertAlmostEqual(doc["clock_skew_seconds"], expected,
                               delta=TOLERANCE_S, msg=doc)
        self.assertIsInstance(doc.get("reason"), str, doc)
        self.assertTrue(doc["reason"], doc)
        self.assertEqual(doc.get("redis"), "up", doc)
        metric = gw.metrics().get(SKEW_METRIC)
        self.assertIsNotNone(metric, "%s is not exported" % SKEW_METRIC)
        self.assertAlmostEqual(metric, expected, delta=TOLERANCE_S)

    def assert_ready(self, gw):
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc.get("status")), (200, "ready"), doc)
        self.assertAlmostEqual(doc["clock_skew_seconds"], 0,
                               delta=TOLERANCE_S, msg=doc)
        self.assertNotIn("reason", doc)
        metric = gw.metrics().get(SKEW_METRIC)
        self.assertIsNotNone(metric)
        self.assertAlmostEqual(metric, 0, delta=TOLERANCE_S)

    def test_cloud_clock_ahead_then_right(self):
        """sim.clock(720): after one upstream read /readyz is 503
        not_ready with clock_skew_seconds ~720 and the metric ~720;
        sim.clock(0): after another read, 200 ready again."""
        gw = self.start_recgate()
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc.get("status")), (200, "ready"), doc)
        self.assertNotIn(SKEW_METRIC, gw.metrics(),
                         "the skew is exported before any upstream answer")

        self.sim.clock(AHEAD_S)
        # Not yet: nothing was asked of the cloud since.
        self.assertEqual(self.readyz(gw)[0], 200)
        self.fetch(gw)
        self.assert_skewed(gw, AHEAD_S)
        # A cached record does not change the verdict (no upstream answer).
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[0], 200)
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[1]
                         .get("x-cache"), "HIT")
        self.assert_skewed(gw, AHEAD_S)

        self.sim.clock(0)
        self.fetch(gw)
        self.assert_ready(gw)

    def test_cloud_clock_behind(self):
        """A cloud clock 12 minutes behind is as bad as one ahead."""
        gw = self.start_recgate()
        self.sim.clock(-AHEAD_S)
        self.fetch(gw)
        self.assert_skewed(gw, -AHEAD_S)
        self.sim.clock(0)
        self.fetch(gw)
        self.assert_ready(gw)

    def test_small_skew_stays_ready(self):
        """Five minutes off is reported but still ready."""
        gw = self.start_recgate()
        self.sim.clock(300)
        self.fetch(gw)
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc.get("status")), (200, "ready"), doc)
        self.assertAlmostEqual(doc["clock_skew_seconds"], 300,
                               delta=TOLERANCE_S, msg=doc)
        self.assertAlmostEqual(gw.metrics().get(SKEW_METRIC, 0), 300,
                               delta=TOLERANCE_S)

    def test_latest_answer_wins_across_workers(self):
        """server.workers = 2: whichever worker read the cloud last, every
        /readyz and scrape reflects that latest answer.  The clock is
        flipped between 720 and 0 several times in quick succession, each
        time followed by one upstream read (landing on either worker),
        until both workers have read."""
        gw = self.start_recgate({"server.workers": "2"})
        history = []     # (offset, pid of the worker that read the cloud)

        def pid_of(request_id):
            for line in gw.log_lines():
                if line.get("request_id") == request_id:
                    return line.get("pid")
            return None

        # At least 8 reads; more (up to 24) until both workers have read
        # the cloud: the kernel spreads new connections over the workers
        # at random, and 8 land on one worker about once in 128 runs.
        for i, offset in enumerate([AHEAD_S, 0] * 12):
            if i >= 8 and len({pid for _, pid in history}) == 2:
                break
            self.sim.clock(offset)
            rid = "skew-read-%d" % i
            status, _, body = gw.get(harness.record_path("rec-stuck-1"),
                                     headers={"X-Request-Id": rid})
            self.assertEqual(status, 200, body)
            harness.wait_for(lambda: pid_of(rid), 2)
            history.append((offset, pid_of(rid)))
            for _ in range(3):    # several answers, from either worker
                try:
                    if offset:
                        self.assert_skewed(gw, offset)
                    else:
                        self.assert_ready(gw)
                except AssertionError as e:
                    raise AssertionError(
                        "%s\nupstream reads so far as (sim clock offset, "
                        "pid of the worker that read): %s; the latest "
                        "answer had offset %d" % (e, history, offset)) \
                        from None
        pids = {pid for _, pid in history}
        self.assertEqual(len(pids), 2, "all upstream reads landed on one "
                         "worker (pids %s); the test proved little" % pids)


if __name__ == "__main__":
    harness.main()
