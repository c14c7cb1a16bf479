#!/usr/bin/env python3
# Side-by-side benchmark of recgate's hit path against nginx as a caching
# reverse proxy and a bare libevent evhttp server. Started by
# tests/bench/run.sh, which installs the tools, builds the binaries and
# raises the open-file limit first; see README.md beside this file.
#
#   bench.py            the benchmark: one table, stdout and Markdown
#   bench.py profile    perf record -g of recgate's hit path under wrk
#
# Everything listens on 127.0.0.1 only; every load is bounded in time and
# request count. Python 3 standard library only, plus the integration
# tests' harness (PKI, Redis, simulator and recgate processes).

import collections
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

import harness  # noqa: E402

IDS_LUA = os.path.join(HERE, "ids.lua")
SIM_NODELAY_PY = os.path.join(HERE, "sim_nodelay.py")
OPEN_SIM_PY = os.path.join(HERE, "open_sim.py")
PROJECT_ID = harness.PROJECT_ID


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


SMOKE = os.environ.get("BENCH_SMOKE", "0") not in ("", "0")
DURATION = 2 if SMOKE else env_int("DURATION", 10)
CONNS = (64, 256)
# Rounds of the hit cells; the median round of each cell is reported.
ROUNDS = 1 if SMOKE else env_int("BENCH_ROUNDS", 3)
# Seconds of the pass through every system before the hit cells.
PREWARM_S = 1 if SMOKE else 3
N_HOT = 1000                                   # rec-0000 .. rec-0999
N_MISS = env_int("BENCH_MISS", 50 if SMOKE else 500)
N_COALESCE = env_int("BENCH_COALESCE", 200)
COALESCE_LATENCY_MS = 200
N_IDLE = env_int("BENCH_IDLE", 1000 if SMOKE else 10000)
N_L1 = env_int("BENCH_L1", 2000 if SMOKE else 100000)
HOT_BYTES = 1300                               # body size of a hot record
FILL_THREADS = 16
WRK_THREADS = 2

RECGATE_BIN = os.environ.get("RECGATE_BIN") or \
    os.path.join(SOURCE_DIR, "build", "recgate")
BARE_BIN = os.environ.get("BARE_BIN")


class BenchError(Exception):
    """A component did not start or a cell could not run."""


def log(msg):
    sys.stderr.write("bench %s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --- fixtures ----------------------------------------------------------------

def iso_ms(epoch_ms):
    t = time.gmtime(epoch_ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (epoch_ms % 1000)


FILLER = ("Directory: C:/Users/bench/AppData/Local/Temp  LastWriteTime "
          "Length Name ----  ------------- ------ ---- ")


def record_raw(rid, i, size):
    """A finished record in recgate's normalized form (key order, compact
    JSON, times as YYYY-MM-DDTHH:MM:SS.mmmZ), padded in output to size
    bytes when size is given: the simulator serves these bytes as they are,
    and recgate's normalized answer is the same bytes."""
    start = 1740816000000 + i * 37013
    doc = collections.OrderedDict([
        ("id", rid),
        ("script_id", "3f1c2b7e-%04x-4a6b-8c9d-0e1f2a3b4c5d" % (i % 65536)),
        ("script_name", "collect-disk-usage"),
        ("script_task_id", "task-20250301-%06d" % i),
        ("resource_id", "9d8e7f60-5a4b-4c3d-a2e1-%012x" % i),
        ("resource_name", "desktop-finance-%05d" % i),
        ("resource_type", "DESKTOP"),
        ("start_time", iso_ms(start)),
        ("end_time", iso_ms(start + 7250 + i % 1000)),
        ("status", "FAILED" if i % 10 == 7 else "SUCCESS"),
        ("execute_order", i % 5),
        ("command_content", "Get-ChildItem C:\\Users -Recurse | "
                            "Measure-Object -Property Length -Sum"),
        ("command_type", "POWERSHELL"),
        ("result_code", "1" if i % 10 == 7 else "0"),
        ("reason", "exit code 1" if i % 10 == 7 else None),
        ("output", ""),
    ])
    if size is None:
        doc["output"] = "Count : %d\r\n" % (i * 7)
        return harness.compact_json(doc)
    head = "Count    : %d\r\nSum      : %d\r\n" % (i * 7, i * 104729)
    doc["output"] = head
    base = len(harness.compact_json(doc))
    need = max(0, size - base)
    doc["output"] = head + (FILLER * (need // len(FILLER) + 1))[:need]
    return harness.compact_json(doc)


def hot_id(i):
    return "rec-%04d" % i


def miss_id(i):
    return "miss-%04d" % i


def tiny_id(i):
    return "tiny-%06d" % i


COALESCE_ID = "coal-0000"


def write_fixtures(path):
    """One file for both simulators: the hot records, the records fetched
    once for the miss cost, the coalescing record, and the small records
    that fill the caches for the memory cell."""
    records = {}
    for i in range(N_HOT):
        records[hot_id(i)] = {"raw": record_raw(hot_id(i), i, HOT_BYTES)
                              .decode()}
    for i in range(N_MISS):
        records[miss_id(i)] = {"raw": record_raw(miss_id(i), 10000 + i,
                                                 HOT_BYTES).decode()}
    records[COALESCE_ID] = {"raw": record_raw(COALESCE_ID, 20000,
                                              HOT_BYTES).decode()}
    for i in range(N_L1):
        records[tiny_id(i)] = {"raw": record_raw(tiny_id(i), 100000 + i,
                                                 None).decode()}
    with open(path, "w") as f:
        json.dump({"records": records}, f, separators=(",", ":"))
    return records


# --- processes and memory ----------------------------------------------------

def children_map():
    out = collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        fields = stat[stat.rfind(")") + 2:].split()
        out[int(fields[1])].append(int(name))
    return out


def process_tree(pid):
    """pid and all its descendants."""
    kids = children_map()
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, ()))
    return seen


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid):
    """VmRSS summed over a process and its descendants (recgate's parent
    and workers; nginx's master, workers and cache helpers)."""
    pids = process_tree(pid)
    return sum(vm_rss_kib(p) for p in pids), len(pids)


# --- HTTP clients ------------------------------------------------------------

class KeepAlive:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def get(self, path):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                   timeout=self.timeout)
        try:
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            body = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, resp.getheaders(), body
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def fetch_all(port, paths, threads, expect=None):
    """GETs every path once over `threads` keep-alive connections. Returns
    {"ok", "errors": Counter, "seconds", "mismatch"}; expect maps a path to
    the body it must have."""
    lock = threading.Lock()
    it = iter(paths)
    errors = collections.Counter()
    ok = [0]
    mismatch = [0]

    def worker():
        c = KeepAlive(port)
        try:
            while True:
                with lock:
                    path = next(it, None)
                if path is None:
                    return
                try:
                    status, _, body = c.get(path)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        errors[type(e).__name__] += 1
                    continue
                with lock:
                    if status != 200:
                        errors["HTTP %d" % status] += 1
                    else:
                        ok[0] += 1
                        if expect is not None and path in expect and \
                                body != expect[path]:
                            mismatch[0] += 1
        finally:
            c.close()

    started = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True)
            for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"ok": ok[0], "errors": errors, "mismatch": mismatch[0],
            "seconds": time.monotonic() - started}


