#!/usr/bin/env python3
# A second recgate started on the address a running one listens on is
# refused (one JSON error line, a non-zero exit, no worker started), like
# nginx, instead of quietly taking a share of the traffic through
# SO_REUSEPORT. The first keeps answering every request, and a recgate
# stopped and started again on its port starts fine.

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Refusing needs no worker and no Redis round trip: a few seconds leave
# room for a busy machine and AddressSanitizer.
REFUSE_WITHIN_S = 5
REQUESTS = 20


def healthz_lines(gw):
    """The access log lines of /healthz requests in gw's log."""
    return [l for l in gw.log_lines() if l.get("path") == "/healthz"]


class OpsPortInUse(harness.RecgateTestCase):

    def start_second(self, first, workers):
        """A recgate with its own config on first's address, not waited
        for."""
        return self.start_recgate({
            "server.listen": first.config["server.listen"],
            "server.workers": str(workers),
        }, wait=False)

    def assert_refused(self, second):
        """second exited non-zero by itself, having said in exactly one
        JSON error line that the address is in use, and started no
        worker."""
        code = second.wait_exit(REFUSE_WITHIN_S)
        self.assertIsNotNone(code, "a second recgate on %s still runs %d s "
                             "after its start:\n%s" % (
                                 second.config["server.listen"],
                                 REFUSE_WITHIN_S,
                                 harness.tail(second.log_path)))
        self.assertNotEqual(code, 0)

        text = second.log_text()
        lines = second.log_lines()
        self.assertEqual(len(lines), len(text.splitlines()),
                         "stderr holds lines that are not JSON:\n" + text)
        errors = [l for l in lines if l.get("level") == "error"]
        self.assertEqual(len(errors), 1, text)
        self.assertEqual(errors[0].get("msg"), "cannot start", text)
        message = errors[0].get("error", "")
        self.assertIn("address in use", message)
        self.assertIn(second.config["server.listen"], message)

        started = [l for l in lines if l.get("msg") in ("worker started",
                                                        "listening")]
        self.assertEqual(started, [], "a worker started before the refusal")

    def assert_first_answers_all(self, first, second):
        """REQUESTS new connections to the port: every one answered 200
        by first (its access log holds each), none by second."""
        before = len(healthz_lines(first))
        for _ in range(REQUESTS):
            status, _, body = first.get("/healthz")
            self.assertEqual(status, 200, body)

        counted = harness.wait_for(
            lambda: len(healthz_lines(first)) - before >= REQUESTS, 5)
        self.assertTrue(counted, "the first recgate logged %d of %d "
                        "requests" % (len(healthz_lines(first)) - before,
                                      REQUESTS))
        self.assertEqual(healthz_lines(second), [])

    def check(self, first_workers, second_workers):
        first = self.start_recgate({"server.workers": str(first_workers)})
        second = self.start_second(first, second_workers)

        self.assert_refused(second)
        self.assertTrue(first.running(), "the first recgate died")
        self.assert_first_answers_all(first, second)
        first.stop()
        self.assertEqual(first.returncode, 0)

    def test_second_single_worker_is_refused(self):
        """server.workers = 1 for both: the second is refused."""
        self.check(1, 1)

    def test_second_with_workers_is_refused(self):
        """server.workers = 2 for both: the second is refused before its
        supervisor forks any worker."""
        self.check(2, 2)

    def test_restart_on_the_same_port(self):
        """A recgate that answered (and closed) connections, then stopped,
        leaves connections in TIME_WAIT on its port: a new start on that
        port is not refused, with one worker or two."""
        first = self.start_recgate({"server.workers": "2"})
        for _ in range(5):
            status, _, _ = first.get("/healthz",
                                     headers={"Connection": "close"})
            self.assertEqual(status, 200)
        first.stop()

        for workers in (1, 2):
            again = self.start_recgate({
                "server.listen": first.config["server.listen"],
                "server.workers": str(workers),
            })
            status, _, body = again.get("/healthz",
                                        headers={"Connection": "close"})
            self.assertEqual(status, 200, body)
            again.stop()
            self.assertEqual(again.returncode, 0)


if __name__ == "__main__":
    harness.main()
