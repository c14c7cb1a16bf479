#!/usr/bin/env python3
# The cloud's own 429: its Retry-After becomes a pause shared by every
# process through Redis, so no process calls the cloud until it is over;
# the request that met the 429 is retried after the pause when its
# deadline allows, else answered 429 with Retry-After.

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PAUSE_S = 2
PAUSE_KEY = "recgate:pause"
POLL_S = 0.01
# How late the test may notice the pause key after the gateway set it:
# the pause window checked below starts when the key was seen and ends
# when its remaining lifetime (PTTL read then) says, minus this margin.
MARGIN_S = 0.1


def timed_get(gw, path, out, timeout=20):
    started = time.monotonic()
    out.update(status=None, headers={}, body=b"", error=None,
               started=started)
    try:
        out["status"], out["headers"], out["body"] = gw.get(path,
                                                            timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        out["error"] = repr(e)
    out["ended"] = time.monotonic()
    out["seconds"] = out["ended"] - started


def in_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class QuotaCloud429(harness.RecgateTestCase):

    def put_running(self, rid):
        base = harness.load_fixture("rec-stuck-1")
        self.sim.put_record(rid, body=dict(base, id=rid),
                            running_reads=10 ** 9)

    def wait_for_pause(self):
        """Waits until the pause key appears; returns (monotonic time it
        was seen, its PTTL then in ms)."""
        seen = harness.wait_for(
            lambda: self.redis.command("PTTL", PAUSE_KEY) > 0, 5, POLL_S)
        self.assertTrue(seen, "no %s key after the cloud's 429" % PAUSE_KEY)
        t = time.monotonic()
        pttl = self.redis.command("PTTL", PAUSE_KEY)
        self.assertGreater(pttl, 0)
        self.assertLessEqual(pttl, PAUSE_S * 1000,
                             "the pause is longer than the Retry-After")
        return t, pttl

    def watch_sim(self, until):
        """Polls the simulator's request count until the monotonic time
        until; returns [(time after poll, count)]."""
        samples = []
        while time.monotonic() < until:
            samples.append((time.monotonic(), self.sim.stats()["requests"]))
            # stats() above took a while; record when its answer arrived.
            samples[-1] = (time.monotonic(), samples[-1][1])
            time.sleep(POLL_S)
        return samples

    def run_pause_scenario(self, request_timeout):
        cfg = {"server.request_timeout": request_timeout, "cache.ttl": "1h"}
        first = self.start_recgate(cfg)
        second = self.start_recgate(cfg)
        rid = "rec-success-1"
        others = ["rec-429-other-%d" % i for i in range(4)]
        for o in others:
            self.put_running(o)
        self.sim.fault(record=rid, kind="status", status=429,
                       retry_after=PAUSE_S, count=1)

        first_out = {}
        first_thread = in_thread(timed_get, first, harness.record_path(rid),
                                 first_out)
        seen_at, pttl = self.wait_for_pause()
        pause_end = seen_at + pttl / 1000.0
        self.assertEqual(self.upstream_count(), 1)

        # While the pause lasts, the second gateway is asked for other
        # records, one every 200 ms.
        other_outs = [{} for _ in others]
        other_threads = []
        for i, o in enumerate(others):
            other_threads.append(in_thread(
                timed_get, second, harness.record_path(o), other_outs[i]))
            time.sleep(0.2)
        samples = self.watch_sim(pause_end - MARGIN_S)
        during = [(round(t - seen_at, 3), n) for t, n in samples if n != 1]
        self.assertEqual(
            during, [],
            "upstream requests reached the cloud within the %d s pause "
            "(seconds after the pause was seen, sim count)" % PAUSE_S)

        for t in other_threads + [first_thread]:
            t.join(30)
        return first, second, rid, others, first_out, other_outs, pause_end

    def test_pause_is_shared_and_the_request_retried_after_it(self):
        """The cloud answers 429 Retry-After: 2 once for a record asked of
        gateway A: neither A nor gateway B sends anything upstream for
        2 s, though B is asked for other records meanwhile; the first
        client then gets 200 from the retry after the pause (default
        10 s deadline), and B's clients are served after the pause."""
        (first, second, rid, others, first_out, other_outs,
         pause_end) = self.run_pause_scenario("10s")

        self.assertIsNone(first_out["error"])
        self.assertEqual(first_out["status"], 200, first_out["body"])
        self.assertEqual(first_out["headers"].get("x-cache"), "MISS")
        self.assertEqual(json.loads(first_out["body"]),
                         harness.load_fixture(rid))
        self.assertGreaterEqual(first_out["seconds"], PAUSE_S - MARGIN_S,
                                "the retry did not wait for Retry-After")
        self.assertLess(first_out["seconds"], 10)

        for o, out in zip(others, other_outs):
            with self.subTest(record=o):
                self.assertIsNone(out["error"])
                # The pause (at most 2 s) fits in upstream.queue_timeout
                # (2 s): they wait for it and are then served.
                self.assertEqual(out["status"], 200, out["body"])
                self.assertEqual(json.loads(out["body"])["id"], o)
                self.assertGreaterEqual(out["ended"], pause_end - MARGIN_S)

        stats = self.sim.stats()
        self.assertEqual(stats["by_record"].get(rid), 2, stats)
        for o in others:
            self.assertEqual(stats["by_record"].get(o), 1, stats)
        self.assertEqual(stats["requests"], 2 + len(others), stats)
        m = first.metrics()
        self.assertEqual(m.get('recgate_upstream_requests_total{code="429"}'),
                         1.0)
        self.assertEqual(m.get('recgate_upstream_requests_total{code="200"}'),
                         1.0)

    def test_short_deadline_gets_429_with_retry_after(self):
        """With server.request_timeout = 1s the pause does not fit in the
        first client's deadline: it gets 429 RECGATE.4290 with the cloud's
        Retry-After at once, not retried; the pause still holds for both
        gateways."""
        (first, second, rid, others, first_out, other_outs,
         pause_end) = self.run_pause_scenario("1s")

        self.assertIsNone(first_out["error"])
        doc = self.assertErrorReply(
            (first_out["status"], first_out["headers"], first_out["body"]),
            429, "RECGATE.4290")
        self.assertEqual(first_out["headers"].get("retry-after"),
                         str(PAUSE_S), doc)
        self.assertLess(first_out["seconds"], 1.0 + 0.5)

        for o, out in zip(others, other_outs):
            with self.subTest(record=o):
                self.assertIsNone(out["error"])
                # Each was sent at most 0.6 s into the 2 s pause: the
                # pause outlasts its own 1 s deadline, so it is refused.
                self.assertErrorReply(
                    (out["status"], out["headers"], out["body"]), 429,
                    "RECGATE.4290")
                retry = out["headers"].get("retry-after", "")
                self.assertTrue(retry.isdigit() and 1 <= int(retry) <= PAUSE_S,
                                "Retry-After %r" % retry)
                self.assertLess(out["seconds"], 1.0 + 0.5)

        stats = self.sim.stats()
        self.assertEqual(stats["by_record"].get(rid), 1, stats)
        self.assertEqual(stats["requests"], 1, stats)
        self.assertEqual(
            first.metrics().get("recgate_ratelimited_total", 0.0)
            + second.metrics().get("recgate_ratelimited_total", 0.0),
            float(len(others)))


if __name__ == "__main__":
    harness.main()
