#!/usr/bin/env python3
# A record that has not finished is never stored: every read of it goes to
# the cloud, until it reaches a terminal status.

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RunningRecord(harness.RecgateTestCase):

    def read(self, gw, rid):
        status, headers, body = gw.get(harness.record_path(rid))
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        return headers, json.loads(body)

    def assert_not_cached_answer(self, headers, doc, status_text):
        self.assertEqual(doc["status"], status_text)
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(headers.get("cache-control"), "no-store")

    def test_running_then_finished(self):
        """Reads of a RUNNING record all reach the cloud and are not stored;
        once it is SUCCESS it is stored on the next read and then a HIT."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        rid = "rec-running-1"

        for n in (1, 2):
            headers, doc = self.read(gw, rid)
            self.assert_not_cached_answer(headers, doc, "RUNNING")
            self.assertIsNone(doc["end_time"])
            self.assertEqual(self.upstream_count(rid), n)
            self.assertEqual(self.redis.keys("*%s*" % rid), [],
                             "a running record was stored")
            self.assertEqual(self.record_keys(), [])

        headers, doc = self.read(gw, rid)
        self.assertEqual(doc["status"], "SUCCESS")
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(headers.get("cache-control"), "max-age=3600")
        self.assertEqual(doc["end_time"], "2024-12-25T09:42:17.500Z")
        self.assertEqual(self.upstream_count(rid), 3)
        self.assertEqual(self.record_keys(), [harness.record_key(rid)])

        headers, doc2 = self.read(gw, rid)
        self.assertEqual(headers.get("x-cache"), "HIT")
        self.assertEqual(headers.get("cache-control"), "max-age=3600")
        self.assertEqual(doc2, doc)
        self.assertEqual(self.upstream_count(rid), 3)

    def test_stuck_record_is_always_read_from_the_cloud(self):
        """A record that stays RUNNING is read from the cloud every time."""
        gw = self.start_recgate()
        for n in range(1, 6):
            headers, doc = self.read(gw, "rec-stuck-1")
            self.assert_not_cached_answer(headers, doc, "RUNNING")
            self.assertEqual(self.upstream_count("rec-stuck-1"), n)
        self.assertEqual(self.redis.keys("*rec-stuck-1*"), [])
        self.assertEqual(self.record_keys(), [])

    def test_back_to_back_reads_each_reach_the_cloud(self):
        """Reads of a running record sent one after another on a kept-alive
        connection each get a fresh upstream read, never the answer of the
        read before."""
        gw = self.start_recgate()
        conn = gw.connection()
        self.addCleanup(conn.close)
        path = harness.record_path("rec-stuck-1")
        answered = []
        for _ in range(30):
            status, headers, body = harness.http_request(conn, "GET", path)
            self.assertEqual(status, 200, body)
            self.assertEqual(headers.get("cache-control"), "no-store")
            answered.append(headers.get("x-cache"))
        self.assertEqual(answered, ["MISS"] * 30)
        self.assertEqual(self.upstream_count("rec-stuck-1"), 30,
                         "some of 30 sequential reads of a running record "
                         "were not read from the cloud")

    def test_new_status_is_seen_by_the_very_next_read(self):
        """When the cloud's answer changes from RUNNING to SUCCESS, the read
        right after the RUNNING one already sees SUCCESS."""
        gw = self.start_recgate()
        conn = gw.connection()
        self.addCleanup(conn.close)
        base = harness.load_fixture("rec-success-1")
        stale = []
        for n in range(10):
            rid = "rec-flip-%d" % n
            self.sim.put_record(rid, body=dict(base, id=rid),
                                running_reads=1)
            path = harness.record_path(rid)
            first = harness.http_request(conn, "GET", path)
            second = harness.http_request(conn, "GET", path)
            self.assertEqual(json.loads(first[2])["status"], "RUNNING")
            if json.loads(second[2])["status"] != "SUCCESS":
                stale.append((rid, second[1].get("x-cache"),
                              self.upstream_count(rid)))
        self.assertEqual(stale, [], "(record, X-Cache, upstream reads) of "
                         "second reads that still said RUNNING")

    def test_non_terminal_and_unknown_statuses_are_never_cached(self):
        """INIT, WAITING and an unknown status such as PAUSED are answered
        with no-store and read from the cloud again each time."""
        gw = self.start_recgate()
        base = harness.load_fixture("rec-stuck-1")
        for status_text in ("INIT", "WAITING", "PAUSED", "paused"):
            rid = "rec-status-" + status_text
            self.sim.put_record(rid, body=dict(base, id=rid,
                                               status=status_text))
            with self.subTest(status=status_text):
                for n in (1, 2, 3):
                    headers, doc = self.read(gw, rid)
                    self.assert_not_cached_answer(headers, doc,
                                                  status_text.upper())
                    self.assertEqual(self.upstream_count(rid), n)
                self.assertEqual(self.redis.keys("*%s*" % rid), [])
                self.assertEqual(self.record_keys(), [])

    def test_configured_terminal_statuses_replace_the_default(self):
        """cache.terminal_statuses (case-insensitive) decides what is
        stored: a listed status is cached, an unlisted default one is
        not."""
        gw = self.start_recgate({"cache.terminal_statuses":
                                 "success, Paused"})
        base = harness.load_fixture("rec-success-1")
        self.sim.put_record("rec-paused", body=dict(base, id="rec-paused",
                                                    status="PAUSED"))

        headers, _ = self.read(gw, "rec-paused")
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertTrue(headers.get("cache-control", "")
                        .startswith("max-age="), headers)
        headers, _ = self.read(gw, "rec-paused")
        self.assertEqual(headers.get("x-cache"), "HIT")
        self.assertEqual(self.upstream_count("rec-paused"), 1)

        for _ in range(2):
            headers, doc = self.read(gw, "rec-failed-1")
            self.assert_not_cached_answer(headers, doc, "FAILED")
        self.assertEqual(self.upstream_count("rec-failed-1"), 2)
        self.assertEqual(self.record_keys(),
                         [harness.record_key("rec-paused")])


if __name__ == "__main__":
    harness.main()
