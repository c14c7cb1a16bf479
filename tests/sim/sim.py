#!/usr/bin/env python3
# Workspace simulator: an HTTPS stand-in for the Huawei Cloud Workspace
# endpoint that serves script execution records to recgate's tests.
#
# It checks every /v2 request's SDK-HMAC-SHA256 signature the way the cloud's
# API gateway does, serves records from a JSON fixture file, and on command
# misbehaves (latency, error statuses, broken bodies, dropped connections).
# A control API under /_sim/ on the same port drives it.  Python 3 standard
# library only.  See README.md beside this file.

import argparse
import calendar
import copy
import email.utils
import hashlib
import hmac
import http
import http.server
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
SDK_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
SIGN_WINDOW_S = 15 * 60
RECORD_ROUTE_RE = re.compile(r"^/v2/([^/]+)/script-execution-records/([^/]+)$")
FAULT_KINDS = ("latency", "status", "malformed", "wrong_id", "huge", "drop",
               "drop_mid_body", "chunked", "hang")
HUGE_DEFAULT_BYTES = 10 * 1024 * 1024
HANG_MAX_S = 600
HANDSHAKE_TIMEOUT_S = 10
MAX_CAPTURES = 10000

_log_lock = threading.Lock()


def log(text):
    stamp = time.strftime("%H:%M:%S", time.gmtime())
    with _log_lock:
        sys.stderr.write("sim %s %s\n" % (stamp, text))
        sys.stderr.flush()


# --- signature ------------------------------------------------------------

class SignatureError(Exception):
    """A request's signature or credentials are not acceptable."""


