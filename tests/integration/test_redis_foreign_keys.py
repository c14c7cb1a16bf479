#!/usr/bin/env python3
# Keys recgate shares through Redis that it did not write as it would
# have: a rate-limit bucket with a time in the future (the Redis clock
# stepped back, a failover to a server whose clock is behind) or with
# numbers that are not finite, a lease with no expiry, a pause of 30
# years. None of them may turn the rate limit off, stop it refilling, or
# block a record or the cloud for ever.

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PREFIX = "recgate:"
BUCKET = PREFIX + "ratelimit"
PAUSE = PREFIX + "pause"
RATE = 5
BURST = 5
MISSES = 40
PAUSE_CAP_S = 3600


def lease_key(rid):
    return "%slease:%s:%s" % (PREFIX, harness.PROJECT_ID, rid)


class ForeignKeys(harness.RecgateTestCase):

    def redis_now_ms(self):
        secs, micros = self.redis.command("TIME")
        return int(secs) * 1000 + int(micros) // 1000

    def distinct_misses(self, gw, tag):
        """Asks for MISSES records that are in no cache, all at once.
        Returns the statuses and the seconds the run took."""
        base = harness.load_fixture("rec-success-1")
        rids = ["rec-%s-%02d" % (tag, i) for i in range(MISSES)]
        for rid in rids:
            self.sim.put_record(rid, body=dict(base, id=rid))
        statuses = []

        def ask(rid):
            status, _, _ = gw.get(harness.record_path(rid), timeout=15)
            statuses.append(status)

        threads = [threading.Thread(target=ask, args=(rid,)) for rid in rids]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        return statuses, time.monotonic() - start

    def test_a_poisoned_bucket_neither_opens_nor_freezes_the_limit(self):
        """A bucket time an hour ahead, a time that is NaN, tokens of
        -inf, +inf or NaN: over 40 distinct misses the cloud sees at most
        rate x elapsed + burst requests, and the limit still refills, so
        some of them are answered 200."""
        gw = self.start_recgate({"upstream.rate": str(RATE),
                                 "upstream.burst": str(BURST),
                                 "upstream.queue_timeout": "1s"})
        now = self.redis_now_ms()
        poisons = [("ts an hour ahead", "0.5", str(now + 3600000)),
                   ("ts nan", "0.5", "nan"),
                   ("tokens -inf", "-inf", str(now)),
                   ("tokens inf", "inf", str(now)),
                   ("tokens nan", "nan", str(now))]
        for i, (name, tokens, ts) in enumerate(poisons):
            with self.subTest(poison=name):
                self.redis.flushall()
                self.sim.reset()
                self.redis.command("HSET", BUCKET, "tokens", tokens,
                                   "ts", ts)
                statuses, elapsed = self.distinct_misses(gw, "p%d" % i)
                self.assertEqual(len(statuses), MISSES)
                self.assertLessEqual(set(statuses), {200, 429}, statuses)
                self.assertLessEqual(self.upstream_count(),
                                     RATE * elapsed + BURST + 1,
                                     "%.2f s" % elapsed)
                self.assertIn(200, statuses)

    def test_a_lease_without_expiry_is_taken_over(self):
        """A lease set by hand with no TTL would never expire: the first
        request takes it over and gets the record at once, with one
        upstream request."""
        gw = self.start_recgate()
        rid = "rec-success-1"
        self.redis.command("SET", lease_key(rid), "someone")
        start = time.monotonic()
        status, _, body = gw.get(harness.record_path(rid), timeout=15)
        self.assertEqual(status, 200, body[:200])
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture(rid)))
        self.assertEqual(self.upstream_count(), 1)

    def test_a_pause_over_an_hour_is_taken_as_an_hour(self):
        """A pause key with a 30-year TTL: the cloud is still not asked,
        and the client's Retry-After is at most an hour."""
        gw = self.start_recgate({"upstream.queue_timeout": "200ms"})
        self.redis.command("SET", PAUSE, "1", "PX", str(10 ** 12))
        reply = gw.get(harness.record_path("rec-success-1"), timeout=15)
        self.assertErrorReply(reply, 429, None)
        retry = int(reply[1]["retry-after"])
        self.assertGreater(retry, PAUSE_CAP_S - 60)
        self.assertLessEqual(retry, PAUSE_CAP_S)
        self.assertEqual(self.upstream_count(), 0)


if __name__ == "__main__":
    harness.main()
