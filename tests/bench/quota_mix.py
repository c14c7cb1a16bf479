#!/usr/bin/env python3
"""How much of the cloud's quota a realistic mix of clients uses.

Starts a throwaway Redis, the Workspace simulator and a recgate with
server.workers = 2 (through tests/integration/harness.py), creates 100
records in the simulator (90 finished, 10 that stay RUNNING for ever), and
runs 50 client threads that each ask for random records of that mix, on
kept-alive connections, until 1,000 and then 10,000 client requests were
made.  At each checkpoint it prints:

  - upstream requests per 1,000 client requests;
  - upstream fetches of finished records vs distinct finished records
    (expected: one fetch per finished record, ever);
  - upstream reads of the running records;
  - the largest number of upstream requests in any 1-second window vs
    upstream.rate: exact per calendar second (by the X-Sdk-Date each
    request was signed with), and over sliding seconds from polling the
    simulator's counter every 20 ms; and the largest excess over
    rate x time in any stretch, which a token bucket keeps under its
    depth (upstream.burst);
  - client answers by status and X-Cache, and latency percentiles.

It is a measurement, not a test: it asserts nothing and always exits 0
unless something fails to start.

Run it from the repository root after `scripts/build.sh build`:

    RECGATE_BIN=$PWD/build/recgate python3 tests/bench/quota_mix.py

Options: --workers 2 --rate 20 --burst 20 --threads 50 --finished 90
--running 10 --checkpoints 1000,10000 --keep (leave the temp dir).
"""

import argparse
import collections
import http.client
import os
import random
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402

POLL_S = 0.02


class Poller:
    """Samples the simulator's request counter: [(start, end, count)],
    start and end being when the poll was sent and when its answer came
    back (monotonic)."""

    def __init__(self, sim):
        self.sim = sim
        self.samples = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                count = self.sim.stats()["requests"]
            except Exception:       # a measurement: keep going
                time.sleep(POLL_S)
                continue
            self.samples.append((started, time.monotonic(), count))
            time.sleep(POLL_S)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)

    def max_in_window(self, window=1.0):
        """The most upstream requests that certainly fell within some
        `window` seconds: between two polls whose outer bounds (first one
        sent, second one answered) are at most `window` apart.  A lower
        bound of the true peak (a slow poll only widens the span)."""
        s = list(self.samples)
        best, when = 0, 0.0
        t0 = s[0][0] if s else 0.0
        j = 0
        for i in range(len(s)):
            while s[i][1] - s[j][0] > window:
                j += 1
            n = s[i][2] - s[j][2]
            if n > best:
                best, when = n, s[j][0] - t0
        return best, when

    def max_excess(self, rate):
        """The largest number of upstream requests beyond rate x time in
        any stretch of the run, again with the stretch measured at its
        widest (a lower bound of the true excess).  A token bucket keeps
        it at or under its depth."""
        s = list(self.samples)
        best = 0.0
        for j in range(len(s)):
            for i in range(j + 1, len(s)):
                excess = (s[i][2] - s[j][2]) - rate * (s[i][1] - s[j][0])
                if excess > best:
                    best = excess
        return best


def per_second_by_sdk_date(sim):
    """Upstream requests per calendar second, by the X-Sdk-Date the
    gateway signed each one with (exact counts): {date: n}."""
    counts = collections.Counter()
    for req in sim.requests():
        for name, value in req["headers"]:
            if name.lower() == "x-sdk-date":
                counts[value] += 1
                break
    return counts


