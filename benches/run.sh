#!/usr/bin/env bash
# radmfa vs FreeRADIUS 3.2 load benchmark (PAP + TOTP, inline and Access-Challenge), and
# radmfa one-way SMS logins on one node and on two nodes behind nginx (scenario sms).
# See benches/README.md for what it measures and how to read it.
#
#   bash benches/run.sh [--duration 20] [--warmup 3] [--users 10000] [--outstanding 256]
#                       [--sockets 4] [--scenarios "inline challenge"] [--servers "radmfa freeradius"]
#                       [--no-fr-replay-check] [--no-half-load] [--skip-build] [--keep]
#                       [--fast-hash] [--no-cold]
#                       [--results FILE]   (also write every run's JSON report there, one per line)
#                       [--audit-shipping] [--primary-cpu N]   (radmfa again as a replica that
#                       ships its audit log to a primary this script starts on --primary-cpu,
#                       default the load generator's: throughput against standalone, and the
#                       audit shipping lag p99 under load)
#                       [--ship-rounds 3]   (interleaved standalone/shipping runs per scenario)
#                       [--sms-outstanding 64] [--sim-cpu N]   (scenario sms, radmfa only:
#                       --scenarios sms, or "inline challenge sms"; the 2-node part needs
#                       nginx and its stream module and is skipped without them)
#
# Needs: cargo, freeradius (3.2, with rlm_totp), taskset, python3. Two CPUs: the server
# runs on CPU 0, the load generator on CPU 1 (override with --server-cpu / --loadgen-cpu).
# Fairness: FreeRADIUS's thread pool is sized to the CPUs it is pinned to (its tuning
# advice; see benches/freeradius/setup.sh) and it runs twice per scenario, with the replay
# check radmfa also does (rlm_cache) and stock (--no-fr-replay-check: stock only).
# radmfa keeps its production argon2id parameters (19 MiB, 2 passes; --fast-hash lowers
# them as older versions of this script did) and is measured warm (every password in its
# verified-credential cache) and cold (a fresh process: the first login of each user costs
# an argon2 hash); the cold pass over every user says how long a restarted node takes to
# reach full speed (--no-cold skips the cold runs).
# Scenario sms: the radmfa node(s), nginx and the gateway simulator share the server CPU
# (--sim-cpu moves the simulator); FreeRADIUS is not needed for it.
set -euo pipefail

duration=20 warmup=3 nusers=10000 outstanding=256 sockets=4
scenarios="inline challenge" servers="radmfa freeradius"
secret=bench-secret-0123 fr_replay=1 half_load=1 build=1 keep=0 results_out= fast_hash=0 cold=1
server_cpu=0 loadgen_cpu=1 sim_cpu= sms_outstanding=64 ship=0 primary_cpu= ship_rounds=3
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
        --fast-hash) fast_hash=1; shift ;;
        --no-cold) cold=0; shift ;;
        --results) results_out=$2; shift 2 ;;
        --sms-outstanding) sms_outstanding=$2; shift 2 ;;
        --sim-cpu) sim_cpu=$2; shift 2 ;;
        --audit-shipping) ship=1; shift ;;
        --primary-cpu) primary_cpu=$2; shift 2 ;;
        --ship-rounds) ship_rounds=$2; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/benches/lib.sh"
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
radmfa=$target/release/radmfa
loadgen=$target/release/radmfa-loadgen
gwsim=$target/release/radmfa-gateway-sim
[[ -n $sim_cpu ]] || sim_cpu=$server_cpu
[[ -n $primary_cpu ]] || primary_cpu=$loadgen_cpu

# The TOTP scenarios (both servers) and the SMS scenario (radmfa only) run apart.
totp_scenarios= sms=0
for scenario in $scenarios; do
    case "$scenario" in
        inline|challenge) totp_scenarios="$totp_scenarios $scenario" ;;
        sms) sms=1 ;;
        *) echo "run.sh: unknown scenario $scenario (inline, challenge, sms)" >&2; exit 2 ;;
    esac
