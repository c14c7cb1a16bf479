#!/usr/bin/env python3
# The gateway's upstream signatures agree with Huawei's own Node.js SDK:
# every request the simulator captured is signed again with the SDK
# (tests/conformance/check_captured.js) and must match byte for byte.

import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONFORMANCE = os.path.join(harness.SOURCE_DIR, "tests", "conformance")
CHECKER = os.path.join(CONFORMANCE, "check_captured.js")
LONGEST_ID = ("Rec_64-chars-" * 5)[:64]
RECORD_IDS = ("rec-success-1", "rec-failed-1", "rec-running-1",
              "rec-unicode-1", LONGEST_ID, "rec_with_underscores-and-dashes")


class SdkConformance(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("node"):
            self.fail("node is not installed: the conformance check needs "
                      "Node.js (scripts/deps.sh installs it)")
        if not os.path.isdir(os.path.join(CONFORMANCE, "node_modules")):
            self.fail("tests/conformance/node_modules is missing: run "
                      "`npm ci` in tests/conformance (scripts/test.sh does "
                      "that)")

    def make_requests(self, gw):
        """Reads each record once (all reach the cloud); returns how many
        requests were made."""
        self.sim.put_record(LONGEST_ID, body=dict(
            harness.load_fixture("rec-success-1"), id=LONGEST_ID))
        for rid in RECORD_IDS:
            status, _, body = gw.get(harness.record_path(rid))
            self.assertIn(status, (200, 404), body)
        self.assertEqual(self.sim.stats()["signature_failures"], 0)
        return len(RECORD_IDS)

    def check_with_sdk(self, made):
        captured = self.sim.requests()
        self.assertGreaterEqual(len(captured), made)
        result = subprocess.run(
            ["node", CHECKER, self.AK, self.SK],
            input=json.dumps(captured).encode(), capture_output=True,
            timeout=60)
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0,
                         "check_captured.js failed:\n%s%s" % (out, err))
        match = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
        self.assertTrue(match, out)
        self.assertEqual(int(match.group(2)), 0, out)
        self.assertGreaterEqual(int(match.group(1)), made, out)
        return captured

    def test_signatures_match_the_sdk(self):
        """Every upstream request, for several records including a 64-char
        id, is signed exactly as Huawei's SDK signs it."""
        gw = self.start_recgate()
        made = self.make_requests(gw)
        captured = self.check_with_sdk(made)
        paths = {c["path"] for c in captured}
        self.assertIn(harness.record_path(LONGEST_ID), paths)

    def test_signatures_match_with_an_ip_endpoint(self):
        """With the endpoint given as an IP address (so Host is
        127.0.0.1:port) the signatures still match the SDK's."""
        gw = self.start_recgate({"upstream.endpoint":
                                 "https://127.0.0.1:%d" % self.sim.port})
        made = self.make_requests(gw)
        captured = self.check_with_sdk(made)
        hosts = {value for c in captured for name, value in c["headers"]
                 if name.lower() == "host"}
        self.assertEqual(hosts, {"127.0.0.1:%d" % self.sim.port})

    def test_checker_notices_a_wrong_key(self):
        """The check is not vacuous: with another SK the SDK disagrees with
        every captured signature."""
        gw = self.start_recgate()
        self.make_requests(gw)
        result = subprocess.run(
            ["node", CHECKER, self.AK, self.SK + "x"],
            input=json.dumps(self.sim.requests()).encode(),
            capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertRegex(result.stdout.decode(), r"(?m)^0 passed, [1-9]\d* "
                         r"failed$")


class SdkConformanceWithSecurityToken(SdkConformance):
    SECURITY_TOKEN = "temporary-token+/=abc"

    def test_token_is_signed(self):
        """With temporary credentials the captured requests carry the
        signed X-Security-Token and still match the SDK."""
        gw = self.start_recgate()
        made = self.make_requests(gw)
        for capture in self.check_with_sdk(made):
            names = [name.lower() for name, _ in capture["headers"]]
            self.assertIn("x-security-token", names)


if __name__ == "__main__":
    harness.main()
