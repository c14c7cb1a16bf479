#!/usr/bin/env python3
# Nothing of the client's request reaches the cloud: the upstream request
# is built from scratch, with only the gateway's own headers and its own
# SDK-HMAC-SHA256 Authorization.

import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# The headers recgate itself sends, lower-cased.
REQUIRED = {"host", "x-sdk-date", "x-project-id", "content-type",
            "authorization", "user-agent"}
OPTIONAL = {"accept", "connection", "content-length"}

CLIENT_HEADERS = {
    "Authorization": "Bearer client-secret-token",
    "Cookie": "session=client-cookie-value",
    "X-Auth-Token": "client-auth-token",
    "X-Forwarded-For": "203.0.113.9",
    "X-Custom": "client-custom-value",
    "X-Security-Token": "client-security-token",
    "X-Sdk-Date": "20000101T000000Z",
    "User-Agent": "client-agent/9.9",
    "Accept": "text/html",
    "Host": "evil.example",
}


def captured_header_map(capture):
    """{lower-case name: [values]} of one captured request."""
    out = {}
    for name, value in capture["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


class HeaderHygiene(harness.RecgateTestCase):

    def fetch_and_capture(self, gw, rid, target_suffix="", headers=None):
        status, _, body = gw.get(harness.record_path(rid) + target_suffix,
                                 headers=headers)
        self.assertEqual(status, 200, body)
        captured = self.sim.requests()
        self.assertEqual(len(captured), 1, captured)
        return captured[0]

    def assert_own_headers_only(self, capture):
        headers = captured_header_map(capture)
        names = set(headers)
        unexpected = names - REQUIRED - OPTIONAL - {"x-security-token"}
        missing = REQUIRED - names
        self.assertFalse(unexpected or missing,
                         "upstream header names %s (unexpected %s, missing "
                         "%s)" % (sorted(names), sorted(unexpected),
                                  sorted(missing)))
        for name, values in headers.items():
            self.assertEqual(len(values), 1, "%s sent %d times"
                             % (name, len(values)))
        return {name: values[0] for name, values in headers.items()}

    def test_client_headers_and_query_are_not_forwarded(self):
        """Client Authorization, Cookie, X-Auth-Token, X-Forwarded-For,
        custom headers and the query string never reach the cloud."""
        gw = self.start_recgate()
        capture = self.fetch_and_capture(gw, "rec-success-1",
                                         "?foo=bar&x-auth=1",
                                         headers=CLIENT_HEADERS)
        self.assertEqual(capture["method"], "GET")
        self.assertEqual(capture["path"],
                         harness.record_path("rec-success-1"))
        headers = self.assert_own_headers_only(capture)
        self.assertNotIn("cookie", headers)
        self.assertNotIn("x-auth-token", headers)
        self.assertNotIn("x-forwarded-for", headers)
        self.assertNotIn("x-custom", headers)
        self.assertNotIn("x-security-token", headers)
        for name, value in capture["headers"]:
            for client_value in CLIENT_HEADERS.values():
                self.assertNotIn(client_value, value,
                                 "client value in upstream %s" % name)

    def test_gateway_headers_have_the_documented_values(self):
        """The upstream request carries the gateway's Host, X-Sdk-Date,
        X-Project-Id, Content-Type, User-Agent and Authorization."""
        gw = self.start_recgate()
        capture = self.fetch_and_capture(gw, "rec-failed-1",
                                         headers=CLIENT_HEADERS)
        headers = self.assert_own_headers_only(capture)

        self.assertEqual(headers["host"], "localhost:%d" % self.sim.port)
        self.assertEqual(headers["x-project-id"], harness.PROJECT_ID)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertRegex(headers["user-agent"], r"^recgate/\S+$")
        self.assertRegex(headers["x-sdk-date"], r"^\d{8}T\d{6}Z$")
        sent = calendar.timegm(time.strptime(headers["x-sdk-date"],
                                             "%Y%m%dT%H%M%SZ"))
        self.assertLess(abs(sent - time.time()), 60)

        auth = headers["authorization"]
        self.assertTrue(auth.startswith(
            "SDK-HMAC-SHA256 Access=%s, " % self.AK), auth)
        match = re.fullmatch(r"SDK-HMAC-SHA256 Access=(\S+), "
                             r"SignedHeaders=([a-z0-9;-]+), "
                             r"Signature=([0-9a-f]{64})", auth)
        self.assertTrue(match, auth)
        signed = match.group(2).split(";")
        self.assertEqual(signed, sorted(signed))
        for name in ("host", "x-sdk-date", "x-project-id"):
            self.assertIn(name, signed)
        self.assertEqual(self.sim.stats()["signature_failures"], 0)

    def test_client_host_does_not_change_the_upstream_host(self):
        """A client Host header has no effect on the Host the cloud
        sees."""
        gw = self.start_recgate()
        capture = self.fetch_and_capture(
            gw, "rec-success-1", headers={"Host": "workspace.example.org"})
        headers = self.assert_own_headers_only(capture)
        self.assertEqual(headers["host"], "localhost:%d" % self.sim.port)


class HeaderHygieneWithSecurityToken(harness.RecgateTestCase):
    SECURITY_TOKEN = "temporary-token+/=abc"

    def test_security_token_is_sent_and_signed(self):
        """With temporary credentials requests succeed, carry the
        configured X-Security-Token (signed), and never the client's."""
        gw = self.start_recgate()
        status, headers, body = gw.get(
            harness.record_path("rec-success-1"),
            headers={"X-Security-Token": "client-token",
                     "Authorization": "Bearer x"})
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        captured = self.sim.requests()
        self.assertEqual(len(captured), 1)
        sent = captured_header_map(captured[0])
        self.assertEqual(sent.get("x-security-token"), [self.SECURITY_TOKEN])
        self.assertIn("x-security-token",
                      re.search(r"SignedHeaders=([^,]+)",
                                sent["authorization"][0]).group(1)
                      .split(";"))
        names = set(sent) - {"x-security-token"}
        self.assertTrue(REQUIRED <= names <= REQUIRED | OPTIONAL,
                        sorted(sent))
        self.assertEqual(self.sim.stats()["signature_failures"], 0)
        self.assertNotIn(self.SECURITY_TOKEN, gw.log_text())

    def test_security_token_from_the_environment(self):
        """HUAWEICLOUD_SDK_SECURITY_TOKEN supplies the token when the config
        has none."""
        gw = self.start_recgate(
            {"credentials.security_token": None},
            env={"HUAWEICLOUD_SDK_SECURITY_TOKEN": self.SECURITY_TOKEN})
        status, _, body = gw.get(harness.record_path("rec-failed-1"))
        self.assertEqual(status, 200, body)
        self.assertEqual(self.sim.stats()["signature_failures"], 0)

    def test_missing_token_is_refused_by_the_cloud(self):
        """Without the token the cloud refuses the gateway: 502
        RECGATE.5021."""
        gw = self.start_recgate({"credentials.security_token": None})
        self.assertErrorReply(gw.get(harness.record_path("rec-failed-1")),
                              502, "RECGATE.5021")


if __name__ == "__main__":
    harness.main()
