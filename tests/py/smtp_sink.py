#!/usr/bin/env python3
"""A test SMTP sink (aiosmtpd) that stores every message it accepts.

Each message is written to OUT as NNN.eml (the raw bytes as received) and
NNN.json (the envelope plus headers and body decoded by Python's email
package, an independent MIME parser), both complete before the server
answers 250 to DATA. The bound port is written to the ready file once the
server listens.

Options:
  --port 0           port to bind on 127.0.0.1 (0: any free port)
  --ready-file F     where to write the bound port
  --out DIR          where to write the messages
  --tls-cert/--tls-key PEM files: with --starttls, offer (and require)
                     STARTTLS; with --implicit-tls, speak TLS from the start
  --auth USER:PASS   require SMTP AUTH (PLAIN/LOGIN) with these credentials
  --max-seconds N    exit after N seconds (a guard against orphans)

Needs the PyPI package `aiosmtpd` (python3 -m pip install aiosmtpd).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out, "%03d" % self.count)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls_version": tls_version(server),
            "auth_login": (
                session.auth_data.login.decode("utf-8", "replace")
                if isinstance(session.auth_data, LoginPassword)
                else None
            ),
            "header_names": [k for k in msg.keys()],
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "to_addresses": [a.addr_spec for a in msg["To"].addresses] if msg["To"] else [],
            "to_names": [a.display_name for a in msg["To"].addresses] if msg["To"] else [],
            "subject": str(msg.get("Subject", "")),
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": body.get_content() if body is not None else None,
        }
        for path, data in ((base + ".eml", raw), (base + ".json", json.dumps(record).encode())):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return "250 OK stored"


def tls_version(server):
    """The TLS version of the connection (STARTTLS or implicit), or None."""
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    return ssl_object.version() if ssl_object is not None else None


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd itself answers 535 (its default, handled=True,
        # would leave the client waiting for a reply).
        return AuthResult(success=False, handled=False)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true")
    mode.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args()

    os.makedirs(args.out, exist_ok=True)
    ctx = None
    if args.starttls or args.implicit_tls:
        if not (args.tls_cert and args.tls_key):
            p.error("--starttls/--implicit-tls need --tls-cert and --tls-key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

    kwargs = {}
    if args.starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # aiosmtpd refuses AUTH before TLS by default; keep that, except
            # when the whole connection is TLS (session.ssl is then set).
            auth_require_tls=not args.implicit_tls,
        )
    sink = Sink(args.out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", **kwargs),
        host="127.0.0.1",
        port=args.port,
        ssl=ctx if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.ready_file)
    async with server:
        try:
            await asyncio.wait_for(server.serve_forever(), args.max_seconds)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
