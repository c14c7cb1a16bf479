# Shared fixture for recgate's integration tests: a throwaway PKI, Redis,
# Workspace simulator and recgate process per test class.
#
# Tests are unittest files run as `python3 tests/integration/test_x.py` with
# RECGATE_BIN (the built binary) and RECGATE_SOURCE_DIR (the repository root)
# in the environment.  Python 3 standard library only.
#
#     import harness
#
#     class CacheHit(harness.RecgateTestCase):
#         def test_second_read_is_a_hit(self):
#             gw = self.start_recgate({"cache.ttl": "1h"})
#             status, headers, body = gw.get(harness.record_path("rec-1"))
#             ...
#
#     if __name__ == "__main__":
#         harness.main()

import atexit
import ctypes
import dataclasses
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("RECGATE_SOURCE_DIR") or \
    os.path.dirname(os.path.dirname(HERE))
SIM_PY = os.path.join(SOURCE_DIR, "tests", "sim", "sim.py")
DEFAULT_FIXTURES = os.path.join(SOURCE_DIR, "tests", "sim", "fixtures.json")

PROJECT_ID = "0123456789abcdef0123456789abcdef"
TEST_AK = "HPUATESTACCESSKEY0001"
TEST_SK = "TestSecretKey/with+odd=chars0123456789abcd"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")
START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 10


def record_path(record_id, project_id=PROJECT_ID):
    """The cloud's (and recgate's) path of one record."""
    return "/v2/%s/script-execution-records/%s" % (project_id, record_id)


def record_key(record_id, project_id=PROJECT_ID, prefix="recgate:"):
    """The Redis key recgate stores a finished record under."""
    return "%srec:%s:%s" % (prefix, project_id, record_id)


def compact_json(doc):
    """doc as compact JSON in its own key order, non-ASCII kept as UTF-8:
    the form of recgate's normalized records."""
    return json.dumps(doc, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def load_fixture(record_id, fixtures=DEFAULT_FIXTURES):
    """The body of one record in the simulator's fixture file."""
    with open(fixtures) as f:
        return json.load(f)["records"][record_id]["body"]


# --- processes ------------------------------------------------------------

_children = set()


# --- log archive ------------------------------------------------------------
#
# With RECGATE_LOG_ARCHIVE set to a directory, every gateway's stderr log is
# copied there when the gateway is stopped or killed (one file per process),
# and the secrets it was given (AK, SK, security token, client tokens, Redis
# password) are appended to secrets.jsonl there, so that a final test can
# check that no log of the whole run holds any of them.

LOG_ARCHIVE_ENV = "RECGATE_LOG_ARCHIVE"
SECRETS_FILE = "secrets.jsonl"
_noted_secrets = []
_archivable = []


def log_archive_dir():
    """The archive directory, or None when archiving is off."""
    return os.environ.get(LOG_ARCHIVE_ENV) or None


def note_secret(kind, value):
    """Records a secret a test handed to a gateway in some way the harness
    cannot see (a token written to a file later, say), for the log scan."""
    if value:
        _noted_secrets.append((kind, str(value)))


def _append_secrets(archive, log_name, pairs):
    seen = set()
    doc = {"log": log_name, "test": os.path.basename(sys.argv[0] or "?"),
           "secrets": []}
    for kind, value in pairs:
        if value and (kind, value) not in seen:
            seen.add((kind, value))
            doc["secrets"].append({"kind": kind, "value": value})
    line = json.dumps(doc, ensure_ascii=False) + "\n"
    # One write of a whole line: appends from parallel tests never mix.
    fd = os.open(os.path.join(archive, SECRETS_FILE),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


@atexit.register
def _archive_leftovers():
    # Registered before _kill_leftovers, so it runs after it.
    for gw in list(_archivable):
        gw.archive_log()



try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    # Runs in the child before exec: when the test process dies, even by
    # SIGKILL, the kernel sends the child SIGTERM (PR_SET_PDEATHSIG).
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)


def spawn(argv, log_path, env=None, stdout_path=None):
    """Starts a child process with stderr (and stdout, unless stdout_path
    is given) going to log_path.  It is killed at exit if still running."""
    log = open(log_path, "ab")
    out = open(stdout_path, "ab") if stdout_path else log
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=log, env=env,
                                preexec_fn=_die_with_parent)
    finally:
        log.close()
        if out is not log:
            out.close()
    _children.add(proc)
    return proc


