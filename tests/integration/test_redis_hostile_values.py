#!/usr/bin/env python3
# Whatever sits in Redis under a record's key is served only when it is
# exactly what recgate itself would have stored there: a finished record
# of that id, in normal form, within upstream.max_body.  Anything else
# (written by hand, by another program, cut short) is a miss: the record
# is fetched from the cloud, the bad value is overwritten, the problem is
# counted and logged, and nothing of it reaches a client or the
# in-process cache.

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RID = "rec-success-1"
OTHER = "rec-failed-1"
REDIS_ERRORS = "recgate_redis_errors_total"
BAD_VALUE_LOG = "record in redis is not one recgate stored: treated as a miss"
CONFIG = {"cache.l1_bytes": "0", "upstream.rate": "1000",
          "upstream.burst": "1000"}
OVERSIZED = 9 * 1000 * 1000     # over the default upstream.max_body, 8 MiB


def good_record():
    """The record as recgate serves and stores it."""
    return harness.compact_json(harness.load_fixture(RID))


def bad_values():
    """(name, value) pairs that must never be served for RID."""
    doc = harness.load_fixture(RID)
    running = dict(doc, status="RUNNING")
    huge = dict(doc, output="x" * OVERSIZED)
    return [
        ("not JSON", b"not json at all"),
        ("empty", b""),
        ("another record's id", harness.compact_json(
            harness.load_fixture(OTHER))),
        ("a running record", harness.compact_json(running)),
        ("a JSON array", b"[1,2,3]"),
        ("over upstream.max_body", harness.compact_json(huge)),
        ("not in normal form", json.dumps(doc, indent=1).encode()),
        ("trailing garbage", good_record() + b" "),
    ]


class RedisHostileValues(harness.RecgateTestCase):

    def get(self, gw, cache):
        status, headers, body = gw.get(harness.record_path(RID), timeout=15)
        self.assertEqual((status, headers.get("x-cache")), (200, cache),
                         body[:200])
        return body

    def stored(self):
        return self.redis.get(harness.record_key(RID))

    def test_a_value_recgate_stored_is_a_hit(self):
        """The control: what recgate wrote itself is served from Redis
        with no upstream request."""
        gw = self.start_recgate(CONFIG)
        self.assertEqual(self.get(gw, "MISS"), good_record())
        before = self.upstream_count(RID)
        for _ in range(3):
            self.assertEqual(self.get(gw, "HIT"), good_record())
        self.assertEqual(self.upstream_count(RID), before)

    def test_bad_values_are_misses_and_are_replaced(self):
        """Each bad value: a MISS with the cloud's record, one upstream
        request, Redis then holds the normalized record, which is a HIT
        with no upstream request; the error is counted and logged."""
        gw = self.start_recgate(CONFIG)
        key = harness.record_key(RID)
        for name, value in bad_values():
            with self.subTest(value=name):
                self.redis.command("SET", key, value)
                self.assertEqual(self.stored(), value)
                errors = gw.metrics().get(REDIS_ERRORS, 0)
                before = self.upstream_count(RID)

                self.assertEqual(self.get(gw, "MISS"), good_record())
                self.assertEqual(self.upstream_count(RID), before + 1)
                self.assertTrue(harness.wait_for(
                    lambda: self.stored() == good_record(), 2),
                    "Redis still holds %r" % (self.stored() or b"")[:80])
                self.assertGreater(gw.metrics().get(REDIS_ERRORS, 0),
                                   errors, "%s did not count it"
                                   % REDIS_ERRORS)

                self.assertEqual(self.get(gw, "HIT"), good_record())
                self.assertEqual(self.upstream_count(RID), before + 1)

        warned = [line for line in gw.log_lines()
                  if line.get("msg") == BAD_VALUE_LOG]
        self.assertTrue(warned, "no %r line" % BAD_VALUE_LOG)
        for line in warned:
            self.assertEqual(line.get("level"), "warn", line)
            self.assertEqual(line.get("record_id"), RID, line)
            self.assertTrue(line.get("reason"), line)
        # The value itself is never written to the log.
        self.assertNotIn("not json at all", gw.log_text())

    def test_bad_value_never_reaches_the_in_process_cache(self):
        """With the in-process cache on, a bad value is still a MISS, and
        every later answer is the cloud's record."""
        gw = self.start_recgate({"upstream.rate": "1000",
                                 "upstream.burst": "1000"})
        self.redis.command("SET", harness.record_key(RID), b"[1,2,3]")
        self.assertEqual(self.get(gw, "MISS"), good_record())
        for _ in range(3):
            self.assertEqual(self.get(gw, "HIT"), good_record())
        self.assertEqual(self.upstream_count(RID), 1)

    def test_one_fetch_over_a_bad_value_across_gateways(self):
        """Two gateways asked for a record whose stored value is bad, while
        the cloud takes a second to answer: still one upstream request,
        both answers the cloud's record, and the bad value replaced."""
        gateways = [self.start_recgate(CONFIG) for _ in range(2)]
        self.redis.command("SET", harness.record_key(RID), b"[1,2,3]")
        self.sim.fault(kind="latency", ms=1000, record=RID)
        results = [None, None]

        def ask(i):
            results[i] = gateways[i].get(harness.record_path(RID),
                                         timeout=15)
        threads = [threading.Thread(target=ask, args=(i,)) for i in (0, 1)]
        threads[0].start()
        time.sleep(0.3)     # the first holds the lease by now
        threads[1].start()
        for t in threads:
            t.join(20)

        for status, headers, body in results:
            self.assertEqual((status, headers.get("x-cache")),
                             (200, "MISS"), body[:200])
            self.assertEqual(body, good_record())
        self.assertEqual(self.upstream_count(RID), 1)
        self.assertEqual(self.stored(), good_record())

    def test_oversized_value_is_refused_quickly(self):
        """A value far over upstream.max_body is not read in full: the
        MISS comes back well within the request timeout."""
        gw = self.start_recgate(CONFIG)
        huge = b"x" * (50 * 1000 * 1000)
        self.redis.command("SET", harness.record_key(RID), huge)
        started = time.monotonic()
        self.assertEqual(self.get(gw, "MISS"), good_record())
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(self.stored(), good_record())


if __name__ == "__main__":
    harness.main()
