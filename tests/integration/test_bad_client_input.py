#!/usr/bin/env python3
# Bad record or project ids, other methods and unknown paths are answered
# by the gateway itself, in the documented error shape, without touching
# Redis or the cloud; a sane client X-Request-Id is echoed, any other is
# replaced.

import http.client
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

P = harness.PROJECT_ID
RECORDS = "/v2/%s/script-execution-records/" % P

BAD_RECORD_TARGETS = [
    RECORDS + "..",
    RECORDS + "rec-1/..",
    RECORDS + ".",
    RECORDS + "a%2Fb",
    RECORDS + "a%2fb",
    RECORDS + "rec%00",
    RECORDS + "%2e%2e",
    RECORDS + "%2E%2E",
    RECORDS + "rec-%E6%A3%80",
    RECORDS + "rec%20one",
    RECORDS + "rec-1%3Fx",
    RECORDS + "%72ec-1",           # "rec-1" spelled with an escape
    RECORDS + "rec.1",
    RECORDS + "rec~1",
    RECORDS + "rec+1",
    RECORDS + "rec:1",
    RECORDS + "a" * 65,
    RECORDS + "b" * 300,
    RECORDS,                        # empty record id
    RECORDS + "a/b",
    RECORDS + "rec-1/",
]

BAD_PROJECT_TARGETS = [
    harness.record_path("rec-1", P[:31]),
    harness.record_path("rec-1", P + "0"),
    harness.record_path("rec-1", P[:31] + "g"),
    harness.record_path("rec-1", P[:31] + "-"),
    harness.record_path("rec-1", ""),
    harness.record_path("rec-1", "%30" + P[1:]),
    harness.record_path("rec-1", "..%2F" + P),
]

RAW_BAD_TARGETS = [
    (RECORDS + "rec-").encode() + "检".encode("utf-8"),
    (RECORDS + "rec-").encode() + b"\xff\xfe",
    ("/v2/%s/script-execution-records/rec-1" % (P[:31] + "é")).encode(
        "utf-8"),
]

UNKNOWN_TARGETS = [
    "/",
    "/v2",
    "/v2/",
    "/v1/%s/script-execution-records/rec-1" % P,
    "/v2/%s/scripts" % P,
    "/v2/%s/script-execution-records" % P,
    "/v2/%s/script-execution-recordsX/rec-1" % P,
    "/v2/%s" % P,
    "/healthz/extra",
    "/metricsx",
    "/favicon.ico",
]


def raw_request(gw, target, method=b"GET", headers=()):
    """Sends a request line with target as raw bytes (http.client would
    refuse non-ASCII) and reads the answer with http.client."""
    with socket.create_connection((gw.host, gw.port), 5) as sock:
        lines = [method + b" " + target + b" HTTP/1.1",
                 b"Host: 127.0.0.1:%d" % gw.port, b"Connection: close"]
        lines += list(headers)
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        resp = http.client.HTTPResponse(sock, method=method.decode())
        resp.begin()
        body = resp.read()
        merged = {}
        for name, value in resp.getheaders():
            merged[name.lower()] = value
        return resp.status, merged, body


