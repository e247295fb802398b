#!/usr/bin/env bash
# Snapshot load cost: crmscore against pyarrow on the same file, in the same run (medians of $RUNS).
#
#   scripts/load-bench.sh [CUSTOMERS]        default 10000000; prints a markdown table
#
# 1. Generates a CUSTOMERS-row snapshot once with the project's generator (scripts/train_models.py --snapshot-only:
#    crm_data, seed 43, row groups of 16384) into $BENCH_DIR (default /work/bench-data, else .bench).
# 2. Times, $RUNS times each (default 3), reporting the median:
#      pyarrow   pq.read_table(file, columns=<the 23 columns the server reads>): wall and CPU seconds of the call
#                (resource.getrusage around it), peak RSS of the process
#      check     crmscore check-snapshot FILE (/usr/bin/time -v: wall, user + sys, peak RSS)
#      server    crmscore serve on a folder holding FILE: the load-and-swap seconds the server logs, the CPU
#                seconds the process spent in it, peak RSS during the load (VmHWM) and RSS served after it
#                (VmRSS, 2 s after the swap); then a second copy of the file is dropped into the folder while the
#                first is served, and the swap's peak (old + new snapshot, VmHWM reset before the drop) and its
#                seconds are read the same way
#      idle      crmscore serve on an empty folder: RSS without a snapshot (models, runtime), so that
#                bytes per customer served = (served RSS - idle RSS) / CUSTOMERS
#
# Environment: CRMSCORE_BIN (default target/release/crmscore; `cargo build --release` first), PYTHON (default
# .venv-dataeng/bin/python), BENCH_DIR, RUNS, PORT (default 18080).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/lib-bench.sh
default_bench=/work/bench-data
[[ -d "$default_bench" ]] || default_bench="$root/.bench"
bench_setup load-bench "$default_bench" "$@"
runs="${RUNS:-3}"
port="${PORT:-18080}"
snapshot="$bench/customers-$customers.parquet"
bench_snapshot "$snapshot"
# Warm the page cache so that every contender reads the file from memory.
cat "$snapshot" >/dev/null

exec "$py" - "$bin" "$snapshot" "$customers" "$runs" "$port" <<'PY'
import json, os, re, resource, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

binary, snapshot, customers, runs, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
root = os.getcwd()
env = dict(os.environ, ORT_DYLIB_PATH=os.path.join(root, ".onnxruntime/lib/libonnxruntime.so"))
tick = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(f"[load-bench] {msg}", file=sys.stderr, flush=True)


def server_columns():
    """The columns the server reads: customer_id, every model's features, the recommender's owned-items column."""
    out = subprocess.run([binary, "check-snapshot", snapshot], capture_output=True, text=True, env=env).stdout
    # The feature table's rows: a column name, then its Arrow type (Int16, Float64, ...).
    feats = [line.split()[0] for line in out.splitlines()
             if re.match(r"^\S+\s+(U?Int\d+|Float\d+|Boolean)\s", line)]
    owned = [m.group(1) for m in re.finditer(r"^owned\s+(\S+):", out, re.M)]
    if not feats:
        raise SystemExit(f"no feature columns found in check-snapshot's report:\n{out}")
    return ["customer_id", *feats, *owned]


COLUMNS = server_columns()
say(f"{len(COLUMNS)} columns: {', '.join(COLUMNS)}")

