#!/usr/bin/env python3
"""Run many one-way SMS logins with pyrad, reading each code from the gateway
simulator, and print a JSON summary.

Each login: Access-Request (user, password) -> Access-Challenge with State;
GET the code the simulator "sent" to the user's phone; Access-Request (user,
code, State) -> Access-Accept. Every request goes out from a fresh UDP socket
(a fresh source port), so a round-robin balancer gives each leg to the next
node. Replies are verified (Response Authenticator and Message-Authenticator,
by pyrad's VerifyReply with enforce_ma).

Usage: sms_logins.py --server HOST:PORT --secret S --dict DICT
         --sim ADDR --sim-cert PEM --sim-key KEY --password PW
         --user NAME=PHONE [--user ...] --logins N
Output: {"accepts": n, "failures": [{"login": i, "user": u, "leg": 1|2,
         "got": "...", "message": "..."}], "elapsed_s": t}
"""

import argparse
import json
import re
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request

from pyrad import packet
from pyrad.dictionary import Dictionary

CODES = {2: "Access-Accept", 3: "Access-Reject", 11: "Access-Challenge"}


def exchange(server, secret, dictionary, user, password, state, timeout):
    req = packet.AuthPacket(code=packet.AccessRequest, secret=secret, dict=dictionary)
    req.add_message_authenticator()
    req["User-Name"] = user
    req["User-Password"] = req.PwCrypt(password)
    if state is not None:
        req["State"] = state
    raw = req.RequestPacket()
    req.authenticator = raw[4:20]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        for _attempt in range(3):
            sock.sendto(raw, server)
            try:
                data, _ = sock.recvfrom(65535)
            except socket.timeout:
                continue
            reply = packet.Packet(packet=data, secret=secret, dict=dictionary)
            if not req.VerifyReply(reply, data, enforce_ma=True):
                return "bad-signature", None, ""
            msg = ""
            st = None
            if "Reply-Message" in reply:
                msg = " ".join(str(m) for m in reply["Reply-Message"])
            if "State" in reply:
                st = reply["State"][0]
            return CODES.get(reply.code, "Code-%d" % reply.code), st, msg
        return "timeout", None, ""
    finally:
        sock.close()


def sim_code(sim, ctx, key, phone, seen):
    """The newest SMS code to `phone` not seen before (waits up to 5 s)."""
    url = "https://%s/sim/messages?to=%s" % (sim, urllib.parse.quote(phone))
    deadline = time.time() + 5
    while time.time() < deadline:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
        records = json.loads(urllib.request.urlopen(req, context=ctx, timeout=5).read())
        for rec in reversed(records):
            if rec.get("kind") == "sms" and rec["seq"] not in seen:
                seen.add(rec["seq"])
                return "".join(re.findall(r"\d", rec.get("body") or ""))
        time.sleep(0.05)
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--dict", required=True)
    p.add_argument("--sim", required=True)
    p.add_argument("--sim-cert", required=True)
    p.add_argument("--sim-key", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--user", action="append", required=True, help="NAME=PHONE")
    p.add_argument("--logins", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()

    host, _, port = a.server.rpartition(":")
    server = (host, int(port))
    secret = a.secret.encode()
    dictionary = Dictionary(a.dict)
    ctx = ssl.create_default_context(cafile=a.sim_cert)
    ctx.check_hostname = False
    users = [u.split("=", 1) for u in a.user]
    seen = set()
    accepts = 0
    failures = []
    start = time.time()
    for i in range(a.logins):
        user, phone = users[i % len(users)]
        got, state, msg = exchange(server, secret, dictionary, user, a.password, None, a.timeout)
        if got != "Access-Challenge" or state is None:
            failures.append({"login": i, "user": user, "leg": 1, "got": got, "message": msg})
            continue
        code = sim_code(a.sim, ctx, a.sim_key, phone, seen)
        if code is None:
            failures.append({"login": i, "user": user, "leg": 1, "got": "no-sms", "message": ""})
            continue
        got, _, msg = exchange(server, secret, dictionary, user, code, state, a.timeout)
        if got == "Access-Accept":
            accepts += 1
        else:
            failures.append({"login": i, "user": user, "leg": 2, "got": got, "message": msg})
    json.dump({"accepts": accepts, "failures": failures,
               "elapsed_s": round(time.time() - start, 3)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
