#!/usr/bin/env python3
# An open-file limit below server.max_connections: started with 256
# descriptors (soft and hard, so recgate cannot raise it) and the default
# cap of 10,000, a flood of 400 idle connections leaves the gateway
# answering, without spinning on failed accepts, and with a short log of
# JSON lines only; connections past what the descriptors allow get the
# documented 503 RECGATE.5030 (or wait in the backlog), not a dead worker.

import json
import os
import resource
import socket
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FD_LIMIT = 256
FLOOD = 400
FLOOD_S = 3
# Well under the FLOOD_S of CPU a busy loop burns, with room for a slow
# (sanitizer) build.
CPU_MAX_S = 1.0
LOG_LINES_MAX = 200


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def limited_binary(directory, real, limit):
    """A launcher that sets both open-file limits and then becomes the
    real binary (same process id, so /proc/PID is recgate's)."""
    path = os.path.join(directory, "recgate-nofile-%d" % limit)
    with open(path, "w") as f:
        f.write("#!%s\n"
                "import os, resource, sys\n"
                "resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))\n"
                "os.execv(%r, [%r] + sys.argv[1:])\n"
                % (sys.executable, limit, limit, real, real))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def cpu_seconds(pid):
    """User and system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])    # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def is_json_object(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def peek(sock):
    """What the peer did so far: "open" (nothing sent, not closed), the
    first bytes it sent, or "closed"."""
    sock.setblocking(False)
    try:
        data = sock.recv(64, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"
    return data or "closed"


class SafeFdLimit(harness.RecgateTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        limit = raise_nofile(FLOOD + 256)
        if limit < FLOOD + 128:
            raise unittest.SkipTest("open-file limit %d too low" % limit)

    def start_limited(self):
        real = os.environ.get("RECGATE_BIN")
        if not real or not os.access(real, os.X_OK):
            self.fail("RECGATE_BIN is not set to an executable recgate")
        binary = limited_binary(self.workdir, real, FD_LIMIT)
        gw = harness.Recgate(self.workdir, self.base_config(), binary=binary,
                             wait=False)
        self._recgates.append(gw)
        self.addCleanup(gw.stop)
        gw.wait_healthy()
        return gw

    def open_flood(self, gw):
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(FLOOD):
            try:
                socks.append(socket.create_connection((gw.host, gw.port), 5))
            except OSError:
                pass    # refused or timed out: allowed past the cap
        return socks

    def test_flood_past_the_open_file_limit(self):
        """400 idle connections against 256 descriptors: no busy loop,
        a kept-alive connection is still served, those past the cap are
        answered 503 RECGATE.5030 or closed, /healthz answers once some
        idle ones go, and the log is short and all JSON."""
        gw = self.start_limited()
        log_start = len(gw.log_text().splitlines())
        kept = gw.connection(timeout=5)
        self.addCleanup(kept.close)
        self.assertEqual(harness.http_request(kept, "GET", "/healthz")[0],
                         200)

        cpu_before = cpu_seconds(gw.proc.pid)
        started = time.monotonic()
        socks = self.open_flood(gw)
        time.sleep(max(0, FLOOD_S - (time.monotonic() - started)))
        cpu = cpu_seconds(gw.proc.pid) - cpu_before
        self.assertLess(cpu, CPU_MAX_S,
                        "%.2f s of CPU in %d s of idle connections"
                        % (cpu, FLOOD_S))

        # A connection held from before the flood is served at once.
        reply = harness.http_request(kept, "GET", "/healthz")
        self.assertEqual(reply[0], 200, reply)

        seen = [peek(s) for s in socks]
        still_open = [s for s, what in zip(socks, seen) if what == "open"]
        answered = [what for what in seen if isinstance(what, bytes)]
        self.assertLessEqual(len(still_open), FD_LIMIT,
                             "more connections held than descriptors")
        self.assertTrue(answered, "no connection past the cap got a 503")
        for what in answered:
            self.assertTrue(what.startswith(b"HTTP/1.1 503 "), what)
        first = socks[seen.index(answered[0])]
        first.settimeout(5)
        self.assertIn(b"RECGATE.5030", first.recv(65536))

        for s in still_open[:64]:
            s.close()
        ok = harness.wait_for(
            lambda: gw.get("/healthz", timeout=2)[0] == 200, 5, 0.2)
        self.assertTrue(ok, "/healthz not answered after idle ones closed")
        self.assertTrue(gw.running())

        lines = gw.log_text().splitlines()[log_start:]
        not_json = [l for l in lines if not is_json_object(l)]
        self.assertEqual(not_json[:5], [], "stderr lines that are not JSON")
        self.assertLess(len(lines), LOG_LINES_MAX,
                        "%d log lines for one flood" % len(lines))
        msgs = [d.get("msg", "") for d in gw.log_lines()]
        self.assertTrue(any("open-file limit" in m for m in msgs),
                        "the lowered cap was not logged")


if __name__ == "__main__":
    harness.main()
