#!/usr/bin/env bash
# radmfa vs FreeRADIUS 3.2 load benchmark (PAP + TOTP, inline and Access-Challenge).
# See benches/README.md for what it measures and how to read it.
#
#   bash benches/run.sh [--duration 20] [--warmup 3] [--users 10000] [--outstanding 256]
#                       [--sockets 4] [--scenarios "inline challenge"] [--servers "radmfa freeradius"]
#                       [--no-fr-replay-check] [--no-half-load] [--skip-build] [--keep]
#                       [--results FILE]   (also write every run's JSON report there, one per line)
#
# Needs: cargo, freeradius (3.2, with rlm_totp), taskset, python3. Two CPUs: the server
# runs on CPU 0, the load generator on CPU 1 (override with --server-cpu / --loadgen-cpu).
set -euo pipefail

duration=20 warmup=3 nusers=10000 outstanding=256 sockets=4
scenarios="inline challenge" servers="radmfa freeradius"
secret=bench-secret-0123 fr_replay=1 half_load=1 build=1 keep=0 results_out=
server_cpu=0 loadgen_cpu=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --users) nusers=$2; shift 2 ;;
        --outstanding) outstanding=$2; shift 2 ;;
        --sockets) sockets=$2; shift 2 ;;
        --scenarios) scenarios=$2; shift 2 ;;
        --servers) servers=$2; shift 2 ;;
        --server-cpu) server_cpu=$2; shift 2 ;;
        --loadgen-cpu) loadgen_cpu=$2; shift 2 ;;
        --no-fr-replay-check) fr_replay=0; shift ;;
        --no-half-load) half_load=0; shift ;;
        --skip-build) build=0; shift ;;
        --keep) keep=1; shift ;;
        --results) results_out=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
radmfa=$target/release/radmfa
loadgen=$target/release/radmfa-loadgen

for tool in taskset python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
if [[ " $servers " == *" freeradius "* ]]; then
    command -v freeradius >/dev/null || { echo "run.sh: freeradius is required (apt-get install freeradius)" >&2; exit 1; }
fi

if [[ $build == 1 ]]; then
    echo "== cargo build --release -p radmfa -p radmfa-loadgen"
    cargo build --release -p radmfa -p radmfa-loadgen
fi
[[ -x $loadgen ]] || { echo "run.sh: $loadgen missing (build first)" >&2; exit 1; }
if [[ " $servers " == *" radmfa "* && ! -x $radmfa ]]; then
    echo "run.sh: $radmfa missing (build first)" >&2; exit 1
fi

work=$(mktemp -d /tmp/radmfa-bench.XXXXXX)
results=$work/results.jsonl
: > "$results"
server_pid=

stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
cleanup() {
    stop_server
    if [[ $keep == 1 ]]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Process CPU time (all threads) in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else { for (i = 1; i <= NF; i++) if (n[i] == "RcvbufErrors") print $i } }' /proc/net/snmp
}
clk_tck=$(getconf CLK_TCK)

# run_load SERVER SCENARIO KIND ADDR [extra loadgen args...]; appends one JSON line to $results.
run_load() {
    local server=$1 scenario=$2 kind=$3 addr=$4
    shift 4
    local t0 c0 d0 t1 c1 d1 json
    t0=$(date +%s.%N); c0=$(cpu_ticks "$server_pid"); d0=$(udp_rcvbuf_errors)
    json=$(taskset -c "$loadgen_cpu" "$loadgen" --server "$addr" --secret "$secret" \
        --users "$work/users.csv" --scenario "$scenario" --outstanding "$outstanding" \
        --sockets "$sockets" --label "$server" --json "$@")
    t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid"); d1=$(udp_rcvbuf_errors)
    python3 - "$json" "$kind" "$t0" "$t1" "$c0" "$c1" "$clk_tck" "$d0" "$d1" >> "$results" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
kind, t0, t1, c0, c1, tck, d0, d1 = sys.argv[2:10]
r["kind"] = kind
wall = float(t1) - float(t0)
# Averaged over warm-up + measured window + drain: an indication, not an exact figure.
r["server_cpu"] = (int(c1) - int(c0)) / int(tck) / wall if wall > 0 else None
r["udp_rcvbuf_errors"] = int(d1 or 0) - int(d0 or 0)
print(json.dumps(r))
EOF
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("   %-10s %-9s %-10s %9.0f tx/s  p50 %7.0f us  p99 %7.0f us  accept %d reject %d other %d timeouts %d" % (r["label"], r["scenario"], r["kind"], r["tps"], r["latency_us"]["p50"], r["latency_us"]["p99"], r["accept"], r["reject"], r["other"], r["timeouts"]))' "$(tail -n 1 "$results")"
}

