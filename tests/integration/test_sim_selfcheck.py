#!/usr/bin/env python3
# The Workspace simulator on its own: signature checks, records, the
# running phase, faults, counters and captures.  Needs no recgate binary.

import http.client
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

VECTORS = os.path.join(harness.SOURCE_DIR, "tests", "unit", "data",
                       "sign_vectors.json")
CONFORMANCE = os.path.join(harness.SOURCE_DIR, "tests", "conformance")


def load_sim_module():
    spec = importlib.util.spec_from_file_location("sim", harness.SIM_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_vectors():
    with open(VECTORS) as f:
        return json.load(f)


class SignatureVectors(unittest.TestCase):
    """The simulator's verifier and the harness signer agree with the
    vectors that Huawei's SDK produced."""

    def test_sim_verifier_accepts_every_sdk_vector(self):
        sim = load_sim_module()
        for v in load_vectors():
            with self.subTest(v["name"]):
                target = "/" + v["url"].split("/", 3)[3]
                pairs = [(k, val) for k, val in v["headers"].items()]
                pairs.append(("authorization", v["authorization"]))
                stamp = time.strptime(v["headers"]["x-sdk-date"],
                                      "%Y%m%dT%H%M%SZ")
                creds = {"ak": v["ak"], "sk": v["sk"],
                         "security_token":
                         v["headers"].get("x-security-token")}
                canonical = sim.verify_request(
                    "GET", target, pairs, b"", creds,
                    __import__("calendar").timegm(stamp))
                self.assertEqual(canonical, v["canonical_request"],
                                 "sim canonical request differs from SDK")

    def test_sim_verifier_rejects_a_changed_vector(self):
        sim = load_sim_module()
        v = load_vectors()[0]
        target = "/" + v["url"].split("/", 3)[3] + "x"
        pairs = list(v["headers"].items())
        pairs.append(("authorization", v["authorization"]))
        stamp = time.strptime(v["headers"]["x-sdk-date"], "%Y%m%dT%H%M%SZ")
        with self.assertRaises(sim.SignatureError):
            sim.verify_request("GET", target, pairs, b"",
                               {"ak": v["ak"], "sk": v["sk"]},
                               __import__("calendar").timegm(stamp))

    def test_harness_signer_matches_every_sdk_vector(self):
        for v in load_vectors():
            with self.subTest(v["name"]):
                path = "/" + v["url"].split("/", 3)[3]
                got = harness.sign(v["ak"], v["sk"], v["method"], path,
                                   v["headers"])
                self.assertEqual(got, v["authorization"])

    def test_vectors_cover_the_required_cases(self):
        vectors = load_vectors()
        self.assertGreaterEqual(len(vectors), 6)
        hosts = [v["headers"]["host"] for v in vectors]
        self.assertTrue(any(":" in h for h in hosts), "a host with a port")
        self.assertTrue(any("x-security-token" in v["headers"]
                            for v in vectors), "a security token")
        self.assertTrue(any("%" in v["canonical_uri"] for v in vectors),
                        "a record id that needs URI encoding")


class SimBehaviour(harness.RecgateTestCase):
    RECORD = harness.record_path("rec-success-1")

    def fixture(self, rid):
        with open(harness.DEFAULT_FIXTURES) as f:
            return json.load(f)["records"][rid]["body"]

    def test_signed_request_gets_the_record(self):
        status, headers, body = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), self.fixture("rec-success-1"))
        self.assertRegex(headers["x-request-id"], "^[0-9a-f]{32}$")
        self.assertIn("date", headers)
        self.assertEqual(headers["content-length"], str(len(body)))

    def assert_refused(self, reason, **kw):
        status, _, body = self.sim.signed_get(self.RECORD, **kw)
        self.assertEqual(status, 403, body)
        doc = json.loads(body)
        self.assertEqual(doc["error_code"], "APIGW.0301")
        self.assertIn(reason, doc["error_msg"])
        self.assertTrue(doc["request_id"])

    def test_wrong_secret_key_is_refused(self):
        self.assert_refused("signature mismatch", sk=self.SK + "x")

    def test_wrong_access_key_is_refused(self):
        self.assert_refused("unknown access key", ak="SOMEONEELSE")

    def test_project_header_must_match_the_path(self):
        self.assert_refused("X-Project-Id",
                            project_id="f" * 32)

    def test_changed_signed_header_is_refused(self):
        headers = self.sim.signed_headers(self.RECORD)
        headers["content-type"] = "text/plain"
        status, _, body = self.sim.send("GET", self.RECORD, headers)
        self.assertEqual(status, 403)
        self.assertIn(b"signature mismatch", body)

    def test_unsigned_extra_header_is_fine(self):
        status, _, _ = self.sim.signed_get(
            self.RECORD, unsigned={"x-extra": "not signed"})
        self.assertEqual(status, 200)

    def test_signed_extra_header_is_fine(self):
        status, _, _ = self.sim.signed_get(
            self.RECORD, extra={"x-extra": "signed"})
        self.assertEqual(status, 200)

    def test_signed_headers_must_include_host(self):
        headers = self.sim.signed_headers(self.RECORD)
        del headers["authorization"]
        host = headers.pop("host")
        headers["authorization"] = harness.sign(
            self.AK, self.SK, "GET", self.RECORD, dict(headers, host=host)
        ).replace("content-type;host;", "content-type;")
        headers["host"] = host
        status, _, body = self.sim.send("GET", self.RECORD, headers)
        self.assertEqual(status, 403)
        self.assertIn(b"host is not a signed header", body)

    def test_missing_authorization_is_refused(self):
        conn = self.sim.connection()
        try:
            status, _, body = harness.http_request(
                conn, "GET", self.RECORD,
                {"X-Project-Id": harness.PROJECT_ID})
        finally:
            conn.close()
        self.assertEqual(status, 403)
        self.assertIn(b"missing Authorization", body)

    def test_date_outside_the_window_is_refused(self):
        self.assert_refused("away from the server clock",
                            date=harness.sdk_date(time.time() - 16 * 60))
        status, _, _ = self.sim.signed_get(
            self.RECORD, date=harness.sdk_date(time.time() - 14 * 60))
        self.assertEqual(status, 200)

    def test_clock_offset_moves_date_and_window(self):
        self.sim.clock(3600)
        status, headers, _ = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 403)
        sent = time.mktime(time.strptime(headers["date"],
                                         "%a, %d %b %Y %H:%M:%S GMT"))
        local = time.mktime(time.gmtime())
        self.assertAlmostEqual(sent - local, 3600, delta=30)
        self.sim.clock(0)
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 200)

    def test_unknown_record_and_other_paths_are_404(self):
        status, _, body = self.sim.signed_get(
            harness.record_path("rec-nope"))
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error_code"], "WKS.0404")
        status, _, _ = self.sim.signed_get(
            "/v2/%s/scripts" % harness.PROJECT_ID)
        self.assertEqual(status, 404)

    def test_running_record_finishes_after_n_reads(self):
        path = harness.record_path("rec-running-1")
        seen = []
        for _ in range(4):
            status, _, body = self.sim.signed_get(path)
            self.assertEqual(status, 200)
            doc = json.loads(body)
            seen.append((doc["status"], doc["end_time"] is None))
        self.assertEqual(seen, [("RUNNING", True), ("RUNNING", True),
                                ("SUCCESS", False), ("SUCCESS", False)])

    def test_stats_count_and_reset(self):
        self.sim.signed_get(self.RECORD)
        self.sim.signed_get(self.RECORD, sk="bad")
        self.sim.signed_get(harness.record_path("rec-failed-1"))
        stats = self.sim.stats()
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["by_record"],
                         {"rec-success-1": 2, "rec-failed-1": 1})
        self.sim.reset()
        stats = self.sim.stats()
        self.assertEqual((stats["requests"], stats["by_record"]), (0, {}))
        self.assertEqual(self.sim.requests(), [])

    def test_capture_keeps_headers_in_order(self):
        self.sim.signed_get(self.RECORD + "?a=1")
        captured = self.sim.requests()
        self.assertEqual(len(captured), 1)
        self.assertEqual(captured[0]["method"], "GET")
        self.assertEqual(captured[0]["path"], self.RECORD + "?a=1")
        names = [name for name, _ in captured[0]["headers"]]
        self.assertEqual(names, ["host", "content-type", "x-project-id",
                                 "x-sdk-date", "authorization"])

    def test_put_record_body_and_raw(self):
        body = dict(self.fixture("rec-success-1"), id="rec-new")
        self.sim.put_record("rec-new", body=body, running_reads=1)
        path = harness.record_path("rec-new")
        self.assertEqual(json.loads(self.sim.signed_get(path)[2])["status"],
                         "RUNNING")
        self.assertEqual(json.loads(self.sim.signed_get(path)[2]), body)
        self.sim.put_record("rec-raw", raw='{"id": "rec-raw", ')
        status, _, data = self.sim.signed_get(harness.record_path("rec-raw"))
        self.assertEqual((status, data), (200, b'{"id": "rec-raw", '))

    def test_status_fault_with_count_and_retry_after(self):
        self.sim.fault(record="rec-success-1", kind="status", status=429,
                       retry_after=3, count=1)
        status, headers, body = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 429)
        self.assertEqual(headers["retry-after"], "3")
        self.assertEqual(json.loads(body)["error_code"], "APIGW.0308")
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 200)

    def test_fault_for_another_record_does_not_apply(self):
        self.sim.fault(record="rec-failed-1", kind="status", status=500)
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 200)
        self.assertEqual(self.sim.signed_get(
            harness.record_path("rec-failed-1"))[0], 500)
        self.sim.clear_faults()
        self.assertEqual(self.sim.signed_get(
            harness.record_path("rec-failed-1"))[0], 200)

    def test_fault_after_signature_check(self):
        self.sim.fault(kind="status", status=500)
        self.assertEqual(self.sim.signed_get(self.RECORD, sk="bad")[0], 403)

    def test_latency_then_normal_answer(self):
        self.sim.fault(kind="latency", ms=400, count=1)
        started = time.monotonic()
        status, _, _ = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.4)

    def test_latency_combines_with_a_status(self):
        self.sim.fault(kind="latency", ms=200, count=1)
        self.sim.fault(kind="status", status=503, count=1)
        started = time.monotonic()
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 503)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)

    def test_malformed_wrong_id_and_huge(self):
        self.sim.fault(kind="malformed", count=1)
        status, _, body = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)

        self.sim.fault(kind="wrong_id", count=1)
        doc = json.loads(self.sim.signed_get(self.RECORD)[2])
        self.assertNotEqual(doc["id"], "rec-success-1")

        self.sim.fault(kind="huge", bytes=1 << 20, count=1)
        status, _, body = self.sim.signed_get(self.RECORD)
        self.assertEqual((status, len(body)), (200, 1 << 20))
        self.assertEqual(json.loads(body)["id"], "rec-success-1")

    def test_huge_default_is_ten_mebibytes(self):
        self.sim.fault(kind="huge", count=1)
        status, _, body = self.sim.signed_get(self.RECORD)
        self.assertEqual(len(body), 10 * 1024 * 1024)

    def test_chunked_body_is_the_record(self):
        self.sim.fault(kind="chunked", count=1)
        status, headers, body = self.sim.signed_get(self.RECORD)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", headers)
        self.assertEqual(json.loads(body), self.fixture("rec-success-1"))

    def test_drop_and_drop_mid_body(self):
        self.sim.fault(kind="drop", count=1)
        with self.assertRaises((http.client.RemoteDisconnected,
                                ConnectionError, ssl.SSLError)):
            self.sim.signed_get(self.RECORD)
        self.sim.fault(kind="drop_mid_body", count=1)
        with self.assertRaises((http.client.IncompleteRead,
                                ConnectionError, ssl.SSLError)):
            self.sim.signed_get(self.RECORD)
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 200)

    def test_hang_until_the_client_leaves(self):
        self.sim.fault(kind="hang", count=1)
        started = time.monotonic()
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.sim.signed_get(self.RECORD, timeout=0.5)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.sim.signed_get(self.RECORD)[0], 200)
        self.assertTrue(harness.wait_for(
            lambda: " hung " in harness.tail(self.sim.log_path), 5),
            "the simulator noticed the client leave")

    def test_keep_alive_serves_several_requests(self):
        conn = self.sim.connection()
        try:
            for _ in range(3):
                status, _, body = harness.http_request(conn, "GET",
                                                       "/_sim/stats")
                self.assertEqual(status, 200)
        finally:
            conn.close()

    def test_bad_control_requests_are_400(self):
        with self.assertRaises(RuntimeError):
            self.sim.fault(kind="explode")
        with self.assertRaises(RuntimeError):
            self.sim.put_record("x")

    def test_sdk_agrees_with_captured_signatures(self):
        if not os.path.isdir(os.path.join(CONFORMANCE, "node_modules")) \
                or not shutil.which("node"):
            self.skipTest("run npm ci in tests/conformance first")
        self.sim.signed_get(self.RECORD)
        self.sim.signed_get(harness.record_path("rec-failed-1"))
        captured = json.dumps(self.sim.requests())
        ok = subprocess.run(
            ["node", os.path.join(CONFORMANCE, "check_captured.js"),
             self.AK, self.SK], input=captured.encode(),
            capture_output=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn(b"2 passed, 0 failed", ok.stdout)

        self.sim.reset()
        self.sim.signed_get(self.RECORD, sk="bad")
        bad = subprocess.run(
            ["node", os.path.join(CONFORMANCE, "check_captured.js"),
             self.AK, self.SK], input=json.dumps(self.sim.requests()).encode(),
            capture_output=True, timeout=60)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn(b"0 passed, 1 failed", bad.stdout)


class SimWithSecurityToken(harness.RecgateTestCase):
    SECURITY_TOKEN = "temporary-token+/=abc"
    START_REDIS = False

    def test_token_is_required_and_signed(self):
        path = harness.record_path("rec-success-1")
        self.assertEqual(self.sim.signed_get(path)[0], 200)
        status, _, body = self.sim.signed_get(
            path, security_token="another-token")
        self.assertEqual(status, 403)
        self.assertIn(b"X-Security-Token", body)


if __name__ == "__main__":
    harness.main()
