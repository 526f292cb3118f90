#!/usr/bin/env bash
# The container image and the compose cluster, really built and run:
#
#   bash tests/container.sh          (root; .ci/run runs it after the tests)
#
# 1. Base images made locally (no registry is reachable in CI): a debootstrap
#    of Debian bookworm (minbase + ca-certificates) imported as
#    localhost/debian:bookworm-slim, and a copy with nginx-light and its stream
#    module as the balancer's image.
# 2. docker/Dockerfile built with podman, fed the binaries cargo already built
#    (BINARIES=, RUNTIME_IMAGE= build arguments; the build has no network).
# 3. docker/compose.yaml started as is by docker-compose (v1, the version the
#    file is written for) against podman's Docker API: init, the gateway
#    simulator, three nodes and nginx, on the compose network, the balancer
#    published on 127.0.0.1 only.
# 4. The roles init and the configs give (node1 primary, two replicas), no
#    node with a VAPID key of its own or an open data directory.
# 5. Four users enrolled through the CLI inside the primary container; a
#    radclient login (password + TOTP code computed by tests/py/otp.py)
#    through the balancer; the primary killed (podman kill); three more
#    logins through the balancer, each retried as a NAS would (5 s timeout,
#    3 tries from one socket, then a new attempt from a new socket), all
#    accepted by the replicas, one of them after nginx first sent it to the
#    dead primary.
# Everything it started is removed on exit, failed or not.
#
# Why docker-compose and not podman-compose: podman-compose 1.0.3 (Debian
# bookworm) ignores the network's ipam subnet and `ipv4_address` (the nodes'
# peer addresses, the balancer's client address and nginx's upstreams are
# fixed IPs) and `depends_on` conditions (nodes would start before `init`
# made their keys). Health checks: podman runs them from systemd timers,
# which a CI container lacks, so this script runs `podman healthcheck run`
# itself every 2 s (docker-compose waits for service_healthy).
#
# Environment: RADMFA_CONTAINER_KEEP_BASE=1 reuses base images already made
# (a developer's second run; CI always starts cold).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
step() { echo "=== tests/container.sh [$((SECONDS - start)) s] $*"; }
die() {
  echo "tests/container.sh: FAILED: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || die "needs root (podman networks, debootstrap)"
for tool in podman runc debootstrap docker-compose radclient python3 cargo objcopy; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install podman runc debootstrap docker-compose freeradius-utils binutils)"
done

work=$(mktemp -d /tmp/radmfa-container.XXXXXX)
project=radmfactest$$
sock=$work/podman.sock
service_pid=
health_pid=

# The settings this machine kind needs, for this script's podman only (no
# system file changed): crun refuses hybrid cgroups, so runc; no systemd, so
# cgroupfs; no ulimits the runtime would refuse inside a container.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf

compose() {
  DOCKER_HOST=unix://$sock COMPOSE_INTERACTIVE_NO_CLI=1 \
    docker-compose -p "$project" -f docker/compose.yaml "$@"
}