def raw_response_size(port, path):
    """Bytes of one whole response (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n" % path).encode())
        total = 0
        while True:
            data = s.recv(65536)
            if not data:
                return total
            total += len(data)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


# --- wrk ---------------------------------------------------------------------

def to_ms(text):
    m = re.match(r"([\d.]+)\s*(us|ms|s|m)$", text.strip())
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(out):
    res = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None,
           "non2xx": 0, "socket_errors": 0, "bytes_per_s": None}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s*%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            res[key] = to_ms(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
        res["socket_detail"] = m.group(0)
    return res


def run_wrk(port, conns, duration, workdir, tag):
    argv = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % conns, "-d%ds" % duration,
            "--latency", "-s", IDS_LUA, "http://127.0.0.1:%d/" % port, "--",
            PROJECT_ID, str(N_HOT), "rec-"]
    log("wrk %s: %s" % (tag, " ".join(argv)))
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True,
                                timeout=duration + 60)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish within %ds" % (duration + 60))
    with open(os.path.join(workdir, "wrk-%s.txt" % tag), "w") as f:
        f.write(" ".join(argv) + "\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        raise BenchError("wrk exited %d: %s" % (result.returncode,
                                                result.stderr.strip()))
    res = parse_wrk(result.stdout)
    if res["rps"] is None:
        raise BenchError("no Requests/sec in wrk's output:\n" + result.stdout)
    return res


# --- the systems under test --------------------------------------------------

class System:
    key = name = upstream_label = ""
    kind = ""
    proc = None
    port = None
    upstream = None       # a harness.Sim, or None
    cells = ()

    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss(self):
        return tree_rss_kib(self.pid())


def wait_port(port, proc, timeout=10):
    def ready():
        if proc.poll() is not None:
            return True
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False
    harness.wait_for(ready, timeout)
    return proc.poll() is None


class RecgateSystem(System):
    kind = "recgate"

    def __init__(self, workdir, redis, sim, pki, workers, level):
        self.key = "rg-w%d-%s" % (workers, level)
        self.name = "recgate workers=%d log=%s" % (workers, level)
        self.upstream = sim
        self.upstream_label = "sim_nodelay.py: sim.py, checks signatures"
        self.workers = workers
        self.level = level
        self.cells = ("hit", "miss", "coalesce", "idle", "l1") \
            if level == "info" else ("hit", "miss", "coalesce")
        cfg = {
            "server.listen": None,
            "server.workers": str(workers),
            "upstream.endpoint": sim.endpoint,
            "upstream.ca_file": pki.ca_cert,
            "upstream.timeout": "5s",
            # The benchmark measures recgate, not the cloud's quota.
            "upstream.rate": "100000",
            "upstream.burst": "100000",
            "upstream.keepalive": "32",
            "credentials.ak": harness.TEST_AK,
            "credentials.sk": harness.TEST_SK,
            "redis.url": redis.url,
            "redis.key_prefix": "bench-%s:" % self.key,
            "cache.ttl": "7d",
            "cache.l1_bytes": "2GiB",
            "log.level": level,
        }
        last = ""
        for _ in range(4):
            self.port = harness.free_port()
            cfg["server.listen"] = "127.0.0.1:%d" % self.port
            try:
                self.gw = harness.Recgate(workdir, cfg, binary=RECGATE_BIN,
                                          wait=True)
            except (AssertionError, RuntimeError) as e:
                last = str(e)
                if "in use" in last.lower():
                    continue
                raise BenchError("%s did not start: %s" % (self.name, last))
            self.proc = self.gw.proc
            self.log_path = self.gw.log_path
            return
        raise BenchError("%s did not start: %s" % (self.name, last))

    def stop(self):
        try:
            self.gw.stop()
            return None
        except AssertionError as e:
            return str(e).splitlines()[0]

    def metrics(self):
        try:
            return self.gw.metrics()
        except (OSError, AssertionError, http.client.HTTPException):
            return {}

    def log_levels(self):
        counts = collections.Counter()
        for line in self.gw.log_lines():
            counts[line.get("level", "?")] += 1
        return counts


class NginxSystem(System):
    kind = "nginx"
    key = "nginx"
    name = "nginx (proxy_cache)"
    cells = ("hit", "miss", "coalesce", "idle", "l1")

    def __init__(self, workdir, open_sim, pki):
        self.upstream = open_sim
        self.upstream_label = "open_sim.py: sim.py, no signature check"
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "cache"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "temp"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.log_path = os.path.join(self.dir, "error.log")
        last = ""
        for _ in range(4):
            self.port = harness.free_port()
            with open(self.conf, "w") as f:
                f.write(self.config_text(open_sim.port, pki.ca_cert))
            check = subprocess.run(["nginx", "-t", "-q", "-p", self.dir,
                                    "-e", self.log_path, "-c", self.conf],
                                   capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL)
            if check.returncode != 0:
                raise BenchError("nginx -t refused the config: " +
                                 check.stderr.strip())
            self.proc = harness.spawn(["nginx", "-p", self.dir, "-e",
                                       self.log_path, "-c", self.conf],
                                      os.path.join(self.dir, "stderr.log"))
            if wait_port(self.port, self.proc):
                return
            harness.terminate(self.proc)
            last = harness.tail(self.log_path, 10)
            if "in use" not in last:
                break
        raise BenchError("nginx did not start:\n" + last)

    def config_text(self, upstream_port, ca):
        d = self.dir
        user = "user root;\n" if os.geteuid() == 0 else ""
        # As many descriptors as this process may have: run.sh raised it.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return """# Written by tests/bench/bench.py: nginx as a caching reverse