done
totp_scenarios=${totp_scenarios# }
if [[ $sms == 1 && " $servers " != *" radmfa "* ]]; then
    echo "run.sh: scenario sms runs radmfa only; add radmfa to --servers" >&2; exit 2
fi

for tool in taskset python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
if [[ " $servers " == *" freeradius "* && -n $totp_scenarios ]]; then
    command -v freeradius >/dev/null || { echo "run.sh: freeradius is required (apt-get install freeradius)" >&2; exit 1; }
fi

packages=(-p radmfa -p radmfa-loadgen)
[[ $sms == 0 ]] || packages+=(-p radmfa-gateway-sim)
if [[ $build == 1 ]]; then
    echo "== cargo build --release ${packages[*]}"
    cargo build --release "${packages[@]}"
fi
[[ -x $loadgen ]] || { echo "run.sh: $loadgen missing (build first)" >&2; exit 1; }
if [[ " $servers " == *" radmfa "* && ! -x $radmfa ]]; then
    echo "run.sh: $radmfa missing (build first)" >&2; exit 1
fi
if [[ $sms == 1 && ! -x $gwsim ]]; then
    echo "run.sh: $gwsim missing (build first)" >&2; exit 1
fi

work=$(mktemp -d /tmp/radmfa-bench.XXXXXX)
results=$work/results.jsonl
: > "$results"
server_pid=
# The gateway simulator (SMS scenario).
sim_pid=
# Processes whose CPU time a run reports (default: $server_pid; SMS: the nodes and nginx).
server_pids=
# radmfa configs whose peer-link counters a run reports (SMS scenario).
stat_confs=
# Helper processes of the SMS scenario (simulator, second node, nginx).
other_pids=()

stop_pid() {
    local pid=$1
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
stop_server() {
    stop_pid "$server_pid"
    server_pid=
}
stop_others() {
    local pid
    for pid in "${other_pids[@]}"; do
        stop_pid "$pid"
    done
    other_pids=()
}
cleanup() {
    stop_server
    stop_others
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
free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Process CPU time (all threads) in clock ticks, summed over the pids given.
cpu_ticks() {
    local pid t total=0
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
# Peer-link counters summed over the radmfa configs given, as one JSON object.
peer_counters() {
    local conf
    for conf in "$@"; do
        "$radmfa" --config "$conf" stats --json
    done | python3 -c '
import json, sys
keys = ("forwarded_out", "forwarded_in", "forward_failed")
tot = dict.fromkeys(keys, 0)
for line in sys.stdin:
    if line.strip():
        d = json.loads(line)
        for k in keys:
            tot[k] += int(d.get(k) or 0)
print(json.dumps(tot))'
}
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else { for (i = 1; i <= NF; i++) if (n[i] == "RcvbufErrors") print $i } }' /proc/net/snmp
}
clk_tck=$(getconf CLK_TCK)

# run_load SERVER SCENARIO KIND ADDR [extra loadgen args...]; appends one JSON line to $results.
# CPU: $server_pids (default $server_pid). With $stat_confs set, the peer-link counters of
# those radmfa nodes over the run are added to the report (forwarded share).
run_load() {
    local server=$1 scenario=$2 kind=$3 addr=$4
    shift 4
    local pids=${server_pids:-$server_pid} users_csv=$work/users.csv n_out=$outstanding n_sock=$sockets
    if [[ $scenario == sms ]]; then
        users_csv=$work/users-sms.csv n_out=$sms_outstanding n_sock=$sms_outstanding
    fi
    local t0 c0 d0 t1 c1 d1 json p0='{}' p1='{}' s0 s1
    # shellcheck disable=SC2086 # lists
    [[ -z $stat_confs ]] || p0=$(peer_counters $stat_confs)
    # shellcheck disable=SC2086
    t0=$(date +%s.%N); c0=$(cpu_ticks $pids); d0=$(udp_rcvbuf_errors); s0=$(cpu_ticks $sim_pid)
    json=$(taskset -c "$loadgen_cpu" "$loadgen" --server "$addr" --secret "$secret" \
        --users "$users_csv" --scenario "$scenario" --outstanding "$n_out" \
        --sockets "$n_sock" --label "$server" --json "$@")
    # shellcheck disable=SC2086
    t1=$(date +%s.%N); c1=$(cpu_ticks $pids); d1=$(udp_rcvbuf_errors); s1=$(cpu_ticks $sim_pid)
    # shellcheck disable=SC2086
    [[ -z $stat_confs ]] || p1=$(peer_counters $stat_confs)
    python3 - "$json" "$kind" "$t0" "$t1" "$c0" "$c1" "$clk_tck" "$d0" "$d1" "$p0" "$p1" "$s0" "$s1" "$sim_pid" \
        >> "$results" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
kind, t0, t1, c0, c1, tck, d0, d1, p0, p1, s0, s1, sim = sys.argv[2:15]
r["kind"] = kind
wall = float(t1) - float(t0)
# Averaged over warm-up + measured window + drain: an indication, not an exact figure.
r["server_cpu"] = (int(c1) - int(c0)) / int(tck) / wall if wall > 0 else None
if sim:
    r["sim_cpu"] = (int(s1) - int(s0)) / int(tck) / wall if wall > 0 else None
r["udp_rcvbuf_errors"] = int(d1 or 0) - int(d0 or 0)
p0, p1 = json.loads(p0), json.loads(p1)
if p1:
    # Over the whole loadgen run (warm-up and drain included), like leg2_sent_all.
    for k in ("forwarded_out", "forwarded_in", "forward_failed"):
        r[k] = p1.get(k, 0) - p0.get(k, 0)
    sent = r.get("leg2_sent_all") or 0
    r["forwarded_share"] = r["forwarded_out"] / sent if sent else None
print(json.dumps(r))
EOF
    python3 - "$(tail -n 1 "$results")" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
line = "   %-10s %-9s %-10s %9.0f tx/s  p50 %7.0f us  p99 %7.0f us  accept %d reject %d other %d timeouts %d" % (
    r["label"], r["scenario"], r["kind"], r["tps"], r["latency_us"]["p50"], r["latency_us"]["p99"],
    r["accept"], r["reject"], r["other"], r["timeouts"])
if r["scenario"] == "sms":
    line += "  leg-2 p99 %.0f us  no sms %d" % (r["leg2_latency_us"]["p99"], r["sms_missing"])
if r.get("forwarded_share") is not None:
    line += "  forwarded %.1f%% (failed %d)" % (100 * r["forwarded_share"], r["forward_failed"])
print(line)
EOF
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

if [[ -n $totp_scenarios ]]; then
    "$loadgen" gen-users --count "$nusers" --out "$work/users.csv"
fi

# ---------------------------------------------------------------- radmfa
if [[ " $servers " == *" radmfa "* && -n $totp_scenarios ]]; then
    echo "== radmfa ($("$radmfa" --version 2>/dev/null || echo radmfa))"
    if [[ $fast_hash == 1 ]]; then
        password_params="# --fast-hash: lowered (not the production cost).
memory_kib = 1024
iterations = 1"
    else
        password_params="# The production defaults (argon2id, 19 MiB, 2 passes): what a restart costs."
    fi
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
$password_params
cache_ttl_secs = 3600

[limits]
# One client and $nusers users at saturation: the production rate limits would
# cap the run (the lockout stays on; the load generator sends right codes).
client_rps = 0
source_rps = 0
user_per_minute = 0

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
    # start_radmfa [CONFIG LOG]: a fresh process (empty verified-credential cache); sets
    # server_pid, addr.
    start_radmfa() {
        local conf=${1:-$work/radmfa.toml} log=${2:-$work/radmfa.log}
        rm -f "$work/ready.json"
        taskset -c "$server_cpu" "$radmfa" --config "$conf" serve --ready-file "$work/ready.json" \
            >> "$log" 2>&1 &
        server_pid=$!
        wait_ready "$work/ready.json" "$server_pid" "$log" 300 0.1 \
            "run.sh: radmfa exited" "run.sh: radmfa did not become ready"
        addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["radius_udp"][0])' "$work/ready.json")
    }
    if [[ $cold == 1 ]]; then
        for scenario in $totp_scenarios; do
            start_radmfa
            echo "   cold: fresh process on $addr (pid $server_pid), $scenario at saturation right away"
            run_load radmfa-cold "$scenario" saturation "$addr" --duration "$duration" --warmup 0 \
                --timeout-ms 10000
            stop_server
        done
    fi
    start_radmfa
    echo "   listening on $addr (pid $server_pid)"
    echo "   warm-up pass on a fresh process: every user logs in once (inline) so radmfa's"
    echo "   verified-credential cache holds every password before measuring (it also uses up each"
    echo "   user's current TOTP step). Its wall time is how long a restarted node with $nusers"
    echo "   users takes to reach full speed under this load:"
    t0=$(date +%s.%N)
    taskset -c "$loadgen_cpu" "$loadgen" --server "$addr" --secret "$secret" --users "$work/users.csv" \
        --one-pass --outstanding 64 --sockets "$sockets" --timeout-ms 5000 --label radmfa-warmup \
        | sed 's/^/     /'
    full_speed_after=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")
    echo "   full speed after $full_speed_after s (every user's first login since the restart served)"
    echo "{\"label\": \"radmfa-full-speed\", \"scenario\": \"restart\", \"kind\": \"one-pass\", \"seconds\": $full_speed_after, \"users\": $nusers}" >> "$work/extra.jsonl"
    for scenario in $totp_scenarios; do
        run_load radmfa "$scenario" saturation "$addr" --duration "$duration" --warmup "$warmup"
    done
    if [[ $half_load == 1 ]]; then
        for scenario in $totp_scenarios; do
            sat=$(saturation_tps radmfa "$scenario")
            rate=$((sat / 2))
            [[ $rate -gt 0 ]] || continue
            run_load radmfa "$scenario" half-load "$addr" --duration "$duration" --warmup "$warmup" --rate "$rate"
        done
    fi
    stop_server
fi

# ---------------------------------------------------------------- radmfa shipping its audit
# The same node as above, now a replica of a primary this script starts (on --primary-cpu):
# every audit record goes to the primary over the peer link. Warm as above; the ratio to
# the standalone figures is the cost of shipping (target: at most 5% slower).
if [[ $ship == 1 && " $servers " == *" radmfa "* && -n $totp_scenarios ]]; then
    echo "== radmfa as a replica shipping its audit to a primary (--audit-shipping)"
    "$radmfa" cluster init --dir "$work/ship" --nodes 2 >/dev/null
    ship_ports=("$(free_tcp_port)" "$(free_tcp_port)")
    # ship_conf ID ROLE: the standalone configuration as node ID of a two-node cluster.
    ship_conf() {
        local id=$1 role=$2 peer=$((3 - $1))
        sed -e "s|^node_name = .*|node_name = \"bench-$id\"|" \
            -e "s|^node_id = .*|node_id = $id\nkey_file = \"$work/ship/seed.key\"|" \
            -e "s|^data_dir = .*|data_dir = \"$work/ship/data-$id\"|" \
            "$work/radmfa.toml" > "$work/ship/node-$id.toml"
        cat >> "$work/ship/node-$id.toml" <<EOF

[challenge]
cluster_key_file = "$work/ship/cluster.key"

[cluster]
listen = "127.0.0.1:${ship_ports[$((id - 1))]}"
ca = "$work/ship/ca.pem"
cert = "$work/ship/node-$id.pem"
key = "$work/ship/node-$id.key"
role = "$role"

[[cluster.peer]]
node_id = $peer
address = "127.0.0.1:${ship_ports[$((peer - 1))]}"
EOF
        "$radmfa" --config "$work/ship/node-$id.toml" check-config >/dev/null
    }
    ship_conf 1 primary
    ship_conf 2 replica
    "$radmfa" --config "$work/ship/node-1.toml" user import --csv "$work/users.csv" >/dev/null
    taskset -c "$primary_cpu" "$radmfa" --config "$work/ship/node-1.toml" serve \
        --ready-file "$work/ship/ready-1.json" > "$work/ship/node-1.log" 2>&1 &
    primary_pid=$!
    other_pids+=("$primary_pid")
    wait_ready "$work/ship/ready-1.json" "$primary_pid" "$work/ship/node-1.log" 300 0.1 \
        "run.sh: the primary exited" "run.sh: the primary did not become ready"
    start_radmfa "$work/ship/node-2.toml" "$work/ship/node-2.log"
    # ship_status: the replica's `status --json`.
    ship_status() { "$radmfa" --config "$work/ship/node-2.toml" status --json; }
    for _ in $(seq 1 600); do
        ship_status | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("synced") else 1)' && break
        sleep 0.2
    done
    ship_pid=$server_pid ship_addr=$addr
    echo "   replica on $ship_addr (pid $ship_pid) synced with the primary (CPU $primary_cpu); warm-up pass:"
    taskset -c "$loadgen_cpu" "$loadgen" --server "$ship_addr" --secret "$secret" --users "$work/users.csv" \
        --one-pass --outstanding 64 --sockets "$sockets" --timeout-ms 5000 --label radmfa-ship-warmup \
        | sed 's/^/     /'
    # The standalone node again (a fresh process on its own store, warmed up the same way),
    # beside the replica on the same CPU; only one of the two is loaded at a time. Runs
    # alternate between them, so that other work on the machine weighs on both alike.
    start_radmfa "$work/radmfa.toml" "$work/radmfa.log"
    alone_pid=$server_pid alone_addr=$addr
    other_pids+=("$alone_pid")
    echo "   standalone node again on $alone_addr (pid $alone_pid); warm-up pass:"
    taskset -c "$loadgen_cpu" "$loadgen" --server "$alone_addr" --secret "$secret" --users "$work/users.csv" \
        --one-pass --outstanding 64 --sockets "$sockets" --timeout-ms 5000 --label radmfa-alone-warmup \
        | sed 's/^/     /'
    server_pid=$ship_pid
    # Each run starts at the beginning of a TOTP step (30 s): its first logins are then
    # accepted (a fresh step for every user) and the rest are replays, the same mix on both
    # nodes. A run that started mid-step after the other one had used the step up would
    # do different work (on the replica an accepted step is also sent to the primary).
    step_start() { sleep "$(python3 -c 'import time; print(30 - time.time() % 30 + 0.05)')"; }
    for round in $(seq 1 "$ship_rounds"); do
        for scenario in $totp_scenarios; do
            step_start
            server_pids=$alone_pid run_load radmfa-alone "$scenario" saturation "$alone_addr" \
                --duration "$duration" --warmup "$warmup"
            step_start
            server_pids=$ship_pid run_load radmfa-ship "$scenario" saturation "$ship_addr" \
                --duration "$duration" --warmup "$warmup"
            # The lag of the records shipped during the run (the most recent 16384).
            ship_status | python3 -c '
import json, sys
s, scenario, rnd = json.load(sys.stdin), sys.argv[1], int(sys.argv[3])
a = s.get("audit_shipping") or {}
print("   audit shipping after %s (round %d): lag p50 %s ms, p99 %s ms; %s records shipped, the primary holds up to %s of %s" % (
    scenario, rnd, a.get("lag_p50_ms"), a.get("lag_p99_ms"), a.get("shipped"), a.get("acked_seq"), a.get("next_seq", 1) - 1))
with open(sys.argv[2], "a") as f:
    f.write(json.dumps({"label": "radmfa-ship-lag", "scenario": scenario, "kind": "audit-shipping", "round": rnd,
                        "lag_p50_ms": a.get("lag_p50_ms"), "lag_p99_ms": a.get("lag_p99_ms")}) + "\n")
' "$scenario" "$work/extra.jsonl" "$round"
        done
    done
    # Per scenario: the ratio of each round (shipping / the standalone run just before it),
    # their median and spread, and the lag p99 of each round.
    python3 - "$results" "$work/extra.jsonl" $totp_scenarios <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
extra_path = sys.argv[2]
lags = [json.loads(l) for l in open(extra_path) if l.strip()]
for sc in sys.argv[3:]:
    alone = [r["tps"] for r in rows if r["label"] == "radmfa-alone" and r["scenario"] == sc]
    ship = [r["tps"] for r in rows if r["label"] == "radmfa-ship" and r["scenario"] == sc]
    ratios = [b / a for a, b in zip(alone, ship) if a > 0]
    p99 = [e["lag_p99_ms"] for e in lags if e["label"] == "radmfa-ship-lag" and e["scenario"] == sc
           and e.get("lag_p99_ms") is not None]
    if not ratios:
        continue
    summary = {"label": "radmfa-ship-ratio", "scenario": sc, "kind": "audit-shipping",
               "alone_tps": alone, "ship_tps": ship, "ratios": [round(x, 4) for x in ratios],
               "ratio_median": round(statistics.median(ratios), 4),
               "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
               "lag_p99_ms": p99, "lag_p99_ms_max": max(p99) if p99 else None}
    print("   %s: shipping/standalone per round %s; median %.3f (%+.1f%%), spread %.3f..%.3f (target >= 0.95); "
          "lag p99 per round %s ms" % (sc, " ".join("%.3f" % x for x in ratios), summary["ratio_median"],
          100 * (summary["ratio_median"] - 1), summary["ratio_min"], summary["ratio_max"], p99))
    with open(extra_path, "a") as f:
        f.write(json.dumps(summary) + "\n")
EOF
    server_pids=
    stop_server
    stop_others
fi

# ---------------------------------------------------------------- FreeRADIUS
if [[ " $servers " == *" freeradius "* && -n $totp_scenarios ]]; then
    echo "== FreeRADIUS ($(freeradius -v 2>/dev/null | head -1 | sed 's/^radiusd: //'))"
    # The pool is sized to the CPUs the server is pinned to (FreeRADIUS's tuning advice).
    fr_threads=$(taskset -c "$server_cpu" nproc)
    echo "   thread pool: $fr_threads worker thread(s) (the CPUs in --server-cpu $server_cpu)"
    fr_variants="freeradius freeradius-stock"
    [[ $fr_replay == 1 ]] || fr_variants="freeradius-stock"
    for scenario in $totp_scenarios; do
      for label in $fr_variants; do
        port=$(free_udp_port)
        replay_flag=()
        [[ $label == freeradius ]] || replay_flag=(--no-replay-check)
        frdir=$work/$label-$scenario
        bash "$root/benches/freeradius/setup.sh" --dir "$frdir" --users "$work/users.csv" \
            --mode "$scenario" --port "$port" --secret "$secret" --threads "$fr_threads" "${replay_flag[@]}" | sed 's/^/   /'
        freeradius -C -d "$frdir" >/dev/null 2>&1 \
            || { freeradius -XC -d "$frdir" | tail -20 >&2; exit 1; }
        taskset -c "$server_cpu" freeradius -f -d "$frdir" > "$frdir.out" 2>&1 &
        server_pid=$!
        for _ in $(seq 1 300); do
            grep -q "Ready to process requests" "$frdir/log/radius.log" 2>/dev/null && break
            kill -0 "$server_pid" 2>/dev/null || { cat "$frdir/log/radius.log" >&2; echo "run.sh: freeradius exited" >&2; exit 1; }
            sleep 0.1
        done
        addr=127.0.0.1:$port
        echo "   $label ($([[ $label == freeradius ]] && echo "replay check on" || echo "stock, no replay check")) listening on $addr (pid $server_pid)"
        run_load "$label" "$scenario" saturation "$addr" --duration "$duration" --warmup "$warmup"
        if [[ $half_load == 1 ]]; then
            sat=$(saturation_tps "$label" "$scenario")
            rate=$((sat / 2))
            if [[ $rate -gt 0 ]]; then
                run_load "$label" "$scenario" half-load "$addr" --duration "$duration" --warmup "$warmup" --rate "$rate"
            fi
        fi
        stop_server
      done
    done
fi

# ---------------------------------------------------------------- radmfa, one-way SMS
# (a) one node, (b) two nodes behind nginx UDP round robin: the answer to a challenge
# reaches the other node about half the time and is forwarded over the peer link.

# sms_node ID DIR [LISTEN PEER_ID PEER_PORT]: writes DIR/radmfa.toml and imports the users.
sms_node() {
    local id=$1 dir=$2
    mkdir -p "$dir"
    cat > "$dir/radmfa.toml" <<EOF
# Generated by benches/run.sh (scenario sms).
[server]
node_name = "bench-$id"
node_id = $id
data_dir = "$dir/data"

[log]
format = "human"
level = "warn"

[radius]
listen = ["127.0.0.1:0"]

[password]
# Lowered as for the TOTP scenarios; the warm-up pass fills the credential cache anyway.
memory_kib = 1024
iterations = 1
cache_ttl_secs = 3600

[limits]
# As for the TOTP scenarios: no rate limits at saturation.
client_rps = 0
source_rps = 0
user_per_minute = 0

[challenge]
cluster_key_file = "$work/cluster.key"

[gateway]
provider = "radmfa"
url = "https://$sim_addr"
api_key_file = "$work/sim.key"
ca_file = "$work/sim.pem"

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
    if [[ $# -gt 2 ]]; then
        cat >> "$dir/radmfa.toml" <<EOF

[cluster]
listen = "127.0.0.1:$3"
ca = "$work/cluster/ca.pem"
cert = "$work/cluster/node-$id.pem"
key = "$work/cluster/node-$id.key"
forward_timeout_ms = 3000

[[cluster.peer]]
node_id = $4
address = "127.0.0.1:$5"
EOF
    fi
    "$radmfa" --config "$dir/radmfa.toml" check-config >/dev/null
    "$radmfa" --config "$dir/radmfa.toml" user import --csv "$work/users-sms.csv" >/dev/null
}

# start_sms_node DIR: starts radmfa on the server CPU; sets node_pid and node_addr.
start_sms_node() {
    local dir=$1
    taskset -c "$server_cpu" "$radmfa" --config "$dir/radmfa.toml" serve --ready-file "$dir/ready.json" \
        > "$dir/radmfa.log" 2>&1 &
    node_pid=$!
    wait_ready "$dir/ready.json" "$node_pid" "$dir/radmfa.log" 300 0.1 \
        "run.sh: radmfa exited" "run.sh: radmfa did not become ready"
    node_addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["radius_udp"][0])' "$dir/ready.json")
}

# sms_warmup ADDR LABEL: every user logs in once (fills the node's credential cache).
sms_warmup() {
    taskset -c "$loadgen_cpu" "$loadgen" --server "$1" --secret "$secret" --users "$work/users-sms.csv" \
        --scenario sms "${sms_args[@]}" --one-pass --outstanding "$sms_outstanding" \
        --sockets "$sms_outstanding" --timeout-ms 5000 --label "$2" | sed 's/^/     /'
}

# sms_runs LABEL ADDR: saturation, then half of it.
sms_runs() {
    local label=$1 addr=$2 sat
    run_load "$label" sms saturation "$addr" --duration "$duration" --warmup "$warmup" "${sms_args[@]}"
    if [[ $half_load == 1 ]]; then
        sat=$(saturation_tps "$label" sms)
        if [[ $((sat / 2)) -gt 0 ]]; then
            run_load "$label" sms half-load "$addr" --duration "$duration" --warmup "$warmup" \
                --rate "$((sat / 2))" "${sms_args[@]}"
        fi
    fi
}

# The stream module: a loadable module (Debian/Ubuntu: libnginx-mod-stream), or built in.
nginx_stream() {
    command -v nginx >/dev/null || { echo "nginx is not installed"; return 1; }
    local m
    for m in /usr/lib/nginx/modules/ngx_stream_module.so /usr/lib64/nginx/modules/ngx_stream_module.so \
             /usr/share/nginx/modules/ngx_stream_module.so; do
        if [[ -f $m ]]; then
            echo "load_module $m;"
            return 0
        fi
    done
    if nginx -V 2>&1 | grep -qE -- '--with-stream( |$)'; then
        echo "# stream module built in"
        return 0
    fi
    echo "nginx's stream module is missing (apt-get install libnginx-mod-stream)"
    return 1
}

if [[ $sms == 1 ]]; then
    echo "== radmfa, one-way SMS logins (gateway simulator on CPU $sim_cpu)"
    "$loadgen" gen-users --method sms --count "$nusers" --out "$work/users-sms.csv"
    python3 -c 'import secrets; print(secrets.token_hex(32))' > "$work/cluster.key"
    sim_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s' "$sim_key" > "$work/sim.key"
    chmod 600 "$work/cluster.key" "$work/sim.key"
    export RADMFA_SIM_API_KEY=$sim_key
    RUST_LOG=warn taskset -c "$sim_cpu" "$gwsim" --listen 127.0.0.1:0 --ready-file "$work/sim.addr" \
        --cert-out "$work/sim.pem" > "$work/sim.log" 2>&1 &
    sim_pid=$!
    other_pids+=("$sim_pid")
    for _ in $(seq 1 100); do
        [[ -s $work/sim.addr ]] && break
        sleep 0.1
    done
    [[ -s $work/sim.addr ]] || { cat "$work/sim.log" >&2; echo "run.sh: the gateway simulator did not start" >&2; exit 1; }
    sim_addr=$(cat "$work/sim.addr")
    sms_args=(--sim-url "https://$sim_addr" --sim-ca "$work/sim.pem" --per-socket 1)
    echo "   simulator on https://$sim_addr; $sms_outstanding logins in flight, one request per"
    echo "   UDP socket (--per-socket 1) so a balancer sees every request as a new session"

    # (a) one node
    t0=$(date +%s.%N)
    sms_node 1 "$work/sms-1"
    echo "   imported $nusers SMS users in $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)") s"
    start_sms_node "$work/sms-1"
    server_pid=$node_pid
    echo "   1 node: listening on $node_addr (pid $server_pid, CPU $server_cpu); warm-up pass:"
    sms_warmup "$node_addr" radmfa-sms-warmup
    server_pids=$server_pid stat_confs=$work/sms-1/radmfa.toml
    sms_runs radmfa-1node "$node_addr"
    server_pids= stat_confs=
    stop_server

    # (b) two nodes behind nginx
    if ! nginx_load=$(nginx_stream); then
        echo "   2 nodes behind nginx: SKIPPED: $nginx_load"
    else
        "$radmfa" cluster ca --dir "$work/cluster" >/dev/null
        "$radmfa" cluster cert --dir "$work/cluster" --node-id 1 >/dev/null
        "$radmfa" cluster cert --dir "$work/cluster" --node-id 2 >/dev/null
        cp1=$(free_tcp_port) cp2=$(free_tcp_port)
        sms_node 1 "$work/sms-c1" "$cp1" 2 "$cp2"
        sms_node 2 "$work/sms-c2" "$cp2" 1 "$cp1"
        start_sms_node "$work/sms-c1"
        server_pid=$node_pid n1_addr=$node_addr
        start_sms_node "$work/sms-c2"
        n2_pid=$node_pid n2_addr=$node_addr
        other_pids+=("$n2_pid")
        lb_port=$(free_udp_port)
        mkdir -p "$work/nginx/logs"
        cat > "$work/nginx/nginx.conf" <<EOF
# Generated by benches/run.sh: plain UDP round robin, no stickiness. With
# proxy_responses 1 a session ends with its reply, so every request is balanced anew.
$nginx_load
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 8192; }
stream {
    upstream radmfa {
        server $n1_addr;
        server $n2_addr;
    }
    server {
        listen 127.0.0.1:$lb_port udp;
        proxy_pass radmfa;
        proxy_responses 1;
        proxy_timeout 10s;
    }
}
EOF
        # master_process off: one process, no user switch (works as root and as a user).
        taskset -c "$server_cpu" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" \
            -g 'daemon off; master_process off;' > "$work/nginx/stdout.log" 2>&1 &
        nginx_pid=$!
        other_pids+=("$nginx_pid")
        for _ in $(seq 1 100); do
            # Bound by nginx once binding it here fails.
            python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", int(sys.argv[1])))' \
                "$lb_port" 2>/dev/null || break
            kill -0 "$nginx_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$nginx_pid" 2>/dev/null \
            || { cat "$work/nginx/stdout.log" "$work/nginx/logs/error.log" >&2 2>/dev/null; echo "run.sh: nginx exited" >&2; exit 1; }
        echo "   2 nodes: $n1_addr (pid $server_pid) and $n2_addr (pid $n2_pid), peer link on TCP $cp1/$cp2;"
        echo "   nginx $(nginx -v 2>&1 | sed 's/^nginx version: //') on 127.0.0.1:$lb_port (pid $nginx_pid); all three on CPU $server_cpu"
        echo "   warm-up pass on each node directly (fills both credential caches):"
        sms_warmup "$n1_addr" radmfa-sms-warmup-node1
        sms_warmup "$n2_addr" radmfa-sms-warmup-node2
        server_pids="$server_pid $n2_pid $nginx_pid" stat_confs="$work/sms-c1/radmfa.toml $work/sms-c2/radmfa.toml"
        sms_runs radmfa-2nodes "127.0.0.1:$lb_port"
        server_pids= stat_confs=
        stop_pid "$nginx_pid"
        stop_pid "$n2_pid"
        stop_server
    fi
    stop_others
    sim_pid=
