#!/usr/bin/env python3
# What an operator finds on stderr: one JSON object per line, always, with
# ts/level/msg; an access line per request with the documented fields and
# types; never the AK, the SK, the security token or a client's token;
# and a flood of one warning rate limited to 10 lines a second with a
# summary of what was left out.

import collections
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
LEVELS = ("debug", "info", "warn", "error")
UPSTREAM_ERROR_MSG = "the cloud API answered an error"
SUPPRESSED_MSG = "similar log lines suppressed"
FLOOD = 200
PER_SECOND = 10
CLIENT_TOKEN = "client-bearer-token-5f1e2d3c4b5a"
SECURITY_TOKEN = "TestSecurityToken-0a1b2c3d4e5f-temporary-credential"


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parallel(fn, items, threads=8):
    """Runs fn(item) for every item on `threads` threads; returns the
    results in order."""
    results = [None] * len(items)
    queue = list(enumerate(items))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                i, item = queue.pop(0)
            results[i] = fn(item)

    pool = [threading.Thread(target=worker, daemon=True)
            for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return results


class OpsLogs(harness.RecgateTestCase):

    SECURITY_TOKEN = SECURITY_TOKEN

    def assert_every_line_json(self, gw):
        """Every stderr line is a JSON object with ts, level, msg and
        pid; returns them parsed."""
        text = gw.log_text()
        self.assertTrue(text.endswith("\n"), "the log does not end with a "
                        "line end: %r" % text[-200:])
        lines = []
        for n, raw in enumerate(text.split("\n")[:-1], 1):
            try:
                obj = json.loads(raw)
            except ValueError:
                self.fail("stderr line %d is not JSON: %r" % (n, raw))
            self.assertIsInstance(obj, dict, "line %d: %r" % (n, raw))
            self.assertIsInstance(obj.get("ts"), str, raw)
            self.assertRegex(obj["ts"], TS_RE, raw)
            self.assertIn(obj.get("level"), LEVELS, raw)
            self.assertIsInstance(obj.get("msg"), str, raw)
            self.assertTrue(obj["msg"], raw)
            self.assertIsInstance(obj.get("pid"), int, raw)
            lines.append(obj)
        return lines

    def assert_access_line(self, line):
        for key in ("request_id", "method", "path"):
            self.assertIsInstance(line.get(key), str, (key, line))
            self.assertTrue(line[key], (key, line))
        self.assertIsInstance(line.get("status"), int, line)
        self.assertNotIsInstance(line.get("status"), bool, line)
        self.assertIn(line.get("cache"), ("hit", "miss", "none"), line)
        for key in ("upstream_ms", "ms"):
            self.assertTrue(is_number(line.get(key)), (key, line))
            self.assertGreaterEqual(line[key], 0, (key, line))
        if "upstream_request_id" in line:
            self.assertIsInstance(line["upstream_request_id"], str, line)

    def assert_no_secrets(self, gw):
        secrets = {"AK": self.AK, "SK": self.SK,
                   "security token": SECURITY_TOKEN,
                   "client bearer token": CLIENT_TOKEN}
        with open(gw.stdout_path, errors="replace") as f:
            stdout = f.read()
        for where, text in (("stderr", gw.log_text()), ("stdout", stdout)):
            for name, secret in secrets.items():
                self.assertNotIn(secret, text, "the %s is in %s" % (name,
                                                                    where))

    def test_varied_run(self):
        """Hits, misses, upstream errors, bad input, a reload, a Redis
        outage and a stop at log.level = debug: every stderr line is a
        JSON object, access lines carry the documented fields with the
        right types, and no secret is written anywhere."""
        gw = self.start_recgate({"log.level": "debug",
                                 "upstream.retries": "0",
                                 "upstream.rate": "1000",
                                 "upstream.burst": "1000"})
        client_headers = {"Authorization": "Bearer " + CLIENT_TOKEN,
                          "X-Auth-Token": CLIENT_TOKEN,
                          "Cookie": "session=" + CLIENT_TOKEN}
        sent = []   # (request id, path, expected status, expected cache)

        def ask(path, status, cache, method="GET"):
            rid = "ops-logs-%03d" % (len(sent) + 1)
            headers = dict(client_headers, **{"X-Request-Id": rid})
            got = gw.get(path, headers=headers, method=method)
            self.assertEqual(got[0], status, (path, got[2]))
            self.assertEqual(got[1].get("x-request-id"), rid)
            sent.append((rid, path, status, cache, method))
            return got

        ask(harness.record_path("rec-success-1"), 200, "miss")
        ask(harness.record_path("rec-success-1"), 200, "hit")
        ask(harness.record_path("rec-running-1"), 200, "miss")
        ask(harness.record_path("rec-unicode-1"), 200, "miss")
        ask(harness.record_path("rec-unicode-1"), 200, "hit", "HEAD")
        ask(harness.record_path("no-such-record"), 404, "miss")
        ask(harness.record_path("rec-malformed-1"), 502, "miss")
        self.sim.fault(record="rec-err-500", kind="status", status=500)
        ask(harness.record_path("rec-err-500"), 502, "miss")
        self.sim.fault(record="rec-err-403", kind="status", status=403)
        ask(harness.record_path("rec-err-403"), 502, "miss")
        ask("/v2/short/script-execution-records/x", 400, "none")
        ask(harness.record_path("bad%2Frecord"), 400, "none")
        ask("/nowhere?x=1", 404, "none")
        ask(harness.record_path("rec-success-1"), 405, "none", "DELETE")
        ask("/healthz", 200, "none")
        ask("/readyz", 200, "none")
        ask("/metrics", 200, "none")

        # A reload that changes a live key and one that is kept.
        changed = dict(gw.config, **{"upstream.rate": "500",
                                     "redis.key_prefix": "other:"})
        with open(gw.conf_path, "w") as f:
            f.write(harness._ini(changed))
        gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(
            lambda: any(line.get("msg") == "configuration reloaded"
                        for line in gw.log_lines()), 5), "no reload line")

        # A short Redis outage.
        self.addCleanup(self.redis.start)
        self.redis.stop()
        time.sleep(0.3)
        ask(harness.record_path("rec-failed-1"), 200, "miss")
        self.redis.start()
        ask(harness.record_path("rec-timeout-1"), 200, "miss")

        gw.stop()

        lines = self.assert_every_line_json(gw)
        access = {line.get("request_id"): line for line in lines
                  if line.get("msg") == "request"}
        for line in access.values():
            self.assert_access_line(line)
        for rid, path, status, cache, method in sent:
            self.assertIn(rid, access, "no access line for %s %s"
                          % (method, path))
            line = access[rid]
            self.assertEqual((line["method"], line["status"],
                              line["cache"]), (method, status, cache), line)
            self.assertTrue(line["path"].startswith(path.split("?")[0]),
                            line)
            if cache == "miss" and status in (200, 502) and \
                    "malformed" not in path:
                self.assertIn("upstream_request_id", line, line)
                self.assertGreater(line["upstream_ms"], 0, line)
        levels = collections.Counter(line["level"] for line in lines)
        self.assertGreater(levels["debug"] + levels["info"], 0)
        self.assertGreater(levels["warn"] + levels["error"], 0, levels)
        self.assert_no_secrets(gw)

    def flood(self, n):
        """A gateway whose upstream answers 500 to everything; n requests
        for distinct records, 8 at a time, starting just after a second
        turns.  Waits 2.5 s without further
        failures, stops the gateway and returns (the upstream error
        lines, the summary lines about them, a description)."""
        gw = self.start_recgate({"upstream.retries": "0",
                                 "upstream.rate": "100000",
                                 "upstream.burst": "100000",
                                 "upstream.breaker_failures": "1000000"})
        # A first read opens the upstream connection.
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[0],
                         200)
        self.sim.fault(kind="status", status=500)
        self.flood_serial = getattr(self, "flood_serial", 0) + 1

        def one(i):
            try:
                return gw.get(harness.record_path(
                    "rec-flood-%d-%03d" % (self.flood_serial, i)))[0]
            except (OSError, http.client.HTTPException) as e:
                return repr(e)

        # Start just after a second turns, so that a short flood stays
        # within one second of the gateway's clock (the same host clock).
        time.sleep(1.05 - time.time() % 1.0)
        started = time.monotonic()
        statuses = parallel(one, list(range(n)))
        took = time.monotonic() - started
        self.assertEqual(statuses, [502] * n)
        self.assertEqual(self.upstream_count(), n + 1)

        # Give a summary time to appear without any further failure, then
        # stop (a clean stop may also report what was held back).
        time.sleep(2.5)
        gw.stop()
        lines = self.assert_every_line_json(gw)

        errors = [line for line in lines
                  if line["msg"] == UPSTREAM_ERROR_MSG]
        summaries = [line for line in lines if line["msg"] == SUPPRESSED_MSG
                     and line.get("suppressed_msg") == UPSTREAM_ERROR_MSG]
        per_second = collections.Counter(line["ts"][:19] for line in errors)
        detail = ("%d failures in %.2f s; %r lines per second: %s; "
                  "summaries (ts, count): %s"
                  % (n, took, UPSTREAM_ERROR_MSG, dict(per_second),
                     [(x["ts"], x.get("count")) for x in summaries]))
        for line in errors:
            self.assertEqual(line["level"], "warn", line)
            self.assertEqual(line.get("upstream_status"), 500, line)
        for x in summaries:
            self.assertIn(x["level"], ("warn", "error"), x)
            self.assertIsInstance(x.get("count"), int, x)
            self.assertGreater(x["count"], 0, x)
        return errors, summaries, per_second, detail

    def test_warning_flood_is_rate_limited(self):
        """200 requests for distinct records against an upstream that
        answers 500: at most 10 "the cloud API answered an error" lines in
        any second, and a "similar log lines suppressed" line."""
        errors, summaries, per_second, detail = self.flood(FLOOD)
        self.assertTrue(errors, detail)
        self.assertLessEqual(max(per_second.values()), PER_SECOND, detail)
        self.assertTrue(summaries, "no %r line: " % SUPPRESSED_MSG + detail)

    def test_suppressed_count_is_reported_after_the_flood(self):
        """30 failures within one second: 10 lines, and the 20 held back
        are reported once the flood is over (here: 2.5 s of quiet, then a
        clean stop), so written + reported-suppressed adds up to 30."""
        errors, summaries, per_second, detail = self.flood(30)
        self.assertLessEqual(max(per_second.values()), PER_SECOND, detail)
        self.assertEqual(len(errors) + sum(x["count"] for x in summaries),
                         30, "lines written + lines reported suppressed "
                         "do not add up to the failures: " + detail)


if __name__ == "__main__":
    harness.main()