# proxy in front of the Workspace simulator, for the benchmark.
%(user)sdaemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile %(nofile)d;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;

events {
    worker_connections %(conns)d;
}

http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/temp/body;
    proxy_temp_path %(d)s/temp/proxy;
    fastcgi_temp_path %(d)s/temp/fastcgi;
    uwsgi_temp_path %(d)s/temp/uwsgi;
    scgi_temp_path %(d)s/temp/scgi;

    # recgate's front end has no per-connection request limit.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    proxy_cache_path %(d)s/cache levels=1:2 keys_zone=records:64m
                     max_size=8g inactive=7d use_temp_path=off;

    upstream workspace {
        server 127.0.0.1:%(up)d;
        keepalive 32;
    }

    server {
        listen 127.0.0.1:%(port)d;

        location / {
            proxy_pass https://workspace;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate %(ca)s;
            proxy_ssl_session_reuse on;

            proxy_cache records;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_cache_valid 200 7d;
            add_header X-Cache $upstream_cache_status;
        }
    }
}
""" % {"user": user, "d": d, "up": upstream_port, "port": self.port,
       "ca": ca, "nofile": nofile, "conns": max(1024, nofile - 512)}

    def stop(self):
        code, killed = harness.terminate(self.proc)
        if killed:
            return "nginx did not stop within %ds" % harness.STOP_TIMEOUT_S
        return None

    def log_levels(self):
        """Counts of the error log's lines by level ([warn], [error] ...)."""
        counts = collections.Counter()
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    m = re.search(r"\[(\w+)\]", line)
                    if m:
                        counts[m.group(1)] += 1
        except OSError:
            pass
        return counts


class BareSystem(System):
    """The ceiling of the library: evhttp answering from memory. With
    changelist, its event loop uses libevent's epoll change list, as
    recgate's does: the library as recgate configures it."""
    kind = "bare"
    upstream_label = "none (one fixed body in memory)"

    def __init__(self, workdir, body_file, changelist=False):
        self.key = "bare_cl" if changelist else "bare"
        self.name = "bare evhttp, change list" if changelist \
            else "bare evhttp"
        self.cells = ("hit",) if changelist else ("hit", "idle")
        self.dir = os.path.join(workdir, self.key)
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "stderr.log")
        if not BARE_BIN or not os.access(BARE_BIN, os.X_OK):
            raise BenchError("BARE_BIN is not an executable (%r)" % BARE_BIN)
        argv_tail = [body_file] + (["--changelist"] if changelist else [])
        for _ in range(4):
            self.port = harness.free_port()
            self.proc = harness.spawn([BARE_BIN, str(self.port)] + argv_tail,
                                      self.log_path)
            if wait_port(self.port, self.proc):
                return
            harness.terminate(self.proc)
        raise BenchError("bare evhttp did not start:\n" +
                         harness.tail(self.log_path, 10))

    def stop(self):
        code, killed = harness.terminate(self.proc)
        return "exited %s" % code if killed or code not in (0, -15) else None


# --- cells -------------------------------------------------------------------

