#!/usr/bin/env python3
"""Out-of-band waiting benchmark (issue 18): LOGINS phone-call logins waiting for
their verdict at the same time on one radmfa node.

    python3 benches/oob.py --radmfa target/release/radmfa [--logins 10000]
                           [--min-delay 1] [--max-delay 30] [--keep]

What runs, all on loopback:
  * a Twilio-shaped simulator (this process, aiohttp over HTTPS): it answers the
    node's POST .../Calls.json like Twilio (201, a CA sid, status "queued"),
    reads the <Gather action> URL out of the TwiML, and after a random delay of
    MIN..MAX seconds "presses #": it POSTs Digits=# to that callback, signed
    with X-Twilio-Signature (twilio's RequestValidator). The time it sends the
    verdict is recorded per call;
  * one radmfa node (first factor none, method call for every user, the Twilio
    provider pointing at the simulator, callbacks on the portal listener);
  * a RADIUS client in its own process (so neither's event loop delays the
    other): it sends every login once, then retransmits each unanswered one
    every 5 s as a NAS would, and timestamps every reply in the kernel
    (SO_TIMESTAMPNS), so its own scheduling does not count.

It prints, then one JSON line:
  * replies: accepts, rejects, lost (no reply within 75 s);
  * calls placed per login (must be exactly 1: retransmissions absorbed);
  * reply latency after the verdict (kernel receive time of the Access-Accept
    minus the time the simulator sent the callback): p50, p99, max;
  * the node's resident memory idle, at the peak while the logins wait, and
    the peak minus idle; its thread count idle and at the peak (no thread per
    waiting login).
Targets (issue 18): memory above idle < 100 MB for 10,000 waiting logins,
reply p99 < 50 ms after the verdict, zero lost or duplicated calls.
Needs: python3 with aiohttp and twilio (pip install aiohttp twilio), openssl.
"""

import argparse
import asyncio
import hashlib
import hmac
import html
import json
import multiprocessing
import os
import random
import re
import secrets
import selectors
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ACCOUNT_SID = "ACbench0000000000000000000000000000"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
RADIUS_SECRET = b"bench-secret"
# Linux: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), not exported by every Python.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
FROM_NUMBER = "+15550100000"


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def phone_of(i):
    return "+3161%07d" % i


def user_of(i):
    return "oob%06d" % i


# ---------------------------------------------------------------- RADIUS client


def access_request(ident, auth, user):
    def attr(t, v):
        return bytes([t, len(v) + 2]) + v

    # User-Password "x" (first factor none: ignored for a call user), RFC 2865 5.2.
    pw = b"x".ljust(16, b"\0")
    pad = hashlib.md5(RADIUS_SECRET + auth).digest()
    enc = bytes(a ^ b for a, b in zip(pw, pad))
    body = attr(1, user.encode()) + attr(2, enc) + attr(32, b"bench-nas") + attr(80, b"\0" * 16)
    header = struct.pack("!BBH", 1, ident, 20 + len(body)) + auth
    mac = hmac.new(RADIUS_SECRET, header + body, hashlib.md5).digest()
    return header + body[:-16] + mac


def radius_client(addr, logins, out_path, start_at):
    """Runs in its own process: sends, retransmits, timestamps replies."""
    host, port = addr.rsplit(":", 1)
    dest = (host, int(port))
    nsock = (logins + 255) // 256
    socks = []
    sel = selectors.DefaultSelector()
    for k in range(nsock):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, k)
    pending = {}
    for i in range(logins):
        k, ident = divmod(i, 256)
        auth = os.urandom(16)
        pending[(k, ident)] = [i, auth, access_request(ident, auth, user_of(i)), 0.0, 0]
    while time.time() < start_at:
        time.sleep(0.01)
    results = {}
    t0 = time.time()
    deadline = t0 + 75.0
    order = list(pending.keys())
    for key in order:
        entry = pending[key]
        socks[key[0]].sendto(entry[2], dest)
        entry[3] = time.time()
        entry[4] = 1
    sent_all = time.time() - t0
    while pending and time.time() < deadline:
        for key_ev, _ in sel.select(timeout=0.2):
            s = key_ev.fileobj
            k = key_ev.data
            while True:
                try:
                    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                stamp = time.time()
                for level, kind, cdata in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", cdata[:16])
                        stamp = sec + nsec / 1e9
                if len(data) < 20:
                    continue
                entry = pending.get((k, data[1]))
                if entry is None:
                    continue
                length = struct.unpack("!H", data[2:4])[0]
                data = data[:length]
                check = hashlib.md5(data[:4] + entry[1] + data[20:] + RADIUS_SECRET).digest()
                if not hmac.compare_digest(check, data[4:20]):
                    continue
                results[entry[0]] = {"code": data[0], "at": stamp, "sent": entry[4]}
                del pending[(k, data[1])]
        now = time.time()
        for key, entry in pending.items():
            if now - entry[3] >= 5.0:
                socks[key[0]].sendto(entry[2], dest)
                entry[3] = now
                entry[4] += 1
    with open(out_path, "w") as f:
        json.dump({"results": results, "lost": [e[0] for e in pending.values()],
                   "send_all_secs": sent_all}, f)


