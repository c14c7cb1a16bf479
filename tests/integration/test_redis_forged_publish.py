#!/usr/bin/env python3
# A request that finds another process's lease on its record waits for
# that process to publish the result on {prefix}done:{project}:{record}.
# Anyone who can write to Redis can publish there too: a published record
# is handed to the waiters only when it is one recgate itself would have
# sent for that record, so a forged one reaches neither a client nor the
# in-process cache.

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RID = "rec-success-1"
OTHER = "rec-failed-1"
PREFIX = "recgate:"
LEASE_MS = 1500
REDIS_ERRORS = "recgate_redis_errors_total"


def channel(rid):
    return "%sdone:%s:%s" % (PREFIX, harness.PROJECT_ID, rid)


def lease_key(rid):
    return "%slease:%s:%s" % (PREFIX, harness.PROJECT_ID, rid)


def message(body, finished):
    return json.dumps({"status": 200, "finished": finished,
                       "body": body.decode(), "upstream_ms": 1.0,
                       "owner": "someone-else"})


def error_message(status, code="A", msg="B", retry_after=None):
    doc = {"status": status, "error_code": code, "error_msg": msg,
           "upstream_ms": 1.0, "owner": "someone-else"}
    if retry_after is not None:
        doc["retry_after"] = retry_after
    return json.dumps(doc)


class ForgedPublish(harness.RecgateTestCase):

    def ask_while_leased(self, gw, forged):
        """Takes the record's lease as another process would, asks for the
        record, publishes forged while the request waits, and returns the
        answer the client got."""
        self.redis.command("SET", lease_key(RID), "someone-else", "PX",
                           str(LEASE_MS))
        result = {}

        def ask():
            result["reply"] = gw.get(harness.record_path(RID), timeout=15)

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.3)     # the request has found the lease taken
        self.redis.command("PUBLISH", channel(RID), forged)
        t.join(15)
        self.assertFalse(t.is_alive(), "the request never got an answer")
        return result["reply"]

    def assert_real_record(self, reply):
        status, headers, body = reply
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(body, harness.compact_json(
            harness.load_fixture(RID)))
        return headers

    def test_forged_records_are_not_handed_to_waiters(self):
        """Another record's body, a running record claimed finished, and
        text that is no record: the waiting client still gets the real
        record, fetched by itself once the lease expired."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        other = harness.compact_json(harness.load_fixture(OTHER))
        running = harness.compact_json(dict(harness.load_fixture(RID),
                                            status="RUNNING"))
        forged = [("another record", message(other, True)),
                  ("running, claimed finished", message(running, True)),
                  ("not a record", message(b"surprise", True))]
        for name, text in forged:
            with self.subTest(forged=name):
                self.redis.flushall()
                gw.stop()
                gw.start()
                before = self.upstream_count()
                headers = self.assert_real_record(
                    self.ask_while_leased(gw, text))
                self.assertEqual(headers.get("x-cache"), "MISS")
                self.assertEqual(self.upstream_count(), before + 1)
                # Nothing of the forgery was kept: the next answer is the
                # real record too, from the cache.
                headers = self.assert_real_record(
                    gw.get(harness.record_path(RID)))
                self.assertEqual(headers.get("x-cache"), "HIT")

    def test_a_genuine_message_is_still_taken(self):
        """The record recgate would have sent, published by the lease
        holder, answers the waiter without an upstream request."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        real = harness.compact_json(harness.load_fixture(RID))
        reply = self.ask_while_leased(gw, message(real, True))
        self.assert_real_record(reply)
        self.assertEqual(self.upstream_count(), 0)

    def test_forged_error_answers_are_not_handed_to_waiters(self):
        """Statuses recgate never publishes (101, 304, 1, 99999, 2^32+1,
        which an int cast would make 1), an over-long error_msg, texts
        that are no strings and a Retry-After that is no number: the
        waiting client still gets the real record, 200, fetched by
        itself once the lease expired; each forgery is counted as a
        Redis error and leaves no metrics series of its status."""
        gw = self.start_recgate({"cache.ttl": "1h"})
        forged = [("101", error_message(101)),
                  ("304", error_message(304)),
                  ("1", error_message(1)),
                  ("99999", error_message(99999)),
                  ("4294967297", error_message(4294967297)),
                  ("status as text", error_message("404")),
                  ("over-long error_msg",
                   error_message(404, msg="B" * 5000)),
                  ("error_code not a string", error_message(404, code=7)),
                  ("retry_after not digits",
                   error_message(429, retry_after="1\r\nX-Evil: 1")),
                  ("retry_after too long",
                   error_message(429, retry_after="1000000000"))]
        for name, text in forged:
            with self.subTest(forged=name):
                self.redis.flushall()
                gw.stop()
                gw.start()
                before = self.upstream_count()
                status, headers, body = self.ask_while_leased(gw, text)
                self.assertEqual(status, 200, body[:200])
                self.assertEqual(body, harness.compact_json(
                    harness.load_fixture(RID)))
                self.assertNotIn("retry-after", headers)
                self.assertEqual(self.upstream_count(), before + 1)
                metrics = gw.metrics()
                self.assertEqual(metrics.get(REDIS_ERRORS), 1)
                codes = [k for k in metrics
                         if k.startswith("recgate_requests_total")]
                self.assertTrue(codes)
                for k in codes:
                    self.assertNotRegex(k, r'code="(101|304|1|99999)"')
        self.assertIn("ignored a published result", gw.log_text())

    def test_a_genuine_error_is_still_taken(self):
        """A 404 published by a real lease holder (another recgate that
        fetched it) answers the waiting client of this one, without an
        upstream request of its own."""
        cfg = {"cache.ttl": "1h"}
        holder = self.start_recgate(cfg)
        waiter = self.start_recgate(cfg)
        self.sim.fault(kind="latency", ms=1000)
        result = {}

        def ask(name, gw):
            result[name] = gw.get(harness.record_path("rec-missing-1"),
                                  timeout=15)

        first = threading.Thread(target=ask, args=("holder", holder))
        first.start()
        self.assertTrue(harness.wait_for(
            lambda: self.redis.get(lease_key("rec-missing-1")), 5))
        ask("waiter", waiter)
        first.join(15)
        self.assertErrorReply(result["holder"], 404, None)
        self.assertErrorReply(result["waiter"], 404, None)
        self.assertEqual(self.upstream_count(), 1)


if __name__ == "__main__":
    harness.main()
