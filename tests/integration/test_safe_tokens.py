#!/usr/bin/env python3
# access.tokens_file and access.projects: a request without a known bearer
# token gets 401, one for a project it may not read gets 403, and neither
# reaches Redis or the cloud. SIGHUP re-reads the tokens file in the same
# process without dropping open connections; a file that cannot be read
# keeps the old tokens.

import os
import shutil
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ALLOWED = harness.PROJECT_ID                      # in access.projects
OTHER = "fedcba9876543210fedcba9876543210"        # in access.projects
OUTSIDE = "00000000000000000000000000000000"      # not in access.projects

TOKEN_ALL = "tok-all-3f9c1a7e5b2d4c6e8a0b"        # every allowed project
TOKEN_ONE = "tok-one-7d2e9b4c1a6f3e8d5c0a"        # ALLOWED only
TOKEN_COMMENTED = "tok-commented-5a8e2c9f1b7d"    # only in a comment
TOKEN_NEW = "tok-new-1b4e7a0d3c6f9e2b5a8c"        # added by the reload
RECORD = "rec-success-1"
RELOAD_WAIT_S = 5


def tokens_text(*lines):
    return "\n".join(lines) + "\n"


class RedisMonitor:
    """MONITOR on the test's Redis: every command any client sends, as
    text lines, collected in a thread until stop()."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.sock.sendall(b"MONITOR\r\n")
        self.file = self.sock.makefile("rb")
        first = self.file.readline()
        if not first.startswith(b"+OK"):
            raise RuntimeError("MONITOR answered %r" % first)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for line in self.file:
                with self.lock:
                    self.lines.append(line.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass

    def seen(self):
        with self.lock:
            return list(self.lines)

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)


class SafeTokens(harness.RecgateTestCase):

    def setUp(self):
        super().setUp()
        self.tokens_path = os.path.join(self.workdir, "tokens-%s" % self.id()
                                        .rsplit(".", 1)[-1])
        self.write_tokens(tokens_text(
            "# client tokens of the tests",
            "   ",
            TOKEN_ALL,
            "%s %s  # limited to one project" % (TOKEN_ONE, ALLOWED),
            "# %s" % TOKEN_COMMENTED))
        for t in (TOKEN_ALL, TOKEN_ONE, TOKEN_COMMENTED, TOKEN_NEW):
            harness.note_secret("client_token", t)

    def base_config(self):
        # Not a timing test: a loaded machine must not turn a slow
        # upstream answer into a 504 here.
        cfg = super().base_config()
        cfg["upstream.timeout"] = "10s"
        return cfg

    def write_tokens(self, text):
        tmp = self.tokens_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.tokens_path)

    def start(self):
        return self.start_recgate({
            "access.tokens_file": self.tokens_path,
            "access.projects": "%s,%s" % (ALLOWED, OTHER),
            "cache.l1_bytes": "0"})

    @staticmethod
    def bearer(token):
        return {"Authorization": "Bearer " + token}

    def assert_refused(self, reply, status):
        code = {401: "RECGATE.4010", 403: "RECGATE.4030"}[status]
        doc = self.assertErrorReply(reply, status, code)
        if status == 401:
            self.assertEqual(reply[1].get("www-authenticate"), "Bearer",
                             reply[1])
        else:
            self.assertNotIn("www-authenticate", reply[1])
        return doc

    def test_tokens_and_projects(self):
        """No token, a wrong one, a prefix of a right one, a token from a
        comment: 401 with WWW-Authenticate: Bearer. A right token for a
        project its own list leaves out, or for a project outside
        access.projects: 403. None of them reaches the cloud or Redis;
        the right token for an allowed project gets its record."""
        gw = self.start()
        monitor = RedisMonitor(self.redis.port)
        self.addCleanup(monitor.stop)
        refused = {
            "no header": (RECORD, ALLOWED, {}, 401),
            "not bearer": (RECORD, ALLOWED,
                           {"Authorization": "Basic " + TOKEN_ALL}, 401),
            "empty bearer": (RECORD, ALLOWED,
                             {"Authorization": "Bearer "}, 401),
            "wrong token": (RECORD, ALLOWED,
                            self.bearer("tok-all-0000000000000000000"), 401),
            "prefix of a token": (RECORD, ALLOWED,
                                  self.bearer(TOKEN_ALL[:-1]), 401),
            "token plus more": (RECORD, ALLOWED,
                                self.bearer(TOKEN_ALL + "x"), 401),
            "commented-out token": (RECORD, ALLOWED,
                                    self.bearer(TOKEN_COMMENTED), 401),
            "token's list leaves the project out": (
                "rec-failed-1", OTHER, self.bearer(TOKEN_ONE), 403),
            "outside access.projects": (
                "rec-timeout-1", OUTSIDE, self.bearer(TOKEN_ALL), 403),
            "outside both": (
                "rec-timeout-1", OUTSIDE, self.bearer(TOKEN_ONE), 403),
            "no token, outside access.projects": (
                "rec-timeout-1", OUTSIDE, {}, 401),
        }
        for name, (rid, project, headers, status) in refused.items():
            with self.subTest(name):
                self.assert_refused(
                    gw.get(harness.record_path(rid, project), headers),
                    status)
        time.sleep(0.3)  # any Redis command would show up by now
        self.assertEqual(self.upstream_count(), 0, self.sim.stats())
        self.assertEqual(self.record_keys(), [])
        touched = [line for line in monitor.seen()
                   if any(r in line for r in (RECORD, "rec-failed-1",
                                              "rec-timeout-1"))]
        self.assertEqual(touched, [], "refused requests reached Redis")

        # The right token reads: TOKEN_ALL both allowed projects,
        # TOKEN_ONE its own.
        for token, rid, project in ((TOKEN_ALL, RECORD, ALLOWED),
                                    (TOKEN_ONE, "rec-failed-1", ALLOWED),
                                    (TOKEN_ALL, "rec-failed-1", OTHER)):
            with self.subTest(token=token[:8], project=project):
                status, headers, body = gw.get(
                    harness.record_path(rid, project), self.bearer(token))
                self.assertEqual(status, 200, body)
                self.assertNotIn("www-authenticate", headers)
        self.assertEqual(self.upstream_count(), 3, self.sim.stats())
        self.assertEqual(self.record_keys(), sorted([
            harness.record_key(RECORD), harness.record_key("rec-failed-1"),
            harness.record_key("rec-failed-1", OTHER)]))
        # The monitor does see what does reach Redis.
        self.assertTrue(harness.wait_for(
            lambda: [l for l in monitor.seen() if RECORD in l], 2),
            "MONITOR saw no command for an admitted request")
        # And the scheme name is case-insensitive (RFC 7235).
        status, _, body = gw.get(harness.record_path(RECORD),
                                 {"Authorization": "bearer " + TOKEN_ALL})
        self.assertEqual(status, 200, body)

    def test_health_and_metrics_need_no_token(self):
        """The operator routes stay open: probes carry no token."""
        gw = self.start()
        for path in ("/healthz", "/readyz", "/metrics"):
            with self.subTest(path):
                self.assertEqual(gw.get(path)[0], 200)

    def test_sighup_reloads_tokens_in_place(self):
        """Remove TOKEN_ONE, add TOKEN_NEW, SIGHUP: the new token works and
        the removed one gets 401, in the same process, and a keep-alive
        connection opened before the SIGHUP is served after it."""
        gw = self.start()
        pid = gw.proc.pid
        path = harness.record_path(RECORD)
        self.assertEqual(gw.get(path, self.bearer(TOKEN_ONE))[0], 200)
        self.assert_refused(gw.get(path, self.bearer(TOKEN_NEW)), 401)

        conn = gw.connection(timeout=5)
        self.addCleanup(conn.close)
        status, headers, _ = harness.http_request(
            conn, "GET", path, self.bearer(TOKEN_ALL))
        self.assertEqual(status, 200)
        self.assertNotEqual((headers.get("connection") or "").lower(),
                            "close")
        sock_before = conn.sock
        local_before = conn.sock.getsockname()

        self.write_tokens(tokens_text(TOKEN_ALL, "%s %s" % (TOKEN_NEW,
                                                            ALLOWED)))
        gw.proc.send_signal(signal.SIGHUP)
        ok = harness.wait_for(
            lambda: gw.get(path, self.bearer(TOKEN_NEW))[0] == 200,
            RELOAD_WAIT_S, 0.1)
        self.assertTrue(ok, "TOKEN_NEW not accepted %ds after SIGHUP"
                        % RELOAD_WAIT_S)
        self.assert_refused(gw.get(path, self.bearer(TOKEN_ONE)), 401)
        self.assertEqual(gw.proc.pid, pid)
        self.assertTrue(gw.running())

        # The connection from before the reload: same socket, served.
        for token, want in ((TOKEN_NEW, 200), (TOKEN_ONE, 401),
                            (TOKEN_ALL, 200)):
            status, _, body = harness.http_request(
                conn, "GET", path, self.bearer(token))
            self.assertEqual(status, want, body)
            self.assertIs(conn.sock, sock_before,
                          "the keep-alive connection was replaced")
            self.assertEqual(conn.sock.getsockname(), local_before)
        self.assertEqual(gw.proc.pid, pid)

    def assert_unreadable_keeps_old_tokens(self, break_file):
        gw = self.start()
        pid = gw.proc.pid
        path = harness.record_path(RECORD)
        self.assertEqual(gw.get(path, self.bearer(TOKEN_ALL))[0], 200)
        lines_before = len(gw.log_lines())

        break_file()
        gw.proc.send_signal(signal.SIGHUP)
        # The reload is over once the gateway logged about it.
        logged = harness.wait_for(
            lambda: [l for l in gw.log_lines()[lines_before:]
                     if "reload" in l.get("msg", "")
                     or "token" in l.get("msg", "")], RELOAD_WAIT_S, 0.1)
        self.assertTrue(logged, "nothing logged after SIGHUP")
        time.sleep(0.3)
        for token in (TOKEN_ALL, TOKEN_ONE):
            status, _, body = gw.get(path, self.bearer(token))
            self.assertEqual(status, 200, "%s after the reload: %s"
                             % (token[:8], body))
        self.assert_refused(gw.get(path, self.bearer(TOKEN_NEW)), 401)
        self.assert_refused(gw.get(path), 401)
        self.assertEqual(gw.proc.pid, pid)
        return gw

    def test_reload_turning_tokens_on_with_a_bad_file_is_refused(self):
        """A gateway without tokens, SIGHUP with a config that names a
        tokens file it cannot parse: the reload is refused as a whole
        (error logged), so the config in effect stays the one without
        tokens rather than a config that says tokens while none are
        checked. Fixed, the next SIGHUP turns tokens on: no token is 401,
        a listed one 200."""
        gw = self.start_recgate({"cache.l1_bytes": "0",
                                 "access.tokens_file": None})
        path = harness.record_path(RECORD)
        self.assertEqual(gw.get(path)[0], 200)
        self.write_tokens("%s %s , %s\n" % (TOKEN_ALL, ALLOWED, OTHER))
        lines_before = len(gw.log_lines())

        gw.config["access.tokens_file"] = self.tokens_path
        with open(gw.conf_path, "w") as f:
            f.write(harness._ini(gw.config))
        gw.proc.send_signal(signal.SIGHUP)
        refused = harness.wait_for(
            lambda: [l for l in gw.log_lines()[lines_before:]
                     if l.get("msg", "").startswith("reload refused")],
            RELOAD_WAIT_S, 0.1)
        self.assertTrue(refused, "the reload was not refused")
        self.assertFalse([l for l in gw.log_lines()[lines_before:]
                          if l.get("msg") == "reload: new value in effect"
                          and l.get("key") == "access.tokens_file"])

        self.write_tokens(tokens_text(TOKEN_ALL))
        lines_before = len(gw.log_lines())
        gw.proc.send_signal(signal.SIGHUP)
        reloaded = harness.wait_for(
            lambda: [l for l in gw.log_lines()[lines_before:]
                     if l.get("msg") == "configuration reloaded"],
            RELOAD_WAIT_S, 0.1)
        self.assertTrue(reloaded, "the fixed config was not reloaded")
        time.sleep(0.3)
        self.assert_refused(gw.get(path), 401)
        self.assertEqual(gw.get(path, self.bearer(TOKEN_ALL))[0], 200)

    def test_missing_tokens_file_keeps_old_tokens(self):
        """The tokens file deleted, then SIGHUP: the old tokens still work
        and the gateway logs that it kept them."""
        self.assert_unreadable_keeps_old_tokens(
            lambda: os.unlink(self.tokens_path))

    def test_unreadable_tokens_file_keeps_old_tokens(self):
        """The tokens file replaced by something open() accepts but read()
        refuses (a directory: EISDIR; root ignores mode 000), then SIGHUP:
        the old tokens still work."""
        def to_directory():
            os.unlink(self.tokens_path)
            os.mkdir(self.tokens_path)
            self.addCleanup(shutil.rmtree, self.tokens_path, True)
        self.assert_unreadable_keeps_old_tokens(to_directory)

    @unittest.skipIf(os.geteuid() == 0, "root reads a mode 000 file")
    def test_mode_000_tokens_file_keeps_old_tokens(self):
        """chmod 000 on the tokens file, then SIGHUP: the old tokens
        still work."""
        self.assert_unreadable_keeps_old_tokens(
            lambda: os.chmod(self.tokens_path, 0))


if __name__ == "__main__":
    harness.main()
