#!/usr/bin/env python3
# Upstream faults acted out by the simulator: a dropped connection, a body
# cut short, a chunked body, a body over upstream.max_body, a cloud that
# never answers and a slow 429. Each gets its documented answer within its
# deadline, nothing is cached (the next read goes to the cloud again), and
# the gateway stops cleanly afterwards (on the ASan build: no reports).

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RECORD = "rec-success-1"
PATH = harness.record_path(RECORD)
# No retries, so that each fault costs exactly one upstream request.
NO_RETRY = {"upstream.retries": "0", "upstream.timeout": "2s"}


class SafeUpstreamFaults(harness.RecgateTestCase):

    def timed_get(self, gw, path=PATH, timeout=15):
        started = time.monotonic()
        reply = gw.get(path, timeout=timeout)
        return reply, time.monotonic() - started

    def assert_nothing_cached_and_recovers(self, gw, before):
        """No record key; with the fault gone the next read goes to the
        cloud (one more request) and is a MISS, then a HIT."""
        self.assertEqual(self.record_keys(), [])
        self.sim.clear_faults()
        self.assertEqual(self.upstream_count(RECORD), before)
        status, headers, body = gw.get(PATH)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture(RECORD)))
        self.assertEqual(self.upstream_count(RECORD), before + 1)
        self.assertEqual(gw.get(PATH)[1].get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count(RECORD), before + 1)

    def check_fault(self, fault, config, status, code, max_s, min_s=0.0,
                    upstream=1):
        gw = self.start_recgate(dict(NO_RETRY, **config))
        self.sim.fault(**fault)
        reply, took = self.timed_get(gw)
        self.assertErrorReply(reply, status, code)
        self.assertLess(took, max_s, "%s took %.2f s" % (fault, took))
        self.assertGreaterEqual(took, min_s, "%s took only %.2f s"
                                % (fault, took))
        self.assertEqual(self.upstream_count(RECORD), upstream,
                         self.sim.stats())
        self.assert_nothing_cached_and_recovers(gw, upstream)
        self.assertTrue(gw.running())
        gw.stop()    # raises on an unclean exit or a sanitizer report
        return reply

    def test_drop(self):
        """The cloud closes the connection without answering: 502
        RECGATE.5020 at once."""
        self.check_fault({"kind": "drop"}, {}, 502, "RECGATE.5020", 1.5)

    def test_drop_mid_body(self):
        """200 headers, half the announced body, then a close: 502
        RECGATE.5020, the half record never served or stored."""
        self.check_fault({"kind": "drop_mid_body"}, {}, 502,
                         "RECGATE.5020", 1.5)

    def test_chunked_body_works(self):
        """A chunked 200 is a normal record: 200 MISS, stored, then
        HIT."""
        gw = self.start_recgate(NO_RETRY)
        self.sim.fault(kind="chunked", count=1)
        (status, headers, body), took = self.timed_get(gw)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture(RECORD)))
        self.assertLess(took, 1.5)
        self.assertEqual(self.record_keys(), [harness.record_key(RECORD)])
        self.assertEqual(gw.get(PATH)[1].get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count(RECORD), 1)
        gw.stop()

    def test_body_over_max_body(self):
        """A 10 MB body with upstream.max_body = 1MiB: 502 RECGATE.5022."""
        self.check_fault({"kind": "huge", "bytes": 10 * 1000 * 1000},
                         {"upstream.max_body": "1MiB"}, 502,
                         "RECGATE.5022", 2.0)

    def test_body_over_default_max_body(self):
        """A 10 MB body with the default upstream.max_body (8MiB): 502
        RECGATE.5022."""
        self.check_fault({"kind": "huge", "bytes": 10 * 1000 * 1000},
                         {"upstream.max_body": None}, 502,
                         "RECGATE.5022", 3.0)

    def test_body_under_max_body_works(self):
        """A 512 KiB record with upstream.max_body = 1MiB is served and
        stored: the limit is not stricter than configured."""
        gw = self.start_recgate(dict(NO_RETRY, **{"upstream.max_body":
                                                  "1MiB"}))
        self.sim.fault(kind="huge", bytes=512 * 1024, count=1)
        (status, headers, body), took = self.timed_get(gw)
        self.assertEqual(status, 200, body[:200])
        self.assertGreater(len(body), 500 * 1024)
        self.assertEqual(self.record_keys(), [harness.record_key(RECORD)])
        self.assertEqual(gw.get(PATH)[1].get("x-cache"), "HIT")
        gw.stop()

    def test_hang(self):
        """A cloud that never answers, upstream.timeout = 1s: 504
        RECGATE.5040 after about a second."""
        self.check_fault({"kind": "hang", "max_s": 30},
                         {"upstream.timeout": "1s"}, 504, "RECGATE.5040",
                         2.0, min_s=0.9)

    def test_slow_429(self):
        """A 429 after 600 ms (within upstream.timeout = 2s): 429
        RECGATE.4290 with Retry-After, nothing cached; the read after
        the hold-off goes to the cloud."""
        gw = self.start_recgate(NO_RETRY)
        self.sim.fault(kind="latency", ms=600, count=1)
        self.sim.fault(kind="status", status=429, retry_after=1, count=1)
        reply, took = self.timed_get(gw)
        self.assertErrorReply(reply, 429, "RECGATE.4290")
        self.assertTrue(reply[1].get("retry-after", "").isdigit(), reply[1])
        self.assertGreaterEqual(int(reply[1]["retry-after"]), 1)
        self.assertGreaterEqual(took, 0.55)
        self.assertLess(took, 1.8, "slow 429 took %.2f s" % took)
        self.assertEqual(self.upstream_count(RECORD), 1)
        time.sleep(1.1)    # the cloud's Retry-After
        self.assert_nothing_cached_and_recovers(gw, 1)
        gw.stop()

    def test_429_slower_than_the_timeout(self):
        """A 429 that comes after upstream.timeout (1s): 504 RECGATE.5040
        after about a second."""
        gw = self.start_recgate(dict(NO_RETRY, **{"upstream.timeout": "1s"}))
        self.sim.fault(kind="latency", ms=1800, count=1)
        self.sim.fault(kind="status", status=429, retry_after=1, count=1)
        reply, took = self.timed_get(gw)
        self.assertErrorReply(reply, 504, "RECGATE.5040")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.0, "took %.2f s" % took)
        time.sleep(1.0)    # the simulator is done with the slow request
        self.assertEqual(self.upstream_count(RECORD), 1)
        self.assert_nothing_cached_and_recovers(gw, 1)
        gw.stop()

    def test_drop_with_retries(self):
        """upstream.retries = 2: a cloud that always drops is asked three
        times, then 502 RECGATE.5020, well within request_timeout."""
        self.check_fault({"kind": "drop"}, {"upstream.retries": "2",
                                            "upstream.retry_backoff":
                                            "50ms"},
                         502, "RECGATE.5020", 3.0, upstream=3)

    def test_concurrent_waiters_share_the_failure(self):
        """Eight clients asking for the same record while the cloud hangs
        (upstream.timeout = 1s) share one upstream request and all get
        504 RECGATE.5040; then eight share one drop_mid_body and get 502;
        the gateway then recovers and stops cleanly."""
        gw = self.start_recgate(dict(NO_RETRY, **{
            "upstream.timeout": "1s", "upstream.breaker_failures": "100"}))
        for kind, status, code in (("hang", 504, "RECGATE.5040"),
                                   ("drop_mid_body", 502, "RECGATE.5020")):
            self.sim.reset()
            # The latency keeps the fetch in flight while all eight join.
            self.sim.fault(kind="latency", ms=400)
            self.sim.fault(kind=kind, max_s=30)
            replies = [None] * 8

            def fetch(i):
                replies[i] = self.timed_get(gw)
            threads = [threading.Thread(target=fetch, args=(i,))
                       for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            for reply, took in replies:
                self.assertErrorReply(reply, status, code)
                self.assertLess(took, 2.0, "%s: %.2f s" % (kind, took))
            self.assertEqual(self.upstream_count(RECORD), 1, kind)
            self.assertEqual(self.record_keys(), [])
        self.assert_nothing_cached_and_recovers(gw, 1)
        gw.stop()


if __name__ == "__main__":
    harness.main()