fi

# ---------------------------------------------------------------- summary
touch "$work/extra.jsonl"
python3 - "$results" "$fr_replay" "$sim_cpu" "$server_cpu" "$work/extra.jsonl" <<'EOF'
import json, sys
all_rows = [json.loads(l) for l in open(sys.argv[1])]
extra = [json.loads(l) for l in open(sys.argv[5]) if l.strip()]
rows = [r for r in all_rows if r["scenario"] != "sms"]
sms_rows = [r for r in all_rows if r["scenario"] == "sms"]
fr_replay = sys.argv[2] == "1"
sim_cpu = sys.argv[3]

LABELS = ("radmfa", "radmfa-cold", "radmfa-alone", "radmfa-ship", "freeradius", "freeradius-stock")

def find(label, scenario, kind):
    for r in rows:
        if r["label"] == label and r["scenario"] == scenario and r["kind"] == kind:
            return r
    return None

def cpu(r):
    return "-" if r.get("server_cpu") is None else "%.0f%%" % (100 * r["server_cpu"])

def busy(r):
    return "-" if r.get("loadgen_busy") is None else "%.0f%%" % (100 * r["loadgen_busy"])

scenarios = []
for r in rows:
    if r["scenario"] not in scenarios:
        scenarios.append(r["scenario"])