def median_round(results):
    """The round with the median rps of a cell's rounds, with the non-2xx
    and socket error counts of all of them; None when no round ran."""
    ran = sorted((x for x in results if x and x.get("rps") is not None),
                 key=lambda x: x["rps"])
    if not ran:
        return None
    kept = dict(ran[len(ran) // 2])
    kept["non2xx"] = sum(x["non2xx"] for x in ran)
    kept["socket_errors"] = sum(x["socket_errors"] for x in ran)
    kept["rounds"] = [x["rps"] for x in ran]
    return kept


def upstream_requests(system):
    return system.upstream.stats()["requests"] if system.upstream else 0


def warm(system, records):
    """Every hot record fetched once through the system; for recgate, the
    answer must be the fixture's bytes (the fixtures are in normalized
    form)."""
    paths = [harness.record_path(hot_id(i)) for i in range(N_HOT)]
    expect = {harness.record_path(hot_id(i)): records[hot_id(i)]["raw"]
              .encode() for i in range(N_HOT)}
    before = upstream_requests(system)
    res = fetch_all(system.port, paths, 8, expect)
    res["upstream"] = upstream_requests(system) - before
    if res["ok"] != N_HOT:
        raise BenchError("warming %s: %d of %d answered 200 (%s)" % (
            system.name, res["ok"], N_HOT, dict(res["errors"])))
    return res


def cell_miss(system):
    """N distinct uncached finished records, one after another on one
    keep-alive connection, each fetched once."""
    before = upstream_requests(system)
    c = KeepAlive(system.port)
    times, errors = [], collections.Counter()
    try:
        for i in range(N_MISS):
            t0 = time.perf_counter()
            try:
                status, _, _ = c.get(harness.record_path(miss_id(i)))
            except (OSError, http.client.HTTPException) as e:
                errors[type(e).__name__] += 1
                continue
            times.append((time.perf_counter() - t0) * 1e3)
            if status != 200:
                errors["HTTP %d" % status] += 1
    finally:
        c.close()
    return {"mean_ms": sum(times) / len(times) if times else None,
            "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "n": N_MISS, "errors": errors,
            "upstream": upstream_requests(system) - before}


def cell_coalesce(system):
    """N_COALESCE clients, each on its own connection, ask at the same
    moment for one record that no cache holds; the upstream answers it
    after COALESCE_LATENCY_MS."""
    sim = system.upstream
    sim.fault(kind="latency", ms=COALESCE_LATENCY_MS, record=COALESCE_ID)
    before = sim.stats()["by_record"].get(COALESCE_ID, 0)
    path = harness.record_path(COALESCE_ID)
    barrier = threading.Barrier(N_COALESCE + 1)
    statuses = collections.Counter()
    times = []
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", system.port,
                                          timeout=30)
        try:
            try:
                conn.connect()
            finally:
                barrier.wait(30)
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            with lock:
                statuses[str(resp.status)] += 1
                times.append((time.perf_counter() - t0) * 1e3)
        except (OSError, http.client.HTTPException,
                threading.BrokenBarrierError) as e:
            with lock:
                statuses[type(e).__name__] += 1
        finally:
            conn.close()

    pool = [threading.Thread(target=client, daemon=True)
            for _ in range(N_COALESCE)]
    try:
        for t in pool:
            t.start()
        barrier.wait(30)
        for t in pool:
            t.join(60)
    finally:
        sim.clear_faults()
    return {"upstream": sim.stats()["by_record"].get(COALESCE_ID, 0) - before,
            "statuses": statuses, "max_ms": max(times) if times else None,
            "p50_ms": percentile(times, 50)}


def read_response(sock):
    """Reads one HTTP response with a Content-Length from a blocking
    socket; returns the status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status


def cell_idle(system):
    """RSS with N_IDLE idle keep-alive connections: each opens, asks for one
    cached record, reads the answer and then holds the connection."""
    rss_before, _ = system.rss()
    socks, errors = [], collections.Counter()
    lock = threading.Lock()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
           % harness.record_path(hot_id(0))).encode()

    def open_one(_):
        s = None
        try:
            s = socket.create_connection(("127.0.0.1", system.port), 10)
            s.sendall(req)
            status = read_response(s)
            with lock:
                socks.append(s)
                if status != 200:
                    errors["HTTP %d" % status] += 1
        except (OSError, ValueError, IndexError) as e:
            with lock:
                errors[type(e).__name__ + ": " + str(e)[:60]] += 1
            if s is not None:
                s.close()

    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            list(pool.map(open_one, range(N_IDLE)))
        opened = time.monotonic() - started
        time.sleep(1.0)
        rss_after, nprocs = system.rss()
        # Still open? A closed connection reads as EOF, an open and idle
        # one has nothing to read.
        alive = 0
        for s in socks:
            try:
                s.setblocking(False)
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    errors["closed by the server while idle"] += 1
                else:
                    errors["unexpected bytes while idle"] += 1
            except BlockingIOError:
                alive += 1
            except OSError as e:
                errors[type(e).__name__] += 1
    finally:
        for s in socks:
            s.close()
    return {"rss_before_kib": rss_before, "rss_kib": rss_after,
            "processes": nprocs, "alive": alive, "n": N_IDLE,
            "open_seconds": opened, "errors": errors}


def cell_l1(system):
    """RSS after N_L1 small records, each fetched once, sit in the cache
    (recgate: L1 of the worker that fetched it; nginx: its cache, keys in
    shared memory, bodies in files)."""
    paths = [harness.record_path(tiny_id(i)) for i in range(N_L1)]
    before = upstream_requests(system)
    rss_before, _ = system.rss()
    res = fetch_all(system.port, paths, FILL_THREADS)
    time.sleep(1.0)
    res["rss_kib"], res["processes"] = system.rss()
    res["rss_before_kib"] = rss_before
    res["bytes_per_record"] = (res["rss_kib"] - rss_before) * 1024.0 / N_L1
    res["upstream"] = upstream_requests(system) - before
    res["n"] = N_L1
    if system.kind == "recgate":
        res["l1_bytes"] = system.metrics().get("recgate_l1_bytes")
    return res


# --- the report --------------------------------------------------------------

def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem": mem,
            "kernel": platform.release()}


def source_state():
    """The commit recgate was built from, and whether its sources had
    uncommitted changes."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", SOURCE_DIR] + list(args),
                                  capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "src", "include",
                "CMakeLists.txt")
    return head + (" + uncommitted changes in src/" if dirty else "")


def tool_versions():
    def first_line(argv, pattern=None):
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (r.stdout + r.stderr).strip()
        if pattern:
            m = re.search(pattern, text)
            return m.group(1) if m else "?"
        return text.splitlines()[0] if text else "?"
    return {
        "nginx": first_line(["nginx", "-v"], r"nginx/(\S+)"),
        "wrk": first_line(["wrk", "--version"], r"wrk (\S+)"),
        "redis": first_line(["redis-server", "--version"], r"v=(\S+)"),
        "libevent": first_line(["pkg-config", "--modversion", "libevent"]),
        "recgate": first_line([RECGATE_BIN, "--version"]) +
        " (git %s)" % source_state(),
        "python": platform.python_version(),
    }


