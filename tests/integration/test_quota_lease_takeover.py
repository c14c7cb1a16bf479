#!/usr/bin/env python3
# The Redis lease of a cross-process fetch expires when its holder dies:
# a process waiting for the holder's result takes the fetch over, and its
# client is still answered within server.request_timeout.

import http.client
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LATENCY_MS = 1500
REQUEST_TIMEOUT_S = 10
UPSTREAM_TIMEOUT_S = 2
# SET NX PX upstream.timeout + 1 s
LEASE_TTL_MS = UPSTREAM_TIMEOUT_S * 1000 + 1000


def timed_get(gw, path, out, timeout=REQUEST_TIMEOUT_S + 10):
    out.update(status=None, headers={}, body=b"", error=None)
    started = time.monotonic()
    try:
        out["status"], out["headers"], out["body"] = gw.get(path,
                                                            timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        out["error"] = repr(e)
    out["seconds"] = time.monotonic() - started


class QuotaLeaseTakeover(harness.RecgateTestCase):

    def lease_key(self, rid):
        return "recgate:lease:%s:%s" % (harness.PROJECT_ID, rid)

    def run_takeover(self, rid, expected_doc, finished):
        cfg = {"upstream.timeout": "%ds" % UPSTREAM_TIMEOUT_S,
               "server.request_timeout": "%ds" % REQUEST_TIMEOUT_S,
               "cache.ttl": "1h"}
        gw_a = self.start_recgate(cfg)
        gw_b = self.start_recgate(cfg)
        self.sim.fault(record=rid, kind="latency", ms=LATENCY_MS)
        path = harness.record_path(rid)

        out_a, out_b = {}, {}
        thread_a = threading.Thread(target=timed_get, args=(gw_a, path, out_a),
                                    daemon=True)
        thread_a.start()
        # A has the lease and its request is at the cloud.
        self.assertTrue(harness.wait_for(
            lambda: self.upstream_count(rid) == 1, 5),
            "gateway A did not reach the cloud")
        owner = self.redis.get(self.lease_key(rid))
        self.assertIsNotNone(owner, "no lease while A fetches")
        self.assertTrue(owner.endswith(b"-%d" % gw_a.proc.pid),
                        "lease held by %r, A is pid %d" % (owner,
                                                           gw_a.proc.pid))
        pttl = self.redis.command("PTTL", self.lease_key(rid))
        self.assertTrue(0 < pttl <= LEASE_TTL_MS, pttl)

        # B is asked for the same record and waits for A's result.
        thread_b = threading.Thread(target=timed_get, args=(gw_b, path, out_b),
                                    daemon=True)
        thread_b.start()
        time.sleep(0.3)
        self.assertEqual(self.upstream_count(rid), 1,
                         "B fetched although A holds the lease")
        self.assertTrue(thread_b.is_alive(), "B answered before A: %r"
                        % out_b)

        # A dies in the middle of its fetch.
        gw_a.kill()
        killed_at = time.monotonic()
        thread_a.join(10)
        self.assertFalse(thread_a.is_alive())
        self.assertIsNotNone(out_a["error"],
                             "A's client got an answer from a killed "
                             "process: %r" % out_a)

        thread_b.join(REQUEST_TIMEOUT_S + 10)
        self.assertFalse(thread_b.is_alive())
        self.assertIsNone(out_b["error"])
        self.assertEqual(out_b["status"], 200, out_b["body"])
        self.assertLessEqual(out_b["seconds"], REQUEST_TIMEOUT_S,
                             "B's client waited %.2f s" % out_b["seconds"])
        self.assertEqual(json.loads(out_b["body"]), expected_doc)
        self.assertEqual(out_b["headers"].get("x-cache"), "MISS")
        self.assertEqual(out_b["headers"].get("cache-control"),
                         "max-age=3600" if finished else "no-store")
        self.assertEqual(self.upstream_count(rid), 2,
                         "one read by A, one by B: %s" % self.sim.stats())

        self.assertTrue(harness.wait_for(
            lambda: self.redis.get(self.lease_key(rid)) is None, 1.0),
            "B left its lease behind")
        return gw_b

    def test_waiter_takes_over_a_finished_record(self):
        """A holds the lease of a finished record whose upstream answer
        takes 1.5 s; B waits for it; A is killed mid-fetch: B fetches it
        itself once the lease expires, answers 200 within the request
        timeout, and stores it."""
        rid = "rec-success-1"
        gw_b = self.run_takeover(rid, harness.load_fixture(rid), True)
        self.assertEqual(self.record_keys(), [harness.record_key(rid)])
        status, headers, body = gw_b.get(harness.record_path(rid))
        self.assertEqual((status, headers.get("x-cache")), (200, "HIT"))
        self.assertEqual(self.upstream_count(rid), 2)

    def test_waiter_takes_over_a_running_record(self):
        """The same for a record that is still running: B's client gets
        the RUNNING record, nothing is stored."""
        rid = "rec-takeover-running"
        base = harness.load_fixture("rec-stuck-1")
        self.sim.put_record(rid, body=dict(base, id=rid),
                            running_reads=10 ** 9)
        self.run_takeover(rid, dict(base, id=rid), False)
        self.assertEqual(self.record_keys(), [])

    def test_live_holder_waiting_for_a_token_keeps_the_lease(self):
        """A holder that is alive but first waits for a rate-limit token
        (rate 0.5/s, burst 1, queue_timeout 5s) and then takes 1.5 s at
        the cloud keeps the fetch to itself: B, asked for the same record
        meanwhile, gets A's result and the cloud is read once.  (A token
        wait of 2 s plus 1.5 s upstream outlasts a lease of
        upstream.timeout + 1 s = 3 s that is not renewed.)"""
        cfg = {"upstream.timeout": "%ds" % UPSTREAM_TIMEOUT_S,
               "server.request_timeout": "%ds" % REQUEST_TIMEOUT_S,
               "upstream.rate": "0.5", "upstream.burst": "1",
               "upstream.queue_timeout": "5s", "cache.ttl": "1h"}
        gw_a = self.start_recgate(cfg)
        gw_b = self.start_recgate(cfg)
        rid = "rec-lease-running"
        base = harness.load_fixture("rec-stuck-1")
        self.sim.put_record(rid, body=dict(base, id=rid),
                            running_reads=10 ** 9)
        # Spend the one token, so that the next fetch waits ~2 s for one.
        status, _, body = gw_a.get(harness.record_path("rec-failed-1"))
        self.assertEqual(status, 200, body)
        self.sim.fault(record=rid, kind="latency", ms=LATENCY_MS)
        path = harness.record_path(rid)

        out_a, out_b = {}, {}
        thread_a = threading.Thread(target=timed_get, args=(gw_a, path, out_a),
                                    daemon=True)
        thread_a.start()
        self.assertTrue(harness.wait_for(
            lambda: self.redis.get(self.lease_key(rid)) is not None, 2),
            "A took no lease")
        thread_b = threading.Thread(target=timed_get, args=(gw_b, path, out_b),
                                    daemon=True)
        time.sleep(0.2)
        thread_b.start()
        thread_a.join(REQUEST_TIMEOUT_S + 10)
        thread_b.join(REQUEST_TIMEOUT_S + 10)

        for name, out in (("A", out_a), ("B", out_b)):
            self.assertIsNone(out["error"], name)
            self.assertEqual(out["status"], 200,
                             "%s: %r" % (name, out["body"]))
            self.assertEqual(json.loads(out["body"]), dict(base, id=rid))
        self.assertEqual(
            self.upstream_count(rid), 1,
            "the running record was read %d times from the cloud; A took "
            "%.2f s, B %.2f s" % (self.upstream_count(rid), out_a["seconds"],
                                  out_b["seconds"]))
        self.assertEqual(out_b["body"], out_a["body"])


if __name__ == "__main__":
    harness.main()
