"""Load through a load balancer while a new snapshot drops: the measuring half of scripts/cluster-test.sh.

    python scripts/cluster_load.py --lb http://127.0.0.1:8000 --replica http://127.0.0.1:8081 ... \\
        --ids ids.txt --duration 10 --drop-after 3 --drop 'mv staging/b.parquet store/' --poll-ms 1000

Standard library only. Client threads post one-id `/v1/churn/score` requests through the balancer on keep-alive
connections and record, per reply, the time, the status and the `x-snapshot-version` header (which must equal the
body's `snapshot`). After --drop-after seconds the --drop command makes the new snapshot visible; from then on each
replica's `/v1/snapshot` is polled every 20 ms until it serves a version other than the one all replicas served at
the start. The load runs for --duration seconds, and at least until every replica switched plus --settle seconds.

Every request counts: a refused or dropped connection, a timeout, a non-200 status, a reply without the header
or whose header and body disagree is an error. Prints the report; exits 1 on any error, when a replica did not
switch, when the replicas switched to different versions, or when no reply through the balancer came from the
new version.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

HEADER = "x-snapshot-version"


def served_version(replica: str) -> str | None:
    """The version a replica's /v1/snapshot names (None when it cannot answer)."""
    try:
        with urllib.request.urlopen(f"{replica}/v1/snapshot", timeout=5) as reply:
            return json.load(reply).get("version")
    except (OSError, ValueError):
        return None


class Client(threading.Thread):
    """One keep-alive connection posting one-id churn requests until stopped; records (sent, received, status,
    header version, error) per request."""

    def __init__(self, lb: str, ids: list[str], seed: int, stop: threading.Event):
        super().__init__(daemon=True)
        url = urllib.parse.urlsplit(lb)
        self.host, self.port = url.hostname, url.port
        self.ids, self.random, self.stop = ids, random.Random(seed), stop
        self.records: list[tuple[float, float, int, str | None, str | None]] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while not self.stop.is_set():
            body = json.dumps({"customer_ids": [self.random.choice(self.ids)]})
            sent = time.time()
            try:
                conn.request("POST", "/v1/churn/score", body, {"content-type": "application/json"})
                reply = conn.getresponse()
                data = reply.read()
                received = time.time()
                version = reply.getheader(HEADER)
                error = None
                if reply.status != 200:
                    error = f"status {reply.status}: {data[:200]!r}"
                elif version is None:
                    error = f"no {HEADER} header"
                elif json.loads(data).get("snapshot") != version:
                    error = f"header {version} but body {data[:200]!r}"
                if reply.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException, ValueError) as e:
                received, version, error = time.time(), None, f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.records.append((sent, received, 0 if error else 200, version, error))
        conn.close()