saturation_tps() {
    python3 - "$results" "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["label"] == sys.argv[2] and r["scenario"] == sys.argv[3] and r["kind"] == "saturation":
        print(int(r["tps"]))
EOF
}

echo "== machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "   server pinned to CPU $server_cpu, load generator to CPU $loadgen_cpu; $duration s measured after $warmup s warm-up per run"
echo "   $outstanding transactions in flight over $sockets sockets; $nusers users; work dir $work"

"$loadgen" gen-users --count "$nusers" --out "$work/users.csv"

# ---------------------------------------------------------------- radmfa
if [[ " $servers " == *" radmfa "* ]]; then
    echo "== radmfa ($("$radmfa" --version 2>/dev/null || echo radmfa))"
    cat > "$work/radmfa.toml" <<EOF
# Generated by benches/run.sh.
[server]
node_name = "bench"
node_id = 1
data_dir = "$work/radmfa-data"

[log]
format = "human"
level = "warn"

[radius]
listen = ["127.0.0.1:0"]

[password]
# Lowered so that importing and first logins of $nusers users take seconds; after the
# warm-up pass every login is served by the verified-credential cache anyway.
memory_kib = 1024
iterations = 1
cache_ttl_secs = 3600

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
EOF
    "$radmfa" --config "$work/radmfa.toml" check-config
    t0=$(date +%s.%N)
    "$radmfa" --config "$work/radmfa.toml" user import --csv "$work/users.csv"
    echo "   imported $nusers users in $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)") s"
    taskset -c "$server_cpu" "$radmfa" --config "$work/radmfa.toml" serve --ready-file "$work/ready.json" \
        > "$work/radmfa.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        [[ -s $work/ready.json ]] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/radmfa.log" >&2; echo "run.sh: radmfa exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -s $work/ready.json ]] || { echo "run.sh: radmfa did not become ready" >&2; exit 1; }
    addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["radius_udp"][0])' "$work/ready.json")
    echo "   listening on $addr (pid $server_pid)"
    echo "   warm-up pass: every user logs in once (inline) so radmfa's verified-credential cache"
    echo "   holds every password before measuring (it also uses up each user's current TOTP step)"
    taskset -c "$loadgen_cpu" "$loadgen" --server "$addr" --secret "$secret" --users "$work/users.csv" \
        --one-pass --outstanding 64 --sockets "$sockets" --timeout-ms 5000 --label radmfa-warmup \
        | sed 's/^/     /'
    for scenario in $scenarios; do
        run_load radmfa "$scenario" saturation "$addr" --duration "$duration" --warmup "$warmup"
    done
    if [[ $half_load == 1 ]]; then
        for scenario in $scenarios; do
            sat=$(saturation_tps radmfa "$scenario")
            rate=$((sat / 2))
            [[ $rate -gt 0 ]] || continue
            run_load radmfa "$scenario" half-load "$addr" --duration "$duration" --warmup "$warmup" --rate "$rate"
        done
    fi
    stop_server
fi

# ---------------------------------------------------------------- FreeRADIUS
if [[ " $servers " == *" freeradius "* ]]; then
    echo "== FreeRADIUS ($(freeradius -v 2>/dev/null | head -1 | sed 's/^radiusd: //'))"
    for scenario in $scenarios; do
        port=$(free_udp_port)
        replay_flag=()
        [[ $fr_replay == 1 ]] || replay_flag=(--no-replay-check)
        bash "$root/benches/freeradius/setup.sh" --dir "$work/fr-$scenario" --users "$work/users.csv" \
            --mode "$scenario" --port "$port" --secret "$secret" "${replay_flag[@]}" | sed 's/^/   /'
        freeradius -C -d "$work/fr-$scenario" >/dev/null 2>&1 \
            || { freeradius -XC -d "$work/fr-$scenario" | tail -20 >&2; exit 1; }
        taskset -c "$server_cpu" freeradius -f -d "$work/fr-$scenario" > "$work/fr-$scenario.out" 2>&1 &
        server_pid=$!
        for _ in $(seq 1 300); do
            grep -q "Ready to process requests" "$work/fr-$scenario/log/radius.log" 2>/dev/null && break
            kill -0 "$server_pid" 2>/dev/null || { cat "$work/fr-$scenario/log/radius.log" >&2; echo "run.sh: freeradius exited" >&2; exit 1; }
            sleep 0.1
        done
        addr=127.0.0.1:$port
        echo "   listening on $addr (pid $server_pid)"
        run_load freeradius "$scenario" saturation "$addr" --duration "$duration" --warmup "$warmup"
        if [[ $half_load == 1 ]]; then
            sat=$(saturation_tps freeradius "$scenario")
            rate=$((sat / 2))
            if [[ $rate -gt 0 ]]; then
                run_load freeradius "$scenario" half-load "$addr" --duration "$duration" --warmup "$warmup" --rate "$rate"
            fi
        fi
        stop_server
    done