# ---------------------------------------------------------------- Twilio simulator


class Sim:
    def __init__(self, min_delay, max_delay, ca_file):
        self.min_delay, self.max_delay = min_delay, max_delay
        self.calls = {}       # phone -> number of calls placed
        self.verdict_at = {}  # phone -> time the callback was sent
        self.callback_status = {}
        self.tasks = set()
        # The portal's certificate is the node's cluster certificate (named
        # node-1.radmfa.cluster, not 127.0.0.1): chain checked, name not.
        self.client_ssl = ssl.create_default_context(cafile=ca_file)
        self.client_ssl.check_hostname = False
        self.session = None
        from twilio.request_validator import RequestValidator
        self.validator = RequestValidator(AUTH_TOKEN)

    async def calls_json(self, request):
        from aiohttp import web
        form = await request.post()
        to = form.get("To", "")
        twiml = form.get("Twiml", "")
        m = re.search(r'<Gather[^>]*\saction="([^"]+)"', twiml)
        self.calls[to] = self.calls.get(to, 0) + 1
        sid = "CA" + secrets.token_hex(16)
        if m:
            task = asyncio.ensure_future(self.press(html.unescape(m.group(1)), sid, to))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return web.json_response({"sid": sid, "status": "queued", "to": to,
                                  "from": form.get("From", "")}, status=201)

    async def press(self, url, sid, to):
        await asyncio.sleep(random.uniform(self.min_delay, self.max_delay))
        params = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "From": FROM_NUMBER, "To": to,
                  "Digits": "#", "CallStatus": "in-progress", "Direction": "outbound-api"}
        signature = self.validator.compute_signature(url, params)
        self.verdict_at[to] = time.time()
        try:
            async with self.session.post(url, data=params, ssl=self.client_ssl,
                                         headers={"X-Twilio-Signature": signature}) as resp:
                await resp.read()
                key = str(resp.status)
        except Exception as e:  # counted and printed: a bench must not hide failures
            key = f"error: {type(e).__name__}: {e}"[:200]
        self.callback_status[key] = self.callback_status.get(key, 0) + 1


async def run_sim(sim, port, cert, key, stop):
    import aiohttp
    from aiohttp import web
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", sim.calls_json)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx, backlog=4096)
    await site.start()
    sim.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    await stop.wait()
    await sim.session.close()
    await runner.cleanup()


# ---------------------------------------------------------------- the node


