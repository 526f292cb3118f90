#!/usr/bin/env bash
# Starts a throw-away OpenLDAP server for the directory tests.
#
#   tests/ldap/start-slapd.sh DIR PORT [LDAPS_PORT]
#
# Writes DIR/slapd.conf and DIR/db, starts slapd on ldap://127.0.0.1:PORT/ (StartTLS
# offered) and, when LDAPS_PORT is given, on ldaps://127.0.0.1:LDAPS_PORT/, in the
# background (pid in DIR/slapd.pid, log in DIR/slapd.log), waits until it answers, seeds
# tests/ldap/seed.ldif with ldapadd (so the memberof overlay fills memberOf) and exits 0.
# Stop it with: kill "$(cat DIR/slapd.pid)"
#
# TLS: tests/ldap/tls/server.pem (SAN IP:127.0.0.1, DNS:localhost; valid until 2126)
# signed by tests/ldap/tls/ca.pem. Test-only key material; the CA key was discarded.
#
# Needs slapd and ldap-utils (apt-get install slapd ldap-utils). Works as root and as a
# normal user: slapd runs as whoever starts it, with every file under DIR.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 DIR PORT [LDAPS_PORT]" >&2
    exit 2
fi
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
PORT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URL="ldap://127.0.0.1:${PORT}/"
LISTEN="$URL"
if [ $# -eq 3 ]; then
    LISTEN="$URL ldaps://127.0.0.1:${3}/"
fi

SLAPD=$(command -v slapd || true)
[ -z "$SLAPD" ] && [ -x /usr/sbin/slapd ] && SLAPD=/usr/sbin/slapd
if [ -z "$SLAPD" ] || ! command -v ldapadd >/dev/null || ! command -v ldapsearch >/dev/null; then
    echo "start-slapd.sh: slapd and ldap-utils are required (apt-get install slapd ldap-utils)" >&2
    exit 1
fi

SCHEMA=/etc/ldap/schema
[ -f "$SCHEMA/core.schema" ] || SCHEMA=/etc/openldap/schema
MODULES=/usr/lib/ldap
[ -d "$MODULES" ] || MODULES=/usr/lib64/openldap

mkdir -p "$DIR/db" "$DIR/tls"
cp "$HERE/tls/ca.pem" "$HERE/tls/server.pem" "$HERE/tls/server.key" "$DIR/tls/"
chmod 600 "$DIR/tls/server.key"
cat >"$DIR/slapd.conf" <<CONF
include         $SCHEMA/core.schema
include         $SCHEMA/cosine.schema
include         $SCHEMA/inetorgperson.schema
include         $SCHEMA/nis.schema

modulepath      $MODULES
moduleload      back_mdb
moduleload      memberof
moduleload      ppolicy

argsfile        $DIR/slapd.args

TLSCACertificateFile    $DIR/tls/ca.pem
TLSCertificateFile      $DIR/tls/server.pem
TLSCertificateKeyFile   $DIR/tls/server.key

database        mdb
maxsize         33554432
suffix          "dc=example,dc=org"
rootdn          "cn=admin,dc=example,dc=org"
rootpw          admin-secret
directory       $DIR/db
index           objectClass eq
index           uid,cn,member eq

overlay         memberof
memberof-group-oc   groupOfNames
memberof-member-ad  member
memberof-memberof-ad memberOf
memberof-refint     TRUE

overlay         ppolicy
ppolicy_default "cn=default,ou=policies,dc=example,dc=org"

access to attrs=userPassword
    by anonymous auth
    by self write
    by * none
access to *
    by users read
    by * none
CONF

"$SLAPD" -d 0 -h "$LISTEN" -f "$DIR/slapd.conf" >"$DIR/slapd.log" 2>&1 &
PID=$!
echo "$PID" >"$DIR/slapd.pid"

ok=""
for _ in $(seq 1 100); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "start-slapd.sh: slapd exited; log:" >&2
        cat "$DIR/slapd.log" >&2
        exit 1
    fi
    if ldapsearch -x -LLL -H "$URL" -b "" -s base "(objectClass=*)" namingContexts >/dev/null 2>&1; then
        ok=1
        break
    fi
    sleep 0.1
done
if [ -z "$ok" ]; then
    echo "start-slapd.sh: slapd did not answer on $URL; log:" >&2
    cat "$DIR/slapd.log" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
fi

if ! ldapadd -x -H "$URL" -D "cn=admin,dc=example,dc=org" -w admin-secret \
    -f "$HERE/seed.ldif" >"$DIR/seed.log" 2>&1; then
    echo "start-slapd.sh: seeding failed:" >&2
    cat "$DIR/seed.log" "$DIR/slapd.log" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
fi
exit 0
