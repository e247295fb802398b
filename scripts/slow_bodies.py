#!/usr/bin/env python3
"""Slow-body probe: many clients each announce a large body and trickle it; prints the server's resident memory
before, while and after, and how each connection ended (status, seconds to the reply, closed or not).

Usage: scripts/slow_bodies.py --pid PID [--url http://127.0.0.1:8080/v1/churn/score] [--clients 100]
       [--body-bytes 4194304] [--seconds 40] [--chunked]
PID is the server's process id (its RSS is read from /proc/PID/status). Standard library only.
"""

import argparse
import collections
import socket
import threading
import time
import urllib.parse


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def client(url, body_bytes, seconds, chunked, results, index):
    """Announces `body_bytes` and sends them evenly over `seconds` until the server answers or closes."""
    parts = urllib.parse.urlsplit(url)
    started = time.monotonic()
    outcome = {"status": None, "reply_s": None, "closed": False, "sent": 0}
    results[index] = outcome
    try:
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=5)
    except OSError as e:
        outcome["status"] = f"connect: {e.__class__.__name__}"
        return
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_bytes}"
    head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    piece = 16 * 1024
    interval = seconds * piece / body_bytes
    sock.setblocking(False)
    reply = b""
    try:
        sock.sendall(head.encode())
        while time.monotonic() - started < seconds + 15:
            try:
                data = sock.recv(65536)
                if not data:
                    outcome["closed"] = True
                    break
                reply += data
                if outcome["status"] is None and b"\r\n" in reply:
                    outcome["status"] = int(reply.split(b" ", 2)[1])
                    outcome["reply_s"] = round(time.monotonic() - started, 1)
            except BlockingIOError:
                pass
            if outcome["status"] is None and outcome["sent"] < body_bytes:
                chunk = b" " * min(piece, body_bytes - outcome["sent"])
                wire = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                try:
                    sock.send(wire)
                    outcome["sent"] += len(chunk)
                except BlockingIOError:
                    pass
            time.sleep(interval)
    except OSError as e:
        outcome["closed"] = f"error: {e.__class__.__name__}"
    finally:
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--url", default="http://127.0.0.1:8080/v1/churn/score")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--body-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--seconds", type=float, default=40)
    p.add_argument("--chunked", action="store_true")
    args = p.parse_args()

    print(f"RSS before: {rss_mib(args.pid):.0f} MiB")
    results = [None] * args.clients
    threads = [
        threading.Thread(
            target=client, args=(args.url, args.body_bytes, args.seconds, args.chunked, results, i), daemon=True
        )
        for i in range(args.clients)
    ]
    for t in threads:
        t.start()
    peak = 0.0
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(args.pid))
        time.sleep(0.2)
    print(f"RSS peak while clients were sending: {peak:.0f} MiB")
    time.sleep(3)
    print(f"RSS 3 s after the clients left: {rss_mib(args.pid):.0f} MiB")

    by_status = collections.Counter((r["status"], r["closed"]) for r in results)
    for (status, closed), n in sorted(by_status.items(), key=str):
        times = sorted(r["reply_s"] for r in results if r["status"] == status and r["reply_s"] is not None)
        span = f", reply after {times[0]}-{times[-1]} s" if times else ""
        print(f"{n:4d} connections: status {status}, closed by server: {closed}{span}")


if __name__ == "__main__":
    main()