def terminate(proc, timeout=None):
    """SIGTERM, wait (STOP_TIMEOUT_S by default), SIGKILL if needed.
    Returns (exit code, killed)."""
    if timeout is None:
        timeout = STOP_TIMEOUT_S
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
    _children.discard(proc)
    return proc.returncode, killed


@atexit.register
def _kill_leftovers():
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_port():
    """A loopback TCP port that was free a moment ago.  Callers that race
    for it retry with another."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid):
    """PIDs of the live (not zombie) child processes of pid: a supervising
    recgate's workers."""
    out = set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces or parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(name))
    return out


def pid_alive(pid):
    """pid runs (a zombie waiting to be reaped does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def kill_pids(pids):
    """Cleanup for a failed run: SIGKILL to those of pids still alive (a
    leftover worker would hold its port for ever)."""
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def wait_for(predicate, timeout, interval=0.05):
    """Polls predicate until it returns a true value (returned) or the
    timeout passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log at %s)" % path
    return "\n".join(text.splitlines()[-lines:])


# --- PKI ------------------------------------------------------------------

@dataclasses.dataclass
class Pki:
    dir: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    other_ca_cert: str
    other_ca_key: str
    wrong_host_cert: str
    wrong_host_key: str


def _openssl(*args, cwd):
    result = subprocess.run(("openssl",) + args, cwd=cwd,
                            stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            args[0], result.stderr.decode("utf-8", "replace")))


