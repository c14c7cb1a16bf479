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


def channel(rid):
    return "%sdone:%s:%s" % (PREFIX, harness.PROJECT_ID, rid)


def lease_key(rid):
    return "%slease:%s:%s" % (PREFIX, harness.PROJECT_ID, rid)


def message(body, finished):
    return json.dumps({"status": 200, "finished": finished,
                       "body": body.decode(), "upstream_ms": 1.0,
                       "owner": "someone-else"})


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


if __name__ == "__main__":
    harness.main()