def totp_tables():
    print()
    print("== Saturation (closed loop, %s in flight)" % rows[0]["outstanding"])
    hdr = "%-10s %-11s %10s %9s %9s %9s %9s %9s %8s %8s %8s"
    print(hdr % ("scenario", "server", "tx/s", "p50 us", "p99 us", "p99.9 us", "accept", "reject", "timeout", "srv cpu", "lg busy"))
    for sc in scenarios:
        for label in LABELS:
            r = find(label, sc, "saturation")
            if not r:
                continue
            l = r["latency_us"]
            print(hdr % (sc, label, "%.0f" % r["tps"], "%.0f" % l["p50"], "%.0f" % l["p99"], "%.0f" % l["p999"],
                         r["accept"], r["reject"] + r["other"], r["timeouts"], cpu(r), busy(r)))
        for mine, what in (("radmfa", "warm"), ("radmfa-cold", "cold, right after a restart")):
            for base, how in (("freeradius", "FreeRADIUS with replay check"), ("freeradius-stock", "stock FreeRADIUS")):
                a, b = find(mine, sc, "saturation"), find(base, sc, "saturation")
                if a and b and b["tps"] > 0:
                    print("%-10s ratio radmfa (%s) / %s: %.3gx throughput (target >= 3x warm)" %
                          (sc, what, how, a["tps"] / b["tps"]))
        for e in extra:
            if e["label"] == "radmfa-ship-ratio" and e["scenario"] == sc:
                print("%-10s ratio radmfa shipping its audit / standalone (%d interleaved rounds): median %.3f,"
                      " spread %.3f..%.3f (target >= 0.95); shipping lag p99 %s ms (max %s)" %
                      (sc, len(e["ratios"]), e["ratio_median"], e["ratio_min"], e["ratio_max"],
                       " ".join(str(x) for x in e["lag_p99_ms"]), e["lag_p99_ms_max"]))
    for e in extra:
        if e["label"] == "radmfa-full-speed":
            print("radmfa restarted with %d users reached full speed after %.1f s (first login of every user"
                  " costs one argon2id hash; see the warm-up pass)" % (e["users"], e["seconds"]))

    half = [r for r in rows if r["kind"] == "half-load"]
    if half:
        print()
        print("== Latency at half of each server's own saturation (open loop, latency from scheduled send)")
        hdr = "%-10s %-11s %8s %8s %8s %8s %9s %8s %8s %10s %8s"
        print(hdr % ("scenario", "server", "rate", "tx/s", "p50 us", "p99 us", "p99.9 us", "max us", "accepts",
                     "acc p99 us", "timeout"))
        for sc in scenarios:
            for label in LABELS:
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
    print("check: 'freeradius' = rlm_cache on, 'freeradius-stock' = stock rlm_totp, which accepts replays).")
    print("'srv cpu' = server CPU over the run (1 CPU = 100%); 'lg busy' near 100%")
    print("means the load generator may be the bottleneck. udp rcvbuf drops (system-wide): %s" %
          ", ".join("%s/%s/%s=%d" % (r["label"], r["scenario"], r["kind"], r["udp_rcvbuf_errors"]) for r in rows))

