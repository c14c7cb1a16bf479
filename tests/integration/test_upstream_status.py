#!/usr/bin/env python3
# What the client sees when the cloud answers an error, stalls or drops the
# connection: the documented status and error code, and nothing cached.

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RID = "rec-success-1"
PATH = harness.record_path(RID)
GENEROUS_RATE = {"upstream.rate": "1000", "upstream.burst": "1000"}


class UpstreamStatus(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        self.gw = self.start_recgate(dict(GENEROUS_RATE, **{
            "upstream.timeout": "1s", "server.request_timeout": "3s"}))

    def assert_not_cached_and_recovers(self, within_s=0, rid=RID):
        """Nothing was stored; with the faults gone a GET goes to the cloud
        and is served (at once, or within within_s seconds, before which
        only a 429 is acceptable)."""
        self.assertEqual(self.redis.keys("*%s*" % rid), [])
        self.sim.clear_faults()
        before = self.upstream_count(rid)
        deadline = time.monotonic() + within_s
        while True:
            status, headers, body = self.gw.get(harness.record_path(rid))
            if status != 429 or time.monotonic() >= deadline:
                break
            self.assertErrorReply((status, headers, body), 429,
                                  "RECGATE.4290")
            time.sleep(0.2)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertGreater(self.upstream_count(rid), before)

    def fault_reply(self, rid=RID, **fault):
        """Installs a fault for every request for rid and makes one GET."""
        self.sim.fault(record=rid, **fault)
        reply = self.gw.get(harness.record_path(rid))
        self.assertGreaterEqual(self.upstream_count(rid), 1)
        return reply

    def fresh_record(self, rid):
        """A finished record nobody has read yet (so no cache holds it)."""
        self.sim.put_record(rid, body=dict(harness.load_fixture(RID), id=rid))
        return rid

    def test_404_is_passed_through(self):
        """An unknown record is a 404 with the cloud's error_code and
        error_msg, and is asked again next time."""
        path = harness.record_path("rec-nope")
        for n in (1, 2):
            doc = self.assertErrorReply(self.gw.get(path), 404, "WKS.0404")
            self.assertEqual(doc["error_msg"], "record not found")
            self.assertEqual(self.upstream_count("rec-nope"), n)
        self.assertEqual(self.record_keys(), [])

    def test_404_without_a_cloud_body(self):
        """A 404 whose body is not in the cloud's error shape becomes
        RECGATE.4040."""
        self.assertErrorReply(self.fault_reply(kind="status", status=404,
                                               body="gone"),
                              404, "RECGATE.4040")
        self.assert_not_cached_and_recovers()

    def test_400_is_passed_through(self):
        """An upstream 400 is a 400 with the cloud's error_code."""
        doc = self.assertErrorReply(
            self.fault_reply(kind="status", status=400,
                             body={"error_code": "WKS.0001",
                                   "error_msg": "bad record id",
                                   "request_id": "cloud-req-1"}),
            400, "WKS.0001")
        self.assertEqual(doc["error_msg"], "bad record id")
        self.assert_not_cached_and_recovers()

    def test_400_without_a_cloud_body(self):
        """An upstream 400 with a non-JSON body becomes RECGATE.4000."""
        self.assertErrorReply(self.fault_reply(kind="status", status=400,
                                               body="<html>bad</html>"),
                              400, "RECGATE.4000")
        self.assert_not_cached_and_recovers()

    def test_401_and_403_are_credential_failures(self):
        """Upstream 401 and 403 are 502 RECGATE.5021: the gateway's
        credentials, not the client's, were refused."""
        for status in (401, 403):
            with self.subTest(status=status):
                rid = self.fresh_record("rec-auth-%d" % status)
                self.assertErrorReply(
                    self.fault_reply(rid, kind="status", status=status),
                    502, "RECGATE.5021")
                self.assert_not_cached_and_recovers(rid=rid)

    def test_5xx_is_502(self):
        """Upstream 500 and 503 are 502 RECGATE.5020."""
        for status in (500, 503):
            with self.subTest(status=status):
                rid = self.fresh_record("rec-5xx-%d" % status)
                self.assertErrorReply(
                    self.fault_reply(rid, kind="status", status=status),
                    502, "RECGATE.5020")
                self.assert_not_cached_and_recovers(rid=rid)

    def test_429_keeps_retry_after(self):
        """An upstream 429 with Retry-After: 7 is a 429 RECGATE.4290 with
        Retry-After: 7, and is not cached."""
        started = time.monotonic()
        reply = self.fault_reply(kind="status", status=429, retry_after=7)
        self.assertErrorReply(reply, 429, "RECGATE.4290")
        self.assertEqual(reply[1].get("retry-after"), "7")
        self.assertLess(time.monotonic() - started, 3.5)
        self.assertEqual(self.redis.keys("*%s*" % RID), [])
        # Meanwhile the gateway may hold its own clients back, but it
        # never answers from a cache.
        self.sim.clear_faults()
        status, headers, body = self.gw.get(PATH)
        if status == 429:
            self.assertErrorReply((status, headers, body), 429,
                                  "RECGATE.4290")
            self.assertRegex(headers.get("retry-after", ""), r"^[1-7]$")
        else:
            self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))

    def test_429_then_served_after_retry_after(self):
        """After an upstream 429 with Retry-After: 1 the record is read from
        the cloud again once that second has passed."""
        reply = self.fault_reply(kind="status", status=429, retry_after=1)
        self.assertErrorReply(reply, 429, "RECGATE.4290")
        self.assertEqual(reply[1].get("retry-after"), "1")
        self.assert_not_cached_and_recovers(within_s=3)

    def test_429_without_retry_after_still_has_one(self):
        """An upstream 429 without Retry-After is a 429 that still tells
        the client when to retry."""
        reply = self.fault_reply(kind="status", status=429)
        self.assertErrorReply(reply, 429, "RECGATE.4290")
        self.assertRegex(reply[1].get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assert_not_cached_and_recovers(within_s=3)

    def test_hang_is_a_504_within_the_timeout(self):
        """An upstream that never answers is a 504 RECGATE.5040 after
        upstream.timeout (1 s), not much later."""
        self.sim.fault(record=RID, kind="hang", max_s=30)
        started = time.monotonic()
        reply = self.gw.get(PATH, timeout=10)
        elapsed = time.monotonic() - started
        self.assertErrorReply(reply, 504, "RECGATE.5040")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 1.5, "504 took %.2f s" % elapsed)
        self.assert_not_cached_and_recovers()

    def test_drop_is_502(self):
        """A connection closed without an answer is a 502 RECGATE.5020."""
        self.assertErrorReply(self.fault_reply(kind="drop"),
                              502, "RECGATE.5020")
        self.assert_not_cached_and_recovers()

    def test_drop_mid_body_is_502(self):
        """A connection closed in the middle of the body is a 502
        RECGATE.5020."""
        self.assertErrorReply(self.fault_reply(kind="drop_mid_body"),
                              502, "RECGATE.5020")
        self.assert_not_cached_and_recovers()

    def test_drop_on_a_kept_alive_connection(self):
        """After a good exchange on a kept-alive connection, a dropped one
        is still a 502 and the gateway keeps working."""
        self.assertEqual(self.gw.get(
            harness.record_path("rec-failed-1"))[0], 200)
        self.assertErrorReply(self.fault_reply(kind="drop"),
                              502, "RECGATE.5020")
        self.assert_not_cached_and_recovers()

    def test_chunked_answer_works(self):
        """A chunked 200 is read whole, served and cached like any
        other."""
        self.sim.fault(record=RID, kind="chunked")
        status, headers, body = self.gw.get(PATH)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture(RID)))
        status, headers, again = self.gw.get(PATH)
        self.assertEqual((status, headers.get("x-cache"), again),
                         (200, "HIT", body))
        self.assertEqual(self.upstream_count(RID), 1)

    def test_latency_under_the_timeout_is_fine(self):
        """An answer that comes after 300 ms, within upstream.timeout, is
        served."""
        self.sim.fault(record=RID, kind="latency", ms=300, count=1)
        status, headers, _ = self.gw.get(PATH)
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))


