#!/usr/bin/env python3
# The upstream certificate is verified, chain and host name: an untrusted
# or wrong-host certificate is a 502, never an unverified request, and the
# log says what was wrong with the certificate.

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PATH = harness.record_path("rec-success-1")


class UpstreamTls(harness.RecgateTestCase):

    def certificate_log_lines(self, gw):
        """Log lines at warn or error level that mention a certificate."""
        return [line for line in gw.log_lines()
                if line.get("level") in ("warn", "error")
                and "certificate" in str(line).lower()]

    def assert_refused_without_request(self, gw, sim):
        """The first GET is a 502 RECGATE.5020; later ones are that too or,
        once the gateway stops trying a failing cloud for a while, a 503
        with Retry-After; never a record, and nothing reaches sim."""
        self.assertErrorReply(gw.get(PATH), 502, "RECGATE.5020")
        for _ in range(3):
            reply = gw.get(PATH)
            if reply[0] == 503:
                self.assertErrorReply(reply, 503, "RECGATE.5030")
                self.assertRegex(reply[1].get("retry-after", ""),
                                 r"^[1-9][0-9]*$")
            else:
                self.assertErrorReply(reply, 502, "RECGATE.5020")
        stats = sim.stats()
        self.assertEqual(stats["requests"], 0, stats)
        self.assertEqual(stats["by_record"], {})
        self.assertEqual(self.record_keys(), [])

    def test_unrelated_ca_is_refused(self):
        """With upstream.ca_file set to an unrelated CA the simulator's
        certificate is refused: 502, and no request reaches it."""
        gw = self.start_recgate({"upstream.ca_file": self.pki.other_ca_cert})
        self.assert_refused_without_request(gw, self.sim)
        lines = self.certificate_log_lines(gw)
        self.assertTrue(lines, "no log line explains the certificate "
                        "problem:\n" + gw.log_text())

    def test_wrong_host_certificate_is_refused(self):
        """A certificate from the right CA but for another host name is
        refused: 502, and no request reaches the server."""
        wrong = harness.Sim(os.path.join(self.workdir, "wrong-host"),
                            self.pki, cert=self.pki.wrong_host_cert,
                            key=self.pki.wrong_host_key)
        self.addCleanup(wrong.stop)
        # The test's own control requests to it skip the host name check.
        wrong.ssl_ctx.check_hostname = False
        gw = self.start_recgate({"upstream.endpoint": wrong.endpoint})
        self.assert_refused_without_request(gw, wrong)
        lines = self.certificate_log_lines(gw)
        self.assertTrue(lines, "no log line explains the certificate "
                        "problem:\n" + gw.log_text())
        self.assertTrue(any(re.search(r"host ?name|mismatch", str(line),
                                      re.I) for line in lines),
                        "the log does not say the host name is wrong:\n"
                        + "\n".join(map(str, lines)))

    def test_ip_literal_endpoint_is_verified_against_the_ip(self):
        """An endpoint given as 127.0.0.1 is verified against the
        certificate's IP address and works."""
        gw = self.start_recgate({"upstream.endpoint":
                                 "https://127.0.0.1:%d" % self.sim.port})
        status, headers, body = gw.get(PATH)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(self.upstream_count(), 1)

    def test_missing_ca_file_stops_the_gateway(self):
        """A ca_file that does not exist is a start-up error, not a
        fallback to no verification."""
        gw = self.start_recgate(
            {"upstream.ca_file": os.path.join(self.workdir, "nope.pem")},
            wait=False)
        code = gw.wait_exit(10)
        self.assertIsNotNone(code, "recgate kept running without its CA")
        self.assertNotEqual(code, 0)
        self.assertEqual(self.upstream_count(), 0)


if __name__ == "__main__":
    harness.main()