def sms_table():
    setups = {"radmfa-1node": "1 node", "radmfa-2nodes": "2 nodes+nginx"}
    print()
    print("== One-way SMS logins, radmfa (%s in flight, one request per UDP socket)" % sms_rows[0]["outstanding"])
    hdr = "%-14s %-10s %6s %6s %7s %7s %8s %7s %6s %6s %7s %6s %6s %6s %7s %7s %7s"
    print(hdr % ("setup", "run", "rate", "tx/s", "p50 us", "p99 us", "leg2 p99", "sms p99", "accept", "reject",
                 "timeout", "no sms", "fwd", "fwd ko", "srv cpu", "sim cpu", "lg busy"))
    for r in sms_rows:
        l, g, f = r["latency_us"], r["leg2_latency_us"], r["fetch_latency_us"]
        share = r.get("forwarded_share")
        print(hdr % (setups.get(r["label"], r["label"]), r["kind"],
                     "%.0f" % r["target_rate"] if r.get("target_rate") else "-", "%.0f" % r["tps"],
                     "%.0f" % l["p50"], "%.0f" % l["p99"], "%.0f" % g["p99"], "%.0f" % f["p99"],
                     r["accept"], r["reject"] + r["other"], r["timeouts"], r["sms_missing"],
                     "-" if share is None else "%.1f%%" % (100 * share),
                     r.get("forward_failed", "-"), cpu(r),
                     "-" if r.get("sim_cpu") is None else "%.0f%%" % (100 * r["sim_cpu"]), busy(r)))
    print()
    print("Notes: a login = Access-Request (password) -> Access-Challenge (radmfa has POSTed the SMS to")
    print("the gateway simulator) -> the code is read back from the simulator (HTTPS, by the load")
    print("generator's fetch threads) -> Access-Request (State + code) -> Access-Accept. p50/p99: the")
    print("whole login; 'leg2 p99': the second request alone, the one a cluster forwards to the node")
    print("that owns the challenge; 'sms p99': reading the code. 'fwd' = forwarded_out of both nodes /")
    print("second legs sent (about half with round robin over 2 nodes, see the README); 'fwd ko' =")
    print("forward_failed; 'sim cpu': the gateway simulator's CPU over the run.")
    print("'srv cpu': radmfa (+ nginx) on CPU %s; the simulator runs on CPU %s (--sim-cpu)." %
          (sys.argv[4], sim_cpu))
    print("udp rcvbuf drops (system-wide): %s" %
          ", ".join("%s/%s=%d" % (r["label"], r["kind"], r["udp_rcvbuf_errors"]) for r in sms_rows))

if rows:
    totp_tables()
if sms_rows:
    sms_table()
EOF
if [[ -n $results_out ]]; then
    cat "$results" "$work/extra.jsonl" > "$results_out"
    echo "JSON reports written to $results_out"
fi
