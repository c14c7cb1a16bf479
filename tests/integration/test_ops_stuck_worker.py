#!/usr/bin/env python3
# server.workers = 2, one worker stuck (SIGSTOP here; a busy loop or a
# hung disk in real life) and SIGTERM to the supervising parent: the
# stuck worker cannot drain, so after server.drain_timeout and a short
# grace the parent kills it, reaps it and exits, instead of keeping the
# port and the service manager waiting for ever.

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DRAIN_TIMEOUT_S = 2
GONE_WITHIN_S = DRAIN_TIMEOUT_S + 5


children = harness.child_pids
alive = harness.pid_alive
kill_leftovers = harness.kill_pids


class OpsStuckWorker(harness.RecgateTestCase):

    def test_a_stuck_worker_is_killed_after_the_drain_timeout(self):
        """One of two workers SIGSTOPped, SIGTERM to the parent: within
        drain_timeout + 5 s the parent has exited (1: a worker had to be
        killed) and both workers are gone; the log names the killed
        worker's pid in a warning."""
        gw = self.start_recgate({
            "server.workers": "2",
            "server.drain_timeout": "%ds" % DRAIN_TIMEOUT_S})
        parent = gw.proc.pid
        workers = harness.wait_for(
            lambda: (lambda c: c if len(c) == 2 else None)(children(parent)),
            5)
        self.assertTrue(workers, "expected 2 workers under pid %d, found %s"
                        % (parent, children(parent)))
        self.addCleanup(kill_leftovers, workers)
        stuck = min(workers)
        os.kill(stuck, signal.SIGSTOP)

        start = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        code = gw.wait_exit(GONE_WITHIN_S)
        self.assertIsNotNone(code, "the parent still runs %ds after SIGTERM"
                             % GONE_WITHIN_S)
        self.assertEqual(code, 1)
        left = GONE_WITHIN_S - (time.monotonic() - start)
        self.assertTrue(
            harness.wait_for(lambda: not any(alive(p) for p in workers),
                             max(left, 0.1)),
            "workers still alive: %s" % [p for p in workers if alive(p)])
        self.assertGreaterEqual(time.monotonic() - start,
                                DRAIN_TIMEOUT_S - 0.5)

        killed = [ln for ln in gw.log_lines()
                  if ln.get("level") == "warn" and
                  ln.get("worker_pid") == stuck]
        self.assertTrue(killed, "no warning names worker_pid %d" % stuck)


if __name__ == "__main__":
    harness.main()
