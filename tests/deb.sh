#!/usr/bin/env bash
# The Debian package, built and used as an admin would: `bash tests/deb.sh`
# as root on a Debian machine where radmfa is not installed (.ci/run calls
# it after the test suite).
#
#  1. builds target/debian/radmfa_<version>_amd64.deb with `cargo deb --strip`
#     (cargo-deb pinned below; installed when missing);
#  2. checks its contents: conffile, unit, modes, every file owned by root;
#  3. `dpkg -i`: the radmfa system account, /var/lib/radmfa owned by it,
#     /etc/radmfa/radmfa.toml root:radmfa 0640, `radmfa` on PATH reading
#     that file without --config;
#  4. starts the installed unit's ExecStart= line as its User=/Group= (no
#     systemd here: the line is read from the installed unit file) in a
#     network namespace of its own (UDP 1812 private to the test), waits
#     until it answers, adds a user and a TOTP token with the installed CLI,
#     signs in with radclient using a code computed by tests/py/otp.py (not
#     by radmfa), checks that a wrong code is rejected and that the keys the
#     server made at its first start are 0600 and owned by radmfa;
#  5. `dpkg -r` keeps the configuration and the data, `dpkg --purge` leaves
#     nothing behind but the radmfa account (kept as Debian does: see
#     deploy/debian/postrm).
# Any failure prints `tests/deb.sh: FAILED: <reason>` and exits 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_DEB_VERSION=3.8.0

fail() {
  echo "tests/deb.sh: FAILED: $*" >&2
  exit 1
}
step() { echo "tests/deb.sh: $*"; }

# "MODE OWNER GROUP" of a path.
perms() { stat -c '%a %U %G' "$1"; }

expect_perms() { # PATH "MODE OWNER GROUP"
  local got
  got=$(perms "$1") || fail "$1 is missing"
  [[ $got == "$2" ]] || fail "$1 is $got, expected $2"
}

