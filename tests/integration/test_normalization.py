#!/usr/bin/env python3
# Records in odd but valid shapes come out in the one normalized form:
# fixed key order, null for missing keys, extra keys at the end, status
# trimmed and upper-cased, execute_order an integer, times in UTC with
# milliseconds.  A HIT serves the very bytes the MISS did.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

KEYS = ("id", "script_id", "script_name", "script_task_id", "resource_id",
        "resource_name", "resource_type", "start_time", "end_time", "status",
        "execute_order", "command_content", "command_type", "result_code",
        "reason", "output")


def normalized(values, extra=()):
    """The expected normalized bytes: every known key in order (null when
    not in values), then the extra (name, value) pairs in order."""
    doc = {key: values.get(key) for key in KEYS}
    for name, value in extra:
        doc[name] = value
    return harness.compact_json(doc)


def base_record(rid):
    """A plain finished record with every known field."""
    return {
        "id": rid,
        "script_id": "8f2c1d6e-5b3a-4c7e-9a10-2d4e6f8a0b1c",
        "script_name": "collect-disk-usage",
        "script_task_id": "task-1",
        "resource_id": "3c9f0a52-7e1b-4d6a-b8c4-51f2e9a7d013",
        "resource_name": "desktop-finance-01",
        "resource_type": "DESKTOP",
        "start_time": "2024-12-25T07:10:36.054Z",
        "end_time": "2024-12-25T07:10:41.870Z",
        "status": "SUCCESS",
        "execute_order": 0,
        "command_content": "Get-PSDrive",
        "command_type": "POWERSHELL",
        "result_code": "0",
        "reason": None,
        "output": "ok\n",
    }


