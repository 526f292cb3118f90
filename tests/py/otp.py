#!/usr/bin/env python3
"""HOTP/TOTP codes from the Python standard library (hmac, hashlib, base64).

The end-to-end tests compute the codes they type with this script, not with
the radmfa-otp crate they test, so a bug in that crate cannot agree with
itself (RFC 4226 section 5.3, RFC 6238 section 4).

Usage:
  otp.py hotp SECRET_B32 COUNTER [COUNTER...] [--algorithm sha1] [--digits 6]
  otp.py totp SECRET_B32 UNIX_TIME [UNIX_TIME...] [--algorithm sha1]
         [--digits 6] [--period 30]
  otp.py key SECRET_B32
  otp.py selftest

SECRET_B32 may also be `hex:` followed by the raw key in hex; `key` prints
the raw key of a base32 secret in hex. Prints one code per line, in the order given. `selftest` checks the RFC 4226
appendix D and RFC 6238 appendix B vectors and exits non-zero on a mismatch.
"""

import argparse
import base64
import hashlib
import hmac
import struct
import sys


def key_of(text):
    """`hex:...` is the raw key in hex, anything else base32 (RFC 4648)."""
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    text = text.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key, counter, algorithm="sha1", digits=6):
    mac = hmac.new(key, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def totp(key, unix_time, algorithm="sha1", digits=6, period=30):
    return hotp(key, unix_time // period, algorithm, digits)


def selftest():
    key20 = b"12345678901234567890"
    rfc4226 = ["755224", "287082", "359152", "969429", "338314",
               "254676", "287922", "162583", "399871", "520489"]
    for counter, want in enumerate(rfc4226):
        assert hotp(key20, counter) == want, ("hotp", counter)
    keys = {"sha1": key20, "sha256": b"12345678901234567890123456789012",
            "sha512": b"1234567890123456789012345678901234567890123456789012345678901234"}
    rfc6238 = [(59, "94287082", "46119246", "90693936"),
               (1111111109, "07081804", "68084774", "25091201"),
               (1111111111, "14050471", "67062674", "99943326"),
               (1234567890, "89005924", "91819424", "93441116"),
               (2000000000, "69279037", "90698825", "38618901"),
               (20000000000, "65353130", "77737706", "47863826")]
    for t, *codes in rfc6238:
        for alg, want in zip(("sha1", "sha256", "sha512"), codes):
            assert totp(keys[alg], t, alg, 8) == want, ("totp", alg, t)
    print("ok")


def main():
    if sys.argv[1:] == ["selftest"]:
        selftest()
        return
    if len(sys.argv) == 3 and sys.argv[1] == "key":
        print(key_of(sys.argv[2]).hex())
        return
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["hotp", "totp"])
    p.add_argument("secret")
    p.add_argument("values", nargs="+", type=int)
    p.add_argument("--algorithm", default="sha1", choices=["sha1", "sha256", "sha512"])
    p.add_argument("--digits", type=int, default=6)
    p.add_argument("--period", type=int, default=30)
    a = p.parse_args()
    key = key_of(a.secret)
    for v in a.values:
        if a.kind == "hotp":
            print(hotp(key, v, a.algorithm, a.digits))
        else:
            print(totp(key, v, a.algorithm, a.digits, a.period))


if __name__ == "__main__":
    main()
