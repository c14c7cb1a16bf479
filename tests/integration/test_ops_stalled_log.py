#!/usr/bin/env python3
# stderr is a pipe that nobody reads (a stuck log collector): once the
# pipe is full the workers block writing their log lines and stop
# serving. A stop must still end within server.drain_timeout and its
# grace: the parent tells the workers to stop and kills the ones that
# did not before it writes its own lines, which would block too.

import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DRAIN_TIMEOUT_S = 1
GONE_WITHIN_S = DRAIN_TIMEOUT_S + 2 + 4


def ask(port, path, timeout):
    """One request on a new connection; False when no whole answer came
    within timeout."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                       "\r\n\r\n" % path).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data.startswith(b"HTTP/1.1 200")
                data += chunk
    except OSError:
        return False


class OpsStalledLog(harness.RecgateTestCase):

    def test_stop_ends_while_nobody_reads_stderr(self):
        """server.workers = 2, stderr an unread pipe, requests until the
        workers block on it, SIGTERM: the parent exits within
        drain_timeout + 2 s (and a margin), both workers gone; the pipe,
        read afterwards, holds whole JSON lines only."""
        gw = self.start_recgate({
            "server.workers": "2",
            "server.drain_timeout": "%ds" % DRAIN_TIMEOUT_S})
        gw.stop()
        proc = subprocess.Popen([gw.binary, "-c", gw.conf_path],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.addCleanup(proc.stderr.close)
        self.assertTrue(harness.wait_for(
            lambda: ask(gw.port, "/healthz", 1), 10), "never healthy")
        workers = harness.child_pids(proc.pid)
        self.addCleanup(harness.kill_pids, workers)
        self.assertEqual(len(workers), 2, workers)

        # A pipe holds 64 KiB: a few hundred access lines fill it.
        path = harness.record_path("rec-success-1")
        for n in range(20000):
            if not ask(gw.port, path, 0.5):
                break
        else:
            self.fail("20000 answers with nobody reading stderr")

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        self.assertTrue(
            harness.wait_for(
                lambda: not any(harness.pid_alive(p) for p in workers),
                GONE_WITHIN_S),
            "workers alive %.1fs after SIGTERM: %s" % (
                time.monotonic() - start,
                [p for p in workers if harness.pid_alive(p)]))

        # Reading the pipe lets the parent write its last lines and exit.
        text = proc.stderr.read().decode("utf-8", "replace")
        proc.wait(10)
        self.assertLess(time.monotonic() - start, GONE_WITHIN_S + 5)
        lines = text.splitlines()
        self.assertGreater(len(lines), 100)
        for line in lines:
            json.loads(line)
        self.assertTrue(any("killed it" in line for line in lines),
                        lines[-5:])


if __name__ == "__main__":
    harness.main()