class UnreachableUpstream(harness.RecgateTestCase):
    START_SIM = False

    def test_connection_refused_is_502(self):
        """An endpoint where nothing listens is a quick 502
        RECGATE.5020."""
        gw = self.start_recgate({
            "upstream.endpoint": "https://localhost:%d" % harness.free_port(),
            "upstream.timeout": "1s"})
        started = time.monotonic()
        self.assertErrorReply(gw.get(PATH), 502, "RECGATE.5020")
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(self.record_keys(), [])


class WrongSecretKey(harness.RecgateTestCase):
    WRONG_SK = "WrongSecretKey/not+the=right0123456789abcd"

    def test_refused_credentials(self):
        """A wrong SK makes the cloud answer 403, clients get 502
        RECGATE.5021, the log has one error line for it however many
        requests fail, and no log line holds the AK or SK."""
        gw = self.start_recgate(dict(GENEROUS_RATE,
                                     **{"credentials.sk": self.WRONG_SK}))
        rids = ("rec-success-1", "rec-failed-1", "rec-success-1",
                "rec-timeout-1", "rec-unicode-1")
        for rid in rids:
            self.assertErrorReply(gw.get(harness.record_path(rid)),
                                  502, "RECGATE.5021")
        stats = self.sim.stats()
        self.assertEqual(stats["signature_failures"], len(rids), stats)
        self.assertEqual(self.record_keys(), [])

        errors = [line for line in gw.log_lines()
                  if line.get("level") == "error"]
        self.assertEqual(len(errors), 1, "error lines:\n" + "\n".join(
            json.dumps(e) for e in errors))

        text = gw.log_text()
        with open(gw.stdout_path, "rb") as f:
            text += f.read().decode("utf-8", "replace")
        for secret in (self.WRONG_SK, self.SK, self.AK):
            self.assertNotIn(secret, text)
        self.assertNotIn("Signature=", text)
        self.assertNotIn("SDK-HMAC-SHA256", text)


if __name__ == "__main__":
    harness.main()
