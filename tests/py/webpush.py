#!/usr/bin/env python3
"""The other side of Web Push for tests/push_e2e.rs, written against
independent implementations (Mozilla's http_ece for RFC 8291, the
`cryptography` package for P-256 and ECDSA), never radmfa's code.

  webpush.py serve DIR        a push service (RFC 8030 push resources) on
                              127.0.0.1: prints its port, records each POST
                              in DIR/pushes.jsonl (path, headers, base64
                              body); answers 201, or 410 for /gone/...
  webpush.py keys             a browser's subscription keys: JSON with
                              p256dh and auth (base64url, as the Push API
                              gives them) and the private key (for decrypt)
  webpush.py vapid-public PEM  the public key (base64url point) of a
                              VAPID key file
  webpush.py register SOCKET USER NAME ENDPOINT KEYS
                              stores a subscription through the control socket
  webpush.py approve BASE ID DECISION [PIN]
                              opens /approve/ID on the portal and submits
                              DECISION (approve, deny, not_me; - only
                              reads the page)
  webpush.py decrypt RECORD KEYS VAPID_PUBLIC
                              decrypts a recorded message with http_ece and
                              checks its VAPID Authorization (RFC 8292):
                              ES256 signature under the served public key,
                              aud = the push service's origin, exp within
                              24 h, sub set. Prints JSON: the message and
                              the JWT claims.
"""

import base64
import http.server
import json
import os
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def serve(directory):
    log = os.path.join(directory, "pushes.jsonl")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec = {
                "path": self.path,
                "origin": "http://%s:%d" % self.server.server_address,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": base64.b64encode(body).decode(),
                "time": time.time(),
            }
            with lock, open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.send_response(410 if self.path.startswith("/gone/") else 201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def keys():
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    print(json.dumps({"p256dh": b64u(public), "auth": b64u(os.urandom(16)), "private": pem}))


def check_vapid(authorization, origin, vapid_public):
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert fields["k"] == vapid_public, "k is not the served public key"
    header_b64, claims_b64, sig_b64 = fields["t"].split(".")
    header = json.loads(unb64u(header_b64))
    assert header["alg"] == "ES256", header
    sig = unb64u(sig_b64)
    assert len(sig) == 64, "ES256 signature is r||s"
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(vapid_public))
    public.verify(der, (header_b64 + "." + claims_b64).encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64u(claims_b64))
    assert claims["aud"] == origin, (claims["aud"], origin)
    now = time.time()
    assert now < claims["exp"] <= now + 24 * 3600 + 60, claims
    assert claims.get("sub"), claims
    return claims


def decrypt(record_json, keys_json, vapid_public):
    import http_ece

    rec = json.loads(record_json)
    k = json.loads(keys_json)
    h = rec["headers"]
    assert h["content-encoding"] == "aes128gcm", h
    assert int(h["ttl"]) > 0, h
    assert h["urgency"] in ("high", "normal"), h
    private = serialization.load_pem_private_key(k["private"].encode(), None)
    message = http_ece.decrypt(
        base64.b64decode(rec["body"]),
        private_key=private,
        auth_secret=unb64u(k["auth"]),
        version="aes128gcm",
    )
    claims = check_vapid(h["authorization"], rec["origin"], vapid_public)
    print(json.dumps({"message": json.loads(message), "claims": claims, "ttl": int(h["ttl"])}))


def register(socket_path, user, name, endpoint, keys_json):
    """Stores a subscription for `user` through the server's control socket
    (what the portal's devices page does after the browser subscribed)."""
    import socket

    k = json.loads(keys_json)
    req = {"op": "user_device_add", "user": user, "name": name, "endpoint": endpoint,
           "p256dh": k["p256dh"], "auth": k["auth"]}
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(socket_path)
        s.sendall((json.dumps(req) + "\n").encode())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    print(answer.decode().strip())


def approve(base, approval_id, decision, pin=None):
    """Opens the approval page like a browser without JavaScript, then
    submits `decision` (approve, deny, not_me); prints both pages."""
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    url = base + "/approve/" + approval_id

    def fetch(data=None):
        req = urllib.request.Request(url, data=data, headers={"Origin": base} if data else {})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, page = fetch()
    if decision == "-":
        print(json.dumps({"status": status, "page": page}))
        return
    form = {"decision": decision}
    if pin is not None:
        form["pin"] = pin
    post_status, result = fetch(urllib.parse.urlencode(form).encode())
    print(json.dumps({"status": status, "page": page, "post_status": post_status, "result": result}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2])
    elif cmd == "keys":
        keys()
    elif cmd == "vapid-public":
        with open(sys.argv[2], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        print(b64u(key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)))
    elif cmd == "register":
        register(*sys.argv[2:7])
    elif cmd == "approve":
        approve(*sys.argv[2:])
    elif cmd == "decrypt":
        decrypt(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: webpush.py serve DIR | keys | decrypt RECORD KEYS VAPID_PUBLIC")
