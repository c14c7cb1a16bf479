#!/usr/bin/env python3
# A Redis that stops answering for a while (DEBUG SLEEP 3) costs a request
# at most about redis.timeout: the gateway gives up on the slow command,
# answers from the cloud, counts the error, and serves HITs again once
# Redis is back.

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REDIS_ERRORS = "recgate_redis_errors_total"
# No in-process cache: every HIT comes from Redis.
CONFIG = {"cache.l1_bytes": "0", "redis.timeout": "500ms",
          "upstream.rate": "1000", "upstream.burst": "1000"}
SLEEP_S = 3
ANSWER_WITHIN_S = 2.0
RECOVER_WITHIN_S = 8
CACHED = "rec-success-1"
UNCACHED = ("rec-failed-1", "rec-timeout-1", "rec-unicode-1")


class DebugRedis(harness.Redis):
    """The harness's Redis with DEBUG allowed from loopback (Redis 7 turns
    it off by default)."""

    def start(self):
        plain = harness.spawn

        def spawn(argv, *args, **kw):
            if argv and argv[0] == "redis-server":
                argv = list(argv) + ["--enable-debug-command", "local"]
            return plain(argv, *args, **kw)
        harness.spawn = spawn
        try:
            super().start()
        finally:
            harness.spawn = plain


class Sleeper(threading.Thread):
    """DEBUG SLEEP on its own connection; the command returns when Redis
    wakes up."""

    def __init__(self, redis, seconds):
        super().__init__(daemon=True)
        self.redis, self.seconds = redis, seconds
        self.started_at = self.ended_at = None
        self.error = None

    def run(self):
        self.started_at = time.monotonic()
        try:
            self.redis.command("DEBUG", "SLEEP", self.seconds)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.ended_at = time.monotonic()


class SafeRedisSlow(harness.RecgateTestCase):
    START_REDIS = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = DebugRedis(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)

    def setUp(self):
        super().setUp()
        self.redis.flushall()

    def timed_get(self, gw, rid):
        started = time.monotonic()
        status, headers, body = gw.get(harness.record_path(rid), timeout=10)
        return status, headers, body, time.monotonic() - started

    def test_slow_redis_is_bypassed_after_the_timeout(self):
        """With Redis asleep for 3 s, a cached record and three others are
        answered 200 within 2 s each, from the cloud; the Redis error count
        rises; after Redis wakes up the cached record is a HIT again."""
        gw = self.start_recgate(CONFIG)
        path = harness.record_path(CACHED)
        self.assertEqual(gw.get(path)[1].get("x-cache"), "MISS")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count(CACHED), 1)
        self.assertIn(harness.record_key(CACHED), self.record_keys())
        errors_before = gw.metrics().get(REDIS_ERRORS, 0)

        sleeper = Sleeper(self.redis, SLEEP_S)
        sleeper.start()
        time.sleep(0.2)    # the DEBUG SLEEP is under way

        # The cached record and three others at once, during the sleep.
        results = {}

        def fetch(rid):
            results[rid] = self.timed_get(gw, rid)
        threads = [threading.Thread(target=fetch, args=(rid,))
                   for rid in (CACHED,) + UNCACHED]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        for rid in (CACHED,) + UNCACHED:
            status, headers, body, took = results[rid]
            self.assertEqual(status, 200, "%s: %s" % (rid, body))
            self.assertLess(took, ANSWER_WITHIN_S,
                            "%s took %.2f s with Redis asleep" % (rid, took))
            self.assertEqual(headers.get("x-cache"), "MISS", rid)
            self.assertIn(b'"id":"%s"' % rid.encode(), body)
        self.assertEqual(results[CACHED][2], harness.compact_json(
            harness.load_fixture(CACHED)))
        self.assertEqual(self.upstream_count(CACHED), 2)
        # All of that happened while Redis slept, else it proves nothing.
        self.assertTrue(sleeper.is_alive(),
                        "Redis woke up before the requests were answered")
        self.assertGreater(gw.metrics().get(REDIS_ERRORS, 0), errors_before,
                           "%s did not rise" % REDIS_ERRORS)

        sleeper.join(SLEEP_S + 5)
        self.assertIsNone(sleeper.error)
        self.assertGreaterEqual(sleeper.ended_at - sleeper.started_at,
                                SLEEP_S - 0.1)

        hit = harness.wait_for(
            lambda: gw.get(path)[1].get("x-cache") == "HIT",
            RECOVER_WITHIN_S, 0.2)
        self.assertTrue(hit, "no HIT within %ds of Redis waking up"
                        % RECOVER_WITHIN_S)
        before = self.upstream_count()
        for _ in range(3):
            status, headers, body = gw.get(path)
            self.assertEqual((status, headers.get("x-cache")), (200, "HIT"))
        self.assertEqual(self.upstream_count(), before)
        # Records fetched during the sleep are cached now too.
        for rid in UNCACHED:
            got = harness.wait_for(
                lambda: gw.get(harness.record_path(rid))[1].get("x-cache")
                == "HIT", RECOVER_WITHIN_S, 0.2)
            self.assertTrue(got, "%s never became a HIT" % rid)
        self.assertTrue(gw.running())

    def test_repeated_sleeps(self):
        """Three sleeps in a row, each with a request in it: every answer
        within 2 s, and HITs after each."""
        gw = self.start_recgate(CONFIG)
        path = harness.record_path(CACHED)
        self.assertEqual(gw.get(path)[0], 200)
        for round_no in range(3):
            sleeper = Sleeper(self.redis, SLEEP_S)
            sleeper.start()
            time.sleep(0.2)
            status, _, body, took = self.timed_get(gw, CACHED)
            self.assertEqual(status, 200, body)
            self.assertLess(took, ANSWER_WITHIN_S,
                            "round %d: %.2f s" % (round_no, took))
            self.assertTrue(sleeper.is_alive())
            sleeper.join(10)
            self.assertTrue(harness.wait_for(
                lambda: gw.get(path)[1].get("x-cache") == "HIT",
                RECOVER_WITHIN_S, 0.2), "round %d: no HIT after" % round_no)


if __name__ == "__main__":
    harness.main()