def sanitized(path):
    """Whether a binary was built with AddressSanitizer."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def fmt_num(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def fmt_ms(v):
    if v is None:
        return "—"
    if v < 1:
        return "%.3f ms" % v
    if v < 10:
        return "%.2f ms" % v
    return "%.1f ms" % v


def fmt_mib(kib):
    return "—" if kib is None else "%.1f MiB" % (kib / 1024.0)


class Table:
    """Rows of figures per system; a recgate figure is shown with its
    ratio to nginx's figure from the same run."""

    def __init__(self, systems):
        self.systems = systems
        self.rows = []

    def add(self, label, values, fmt, ratio=True):
        """values: {system key: number or None}; fmt: number -> text."""
        self.rows.append((label, values, fmt, ratio))

    def add_text(self, label, texts):
        self.rows.append((label, texts, None, False))

    def cell(self, system, values, fmt, ratio):
        v = values.get(system.key)
        if fmt is None:
            return v if v is not None else "—"
        if v is None:
            return "—"
        text = fmt(v)
        ref = values.get("nginx")
        if ratio and system.kind == "recgate" and ref:
            text += " (%.2f×)" % (v / ref)
        return text

    def markdown(self):
        head = ["cell"] + [s.name for s in self.systems]
        out = ["| " + " | ".join(head) + " |",
               "|" + "---|" * len(head)]
        for label, values, fmt, ratio in self.rows:
            cells = [label] + [str(self.cell(s, values, fmt, ratio))
                               .replace("|", "/") for s in self.systems]
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join(out)


def build_report(ctx):
    systems = ctx["systems"]
    r = ctx["results"]
    t = Table(systems)

    def pick(cell, field):
        return {s.key: (r.get(s.key, {}).get(cell) or {}).get(field)
                for s in systems}

    t.add_text("upstream", {s.key: s.upstream_label for s in systems})
    t.add("response bytes (headers + body)", pick("size", "bytes"),
          fmt_num, ratio=False)
    for c in CONNS:
        t.add("hit rps, %d conns" % c, pick("hit%d" % c, "rps"), fmt_num)
        t.add("hit p50, %d conns" % c, pick("hit%d" % c, "p50_ms"), fmt_ms)
        t.add("hit p99, %d conns" % c, pick("hit%d" % c, "p99_ms"), fmt_ms)
        if ROUNDS > 1:
            t.add_text("hit rps of the %d rounds, %d conns" % (ROUNDS, c), {
                s.key: " / ".join(fmt_num(x) for x in h["rounds"])
                for s in systems
                for h in [r.get(s.key, {}).get("hit%d" % c)] if h})
    errs = {}
    for s in systems:
        cells = [r.get(s.key, {}).get("hit%d" % c) for c in CONNS]
        if all(x is None for x in cells):
            continue
        errs[s.key] = "%d / %d" % (
            sum(x["non2xx"] for x in cells if x),
            sum(x["socket_errors"] for x in cells if x))
    t.add_text("hit non-2xx / socket errors (both cells)", errs)
    t.add("miss: time per miss (mean, %d sequential)" % N_MISS,
          pick("miss", "mean_ms"), fmt_ms)
    t.add("miss: p99", pick("miss", "p99_ms"), fmt_ms)
    t.add("miss: upstream requests (expect %d)" % N_MISS,
          pick("miss", "upstream"), fmt_num, ratio=False)
    t.add("coalescing: upstream requests for %d concurrent clients "
          "(%d ms upstream)" % (N_COALESCE, COALESCE_LATENCY_MS),
          pick("coalesce", "upstream"), fmt_num, ratio=False)
    t.add("coalescing: slowest client", pick("coalesce", "max_ms"), fmt_ms)
    t.add("RSS after warm-up (%d records cached)" % N_HOT,
          {s.key: r.get(s.key, {}).get("rss_hit_start") for s in systems},
          fmt_mib)
    t.add("RSS after the hit cells",
          {s.key: r[s.key]["rss_hit_start"] + r[s.key]["rss_growth_kib"]
           if r.get(s.key, {}).get("rss_growth_kib") is not None else None
           for s in systems}, fmt_mib)
    t.add("RSS with %s idle keep-alive conns" % "{:,}".format(N_IDLE),
          pick("idle", "rss_kib"), fmt_mib)
    alive = {s.key: "%d / %d" % (r[s.key]["idle"]["alive"], N_IDLE)
             for s in systems if r.get(s.key, {}).get("idle")}
    t.add_text("idle conns still open at the end", alive)
    t.add("RSS after %s more records cached" % "{:,}".format(N_L1),
          pick("l1", "rss_kib"), fmt_mib)
    t.add("RSS growth per cached record (bytes)",
          pick("l1", "bytes_per_record"), fmt_num)
    t.add("recgate_l1_bytes after the fill",
          {s.key: (r[s.key]["l1"].get("l1_bytes") or 0) / 1024.0
           if r.get(s.key, {}).get("l1") and s.kind == "recgate" else None
           for s in systems}, fmt_mib, ratio=False)
    t.add("fill rate of those records (req/s, %d clients)" % FILL_THREADS,
          {s.key: (r[s.key]["l1"]["ok"] / r[s.key]["l1"]["seconds"])
           if r.get(s.key, {}).get("l1") else None for s in systems},
          fmt_num)
    return t


