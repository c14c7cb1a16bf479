#!/usr/bin/env python3
# SIGTERM drains: the listening socket closes at once (a new connection is
# refused), every request already in flight still gets its answer, and
# the process exits 0.

import http.client
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLIENTS = 50
# Long enough that all 50 fetches are under way before the first answer
# comes back, also under AddressSanitizer on a busy machine.
LATENCY_MS = 3000
STOP_LINE = "stopping: draining requests in flight"


class OpsDrain(harness.RecgateTestCase):

    def start_slow_clients(self, gw, record_ids):
        """One thread per record: a GET on its own connection.  Returns
        (threads, results) with results[i] a (status, headers, body) or
        an exception text once thread i is done."""
        results = [None] * len(record_ids)

        def client(i, rid):
            conn = gw.connection(30)
            try:
                results[i] = harness.http_request(
                    conn, "GET", harness.record_path(rid))
            except (OSError, http.client.HTTPException) as e:
                results[i] = repr(e)
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i, rid),
                                    daemon=True)
                   for i, rid in enumerate(record_ids)]
        # Started 10 ms apart: the simulator's listen backlog is small
        # (5), and 50 connects at the same instant would have some of the
        # gateway's fetches wait a SYN retransmission (1 s and more).
        for t in threads:
            t.start()
            time.sleep(0.01)
        return threads, results

    def connect_result(self, gw):
        """'refused', or what else happened when connecting now."""
        try:
            with socket.create_connection((gw.host, gw.port), 2):
                return "connected"
        except ConnectionRefusedError:
            return "refused"
        except OSError as e:
            return repr(e)

    def drain(self, workers):
        gw = self.start_recgate({
            "server.workers": str(workers),
            "server.drain_timeout": "20s",
            "server.request_timeout": "30s",
            "upstream.timeout": "15s",
            "upstream.rate": "1000",
            "upstream.burst": "1000",
            "upstream.retries": "0",
        })
        base = harness.load_fixture("rec-success-1")
        rids = ["rec-drain-%02d" % i for i in range(CLIENTS)]
        for rid in rids:
            self.sim.put_record(rid, body=dict(base, id=rid))
        self.sim.fault(kind="latency", ms=LATENCY_MS)

        threads, results = self.start_slow_clients(gw, rids)
        # All 50 are in flight once the cloud has received all 50 fetches
        # (it counts a request on arrival, before the latency).
        in_flight = harness.wait_for(
            lambda: self.upstream_count() >= CLIENTS, 10, 0.02)
        self.assertTrue(in_flight, "only %d of %d fetches reached the cloud"
                        % (self.upstream_count(), CLIENTS))
        early = [r for r in results if r is not None]
        self.assertEqual(early, [], "answers came back before SIGTERM: "
                         "the latency fault did not hold them")

        signalled = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)

        # Every worker says it stops, then its listening socket is gone.
        def stop_lines():
            return sum(1 for line in gw.log_lines()
                       if line.get("msg") == STOP_LINE)
        self.assertTrue(harness.wait_for(lambda: stop_lines() >= workers, 2,
                                         0.01),
                        "%d of %d workers logged %r" % (stop_lines(), workers,
                                                        STOP_LINE))
        time.sleep(0.05)
        after_signal = self.connect_result(gw)
        still_in_flight = sum(1 for r in results if r is None)

        for t in threads:
            t.join(30)
        code = gw.wait_exit(30)
        took = time.monotonic() - signalled

        self.assertEqual(after_signal, "refused",
                         "a connection attempt after SIGTERM (with %d "
                         "requests still in flight) was not refused"
                         % still_in_flight)
        self.assertGreater(still_in_flight, 0,
                           "the requests finished before the connection "
                           "check; the test proved nothing about draining")

        failed = [(rid, r if isinstance(r, str) else (r[0], r[2][:120]))
                  for rid, r in zip(rids, results)
                  if not isinstance(r, tuple) or r[0] != 200]
        self.assertEqual(failed, [], "%d of %d requests in flight at SIGTERM "
                         "did not get 200" % (len(failed), CLIENTS))
        for rid, r in zip(rids, results):
            self.assertEqual(r[1].get("x-cache"), "MISS")
            self.assertIn(('"id":"%s"' % rid).encode(), r[2])

        self.assertEqual(code, 0, "exit status after SIGTERM (None: still "
                         "running %.1f s after the signal)" % took)
        self.assertEqual(self.upstream_count(), CLIENTS)
        self.assertEqual(self.connect_result(gw), "refused")

    def test_sigterm_drains_in_flight_requests(self):
        """50 slow requests (3 s upstream latency) in flight, SIGTERM: new
        connections are refused at once, all 50 get 200, exit status 0."""
        self.drain(1)

    def test_sigterm_drains_in_flight_requests_two_workers(self):
        """The same with server.workers = 2 (the signal goes to the
        supervising parent)."""
        self.drain(2)

    def test_idle_gateway_exits_at_once(self):
        """With nothing in flight SIGTERM exits 0 well before
        server.drain_timeout."""
        gw = self.start_recgate({"server.drain_timeout": "20s"})
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[0],
                         200)
        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        code = gw.wait_exit(10)
        self.assertEqual(code, 0)
        self.assertLess(time.monotonic() - started, 3)


if __name__ == "__main__":
    harness.main()
