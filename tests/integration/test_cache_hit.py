#!/usr/bin/env python3
# A finished record is fetched from the cloud once, stored in Redis with the
# configured lifetime and served from there afterwards.

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TERMINAL_STATUSES = ("SUCCESS", "FAILED", "FINISH", "FINISHED", "TIMEOUT",
                     "CANCELED", "CANCELLED", "SKIPPED")


class CacheHit(harness.RecgateTestCase):

    def assert_record_reply(self, reply, cache, cache_control):
        status, headers, body = reply
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), cache)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(headers.get("cache-control"), cache_control)
        self.assertTrue(headers.get("x-request-id"))
        return body

    def test_second_read_is_a_hit_with_the_same_body(self):
        """A finished record is a MISS once, then a HIT with the same bytes,
        and the cloud is asked exactly once."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        path = harness.record_path("rec-success-1")
        expected = harness.compact_json(harness.load_fixture("rec-success-1"))

        first = self.assert_record_reply(gw.get(path), "MISS", "max-age=3600")
        self.assertEqual(first, expected)
        second = self.assert_record_reply(gw.get(path), "HIT", "max-age=3600")
        self.assertEqual(second, first)
        third = self.assert_record_reply(gw.get(path), "HIT", "max-age=3600")
        self.assertEqual(third, first)

        stats = self.sim.stats()
        self.assertEqual(stats["requests"], 1, stats)
        self.assertEqual(stats["by_record"], {"rec-success-1": 1})

    def test_upper_case_project_id_shares_the_cache_entry(self):
        """An upper-case spelling of a project id names the same project:
        it is served from the same cache entry (one upstream request in
        all, one Redis key, in lower case) and is forwarded lower-cased."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        lower = harness.record_path("rec-success-1")
        upper = harness.record_path("rec-success-1",
                                    project_id=harness.PROJECT_ID.upper())

        first = gw.get(upper)
        self.assertEqual((first[0], first[1].get("x-cache")), (200, "MISS"))
        second = gw.get(lower)
        self.assertEqual((second[0], second[1].get("x-cache")), (200, "HIT"))
        self.assertEqual(second[2], first[2])

        self.assertEqual(self.upstream_count(), 1)
        self.assertEqual(self.record_keys(),
                         [harness.record_key("rec-success-1")])
        paths = [r["path"] for r in self.sim.requests()]
        self.assertEqual(paths, [lower], paths)

    def test_record_is_stored_in_redis_with_the_ttl(self):
        """The record is stored under {prefix}rec:{project}:{record} with a
        TTL close to cache.ttl."""
        gw = self.start_recgate({"cache.ttl": "90s"})
        status, headers, _ = gw.get(harness.record_path("rec-failed-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))
        self.assertEqual(headers.get("cache-control"), "max-age=90")

        key = harness.record_key("rec-failed-1")
        self.assertEqual(self.record_keys(), [key])
        ttl = self.redis.ttl(key)
        self.assertTrue(85 <= ttl <= 90, "TTL of %s is %s" % (key, ttl))
        self.assertTrue(self.redis.get(key), "the stored value is empty")

    def test_key_prefix_is_used(self):
        """redis.key_prefix namespaces the record keys."""
        gw = self.start_recgate({"redis.key_prefix": "it-prefix:"})
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[0], 200)
        self.assertEqual(self.redis.keys("*rec:*"), [
            harness.record_key("rec-success-1", prefix="it-prefix:")])
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[1]
                         .get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count(), 1)

    def test_every_terminal_status_is_cached(self):
        """Each default terminal status is stored after one upstream read
        and then served as a HIT."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        base = harness.load_fixture("rec-success-1")
        for status_text in TERMINAL_STATUSES:
            rid = "rec-term-" + status_text.lower()
            self.sim.put_record(rid, body=dict(base, id=rid,
                                               status=status_text))
            with self.subTest(status=status_text):
                path = harness.record_path(rid)
                miss = self.assert_record_reply(gw.get(path), "MISS",
                                                "max-age=3600")
                hit = self.assert_record_reply(gw.get(path), "HIT",
                                               "max-age=3600")
                self.assertEqual(hit, miss)
                self.assertIn(b'"status":"%s"' % status_text.encode(), miss)
                self.assertEqual(self.upstream_count(rid), 1)
                self.assertIn(harness.record_key(rid), self.record_keys())

    def test_head_has_no_body(self):
        """HEAD answers 200 with the record's headers and no body, before
        and after the record is cached."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        path = harness.record_path("rec-success-1")

        status, headers, body = gw.get(path, method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(headers.get("cache-control"), "max-age=3600")
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertTrue(headers.get("x-request-id"))

        status, headers, body = gw.get(path, method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers.get("x-cache"), "HIT")

        status, headers, body = gw.get(path)
        self.assertEqual((status, headers.get("x-cache")), (200, "HIT"))
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture("rec-success-1")))
        self.assertEqual(self.upstream_count(), 1)

    def test_ttl_zero_stores_without_expiry(self):
        """cache.ttl = 0 stores the record with no expiry, and the answer
        still says it may be cached."""
        gw = self.start_recgate({"cache.ttl": "0"})
        path = harness.record_path("rec-success-1")
        status, headers, _ = gw.get(path)
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))
        match = re.fullmatch(r"max-age=(\d+)", headers.get("cache-control",
                                                           ""))
        self.assertTrue(match, headers.get("cache-control"))
        self.assertGreater(int(match.group(1)), 0)

        key = harness.record_key("rec-success-1")
        self.assertEqual(self.record_keys(), [key])
        self.assertEqual(self.redis.ttl(key), -1, "the key has an expiry")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count(), 1)

    def test_default_ttl_is_seven_days(self):
        """Without cache.ttl the record lives 7 days in Redis and
        Cache-Control says max-age=604800."""
        gw = self.start_recgate({"cache.ttl": None})
        status, headers, _ = gw.get(harness.record_path("rec-success-1"))
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("cache-control"), "max-age=604800")
        ttl = self.redis.ttl(harness.record_key("rec-success-1"))
        self.assertTrue(604800 - 10 <= ttl <= 604800, ttl)

    def test_another_gateway_reads_the_stored_record(self):
        """A second gateway on the same Redis answers a record the first
        one stored as a HIT, without asking the cloud."""
        first = self.start_recgate()
        path = harness.record_path("rec-success-1")
        miss = first.get(path)
        self.assertEqual((miss[0], miss[1].get("x-cache")), (200, "MISS"))

        second = self.start_recgate()
        hit = second.get(path)
        self.assertEqual((hit[0], hit[1].get("x-cache")), (200, "HIT"))
        self.assertEqual(hit[2], miss[2])
        self.assertEqual(self.upstream_count(), 1)

    def test_expired_record_is_fetched_again(self):
        """Once the Redis entry expires the record is read from the cloud
        again (with cache.l1_bytes = 0, so Redis is the only store)."""
        gw = self.start_recgate({"cache.ttl": "1s", "cache.l1_bytes": "0"})
        path = harness.record_path("rec-success-1")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "MISS")
        self.assertEqual(gw.get(path)[1].get("x-cache"), "HIT")
        self.assertTrue(harness.wait_for(
            lambda: not self.record_keys(), 5), "the key did not expire")
        time.sleep(0.05)
        self.assertEqual(gw.get(path)[1].get("x-cache"), "MISS")
        self.assertEqual(self.upstream_count(), 2)


if __name__ == "__main__":
    harness.main()