def findings(ctx):
    """Anything that looked wrong, one line each."""
    out = list(ctx["problems"])
    r = ctx["results"]
    for s in ctx["systems"]:
        res = r.get(s.key, {})
        for c in CONNS:
            h = res.get("hit%d" % c)
            if h and (h["non2xx"] or h["socket_errors"]):
                out.append("%s, %d conns: %d non-2xx, %s" % (
                    s.name, c, h["non2xx"],
                    h.get("socket_detail", "no socket errors")))
        if res.get("hit_upstream"):
            out.append("%s: %d upstream requests during the hit cells "
                       "(expected 0)" % (s.name, res["hit_upstream"]))
        m = res.get("miss")
        if m:
            if m["errors"]:
                out.append("%s miss cell: %s" % (s.name, dict(m["errors"])))
            if m["upstream"] != N_MISS:
                out.append("%s miss cell: %d upstream requests for %d "
                           "misses" % (s.name, m["upstream"], N_MISS))
        co = res.get("coalesce")
        if co:
            bad = {k: v for k, v in co["statuses"].items() if k != "200"}
            if bad:
                out.append("%s coalescing: answers %s" % (s.name, bad))
            if co["upstream"] != 1:
                out.append("%s coalescing: %d upstream requests for one "
                           "record" % (s.name, co["upstream"]))
        idle = res.get("idle")
        if idle and (idle["errors"] or idle["alive"] != N_IDLE):
            out.append("%s idle cell: %d of %d still open; %s" % (
                s.name, idle["alive"], N_IDLE, dict(idle["errors"])))
        l1 = res.get("l1")
        if l1:
            if l1["errors"] or l1["ok"] != N_L1:
                out.append("%s cache fill: %d of %d answered 200; %s" % (
                    s.name, l1["ok"], N_L1, dict(l1["errors"])))
            if l1["upstream"] != N_L1:
                out.append("%s cache fill: %d upstream requests for %d new "
                           "records" % (s.name, l1["upstream"], N_L1))
        w = res.get("warm")
        if w and w.get("mismatch"):
            out.append("%s: %d warm answers differ from the fixture bytes" % (
                s.name, w["mismatch"]))
        # Allowance: with two workers, the second one fills its own L1
        # with the hot records during the hit cells.
        allowance = 4096 * getattr(s, "workers", 1)
        if (res.get("rss_growth_kib") or 0) > allowance:
            out.append("%s: RSS grew by %.1f MiB during the hit cells" % (
                s.name, res["rss_growth_kib"] / 1024.0))
        codes = res.get("codes")
        if codes:
            bad = {k: v for k, v in codes.items() if not k.startswith("2")}
            if bad:
                out.append("%s /metrics: non-2xx answers %s" % (s.name, bad))
        levels = res.get("log_levels") or {}
        bad = {k: v for k, v in levels.items()
               if k in ("warn", "error", "crit", "alert", "emerg")}
        if bad:
            out.append("%s log: %s (see %s)" % (
                s.name, ", ".join("%d %s" % (v, k) for k, v in bad.items()),
                res.get("log_path")))
        if res.get("stop_problem"):
            out.append("%s at stop: %s" % (s.name, res["stop_problem"]))
    return out


def status_codes(metrics):
    """recgate_requests_total summed by code."""
    out = collections.Counter()
    for name, value in metrics.items():
        if name.startswith("recgate_requests_total{"):
            m = re.search(r'code="(\d+)"', name)
            if m:
                out[m.group(1)] += int(value)
    return dict(out)


def targets(ctx):
    """The hit path's targets, each as a ratio from this run and whether
    it is met."""
    r = ctx["results"]

    def fig(key, c, field):
        return (r.get(key, {}).get("hit%d" % c) or {}).get(field)

    def line(what, mine, ref, want, higher=True):
        if not mine or not ref:
            return "%s: not measured" % what
        ratio = mine / ref
        met = ratio >= want if higher else ratio <= want
        return "%s: %.2f× (target %s %.1f×): %s" % (
            what, ratio, ">=" if higher else "<=", want,
            "met" if met else "NOT met")

    out = []
    for c in CONNS:
        out.append(line("workers=2 log=info hit rps ÷ nginx, %d conns" % c,
                        fig("rg-w2-info", c, "rps"), fig("nginx", c, "rps"),
                        1.0))
        out.append(line("workers=2 log=info hit p99 ÷ nginx, %d conns" % c,
                        fig("rg-w2-info", c, "p99_ms"),
                        fig("nginx", c, "p99_ms"), 1.0, higher=False))
    for c in CONNS:
        out.append(line("workers=1 log=info hit rps ÷ bare evhttp "
                        "(libevent's defaults), %d conns" % c,
                        fig("rg-w1-info", c, "rps"), fig("bare", c, "rps"),
                        0.9))
        out.append(line("workers=1 log=info hit rps ÷ bare evhttp with "
                        "the change list, %d conns" % c,
                        fig("rg-w1-info", c, "rps"),
                        fig("bare_cl", c, "rps"), 0.9))
    return out


def render(ctx):
    info, versions = ctx["machine"], ctx["versions"]
    lines = [
        "# recgate hit path beside nginx and bare evhttp",
        "",
        "- command: `%s`" % ctx["command"],
        "- date: %s; %s s per wrk cell (`wrk -t%d -d%ds --latency -s "
        "tests/bench/ids.lua`, %d hot record ids)%s" % (
            ctx["date"], DURATION, WRK_THREADS, DURATION, N_HOT,
            "; BENCH_SMOKE=1 (small counts, figures not meaningful)"
            if SMOKE else ""),
        "- machine: nproc %s, %s, %s memory, Linux %s; wrk, the servers, "
        "Redis and the simulators share these CPUs; load average %s at the "
        "start, %s at the end" % (
            info["nproc"], info["cpu"], info["mem"], info["kernel"],
            ctx["load_start"], ctx["load_end"]),
        "- versions: %s" % ", ".join("%s %s" % kv for kv in versions.items()),
        "- hit cells: %d rounds, each system's cell in every round; the "
        "round with the median rps is shown" % ROUNDS,
        "- ratio in brackets = recgate's figure ÷ nginx's from this run "
        "(higher is better for rps, lower for latency and memory)",
        "",
        ctx["table"].markdown(),
        "",
        "Targets (the issue's, from this run's figures):",
        "",
    ]
    lines += ["- " + t for t in targets(ctx)]
    lines += [
        "",
        "Findings:",
        "",
    ]
    if ctx.get("sanitized"):
        lines.append("- this recgate is built with AddressSanitizer: its "
                     "speed and memory figures are not meaningful")
    lines += ["- " + " ".join(f.split()) for f in ctx["findings"]] or \
        ["- none"]
    lines += ["", "How each cell is measured: tests/bench/README.md.", ""]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------

def on_term(signum, frame):
    raise SystemExit(128 + signum)


def start_sim(workdir, pki, fixtures, script):
    """The simulator through one of the benchmark's wrappers of sim.py
    (sim_nodelay.py, open_sim.py), started as the harness starts sim.py."""
    saved = harness.SIM_PY
    harness.SIM_PY = script
    try:
        return harness.Sim(workdir, pki, fixtures)
    finally:
        harness.SIM_PY = saved