class Normalization(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        self.gw = self.start_recgate({"cache.ttl": "1h"})

    def assert_served_as(self, rid, body, expected, raw=None):
        """Puts the record into the simulator and checks the MISS and the
        HIT bodies are exactly expected."""
        if raw is not None:
            self.sim.put_record(rid, raw=raw)
        else:
            self.sim.put_record(rid, body=body)
        path = harness.record_path(rid)
        status, headers, miss = self.gw.get(path)
        self.assertEqual(status, 200, miss)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(miss, expected)
        self.assertEqual(headers.get("content-length"), str(len(expected)))
        status, headers, hit = self.gw.get(path)
        self.assertEqual(status, 200, hit)
        self.assertEqual(headers.get("x-cache"), "HIT")
        self.assertEqual(hit, miss, "the HIT body differs from the MISS")
        self.assertEqual(self.upstream_count(rid), 1)

    def test_plain_record_keeps_its_values(self):
        """A record already in normal form is served unchanged, compact."""
        body = base_record("rec-plain")
        self.assert_served_as("rec-plain", body, normalized(body))

    def test_key_order_is_fixed(self):
        """Keys come out in the documented order whatever order the cloud
        sent them in."""
        body = base_record("rec-shuffled")
        shuffled = dict(reversed(list(body.items())))
        self.assert_served_as("rec-shuffled", shuffled, normalized(body))

    def test_status_is_trimmed_and_upper_cased(self):
        """A lower-case, space-padded status is trimmed and upper-cased (and
        still counts as terminal)."""
        body = dict(base_record("rec-status"), status="  success \t")
        want = dict(body, status="SUCCESS")
        self.assert_served_as("rec-status", body, normalized(want))

    def test_execute_order_string_becomes_an_integer(self):
        """execute_order given as a string of digits is output as an
        integer."""
        body = dict(base_record("rec-order"), execute_order="17")
        want = dict(body, execute_order=17)
        self.assert_served_as("rec-order", body, normalized(want))

    def test_times_without_t_are_utc(self):
        """yyyy-MM-dd HH:mm:ss times are taken as UTC and get
        milliseconds."""
        body = dict(base_record("rec-spacetime"),
                    start_time="2024-12-26 01:00:00",
                    end_time="2024-12-26 23:59:59")
        want = dict(body, start_time="2024-12-26T01:00:00.000Z",
                    end_time="2024-12-26T23:59:59.000Z")
        self.assert_served_as("rec-spacetime", body, normalized(want))

    def test_epoch_milliseconds_integer_and_string(self):
        """Epoch milliseconds, as a JSON integer or as a string of digits,
        become RFC 3339 UTC times."""
        body = dict(base_record("rec-epoch"), start_time=1735178400000,
                    end_time="1735178401234")
        want = dict(body, start_time="2024-12-26T02:00:00.000Z",
                    end_time="2024-12-26T02:00:01.234Z")
        self.assert_served_as("rec-epoch", body, normalized(want))

    def test_epoch_seconds_are_not_taken_for_milliseconds(self):
        """An epoch number too small to be milliseconds of a real run
        (before 1973) is epoch seconds: 1735178400 is 2024, not a time in
        January 1970 cached for the record's lifetime."""
        body = dict(base_record("rec-epoch-s"), start_time=1735178400,
                    end_time="1735178401")
        want = dict(body, start_time="2024-12-26T02:00:00.000Z",
                    end_time="2024-12-26T02:00:01.000Z")
        self.assert_served_as("rec-epoch-s", body, normalized(want))

    def test_offsets_are_converted_to_utc(self):
        """RFC 3339 times with +08:00 or -05:30 offsets, with or without a
        fraction, are converted to UTC with three fraction digits."""
        body = dict(base_record("rec-offset"),
                    start_time="2024-12-27T10:00:00+08:00",
                    end_time="2024-12-27T01:30:03.5-05:30")
        want = dict(body, start_time="2024-12-27T02:00:00.000Z",
                    end_time="2024-12-27T07:00:03.500Z")
        self.assert_served_as("rec-offset", body, normalized(want))

    def test_utc_time_without_fraction_gets_milliseconds(self):
        """A Z time without a fraction gets .000."""
        body = dict(base_record("rec-nofrac"),
                    start_time="2024-12-25T07:10:36Z",
                    end_time="2024-12-31T23:59:59.9Z")
        want = dict(body, start_time="2024-12-25T07:10:36.000Z",
                    end_time="2024-12-31T23:59:59.900Z")
        self.assert_served_as("rec-nofrac", body, normalized(want))

    def test_missing_fields_become_null(self):
        """Known keys the cloud left out are output as null, in place."""
        body = base_record("rec-missing")
        for key in ("command_type", "script_task_id", "reason", "end_time",
                    "execute_order"):
            del body[key]
        self.assert_served_as("rec-missing", body, normalized(body))

    def test_extra_fields_are_kept_at_the_end_in_order(self):
        """Keys the cloud adds are kept as they came, after the known keys,
        in the order they came."""
        body = base_record("rec-extra")
        sent = {"zeta": 1, "id": body["id"]}
        sent.update({k: v for k, v in body.items() if k != "id"})
        sent["exit_signal"] = "SIGKILL"
        sent["alpha"] = {"nested": [1, "two", None, True]}
        want = normalized(body, extra=[
            ("zeta", 1), ("exit_signal", "SIGKILL"),
            ("alpha", {"nested": [1, "two", None, True]})])
        self.assert_served_as("rec-extra", sent, want)

    def test_non_ascii_text_and_escapes(self):
        """Non-ASCII text (CJK, a check mark, an emoji) and escaped
        characters survive byte for byte."""
        body = dict(base_record("rec-text"),
                    script_name="检查磁盘",
                    resource_name="桌面-上海-01",
                    output="磁盘 C: 正常 ✓\n\"quoted\" \\ back\\slash\t"
                           "tab \U0001F600 /path\r\n")
        self.assert_served_as("rec-text", body, normalized(body))

    def test_fixture_with_odd_formats(self):
        """The fixture rec-timeout-1 (space time, epoch end, padded
        lower-case status, string order, extra key) normalizes as
        documented."""
        body = harness.load_fixture("rec-timeout-1")
        want = normalized(dict(
            body, start_time="2024-12-26T01:00:00.000Z",
            end_time="2024-12-26T02:00:00.000Z", status="TIMEOUT",
            execute_order=1), extra=[("exit_signal", "SIGKILL")])
        path = harness.record_path("rec-timeout-1")
        status, headers, miss = self.gw.get(path)
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))
        self.assertEqual(miss, want)
        status, headers, hit = self.gw.get(path)
        self.assertEqual((status, headers.get("x-cache"), hit),
                         (200, "HIT", miss))

    def test_fixture_with_unicode_and_offsets(self):
        """The fixture rec-unicode-1 (non-ASCII, +08:00 times, lower-case
        status) normalizes as documented."""
        body = harness.load_fixture("rec-unicode-1")
        want = normalized(dict(
            body, start_time="2024-12-27T02:00:00.000Z",
            end_time="2024-12-27T02:00:03.500Z", status="SUCCESS"))
        path = harness.record_path("rec-unicode-1")
        status, headers, miss = self.gw.get(path)
        self.assertEqual((status, headers.get("x-cache")), (200, "MISS"))
        self.assertEqual(miss, want)
        status, headers, hit = self.gw.get(path)
        self.assertEqual((status, headers.get("x-cache"), hit),
                         (200, "HIT", miss))

    def test_whitespace_and_escapes_in_the_upstream_json(self):
        """Pretty-printed upstream JSON with \\u escapes is served compact,
        with the characters unescaped."""
        raw = ('{\n  "id" : "rec-pretty",\n  "status" : "failed",\n'
               '  "script_name" : "\\u68c0\\u67e5",\n'
               '  "execute_order" : 3,\n  "output" : "a\\/b"\n}\n')
        want = normalized({"id": "rec-pretty", "status": "FAILED",
                           "script_name": "检查", "execute_order": 3,
                           "output": "a/b"})
        self.assert_served_as("rec-pretty", None, want, raw=raw)


if __name__ == "__main__":
    harness.main()
