#!/usr/bin/env python3
# Whatever a client sends, the gateway's log stays one valid JSON object
# per line (UTF-8, as JSON text must be): raw bytes that are not UTF-8, a
# path longer than a log line, a path full of characters that need
# escaping. Every such request still has its access line, with its status.

import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PREFIX = ("/v2/%s/script-execution-records/" % harness.PROJECT_ID).encode()
REQUEST_FIELDS = ("request_id", "method", "path", "status", "cache",
                  "upstream_ms", "ms")


def raw_request(gw, target, request_id):
    """GET target (bytes, sent as is) on a new connection; returns the
    status code of the answer."""
    req = (b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-Request-Id: " +
           request_id.encode() + b"\r\nConnection: close\r\n\r\n")
    with socket.create_connection((gw.host, gw.port), 5) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


class SafeLogLines(harness.RecgateTestCase):

    CASES = {
        "invalid UTF-8": PREFIX + b"rec-\xff\xfe",
        "overlong UTF-8": PREFIX + b"rec-\xc0\xaf",
        "lone continuation byte": PREFIX + b"\x80abc",
        "truncated UTF-8": PREFIX + b"rec-\xe2\x82",
        "valid UTF-8": PREFIX + "rec-\u00e9\u4e2d".encode("utf-8"),
        "quotes and backslashes": PREFIX + b'rec-"\\"\\',
        "path longer than a log line": PREFIX + b"a" * 6000,
        "long path of quotes": PREFIX + b'"' * 3000,
        "long path of backslashes": b"/" + b"\\" * 4095,
        "long invalid UTF-8": PREFIX + b"\xff" * 3000,
        "long path with a query": PREFIX + b"rec-1?" + b"q=%22" * 1500,
    }

    def test_hostile_paths_keep_every_line_json(self):
        """Each hostile request target is answered, and afterwards every
        line of the log is strict UTF-8 JSON, and each request has its
        access line with its status."""
        gw = self.start_recgate()
        statuses = {}
        for n, (name, target) in enumerate(self.CASES.items()):
            rid = "log-lines-case-%d" % n
            statuses[rid] = (name, raw_request(gw, target, rid))
            self.assertTrue(statuses[rid][1], "%s: no answer" % name)
        self.assertEqual(gw.get("/healthz")[0], 200)
        gw.stop()

        with open(gw.log_path, "rb") as f:
            raw = f.read()
        bad = []
        access = {}
        for n, line in enumerate(raw.split(b"\n")[:-1], 1):
            try:
                obj = json.loads(line.decode("utf-8"))
            except ValueError as e:
                bad.append("line %d: %s: %r" % (n, e, line[:160]))
                continue
            if not isinstance(obj, dict):
                bad.append("line %d: not an object" % n)
                continue
            if obj.get("request_id") in statuses:
                access[obj["request_id"]] = obj
        self.assertEqual(bad, [], "\n".join(bad))
        self.assertTrue(raw.endswith(b"\n"))

        for rid, (name, status) in statuses.items():
            with self.subTest(name):
                line = access.get(rid)
                self.assertIsNotNone(line, "no access line for " + name)
                missing = [k for k in REQUEST_FIELDS if k not in line]
                self.assertEqual(missing, [], line)
                self.assertEqual(line["status"], status)
                self.assertEqual(line["method"], "GET")


if __name__ == "__main__":
    harness.main()
