#!/usr/bin/env python3
"""Send one MS-CHAPv2 Access-Request (RFC 2759 / RFC 2548) and print the reply
as JSON, with the MS-MPPE keys decrypted under the shared secret and this
request's authenticator.

Usage: mschapv2.py --server HOST:PORT --secret S --user U --password P [--timeout T] [--seed S]
                   [--retransmit SECONDS]
With --retransmit the same datagram is sent again every SECONDS until a reply
comes or --timeout runs out, as NPS does towards a remote RADIUS server (RD
Gateway's RADIUS timeout is raised to 60 s for out-of-band MFA); a reply that
does not answer this request (wrong identifier or authenticator) is ignored.
With --timeout running out it prints {"code": null, "sent": N, "elapsed": S}.
Output: {"code": 2, "sent": N, "elapsed": S, "ms_chap2_success": true|false,
         "send_key": "hex"|null, "recv_key": "hex"|null,
         "response_authenticator_valid": true, "message_authenticator_valid": true,
         "reply_message": "..."}
Needs pycryptodome (DES and MD4; OpenSSL 3 has no MD4 by default).
"""

import argparse
import hashlib
import hmac
import json
import os
import socket
import struct
import time

from Crypto.Cipher import DES
from Crypto.Hash import MD4


def des_key(seven):
    bits = int.from_bytes(seven, "big")
    out = bytearray()
    for i in range(8):
        b = (bits >> (56 - 7 * (i + 1))) & 0x7F
        out.append(b << 1)
    return bytes(out)


def nt_response(auth_challenge, peer_challenge, user, password):
    challenge = hashlib.sha1(peer_challenge + auth_challenge + user.encode()).digest()[:8]
    pw_hash = MD4.new(password.encode("utf-16-le")).digest() + b"\0" * 5
    return b"".join(DES.new(des_key(pw_hash[i:i + 7]), DES.MODE_ECB).encrypt(challenge)
                    for i in (0, 7, 14))


def attr(t, value):
    return bytes([t, len(value) + 2]) + value


def vsa(vendor, vtype, value):
    return attr(26, struct.pack("!I", vendor) + bytes([vtype, len(value) + 2]) + value)


def mppe_decrypt(value, secret, req_auth):
    salt, blocks = value[:2], value[2:]
    out = b""
    prev = req_auth + salt
    for i in range(0, len(blocks), 16):
        pad = hashlib.md5(secret + prev).digest()
        block = blocks[i:i + 16]
        out += bytes(a ^ b for a, b in zip(block, pad))
        prev = block
    return out[1:1 + out[0]]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--seed", help="fixed challenges (same seed, same MPPE keys)")
    p.add_argument("--retransmit", type=float, help="resend every SECONDS until a reply")
    a = p.parse_args()
    secret = a.secret.encode()
    auth = os.urandom(16)
    if a.seed:
        auth_challenge = hashlib.sha256(b"auth" + a.seed.encode()).digest()[:16]
        peer_challenge = hashlib.sha256(b"peer" + a.seed.encode()).digest()[:16]
    else:
        auth_challenge = os.urandom(16)
        peer_challenge = os.urandom(16)
    resp = nt_response(auth_challenge, peer_challenge, a.user, a.password)
    ms_chap2_response = bytes([1, 0]) + peer_challenge + b"\0" * 8 + resp
    ident = os.urandom(1)[0]
    body = (attr(80, b"\0" * 16) + attr(1, a.user.encode())
            + vsa(311, 11, auth_challenge) + vsa(311, 25, ms_chap2_response))
    header = struct.pack("!BBH", 1, ident, 20 + len(body)) + auth
    packet = header + body
    ma = hmac.new(secret, packet, hashlib.md5).digest()
    packet = header + attr(80, ma) + body[18:]
    host, _, port = a.server.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    deadline = start + a.timeout
    every = a.retransmit or a.timeout
    sent = 0
    data = None
    while data is None:
        now = time.monotonic()
        if now >= deadline:
            print(json.dumps({"code": None, "sent": sent, "elapsed": round(now - start, 3)}))
            return
        s.sendto(packet, (host, int(port)))
        sent += 1
        resend_at = min(deadline, now + every)
        while data is None and time.monotonic() < resend_at:
            s.settimeout(max(0.001, resend_at - time.monotonic()))
            try:
                got, _ = s.recvfrom(4096)
            except socket.timeout:
                break
            if len(got) >= 20 and got[1] == ident:
                length = struct.unpack("!H", got[2:4])[0]
                got = got[:length]
                if hashlib.md5(got[:4] + auth + got[20:] + secret).digest() == got[4:20]:
                    data = got
    elapsed = round(time.monotonic() - start, 3)
    code, rid, length = struct.unpack("!BBH", data[:4])
    expected = hashlib.md5(data[:4] + auth + data[20:] + secret).digest()
    out = {"code": code, "sent": sent, "elapsed": elapsed,
           "response_authenticator_valid": hmac.compare_digest(expected, data[4:20]),
           "ms_chap2_success": False, "send_key": None, "recv_key": None,
           "message_authenticator_valid": None, "reply_message": ""}
    pos = 20
    zeroed = b""
    ma_value = None
    while pos + 2 <= len(data):
        t, l = data[pos], data[pos + 1]
        v = data[pos + 2:pos + l]
        zeroed += attr(t, b"\0" * 16) if t == 80 else attr(t, v)
        if t == 18:
            out["reply_message"] += v.decode(errors="replace")
        if t == 26 and len(v) > 6 and struct.unpack("!I", v[:4])[0] == 311:
            vt, vl = v[4], v[5]
            vv = v[6:4 + vl]
            if vt == 26:
                out["ms_chap2_success"] = True
            elif vt == 16:
                out["send_key"] = mppe_decrypt(vv, secret, auth).hex()
            elif vt == 17:
                out["recv_key"] = mppe_decrypt(vv, secret, auth).hex()
        if t == 80:
            ma_value = v
        pos += l
    if ma_value is not None:
        mac = hmac.new(secret, data[:4] + auth + zeroed, hashlib.md5).digest()
        out["message_authenticator_valid"] = hmac.compare_digest(mac, ma_value)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