fi

# ---------------------------------------------------------------- summary
python3 - "$results" "$fr_replay" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fr_replay = sys.argv[2] == "1"

def find(label, scenario, kind):
    for r in rows:
        if r["label"] == label and r["scenario"] == scenario and r["kind"] == kind:
            return r
    return None

def cpu(r):
    return "-" if r.get("server_cpu") is None else "%.0f%%" % (100 * r["server_cpu"])

scenarios = []
for r in rows:
    if r["scenario"] not in scenarios:
        scenarios.append(r["scenario"])

print()
print("== Saturation (closed loop, %s in flight)" % (rows[0]["outstanding"] if rows else "?"))
hdr = "%-10s %-11s %10s %9s %9s %9s %9s %9s %8s %8s %8s"
print(hdr % ("scenario", "server", "tx/s", "p50 us", "p99 us", "p99.9 us", "accept", "reject", "timeout", "srv cpu", "lg busy"))
for sc in scenarios:
    for label in ("radmfa", "freeradius"):
        r = find(label, sc, "saturation")
        if not r:
            continue
        l = r["latency_us"]
        print(hdr % (sc, label, "%.0f" % r["tps"], "%.0f" % l["p50"], "%.0f" % l["p99"], "%.0f" % l["p999"],
                     r["accept"], r["reject"] + r["other"], r["timeouts"], cpu(r),
                     "-" if r.get("loadgen_busy") is None else "%.0f%%" % (100 * r["loadgen_busy"])))
    a, b = find("radmfa", sc, "saturation"), find("freeradius", sc, "saturation")
    if a and b and b["tps"] > 0:
        print("%-10s ratio radmfa/FreeRADIUS: %.2fx throughput (target >= 2x)" % (sc, a["tps"] / b["tps"]))

half = [r for r in rows if r["kind"] == "half-load"]
if half:
    print()
    print("== Latency at half of each server's own saturation (open loop, latency from scheduled send)")
    hdr = "%-10s %-11s %8s %8s %8s %8s %9s %8s %8s %10s %8s"
    print(hdr % ("scenario", "server", "rate", "tx/s", "p50 us", "p99 us", "p99.9 us", "max us", "accepts",
                 "acc p99 us", "timeout"))
    for sc in scenarios:
        for label in ("radmfa", "freeradius"):
            r = find(label, sc, "half-load")
            if not r:
                continue
            l = r["latency_us"]
            note = ""
            if label == "radmfa":
                note = "  p99 < 1 ms target: %s" % ("met" if l["p99"] < 1000 else "MISSED")
            acc = r.get("accept_latency_us") or {}
            print(hdr % (sc, label, "%.0f" % (r["target_rate"] or 0), "%.0f" % r["tps"], "%.0f" % l["p50"],
                         "%.0f" % l["p99"], "%.0f" % l["p999"], "%.0f" % l["max"], r["accept"],
                         "%.0f" % acc["p99"] if r["accept"] else "-", r["timeouts"]) + note)

print()
print("Notes: a transaction is one login (inline: 1 round trip; challenge: 2). Accept vs reject:")
print("each TOTP step is accepted once per user, so with many logins per user per 30 s most")
print("logins end in a replay Reject after the full password + TOTP work (FreeRADIUS replay")
print("check: %s). 'srv cpu' = server CPU over the run (1 CPU = 100%%); 'lg busy' near 100%%" %
      ("on, rlm_cache" if fr_replay else "OFF, stock rlm_totp accepts replays"))
print("means the load generator may be the bottleneck. udp rcvbuf drops (system-wide): %s" %
      ", ".join("%s/%s/%s=%d" % (r["label"], r["scenario"], r["kind"], r["udp_rcvbuf_errors"]) for r in rows))
EOF
if [[ -n $results_out ]]; then
    cp "$results" "$results_out"
    echo "JSON reports written to $results_out"
fi