def watch_switch(replicas: list[str], old: str, limit_s: float) -> dict[str, tuple[float, str]]:
    """Polls every replica until each serves a version other than `old`: replica -> (time seen, version)."""
    switched: dict[str, tuple[float, str]] = {}
    deadline = time.time() + limit_s
    while len(switched) < len(replicas) and time.time() < deadline:
        for replica in replicas:
            if replica not in switched:
                version = served_version(replica)
                if version is not None and version != old:
                    switched[replica] = (time.time(), version)
        time.sleep(0.02)
    return switched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lb", required=True, help="the load balancer's base URL")
    parser.add_argument("--replica", action="append", required=True, help="a replica's base URL (repeat)")
    parser.add_argument("--ids", required=True, help="file of customer ids, one a line")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load at least")
    parser.add_argument("--drop-after", type=float, default=3.0, help="seconds of load before the drop")
    parser.add_argument("--drop", required=True, help="shell command that makes the new snapshot visible")
    parser.add_argument("--threads", type=int, default=4, help="client connections")
    parser.add_argument("--poll-ms", type=int, required=True, help="the replicas' --poll-ms")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of load after the last switch")
    parser.add_argument("--switch-limit", type=float, default=120.0, help="seconds a replica has to switch")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    ids = [line.strip() for line in open(args.ids, encoding="utf-8") if line.strip()]
    before = {r: served_version(r) for r in args.replica}
    if None in before.values() or len(set(before.values())) != 1:
        print(f"error: the replicas do not all serve one version before the drop: {before}", file=sys.stderr)
        return 1
    old = next(iter(before.values()))

    stop = threading.Event()
    clients = [Client(args.lb, ids, seed, stop) for seed in range(args.threads)]
    started = time.time()
    for c in clients:
        c.start()
    time.sleep(args.drop_after)
    drop_started = time.time()
    subprocess.run(args.drop, shell=True, check=True)
    dropped = time.time()
    switched = watch_switch(args.replica, old, args.switch_limit)
    end = max(started + args.duration, time.time() + args.settle)
    while time.time() < end:
        time.sleep(0.05)
    stop.set()
    for c in clients:
        c.join(timeout=60)
    finished = time.time()

    records = [r for c in clients for r in c.records]
    errors = [r for r in records if r[4] is not None]
    counts: dict[str, int] = {}
    for r in records:
        if r[3] is not None:
            counts[r[3]] = counts.get(r[3], 0) + 1
    new_versions = {v for _, v in switched.values()}
    new = next(iter(new_versions)) if len(new_versions) == 1 else None
    poll_s = args.poll_ms / 1000
    converged = len(switched) == len(args.replica) and new is not None
    all_switched = max((t for t, _ in switched.values()), default=float("nan")) - dropped
    first_switched = min((t for t, _ in switched.values()), default=float("nan")) - dropped
    # Through the balancer: from the first reply answered by the new version to the last answered by the old one.
    first_new = min((r[1] for r in records if new is not None and r[3] == new), default=None)
    last_old = max((r[1] for r in records if r[3] == old), default=None)
    lb_window = max(0.0, last_old - first_new) if first_new is not None and last_old is not None else None

    wall = finished - started
    figures = {
        "replicas": len(args.replica),
        "poll_ms": args.poll_ms,
        "requests": len(records),
        "errors": len(errors),
        "requests_per_s": len(records) / wall if wall > 0 else 0.0,
        "load_s": wall,
        "old_version": old,
        "new_version": new,
        "answered_by_version": counts,
        "drop_command_s": dropped - drop_started,
        "replica_switch_s": {r: t - dropped for r, (t, _) in switched.items()},
        "all_switched_s": all_switched if converged else None,
        "within_two_polls": converged and all_switched <= 2 * poll_s,
        "disagreement_polled_s": (all_switched - first_switched) if converged else None,
        "disagreement_through_lb_s": lb_window,
    }
    print(f"requests: {len(records)} ({figures['requests_per_s']:.0f}/s over {wall:.1f} s, "
          f"{args.threads} connections through the balancer)")  # fmt: skip
    print(f"errors: {len(errors)}")
    for r in errors[:5]:
        print(f"  e.g. at +{r[0] - started:.3f} s: {r[4]}")
    print("answered by version: " + ", ".join(f"{v}={n}" for v, n in sorted(counts.items())))
    print(f"drop at +{dropped - started:.2f} s (the drop command took {dropped - drop_started:.3f} s): "
          f"{old} -> {new or sorted(new_versions) or 'nothing'}")  # fmt: skip
    for replica in args.replica:
        if replica in switched:
            t, v = switched[replica]
            print(f"  replica {replica} serves {v} after {t - dropped:.3f} s")
        else:
            print(f"  replica {replica} did not switch within {args.switch_limit:.0f} s")
    if converged:
        verdict = "yes" if figures["within_two_polls"] else "NO"
        print(f"every replica serves {new} after {all_switched:.3f} s "
              f"(poll interval {poll_s:.3f} s; within 2 poll intervals: {verdict})")  # fmt: skip
        print(f"replicas disagreed (polled /v1/snapshot): {figures['disagreement_polled_s']:.3f} s")
    if lb_window is not None:
        print(f"replicas disagreed (x-snapshot-version of replies through the balancer): {lb_window:.3f} s")
    else:
        print("replicas disagreed (x-snapshot-version through the balancer): no reply from the new version seen")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
    ok = not errors and converged and new in counts
    print(f"result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
