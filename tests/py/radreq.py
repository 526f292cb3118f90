#!/usr/bin/env python3
"""Send one RADIUS request with pyrad and print what came back, as JSON.

Used by the radmfa end-to-end tests (tests/*.rs). The packet is built with
pyrad (User-Password hiding, Message-Authenticator, Accounting Request
Authenticator); the exact same bytes are sent `--sends` times from one UDP
socket (same source address and port, so a retransmission in the sense of
RFC 5080), and each send waits up to `--timeout` seconds for a reply.

Every reply is checked independently of pyrad as well: the Response
Authenticator (RFC 2865 section 3) and the Message-Authenticator (RFC 3579
section 3.2) are recomputed here with hashlib/hmac.

Output (stdout, one JSON object):
  {"request_hex": "...", "request_id": 12,
   "replies": [null | {"code": 2, "code_name": "Access-Accept", "id": 12,
                       "raw_hex": "...", "first_attribute_type": 80,
                       "attributes": [{"type": 80, "name": "...", "hex": "...",
                                       "text": "..." | null}],
                       "response_authenticator_valid": true,
                       "message_authenticator_valid": true | false | null,
                       "pyrad_verify_reply": true}]}
"""

import argparse
import hashlib
import hmac
import json
import socket
import struct
import sys

from pyrad import packet
from pyrad.dictionary import Dictionary

CODE_NAMES = {
    1: "Access-Request",
    2: "Access-Accept",
    3: "Access-Reject",
    4: "Accounting-Request",
    5: "Accounting-Response",
    11: "Access-Challenge",
    12: "Status-Server",
}

REQUEST_CODES = {
    "access-request": packet.AccessRequest,
    "accounting-request": packet.AccountingRequest,
    "status-server": packet.StatusServer,
}

# attributes whose value is text, for a readable "text" field
TEXT_ATTRIBUTES = {1: "User-Name", 11: "Filter-Id", 18: "Reply-Message",
                   30: "Called-Station-Id", 31: "Calling-Station-Id",
                   32: "NAS-Identifier", 44: "Acct-Session-Id"}
OCTET_ATTRIBUTES = {24: "State", 25: "Class", 33: "Proxy-State",
                    80: "Message-Authenticator"}


def parse_attributes(body):
    """Split raw attribute bytes into (type, value) pairs; None if malformed."""
    attrs = []
    pos = 0
    while pos < len(body):
        if pos + 2 > len(body):
            return None
        typ = body[pos]
        length = body[pos + 1]
        if length < 2 or pos + length > len(body):
            return None
        attrs.append((typ, body[pos + 2:pos + length]))
        pos += length
    return attrs


def describe_reply(raw, request_raw, secret, request, dictionary):
    """Decode and verify one reply datagram."""
    if len(raw) < 20 or len(request_raw) < 20:
        return {"error": "short reply", "raw_hex": raw.hex()}
    code, ident, length = struct.unpack("!BBH", raw[:4])
    if length < 20 or length > len(raw):
        return {"error": "bad length", "raw_hex": raw.hex()}
    raw = raw[:length]
    request_auth = request_raw[4:20]
    body = raw[20:]
    attrs = parse_attributes(body)
    if attrs is None:
        return {"error": "malformed attributes", "raw_hex": raw.hex()}

    expected_auth = hashlib.md5(raw[:4] + request_auth + body + secret).digest()
    response_ok = hmac.compare_digest(expected_auth, raw[4:20])

    ma_ok = None
    ma_attrs = [value for (typ, value) in attrs if typ == 80]
    if ma_attrs:
        # zero the Message-Authenticator value(s) in place, put the Request
        # Authenticator in the header, HMAC-MD5 under the shared secret
        zeroed = bytearray()
        for (typ, value) in attrs:
            zeroed += bytes([typ, len(value) + 2])
            zeroed += (b"\x00" * 16) if typ == 80 else value
        # Accounting-Response to an Accounting-Request: the vector is 16
        # zero octets (as FreeRADIUS' rad_sign and pyrad do; RFC 5176
        # section 3.3 style). Otherwise the Request Authenticator (RFC 3579
        # section 3.2, RFC 5997 section 3).
        vector = request_auth
        if code == packet.AccountingResponse and \
                request.code == packet.AccountingRequest:
            vector = b"\x00" * 16
        mac = hmac.new(secret, raw[:4] + vector + bytes(zeroed),
                       hashlib.md5).digest()
        ma_ok = len(ma_attrs) == 1 and len(ma_attrs[0]) == 16 and \
            hmac.compare_digest(mac, ma_attrs[0])

    pyrad_ok = None
    try:
        reply = packet.Packet(packet=raw, secret=secret, dict=dictionary)
        pyrad_ok = bool(request.VerifyReply(
            reply, raw, enforce_ma=request.code in (packet.AccessRequest,
                                                    packet.StatusServer)))
    except Exception as exc:  # pylint: disable=broad-except
        pyrad_ok = "error: %s" % exc

    described = []
    for (typ, value) in attrs:
        name = TEXT_ATTRIBUTES.get(typ) or OCTET_ATTRIBUTES.get(typ) or \
            "Attr-%d" % typ
        text = None
        if typ in TEXT_ATTRIBUTES:
            text = value.decode("utf-8", errors="replace")
        described.append({"type": typ, "name": name, "hex": value.hex(),
                          "text": text})

    return {
        "code": code,
        "code_name": CODE_NAMES.get(code, "Code-%d" % code),
        "id": ident,
        "raw_hex": raw.hex(),
        "first_attribute_type": attrs[0][0] if attrs else None,
        "attributes": described,
        "response_authenticator_valid": response_ok,
        "message_authenticator_valid": ma_ok,
        "pyrad_verify_reply": pyrad_ok,
    }


