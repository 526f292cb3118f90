#!/usr/bin/env python3
"""Replication lag of a write burst, measured through the control sockets.

A writer sends N admin writes (user_set of a display name) to the primary
back to back; after each acknowledgement it reads the primary's log position
(repl_status). A poller reads the replica's position in a tight loop. The lag
of a write is the time from its acknowledgement on the primary to the first
poll that shows the replica at or past its position. Prints one JSON object.
"""
import argparse
import json
import socket
import threading
import time


def call(path, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    v = json.loads(buf)
    if not v.get("ok"):
        raise SystemExit(f"request {req['op']} failed: {v.get('error')}")
    return v["result"]


class Conn:
    """One persistent control connection (requests are answered in order)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def call(self, req):
        self.s.sendall(json.dumps(req).encode() + b"\n")
        v = json.loads(self.f.readline())
        if not v.get("ok"):
            raise SystemExit(f"request {req['op']} failed: {v.get('error')}")
        return v["result"]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--primary", required=True, help="primary control socket")
    ap.add_argument("--replica", required=True, help="replica control socket")
    ap.add_argument("--user", required=True, help="existing user to update")
    ap.add_argument("--writes", type=int, default=2000)
    a = ap.parse_args()

    primary, replica = Conn(a.primary), Conn(a.replica)
    seen = []  # (time, replica last_seq)
    stop = threading.Event()

    def poll():
        conn = Conn(a.replica)
        while not stop.is_set():
            st = conn.call({"op": "repl_status"})
            seen.append((time.monotonic(), st["last_seq"]))

    t = threading.Thread(target=poll)
    t.start()
    acks = []  # (time acked, seq)
    t0 = time.monotonic()
    for i in range(a.writes):
        primary.call({"op": "user_set", "name": a.user, "display_name": f"burst {i}"})
        acked = time.monotonic()
        seq = primary.call({"op": "repl_status"})["last_seq"]
        acks.append((acked, seq))
    elapsed = time.monotonic() - t0
    # Wait for the replica to reach the last write.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not seen or seen[-1][1] < acks[-1][1]):
        time.sleep(0.01)
    stop.set()
    t.join()

    lags = []
    j = 0
    for acked, seq in acks:
        while j < len(seen) and seen[j][1] < seq:
            j += 1
        if j == len(seen):
            break
        # The first poll at or after the ack that shows the write.
        k = j
        while k < len(seen) and seen[k][0] < acked:
            k += 1
        if k < len(seen):
            lags.append(max(0.0, seen[k][0] - acked) * 1000.0)
    polls = len(seen)
    poll_ms = (seen[-1][0] - seen[0][0]) / max(1, polls - 1) * 1000.0 if polls > 1 else None
    print(json.dumps({
        "writes": a.writes,
        "writes_per_s": round(a.writes / elapsed, 1),
        "measured": len(lags),
        "lag_ms_p50": round(pct(lags, 50), 2) if lags else None,
        "lag_ms_p99": round(pct(lags, 99), 2) if lags else None,
        "lag_ms_max": round(max(lags), 2) if lags else None,
        "poll_interval_ms": round(poll_ms, 3) if poll_ms else None,
    }))


if __name__ == "__main__":
    main()