def _make_ca(d, name, cn):
    _openssl("req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "3",
             "-subj", "/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_leaf(d, name, ca, cn, san):
    _openssl("req", "-new", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=" + cn, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % san)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
             "-CAkey", ca + ".key", "-set_serial",
             str(int.from_bytes(os.urandom(8), "big")),
             "-days", "2", "-sha256", "-extfile", ext,
             "-out", name + ".pem", cwd=d)


def make_pki(d):
    """Creates in directory d, with the openssl command: a test CA, a server
    certificate for localhost (SAN DNS:localhost, IP:127.0.0.1) signed by
    it, an unrelated second CA, and a certificate signed by the test CA for
    another host name.  Returns a Pki of absolute paths."""
    os.makedirs(d, exist_ok=True)
    _make_ca(d, "ca", "recgate test CA")
    _make_ca(d, "other-ca", "recgate unrelated CA")
    _make_leaf(d, "server", "ca", "localhost",
               "DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, "wrong-host", "ca", "not-localhost.invalid",
               "DNS:not-localhost.invalid")
    p = lambda name: os.path.join(os.path.abspath(d), name)
    return Pki(dir=os.path.abspath(d),
               ca_cert=p("ca.pem"), ca_key=p("ca.key"),
               server_cert=p("server.pem"), server_key=p("server.key"),
               other_ca_cert=p("other-ca.pem"), other_ca_key=p("other-ca.key"),
               wrong_host_cert=p("wrong-host.pem"),
               wrong_host_key=p("wrong-host.key"))


# --- Redis ----------------------------------------------------------------

class Redis:
    """A private redis-server on a free loopback port with its own data
    directory; never the system service."""

    def __init__(self, workdir, port=None):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.port = port
        self.proc = None
        self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        """Starts the server (again on the same port once it has one) and
        waits until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        fixed = self.port is not None
        for attempt in range(8):
            port = self.port if fixed else free_port()
            proc = spawn(["redis-server", "--port", str(port),
                          "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", self.dir,
                          "--daemonize", "no"], self.log_path)
            self.port = port
            if wait_for(lambda: proc.poll() is not None or self._ping(),
                        START_TIMEOUT_S) and proc.poll() is None:
                self.proc = proc
                return
            terminate(proc)
            if not fixed:
                self.port = None
            time.sleep(0.2 * (attempt + 1))
        raise RuntimeError("redis-server did not start:\n" +
                           tail(self.log_path))

    def _ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        """Stops the server by its PID (SIGTERM, wait)."""
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args):
        """Runs redis-cli against this server; returns its stdout."""
        result = subprocess.run(["redis-cli", "-p", str(self.port)] +
                                [str(a) for a in args],
                                stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=10)
        if result.returncode != 0:
            raise RuntimeError("redis-cli %s: %s" % (
                " ".join(map(str, args)), result.stderr.decode()))
        return result.stdout.decode("utf-8", "replace")

    def keys(self, pattern="*"):
        """Every key matching pattern, found with --scan, sorted."""
        out = self.cli("--scan", "--pattern", pattern)
        return sorted(line for line in out.splitlines() if line)

    def command(self, *args):
        """One command over RESP; returns bytes, int, None, or a list.
        An error reply raises RuntimeError."""
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            parts = [a if isinstance(a, bytes) else str(a).encode()
                     for a in args]
            req = b"*%d\r\n" % len(parts) + b"".join(
                b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            s.sendall(req)
            return _read_reply(s.makefile("rb"))

    def get(self, key):
        """The value of a key as bytes, or None when it does not exist."""
        return self.command("GET", key)

    def ttl(self, key):
        return self.command("TTL", key)

    def flushall(self):
        self.command("FLUSHALL")


def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError("redis: " + rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError("unexpected redis reply %r" % line)


# --- signing (client side, for talking to the simulator directly) ---------

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _pct(text):
    return "".join(chr(b) if b in _UNRESERVED else "%%%02X" % b
                   for b in text.encode("utf-8"))


def sdk_date(when=None):
    """X-Sdk-Date for a UNIX time (default now)."""
    return time.strftime("%Y%m%dT%H%M%SZ",
                         time.gmtime(time.time() if when is None else when))


def sign(ak, sk, method, path, headers, body=b"", query=None):
    """SDK-HMAC-SHA256 Authorization for a request.  headers maps
    lower-case names to values and must hold host and x-sdk-date; every
    header in it is signed.  path is the request-line path, query a dict
    of decoded parameters."""
    names = sorted(headers)
    segments = [_pct(seg) for seg in path.split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = []
    for key in sorted(query or {}):
        pairs.append(_pct(key) + "=" + _pct(str(query[key])))
    canonical = "\n".join([
        method, uri, "&".join(pairs),
        "".join("%s:%s\n" % (n, headers[n]) for n in names),
        ";".join(names), hashlib.sha256(body).hexdigest()])
    to_sign = "SDK-HMAC-SHA256\n%s\n%s" % (
        headers["x-sdk-date"],
        hashlib.sha256(canonical.encode("utf-8")).hexdigest())
    signature = hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    return "SDK-HMAC-SHA256 Access=%s, SignedHeaders=%s, Signature=%s" % (
        ak, ";".join(names), signature)


# --- HTTP helpers ---------------------------------------------------------

def http_request(conn, method, path, headers=None, body=None):
    """One exchange on an http.client connection; returns (status,
    lower-case header dict, body bytes).  Repeated headers are joined
    with ", "."""
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    merged = {}
    for name, value in resp.getheaders():
        key = name.lower()
        merged[key] = merged[key] + ", " + value if key in merged else value
    return resp.status, merged, data


# --- simulator ------------------------------------------------------------

class Sim:
    """The Workspace simulator (tests/sim/sim.py) as a child process."""

    def __init__(self, workdir, pki, fixtures=DEFAULT_FIXTURES, ak=TEST_AK,
                 sk=TEST_SK, security_token=None, cert=None, key=None):
        self.dir = os.path.join(workdir, "sim")
        os.makedirs(self.dir, exist_ok=True)
        self.pki = pki
        self.ak, self.sk, self.security_token = ak, sk, security_token
        self.log_path = os.path.join(self.dir, "sim.log")
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        argv = [sys.executable, SIM_PY, "--cert", cert or pki.server_cert,
                "--key", key or pki.server_key, "--fixtures", fixtures,
                "--ak", ak, "--sk", sk, "--host", "127.0.0.1", "--port", "0",
                "--port-file", port_file]
        if security_token is not None:
            argv += ["--security-token", security_token]
        self.proc = spawn(argv, self.log_path)

        def ready():
            if self.proc.poll() is not None:
                return True
            try:
                with open(port_file) as f:
                    return int(f.read())
            except (OSError, ValueError):
                return None
        port = wait_for(ready, START_TIMEOUT_S)
        if self.proc.poll() is not None or not port:
            self.stop()
            raise RuntimeError("simulator did not start:\n" +
                               tail(self.log_path))
        self.port = port
        self.ssl_ctx = ssl.create_default_context(cafile=pki.ca_cert)

    @property
    def endpoint(self):
        return "https://localhost:%d" % self.port

    def connection(self, timeout=10):
        return http.client.HTTPSConnection("localhost", self.port,
                                           timeout=timeout,
                                           context=self.ssl_ctx)

    def _control(self, method, path, doc=None):
        conn = self.connection()
        try:
            body = None if doc is None else json.dumps(doc)
            headers = {"Content-Type": "application/json"} if body else {}
            status, _, data = http_request(conn, method, path, headers, body)
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError("simulator %s %s: %d %s" % (
                method, path, status, data.decode("utf-8", "replace")))
        return json.loads(data)

    def stats(self):
        """{"requests": n, "by_record": {id: n}, ...}"""
        return self._control("GET", "/_sim/stats")

    def requests(self):
        """Captured /v2 requests: [{"method", "path", "headers"}]."""
        return self._control("GET", "/_sim/requests")

    def reset(self):
        self._control("POST", "/_sim/reset")

    def fault(self, **kw):
        """fault(kind="status", status=429, retry_after=2, record="*",
        count=1): see tests/sim/README.md."""
        self._control("POST", "/_sim/fault", kw)

    def clear_faults(self):
        self._control("DELETE", "/_sim/fault")

    def put_record(self, record_id, body=None, raw=None, running_reads=None):
        doc = {"id": record_id}
        if body is not None:
            doc["body"] = body
        if raw is not None:
            doc["raw"] = raw
        if running_reads is not None:
            doc["running_reads"] = running_reads
        self._control("POST", "/_sim/record", doc)

    def clock(self, offset_s):
        self._control("POST", "/_sim/clock", {"offset_s": offset_s})

    def signed_headers(self, path, project_id=PROJECT_ID, ak=None, sk=None,
                       date=None, security_token=None, extra=None):
        """The headers recgate should send for a GET of path (lower-case
        names, Authorization included); extra headers are signed too."""
        headers = {"host": "localhost:%d" % self.port,
                   "content-type": "application/json",
                   "x-project-id": project_id,
                   "x-sdk-date": date or sdk_date()}
        token = security_token or self.security_token
        if token is not None:
            headers["x-security-token"] = token
        headers.update(extra or {})
        headers["authorization"] = sign(ak or self.ak, sk or self.sk, "GET",
                                        path.split("?")[0], headers)
        return headers

    def send(self, method, path, headers, timeout=10):
        """Sends exactly these headers (no Host or Accept-Encoding of
        http.client's own); returns (status, lower-case headers, body)."""
        conn = self.connection(timeout)
        try:
            conn.putrequest(method, path, skip_host=True,
                            skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            data = resp.read()
            return (resp.status,
                    {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def signed_get(self, path, unsigned=None, timeout=10, **kw):
        """A GET signed the way recgate should sign it, straight to the
        simulator; keyword arguments go to signed_headers, unsigned
        headers are added after signing.  Returns (status, headers,
        body)."""
        headers = self.signed_headers(path, **kw)
        headers.update(unsigned or {})
        return self.send("GET", path, headers, timeout)

    def stop(self):
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None


# --- recgate --------------------------------------------------------------

def _ini(config):
    """Renders {"section.key": value} as INI text, sections in first-seen
    order; a value of None leaves the key out."""
    sections = {}
    for dotted, value in config.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        sections.setdefault(section, []).append((key, value))
    out = []
    for section, items in sections.items():
        out.append("[%s]" % section)
        out.extend("%s = %s" % (k, v) for k, v in items)
        out.append("")
    return "\n".join(out)


class Recgate:
    """recgate as a child process with its own config file."""

    _serial = 0

    def __init__(self, workdir, config, env=None, binary=None, wait=True):
        Recgate._serial += 1
        self._serial_no = Recgate._serial
        self.dir = os.path.join(workdir, "recgate-%d" % Recgate._serial)
        os.makedirs(self.dir, exist_ok=True)
        self.binary = binary or os.environ.get("RECGATE_BIN")
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise RuntimeError("RECGATE_BIN is not set to an executable "
                               "recgate (got %r)" % self.binary)
        self.config = dict(config)
        self.env = dict(env or {})
        self.conf_path = os.path.join(self.dir, "recgate.conf")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.proc = None
        self.returncode = None
        self._log_checked = False
        self._archive_pid = None      # the process whose log is not copied
        self._archive_offset = 0      # yet, and where its part begins
        self._archive_secrets = []
        self.start(wait)

    @property
    def port(self):
        return int(self.config["server.listen"].rsplit(":", 1)[1])

    @property
    def host(self):
        return self.config["server.listen"].rsplit(":", 1)[0].strip("[]")

    def start(self, wait=True):
        """Writes the config (self.config, which a test may change before
        a restart) and starts the binary; with wait, returns once /healthz
        answers 200."""
        with open(self.conf_path, "w") as f:
            f.write(_ini(self.config))
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update({k: str(v) for k, v in self.env.items()})
        if log_archive_dir() and self._archive_pid is not None:
            self.archive_log()
        try:
            self._archive_offset = os.path.getsize(self.log_path)
        except OSError:
            self._archive_offset = 0
        self._archive_secrets = self._secrets(env)
        self.proc = spawn([self.binary, "-c", self.conf_path], self.log_path,
                          env=env, stdout_path=self.stdout_path)
        self._archive_pid = self.proc.pid
        if self not in _archivable:
            _archivable.append(self)
        self.returncode = None
        self._log_checked = False
        if wait:
            self.wait_healthy()

    def _tokens(self):
        path = self.config.get("access.tokens_file")
        out = []
        if not path:
            return out
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.split("#", 1)[0].split()
                    if fields:
                        out.append(("client_token", fields[0]))
        except OSError:
            pass
        return out

    def _secrets(self, env):
        """The secrets this process is given: config, environment,
        secret files, the Redis password and the client tokens."""
        out = []
        for kind in ("ak", "sk", "security_token"):
            value = self.config.get("credentials." + kind)
            if value is not None:
                out.append((kind, str(value)))
            for var in ("HUAWEICLOUD_SDK_" + kind.upper(),
                        "RECGATE_CREDENTIALS_" + kind.upper()):
                if env.get(var):
                    out.append((kind, env[var]))
            path = self.config.get("credentials.%s_file" % kind) or \
                env.get("RECGATE_CREDENTIALS_%s_FILE" % kind.upper())
            if path:
                try:
                    with open(path, encoding="utf-8",
                              errors="replace") as f:
                        first = f.readline().rstrip("\r\n")
                    if first:
                        out.append((kind, first))
                except OSError:
                    pass
        url = str(self.config.get("redis.url") or
                  env.get("RECGATE_REDIS_URL") or "")
        if url.startswith("redis://") and "@" in url:
            password = url[len("redis://"):].rsplit("@", 1)[0]
            password = password[1:] if password.startswith(":") else password
            if password:
                out.append(("redis_password", password))
        return out + self._tokens()

    def archive_log(self):
        """Copies this process's part of the stderr log into the archive
        (RECGATE_LOG_ARCHIVE) with the secrets it was given; once per
        process, later calls do nothing."""
        archive = log_archive_dir()
        pid = self._archive_pid
        if not archive or pid is None:
            return
        self._archive_pid = None
        os.makedirs(archive, exist_ok=True)
        test = os.path.splitext(os.path.basename(sys.argv[0] or "x"))[0]
        name = "%s-%d-%d-%d.log" % (test or "x", os.getpid(), self._serial_no,
                                    pid)
        try:
            with open(self.log_path, "rb") as src:
                src.seek(self._archive_offset)
                data = src.read()
        except OSError:
            data = b""
        with open(os.path.join(archive, name), "wb") as dst:
            dst.write(data)
        _append_secrets(archive, name, self._archive_secrets +
                        self._tokens() + _noted_secrets)

    def wait_healthy(self, timeout=START_TIMEOUT_S):
        def healthy():
            if self.proc.poll() is not None:
                return True
            try:
                return self.get("/healthz", timeout=1)[0] == 200
            except (OSError, http.client.HTTPException):
                return False
        ok = wait_for(healthy, timeout, 0.05)
        if self.proc.poll() is not None:
            code = self.wait_exit(0)
            raise AssertionError("recgate exited with %s at start:\n%s" % (
                code, tail(self.log_path)))
        if not ok:
            self.kill()
            raise AssertionError("recgate /healthz not 200 within %ss:\n%s"
                                 % (timeout, tail(self.log_path)))

    def connection(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)

    def get(self, path, headers=None, method="GET", body=None, timeout=10):
        """One request on a new connection: (status, lower-case headers,
        body bytes)."""
        conn = self.connection(timeout)
        try:
            return http_request(conn, method, path, headers, body)
        finally:
            conn.close()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """stderr parsed as JSON lines; lines that are not JSON objects
        (sanitizer reports, say) are skipped."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def metrics(self):
        """GET /metrics parsed as {"name{labels}": float}."""
        status, _, body = self.get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        out = {}
        for line in body.decode("utf-8").splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
        return out

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=None):
        """Waits for the process to exit by itself (a config error, say)
        and returns its exit code; None if it is still running."""
        if self.proc is None:
            return self.returncode
        try:
            self.returncode = self.proc.wait(
                STOP_TIMEOUT_S if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            return None
        _children.discard(self.proc)
        self.proc = None
        self.archive_log()
        return self.returncode

    def kill(self):
        """SIGKILL without checks (for crash tests and cleanup)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.returncode = self.proc.wait()
            _children.discard(self.proc)
            self.proc = None
        self.archive_log()

    def stop(self):
        """SIGTERM and wait; raises AssertionError when it had to be
        killed, exited non-zero, or its log holds a sanitizer report (also
        when it had already exited or been killed)."""
        problems = []
        if self.proc is not None:
            code, killed = terminate(self.proc)
            self.proc = None
            self.returncode = code
            if killed:
                problems.append("did not exit within %ds of SIGTERM"
                                % STOP_TIMEOUT_S)
            elif code != 0:
                problems.append("exited with %d" % code)
        self.archive_log()
        if not self._log_checked:
            self._log_checked = True
            text = self.log_text()
            problems += ["log holds %r" % m for m in SANITIZER_MARKERS
                         if m in text]
        if problems:
            raise AssertionError("recgate %s:\n%s" % (
                "; ".join(problems), tail(self.log_path, 120)))


# --- test case ------------------------------------------------------------

class RecgateTestCase(unittest.TestCase):
    """Per test class: a temp dir, a PKI, Redis and the simulator.  Per
    test: the simulator reset and Redis flushed (RESET_EACH_TEST), and any
    recgate started with start_recgate() stopped and checked afterwards.
    Subclasses tune the class attributes below."""

    AK = TEST_AK
    SK = TEST_SK
    SECURITY_TOKEN = None
    FIXTURES = DEFAULT_FIXTURES
    START_REDIS = True
    START_SIM = True
    RESET_EACH_TEST = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.workdir = tempfile.mkdtemp(prefix="recgate-it-")
        cls.addClassCleanup(cls._remove_workdir)
        cls.pki = make_pki(os.path.join(cls.workdir, "pki"))
        cls.redis = None
        cls.sim = None
        if cls.START_REDIS:
            cls.redis = Redis(cls.workdir)
            cls.addClassCleanup(cls.redis.stop)
        if cls.START_SIM:
            cls.sim = Sim(cls.workdir, cls.pki, cls.FIXTURES, cls.AK, cls.SK,
                          cls.SECURITY_TOKEN)
            cls.addClassCleanup(cls.sim.stop)

    @classmethod
    def _remove_workdir(cls):
        if os.environ.get("RECGATE_KEEP_TMP"):
            sys.stderr.write("keeping %s\n" % cls.workdir)
            return
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self._recgates = []
        if self.RESET_EACH_TEST:
            if self.sim is not None:
                self.sim.reset()
            if self.redis is not None and self.redis.running():
                self.redis.flushall()

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self._dump_logs()
        return outcome

    def _dump_logs(self):
        out = sys.stderr
        for gw in getattr(self, "_recgates", []):
            out.write("\n----- recgate log %s -----\n%s\n"
                      % (gw.log_path, tail(gw.log_path, 200)))
        sim = getattr(self, "sim", None)
        if sim is not None:
            out.write("\n----- simulator log (tail) -----\n%s\n"
                      % tail(sim.log_path, 40))
        out.flush()

    def base_config(self):
        """The config every recgate here starts from."""
        cfg = {
            "server.listen": "127.0.0.1:%d" % free_port(),
            "upstream.endpoint": self.sim.endpoint if self.sim
            else "https://localhost:9",
            "upstream.ca_file": self.pki.ca_cert,
            "upstream.timeout": "2s",
            "credentials.ak": self.AK,
            "credentials.sk": self.SK,
            "redis.url": self.redis.url if self.redis
            else "redis://127.0.0.1:9/0",
            "redis.key_prefix": "recgate:",
            "cache.ttl": "7d",
        }
        if self.SECURITY_TOKEN is not None:
            cfg["credentials.security_token"] = self.SECURITY_TOKEN
        return cfg

    def assertErrorReply(self, reply, status, code):
        """reply (status, headers, body) is an error in the documented
        shape: that status, JSON with exactly error_code (== code),
        error_msg and request_id (== the X-Request-Id header).  Returns
        the parsed body."""
        got_status, headers, body = reply
        self.assertEqual(got_status, status, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        try:
            doc = json.loads(body)
        except ValueError:
            self.fail("error body is not JSON: %r" % body)
        self.assertIsInstance(doc, dict, body)
        self.assertEqual(sorted(doc), ["error_code", "error_msg",
                                       "request_id"], body)
        if code is not None:
            self.assertEqual(doc["error_code"], code, body)
        self.assertIsInstance(doc["error_msg"], str)
        self.assertTrue(doc["error_msg"], body)
        self.assertTrue(headers.get("x-request-id"), headers)
        self.assertEqual(doc["request_id"], headers["x-request-id"])
        return doc

    def upstream_count(self, record_id=None):
        """Requests the simulator counted: all /v2 requests, or those for
        one record."""
        stats = self.sim.stats()
        if record_id is None:
            return stats["requests"]
        return stats["by_record"].get(record_id, 0)

    def record_keys(self, prefix="recgate:"):
        """Every record key in Redis under prefix."""
        return self.redis.keys(prefix + "rec:*")

    def start_recgate(self, config=None, env=None, wait=True):
        """Starts recgate with base_config() updated by config
        ({"section.key": value}, None removes a key) and extra env vars.
        It is stopped after the test, and the test fails if it exits
        uncleanly or reports sanitizer errors."""
        cfg = self.base_config()
        cfg.update(config or {})
        fixed = config is not None and "server.listen" in config
        for attempt in range(5):
            try:
                gw = Recgate(self.workdir, cfg, env, wait=False)
            except RuntimeError as e:
                self.fail(str(e))
            self._recgates.append(gw)
            self.addCleanup(gw.stop)
            if not wait:
                return gw
            try:
                gw.wait_healthy()
                return gw
            except AssertionError:
                if fixed or "in use" not in gw.log_text().lower():
                    raise
                cfg["server.listen"] = "127.0.0.1:%d" % free_port()
        self.fail("recgate could not find a free port")


def main():
    """unittest.main with verbose output, for `python3 test_x.py`."""
    unittest.main(verbosity=2)
