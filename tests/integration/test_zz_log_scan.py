#!/usr/bin/env python3
# Runs after every other integration test (ctest DEPENDS): reads every
# gateway log the harness archived in RECGATE_LOG_ARCHIVE during this run,
# with the secrets each gateway was given (secrets.jsonl), and checks that
# no log holds any AK, SK, security token, client token or Redis password,
# and that every line is a JSON object.

import glob
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MIN_LOGS = 10
# Shorter values could turn up by chance; the harness's secrets are longer.
MIN_SECRET_LEN = 8


def strings_in(value):
    """Every string (keys included) inside a decoded JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


class LogScan(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.archive = harness.log_archive_dir()
        if not cls.archive:
            raise AssertionError(
                "%s is not set: nothing to scan (ctest sets it)"
                % harness.LOG_ARCHIVE_ENV)
        cls.logs = sorted(glob.glob(os.path.join(cls.archive, "*.log")))
        cls.secrets = {}
        path = os.path.join(cls.archive, harness.SECRETS_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    doc = json.loads(line)
                    for s in doc["secrets"]:
                        cls.secrets.setdefault(s["value"], set()).add(
                            (s["kind"], doc["test"]))
        except FileNotFoundError:
            pass

    def test_enough_logs_were_archived(self):
        """At least MIN_LOGS gateway logs of this run are in the archive,
        and secrets were recorded for them, so that the scan below cannot
        pass for want of anything to read."""
        self.assertGreaterEqual(
            len(self.logs), MIN_LOGS,
            "only %d logs in %s" % (len(self.logs), self.archive))
        kinds = {kind for uses in self.secrets.values() for kind, _ in uses}
        for kind in ("ak", "sk"):
            self.assertIn(kind, kinds, "no %s recorded in %s" % (
                kind, harness.SECRETS_FILE))
        nonempty = [p for p in self.logs if os.path.getsize(p) > 0]
        self.assertGreaterEqual(len(nonempty), MIN_LOGS,
                                "fewer than %d logs have any line"
                                % MIN_LOGS)

    def test_no_secret_in_any_log(self):
        """No recorded secret appears in any archived log, raw or after
        JSON unescaping."""
        secrets = {v: uses for v, uses in self.secrets.items()
                   if len(v) >= MIN_SECRET_LEN}
        self.assertTrue(secrets, "no secrets recorded")
        found = []
        for path in self.logs:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for n, line in enumerate(text.splitlines(), 1):
                decoded = []
                try:
                    decoded = list(strings_in(json.loads(line)))
                except ValueError:
                    pass
                for value, uses in secrets.items():
                    if value in line or any(value in s for s in decoded):
                        found.append("%s:%d holds a %s (from %s): %s" % (
                            os.path.basename(path), n,
                            "/".join(sorted({k for k, _ in uses})),
                            ", ".join(sorted({t for _, t in uses})),
                            line[:300]))
        self.assertEqual(found, [], "\n".join(found[:50]))

    def test_every_line_is_a_json_object(self):
        """Every line of every archived log is one JSON object with ts,
        level and msg."""
        bad = []
        for path in self.logs:
            with open(path, "rb") as f:
                data = f.read()
            for n, raw in enumerate(data.split(b"\n"), 1):
                if raw == b"" and n == len(data.split(b"\n")):
                    continue    # after the last newline
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except ValueError as e:
                    bad.append("%s:%d: not JSON (%s): %r" % (
                        os.path.basename(path), n, e, raw[:200]))
                    continue
                if not isinstance(obj, dict):
                    bad.append("%s:%d: not an object: %r" % (
                        os.path.basename(path), n, raw[:200]))
                elif not {"ts", "level", "msg"} <= set(obj):
                    bad.append("%s:%d: lacks ts/level/msg: %r" % (
                        os.path.basename(path), n, raw[:200]))
        self.assertEqual(bad, [], "%d bad lines:\n%s" % (
            len(bad), "\n".join(bad[:50])))


if __name__ == "__main__":
    harness.main()
