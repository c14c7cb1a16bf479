#!/usr/bin/env python3
# /readyz tells an operator whether Redis is there: "up", then "degraded"
# soon after Redis stops (still ready: records come from the cloud), and
# "up" again once Redis is back, without a restart.  A Redis that keeps
# its connections but stops answering (frozen with SIGSTOP) is "degraded"
# too, from the first command that timed out until it answers again.

import http.client
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DOWN_WITHIN_S = 2
UP_WITHIN_S = 8          # the reconnect backoff is at most 5 s
READYZ_KEYS = {"status", "redis", "breaker", "ratelimit",
               "clock_skew_seconds"}


class OpsReadyz(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        # A failing test must not leave the class's Redis stopped.
        self.addCleanup(self.redis.start)

    def readyz(self, gw):
        """(status, parsed body) of one /readyz on a new connection."""
        status, headers, body = gw.get("/readyz", timeout=5)
        self.assertEqual(headers.get("content-type"), "application/json",
                         body)
        try:
            doc = json.loads(body)
        except ValueError:
            self.fail("/readyz body is not JSON: %r" % body)
        self.assertIsInstance(doc, dict, body)
        self.assertTrue(READYZ_KEYS <= set(doc), "/readyz lacks %s: %r" % (
            sorted(READYZ_KEYS - set(doc)), body))
        self.assertIn(doc["redis"], ("up", "degraded"), body)
        self.assertIn(doc["breaker"], ("closed", "open", "half_open"), body)
        self.assertIn(doc["ratelimit"], ("redis", "local"), body)
        self.assertIsInstance(doc["clock_skew_seconds"], (int, float), body)
        return status, doc

    def wait_redis(self, gw, state, timeout, consecutive=1):
        """Polls /readyz until `consecutive` answers in a row say
        redis == state (several workers each keep their own link).
        Returns the seconds it took, or fails with the last answer."""
        started = time.monotonic()
        seen = []
        streak = 0

        def check():
            nonlocal streak
            try:
                status, doc = self.readyz(gw)
            except (OSError, http.client.HTTPException) as e:
                seen.append(repr(e))
                streak = 0
                return False
            seen.append((status, doc))
            streak = streak + 1 if doc["redis"] == state else 0
            return streak >= consecutive

        if not harness.wait_for(check, timeout, 0.1):
            self.fail("/readyz did not say redis %r within %ss; last "
                      "answers: %s" % (state, timeout, seen[-3:]))
        return time.monotonic() - started

    def outage_round_trip(self, workers):
        gw = self.start_recgate({"server.workers": str(workers)})
        consecutive = 1 if workers == 1 else 6

        status, doc = self.readyz(gw)
        self.assertEqual((status, doc["status"], doc["redis"]),
                         (200, "ready", "up"), doc)
        self.assertEqual(doc["breaker"], "closed", doc)

        self.redis.stop()
        self.wait_redis(gw, "degraded", DOWN_WITHIN_S, consecutive)
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc["status"], doc["redis"]),
                         (200, "ready", "degraded"), doc)
        # Degraded still serves, from the cloud.
        status, headers, body = gw.get(harness.record_path("rec-success-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"),
                         body)

        self.redis.start()
        self.wait_redis(gw, "up", UP_WITHIN_S, consecutive)
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc["status"], doc["redis"]),
                         (200, "ready", "up"), doc)
        # And caching works again.
        path = harness.record_path("rec-failed-1")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "MISS")
        self.assertTrue(harness.wait_for(
            lambda: harness.record_key("rec-failed-1") in self.record_keys(),
            2), "the record was not stored after Redis came back")

    def test_redis_down_and_back(self):
        """redis "up" -> stop Redis -> "degraded" within 2 s -> start it
        -> "up" within 8 s; /readyz stays 200 "ready" throughout."""
        self.outage_round_trip(1)

    def test_redis_down_and_back_two_workers(self):
        """The same with server.workers = 2: every worker reports it."""
        self.outage_round_trip(2)

    def test_frozen_redis_is_degraded(self):
        """redis "up" -> Redis frozen (SIGSTOP), a request whose Redis
        commands time out (still a 200 MISS) -> "degraded" -> Redis
        thawed (SIGCONT) -> "up" again, without a reconnect."""
        gw = self.start_recgate({"redis.timeout": "300ms",
                                 "upstream.rate": "1000",
                                 "upstream.burst": "1000"})
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc["redis"]), (200, "up"), doc)

        pid = self.redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        status, headers, body = gw.get(harness.record_path("rec-success-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"),
                         body)
        status, doc = self.readyz(gw)
        self.assertEqual((status, doc["status"], doc["redis"]),
                         (200, "ready", "degraded"), doc)

        os.kill(pid, signal.SIGCONT)
        self.wait_redis(gw, "up", DOWN_WITHIN_S)
        path = harness.record_path("rec-failed-1")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "MISS")
        self.assertTrue(harness.wait_for(
            lambda: harness.record_key("rec-failed-1") in self.record_keys(),
            2), "the record was not stored after Redis thawed")


if __name__ == "__main__":
    harness.main()