PYARROW = r"""
import json, resource, sys, time
import pyarrow.parquet as pq
path, columns = sys.argv[1], json.loads(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, t0 = cpu(), time.perf_counter()
table = pq.read_table(path, columns=columns)
t1, c1 = time.perf_counter(), cpu()
print(json.dumps({"wall": t1 - t0, "cpu": c1 - c0, "rows": table.num_rows,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def pyarrow_run():
    out = subprocess.run([sys.executable, "-c", PYARROW, snapshot, json.dumps(COLUMNS)], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    assert r["rows"] == customers, r
    return r


def time_v(cmd):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", t.name, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        text = t.read()
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
    field = lambda name: float(re.search(rf"{name}: ([\d.]+)", text).group(1))
    return {"wall": wall, "cpu": field(r"User time \(seconds\)") + field(r"System time \(seconds\)"),
            "peak_mb": field(r"Maximum resident set size \(kbytes\)") / 1024, "out": p.stdout}


def check_run():
    r = time_v([binary, "check-snapshot", snapshot])
    assert f"rows     {customers}" in r["out"] and "verdict  OK" in r["out"], r["out"]
    return r


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


class Server:
    def __init__(self, folder):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")
        self.proc = subprocess.Popen(
            [binary, "--log-format", "json", "serve", "--snapshots", folder, "--bind", f"127.0.0.1:{port}",
             "--state-dir", "", "--poll-ms", "100"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=root)

    def swaps(self):
        self.log.flush()
        with open(self.log.name) as f:
            lines = [json.loads(l) for l in f if l.startswith("{")]
        return [l.get("fields", l) for l in lines if "snapshot swapped in" in json.dumps(l)]

    def wait_swaps(self, n, limit=300):
        end = time.time() + limit
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {open(self.log.name).read()[-3000:]}")
            s = self.swaps()
            if len(s) >= n:
                return s[n - 1]
            time.sleep(0.02)
        raise SystemExit(f"no swap {n} in {limit} s: {open(self.log.name).read()[-3000:]}")

    def wait_live(self, limit=120):
        end = time.time() + limit
        while time.time() < end:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise SystemExit(f"server exited: {open(self.log.name).read()[-3000:]}")
                time.sleep(0.05)
        raise SystemExit("server never came up")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def idle_rss():
    with tempfile.TemporaryDirectory() as folder:
        s = Server(folder)
        try:
            s.wait_live()
            time.sleep(2)
            return status_kb(s.proc.pid, "VmRSS") / 1024
        finally:
            s.stop()


def server_run(work):
    folder = os.path.join(work, "snapshots")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    first = os.path.join(folder, "a.parquet")
    os.link(snapshot, first) if os.stat(snapshot).st_dev == os.stat(work).st_dev else shutil.copy(snapshot, first)
    os.utime(first, (time.time() - 60, time.time() - 60))
    # The second snapshot waits beside the folder; a rename drops it in whole.
    second = os.path.join(work, "b.parquet")
    if not os.path.exists(second):
        shutil.copy(snapshot, second)
    s = Server(folder)
    try:
        pid = s.proc.pid
        swap = s.wait_swaps(1)
        load_peak = status_kb(pid, "VmHWM") / 1024
        time.sleep(2)
        served = status_kb(pid, "VmRSS") / 1024
        # Reset the peak, then drop the second snapshot while the first is served.
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        cpu0 = cpu_s(pid)
        os.utime(second, None)
        os.rename(second, os.path.join(folder, "b.parquet"))
        swap2 = s.wait_swaps(2)
        cpu1 = cpu_s(pid)
        swap_peak = status_kb(pid, "VmHWM") / 1024
        time.sleep(2)
        served2 = status_kb(pid, "VmRSS") / 1024
    finally:
        s.stop()
    assert swap.get("rows") == customers, swap
    return {"load_s": float(swap["seconds"]), "load_peak_mb": load_peak, "served_mb": served,
            "swap_s": float(swap2["seconds"]), "swap_cpu": cpu1 - cpu0, "swap_peak_mb": swap_peak,
            "served_after_swap_mb": served2}


def median(rs, key):
    return statistics.median(r[key] for r in rs)


py_runs, check_runs, server_runs = [], [], []
with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(snapshot))) as work:
    for i in range(runs):
        say(f"round {i + 1}/{runs}: pyarrow, check-snapshot, server")
        py_runs.append(pyarrow_run())
        check_runs.append(check_run())
        server_runs.append(server_run(work))
        say(f"  pyarrow {py_runs[-1]['wall']:.2f} s, check {check_runs[-1]['wall']:.2f} s, "
            f"server load {server_runs[-1]['load_s']:.2f} s, swap {server_runs[-1]['swap_s']:.2f} s")
idle = idle_rss()

served = median(server_runs, "served_mb")
per_customer = (served - idle) * 1024 * 1024 / customers
print()
print(f"Snapshot load, {customers:,} customers ({os.path.basename(snapshot)}, {len(COLUMNS)} columns), "
      f"{os.cpu_count()} cores, median of {runs}, {time.strftime('%Y-%m-%d', time.gmtime())}:")
print()
print("| what | wall s | CPU s | peak RSS MB | RSS after MB |")
print("|---|---:|---:|---:|---:|")
print(f"| pyarrow `read_table` (23 columns) | {median(py_runs, 'wall'):.2f} | {median(py_runs, 'cpu'):.2f} | "
      f"{median(py_runs, 'peak_mb'):.0f} | |")
print(f"| `crmscore check-snapshot` | {median(check_runs, 'wall'):.2f} | {median(check_runs, 'cpu'):.2f} | "
      f"{median(check_runs, 'peak_mb'):.0f} | |")
print(f"| server: first load and swap | {median(server_runs, 'load_s'):.2f} | | "
      f"{median(server_runs, 'load_peak_mb'):.0f} | {served:.0f} |")
print(f"| server: second snapshot swapped in while the first is served | {median(server_runs, 'swap_s'):.2f} | "
      f"{median(server_runs, 'swap_cpu'):.2f} | {median(server_runs, 'swap_peak_mb'):.0f} | "
      f"{median(server_runs, 'served_after_swap_mb'):.0f} |")
print(f"| server without a snapshot (models, runtime) | | | | {idle:.0f} |")
print()
print(f"Served: {served - idle:.0f} MB for the snapshot, {per_customer:.0f} bytes per customer; "
      f"load peak / served = {median(server_runs, 'load_peak_mb') / served:.2f}; "
      f"swap peak / served = {median(server_runs, 'swap_peak_mb') / served:.2f}.")
PY