# --- part run inside the private network namespace (step 4) -------------
if [[ ${1:-} == --serve-and-login ]]; then
  ip link set lo up
  unit=/lib/systemd/system/radmfa.service
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  user=$(sed -n 's/^User=//p' "$unit")
  group=$(sed -n 's/^Group=//p' "$unit")
  [[ -n $exec_start && -n $user && -n $group ]] || fail "$unit: no ExecStart=/User=/Group="
  as_radmfa() { runuser -u radmfa -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
  step "starting '$exec_start' as $user:$group"
  log=$(mktemp)
  # As systemd would: working directory /, a clean environment, the unit's
  # account. read -a splits the line as systemd does for a line without quotes.
  read -r -a argv <<<"$exec_start"
  (cd / && exec setpriv --reuid="$user" --regid="$group" --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${argv[@]}") >"$log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    as_radmfa radmfa stats >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { cat "$log"; fail "the server exited at start-up"; }
    sleep 0.2
  done
  as_radmfa radmfa stats >/dev/null || { cat "$log"; fail "the server did not answer on its control socket"; }

  step "user and token with the installed CLI (no --config)"
  as_radmfa radmfa user add alice --display-name "Alice Example" --password-stdin <<<'correct horse' \
    || fail "radmfa user add"
  enroll=$(as_radmfa radmfa token enroll alice) || fail "radmfa token enroll"
  secret=$(grep -o 'secret=[A-Z2-7]*' <<<"$enroll" | head -n1 | cut -d= -f2)
  [[ -n $secret ]] || fail "no secret in the output of token enroll: $enroll"

  login() { # PASSWORD+CODE -> radclient output
    printf 'User-Name = "alice"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$1" \
      | radclient -x -r 1 -t 5 127.0.0.1 auth testing123 2>&1 || true
  }
  # A code from Python's hmac (tests/py/otp.py), clear of a step boundary.
  (( $(date +%s) % 30 < 25 )) || sleep 6
  code=$(python3 tests/py/otp.py totp "$secret" "$(date +%s)")
  wrong=$(printf '%06d' $(( (10#$code + 1) % 1000000 )))
  out=$(login "correct horse$wrong")
  grep -q 'Received Access-Reject' <<<"$out" || fail "a wrong code was not rejected: $out"
  out=$(login "correct horse$code")
  grep -q 'Received Access-Accept' <<<"$out" || { cat "$log"; fail "no Access-Accept with a fresh code: $out"; }
  step "radclient login accepted"

  step "keys made at the first start: 0600, owned by radmfa"
  expect_perms /var/lib/radmfa/seed.key "600 radmfa radmfa"
  expect_perms /var/lib/radmfa/cluster.key "600 radmfa radmfa"
  expect_perms /var/lib/radmfa/control.sock "600 radmfa radmfa"
  stray=$(find /var/lib/radmfa ! -user radmfa)
  [[ -z $stray ]] || fail "not owned by radmfa in /var/lib/radmfa: $stray"
  loose=$(find /var/lib/radmfa -perm /0077)
  [[ -z $loose ]] || fail "open to the group or others in /var/lib/radmfa: $loose"
  ! grep -q 'open to other users' "$log" || { cat "$log"; fail "the server warned about open directories"; }

  kill -TERM $server
  wait $server || fail "the server did not exit cleanly on SIGTERM (status $?)"
  trap - EXIT
  exit 0
fi

# --- steps 1-3, 5 --------------------------------------------------------
[[ $(id -u) == 0 ]] || fail "needs root (dpkg -i)"
for c in dpkg dpkg-deb dpkg-statoverride adduser runuser setpriv unshare ip radclient python3; do
  command -v "$c" >/dev/null || fail "needs $c"
done
if dpkg-query -W -f='${Status}' radmfa 2>/dev/null | grep -q installed; then
  fail "the radmfa package is installed already: dpkg --purge radmfa first"
fi
[[ ! -e /etc/radmfa && ! -e /var/lib/radmfa ]] || fail "/etc/radmfa or /var/lib/radmfa exists already"

if [[ $(cargo deb --version 2>/dev/null) != *"$CARGO_DEB_VERSION"* ]]; then
  step "installing cargo-deb $CARGO_DEB_VERSION"
  time cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
step "cargo deb"
time cargo deb --locked --strip
target_dir=${CARGO_TARGET_DIR:-target}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
deb="$target_dir/debian/radmfa_${version}_amd64.deb"
[[ -f $deb ]] || fail "cargo deb made no $deb"

step "package contents"
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/radmfa ./etc/radmfa/radmfa.toml ./usr/lib/systemd/system/radmfa.service \
  ./usr/lib/sysusers.d/radmfa.conf ./usr/share/doc/radmfa/copyright ./usr/share/doc/radmfa/deployment.md; do
  grep -q " $f\$" <<<"$listing" || fail "$f is not in the package"
done
notroot=$(awk '$2 != "root/root" && $2 != "0/0"' <<<"$listing")
[[ -z $notroot ]] || fail "files in the package not owned by root: $notroot"
grep -q '^-rwxr-xr-x .* ./usr/bin/radmfa$' <<<"$listing" || fail "/usr/bin/radmfa is not 0755"
grep -q '^-rw-r----- .* ./etc/radmfa/radmfa.toml$' <<<"$listing" || fail "radmfa.toml is not 0640"
writable=$(awk '$1 ~ /^-.......w/' <<<"$listing")
[[ -z $writable ]] || fail "world-writable files: $writable"
[[ $(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) == /etc/radmfa/radmfa.toml ]] \
  || fail "conffiles is not exactly /etc/radmfa/radmfa.toml"

step "dpkg -i $deb"
# On a failure below, the package goes again (a shared machine stays clean).
trap 'echo "tests/deb.sh: purging radmfa after the failure"; dpkg --purge radmfa >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"
[[ $(command -v radmfa) == /usr/bin/radmfa ]] || fail "radmfa is not on PATH as /usr/bin/radmfa"
getent passwd radmfa >/dev/null || fail "no radmfa account"
uid=$(id -u radmfa)
(( uid < 1000 )) || fail "radmfa is not a system account (uid $uid)"
expect_perms /var/lib/radmfa "700 radmfa radmfa"
expect_perms /etc/radmfa "750 root radmfa"
expect_perms /etc/radmfa/radmfa.toml "640 root radmfa"
cmp /lib/systemd/system/radmfa.service deploy/systemd/radmfa.service \
  || fail "the installed unit is not deploy/systemd/radmfa.service"
installed=$(dpkg -L radmfa)
while read -r f; do
  [[ -e $f ]] || fail "dpkg -L lists $f, which is missing"
done <<<"$installed"
# The installed CLI finds the packaged configuration on its own.
out=$(runuser -u radmfa -- radmfa check-config 2>&1) || fail "radmfa check-config: $out"
[[ $out == "/etc/radmfa/radmfa.toml: ok"* ]] || fail "check-config did not read /etc/radmfa/radmfa.toml: $out"

unshare --net bash "$PWD/tests/deb.sh" --serve-and-login

step "dpkg -r: configuration and data stay"
dpkg -r radmfa
[[ ! -e /usr/bin/radmfa && ! -e /lib/systemd/system/radmfa.service ]] || fail "dpkg -r left the binary or the unit"
[[ -f /etc/radmfa/radmfa.toml ]] || fail "dpkg -r removed the conffile"
[[ -f /var/lib/radmfa/seed.key ]] || fail "dpkg -r removed the data"

step "dpkg --purge: nothing left but the radmfa account"
dpkg --purge radmfa
if dpkg-query -W -f='${Status}' radmfa 2>/dev/null | grep -qv 'not-installed'; then
  fail "dpkg still knows radmfa: $(dpkg-query -W -f='${Status}' radmfa)"
fi
# Every path the package had is gone, but directories other packages own
# too (/usr/bin, /usr/lib/sysusers.d...).
while read -r f; do
  [[ -e $f ]] || continue
  [[ -d $f ]] && dpkg-query -S "$f" >/dev/null 2>&1 && continue
  fail "dpkg --purge left $f"
done <<<"$installed"
# deb-systemd-helper's enable symlink and state (made even without systemd).
left=$(find /etc/systemd /var/lib/systemd -name '*radmfa*' 2>/dev/null || true)
[[ -z $left ]] || fail "dpkg --purge left systemd state: $left"
for p in /etc/radmfa /var/lib/radmfa; do
  [[ ! -e $p ]] || fail "dpkg --purge left $p: $(find "$p")"
done
overrides=$(dpkg-statoverride --list | grep radmfa || true)
[[ -z $overrides ]] || fail "dpkg --purge left statoverrides: $overrides"
owned=$(find /etc /var /usr /run /opt /srv -xdev -user radmfa 2>/dev/null || true)
[[ -z $owned ]] || fail "files owned by radmfa after purge: $owned"
getent passwd radmfa >/dev/null || fail "the radmfa account was removed (expected kept, see deploy/debian/postrm)"
trap - EXIT
step "ok"