def run_benchmark(workdir):
    ctx = {"command": os.environ.get("BENCH_COMMAND", " ".join(sys.argv)),
           "date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"),
           "machine": machine_info(), "versions": tool_versions(),
           "load_start": loadavg(), "problems": [], "results": {},
           "sanitized": sanitized(RECGATE_BIN),
           "systems": []}
    failed = False

    log("fixtures: %d hot, %d miss, 1 coalescing, %d small records" % (
        N_HOT, N_MISS, N_L1))
    fixtures = os.path.join(workdir, "fixtures.json")
    records = write_fixtures(fixtures)
    body_file = os.path.join(workdir, "hot-body.json")
    with open(body_file, "w") as f:
        f.write(records[hot_id(0)]["raw"])

    pki = harness.make_pki(os.path.join(workdir, "pki"))
    redis = harness.Redis(workdir)
    sim = start_sim(workdir, pki, fixtures, SIM_NODELAY_PY)
    open_sim = start_sim(os.path.join(workdir, "open"), pki, fixtures,
                         OPEN_SIM_PY)
    log("redis :%d, sim :%d, open sim :%d" % (redis.port, sim.port,
                                              open_sim.port))

    makers = [
        lambda: RecgateSystem(workdir, redis, sim, pki, 1, "info"),
        lambda: RecgateSystem(workdir, redis, sim, pki, 2, "info"),
        lambda: RecgateSystem(workdir, redis, sim, pki, 2, "warn"),
        lambda: NginxSystem(workdir, open_sim, pki),
        lambda: BareSystem(workdir, body_file),
        lambda: BareSystem(workdir, body_file, changelist=True),
    ]
    systems = []
    for make in makers:
        try:
            s = make()
        except BenchError as e:
            ctx["problems"].append("did not start: %s" % e)
            log("did not start: %s" % e)
            failed = True
            continue
        log("%s on :%d (pid %d)" % (s.name, s.port, s.pid()))
        systems.append(s)
        ctx["results"][s.key] = {"log_path": s.log_path}
    ctx["systems"] = systems
    r = ctx["results"]

    def attempt(system, what, fn):
        nonlocal failed
        if not system.alive():
            ctx["problems"].append("%s had exited before the %s cell" % (
                system.name, what))
            failed = True
            return None
        try:
            return fn()
        except (BenchError, OSError, http.client.HTTPException,
                RuntimeError) as e:
            ctx["problems"].append("%s, %s cell: %s" % (system.name, what, e))
            log("%s, %s cell failed: %s" % (system.name, what, e))
            failed = True
            return None

    # Warm: every hot record through each system once.
    for s in systems:
        if s.kind == "bare":
            continue
        log("warming %s" % s.name)
        r[s.key]["warm"] = attempt(s, "warm-up", lambda: warm(s, records))
    for s in systems:
        r[s.key]["size"] = attempt(s, "size", lambda: {
            "bytes": raw_response_size(s.port,
                                       harness.record_path(hot_id(1)))})

    # One short wrk pass through each system first: with several workers
    # each has its own in-process cache, which the one-connection warm-up
    # filled in only one of them; the others would fill theirs from Redis
    # during the first hit cell and measure that instead of the hit path.
    for s in systems:
        attempt(s, "pre-warm", lambda: run_wrk(
            s.port, CONNS[0], PREWARM_S, workdir, "%s-prewarm" % s.key))

    # Hit cells, interleaved so every system's cells are close in time.
    for s in systems:
        r[s.key]["rss_hit_start"] = s.rss()[0]
        r[s.key]["up_hit_start"] = upstream_requests(s)
    # Several rounds, each system's cell in every round, and the median
    # round kept: one 10-second cell on two shared cores can be 20% off.
    rounds = {}
    for n in range(ROUNDS):
        for c in CONNS:
            for s in systems:
                rounds.setdefault((s.key, c), []).append(attempt(
                    s, "hit %d" % c,
                    lambda: run_wrk(s.port, c, DURATION, workdir,
                                    "%s-c%d-r%d" % (s.key, c, n))))
                time.sleep(1)
    for (key, c), results in rounds.items():
        r[key]["hit%d" % c] = median_round(results)
    for s in systems:
        if s.alive():
            r[s.key]["rss_growth_kib"] = s.rss()[0] - r[s.key]["rss_hit_start"]
            r[s.key]["hit_upstream"] = upstream_requests(s) - \
                r[s.key]["up_hit_start"]

    for s in systems:
        if "miss" in s.cells:
            log("miss cost: %s" % s.name)
            r[s.key]["miss"] = attempt(s, "miss", lambda: cell_miss(s))
        if "coalesce" in s.cells:
            log("coalescing: %s" % s.name)
            r[s.key]["coalesce"] = attempt(s, "coalescing",
                                           lambda: cell_coalesce(s))
    for s in systems:
        if "idle" in s.cells:
            log("%d idle connections: %s" % (N_IDLE, s.name))
            r[s.key]["idle"] = attempt(s, "idle", lambda: cell_idle(s))
    for s in systems:
        if "l1" in s.cells:
            log("%d records into the cache: %s" % (N_L1, s.name))
            r[s.key]["l1"] = attempt(s, "cache fill", lambda: cell_l1(s))

    for s in systems:
        if s.kind == "recgate" and s.alive():
            r[s.key]["codes"] = status_codes(s.metrics())
    for s in systems:
        r[s.key]["stop_problem"] = s.stop()
        if s.kind in ("recgate", "nginx"):
            r[s.key]["log_levels"] = dict(s.log_levels())
    for name, proc in (("open sim", open_sim), ("sim", sim),
                       ("redis", redis)):
        proc.stop()

    ctx["load_end"] = loadavg()
    ctx["table"] = build_report(ctx)
    ctx["findings"] = findings(ctx)
    text = render(ctx)
    sys.stdout.write("\n" + text)
    sys.stdout.flush()
    out = os.environ.get("BENCH_RESULTS") or \
        (os.path.join(workdir, "results.md") if SMOKE
         else os.path.join(HERE, "results.md"))
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump({k: v for k, v in ctx["results"].items()}, f, indent=1,
                  default=str)
    log("results written to %s" % out)
    return 1 if failed else 0


