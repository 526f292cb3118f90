#!/usr/bin/env bash
# The README's test command: `bash tests/run.sh` on a Debian machine with Rust.
#
# Installs the real peers the end-to-end tests talk to (unless they are all
# there already), then runs `cargo test --workspace --no-fail-fast` with any
# arguments given (e.g. `bash tests/run.sh --test radius_e2e`):
#   - FreeRADIUS' radclient and pyrad (RADIUS clients), FreeRADIUS (upstream
#     server), slapd (directory), nginx's UDP stream proxy (the balancer),
#     radsecproxy (RadSec client), Chromium with Node.js (portal), aiosmtpd
#     (mail sink), schemathesis (API fuzzing), docker-compose v1 and
#     systemd-analyze (deployment files), iproute2/util-linux/curl (the
#     README walkthrough test's network namespace), podman, runc and
#     debootstrap (tests/container.sh, which .ci/run runs after this).
# Installing needs root (or sudo). RADMFA_NO_INSTALL=1 skips it: tests whose
# peer is then missing print one `SKIPPED <test>: needs ...` line naming the
# package and pass, unless CI=true (which .ci/run sets), where they fail.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_pkgs=(freeradius-utils python3-pip ca-certificates nginx libnginx-mod-stream freeradius
  slapd ldap-utils chromium radsecproxy docker-compose systemd iproute2 curl util-linux
  podman runc debootstrap binutils)
pip_pkgs=('pyrad==2.6.0' 'pycryptodome==3.21.0' 'aiosmtpd==1.4.6' 'schemathesis==4.32.5' 'twilio==9.13.0'
  'http-ece==1.2.1' 'python-pskc==1.4')

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

peers_present() {
  local c
  for c in radclient freeradius nginx slapd ldapadd radsecproxy docker-compose \
    systemd-analyze ip nsenter unshare curl node npm schemathesis podman objcopy; do
    command -v "$c" >/dev/null || return 1
  done
  [[ -x /usr/bin/chromium && -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || return 1
  [[ -x /usr/sbin/runc && -x /usr/sbin/debootstrap ]] || return 1
  python3 -c 'import pyrad, Crypto, aiosmtpd, twilio, http_ece, pskc' 2>/dev/null || return 1
  [[ -d tests/portal/node_modules/playwright-core ]] || return 1
}

if [[ ${RADMFA_NO_INSTALL:-0} != 1 ]] && ! peers_present; then
  echo "tests/run.sh: installing the test peers (apt-get, pip, npm)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update
  as_root apt-get install -y --no-install-recommends "${apt_pkgs[@]}"
  # The portal test drives Chromium with Node.js >= 18 (playwright-core, pinned
  # in tests/portal/package-lock.json; it downloads no browser).
  command -v npm >/dev/null || as_root apt-get install -y --no-install-recommends nodejs npm
  (cd tests/portal && npm ci --no-audit --no-fund)
  # python3 may come from pyenv rather than Debian: install for the interpreter
  # the tests run (`python3` on PATH), not for whichever pip is first.
  python3 -m pip install --disable-pip-version-check "${pip_pkgs[@]}" \
    || python3 -m pip install --disable-pip-version-check --break-system-packages "${pip_pkgs[@]}"
fi

[[ ${RADMFA_INSTALL_ONLY:-0} == 1 ]] && exit 0
exec cargo test --workspace --no-fail-fast "$@"
