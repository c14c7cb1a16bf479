#!/usr/bin/env python3
# SIGHUP reloads the config file: keys that can change live take effect
# (upstream.rate/burst: 429s appear; log.level: access lines stop), keys
# that cannot (server.listen) are logged as kept, open connections stay
# open, and an invalid file is refused with the old config still working.

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

BURST = 10
KEPT_MSG = ("reload: this key changes only with a restart; the running "
            "value is kept")
REFUSED_MSG = "reload refused: keeping the running config"


def write_config(gw, config):
    """Rewrites the running gateway's config file (not restarting it).
    gw.config is left alone: it names the port the gateway listens on."""
    write_raw_config(gw, harness._ini(config))


def write_raw_config(gw, text):
    tmp = gw.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, gw.conf_path)


def parallel_gets(gw, paths, timeout=20):
    """One connection and GET per path, all at once; returns
    [(status, headers, body)] in the order of paths (an exception text
    for a failed one)."""
    barrier = threading.Barrier(len(paths))
    results = [None] * len(paths)

    def client(i, path):
        conn = gw.connection(timeout)
        try:
            conn.connect()
            barrier.wait(20)
            results[i] = harness.http_request(conn, "GET", path)
        except (OSError, http.client.HTTPException,
                threading.BrokenBarrierError) as e:
            results[i] = repr(e)
            barrier.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i, p), daemon=True)
               for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class OpsReload(harness.RecgateTestCase):

    serial = 0

    def running_paths(self, n):
        """n fresh records that are RUNNING (never cached, so every GET is
        a real upstream fetch)."""
        base = harness.load_fixture("rec-success-1")
        paths = []
        for _ in range(n):
            OpsReload.serial += 1
            rid = "rec-reload-%04d" % OpsReload.serial
            self.sim.put_record(rid, body=dict(base, id=rid,
                                               status="RUNNING",
                                               end_time=None))
            paths.append(harness.record_path(rid))
        return paths

    def access_lines(self, gw):
        return [line for line in gw.log_lines()
                if line.get("msg") == "request"]

    def lines_with(self, gw, msg, **fields):
        return [line for line in gw.log_lines() if line.get("msg") == msg
                and all(line.get(k) == v for k, v in fields.items())]

    def sighup_and_wait(self, gw, msg, processes, before, **fields):
        """SIGHUP, then wait until `processes` more lines with msg (and
        fields) are logged than the `before` there were."""
        gw.proc.send_signal(signal.SIGHUP)
        ok = harness.wait_for(
            lambda: len(self.lines_with(gw, msg, **fields)) >=
            before + processes, 5, 0.05)
        self.assertTrue(ok, "after SIGHUP, %d of %d processes logged %r %s"
                        % (len(self.lines_with(gw, msg, **fields)) - before,
                           processes, msg, fields))
        time.sleep(0.3)     # the level is set right after the key lines

    def statuses(self, results):
        out = []
        for r in results:
            self.assertIsInstance(r, tuple, "a client failed: %s" % (r,))
            out.append(r[0])
        return out

    def reload_round(self, workers):
        processes = workers if workers == 1 else workers + 1  # + parent
        old = {
            "server.workers": str(workers),
            "upstream.rate": "1000",
            "upstream.burst": "1000",
            "upstream.queue_timeout": "100ms",
            "upstream.retries": "0",
            "log.level": "info",
            "cache.ttl": "1h",
        }
        gw = self.start_recgate(old)
        old_port = gw.port

        # A keep-alive connection opened before the reload.
        keep = gw.connection(10)
        status, headers, _ = harness.http_request(
            keep, "GET", harness.record_path("rec-success-1"))
        self.assertEqual(status, 200)
        self.assertNotEqual(headers.get("connection", "").lower(), "close")
        keep_sock = keep.sock
        keep_local = keep.sock.getsockname()

        # Before: a burst of distinct running records is all admitted, and
        # every request has its access line.
        paths = self.running_paths(BURST)
        before = self.statuses(parallel_gets(gw, paths))
        self.assertEqual(before, [200] * BURST, "before the reload")
        self.assertTrue(harness.wait_for(lambda: len(self.access_lines(gw))
                                         >= BURST + 2, 2),
                        "access lines missing at log.level = info")
        ratelimited_before = gw.metrics().get("recgate_ratelimited_total")
        self.assertEqual(ratelimited_before, 0.0)
        self.assertTrue(harness.wait_for(lambda: len(self.access_lines(gw))
                                         >= BURST + 3, 2))
        access_before = len(self.access_lines(gw))

        # Reload: a slow rate, warnings only, and another port.
        new_port = harness.free_port()
        new = dict(gw.config, **{"upstream.rate": "1",
                                 "upstream.burst": "1",
                                 "log.level": "warn",
                                 "server.listen": "127.0.0.1:%d" % new_port})
        write_config(gw, new)
        kept_before = len(self.lines_with(gw, KEPT_MSG, key="server.listen"))
        self.sighup_and_wait(gw, KEPT_MSG, processes, kept_before,
                             key="server.listen")

        # The connection opened before the reload still works, and it is
        # the same TCP connection.
        status, _, body = harness.http_request(
            keep, "GET", harness.record_path("rec-success-1"))
        self.assertEqual(status, 200, body)
        self.assertIs(keep.sock, keep_sock, "http.client reconnected")
        self.assertEqual(keep.sock.getsockname(), keep_local)
        status, _, _ = harness.http_request(keep, "GET", "/healthz")
        self.assertEqual(status, 200)
        keep.close()

        # server.listen is kept: the old port answers, the new one is not
        # listened on.
        self.assertEqual(gw.get("/healthz")[0], 200)
        with self.assertRaises(ConnectionRefusedError,
                               msg="the new server.listen port took "
                                   "connections"):
            socket.create_connection(("127.0.0.1", new_port), 2).close()

        # upstream.rate = 1, burst = 1: the same kind of burst now meets
        # the rate limit.
        after = parallel_gets(gw, self.running_paths(BURST))
        codes = self.statuses(after)
        limited = [r for r in after if r[0] == 429]
        self.assertGreaterEqual(len(limited), BURST - 2,
                                "statuses after rate 1000 -> 1: %s" % codes)
        self.assertEqual(sorted(set(codes) - {200, 429}), [], codes)
        for r in limited:
            self.assertTrue(r[1].get("retry-after"), r[1])
            self.assertIn(b"RECGATE.4290", r[2])
        self.assertGreaterEqual(gw.metrics().get("recgate_ratelimited_total"),
                                len(limited))

        # log.level = warn: no access line for any of those requests.
        time.sleep(0.2)
        self.assertEqual(len(self.access_lines(gw)), access_before,
                         "access lines logged at log.level = warn")

        # An invalid file is refused; the running config stays (rate 1,
        # level warn, the old port).
        refused_before = len(self.lines_with(gw, REFUSED_MSG))
        bad = dict(new, **{"log.level": "info", "upstream.rate": "1000",
                           "upstream.burst": "1000"})
        text = harness._ini(bad) + "\n[server]\nno_such_key = 1\n" \
            "[upstream]\ntimeout = soon\n"
        write_raw_config(gw, text)
        self.sighup_and_wait(gw, REFUSED_MSG, processes, refused_before)
        problems = [line for line in gw.log_lines()
                    if line.get("msg") == "invalid configuration"]
        named = " ".join(str(line.get("error")) for line in problems)
        self.assertIn("no_such_key", named)
        self.assertIn("upstream.timeout", named)

        self.assertEqual(gw.get("/healthz")[0], 200)
        status, headers, _ = gw.get(harness.record_path("rec-success-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "HIT"))
        again = self.statuses(parallel_gets(gw, self.running_paths(BURST)))
        self.assertGreaterEqual(again.count(429), BURST - 2,
                                "after an invalid reload the rate is no "
                                "longer 1/s: %s" % again)
        time.sleep(0.2)
        self.assertEqual(len(self.access_lines(gw)), access_before,
                         "an invalid file changed log.level")
        self.assertTrue(gw.running())
        return gw

    def test_reload(self):
        """SIGHUP: rate and log level change live, the keep-alive
        connection survives, server.listen is kept, a bad file refused."""
        self.reload_round(1)

    def test_reload_two_workers(self):
        """The same with server.workers = 2: the parent passes SIGHUP on
        and every worker applies it."""
        self.reload_round(2)

    def test_credentials_change_live(self):
        """A changed SK is used after SIGHUP: with the simulator expecting
        the new key, fetches succeed only after the reload."""
        gw = self.start_recgate({"upstream.retries": "0",
                                 "credentials.sk": "a-wrong-secret-key"})
        path = harness.record_path("rec-stuck-1")
        status, _, body = gw.get(path)
        self.assertEqual(status, 502, body)
        self.assertIn(b"RECGATE.5021", body)

        write_config(gw, dict(gw.config, **{"credentials.sk": self.SK}))
        gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(
            lambda: any(line.get("msg") == "configuration reloaded"
                        for line in gw.log_lines()), 5))
        status, _, body = gw.get(path)
        self.assertEqual(status, 200, body)
        self.assertNotIn(self.SK, gw.log_text())
        self.assertNotIn("a-wrong-secret-key", gw.log_text())


if __name__ == "__main__":
    harness.main()
