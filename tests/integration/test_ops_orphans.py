#!/usr/bin/env python3
# server.workers = 2 and the supervising parent is killed with SIGKILL
# (the OOM killer, a careless kill -9): its workers notice, stop accepting,
# let requests in flight finish and exit on their own, instead of serving
# the port as orphans nobody supervises or stops.

import http.client
import os
import signal
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DRAIN_TIMEOUT_S = 3
# The drain bound plus room for a busy machine and AddressSanitizer.
GONE_WITHIN_S = DRAIN_TIMEOUT_S + 4
LATENCY_MS = 1500


children = harness.child_pids
alive = harness.pid_alive
kill_leftovers = harness.kill_pids


class OpsOrphans(harness.RecgateTestCase):

    def start_workers(self, extra=None):
        """A gateway with two workers; returns (gw, worker pids)."""
        cfg = {"server.workers": "2",
               "server.drain_timeout": "%ds" % DRAIN_TIMEOUT_S}
        cfg.update(extra or {})
        gw = self.start_recgate(cfg)
        parent = gw.proc.pid
        workers = harness.wait_for(
            lambda: (lambda c: c if len(c) == 2 else None)(children(parent)),
            5)
        self.assertTrue(workers, "expected 2 workers under pid %d, found %s"
                        % (parent, children(parent)))
        self.addCleanup(kill_leftovers, workers)
        return gw, workers

    def connect_result(self, gw):
        """'refused', or what else happened when connecting now."""
        try:
            with socket.create_connection((gw.host, gw.port), 2):
                return "connected"
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return repr(e)

    def assert_workers_gone(self, gw, workers):
        gone = harness.wait_for(
            lambda: not any(alive(p) for p in workers), GONE_WITHIN_S)
        self.assertTrue(gone, "workers %s still run %d s after their "
                        "parent was killed" % (
                            sorted(p for p in workers if alive(p)),
                            GONE_WITHIN_S))
        self.assertEqual(self.connect_result(gw), "refused",
                         "the port still accepts connections")

    def test_workers_exit_when_the_parent_is_killed(self):
        """SIGKILL to the parent of two idle workers: both exit within
        the drain bound and the port refuses connections."""
        gw, workers = self.start_workers()
        status, _, body = gw.get("/healthz")
        self.assertEqual(status, 200, body)

        gw.kill()

        self.assert_workers_gone(gw, workers)
        stops = [l for l in gw.log_lines() if l.get("pid") in workers and
                 l.get("msg") == "stopping: draining requests in flight"]
        self.assertEqual(len(stops), 2, "each worker logs its stop")

    def test_request_in_flight_is_answered(self):
        """A request waiting on a slow cloud when the parent is killed
        still gets its record; then the workers exit."""
        gw, workers = self.start_workers({
            "server.drain_timeout": "10s",
            "server.request_timeout": "10s",
            "upstream.timeout": "5s",
            "upstream.retries": "0",
        })
        rid = "rec-success-1"
        self.sim.fault(kind="latency", ms=LATENCY_MS)
        result = []

        def client():
            try:
                result.append(gw.get(harness.record_path(rid), timeout=15))
            except (OSError, http.client.HTTPException) as e:
                result.append(repr(e))
        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        # The cloud counts a request on arrival, before the latency.
        self.assertTrue(harness.wait_for(
            lambda: self.upstream_count(rid) >= 1, 5, 0.02),
            "the fetch never reached the cloud")

        gw.kill()

        # Like after SIGTERM: new connections are refused at once, while
        # the request already taken is still being served.
        self.assertTrue(harness.wait_for(
            lambda: self.connect_result(gw) == "refused", 2, 0.02),
            "the orphaned workers still accept connections")
        thread.join(15)
        self.assertEqual(len(result), 1, "the client got no answer")
        self.assertIsInstance(result[0], tuple, result[0])
        status, headers, body = result[0]
        self.assertEqual(status, 200, body)
        self.assertIn(('"id":"%s"' % rid).encode(), body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertTrue(harness.wait_for(
            lambda: not any(alive(p) for p in workers), GONE_WITHIN_S),
            "workers outlived the drain of their last request")
        self.assertEqual(self.connect_result(gw), "refused")


if __name__ == "__main__":
    harness.main()