class Clients:
    """Client threads asking for random records until a target number of
    requests was made."""

    def __init__(self, gw, finished, running, threads):
        self.gw = gw
        self.records = finished + running
        self.running = set(running)
        self.n_threads = threads
        self.lock = threading.Lock()
        self.issued = 0
        self.target = 0
        self.results = []   # (record, status, x-cache, seconds, error)
        self.checkpoint = (0, 0)    # (client requests, upstream) last time

    def _take(self):
        with self.lock:
            if self.issued >= self.target:
                return False
            self.issued += 1
            return True

    def _run(self, seed):
        rnd = random.Random(seed)
        conn = None
        while self._take():
            rid = rnd.choice(self.records)
            if conn is None:
                conn = self.gw.connection(timeout=30)
            started = time.monotonic()
            status, cache, error = None, None, None
            try:
                status, headers, _ = harness.http_request(
                    conn, "GET", harness.record_path(rid))
                cache = headers.get("x-cache")
                if headers.get("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                error = type(e).__name__
                conn.close()
                conn = None
            took = time.monotonic() - started
            with self.lock:
                self.results.append((rid, status, cache, took, error))
        if conn is not None:
            conn.close()

    def run_until(self, target):
        self.target = target
        threads = [threading.Thread(target=self._run,
                                    args=(random.randrange(1 << 30),),
                                    daemon=True)
                   for _ in range(self.n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = int(round(p / 100.0 * (len(values) - 1)))
    k = min(len(values) - 1, max(0, k))
    return values[k]


def report(clients, sim, poller, finished, running, rate, started,
           gw):
    stats = sim.stats()
    results = list(clients.results)
    n = len(results)
    upstream = stats["requests"]
    by_record = stats["by_record"]
    fin_fetches = sum(by_record.get(r, 0) for r in finished)
    fin_fetched = sum(1 for r in finished if by_record.get(r, 0) > 0)
    fin_asked = len({r for r, *_ in results if r not in clients.running})
    fin_max = max((by_record.get(r, 0) for r in finished), default=0)
    run_reads = sum(by_record.get(r, 0) for r in running)
    run_asked = sum(1 for r, *_ in results if r in clients.running)
    peak, peak_at = poller.max_in_window(1.0)
    burst = int(gw.config.get("upstream.burst"))
    excess = poller.max_excess(rate)
    by_second = per_second_by_sdk_date(sim)
    second_peak = max(by_second.values(), default=0)
    second_at = max(by_second, key=by_second.get) if by_second else "-"
    elapsed = time.monotonic() - started
    statuses = collections.Counter(s if s is not None else e
                                   for _, s, _, _, e in results)
    caches = collections.Counter(c for _, s, c, _, _ in results
                                 if s == 200)
    lat = [t for *_, t, _ in results]
    metrics = gw.metrics()

    print("== after %d client requests (%.1f s)" % (n, elapsed))
    print("  upstream requests:                %d = %.1f per 1,000 client "
          "requests" % (upstream, 1000.0 * upstream / max(n, 1)))
    prev_n, prev_up = clients.checkpoint
    if prev_n:
        print("    since the previous checkpoint: %d upstream for %d client "
              "requests = %.1f per 1,000" % (
                  upstream - prev_up, n - prev_n,
                  1000.0 * (upstream - prev_up) / max(n - prev_n, 1)))
    clients.checkpoint = (n, upstream)
    twice = sorted(r for r in finished if by_record.get(r, 0) > 1)
    print("  finished records: %d upstream fetches for %d distinct finished "
          "records asked (%d fetched at least once, most fetches of one "
          "record: %d; expected 1 each)"
          % (fin_fetches, fin_asked, fin_fetched, fin_max))
    if twice:
        print("    fetched more than once: %s" % ", ".join(
            "%s x%d" % (r, by_record[r]) for r in twice))
    print("  running records:  %d upstream reads for %d client requests of "
          "%d running records" % (run_reads, run_asked, len(running)))
    print("  largest upstream rate in a 1-second window: %d in calendar "
          "second %s (by X-Sdk-Date); %d in a sliding second (polled, "
          "at +%.1f s) vs upstream.rate = %g/s, burst %d (a token bucket "
          "allows rate x 1 s + burst = %g)"
          % (second_peak, second_at, peak, peak_at, rate, burst,
             rate + burst))
    print("  largest excess over rate x time in any stretch: %.1f requests "
          "(bucket depth %d)" % (excess, burst))
    print("  average upstream rate: %.1f/s over %.1f s"
          % (upstream / max(elapsed, 1e-9), elapsed))
    print("  client answers: %s" % ", ".join(
        "%s: %d" % (k, v) for k, v in sorted(statuses.items(), key=str)))
    print("  200 by X-Cache: %s" % ", ".join(
        "%s: %d" % (k, v) for k, v in sorted(caches.items(), key=str)))
    print("  client latency: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, "
          "max %.1f ms" % (percentile(lat, 50) * 1e3,
                           percentile(lat, 95) * 1e3,
                           percentile(lat, 99) * 1e3,
                           max(lat, default=0) * 1e3))
    print("  gateway metrics: coalesced %d, rate limited %d, upstream by "
          "code %s" % (
              metrics.get("recgate_coalesced_total", 0),
              metrics.get("recgate_ratelimited_total", 0),
              {k.split('"')[1]: int(v) for k, v in metrics.items()
               if k.startswith("recgate_upstream_requests_total{")}))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--threads", type=int, default=50)
    ap.add_argument("--finished", type=int, default=90)
    ap.add_argument("--running", type=int, default=10)
    ap.add_argument("--checkpoints", default="1000,10000")
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    checkpoints = sorted(int(x) for x in args.checkpoints.split(","))

    workdir = tempfile.mkdtemp(prefix="recgate-bench-")
    redis = sim = gw = None
    try:
        pki = harness.make_pki(os.path.join(workdir, "pki"))
        redis = harness.Redis(workdir)
        sim = harness.Sim(workdir, pki)
        config = {
            "server.listen": "127.0.0.1:%d" % harness.free_port(),
            "server.workers": str(args.workers),
            "upstream.endpoint": sim.endpoint,
            "upstream.ca_file": pki.ca_cert,
            "upstream.rate": "%g" % args.rate,
            "upstream.burst": str(args.burst),
            "credentials.ak": harness.TEST_AK,
            "credentials.sk": harness.TEST_SK,
            "redis.url": redis.url,
            "cache.ttl": "1h",
            "log.level": args.log_level,
        }
        gw = harness.Recgate(workdir, config)

        finished_base = harness.load_fixture("rec-success-1")
        running_base = harness.load_fixture("rec-stuck-1")
        finished = ["bench-fin-%03d" % i for i in range(args.finished)]
        running = ["bench-run-%03d" % i for i in range(args.running)]
        for rid in finished:
            sim.put_record(rid, body=dict(finished_base, id=rid))
        for rid in running:
            sim.put_record(rid, body=dict(running_base, id=rid),
                           running_reads=10 ** 9)

        print("work dir %s" % workdir)
        print("recgate %s, workers %d, upstream.rate %g, burst %d; %d client "
              "threads; %d finished + %d running records"
              % (gw.binary, args.workers, args.rate, args.burst,
                 args.threads, args.finished, args.running))
        clients = Clients(gw, finished, running, args.threads)
        poller = Poller(sim).start()
        started = time.monotonic()
        for target in checkpoints:
            clients.run_until(target)
            report(clients, sim, poller, finished, running, args.rate,
                   started, gw)
        poller.stop()
    finally:
        if gw is not None:
            try:
                gw.stop()
            except AssertionError as e:
                print("recgate did not stop cleanly: %s" % e)
        if sim is not None:
            sim.stop()
        if redis is not None:
            redis.stop()
        if args.keep:
            print("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
