#!/usr/bin/env python3
# A Redis with a password (requirepass, as DCS has).  With the right one in
# redis.url, caching works and "redis connected" is logged once per
# connection.  With a wrong one, Redis refuses every connection: that is a
# failed connect like any other, retried with a growing backoff, logged a
# few times rather than on every attempt, and meanwhile every record is
# served from the cloud with /readyz saying "degraded".

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PASSWORD = "right-pass-7f3a"
WRONG = "wrongpass"
RID = "rec-success-1"
CONFIG = {"cache.l1_bytes": "0", "upstream.rate": "1000",
          "upstream.burst": "1000"}
REFUSED_FOR_S = 5
# A 100 ms backoff doubling up to 5 s makes 6 attempts in 5 s for each of
# a worker's two links; with no backoff it was about 100 each.
MAX_ATTEMPTS = 15


def resp(*args):
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class PasswordRedis(harness.Redis):
    """The harness's Redis with requirepass; the test's own commands
    authenticate first."""

    def start(self):
        plain = harness.spawn

        def spawn(argv, *args, **kw):
            if argv and argv[0] == "redis-server":
                argv = list(argv) + ["--requirepass", PASSWORD]
            return plain(argv, *args, **kw)
        harness.spawn = spawn
        try:
            super().start()
        finally:
            harness.spawn = plain

    def _ping(self):
        try:
            return self.command("PING") == b"PONG"
        except (OSError, RuntimeError):
            return False

    def command(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            f = s.makefile("rb")
            s.sendall(resp("AUTH", PASSWORD))
            harness._read_reply(f)
            s.sendall(resp(*args))
            return harness._read_reply(f)

    def url_with(self, password):
        return "redis://:%s@127.0.0.1:%d/0" % (password, self.port)

    def connections_received(self):
        """Connections Redis accepted so far, this one included."""
        info = self.command("INFO", "stats").decode()
        for line in info.splitlines():
            if line.startswith("total_connections_received:"):
                return int(line.split(":", 1)[1])
        raise AssertionError("no total_connections_received in INFO")


class RedisAuth(harness.RecgateTestCase):
    START_REDIS = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = PasswordRedis(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)

    def get(self, gw, cache):
        status, headers, body = gw.get(harness.record_path(RID))
        self.assertEqual((status, headers.get("x-cache")), (200, cache),
                         body)
        return body

    def readyz_redis(self, gw):
        status, _, body = gw.get("/readyz")
        self.assertEqual(status, 200, body)
        return json.loads(body)["redis"]

    def test_right_password_caches(self):
        """The right password: /readyz "up", a MISS then a HIT from
        Redis with one upstream request, "redis connected" logged once
        for each of the worker's two links."""
        gw = self.start_recgate(dict(CONFIG, **{
            "redis.url": self.redis.url_with(PASSWORD)}))
        self.assertTrue(harness.wait_for(
            lambda: self.readyz_redis(gw) == "up", 5), "redis never up")

        miss = self.get(gw, "MISS")
        self.assertEqual(self.get(gw, "HIT"), miss)
        self.assertEqual(self.upstream_count(RID), 1)
        self.assertEqual(self.redis.get(harness.record_key(RID)), miss)

        connected = [line for line in gw.log_lines()
                     if line.get("msg") == "redis connected"]
        self.assertEqual(len(connected), 2, connected)
        self.assertFalse([line for line in gw.log_lines()
                          if line.get("level") in ("warn", "error")])

    def test_wrong_password_backs_off_and_serves_from_the_cloud(self):
        """A wrong password: for 5 s every request is a 200 MISS from the
        cloud, /readyz says "degraded", Redis sees fewer than 15
        connection attempts, "redis connected" is never logged and the
        refusal only a few times, never with the password."""
        before = self.redis.connections_received()
        gw = self.start_recgate(dict(CONFIG, **{
            "redis.url": self.redis.url_with(WRONG)}))

        served = 0
        end = time.monotonic() + REFUSED_FOR_S
        while time.monotonic() < end:
            self.get(gw, "MISS")
            served += 1
            time.sleep(0.1)
        self.assertEqual(self.upstream_count(RID), served)
        self.assertEqual(self.readyz_redis(gw), "degraded")

        # This INFO's own connection is not recgate's.
        attempts = self.redis.connections_received() - before - 1
        self.assertGreaterEqual(attempts, 2, "recgate never tried Redis")
        self.assertLess(attempts, MAX_ATTEMPTS,
                        "%d connection attempts in %d s"
                        % (attempts, REFUSED_FOR_S))

        lines = gw.log_lines()
        self.assertFalse([line for line in lines
                          if line.get("msg") == "redis connected"])
        redis_lines = [line for line in lines if "redis" in line.get("msg")]
        self.assertTrue(redis_lines, "the refusal was not logged")
        self.assertLessEqual(len(redis_lines), 4, redis_lines)
        self.assertNotIn(WRONG, gw.log_text())


if __name__ == "__main__":
    harness.main()
