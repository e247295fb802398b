#!/usr/bin/env python3
"""Hostile-but-fair chaos run against a real crmscore binary on loopback (stdlib only; scripts/chaos.sh runs it).

Phases, bounded in time:
  idle      the server at rest: idle RSS
  quiet     small requests alone: their quiet p99
  storm     small requests while big ones (recommendations at the cap, large v2 and insights calls), slow-body
            clients and never-reading clients pile on: the small requests' p99 under the storm, peak RSS
  overload  a mix of tiny and 100-id requests offered at 2x the measured capacity, while a good snapshot, a bad
            snapshot and a new model version are dropped
  shutdown  SIGTERM under load: every request sent before the server said it is draining must be answered

It prints requests, errors by class, the small requests' p99 (quiet and storm), peak RSS, whether any acknowledged
request failed, and checks the targets: 0 unexpected failures; peak RSS <= 1.5 x idle RSS + body budget; storm p99
<= 3 x quiet p99.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

# Statuses the server may answer under pressure by design; anything else (500, a reset after the request was
# written, a truncated reply) is an unexpected failure.
EXPECTED = {
    408: "408 body timeout",
    413: "413 too large",
    503: "503 busy (Retry-After)",
    504: "504 deadline",
}


class Stats:
    """Thread-safe counters of one phase."""

    def __init__(self):
        self.lock = threading.Lock()
        self.classes = Counter()
        self.latencies = {}
        self.unexpected = []

    def record(self, kind, status, seconds=None, detail=""):
        with self.lock:
            if status is not None and 200 <= status < 300:
                self.classes["2xx"] += 1
                if seconds is not None:
                    self.latencies.setdefault(kind, []).append(seconds)
            elif status in EXPECTED:
                self.classes[EXPECTED[status]] += 1
            elif status == "refused":
                self.classes["connection refused (never sent)"] += 1
            else:
                label = f"{status}" if status is not None else "transport error"
                self.classes[f"UNEXPECTED {label}"] += 1
                if len(self.unexpected) < 20:
                    self.unexpected.append(f"{kind}: {label} {detail}"[:300])

    def p99_ms(self, kind):
        values = sorted(self.latencies.get(kind, []))
        if not values:
            return None
        return values[min(len(values) - 1, int(len(values) * 0.99))] * 1000


class Client:
    """One keep-alive HTTP connection; reconnects after an error or a `Connection: close`."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout, self.conn = port, timeout, None

    def call(self, method, path, body=None, headers=None):
        """Returns (status or 'refused' or None, seconds, draining, detail)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.connect()
            except ConnectionRefusedError:
                self.conn = None
                return "refused", 0.0, True, ""
            except OSError as e:
                self.conn = None
                return "refused", 0.0, True, str(e)
        started = time.perf_counter()
        try:
            hdrs = {"content-type": "application/json"}
            hdrs.update(headers or {})
            self.conn.request(method, path, body=body, headers=hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
            seconds = time.perf_counter() - started
            draining = (resp.getheader("connection") or "").lower() == "close"
            if draining:
                self.conn.close()
                self.conn = None
            if resp.status >= 500 and resp.status != 503 and resp.status != 504:
                return resp.status, seconds, draining, data[:200].decode(errors="replace")
            if resp.status == 503 and resp.getheader("retry-after") is None and b"shutting down" not in data:
                return "503 without Retry-After", seconds, draining, data[:200].decode(errors="replace")
            return resp.status, seconds, draining, ""
        except (http.client.HTTPException, OSError) as e:
            self.conn.close()
            self.conn = None
            return None, time.perf_counter() - started, False, repr(e)


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read() or b"{}")
    except (OSError, ValueError, http.client.HTTPException):
        return {}
    finally:
        conn.close()


def metric_sum(port, name):
    """The sum of every sample of a Prometheus metric (all label sets)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return 0.0
    finally:
        conn.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """Peak RSS of the server, overall and per phase (`phase` names the one running)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.phase, self.peaks = "idle", {}

    def run(self):
        while not self.stop.is_set():
            rss = rss_mb(self.pid)
            self.peak = max(self.peak, rss)
            self.peaks[self.phase] = round(max(self.peaks.get(self.phase, 0.0), rss), 1)
            time.sleep(0.02)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_ids():
    """The sample snapshot's customer ids (scripts/crm_data.py writes 'C%07d' from 0); a few may be unknown, which
    is a per-item error inside a 200 and changes nothing here."""
    return [f"C{n:07d}" for n in range(100_000)]


def loop(stop, port, stats, kind, make_body, path, method="POST", pause=0.0, honour_drain=False):
    client = Client(port)
    while not stop.is_set():
        status, seconds, draining, detail = client.call(method, path, make_body())
        stats.record(kind, status, seconds, detail)
        if honour_drain and (draining or status == "refused"):
            return
        if pause:
            time.sleep(pause)


def slow_body(stop, port, stats, size=2 << 20):
    """Sends headers and a Content-Length, then trickles the body; expects 408 (or 503 when over the budget)."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            stats.record("slow", "refused")
            return
        try:
            s.sendall(
                f"POST /v1/churn/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {size}\r\n\r\n".encode()
            )
            s.settimeout(0.5)
            reply = b""
            deadline = time.time() + 40
            while time.time() < deadline and not stop.is_set():
                try:
                    s.sendall(b"[" * 512)
                except OSError:
                    pass
                try:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                    if b"\r\n\r\n" in reply:
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            if not reply and stop.is_set():
                return  # the phase ended mid-trickle: nothing to judge
            status = int(reply.split()[1]) if reply.startswith(b"HTTP/1.1 ") else None
            stats.record("slow", status, detail="slow body")
        finally:
            s.close()


