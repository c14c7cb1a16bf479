#!/usr/bin/env python3
# An upstream 200 whose body is not a valid record is a 502 RECGATE.5022:
# never stored, counted in recgate_validation_failures_total, and the next
# read goes to the cloud again.

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

VALIDATION_METRIC = "recgate_validation_failures_total"
MAX_BODY = 64 * 1024


def good_record(rid):
    return dict(harness.load_fixture("rec-success-1"), id=rid)


class BadUpstreamBody(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        self.gw = self.start_recgate({"upstream.max_body": "64KiB"})

    def assert_refused_twice(self, rid):
        """Two GETs of rid: each a 502 RECGATE.5022 that went upstream,
        nothing stored, the validation counter up by one each time."""
        path = harness.record_path(rid)
        for attempt in (1, 2):
            before = self.gw.metrics().get(VALIDATION_METRIC, 0)
            upstream_before = self.upstream_count(rid)
            reply = self.gw.get(path)
            self.assertErrorReply(reply, 502, "RECGATE.5022")
            self.assertNotEqual(reply[1].get("x-cache"), "HIT")
            self.assertGreater(self.upstream_count(rid), upstream_before,
                               "GET %d did not reach the cloud" % attempt)
            self.assertEqual(self.record_keys(), [], "an invalid record "
                             "was stored")
            self.assertEqual(self.redis.keys("*%s*" % rid), [])
            after = self.gw.metrics().get(VALIDATION_METRIC, 0)
            self.assertEqual(after, before + 1, "%s did not rise"
                             % VALIDATION_METRIC)

    def test_body_that_is_not_json(self):
        """A body that is not JSON at all is refused."""
        self.sim.put_record("rec-text", raw="this is not JSON")
        self.assert_refused_twice("rec-text")

    def test_truncated_json(self):
        """Truncated JSON (the malformed fixture) is refused."""
        self.assert_refused_twice("rec-malformed-1")

    def test_malformed_fault(self):
        """The simulator's malformed fault is refused, and the record is
        served normally once the fault is gone."""
        self.sim.fault(kind="malformed")
        self.assert_refused_twice("rec-success-1")
        self.sim.clear_faults()
        status, headers, _ = self.gw.get(harness.record_path("rec-success-1"))
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))

    def test_json_array(self):
        """A JSON array instead of an object is refused."""
        self.sim.put_record("rec-array", raw='[{"id": "rec-array", '
                            '"status": "SUCCESS"}]')
        self.assert_refused_twice("rec-array")

    def test_json_scalar(self):
        """A JSON string instead of an object is refused."""
        self.sim.put_record("rec-scalar", raw='"rec-scalar"')
        self.assert_refused_twice("rec-scalar")

    def test_wrong_id(self):
        """A record whose id differs from the requested one is refused and
        stored under neither id."""
        self.sim.fault(kind="wrong_id", record="rec-success-1")
        self.assert_refused_twice("rec-success-1")
        self.assertEqual(self.redis.keys("*rec-success-1*"), [])
        self.sim.clear_faults()
        status, _, body = self.gw.get(harness.record_path("rec-success-1"))
        self.assertEqual(status, 200, body)

    def test_id_missing_empty_or_not_a_string(self):
        """A record without an id, with an empty id or a numeric id is
        refused."""
        for rid, value in (("rec-noid", None), ("rec-emptyid", ""),
                           ("rec-numid", 7)):
            with self.subTest(id=value):
                body = good_record(rid)
                if value is None:
                    del body["id"]
                else:
                    body["id"] = value
                self.sim.put_record(rid, body=body)
                self.assert_refused_twice(rid)

    def test_status_missing_empty_or_not_a_string(self):
        """A record without a status, with an empty or blank status or a
        numeric one is refused."""
        for rid, value in (("rec-nostatus", None), ("rec-emptystatus", ""),
                           ("rec-blankstatus", "   "),
                           ("rec-numstatus", 1)):
            with self.subTest(status=value):
                body = good_record(rid)
                if value is None:
                    del body["status"]
                else:
                    body["status"] = value
                self.sim.put_record(rid, body=body)
                self.assert_refused_twice(rid)

    def test_unparseable_times(self):
        """A start or end time that is not a time in a documented form is
        refused."""
        cases = (("rec-time-word", "start_time", "yesterday"),
                 ("rec-time-month", "start_time", "2024-13-01T00:00:00Z"),
                 ("rec-time-day", "end_time", "2024-02-30 10:00:00"),
                 ("rec-time-bool", "end_time", True),
                 ("rec-time-object", "start_time", {"s": 1}))
        for rid, key, value in cases:
            with self.subTest(key=key, value=value):
                self.sim.put_record(rid, body=dict(good_record(rid),
                                                   **{key: value}))
                self.assert_refused_twice(rid)

    def test_execute_order_not_an_integer(self):
        """An execute_order that is neither an integer nor a digit string is
        refused."""
        for rid, value in (("rec-order-word", "first"),
                           ("rec-order-float", 1.5),
                           ("rec-order-list", [1])):
            with self.subTest(value=value):
                self.sim.put_record(rid, body=dict(good_record(rid),
                                                   execute_order=value))
                self.assert_refused_twice(rid)

    def test_string_field_of_another_type(self):
        """A known string field holding a number or an object is
        refused."""
        for rid, key, value in (("rec-name-num", "script_name", 42),
                                ("rec-output-obj", "output", {"a": 1})):
            with self.subTest(key=key):
                self.sim.put_record(rid, body=dict(good_record(rid),
                                                   **{key: value}))
                self.assert_refused_twice(rid)

    def test_body_over_max_body(self):
        """A body over upstream.max_body (64 KiB here) is refused."""
        self.sim.fault(kind="huge", bytes=MAX_BODY + 4096)
        self.assert_refused_twice("rec-success-1")
        # The operator reads why: the size, not a connection failure.
        warnings = [line for line in self.gw.log_lines()
                    if line.get("level") in ("warn", "error")
                    and "upstream" in line.get("msg", "")]
        self.assertTrue(warnings, "no warning about the refused body")
        for line in warnings:
            self.assertNotIn("connection failed", json.dumps(line))
        self.assertTrue(any("max_body" in json.dumps(line)
                            for line in warnings), warnings)

    def test_oversized_record_does_not_open_the_breaker(self):
        """One record whose body is over upstream.max_body, asked for more
        often than upstream.breaker_failures (5): each ask is a 502
        RECGATE.5022 that went to the cloud, never a 503 from an open
        breaker, and another record is still fetched."""
        self.sim.put_record("rec-huge", body=good_record("rec-huge"))
        self.sim.fault(kind="huge", bytes=MAX_BODY + 4096, record="rec-huge")
        for attempt in range(8):
            reply = self.gw.get(harness.record_path("rec-huge"))
            self.assertErrorReply(reply, 502, "RECGATE.5022")
        self.assertEqual(self.upstream_count("rec-huge"), 8)

        status, headers, body = self.gw.get(
            harness.record_path("rec-success-1"))
        self.assertEqual(status, 200, body[:200])
        status, _, body = self.gw.get("/readyz")
        self.assertEqual(json.loads(body)["breaker"], "closed", body)

    def test_body_under_max_body_is_served(self):
        """A valid body just under upstream.max_body is served and
        stored."""
        self.sim.fault(kind="huge", bytes=MAX_BODY - 1024, count=1)
        status, headers, body = self.gw.get(
            harness.record_path("rec-success-1"))
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertGreater(len(body), MAX_BODY - 2048)
        self.assertEqual(self.record_keys(),
                         [harness.record_key("rec-success-1")])
        self.assertEqual(self.gw.metrics().get(VALIDATION_METRIC, 0), 0)


if __name__ == "__main__":
    harness.main()
