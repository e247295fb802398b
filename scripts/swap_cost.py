"""Memory a served snapshot takes and what swapping in the next one costs, measured on the real server.

    python scripts/swap_cost.py --bin target/release/crmscore --snapshot .bench/customers-10m.parquet [--swaps 3]

Standard library only; Linux (/proc). Copies the snapshot into a fresh folder as day-1, starts `crmscore serve` on
it (--poll-ms one hour, so only the admin reload swaps), and reports:
  - the time from start to ready, and the resident memory (VmRSS) once ready, with the customers and columns served;
  - per swap (a copy of the same file as day-2, day-3, ... and POST /v1/admin/snapshot/reload): the reload's wall
    time, the load seconds the server reports, the peak VmRSS sampled every 10 ms during the swap (old + new
    snapshot), and VmRSS one second after it (the old snapshot freed).
Prints one JSON object. Run it once with a small snapshot for the server's fixed memory (models, runtime) and
subtract: the rest is the snapshot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def call(url: str, method: str = "GET", timeout: float = 600) -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--snapshot", required=True, type=Path)
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--models", default="models")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crmscore-swap-"))
    server = None
    try:
        store = work / "store"
        store.mkdir()
        shutil.copy(args.snapshot, store / "day-1.parquet")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        started = time.time()
        server = subprocess.Popen(
            [args.bin, "serve", "--bind", f"127.0.0.1:{port}", "--models", args.models, "--snapshots", str(store),
             "--poll-ms", "3600000", "--state-dir", "", "--feedback-dir", "", "--http-workers", "1",
             "--shutdown-grace-ms", "0"],
            stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"),
        )  # fmt: skip
        while True:
            try:
                call(f"{base}/v2/health/ready", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.time() - started > 1800:
                    print((work / "server.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.05)
        ready_s = time.time() - started
        time.sleep(1)
        info = call(f"{base}/v1/snapshot")
        figures = {
            "snapshot": str(args.snapshot),
            "rows": info.get("rows"),
            "columns": len(info.get("columns") or []),
            "start_to_ready_s": round(ready_s, 3),
            "first_load_peak_kib": rss_kib(server.pid, "VmHWM"),
            "served_rss_kib": rss_kib(server.pid),
            "swaps": [],
        }
        for day in range(2, args.swaps + 2):
            previous = store / f"day-{day - 1}.parquet"
            shutil.copy(args.snapshot, store / f"day-{day}.parquet")
            peak = [rss_kib(server.pid)]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak.append(rss_kib(server.pid))
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t0 = time.time()
            reply = call(f"{base}/v1/admin/snapshot/reload", method="POST")
            wall = time.time() - t0
            time.sleep(1)
            stop.set()
            sampler.join()
            previous.unlink()
            figures["swaps"].append({
                "outcome": reply.get("outcome"),
                "version": reply.get("snapshot"),
                "reload_wall_s": round(wall, 3),
                "server_seconds": reply.get("seconds"),
                "peak_rss_kib": max(peak),
                "rss_after_kib": rss_kib(server.pid),
            })  # fmt: skip
        swaps = figures["swaps"]
        if swaps:
            figures["median_reload_wall_s"] = statistics.median(s["reload_wall_s"] for s in swaps)
            figures["median_swap_peak_kib"] = statistics.median(s["peak_rss_kib"] for s in swaps)
        print(json.dumps(figures, indent=2))
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
