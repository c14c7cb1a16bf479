#!/usr/bin/env python3
# Retries of transient upstream failures, and the circuit breaker that
# stops calling a failing cloud and lets one probe through after the
# cool-down.

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

COOLDOWN_S = 2
FAILURES = 3
# The whole upstream exchange may take this long (the default): what is
# tested here is the cloud's answers, not a slow connect on a busy host.
UPSTREAM_TIMEOUT = "5s"


class QuotaRetryBreaker(harness.RecgateTestCase):

    def readyz(self, gw):
        status, headers, body = gw.get("/readyz")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        return json.loads(body)

    def assert_record(self, reply, rid, cache="MISS"):
        status, headers, body = reply
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), cache)
        self.assertEqual(json.loads(body), harness.load_fixture(rid))

    # -- retries

    def test_transient_503_is_retried(self):
        """The cloud answers 503 once, then the record: the client gets
        200 and the cloud was asked twice."""
        gw = self.start_recgate({"upstream.timeout": UPSTREAM_TIMEOUT})
        rid = "rec-success-1"
        self.sim.fault(record=rid, kind="status", status=503, count=1)
        started = time.monotonic()
        self.assert_record(gw.get(harness.record_path(rid)), rid)
        # Backoff of the first retry: full jitter under 100 ms x 2 (the
        # bound leaves room for a slow connect on a busy host).
        self.assertLess(time.monotonic() - started, 5.0,
                        "the retry waited too long")
        self.assertEqual(self.upstream_count(rid), 2)
        self.assertEqual(self.upstream_count(), 2)
        m = gw.metrics()
        self.assertEqual(m.get('recgate_upstream_requests_total{code="503"}'),
                         1.0)
        self.assertEqual(m.get('recgate_upstream_requests_total{code="200"}'),
                         1.0)
        self.assertEqual(self.readyz(gw)["breaker"], "closed")

    def test_connection_drop_is_retried(self):
        """A dropped connection (no answer) once, then the record: 200
        after two upstream requests."""
        gw = self.start_recgate({"upstream.timeout": UPSTREAM_TIMEOUT})
        rid = "rec-failed-1"
        self.sim.fault(record=rid, kind="drop", count=1)
        self.assert_record(gw.get(harness.record_path(rid)), rid)
        self.assertEqual(self.upstream_count(rid), 2)

    def test_retries_are_bounded(self):
        """A cloud that always answers 500 is asked 1 + upstream.retries
        times (default 2), then the client gets 502 RECGATE.5020."""
        gw = self.start_recgate({"upstream.timeout": UPSTREAM_TIMEOUT})
        rid = "rec-success-1"
        self.sim.fault(record=rid, kind="status", status=500)
        started = time.monotonic()
        self.assertErrorReply(gw.get(harness.record_path(rid)), 502,
                              "RECGATE.5020")
        self.assertLess(time.monotonic() - started, 10.0)
        self.assertEqual(self.upstream_count(rid), 3)
        self.assertEqual(self.record_keys(), [])

    def test_4xx_is_not_retried(self):
        """A 404 from the cloud is passed through after one request, never
        retried (the fault applies once, so a retry would have found the
        record)."""
        gw = self.start_recgate({"upstream.timeout": UPSTREAM_TIMEOUT})
        rid = "rec-success-1"
        self.sim.fault(record=rid, kind="status", status=404, count=1,
                       body={"error_code": "WKS.0404",
                             "error_msg": "record not found"})
        reply = gw.get(harness.record_path(rid))
        doc = self.assertErrorReply(reply, 404, "WKS.0404")
        self.assertEqual(doc["error_msg"], "record not found")
        self.assertEqual(self.upstream_count(rid), 1)

    # -- the breaker

    def test_breaker_opens_fails_fast_and_closes_after_a_probe(self):
        """retries 0, breaker_failures 3, cool-down 2 s: three 500s open
        the breaker; then requests get 503 RECGATE.5030 with Retry-After
        in under 100 ms without reaching the cloud and /readyz says open;
        a probe during a still-failing cloud re-opens it; once the cloud
        recovers and the cool-down passed, a request goes through (200)
        and /readyz says closed."""
        gw = self.start_recgate({
            "upstream.timeout": UPSTREAM_TIMEOUT,
            "upstream.retries": "0",
            "upstream.breaker_failures": str(FAILURES),
            "upstream.breaker_cooldown": "%ds" % COOLDOWN_S,
        })
        self.assertEqual(self.readyz(gw)["breaker"], "closed")
        self.sim.fault(kind="status", status=500)

        failing = ["rec-success-1", "rec-failed-1", "rec-timeout-1"]
        for n, rid in enumerate(failing, 1):
            self.assertErrorReply(gw.get(harness.record_path(rid)), 502,
                                  "RECGATE.5020")
            self.assertEqual(self.upstream_count(), n)
            expected = "open" if n == FAILURES else "closed"
            self.assertEqual(self.readyz(gw)["breaker"], expected,
                             "after %d failures" % n)
        opened_at = time.monotonic()

        ready = self.readyz(gw)
        self.assertEqual(ready["status"], "ready")
        self.assertEqual(ready["breaker"], "open")

        # Open: fail fast, nothing upstream.
        for rid in ("rec-success-1", "rec-unicode-1", "rec-stuck-1"):
            started = time.monotonic()
            reply = gw.get(harness.record_path(rid))
            took = time.monotonic() - started
            self.assertErrorReply(reply, 503, "RECGATE.5030")
            self.assertLess(took, 0.1, "503 took %.3f s" % took)
            retry = reply[1].get("retry-after", "")
            self.assertTrue(retry.isdigit()
                            and 1 <= int(retry) <= COOLDOWN_S + 1,
                            "Retry-After %r" % retry)
        self.assertEqual(self.upstream_count(), FAILURES,
                         "requests reached the cloud while the breaker "
                         "was open")

        # After the cool-down, with the cloud still failing: one probe
        # goes through, fails, and the breaker opens again.
        time.sleep(max(0.0, opened_at + COOLDOWN_S + 0.1 - time.monotonic()))
        self.assertErrorReply(gw.get(harness.record_path("rec-success-1")),
                              502, "RECGATE.5020")
        self.assertEqual(self.upstream_count(), FAILURES + 1)
        reopened_at = time.monotonic()
        self.assertEqual(self.readyz(gw)["breaker"], "open")
        started = time.monotonic()
        self.assertErrorReply(gw.get(harness.record_path("rec-success-1")),
                              503, "RECGATE.5030")
        self.assertLess(time.monotonic() - started, 0.1)
        self.assertEqual(self.upstream_count(), FAILURES + 1)

        # The cloud recovers; still open until the cool-down ends.
        self.sim.clear_faults()
        self.assertErrorReply(gw.get(harness.record_path("rec-success-1")),
                              503, "RECGATE.5030")
        self.assertEqual(self.upstream_count(), FAILURES + 1)

        time.sleep(max(0.0,
                       reopened_at + COOLDOWN_S + 0.1 - time.monotonic()))
        self.assert_record(gw.get(harness.record_path("rec-success-1")),
                           "rec-success-1")
        self.assertEqual(self.upstream_count(), FAILURES + 2)
        self.assertEqual(self.readyz(gw)["breaker"], "closed")

        # Closed: the other records are served normally again.
        self.assert_record(gw.get(harness.record_path("rec-failed-1")),
                           "rec-failed-1")
        self.assertEqual(self.upstream_count(), FAILURES + 3)
        self.assert_record(gw.get(harness.record_path("rec-success-1")),
                           "rec-success-1", cache="HIT")
        self.assertEqual(self.upstream_count(), FAILURES + 3)

    def test_half_open_lets_exactly_one_probe_through(self):
        """After the cool-down, concurrent requests for different records
        while the probe is under way: exactly one reaches the cloud, the
        others get 503 RECGATE.5030."""
        gw = self.start_recgate({
            "upstream.timeout": UPSTREAM_TIMEOUT,
            "upstream.retries": "0",
            "upstream.breaker_failures": "1",
            "upstream.breaker_cooldown": "1s",
        })
        self.sim.fault(record="rec-failed-1", kind="status", status=500,
                       count=1)
        self.assertErrorReply(gw.get(harness.record_path("rec-failed-1")),
                              502, "RECGATE.5020")
        self.assertEqual(self.readyz(gw)["breaker"], "open")
        time.sleep(1.2)

        # The probe is slow, so the others arrive while it is out.
        self.sim.fault(kind="latency", ms=500)
        rids = ["rec-success-1", "rec-unicode-1", "rec-timeout-1",
                "rec-stuck-1"]
        out = {}

        def ask(rid):
            out[rid] = gw.get(harness.record_path(rid))

        probe = threading.Thread(target=ask, args=(rids[0],))
        probe.start()
        self.assertTrue(harness.wait_for(
            lambda: self.upstream_count(rids[0]) == 1, 2))
        self.assertEqual(self.readyz(gw)["breaker"], "half_open")
        for rid in rids[1:]:
            started = time.monotonic()
            ask(rid)
            self.assertErrorReply(out[rid], 503, "RECGATE.5030")
            self.assertLess(time.monotonic() - started, 0.1)
        probe.join(10)
        self.assert_record(out[rids[0]], rids[0])
        self.assertEqual(self.upstream_count(), 2)
        self.assertEqual(self.readyz(gw)["breaker"], "closed")


if __name__ == "__main__":
    harness.main()