cleanup() {
  local rc=$?
  set +e
  if [[ $rc != 0 && -S $sock ]]; then
    echo "--- container states and logs (failure)"
    podman ps -a --filter "label=com.docker.compose.project=$project" \
      --format '{{.Names}} {{.Status}}'
    for c in $(podman ps -a -q --filter "label=com.docker.compose.project=$project"); do
      echo "--- logs of $(podman inspect -f '{{.Name}}' "$c")"
      podman logs --tail 40 "$c" 2>&1
    done
  fi
  [[ -n $health_pid ]] && kill "$health_pid" 2>/dev/null
  if [[ -S $sock ]]; then
    compose down -v --timeout 5 >/dev/null 2>&1
  fi
  # Whatever compose could not remove (a half-started run).
  podman ps -a -q --filter "label=com.docker.compose.project=$project" | xargs -r podman rm -f >/dev/null 2>&1
  podman volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1
  podman network rm -f "${project}_radmfa" >/dev/null 2>&1
  [[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
  podman rmi -f localhost/radmfa-binaries:ci docker.io/library/radmfa:latest >/dev/null 2>&1
  rm -rf "$work"
  echo "tests/container.sh: $([[ $rc == 0 ]] && echo passed || echo "failed ($rc)") in $((SECONDS - start)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- base images
base=localhost/debian:bookworm-slim
nginx_image=localhost/radmfa-ci-nginx:bookworm
if [[ ${RADMFA_CONTAINER_KEEP_BASE:-0} == 1 ]] && podman image exists "$base" &&
  podman image exists "$nginx_image"; then
  step "reusing $base and $nginx_image"
else
  step "debootstrap bookworm (minbase + ca-certificates)"
  rootfs=$work/rootfs
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log"
    die debootstrap
  }
  # The balancer's image: the same tree with nginx and its stream module,
  # installed in a chroot (the host fetches the packages; no container does).
  cp -a "$rootfs" "$work/rootfs-nginx"
  printf '#!/bin/sh\nexit 101\n' >"$work/rootfs-nginx/usr/sbin/policy-rc.d"
  chmod 0755 "$work/rootfs-nginx/usr/sbin/policy-rc.d"
  chroot "$work/rootfs-nginx" sh -c 'apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-stream' \
    >"$work/nginx-apt.log" 2>&1 || {
    tail -20 "$work/nginx-apt.log"
    die "nginx in the balancer image"
  }
  rm -f "$work/rootfs-nginx/usr/sbin/policy-rc.d"
  for d in "$rootfs" "$work/rootfs-nginx"; do
    rm -rf "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/*.bin "$d"/var/cache/apt/archives/*.deb
  done
  step "importing $base and $nginx_image"
  tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
  # Debian builds the stream module as a dynamic module: load it before the
  # compose file's nginx.conf (the official image has it built in).
  tar -C "$work/rootfs-nginx" -c . | podman import -q \
    --change 'CMD ["nginx", "-g", "load_module modules/ngx_stream_module.so; daemon off;"]' \
    --change 'STOPSIGNAL SIGQUIT' - "$nginx_image" >/dev/null
  rm -rf "$rootfs" "$work/rootfs-nginx"
fi

# ---------------------------------------------------------------- the image
step "the binaries (those the test run built)"
export CARGO_TERM_COLOR=never
# The test command's own build (tests/run.sh: cargo test --workspace), so in
# CI, after it, nothing is compiled again: `cargo build -p` would resolve
# other features (no dev-dependencies) and rebuild dependencies and binaries.
cargo test -q --workspace --no-run
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$work/binaries/out"
for b in radmfa radmfa-gateway-sim; do
  # Debug builds carry hundreds of MB of debug info the image does not need.
  objcopy --strip-debug "$target/debug/$b" "$work/binaries/out/$b"
done
tar -C "$work/binaries" -c out | podman import -q - localhost/radmfa-binaries:ci >/dev/null

step "podman build docker/Dockerfile"
# --network none: the build reaches nothing outside this machine (the base
# image has ca-certificates, so the Dockerfile skips apt-get). --format
# docker keeps the HEALTHCHECK (OCI images have none).
podman build -q --network none --format docker -f docker/Dockerfile \
  --build-arg RUNTIME_IMAGE="$base" \
  --build-arg BINARIES=localhost/radmfa-binaries:ci \
  -t localhost/radmfa:latest . >/dev/null
# The Docker API names short names docker.io/library/...; compose asks for
# radmfa:latest.
podman tag localhost/radmfa:latest docker.io/library/radmfa:latest
podman run --rm --network none localhost/radmfa:latest --version

# ---------------------------------------------------------------- the cluster
step "docker-compose up (podman's Docker API)"
podman system service --time 0 "unix://$sock" >"$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
  [[ -S $sock ]] && break
  sleep 0.1
done
[[ -S $sock ]] || die "podman system service did not open $sock"

# The health checks podman would run from systemd timers.
(
  while sleep 2; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$project" --filter health=starting) \
      $(podman ps -q --filter "label=com.docker.compose.project=$project" --filter health=healthy) \
      $(podman ps -q --filter "label=com.docker.compose.project=$project" --filter health=unhealthy); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
  done
) &
health_pid=$!

# A free UDP port on 127.0.0.1 for the balancer (and the next for accounting).
port=$(python3 -c 'import socket
for p in range(21812, 22812, 2):
    try:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", p))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", p + 1))
        print(p); break
    except OSError:
        pass')
export RADMFA_NGINX_IMAGE=$nginx_image
export RADMFA_RADIUS_PUBLISH=127.0.0.1:$port
export RADMFA_ACCOUNTING_PUBLISH=127.0.0.1:$((port + 1))
compose up -d --no-build
compose ps

# ---------------------------------------------------------------- logins
secret=change-me-radmfa-compose
node() { echo "$(compose ps -q "$1")"; }
on_primary() { podman exec -i "$(node node1)" radmfa "$@"; }

step "roles: node1 the primary, node2 and node3 replicas"
for n in 1 2 3; do
  want=replica
  [[ $n == 1 ]] && want=primary
  podman exec "$(node node$n)" radmfa status >"$work/status-$n.txt" 2>&1 || true
  grep -Eq "^role +$want( |$)" "$work/status-$n.txt" || {
    cat "$work/status-$n.txt"
    die "node$n is not the $want"
  }
done

# Started as the image and init intend: every node uses the shared VAPID key
# (none makes its own) and its data volume is owner-only.
for n in 1 2 3; do
  podman logs "$(node node$n)" >"$work/start-$n.log" 2>&1
  if grep -E 'created a new VAPID key|is open to other users' "$work/start-$n.log"; then
    die "node$n: the start-up message above"
  fi
  grep -E '"level":"(WARN|ERROR)"' "$work/start-$n.log" | sed "s/^/node$n: /" || true
done

step "users enrolled on the primary"
# One before the kill, three after: with the upstream state shared by nginx's
# workers (`zone`), three logins in a row go to three different nodes in
# round robin, so one of them is sent to the dead primary first.
users=(alice bob carol dave)
declare -A otp_secret
while read -r user b32; do
  otp_secret[$user]=$b32
done < <(podman exec "$(node node1)" sh -c '
  for u in "$@"; do
    printf "%s-Pw-1\n" "$u" | radmfa user add "$u" --password-stdin >/dev/null || exit 1
    printf "%s " "$u"; radmfa token enroll "$u" --no-qr | sed -n "s/^secret: //p"
  done' sh "${users[@]}")
for user in "${users[@]}"; do
  [[ -n ${otp_secret[$user]:-} ]] || die "token enroll printed no secret for $user"
done
# Every user reached both replicas before the primary goes.
for n in node2 node3; do
  podman exec "$(node $n)" sh -c 'for _ in $(seq 100); do
      radmfa user show dave >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1' ||
    die "users not replicated to $n"
done

# A login through the balancer as a NAS sends it: password and code in
# User-Password, 5 s timeout, 3 tries from one socket, then a new request
# (a new socket, as a NAS's next attempt) up to 4 times.
retried=0
login() {
  local user=$1 code out i
  for i in 1 2 3 4; do
    code=$(python3 tests/py/otp.py totp "${otp_secret[$user]}" "$(date +%s)")
    out=$(printf 'User-Name = "%s"\nUser-Password = "%s-Pw-1%s"\nMessage-Authenticator = 0x00\n' \
      "$user" "$user" "$code" | radclient -x -t 5 -r 3 "127.0.0.1:$port" auth "$secret" 2>&1) && {
      echo "$out" | grep -q 'Access-Accept' || die "login $user: $out"
      echo "login $user accepted (attempt $i)"
      [[ $i == 1 ]] || retried=$((retried + 1))
      return 0
    }
    echo "login $user attempt $i: $(echo "$out" | tail -1)"
    echo "$out" | grep -q 'Access-Reject' && die "login $user rejected: $out"
  done
  die "login $user: no answer through the balancer"
}

step "login through the balancer, all nodes up"
login alice

step "podman kill the primary"
podman kill "$(node node1)" >/dev/null
[[ $(podman inspect -f '{{.State.Running}}' "$(node node1)") == false ]] || die "node1 still running"

step "logins through the balancer, primary dead"
killed_at=$SECONDS
for user in bob carol dave; do
  login "$user"
done
echo "three logins accepted in $((SECONDS - killed_at)) s after the kill"
[[ $(podman inspect -f '{{.State.Running}}' "$(node node1)") == false ]] || die "node1 came back"
# Served by the replicas: their logs have each login accepted...
podman logs "$(node node2)" >"$work/replicas.log" 2>&1
podman logs "$(node node3)" >>"$work/replicas.log" 2>&1
for user in bob carol dave; do
  grep '"outcome":"accept"' "$work/replicas.log" | grep -q "\"user\":\"$user\"" ||
    die "no replica logged $user's accepted login"
done
# ...and one of them went to the dead primary first: nginx keeps a NAS
# socket's datagrams in one session, so that attempt's retransmissions went
# unanswered, and the NAS's next attempt (a new socket) reached a replica.
[[ $retried -ge 1 ]] || die "no login was sent to the dead primary: the failover path was not exercised"
step "passed: $retried of the three logins reached the dead primary first and a replica on a new attempt"
