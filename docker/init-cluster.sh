#!/bin/sh
# radmfa-init-cluster CA_DIR OUT_DIR NODE_ID...
#
# One-time set-up of the secrets a radmfa cluster shares, run by the `init`
# service of docker/compose.yaml (and usable as is on a bare host):
#
#   CA_DIR/ca.pem, CA_DIR/ca.key   the peer-link CA (`radmfa cluster ca`); the
#                                  CA key stays here and never reaches a node
#   OUT_DIR/ca.pem                 the CA certificate every node trusts
#   OUT_DIR/node-N.pem, .key       each node's peer-link certificate (`radmfa
#                                  cluster cert`), naming node N
#   OUT_DIR/cluster.key            the State MAC key ([challenge] cluster_key_file):
#                                  the same on every node, or a challenge
#                                  answered on another node is rejected
#   OUT_DIR/seed.key               the seed encryption key ([server] key_file):
#                                  replicas receive the primary's sealed TOTP
#                                  seeds and PINs, so they need the same key
#   OUT_DIR/gateway.key            the API key shared with the gateway simulator
#   OUT_DIR/vapid.key              the VAPID key of push approvals ([push]
#                                  vapid_key_file): the same on every node, or
#                                  a browser registered through one node gets
#                                  no push from the others
#
# Idempotent: existing files are kept (re-running never rotates a key that a
# running cluster uses); missing ones are created. Keys are 32 random bytes as
# 64 hex digits, mode 0600.
set -eu

if [ "$#" -lt 3 ]; then
    echo "usage: $0 CA_DIR OUT_DIR NODE_ID..." >&2
    exit 2
fi
ca_dir=$1
out_dir=$2
shift 2
umask 077
mkdir -p "$ca_dir" "$out_dir"

# A new random key file, written under a temporary name and renamed, so a
# reader never sees half a key.
new_key() {
    if [ ! -s "$1" ]; then
        head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > "$1.tmp"
        echo >> "$1.tmp"
        if [ "$(tr -d '\n' < "$1.tmp" | wc -c)" -ne 64 ]; then
            echo "cannot generate $1" >&2
            exit 1
        fi
        mv "$1.tmp" "$1"
        echo "created $1"
    fi
}

if [ ! -s "$ca_dir/ca.pem" ]; then
    radmfa cluster ca --dir "$ca_dir"
fi
for id in "$@"; do
    if [ ! -s "$ca_dir/node-$id.pem" ]; then
        radmfa cluster cert --dir "$ca_dir" --node-id "$id"
    fi
    for f in "node-$id.pem" "node-$id.key"; do
        if [ ! -s "$out_dir/$f" ]; then
            cp "$ca_dir/$f" "$out_dir/$f.tmp"
            mv "$out_dir/$f.tmp" "$out_dir/$f"
        fi
    done
done
cp "$ca_dir/ca.pem" "$out_dir/ca.pem.tmp"
chmod 0644 "$out_dir/ca.pem.tmp"
mv "$out_dir/ca.pem.tmp" "$out_dir/ca.pem"

new_key "$out_dir/cluster.key"
new_key "$out_dir/seed.key"
new_key "$out_dir/gateway.key"
# The VAPID key (P-256, PKCS#8 PEM) as `radmfa cluster init` writes it, made
# in a scratch directory whose other files are discarded.
if [ ! -s "$out_dir/vapid.key" ]; then
    scratch=$(mktemp -d "$out_dir/.vapid.XXXXXX")
    radmfa cluster init --dir "$scratch" --nodes 1 >/dev/null
    mv "$scratch/vapid.key" "$out_dir/vapid.key"
    rm -rf "$scratch"
    echo "created $out_dir/vapid.key"
fi
echo "cluster secrets ready in $out_dir"