def never_reading(stop, port, stats, body):
    """Sends big requests and never reads the replies, holding the connection open a while."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            return
        try:
            req = (
                f"POST /v1/recommendations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            ).encode() + body
            for _ in range(4):
                s.sendall(req)
            stop.wait(5)
        except OSError:
            pass
        finally:
            s.close()
        stats.classes["never-reading connections"] += 1


def probe(port, seconds, pause=0.02):
    """Small requests from a process of their own (so the load generators' GIL does not time them); prints one
    JSON line: statuses and latencies."""
    client, rng, out = Client(port), random.Random(1), {"statuses": [], "seconds": []}
    ids = sample_ids()
    end = time.time() + seconds
    while time.time() < end:
        status, took, _, _ = client.call("POST", "/v1/churn/score", json.dumps({"customer_ids": [rng.choice(ids)]}))
        out["statuses"].append(status if isinstance(status, int) else None)
        out["seconds"].append(took)
        time.sleep(pause)
    print(json.dumps(out))


def start_probe(port, seconds):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe", str(port), str(seconds)],
                            stdout=subprocess.PIPE)


def finish_probe(proc, stats):
    out, _ = proc.communicate(timeout=120)
    result = json.loads(out.decode().strip().splitlines()[-1])
    for status, took in zip(result["statuses"], result["seconds"]):
        stats.record("small", status, took)


def oha_run(oha, port, seconds, bodies, rate=None):
    """One oha run over a body file (a random line per request); returns its JSON report."""
    cmd = [oha, "-z", f"{seconds}s", "-c", "64", "-w", "--no-tui", "--output-format", "json", "-m", "POST",
           "-T", "application/json", "-H", "x-request-timeout-ms: 250", "-t", "30s", "-Z", bodies,
           f"http://127.0.0.1:{port}/v1/churn/score"]
    if rate:
        cmd[1:1] = ["-q", str(int(rate))]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 120).stdout)


def record_oha(report, stats):
    for code, n in report["statusCodeDistribution"].items():
        for _ in range(n):
            stats.record("mix", int(code))
    for error, n in report["errorDistribution"].items():
        stats.classes[f"UNEXPECTED {error}"] += n
        if len(stats.unexpected) < 20:
            stats.unexpected.append(f"mix: {error} x{n}")


def run_threads(targets, seconds):
    stop = threading.Event()
    threads = [threading.Thread(target=t, args=(stop,) + a, daemon=True) for t, a in targets]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/crmscore")
    ap.add_argument("--seconds", type=float, default=10, help="length of the quiet, storm and overload phases")
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--out", default=None, help="write the summary as JSON here")
    ap.add_argument("--oha", default=None, help="oha binary for the overload phase (else Python, client-limited)")
    ap.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(int(args.probe[0]), float(args.probe[1]))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="crmscore-chaos-")
    models, snaps = os.path.join(work, "models"), os.path.join(work, "snapshots")
    shutil.copytree(os.path.join(repo, "models"), models)
    os.makedirs(snaps)
    sample = os.path.join(repo, "snapshots", "customers-sample.parquet")
    shutil.copy(sample, os.path.join(snaps, "customers-a.parquet"))
    port = free_port()
    budget = args.budget_mb << 20
    cmd = [
        os.path.join(repo, args.binary), "serve", "--bind", f"127.0.0.1:{port}", "--models", models,
        "--snapshots", snaps, "--state-dir", os.path.join(work, "state"), "--poll-ms", "500",
        "--policy", os.path.join(repo, "policies", "engagement.toml"), "--body-budget-bytes", str(budget),
        "--body-timeout-ms", "5000", "--shutdown-grace-ms", "2000", "--device", "cpu",
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"),
                              env={**os.environ, "RUST_LOG": "warn"})
    summary = {"command": " ".join(cmd[1:])}
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            status, *_ = Client(port, timeout=2).call("GET", "/v2/health/ready")
            if status == 200:
                break
            time.sleep(0.2)
        else:
            sys.exit("server not ready in 120 s")
        ids = sample_ids()
        rng = random.Random(7)
        one = lambda: json.dumps({"customer_ids": [rng.choice(ids)]})  # noqa: E731
        hundred = lambda: json.dumps({"customer_ids": rng.sample(ids, 100)})  # noqa: E731
        big_recs = json.dumps({"customer_ids": rng.sample(ids, 200), "k": 100}).encode()  # at the default cap
        big_insights = lambda: json.dumps({"customer_ids": rng.sample(ids, 2000)})  # noqa: E731
        v2_rows = json.dumps({"inputs": [{"name": "features", "shape": [300, 21], "datatype": "FP32",
                                          "data": [0.5] * 6300}]})
        for _ in range(50):
            Client(port).call("POST", "/v1/churn/score", hundred())

        time.sleep(2)
        idle = rss_mb(server.pid)
        sampler = RssSampler(server.pid)
        sampler.start()

        sampler.phase = "quiet"
        quiet = Stats()
        finish_probe(start_probe(port, args.seconds), quiet)

        sampler.phase = "storm"
        storm = Stats()
        prober = start_probe(port, args.seconds * 1.5)
        storm_targets = [(loop, (port, storm, "big", lambda: big_recs, "/v1/recommendations"))] * 2
        storm_targets += [(loop, (port, storm, "big", lambda: v2_rows, "/v2/models/recommendation/infer"))]
        storm_targets += [(loop, (port, storm, "big", big_insights, "/v1/insights"))]
        storm_targets += [(slow_body, (port, storm))] * 24
        storm_targets += [(never_reading, (port, storm, big_recs))] * 8
        run_threads(storm_targets, args.seconds * 1.5)
        finish_probe(prober, storm)

        # Capacity of the tiny/100-id mix, closed loop, then twice that offered open loop, while a good snapshot,
        # a bad snapshot and a new model version are dropped.
        sampler.phase = "overload"
        cap, overload = Stats(), Stats()
        mix = lambda: one() if rng.random() < 0.5 else hundred()  # noqa: E731
        bodies = os.path.join(work, "bodies.jsonl")
        with open(bodies, "w") as f:
            f.writelines(mix() + "\n" for _ in range(2000))

        def drops():
            time.sleep(args.seconds / 4)
            shutil.copy(sample, os.path.join(snaps, "customers-b.parquet"))  # a good drop
            time.sleep(args.seconds / 4)
            with open(os.path.join(snaps, "customers-c.parquet"), "wb") as f:  # a bad drop
                f.write(b"PAR1 this is not a parquet file PAR1")
            manifest = os.path.join(models, "churn", "model.toml")
            with open(manifest) as f:
                text = f.read()
            with open(manifest + ".tmp", "w") as f:
                f.write(text.replace('version = "1"', 'version = "2"'))
            os.replace(manifest + ".tmp", manifest)  # a model version swap

        dropper = threading.Thread(target=drops, daemon=True)
        rows0 = metric_sum(port, "crmscore_batch_size_sum")
        late0 = metric_sum(port, "crmscore_rows_inferred_late_total")
        expired0 = metric_sum(port, "crmscore_jobs_expired_total")
        if args.oha:
            report = oha_run(args.oha, port, 3, bodies)
            record_oha(report, cap)
            capacity = report["summary"]["requestsPerSec"]
            offered = 2 * capacity
            dropper.start()
            report = oha_run(args.oha, port, args.seconds, bodies, rate=offered)
            record_oha(report, overload)
            achieved = report["summary"]["requestsPerSec"]
        else:
            t0 = time.time()
            run_threads([(loop, (port, cap, "mix", mix, "/v1/churn/score"))] * 16, 3)
            capacity = cap.classes["2xx"] / (time.time() - t0)
            offered = 2 * capacity
            stop = threading.Event()

            def paced(stop, share):
                client = Client(port)
                interval, next_at = share / offered, time.perf_counter()
                while not stop.is_set():
                    now = time.perf_counter()
                    if now < next_at:
                        time.sleep(next_at - now)
                    next_at += interval
                    status, seconds, _, detail = client.call("POST", "/v1/churn/score", mix(),
                                                             {"x-request-timeout-ms": "250"})
                    overload.record("mix", status, seconds, detail)

            senders = 32
            threads = [threading.Thread(target=paced, args=(stop, senders), daemon=True) for _ in range(senders)]
            started = time.time()
            for t in threads:
                t.start()
            dropper.start()
            time.sleep(args.seconds)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            achieved = sum(overload.classes.values()) / (time.time() - started)
        dropper.join(timeout=60)
        rows = metric_sum(port, "crmscore_batch_size_sum") - rows0
        late = metric_sum(port, "crmscore_rows_inferred_late_total") - late0
        summary["overload_inference"] = {
            "rows_inferred": rows, "rows_inferred_for_gone_callers": late,
            "jobs_dropped_before_inference": metric_sum(port, "crmscore_jobs_expired_total") - expired0,
            "share_of_inference_on_answered_requests": round(1 - late / rows, 4) if rows else None,
        }
        # The drops are picked up by the watcher: wait (bounded) for the good snapshot, the refusal and version 2.
        until = time.time() + 20
        while True:
            snap, churn = get_json(port, "/v1/snapshot"), get_json(port, "/v2/models/churn")
            if (snap.get("version") == "customers-b.parquet" and snap.get("refused")
                    and churn.get("versions") == ["2"]) or time.time() > until:
                break
            time.sleep(0.2)
        summary["after_drops"] = {"snapshot": snap.get("version"),
                                  "refused": [str(r)[:160] for r in snap.get("refused") or []],
                                  "churn_versions": churn.get("versions")}

        # SIGTERM under load: clients stop once told the server is draining, as a load balancer would.
        sampler.phase = "shutdown"
        shutdown = Stats()
        stop = threading.Event()
        threads = [threading.Thread(target=loop, args=(stop, port, shutdown, "mix", mix, "/v1/churn/score",
                                                       "POST", 0.0, True), daemon=True) for _ in range(32)]
        for t in threads:
            t.start()
        time.sleep(1)
        server.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        code = server.wait(timeout=60)
        sampler.stop.set()
        peak = sampler.peak

        info = {}
        phases = {"quiet": quiet, "storm": storm, "capacity": cap, "overload": overload, "shutdown": shutdown}
        unexpected = sum(n for s in phases.values() for k, n in s.classes.items() if k.startswith("UNEXPECTED"))
        p99_quiet, p99_storm = quiet.p99_ms("small"), storm.p99_ms("small")
        rss_limit = 1.5 * idle + args.budget_mb
        summary.update({
            "requests": {k: sum(s.classes.values()) for k, s in phases.items()},
            "classes": {k: dict(s.classes) for k, s in phases.items()},
            "unexpected_examples": [u for s in phases.values() for u in s.unexpected],
            "capacity_rps": round(capacity), "offered_rps": round(offered), "sent_rps": round(achieved),
            "p99_small_quiet_ms": p99_quiet, "p99_small_storm_ms": p99_storm,
            "idle_rss_mb": round(idle, 1), "peak_rss_mb": round(peak, 1), "rss_limit_mb": round(rss_limit, 1),
            "peak_rss_mb_by_phase": sampler.peaks,
            "exit_code": code, "unexpected_failures": unexpected,
        })
        info["targets"] = {
            "0 unexpected failures": unexpected == 0,
            "peak RSS <= 1.5 x idle + budget": peak <= rss_limit,
            "storm p99 <= 3 x quiet p99": p99_quiet is not None and p99_storm is not None
            and p99_storm <= 3 * p99_quiet,
            "exit 0 after SIGTERM": code == 0,
        }
        summary.update(info)
    finally:
        if server.poll() is None:
            server.kill()
        log = os.path.join(work, "server.log")
        summary["server_log_tail"] = open(log).read().splitlines()[-5:] if os.path.exists(log) else []
        shutil.rmtree(work, ignore_errors=True)

    print(f"server: {summary['command']}")
    for phase, n in summary.get("requests", {}).items():
        classes = ", ".join(f"{k} {v}" for k, v in sorted(summary["classes"][phase].items()))
        print(f"  {phase:9s} {n:7d} requests: {classes}")
    print(f"  capacity {summary.get('capacity_rps')} req/s (tiny/100-id mix, closed loop); offered "
          f"{summary.get('offered_rps')} req/s, sent {summary.get('sent_rps')} req/s")
    print(f"  after the drops: {summary.get('after_drops')}")
    print(f"  overload inference: {summary.get('overload_inference')}")
    print(f"  small-request p99: quiet {summary.get('p99_small_quiet_ms'):.1f} ms, storm "
          f"{summary.get('p99_small_storm_ms'):.1f} ms")
    print(f"  RSS: idle {summary.get('idle_rss_mb')} MB, peak {summary.get('peak_rss_mb')} MB "
          f"(limit 1.5 x idle + {args.budget_mb} MB budget = {summary.get('rss_limit_mb')} MB); peak by phase "
          f"{summary.get('peak_rss_mb_by_phase')}")
    print(f"  acknowledged requests that failed: {summary.get('unexpected_failures')}; exit code after SIGTERM: "
          f"{summary.get('exit_code')}")
    for line in summary.get("unexpected_examples", []):
        print(f"    {line}")
    ok = True
    for target, met in summary.get("targets", {}).items():
        print(f"  target {'MET ' if met else 'MISSED'} {target}")
        ok &= met
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