def build_request(args, dictionary, secret):
    code = REQUEST_CODES[args.code]
    if code == packet.AccountingRequest:
        req = packet.AcctPacket(code=code, secret=secret, dict=dictionary)
    else:
        req = packet.AuthPacket(code=code, secret=secret, dict=dictionary)
    if args.id is not None:
        req.id = args.id
    if args.message_authenticator:
        # pyrad >= 2.5 puts Message-Authenticator first and fills it in
        req.add_message_authenticator()
    else:
        req.message_authenticator = False
    if args.user is not None:
        req["User-Name"] = args.user
    if args.password is not None:
        req["User-Password"] = req.PwCrypt(args.password)
    if args.state_hex is not None:
        req["State"] = bytes.fromhex(args.state_hex)
    for item in args.attr:
        name, sep, value = item.partition("=")
        if not sep:
            sys.exit("--attr wants NAME=VALUE, got %r" % item)
        attr = dictionary.attributes[name]
        if attr.type == "integer" and not attr.values.HasForward(value):
            req[name] = int(value)
        else:
            req[name] = value
    raw = req.RequestPacket()
    if code != packet.AccountingRequest:
        # AuthPacket.RequestPacket may create the authenticator lazily; keep
        # the one that is actually on the wire for verification
        req.authenticator = raw[4:20]
    return req, raw


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="HOST:PORT")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--dict", required=True, help="pyrad dictionary file")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="source address of the client socket")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--sends", type=int, default=1,
                        help="send the exact same datagram this many times")
    parser.add_argument("--code", choices=sorted(REQUEST_CODES),
                        default="access-request")
    parser.add_argument("--no-message-authenticator", dest="message_authenticator",
                        action="store_false")
    parser.add_argument("--id", type=int)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--state-hex")
    parser.add_argument("--attr", action="append", default=[],
                        help="NAME=VALUE, repeatable")
    parser.add_argument("--raw-hex",
                        help="send this datagram (hex) instead of the built one")
    args = parser.parse_args()

    secret = args.secret.encode()
    dictionary = Dictionary(args.dict)
    req, raw = build_request(args, dictionary, secret)
    if args.raw_hex is not None:
        # send these bytes verbatim (malformed or unsupported packets); replies
        # are still described, verified against the pyrad-built request
        raw = bytes.fromhex(args.raw_hex)

    host, _, port = args.server.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, 0))
    sock.settimeout(args.timeout)
    source = "%s:%d" % sock.getsockname()
    replies = []
    for _ in range(args.sends):
        sock.sendto(raw, (host, int(port)))
        try:
            data, _addr = sock.recvfrom(65535)
        except socket.timeout:
            replies.append(None)
            continue
        replies.append(describe_reply(data, raw, secret, req, dictionary))
    sock.close()

    json.dump({"request_hex": raw.hex(), "request_id": raw[1],
               "source": source,
               "replies": replies}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