class BadClientInput(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        self.gw = self.start_recgate()

    def assert_nothing_went_out(self):
        stats = self.sim.stats()
        self.assertEqual(stats["requests"], 0, stats)
        self.assertEqual(self.redis.keys(), [])

    def test_bad_record_ids_are_400(self):
        """Record ids with dots, slashes, escapes, NULs, non-ASCII, over
        64 characters or empty are 400 RECGATE.4000 and go nowhere."""
        for target in BAD_RECORD_TARGETS:
            with self.subTest(target=target[:120]):
                for method in ("GET", "HEAD"):
                    status, headers, body = self.gw.get(target,
                                                        method=method)
                    self.assertEqual(status, 400, (method, body))
                    self.assertTrue(headers.get("x-request-id"))
                self.assertErrorReply(self.gw.get(target), 400,
                                      "RECGATE.4000")
        self.assert_nothing_went_out()

    def test_bad_project_ids_are_400(self):
        """Project ids of 31 or 33 characters, non-hex, empty or escaped
        are 400 RECGATE.4000 and go nowhere."""
        for target in BAD_PROJECT_TARGETS:
            with self.subTest(target=target):
                self.assertErrorReply(self.gw.get(target), 400,
                                      "RECGATE.4000")
        self.assert_nothing_went_out()

    def test_raw_non_ascii_bytes_are_400(self):
        """Raw non-ASCII bytes in the record or project id are 400 in the
        documented shape."""
        for target in RAW_BAD_TARGETS:
            with self.subTest(target=target):
                self.assertErrorReply(raw_request(self.gw, target), 400,
                                      "RECGATE.4000")
        self.assert_nothing_went_out()

    def test_longest_record_id_is_accepted(self):
        """A 64-character record id is valid and asked of the cloud."""
        rid = ("abc-DEF_0123456789" * 4)[:64]
        self.assertEqual(len(rid), 64)
        doc = self.assertErrorReply(self.gw.get(harness.record_path(rid)),
                                    404, "WKS.0404")
        self.assertTrue(doc["error_msg"])
        self.assertEqual(self.upstream_count(rid), 1)

    def test_other_methods_are_405(self):
        """POST, PUT, DELETE, PATCH and OPTIONS on the record path (and POST
        on the service paths) are 405 RECGATE.4050 with Allow: GET, HEAD."""
        record = harness.record_path("rec-success-1")
        cases = [("POST", record, b"{}"), ("PUT", record, b"{}"),
                 ("DELETE", record, None), ("PATCH", record, b"{}"),
                 ("OPTIONS", record, None), ("POST", "/healthz", b""),
                 ("POST", "/readyz", b""), ("DELETE", "/metrics", None)]
        for method, target, body in cases:
            with self.subTest(method=method, target=target):
                reply = self.gw.get(target, method=method, body=body)
                self.assertErrorReply(reply, 405, "RECGATE.4050")
                self.assertEqual(reply[1].get("allow"), "GET, HEAD")
        self.assert_nothing_went_out()

    def test_unknown_paths_are_404(self):
        """Paths that are not a route, the cloud's list call included, are
        404 RECGATE.4040."""
        for target in UNKNOWN_TARGETS:
            with self.subTest(target=target):
                self.assertErrorReply(self.gw.get(target), 404,
                                      "RECGATE.4040")
        self.assert_nothing_went_out()

    def test_sane_request_id_is_echoed(self):
        """A sane client X-Request-Id is echoed in the header and in an
        error body's request_id, and on a record answer."""
        rid_header = {"X-Request-Id": "abc-123"}
        status, headers, _ = self.gw.get(
            harness.record_path("rec-success-1"), headers=rid_header)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-request-id"), "abc-123")

        doc = self.assertErrorReply(
            self.gw.get(RECORDS + "..", headers=rid_header), 400,
            "RECGATE.4000")
        self.assertEqual(doc["request_id"], "abc-123")

        longest = "r" * 128
        doc = self.assertErrorReply(
            self.gw.get("/nope", headers={"X-Request-Id": longest}), 404,
            "RECGATE.4040")
        self.assertEqual(doc["request_id"], longest)

    def test_insane_request_id_is_replaced(self):
        """A client X-Request-Id with spaces, markup or over 128 characters
        is replaced by a fresh one, different for each request."""
        seen = set()
        for bad in ("abc 123", "r" * 129, "x" * 300, "<script>", "a\"b",
                    "id;drop"):
            with self.subTest(request_id=bad[:40]):
                doc = self.assertErrorReply(
                    self.gw.get(RECORDS + "..",
                                headers={"X-Request-Id": bad}),
                    400, "RECGATE.4000")
                self.assertNotEqual(doc["request_id"], bad)
                self.assertNotIn(" ", doc["request_id"])
                self.assertLessEqual(len(doc["request_id"]), 128)
                seen.add(doc["request_id"])
        self.assertEqual(len(seen), 6, "replacement ids repeat: %s" % seen)

    def test_generated_request_ids_differ(self):
        """Without a client id every answer gets its own X-Request-Id."""
        ids = {self.gw.get(RECORDS + "..")[1]["x-request-id"]
               for _ in range(5)}
        self.assertEqual(len(ids), 5)


if __name__ == "__main__":
    harness.main()
