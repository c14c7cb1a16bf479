#!/usr/bin/env python3
# Secrets and what comes back to clients: --check-config masks every
# secret wherever it came from; a secret file other users can read draws a
# warning (without the secret); a client's X-Request-Id is used only when
# sane; answers carry only the documented headers.

import json
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AK = "HPUASAFESECRETSAK0042"
SK = "SafeSecretsSK/never+logged=0123456789abcdefXYZ"
SECURITY_TOKEN = "SafeSecretsSecurityToken-5e4d3c2b1a09-temporary"
REDIS_PASSWORD = "redis-Pa55-safe-secrets-77"
SECRETS = (("AK", AK), ("SK", SK), ("security token", SECURITY_TOKEN),
           ("redis password", REDIS_PASSWORD))
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

# The documented answer headers.
RECORD_HEADERS = {"content-type", "x-request-id", "x-cache", "cache-control",
                  "etag", "content-length", "date"}
ERROR_HEADERS = {"content-type", "x-request-id", "content-length", "date"}


def raw_exchange(host, port, request, timeout=5):
    """Sends request bytes on a new connection and reads until the peer
    closes (the request says Connection: close): the answer bytes."""
    with socket.create_connection((host, port), timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break    # closed with our request partly unread
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse_raw(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    # (an empty answer parses as status 0 with no headers)
    headers = [tuple(p.strip() for p in line.split(":", 1))
               for line in lines[1:]]
    return status, headers, body


class SafeSecrets(harness.RecgateTestCase):
    AK = AK
    SK = SK

    def setUp(self):
        super().setUp()
        for kind, value in SECRETS:
            harness.note_secret(kind, value)

    def base_config(self):
        # Not a timing test: a loaded machine must not turn a slow
        # upstream answer into a 504 here.
        cfg = super().base_config()
        cfg["upstream.timeout"] = "10s"
        return cfg

    # --- --check-config -------------------------------------------------

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.workdir, name)
        if os.path.exists(path):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)    # whatever the umask
        return path

    def check_config(self, config, env=None):
        path = self.write("check.conf", harness._ini(config))
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RECGATE_", "HUAWEICLOUD_SDK_"))}
        full_env.update(env or {})
        result = subprocess.run(
            [os.environ["RECGATE_BIN"], "-c", path, "--check-config"],
            stdin=subprocess.DEVNULL, capture_output=True, env=full_env,
            timeout=30)
        return (result.returncode, result.stdout.decode("utf-8", "replace"),
                result.stderr.decode("utf-8", "replace"))

    def settings(self, stdout):
        out, section = {}, None
        for line in stdout.splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and section:
                key, _, value = line.partition("=")
                out["%s.%s" % (section, key.strip())] = value.strip()
        return out

    def assert_masked(self, code, out, err, how):
        self.assertEqual(code, 0, "%s: %s" % (how, err))
        for name, secret in SECRETS:
            self.assertNotIn(secret, out, "%s: the %s is on stdout"
                             % (how, name))
            self.assertNotIn(secret, err, "%s: the %s is on stderr"
                             % (how, name))
        s = self.settings(out)
        for key in ("credentials.ak", "credentials.sk",
                    "credentials.security_token"):
            self.assertIn(key, s, out)
            self.assertTrue(s[key] and set(s[key]) <= set("*"),
                            "%s: %s = %r" % (how, key, s[key]))
        self.assertIn("****", s.get("redis.url", ""), out)
        self.assertIn("127.0.0.1", s["redis.url"])

    def test_check_config_masks_secrets(self):
        """The AK, SK, security token and Redis password are masked by
        --check-config whether they come from the config file, the
        RECGATE_* or HUAWEICLOUD_SDK_* variables, or secret files."""
        base = self.base_config()
        base["redis.url"] = "redis://:%s@127.0.0.1:6390/0" % REDIS_PASSWORD
        in_file = dict(base, **{"credentials.ak": AK, "credentials.sk": SK,
                                "credentials.security_token":
                                SECURITY_TOKEN})
        self.assert_masked(*self.check_config(in_file), how="config file")

        bare = dict(base, **{"credentials.ak": None, "credentials.sk": None,
                             "credentials.security_token": None})
        self.assert_masked(*self.check_config(bare, {
            "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK,
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}),
            how="HUAWEICLOUD_SDK_*")
        self.assert_masked(*self.check_config(bare, {
            "RECGATE_CREDENTIALS_AK": AK, "RECGATE_CREDENTIALS_SK": SK,
            "RECGATE_CREDENTIALS_SECURITY_TOKEN": SECURITY_TOKEN,
            "RECGATE_REDIS_URL": base["redis.url"]}), how="RECGATE_*")

        files = dict(bare, **{
            "credentials.ak_file": self.write("ak", AK + "\n"),
            "credentials.sk_file": self.write("sk", SK + "\n"),
            "credentials.security_token_file":
                self.write("token", SECURITY_TOKEN + "\n")})
        self.assert_masked(*self.check_config(files), how="secret files")

    # --- secret file modes ------------------------------------------------

    def start_with_sk_file(self, mode, extra=None):
        path = self.write("sk-%o" % mode, SK + "\n", mode)
        cfg = {"credentials.sk": None, "credentials.sk_file": path}
        cfg.update(extra or {})
        gw = self.start_recgate(cfg)
        # The SK from the file signs: the cloud accepts it.
        status, _, body = gw.get(harness.record_path("rec-success-1"))
        self.assertEqual(status, 200, body)
        return gw, path

    def file_warnings(self, gw, path):
        return [line for line in gw.log_lines()
                if line.get("level") == "warn" and path in json.dumps(line)]

    def test_world_readable_sk_file_is_warned_about(self):
        """credentials.sk_file with mode 0644: a warn line naming the
        file, without the SK; the log holds the SK nowhere."""
        gw, path = self.start_with_sk_file(0o644)
        warnings = self.file_warnings(gw, path)
        self.assertEqual(len(warnings), 1, gw.log_text())
        self.assertIn("readable", warnings[0]["msg"])
        self.assertNotIn(SK, gw.log_text())
        gw.stop()
        self.assertNotIn(SK, gw.log_text())

    def test_world_readable_ak_file_is_warned_about(self):
        """credentials.ak_file with mode 0644: a warn line too."""
        path = self.write("ak-644", AK + "\n", 0o644)
        gw = self.start_recgate({"credentials.ak": None,
                                 "credentials.ak_file": path})
        self.assertEqual(gw.get(harness.record_path("rec-success-1"))[0],
                         200)
        self.assertEqual(len(self.file_warnings(gw, path)), 1,
                         gw.log_text())
        self.assertNotIn(AK, gw.log_text())

    def test_world_readable_tokens_file_is_warned_about(self):
        """access.tokens_file with mode 0644: a warn line naming the file,
        never a token."""
        token = "tok-readable-5e0c2a9b7d4f1e8a"
        harness.note_secret("client_token", token)
        path = self.write("tokens-644", token + "\n", 0o644)
        gw = self.start_recgate({"access.tokens_file": path})
        self.assertEqual(gw.get(harness.record_path("rec-success-1"), {
            "Authorization": "Bearer " + token})[0], 200)
        warnings = self.file_warnings(gw, path)
        self.assertTrue(warnings, gw.log_text())
        self.assertIn("readable", warnings[0]["msg"])
        self.assertNotIn(token, gw.log_text())

    def test_private_sk_file_is_not_warned_about(self):
        """credentials.sk_file with mode 0600 (and 0640: group only): no
        warning."""
        for mode in (0o600, 0o640):
            with self.subTest(mode="%o" % mode):
                gw, path = self.start_with_sk_file(mode)
                self.assertEqual(self.file_warnings(gw, path), [],
                                 gw.log_text())
                self.assertEqual([l for l in gw.log_lines()
                                  if "readable" in l.get("msg", "")],
                                 [], gw.log_text())
                gw.stop()

    # --- X-Request-Id -----------------------------------------------------

    def assert_replaced(self, gw, sent, status, headers, body):
        got = headers.get("x-request-id")
        self.assertTrue(got, headers)
        self.assertNotEqual(got, sent)
        self.assertTrue(SANE_ID.match(got), "generated id %r" % got)
        return got

    def test_insane_request_ids_are_replaced(self):
        """An X-Request-Id of 129 characters, or with a space, tab,
        non-ASCII, '/', '%', '<' or quote, is replaced by a generated
        one, in the header, the error body and the log; 128 sane
        characters are kept."""
        gw = self.start_recgate()
        path = harness.record_path("rec-success-1")
        bad_path = harness.record_path("bad/id")
        kept = "a.B-c_d:" * 16
        self.assertEqual(len(kept), 128)
        for rid_path in (path, bad_path):
            status, headers, _ = gw.get(rid_path, {"X-Request-Id": kept})
            self.assertEqual(headers.get("x-request-id"), kept)

        insane = {"129 chars": "x" * 129, "space": "abc def",
                  "tab": "abc\tdef", "non-ascii": "abc\u00e9def",
                  "slash": "abc/def", "percent": "abc%0Adef",
                  "angle": "<script>", "quote": 'a"b', "comma": "a,b",
                  "empty": ""}
        for name, sent in insane.items():
            with self.subTest(name):
                status, headers, body = gw.get(
                    bad_path, {"X-Request-Id":
                               sent.encode("utf-8").decode("latin-1")})
                got = self.assert_replaced(gw, sent, status, headers, body)
                self.assertEqual(json.loads(body)["request_id"], got)
                status, headers, body = gw.get(
                    path, {"X-Request-Id":
                           sent.encode("utf-8").decode("latin-1")})
                self.assertEqual(status, 200)
                self.assert_replaced(gw, sent, status, headers, body)
        logged = {l.get("request_id") for l in gw.log_lines()}
        for name, sent in insane.items():
            if sent:
                self.assertNotIn(sent, logged, name)

    def test_query_string_is_not_logged(self):
        """A client that puts a secret in the query string (ignored by
        recgate) does not find it in the log: the access line's path
        stops before the '?'."""
        gw = self.start_recgate()
        path = harness.record_path("rec-success-1")
        secret = "tok-in-the-url-0123456789"
        for target in (path + "?token=" + secret, "/healthz?" + secret,
                       harness.record_path("bad.id") + "?x=" + secret):
            gw.get(target)
        harness.wait_for(lambda: len([l for l in gw.log_lines()
                                      if l.get("msg") == "request"]) >= 3,
                         5)
        self.assertNotIn(secret, gw.log_text())
        paths = [l.get("path") for l in gw.log_lines()
                 if l.get("msg") == "request"]
        self.assertIn(path, paths)
        self.assertIn("/healthz", paths)

    def test_request_id_with_line_breaks(self):
        """A request id folded over two lines (obs-fold), or with a bare
        LF or CR inside, is never echoed: the answer is a 400 or carries
        a generated id, and no header of the answer holds the injected
        text."""
        gw = self.start_recgate()
        path = harness.record_path("rec-success-1").encode()
        variants = {
            "obs-fold": b"X-Request-Id: abc\r\n def\r\n",
            "bare LF": b"X-Request-Id: abc\nX-Injected: yes\r\n",
            "bare CR": b"X-Request-Id: abc\rX-Injected: yes\r\n",
        }
        for name, header in variants.items():
            with self.subTest(name):
                answer = raw_exchange(
                    gw.host, gw.port,
                    b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + header +
                    b"Connection: close\r\n\r\n")
                status, headers, body = parse_raw(answer)
                # 0: reset before any answer, which echoes nothing either.
                self.assertIn(status, (0, 200, 400), answer[:300])
                names = [h[0].lower() for h in headers]
                self.assertNotIn("x-injected", names, answer[:500])
                self.assertNotIn("def", names)
                ids = [v for n, v in headers if n.lower() == "x-request-id"]
                for value in ids:
                    self.assertTrue(SANE_ID.match(value), value)
                    self.assertNotIn("def", value)
                    self.assertNotIn("Injected", value)
        self.assertTrue(gw.running())

    # --- the answer's headers -----------------------------------------------

    def header_names(self, gw, path, method="GET", headers=None):
        conn = gw.connection()
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            names = [n.lower() for n, _ in resp.getheaders()]
            return resp.status, names
        finally:
            conn.close()

    def assert_header_set(self, got, want, what):
        status, names = got
        self.assertEqual(len(names), len(set(names)),
                         "%s: a header repeated: %s" % (what, names))
        self.assertEqual(set(names), want, "%s (status %d)" % (what, status))

    def test_exact_header_sets(self):
        """A 200 MISS and a 200 HIT carry exactly Content-Type,
        X-Request-Id, X-Cache, Cache-Control, ETag, Content-Length and
        Date (a HEAD the same, Content-Length optional); a 400 exactly Content-Type, X-Request-Id, Content-Length
        and Date; a 404 the same; a 405 adds Allow, a 401 adds
        WWW-Authenticate. No header of the cloud's answer comes
        through."""
        gw = self.start_recgate()
        path = harness.record_path("rec-success-1")
        got = self.header_names(gw, path)
        self.assertEqual(got[0], 200)
        self.assert_header_set(got, RECORD_HEADERS, "200 MISS")
        got = self.header_names(gw, path)
        self.assert_header_set(got, RECORD_HEADERS, "200 HIT")
        # HEAD: the same, except that Content-Length may be left out
        # (RFC 9110 9.3.2 lets a server omit it).
        got = self.header_names(gw, path, "HEAD")
        self.assertEqual(got[0], 200)
        self.assertEqual(len(got[1]), len(set(got[1])), got[1])
        self.assertTrue(RECORD_HEADERS - {"content-length"} <= set(got[1])
                        <= RECORD_HEADERS, "HEAD 200: %s" % got[1])
        got = self.header_names(gw, harness.record_path("rec-failed-1"),
                                headers={"X-Request-Id": "x" * 129})
        self.assert_header_set(got, RECORD_HEADERS, "200 MISS, bad id")

        got = self.header_names(gw, harness.record_path("bad!id"))
        self.assertEqual(got[0], 400)
        self.assert_header_set(got, ERROR_HEADERS, "400")
        got = self.header_names(gw, "/v2/%s/other" % harness.PROJECT_ID)
        self.assertEqual(got[0], 404)
        self.assert_header_set(got, ERROR_HEADERS, "404 route")
        got = self.header_names(gw, harness.record_path("rec-no-such"))
        self.assertEqual(got[0], 404)
        self.assert_header_set(got, ERROR_HEADERS, "404 from the cloud")
        got = self.header_names(gw, path, "DELETE")
        self.assertEqual(got[0], 405)
        self.assert_header_set(got, ERROR_HEADERS | {"allow"}, "405")

    def test_exact_header_set_of_a_401(self):
        """With access.tokens_file, a 401 carries exactly the error
        headers and WWW-Authenticate."""
        tokens = self.write("tokens", "safe-secrets-token-0123456789\n")
        harness.note_secret("client_token", "safe-secrets-token-0123456789")
        gw = self.start_recgate({"access.tokens_file": tokens})
        got = self.header_names(gw, harness.record_path("rec-success-1"))
        self.assertEqual(got[0], 401)
        self.assert_header_set(got, ERROR_HEADERS | {"www-authenticate"},
                               "401")
        got = self.header_names(
            gw, harness.record_path("rec-success-1"),
            headers={"Authorization": "Bearer safe-secrets-token-0123456789"})
        self.assert_header_set(got, RECORD_HEADERS, "200 with a token")
        self.assertNotIn("safe-secrets-token-0123456789", gw.log_text())


if __name__ == "__main__":
    harness.main()