def uri_encode(data):
    """Percent-encode bytes (or a str as UTF-8): every byte outside the
    unreserved set becomes %XX in upper-case hex."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return "".join(chr(b) if b in UNRESERVED else "%%%02X" % b for b in data)


def _wire_bytes(text):
    # http.server decodes the request line as Latin-1, so this gives back
    # the bytes that were on the wire.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def canonical_uri(path):
    """The path as the request line carried it, each segment encoded, with
    a trailing slash."""
    encoded = "/".join(uri_encode(_wire_bytes(seg)) for seg in path.split("/"))
    if not encoded.endswith("/"):
        encoded += "/"
    return encoded


def canonical_query(query):
    """Query parameters decoded, keys sorted, values of a repeated key
    sorted, each re-encoded and joined as k=v&k=v."""
    params = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key = urllib.parse.unquote(key)
        params.setdefault(key, []).append(urllib.parse.unquote(value))
    pairs = []
    for key in sorted(params):
        for value in sorted(params[key]):
            pairs.append(uri_encode(key) + "=" + uri_encode(value))
    return "&".join(pairs)


def canonical_request(method, target, header_pairs, signed_names, body_hash):
    """Builds the canonical request.  header_pairs is the received header
    list; a signed header that is missing or repeated raises
    SignatureError."""
    path, _, query = target.partition("?")
    lines = []
    for name in signed_names:
        values = [v for k, v in header_pairs if k.lower() == name]
        if not values:
            raise SignatureError("signed header %s is missing" % name)
        if len(values) > 1:
            raise SignatureError("signed header %s is repeated" % name)
        lines.append("%s:%s\n" % (name, values[0]))
    return "\n".join([method, canonical_uri(path), canonical_query(query),
                      "".join(lines), ";".join(signed_names), body_hash])


def string_to_sign(sdk_date, canonical):
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "%s\n%s\n%s" % (ALGORITHM, sdk_date, digest)


def compute_signature(sk, sdk_date, canonical):
    msg = string_to_sign(sdk_date, canonical).encode("utf-8")
    return hmac.new(sk.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def parse_authorization(value):
    """Splits 'SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..'
    into a dict; raises SignatureError when it does not have that shape."""
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        raise SignatureError("authorization algorithm is not " + ALGORITHM)
    fields = {}
    for item in value[len(prefix):].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or key in fields:
            raise SignatureError("malformed Authorization header")
        fields[key] = val
    for key in ("Access", "SignedHeaders", "Signature"):
        if not fields.get(key):
            raise SignatureError("Authorization has no %s" % key)
    return fields


def header_value(header_pairs, name):
    """First value of a header (case-insensitive name) or None."""
    for key, value in header_pairs:
        if key.lower() == name:
            return value
    return None


def verify_request(method, target, header_pairs, body, creds, now):
    """Checks one request the way the cloud's gateway would.  creds holds
    ak, sk and security_token (or None).  Returns the canonical request;
    raises SignatureError with the reason."""
    auth = header_value(header_pairs, "authorization")
    if auth is None:
        raise SignatureError("missing Authorization header")
    fields = parse_authorization(auth)
    if fields["Access"] != creds["ak"]:
        raise SignatureError("unknown access key")

    signed = fields["SignedHeaders"].split(";")
    if any(n != n.lower() or not n for n in signed):
        raise SignatureError("SignedHeaders must be lower-case names")
    if signed != sorted(set(signed)):
        raise SignatureError("SignedHeaders must be sorted and unique")
    for name in ("host", "x-sdk-date"):
        if name not in signed:
            raise SignatureError("%s is not a signed header" % name)

    sdk_date = header_value(header_pairs, "x-sdk-date")
    if sdk_date is None or not SDK_DATE_RE.match(sdk_date):
        raise SignatureError("X-Sdk-Date is not YYYYMMDDTHHMMSSZ")
    try:
        stamp = time.strptime(sdk_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise SignatureError("X-Sdk-Date is not a valid date") from None
    skew = abs(calendar.timegm(stamp) - now)
    if skew > SIGN_WINDOW_S:
        raise SignatureError("X-Sdk-Date is %d s away from the server clock"
                             % skew)

    token = creds.get("security_token")
    if token is not None:
        if header_value(header_pairs, "x-security-token") != token:
            raise SignatureError("missing or wrong X-Security-Token")
        if "x-security-token" not in signed:
            raise SignatureError("x-security-token is not a signed header")

    path = target.partition("?")[0]
    segments = path.split("/")
    if len(segments) > 2 and segments[2]:
        if header_value(header_pairs, "x-project-id") != segments[2]:
            raise SignatureError("X-Project-Id does not match the URI")

    body_hash = header_value(header_pairs, "x-sdk-content-sha256")
    if body_hash is None:
        body_hash = hashlib.sha256(body).hexdigest()
    canonical = canonical_request(method, target, header_pairs, signed,
                                  body_hash)
    expected = compute_signature(creds["sk"], sdk_date, canonical)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SignatureError("signature mismatch", canonical, sdk_date)
    return canonical


# --- state ----------------------------------------------------------------

def load_fixtures(path):
    """Reads the fixture file into {id: {body|raw, running_reads}}; raises
    ValueError on a malformed file."""
    with open(path, "rb") as f:
        doc = json.load(f)
    records = doc.get("records")
    if not isinstance(records, dict):
        raise ValueError("%s: no \"records\" object" % path)
    out = {}
    for rid, spec in records.items():
        out[rid] = make_record(rid, spec)
    return out


def make_record(rid, spec):
    if not isinstance(spec, dict):
        raise ValueError("record %s: not an object" % rid)
    body, raw = spec.get("body"), spec.get("raw")
    if (body is None) == (raw is None):
        raise ValueError("record %s: needs exactly one of body, raw" % rid)
    if body is not None and not isinstance(body, dict):
        raise ValueError("record %s: body must be an object" % rid)
    if raw is not None and not isinstance(raw, str):
        raise ValueError("record %s: raw must be a string" % rid)
    running = spec.get("running_reads") or 0
    if not isinstance(running, int) or running < 0:
        raise ValueError("record %s: running_reads must be >= 0" % rid)
    return {"body": body, "raw": raw, "running_reads": running}


class State:
    """Everything the simulator remembers, behind one lock."""

    def __init__(self, fixtures_path, creds):
        self.fixtures_path = fixtures_path
        self.creds = creds
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        records = load_fixtures(self.fixtures_path)
        with self.lock:
            self.records = records
            self.reads = {}
            self.requests = 0
            self.by_record = {}
            self.signature_failures = 0
            self.faults = []
            self.captures = []
            self.clock_offset = 0.0

    def now(self):
        with self.lock:
            return time.time() + self.clock_offset

    def count(self, method, target, header_pairs, record_id):
        with self.lock:
            self.requests += 1
            if record_id is not None:
                self.by_record[record_id] = \
                    self.by_record.get(record_id, 0) + 1
            self.captures.append({"method": method, "path": target,
                                  "headers": [list(p) for p in header_pairs]})
            if len(self.captures) > MAX_CAPTURES:
                del self.captures[0]

    def put_record(self, rid, spec):
        record = make_record(rid, spec)
        with self.lock:
            self.records[rid] = record
            self.reads.pop(rid, None)

    def read_record(self, rid):
        """One read of a record: ("body", dict) with the running phase
        applied, ("raw", str), or None when unknown."""
        with self.lock:
            record = self.records.get(rid)
            if record is None:
                return None
            n = self.reads.get(rid, 0)
            self.reads[rid] = n + 1
            if record["raw"] is not None:
                return ("raw", record["raw"])
            body = copy.deepcopy(record["body"])
        if n < record["running_reads"]:
            body["status"] = "RUNNING"
            body["end_time"] = None
        return ("body", body)

    def add_fault(self, fault):
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def take_faults(self, rid):
        """The faults that apply to this request, each consuming one of
        its count: any latency faults, then at most one other."""
        taken = []
        with self.lock:
            for fault in self.faults:
                if fault["record"] not in ("*", rid):
                    continue
                if fault["remaining"] == 0:
                    continue
                if fault["remaining"] is not None:
                    fault["remaining"] -= 1
                taken.append(fault)
                if fault["kind"] != "latency":
                    break
        return taken

    def stats(self):
        with self.lock:
            return {"requests": self.requests,
                    "by_record": dict(self.by_record),
                    "reads": dict(self.reads),
                    "signature_failures": self.signature_failures,
                    "faults": copy.deepcopy(self.faults),
                    "clock_offset_s": self.clock_offset}


def parse_fault(doc):
    """Validates a fault request; returns the stored fault or raises
    ValueError."""
    if not isinstance(doc, dict):
        raise ValueError("fault must be an object")
    kind = doc.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError("kind must be one of " + ", ".join(FAULT_KINDS))
    record = doc.get("record", "*")
    if not isinstance(record, str) or not record:
        raise ValueError("record must be an id or \"*\"")
    count = doc.get("count")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ValueError("count must be a non-negative integer")
    if kind == "latency" and not isinstance(doc.get("ms"), (int, float)):
        raise ValueError("latency needs ms")
    if kind == "status" and not isinstance(doc.get("status"), int):
        raise ValueError("status needs an integer status")
    fault = dict(doc)
    fault["record"] = record
    fault["remaining"] = count
    return fault


# --- responses --------------------------------------------------------------

def cloud_error(code, msg, request_id):
    return {"error_code": code, "error_msg": msg, "request_id": request_id}


def default_error_body(status, request_id):
    if status == 429:
        return cloud_error("APIGW.0308", "The throttling threshold has been "
                           "reached: policy user over ratelimit,limit:10,"
                           "time:1 second", request_id)
    if status in (401, 403):
        return cloud_error("APIGW.0301", "Incorrect IAM authentication "
                           "information: injected fault", request_id)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return cloud_error("WKS.%04d" % status, phrase, request_id)


def synthetic_record(rid):
    return {"id": rid, "script_id": "script-sim", "script_name": "sim",
            "script_task_id": "task-sim", "resource_id": "desktop-sim",
            "resource_name": "sim-desktop", "resource_type": "DESKTOP",
            "start_time": "2025-01-01T00:00:00.000Z",
            "end_time": "2025-01-01T00:00:01.000Z", "status": "SUCCESS",
            "execute_order": 0, "result_code": "0", "reason": None,
            "output": ""}


def padded_body(body, size):
    """JSON of body with its output padded so the whole is size bytes
    (or as close as the rest of the record allows)."""
    body = dict(body)
    body["output"] = ""
    base = len(json.dumps(body).encode("utf-8"))
    body["output"] = "x" * max(0, size - base)
    return json.dumps(body).encode("utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WorkspaceSim/1.0"
    sys_version = ""

    # -- plumbing

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    def log_request(self, code="-", size="-"):
        pass

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.server.state.now(), usegmt=True)

    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            n = 0
        return self.rfile.read(n) if n > 0 else b""

    def start(self, status, headers, length=None):
        self.status = status
        self.send_response(status)
        self.send_header("X-Request-Id", self.request_id)
        for name, value in headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_bytes(self, status, body, headers=(),
                   ctype="application/json;charset=UTF-8"):
        self.start(status, [("Content-Type", ctype)] + list(headers),
                   len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send_bytes(status, json.dumps(obj).encode("utf-8"), headers)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def dispatch(self):
        started = time.monotonic()
        self.request_id = secrets.token_hex(16)
        self.status = "-"
        self.note = ""
        body = self.read_body()
        path = self.path.partition("?")[0]
        try:
            if path.startswith("/_sim/"):
                self.control(path, body)
            elif path == "/v2" or path.startswith("/v2/"):
                self.cloud(body)
            else:
                self.send_json(404, cloud_error(
                    "APIGW.0101", "The API does not exist or has not been "
                    "published in the environment", self.request_id))
        finally:
            ms = (time.monotonic() - started) * 1000
            log("%s %s %s -> %s%s %.0fms" % (
                self.client_address[0], self.command, self.path,
                self.status, self.note, ms))

    # -- the cloud API

    def cloud(self, body):
        state = self.server.state
        header_pairs = list(self.headers.items())
        match = RECORD_ROUTE_RE.match(self.path.partition("?")[0])
        rid = match.group(2) if match else None
        state.count(self.command, self.path, header_pairs, rid)

        try:
            verify_request(self.command, self.path, header_pairs, body,
                           state.creds, state.now())
        except SignatureError as e:
            with state.lock:
                state.signature_failures += 1
            reason = e.args[0]
            self.note = " (%s)" % reason
            if len(e.args) == 3:
                log("canonical request was:\n%s\nstring to sign was:\n%s"
                    % (e.args[1], string_to_sign(e.args[2], e.args[1])))
            self.send_json(403, cloud_error(
                "APIGW.0301", "Incorrect IAM authentication information: "
                + reason, self.request_id))
            return

        if match is None:
            self.send_json(404, cloud_error(
                "APIGW.0101", "The API does not exist or has not been "
                "published in the environment", self.request_id))
            return
        if self.command != "GET":
            self.send_json(405, cloud_error(
                "WKS.0405", "method not allowed", self.request_id),
                [("Allow", "GET")])
            return

        for fault in state.take_faults(rid):
            self.note += " fault=" + fault["kind"]
            if self.apply_fault(fault, rid):
                return

        found = state.read_record(rid)
        if found is None:
            self.send_json(404, cloud_error("WKS.0404", "record not found",
                                            self.request_id))
        elif found[0] == "raw":
            self.send_bytes(200, found[1].encode("utf-8"))
        else:
            self.send_json(200, found[1])

    def record_for_fault(self, rid):
        found = self.server.state.read_record(rid)
        if found is None or found[0] == "raw":
            return synthetic_record(rid)
        return found[1]

    def apply_fault(self, fault, rid):
        """Acts out one fault; returns True when it answered (or refused to
        answer) the request, False when the normal answer should follow."""
        kind = fault["kind"]
        if kind == "latency":
            time.sleep(fault["ms"] / 1000.0)
            return False
        if kind == "status":
            status = fault["status"]
            headers = []
            if fault.get("retry_after") is not None:
                headers.append(("Retry-After", str(fault["retry_after"])))
            body = fault.get("body")
            if body is None:
                body = default_error_body(status, self.request_id)
            if isinstance(body, str):
                self.send_bytes(status, body.encode("utf-8"), headers)
            else:
                self.send_json(status, body, headers)
        elif kind == "malformed":
            self.send_bytes(200, b'{"id": "x", ')
        elif kind == "wrong_id":
            record = self.record_for_fault(rid)
            record["id"] = fault.get("id") or rid + "-other"
            self.send_json(200, record)
        elif kind == "huge":
            size = int(fault.get("bytes", HUGE_DEFAULT_BYTES))
            self.send_bytes(200, padded_body(self.record_for_fault(rid),
                                             size))
        elif kind == "drop":
            self.status = "dropped"
            self.drop()
        elif kind == "drop_mid_body":
            data = json.dumps(self.record_for_fault(rid)).encode("utf-8")
            self.start(200, [("Content-Type", "application/json")],
                       len(data) + 100)
            self.wfile.write(data[:len(data) // 2])
            self.status = "200-cut"
            self.drop()
        elif kind == "chunked":
            data = json.dumps(self.record_for_fault(rid)).encode("utf-8")
            self.start(200, [("Content-Type", "application/json"),
                             ("Transfer-Encoding", "chunked")])
            for i in range(0, len(data), 64):
                piece = data[i:i + 64]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "hang":
            self.status = "hung"
            self.hang(float(fault.get("max_s", HANG_MAX_S)))
        return True

    def hang(self, max_s):
        """Answers nothing until the client closes the connection (or the
        server stops, or max_s passes)."""
        deadline = time.monotonic() + max_s
        sock = self.connection
        while not self.server.stopping.is_set():
            if time.monotonic() >= deadline:
                break
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if ready and not sock.recv(4096):
                    break
            except ssl.SSLWantReadError:
                continue
            except (OSError, ValueError):
                break
        self.drop()

    # -- the control API

    def control(self, path, body):
        state = self.server.state
        route = (self.command, path)
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError:
            self.send_json(400, {"error": "body is not JSON"})
            return
        try:
            if route == ("GET", "/_sim/stats"):
                self.send_json(200, state.stats())
            elif route == ("GET", "/_sim/requests"):
                with state.lock:
                    captured = copy.deepcopy(state.captures)
                self.send_json(200, captured)
            elif route == ("POST", "/_sim/reset"):
                state.reset()
                self.send_json(200, {"ok": True})
            elif route == ("POST", "/_sim/record"):
                rid = doc.get("id")
                if not isinstance(rid, str) or not rid:
                    raise ValueError("id must be a non-empty string")
                spec = {k: doc.get(k) for k in
                        ("body", "raw", "running_reads")}
                state.put_record(rid, spec)
                self.send_json(200, {"ok": True})
            elif route == ("POST", "/_sim/fault"):
                state.add_fault(parse_fault(doc))
                self.send_json(200, {"ok": True})
            elif route == ("DELETE", "/_sim/fault"):
                state.clear_faults()
                self.send_json(200, {"ok": True})
            elif route == ("POST", "/_sim/clock"):
                offset = doc.get("offset_s")
                if not isinstance(offset, (int, float)):
                    raise ValueError("offset_s must be a number")
                with state.lock:
                    state.clock_offset = float(offset)
                self.send_json(200, {"ok": True})
            else:
                self.send_json(404, {"error": "no such control route"})
        except (ValueError, OSError) as e:
            self.send_json(400, {"error": str(e)})


class SimServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, ssl_ctx, state, idle_timeout):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_ctx = ssl_ctx
        self.state = state
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # Runs in the connection's own thread, so a slow handshake holds
        # up nobody else.
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("%s tls handshake failed: %s" % (client_address[0], e))
            return
        try:
            conn.settimeout(self.idle_timeout)
            self.RequestHandlerClass(conn, client_address, self)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        log("%s connection error: %s" % (client_address[0],
                                         sys.exc_info()[1]))


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="HTTPS simulator of the Workspace script record API")
    p.add_argument("--cert", required=True, help="server certificate PEM")
    p.add_argument("--key", required=True, help="server private key PEM")
    p.add_argument("--fixtures", required=True, help="records JSON file")
    p.add_argument("--ak", required=True, help="accepted access key")
    p.add_argument("--sk", required=True, help="its secret key")
    p.add_argument("--security-token", default=None,
                   help="require this X-Security-Token")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--port-file", help="write the bound port here")
    p.add_argument("--idle-timeout", type=float, default=75.0,
                   help="seconds an idle keep-alive connection stays open")
    return p.parse_args(argv)


def on_sigterm(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    args = parse_args(argv)
    creds = {"ak": args.ak, "sk": args.sk,
             "security_token": args.security_token}
    state = State(args.fixtures, creds)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    server = SimServer((args.host, args.port), ctx, state, args.idle_timeout)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    log("listening on https://%s:%d with %d records"
        % (args.host, port, len(state.records)))

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