# recgate is built without frame pointers (RelWithDebInfo): DWARF
# unwinding gives whole call chains.
CALL_GRAPH = os.environ.get("BENCH_CALL_GRAPH", "dwarf,16384")
PERF_FREQ = 999


def run_profile(workdir):
    """perf record -g of recgate (workers=1, log=info) serving hits under
    wrk; writes the summary to tests/bench/profile.txt (or
    BENCH_PROFILE_OUT)."""
    fixtures = os.path.join(workdir, "fixtures.json")
    global N_MISS, N_L1
    N_MISS, N_L1 = 0, 0
    records = write_fixtures(fixtures)
    pki = harness.make_pki(os.path.join(workdir, "pki"))
    redis = harness.Redis(workdir)
    sim = start_sim(workdir, pki, fixtures, SIM_NODELAY_PY)
    rg = RecgateSystem(workdir, redis, sim, pki, 1, "info")
    warm(rg, records)
    data = os.path.join(workdir, "perf.data")
    perf = subprocess.Popen(
        ["perf", "record", "-g", "--call-graph", CALL_GRAPH, "-F",
         str(PERF_FREQ),
         "-e", "cpu-clock", "-o", data, "-p", str(rg.pid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir,
                                                            "perf.log"), "w"))
    time.sleep(1)
    hit = run_wrk(rg.port, 64, DURATION, workdir, "profile")
    perf.send_signal(signal.SIGINT)
    perf.wait(60)
    rg.stop()
    sim.stop()
    redis.stop()

    sample_line = [""]

    def report(*extra):
        res = subprocess.run(["perf", "report", "-i", data, "--stdio",
                              "--percent-limit", "0.01", "-g", "none"]
                             + list(extra), capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=600)
        if res.returncode != 0:
            raise BenchError("perf report: " + res.stderr.strip())
        rows = []
        for line in res.stdout.splitlines():
            if line.startswith("# Samples:"):
                sample_line[0] = line[2:].strip()
            if not line.strip() or line.startswith("#"):
                continue
            # Drop the IPC columns, which a software clock leaves empty.
            rows.append(re.sub(r"(\s+-)+\s*$", "", line.rstrip()))
        return rows

    by_object = report("--no-children", "--sort", "dso")[:8]
    self_rows = report("--no-children", "--sort", "dso,symbol")[:15]
    children = report("--children", "--sort", "dso,symbol")
    own = [row for row in children if re.match(r"\s*[\d.]+%\s+[\d.]+%\s+"
                                               r"recgate\s", row)][:20]
    named = [row for row in children
             if not re.search(r"\] 0x[0-9a-f]+\s*$", row)][:25]
    text = "\n".join([
        "recgate hit path profile (tests/bench/run.sh profile)",
        "date: %s" % datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "machine: nproc %(nproc)s, %(cpu)s, %(mem)s, Linux %(kernel)s"
        % machine_info(),
        "binary: %s" % tool_versions()["recgate"],
        "recgate workers=1 log.level=info, all %d records in L1; load: "
        "wrk -t%d -c64 -d%ds --latency -s ids.lua (%s rps, p50 %s, p99 %s, "
        "%d non-2xx)" % (N_HOT, WRK_THREADS, DURATION, fmt_num(hit["rps"]),
                         fmt_ms(hit["p50_ms"]), fmt_ms(hit["p99_ms"]),
                         hit["non2xx"]),
        "sampler: perf record -g --call-graph %s -F %d -e cpu-clock -p "
        "<recgate pid> during the wrk run (software clock: no hardware "
        "counters here)%s" % (CALL_GRAPH, PERF_FREQ,
                              "; " + sample_line[0] if sample_line[0]
                              else ""),
        "Percentages are of the samples taken in the recgate process, "
        "kernel time included.",
        "",
        "By object (perf report --no-children --sort dso):",
        "",
    ] + by_object + [
        "",
        "Top 15 symbols by self cost (perf report --no-children "
        "--sort dso,symbol):",
        "",
    ] + self_rows + [
        "",
        "recgate's own functions by inclusive cost (perf report --children "
        "--sort dso,symbol; columns: with children, self):",
        "",
    ] + own + [
        "",
        "Top 25 named symbols by inclusive cost, any object (libevent's "
        "static functions show as bare addresses and are left out):",
        "",
    ] + named) + "\n"
    out = os.environ.get("BENCH_PROFILE_OUT") or \
        os.path.join(HERE, "profile.txt")
    with open(out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    log("profile written to %s" % out)
    return 0


def main():
    # run.sh starts this in its own process group; should run.sh itself be
    # killed outright, this goes too (and takes its children with it).
    if harness._prctl is not None:
        harness._prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    mode = sys.argv[1] if len(sys.argv) > 1 else "bench"
    if mode not in ("bench", "profile"):
        sys.stderr.write("usage: bench.py [bench|profile]\n")
        return 2
    if not os.access(RECGATE_BIN, os.X_OK):
        sys.stderr.write("bench: no recgate binary at %s\n" % RECGATE_BIN)
        return 1
    workdir = os.environ.get("BENCH_WORKDIR") or \
        tempfile.mkdtemp(prefix="recgate-hitbench-")
    os.makedirs(workdir, exist_ok=True)
    log("work directory %s" % workdir)
    try:
        if mode == "profile":
            return run_profile(workdir)
        return run_benchmark(workdir)
    except (BenchError, RuntimeError, AssertionError) as e:
        log("failed: %s" % e)
        return 1
    finally:
        harness._kill_leftovers()
        if not os.environ.get("BENCH_KEEP") and \
                not os.environ.get("BENCH_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("kept %s" % workdir)


if __name__ == "__main__":
    sys.exit(main())
