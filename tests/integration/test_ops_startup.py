#!/usr/bin/env python3
# Start-up checks an operator relies on: `recgate --check-config` prints
# the effective settings with every secret masked and exits 0, or exits 1
# naming the bad key; a serving gateway given a bad config exits non-zero
# with its complaints as JSON lines on stderr.

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AK = "HPUASTARTUPACCESSKEY77"
SK = "StartupSecretKey/only+for=tests0123456789"
SECURITY_TOKEN = "StartupSecurityToken-9f8e7d6c5b4a-temporary"
REDIS_PASSWORD = "redis-Pa55word-startup"


class OpsStartup(harness.RecgateTestCase):

    START_REDIS = False
    START_SIM = False

    def write(self, name, config, extra=""):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(harness._ini(config) + extra)
        return path

    def check_config(self, path, env=None):
        """Runs recgate -c path --check-config; returns (code, stdout,
        stderr)."""
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RECGATE_", "HUAWEICLOUD_SDK_"))}
        full_env.update(env or {})
        result = subprocess.run(
            [os.environ["RECGATE_BIN"], "-c", path, "--check-config"],
            stdin=subprocess.DEVNULL, capture_output=True, env=full_env,
            timeout=30)
        return (result.returncode, result.stdout.decode("utf-8", "replace"),
                result.stderr.decode("utf-8", "replace"))

    def valid_config(self):
        cfg = self.base_config()
        cfg.update({
            "credentials.ak": AK,
            "credentials.sk": SK,
            "credentials.security_token": SECURITY_TOKEN,
            "redis.url": "redis://:%s@127.0.0.1:6390/2" % REDIS_PASSWORD,
            "upstream.rate": "7",
            "cache.ttl": "2h",
        })
        return cfg

    def assert_no_secret(self, text, where):
        for name, secret in (("AK", AK), ("SK", SK),
                             ("security token", SECURITY_TOKEN),
                             ("redis password", REDIS_PASSWORD)):
            self.assertNotIn(secret, text, "the %s is in %s" % (name, where))

    def settings(self, stdout):
        """The printed settings as {"section.key": value}."""
        out = {}
        section = None
        for line in stdout.splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and section:
                key, _, value = line.partition("=")
                out["%s.%s" % (section, key.strip())] = value.strip()
        return out

    def test_check_config_masks_secrets(self):
        """A valid config: exit 0, the effective settings printed, the AK,
        SK, security token and Redis password masked."""
        code, out, err = self.check_config(
            self.write("valid.conf", self.valid_config()))
        self.assertEqual(code, 0, err)
        self.assert_no_secret(out, "stdout")
        self.assert_no_secret(err, "stderr")
        s = self.settings(out)
        self.assertTrue(s, "no settings printed: %r" % out)
        for key in ("credentials.ak", "credentials.sk",
                    "credentials.security_token"):
            self.assertIn(key, s, out)
            self.assertTrue(s[key], "%s printed empty" % key)
            self.assertTrue(set(s[key]) <= set("*"), "%s = %s" % (key,
                                                                  s[key]))
        self.assertIn("redis.url", s, out)
        self.assertIn("127.0.0.1:6390", s["redis.url"])
        self.assertIn("****", s["redis.url"])
        # Other settings are shown as in effect.
        self.assertEqual(s.get("upstream.rate"), "7", out)
        self.assertIn("upstream.endpoint", s)
        self.assertEqual(s["upstream.endpoint"], self.base_config()
                         ["upstream.endpoint"])

    def test_check_config_masks_secrets_from_the_environment(self):
        """Secrets taken from HUAWEICLOUD_SDK_* are masked too."""
        cfg = self.valid_config()
        for key in ("credentials.ak", "credentials.sk",
                    "credentials.security_token"):
            cfg[key] = None
        code, out, err = self.check_config(
            self.write("env.conf", cfg),
            {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK,
             "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN})
        self.assertEqual(code, 0, err)
        self.assert_no_secret(out + err, "the output")
        s = self.settings(out)
        self.assertTrue(s.get("credentials.sk"), out)

    def test_check_config_names_the_bad_key(self):
        """An invalid value, an unknown key and a missing SK: exit 1 and
        each named on stderr."""
        cases = {
            "upstream.rate": dict(self.valid_config(),
                                  **{"upstream.rate": "fast"}),
            "server.listen": dict(self.valid_config(),
                                  **{"server.listen": "nowhere"}),
            "cache.ttl": dict(self.valid_config(), **{"cache.ttl": "soon"}),
            "credentials.sk": dict(self.valid_config(),
                                   **{"credentials.sk": None}),
        }
        for key, cfg in cases.items():
            with self.subTest(key=key):
                code, out, err = self.check_config(
                    self.write("bad-%s.conf" % key, cfg))
                self.assertEqual(code, 1, (out, err))
                self.assertIn(key, err)
                self.assert_no_secret(out + err, "the output")
        code, out, err = self.check_config(self.write(
            "unknown.conf", self.valid_config(), "\n[server]\nbogus = 1\n"))
        self.assertEqual(code, 1, (out, err))
        self.assertIn("bogus", err)

    def test_check_config_reads_the_files_it_names(self):
        """A CA bundle or tokens file that a start could not read, and a
        directory as the config file: --check-config exits 1 naming it,
        as the start itself would refuse."""
        missing = os.path.join(self.workdir, "no-such-file")
        not_pem = self.write("not-a-ca.pem", {}, "this is no certificate\n")
        cases = {
            "ca missing": (dict(self.valid_config(),
                                **{"upstream.ca_file": missing}), missing),
            "ca not PEM": (dict(self.valid_config(),
                                **{"upstream.ca_file": not_pem}), not_pem),
            "tokens missing": (dict(self.valid_config(),
                                    **{"access.tokens_file": missing}),
                               missing),
            "tokens a directory": (dict(self.valid_config(),
                                        **{"access.tokens_file":
                                           self.workdir}), self.workdir),
        }
        for name, (cfg, named) in cases.items():
            with self.subTest(case=name):
                code, out, err = self.check_config(
                    self.write("files.conf", cfg))
                self.assertEqual(code, 1, (out, err))
                self.assertIn(named, err)
        code, out, err = self.check_config(self.workdir)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("directory", err)

    def test_serving_gateway_refuses_a_bad_config(self):
        """recgate -c bad.conf (serving, not --check-config) exits
        non-zero, and every stderr line is a JSON object naming the
        problem."""
        cfg = dict(self.valid_config(), **{"upstream.rate": "fast",
                                           "log.level": "info"})
        gw = self.start_recgate(cfg, wait=False)
        code = gw.wait_exit(15)
        self.assertIsNotNone(code, "recgate kept running with a bad config")
        self.assertNotEqual(code, 0)
        text = gw.log_text()
        self.assertTrue(text.strip(), "nothing on stderr")
        lines = []
        for raw in text.splitlines():
            try:
                obj = json.loads(raw)
            except ValueError:
                self.fail("stderr line is not JSON: %r" % raw)
            self.assertIsInstance(obj, dict, raw)
            for key in ("ts", "level", "msg"):
                self.assertIsInstance(obj.get(key), str, raw)
            lines.append(obj)
        self.assertTrue(any("upstream.rate" in json.dumps(line)
                            and line["level"] == "error" for line in lines),
                        text)
        self.assert_no_secret(text, "stderr")

    def test_serving_gateway_refuses_a_missing_config_file(self):
        """A config path that does not exist: non-zero exit, JSON lines."""
        missing = os.path.join(self.workdir, "does-not-exist.conf")
        result = subprocess.run(
            [os.environ["RECGATE_BIN"], "-c", missing],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        err = result.stderr.decode("utf-8", "replace")
        self.assertTrue(err.strip())
        for raw in err.splitlines():
            try:
                obj = json.loads(raw)
            except ValueError:
                self.fail("stderr line is not JSON: %r" % raw)
            self.assertIsInstance(obj, dict)
        self.assertIn("does-not-exist.conf", err)


if __name__ == "__main__":
    harness.main()
