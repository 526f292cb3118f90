#!/usr/bin/env python3
"""A Twilio-shaped HTTPS simulator for the end-to-end tests.

It accepts the REST requests radmfa makes like Twilio's API does (basic auth
with the account SID and auth token, form-encoded bodies, JSON answers with
a `sid` and `status`):

  POST /2010-04-01/Accounts/{sid}/Calls.json     (To, From, Twiml, StatusCallback...)
  POST /2010-04-01/Accounts/{sid}/Messages.json  (To, From, Body)
  GET  /2010-04-01/Accounts/{sid}.json           (the account: health check)

and plays the user the way Twilio reports back: it posts the callbacks
(`<Gather action>` with `Digits`, the `StatusCallback` with `CallStatus`,
the inbound-message webhook with `From` and `Body`) signed with Twilio's own
helper library (PyPI `twilio`, `RequestValidator.compute_signature`), so
radmfa's signature check is tested against Twilio's implementation.

Control endpoints (no auth; the tests only):
  POST /sim/rules     {"to": PHONE, "rule": RULE}   what the user does on a call
        keys:DIGITS       answer, press DIGITS (posted to the Gather action),
                          then the call completes (StatusCallback "completed")
        status:STATUS     the call ends with STATUS (busy, no-answer, failed)
        silent            nothing happens (the login runs to its timeout)
        nosig:keys:D / badsig:keys:D / replay:keys:D
                          as keys:D, but posted without a signature, with a
                          wrong one, or twice
  POST /sim/post      {"url": URL, "params": {..}, "sign": "valid|none|wrong"}
                      posts one callback now; answers {"status", "body"}
  GET  /sim/requests  every REST request received, oldest first
  GET  /sim/callbacks every callback posted and radmfa's answer

Usage: twilio_sim.py --dir DIR --sid SID --token TOKEN --callback-ca PEM
writes DIR/twilio.pem (its certificate) then DIR/twilio.ready ("127.0.0.1:PORT").
"""

import argparse
import base64
import html
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twilio.request_validator import RequestValidator

LOCK = threading.Lock()
REQUESTS = []
CALLBACKS = []
RULES = {}
COUNTER = [0]


def next_sid(prefix):
    with LOCK:
        COUNTER[0] += 1
        return "%s%032x" % (prefix, COUNTER[0])


def post_callback(args, url, params, sign="valid"):
    """Posts a form to radmfa as Twilio would; returns (status, body)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign != "none":
        token = args.token if sign == "valid" else args.token + "-wrong"
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, params)
    data = urllib.parse.urlencode(params).encode()
    ctx = ssl.create_default_context(cafile=args.callback_ca)
    ctx.check_hostname = False
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    except Exception as e:  # radmfa unreachable: recorded, the test sees it
        status, body = 0, str(e)
    with LOCK:
        CALLBACKS.append({"url": url, "params": params, "sign": sign,
                          "status": status, "body": body})
    return status, body


def play_call(args, form, csid):
    """Plays the user on a call according to the rule for its To number."""
    time.sleep(0.2)
    rule = RULES.get(form.get("To", ""), "keys:#")
    sign = "valid"
    replay = False
    for prefix, how in (("nosig:", "none"), ("badsig:", "wrong"), ("replay:", "replay")):
        if rule.startswith(prefix):
            rule = rule[len(prefix):]
            if how == "replay":
                replay = True
            else:
                sign = how
    base = {"AccountSid": args.sid, "CallSid": csid, "From": form.get("From", ""),
            "To": form.get("To", ""), "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
    status_url = form.get("StatusCallback")
    if rule.startswith("status:"):
        if status_url:
            post_callback(args, status_url, dict(base, CallStatus=rule[7:], CallDuration="0"), sign)
        return
    if rule == "silent":
        return
    if rule.startswith("keys:"):
        m = re.search(r'<Gather[^>]*\baction="([^"]+)"', form.get("Twiml", ""))
        if not m:
            return
        action = html.unescape(m.group(1))
        params = dict(base, CallStatus="in-progress", Digits=rule[5:])
        post_callback(args, action, params, sign)
        if replay:
            post_callback(args, action, params, sign)
        if status_url:
            post_callback(args, status_url, dict(base, CallStatus="completed", CallDuration="9"), sign)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self, sid):
        expected = "Basic " + base64.b64encode(
            ("%s:%s" % (self.server.args.sid, self.server.args.token)).encode()).decode()
        return sid == self.server.args.sid and self.headers.get("Authorization") == expected

    def do_GET(self):
        args = self.server.args
        if self.path == "/sim/requests":
            with LOCK:
                return self.reply(200, REQUESTS)
        if self.path == "/sim/callbacks":
            with LOCK:
                return self.reply(200, CALLBACKS)
        m = re.fullmatch(r"/2010-04-01/Accounts/(\w+)\.json", self.path)
        if m:
            if not self.authorized(m.group(1)):
                return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return self.reply(200, {"sid": args.sid, "status": "active"})
        self.reply(404, {"code": 20404, "message": "not found", "status": 404})

    def do_POST(self):
        args = self.server.args
        raw = self.body()
        if self.path == "/sim/rules":
            r = json.loads(raw)
            with LOCK:
                RULES[r["to"]] = r["rule"]
            return self.reply(200, {})
        if self.path == "/sim/post":
            r = json.loads(raw)
            status, body = post_callback(args, r["url"], r["params"], r.get("sign", "valid"))
            return self.reply(200, {"status": status, "body": body})
        m = re.fullmatch(r"/2010-04-01/Accounts/(\w+)/(Calls|Messages)\.json", self.path)
        if not m:
            return self.reply(404, {"code": 20404, "message": "not found", "status": 404})
        if not self.authorized(m.group(1)):
            return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return self.reply(400, {"code": 21600, "message": "Malformed form body", "status": 400})
        form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        if not re.fullmatch(r"\+\d{8,15}", form.get("To", "")) or not form.get("From"):
            return self.reply(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
        kind = m.group(2)
        if kind == "Calls" and not (form.get("Twiml") or form.get("Url")):
            return self.reply(400, {"code": 21205, "message": "Twiml or Url is required", "status": 400})
        if kind == "Messages" and not form.get("Body"):
            return self.reply(400, {"code": 21602, "message": "Message body is required", "status": 400})
        sid = next_sid("CA" if kind == "Calls" else "SM")
        with LOCK:
            REQUESTS.append({"kind": kind, "sid": sid, "form": form})
        if kind == "Calls":
            threading.Thread(target=play_call, args=(args, form, sid), daemon=True).start()
        self.reply(201, {"sid": sid, "account_sid": args.sid, "to": form["To"],
                         "from": form["From"], "status": "queued"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--sid", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--callback-ca", required=True)
    args = p.parse_args()
    cert = os.path.join(args.dir, "twilio.pem")
    key = os.path.join(args.dir, "twilio.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=twilio-sim",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    # An end-entity certificate the gateway trusts itself
                    # (ca_file), as the Rust simulator's: not a CA.
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth"],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.args = args
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    ready = os.path.join(args.dir, "twilio.ready")
    with open(ready + ".tmp", "w") as f:
        f.write("127.0.0.1:%d" % server.server_address[1])
    os.rename(ready + ".tmp", ready)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
