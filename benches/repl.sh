#!/usr/bin/env bash
# Replication benchmark (DESIGN.md §6 and §9): two real radmfa processes on
# loopback, a primary holding USERS users (each with a sealed TOTP seed) and a
# replica started empty.
#
#   bash benches/repl.sh [--users 1000000] [--writes 2000] [--skip-build] [--keep]
#                        [--save-store DIR | --store DIR] [--store-cache-mib N]
#
# --save-store DIR keeps a copy of the imported primary (its data directory,
# seed key and load users) in DIR; --store DIR starts the next runs from a
# copy of it instead of generating and importing again (minutes for a
# million users). Every phase after the import is the same either way.
# --store-cache-mib N sets [server] store_cache_mib on both nodes (default:
# the configuration's default).
#
# Prints, then one JSON line with everything:
#   * import time of the users (offline `radmfa user import`),
#   * start-up time of the primary holding them (spawn -> ready file),
#   * snapshot catch-up: spawn of the empty replica -> its log position equals
#     the primary's (the import leaves the changelog trimmed to
#     changelog_keep, so the replica needs the snapshot; a store saved by an
#     older version is trimmed by the primary at start instead),
#   * replication lag of a burst of admin writes (p50/p99/max, ms),
#   * memory at every phase, one line each and in "memory" of the JSON:
#     primary ready, primary after the inline TOTP load, primary after
#     serving the snapshot, replica after catching up, both after the write
#     burst; each with VmRSS, VmHWM (peak so far) and the anonymous part
#     (smaps_rollup), and whether the RSS is under 256 MB.
# Targets (DESIGN.md §9): lag p99 < 100 ms, catch-up < 30 s, RSS < 256 MB
# in every phase on both nodes, start-up < 2 s. The seed product's sizing
# table asks 32 GB of RAM for 200,000+ users.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/benches/lib.sh"
users=1000000 writes=2000 build=1 keep=0 load_users=10000 save_store= store= cache_mib=
while [[ $# -gt 0 ]]; do
    case $1 in
        --users) users=$2; shift 2 ;;
        --writes) writes=$2; shift 2 ;;
        --skip-build) build=0; shift ;;
        --keep) keep=1; shift ;;
        --save-store) save_store=$2; shift 2 ;;
        --store) store=$2; shift 2 ;;
        --store-cache-mib) cache_mib=$2; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "repl.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
(( users >= load_users )) || load_users=$users

if (( build )); then
    cargo build --release -p radmfa -p radmfa-loadgen --manifest-path "$root/Cargo.toml" >&2
fi
target=${CARGO_TARGET_DIR:-$root/target}
radmfa=$target/release/radmfa
loadgen=$target/release/radmfa-loadgen

work=$(mktemp -d /tmp/radmfa-repl-bench.XXXXXX)
cleanup() {
    # start() runs in $(...), a subshell: the pids are kept in files.
    for f in "$work"/pid*; do [[ -e $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if (( keep )); then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
tcp_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# mem PHASE NODE PID: records the node's resident memory (VmRSS), its peak so
# far (VmHWM) and the anonymous part (heap: smaps_rollup) at PHASE in
# $work/mem.tsv, and prints it with whether it is under the 256 MB target.
mem() {
    local phase=$1 node=$2 pid=$3 rss hwm anon
    rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    anon=$(awk '/^Anonymous/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/smaps_rollup")
    printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$node" "$rss" "$hwm" "$anon" >> "$work/mem.tsv"
    printf '   %-8s %-22s RSS %6s MB (peak so far %6s MB, anonymous %6s MB): %s\n' "$node" "$phase" \
        "$rss" "$hwm" "$anon" "$(awk -v r="$rss" 'BEGIN { print (r < 256 ? "under 256 MB" : "OVER 256 MB") }')" >&2
}
secret=bench-secret

"$radmfa" cluster ca --dir "$work/certs" >/dev/null
for id in 1 2; do "$radmfa" cluster cert --dir "$work/certs" --node-id "$id" >/dev/null; done
python3 -c 'import os; print(os.urandom(32).hex())' > "$work/cluster.key"
chmod 600 "$work/cluster.key"
p1=$(tcp_port) p2=$(tcp_port)

config() { # id role own_port peer_id peer_port
    cat > "$work/node$1.toml" <<EOF
[server]
node_name = "bench-$1"
node_id = $1
data_dir = "$work/node$1"
key_file = "$work/seed.key"
${cache_mib:+store_cache_mib = $cache_mib}

[log]
format = "human"
level = "warn"

[radius]
listen = ["127.0.0.1:0"]

[password]
memory_kib = 1024
iterations = 1
cache_ttl_secs = 3600

[challenge]
cluster_key_file = "$work/cluster.key"

[[policy]]
name = "default"
first_factor = "local"
otp_mode = "auto"
unenrolled = "reject"

[[client]]
name = "bench"
address = "127.0.0.1/32"
secret = "$secret"
policy = "default"
require_message_authenticator = true

[cluster]
listen = "127.0.0.1:$3"
ca = "$work/certs/ca.pem"
cert = "$work/certs/node-$1.pem"
key = "$work/certs/node-$1.key"
role = "$2"
changelog_keep = 100000

[[cluster.peer]]
node_id = $4
address = "127.0.0.1:$5"
EOF
}
config 1 primary "$p1" 2 "$p2"
config 2 replica "$p2" 1 "$p1"

start() { # id -> pid; waits for the ready file
    local id=$1
    "$radmfa" --config "$work/node$id.toml" serve --ready-file "$work/ready$id.json" \
        > "$work/node$id.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$work/pid$id"
    wait_ready "$work/ready$id.json" "$pid" "$work/node$id.log" 12000 0.005 \
        "repl.sh: node $id exited" "repl.sh: node $id not ready"
    echo "$pid"
}
status() { "$radmfa" --config "$work/node$1.toml" status --json; }
seq_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])'; }

if [[ -n $store ]]; then
    [[ -d $store/node1 && -s $store/seed.key && -s $store/load.csv ]] \
        || { echo "repl.sh: $store holds no store saved by --save-store" >&2; exit 2; }
    echo "== primary store copied from $store ($(du -sh "$store/node1" | cut -f1))" >&2
    cp -a "$store/node1" "$store/seed.key" "$store/load.csv" "$work/"
    import_s=0
    users=$(cat "$store/users")
    (( users >= load_users )) || load_users=$users
else
    echo "== $users users: generating" >&2
    "$loadgen" gen-users --count "$load_users" --out "$work/load.csv" >/dev/null
    python3 - "$work/fill.csv" "$((users - load_users))" <<'EOF'
import base64, os, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("name,totp_secret\n")
    for i in range(n):
        f.write("fill%07d,%s\n" % (i, base64.b32encode(os.urandom(20)).decode()))
EOF
    t0=$(now)
    "$radmfa" --config "$work/node1.toml" user import --csv "$work/load.csv" >/dev/null
    if (( users > load_users )); then
        "$radmfa" --config "$work/node1.toml" user import --csv "$work/fill.csv" >/dev/null
    fi
    import_s=$(since "$t0")
    echo "   imported in ${import_s} s; store on disk: $(du -sh "$work/node1" | cut -f1)" >&2

    if [[ -n $save_store ]]; then
        mkdir -p "$save_store"
        cp -a "$work/node1" "$work/seed.key" "$work/load.csv" "$save_store/"
        echo "$users" > "$save_store/users"
    fi
fi

echo "== primary start-up" >&2
t0=$(now)
pid1=$(start 1)
startup_s=$(since "$t0")
sleep 1
rss1_ready=$(rss_mb "$pid1")
mem ready primary "$pid1"
addr1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["radius_udp"][0])' "$work/ready1.json")
echo "   ready in ${startup_s} s, RSS ${rss1_ready} MB; inline TOTP load on $load_users users (their first logins pay argon2: not a throughput figure, see run.sh)" >&2
load_json=$("$loadgen" --server "$addr1" --secret "$secret" --users "$work/load.csv" \
    --scenario inline --duration 10 --warmup 2 --json 2>/dev/null | tail -1)
rss1_load=$(rss_mb "$pid1")
mem after_load primary "$pid1"
load_rate=$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v.get("throughput_tps", v.get("tps", "?")))' "$load_json" 2>/dev/null || echo "?")
echo "   after load: RSS ${rss1_load} MB ($load_rate tx/s)" >&2

