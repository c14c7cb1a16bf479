#!/usr/bin/env python3
# The in-process cache (L1) keeps a record no longer than cache.ttl, as
# Redis does: once the TTL has passed since it was filled, the next
# request looks the record up again instead of being served a HIT from
# memory.

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RECORD = "rec-success-1"
TTL_S = 1.5


class L1Ttl(harness.RecgateTestCase):

    def cache_of(self, gw, path):
        status, headers, body = gw.get(path)
        self.assertEqual(status, 200, body)
        return headers.get("x-cache")

    def test_l1_serves_within_the_ttl(self):
        """Within cache.ttl a HIT comes from L1 alone: with the Redis key
        deleted, the record is still a HIT and the cloud is not asked."""
        gw = self.start_recgate({"cache.ttl": "10s"})
        path = harness.record_path(RECORD)
        self.assertEqual(self.cache_of(gw, path), "MISS")

        self.redis.command("DEL", harness.record_key(RECORD))
        self.assertEqual(self.record_keys(), [])
        self.assertEqual(self.cache_of(gw, path), "HIT")
        self.assertEqual(self.upstream_count(RECORD), 1)

    def test_record_is_fetched_again_after_the_ttl(self):
        """cache.ttl = 1500ms: MISS, then HIT; once Redis has expired the
        record and the TTL has passed, the next request goes to the cloud
        again (MISS, a second upstream read), then is a HIT again."""
        gw = self.start_recgate({"cache.ttl": "1500ms"})
        path = harness.record_path(RECORD)

        self.assertEqual(self.cache_of(gw, path), "MISS")
        filled = time.monotonic()    # no earlier than L1 was filled
        self.assertEqual(self.cache_of(gw, path), "HIT")
        self.assertEqual(self.upstream_count(RECORD), 1)

        self.assertTrue(harness.wait_for(lambda: not self.record_keys(), 5),
                        "Redis did not expire the record")
        time.sleep(max(0.0, filled + TTL_S + 0.1 - time.monotonic()))
        self.assertEqual(self.cache_of(gw, path), "MISS")
        self.assertEqual(self.upstream_count(RECORD), 2)
        self.assertEqual(self.cache_of(gw, path), "HIT")
        self.assertEqual(self.upstream_count(RECORD), 2)


if __name__ == "__main__":
    harness.main()