def rss_and_threads(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--radmfa", required=True)
    p.add_argument("--logins", type=int, default=10000)
    p.add_argument("--min-delay", type=float, default=1.0)
    p.add_argument("--max-delay", type=float, default=30.0)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    radmfa = os.path.abspath(a.radmfa)
    work = tempfile.mkdtemp(prefix="radmfa-oob-bench.")
    node = None
    try:
        def run(*args):
            subprocess.run([radmfa, "--config", f"{work}/radmfa.toml", *args], check=True,
                           stdout=subprocess.DEVNULL)

        pki = f"{work}/pki"
        subprocess.run([radmfa, "cluster", "ca", "--dir", pki], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([radmfa, "cluster", "cert", "--dir", pki, "--node-id", "1"], check=True,
                       stdout=subprocess.DEVNULL)
        # The simulator's own certificate, for 127.0.0.1 (what the node dials).
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:FALSE",
                        "-keyout", f"{work}/sim.key", "-out", f"{work}/sim.pem"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        portal_port, sim_port = free_port(), free_port()
        with open(f"{work}/twilio.token", "w") as f:
            f.write(AUTH_TOKEN + "\n")
        os.chmod(f"{work}/twilio.token", 0o600)
        config = f"""# Generated by benches/oob.py.
[server]
node_name = "oob-bench"
node_id = 1
data_dir = "{work}/data"

[log]
format = "human"
level = "warn"

[radius]
listen = ["127.0.0.1:0"]

[limits]
client_rps = 0
source_rps = 0
user_per_minute = 0

[challenge]
max_sessions = {max(100000, a.logins * 2)}

[gateway]
provider = "twilio"
url = "https://127.0.0.1:{sim_port}"
account_sid = "{ACCOUNT_SID}"
from_number = "{FROM_NUMBER}"
api_key_file = "{work}/twilio.token"
ca_file = "{work}/sim.pem"
verdict_timeout_secs = 60

[portal]
listen = "127.0.0.1:{portal_port}"
cert = "{pki}/node-1.pem"
key = "{pki}/node-1.key"
public_url = "https://127.0.0.1:{portal_port}"

[[policy]]
name = "default"
first_factor = "none"

[[client]]
name = "bench-nas"
address = "127.0.0.1/32"
secret = "{RADIUS_SECRET.decode()}"
policy = "default"
"""
        with open(f"{work}/radmfa.toml", "w") as f:
            f.write(config)
        os.makedirs(f"{work}/data", mode=0o700)
        with open(f"{work}/users.csv", "w") as f:
            f.write("name,method,phone\n")
            for i in range(a.logins):
                f.write(f"{user_of(i)},call,{phone_of(i)}\n")
        run("user", "import", "--csv", f"{work}/users.csv")
        log = open(f"{work}/radmfa.log", "w")
        node = subprocess.Popen([radmfa, "--config", f"{work}/radmfa.toml", "serve",
                                 "--ready-file", f"{work}/ready.json"], stdout=log, stderr=log)
        for _ in range(300):
            if os.path.exists(f"{work}/ready.json") and os.path.getsize(f"{work}/ready.json"):
                break
            if node.poll() is not None:
                sys.exit(f"oob.py: radmfa exited; see {work}/radmfa.log")
            time.sleep(0.1)
        with open(f"{work}/ready.json") as f:
            addr = json.load(f)["radius_udp"][0]
        time.sleep(1.0)
        idle_rss, idle_threads = rss_and_threads(node.pid)

        sim = Sim(a.min_delay, a.max_delay, f"{pki}/ca.pem")
        start_at = time.time() + 1.5
        out_path = f"{work}/client.json"
        client = multiprocessing.Process(target=radius_client,
                                         args=(addr, a.logins, out_path, start_at))
        client.start()
        peak = {"rss": idle_rss, "threads": idle_threads}

        async def drive():
            stop = asyncio.Event()
            server = asyncio.ensure_future(run_sim(sim, sim_port, f"{work}/sim.pem",
                                                   f"{work}/sim.key", stop))
            while client.is_alive():
                rss, threads = rss_and_threads(node.pid)
                peak["rss"] = max(peak["rss"], rss)
                peak["threads"] = max(peak["threads"], threads)
                await asyncio.sleep(0.25)
            stop.set()
            await server

        asyncio.run(drive())
        client.join()
        with open(out_path) as f:
            got = json.load(f)
        results = {int(k): v for k, v in got["results"].items()}
        accepts = sum(1 for r in results.values() if r["code"] == 2)
        rejects = sum(1 for r in results.values() if r["code"] == 3)
        latencies = []
        for i, r in results.items():
            at = sim.verdict_at.get(phone_of(i))
            if r["code"] == 2 and at is not None:
                latencies.append((r["at"] - at) * 1000.0)
        calls = [sim.calls.get(phone_of(i), 0) for i in range(a.logins)]
        retransmitted = sum(1 for r in results.values() if r["sent"] > 1)
        report = {
            "logins": a.logins,
            "accepts": accepts,
            "rejects": rejects,
            "lost": len(got["lost"]),
            "logins_without_call": sum(1 for c in calls if c == 0),
            "duplicate_calls": sum(c - 1 for c in calls if c > 1),
            "retransmitted_logins": retransmitted,
            "callback_http_status": sim.callback_status,
            "send_all_secs": round(got["send_all_secs"], 2),
            "reply_after_verdict_ms": {
                "p50": round(pct(latencies, 50) or 0, 2),
                "p99": round(pct(latencies, 99) or 0, 2),
                "max": round(max(latencies) if latencies else 0, 2),
            },
            "rss_mb": {"idle": round(idle_rss, 1), "peak": round(peak["rss"], 1),
                       "above_idle": round(peak["rss"] - idle_rss, 1)},
            "threads": {"idle": idle_threads, "peak": peak["threads"]},
        }
        lat = report["reply_after_verdict_ms"]
        print(f"logins {a.logins}: {accepts} accepted, {rejects} rejected, "
              f"{report['lost']} lost; calls: {report['logins_without_call']} logins without a "
              f"call, {report['duplicate_calls']} duplicate calls "
              f"({retransmitted} logins were retransmitted by the client)")
        print(f"reply after verdict: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
        print(f"node memory: idle {report['rss_mb']['idle']} MB, peak {report['rss_mb']['peak']} MB, "
              f"above idle {report['rss_mb']['above_idle']} MB; threads idle {idle_threads}, "
              f"peak {peak['threads']}")
        print(json.dumps(report))
    finally:
        if node is not None:
            node.terminate()
            node.wait()
        if a.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