want=$(status 1 | seq_of)
echo "== empty replica: snapshot catch-up to seq $want" >&2
t0=$(now)
pid2=$(start 2)
startup2_s=$(since "$t0")
while :; do
    got=$(status 2 | seq_of)
    [[ $got -ge $want ]] && break
    kill -0 "$pid2" 2>/dev/null || { cat "$work/node2.log" >&2; exit 1; }
    sleep 0.1
done
catchup_s=$(since "$t0")
sleep 1
rss2=$(rss_mb "$pid2")
rss1_served=$(rss_mb "$pid1")
echo "   caught up in ${catchup_s} s (ready in ${startup2_s} s); replica RSS ${rss2} MB, primary RSS ${rss1_served} MB" >&2
mem after_snapshot primary "$pid1"
mem after_catchup replica "$pid2"

echo "== write burst: $writes admin writes on the primary" >&2
lag_json=$(python3 "$root/benches/repl_lag.py" --primary "$work/node1/control.sock" \
    --replica "$work/node2/control.sock" --user bench000001 --writes "$writes")
echo "   $lag_json" >&2
sleep 1
mem after_writes primary "$pid1"
mem after_writes replica "$pid2"

python3 - "$users" "$import_s" "$startup_s" "$rss1_ready" "$rss1_load" "$catchup_s" "$rss2" "$lag_json" "$load_rate" "$rss1_served" "$work/mem.tsv" <<'EOF'
import json, sys
users, imp, start, rss_ready, rss_load, catchup, rss2, lag, rate, rss_served, mem = sys.argv[1:]
lag = json.loads(lag)
phases = []
for line in open(mem):
    phase, node, rss, hwm, anon = line.split()
    phases.append({"phase": phase, "node": node, "rss_mb": float(rss),
                   "peak_rss_mb": float(hwm), "anon_mb": float(anon),
                   "under_256_mb": float(rss) < 256})
out = {
    "users": int(users),
    "import_s": float(imp),
    "primary_startup_s": float(start),
    "primary_rss_mb_ready": float(rss_ready),
    "primary_rss_mb_after_load": float(rss_load),
    "inline_load_tps": rate,
    "snapshot_catchup_s": float(catchup),
    "replica_rss_mb": float(rss2),
    "primary_rss_mb_after_snapshot": float(rss_served),
    **{k: v for k, v in lag.items()},
    "memory": phases,
}
targets = {
    "lag_ms_p99 < 100": (lag.get("lag_ms_p99") or 1e9) < 100,
    "snapshot_catchup_s < 30": float(catchup) < 30,
    "rss_mb < 256 (every phase, both nodes)": all(p["under_256_mb"] for p in phases),
    "primary_startup_s < 2": float(start) < 2,
}
out["targets_met"] = targets
print(json.dumps(out))
EOF
