#!/usr/bin/env bash
# Install what SiteWatch needs on a fresh Debian/Ubuntu machine: Debian's mosquitto,
# influxdb, postgresql and docker-compose, the tools the tests call (openssl, mkfs.ext4,
# mount, Chromium and CJK fonts for the browser tests), then a virtualenv in .venv with the project
# and its test tools. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v influxd >/dev/null || need+=(influxdb)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v pgrep >/dev/null || need+=(procps)
command -v runuser >/dev/null || need+=(util-linux)
# what the tests call: the TLS tests make certificates, the disk-fault tests mount a small
# ext4 image on a loop device
command -v openssl >/dev/null || need+=(openssl)
command -v mkfs.ext4 >/dev/null || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
command -v mount >/dev/null || need+=(mount)
command -v losetup >/dev/null || [ -x /sbin/losetup ] || need+=(mount)
# the browser tests: Debian's Chromium (driven by Playwright; its own browser download is
# not used) and the CJK fonts, so that Chinese pages render in the screenshots
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)

pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null &&
       "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}
PYTHON=$(pick_python || true)
if [ -z "$PYTHON" ]; then need+=(python3 python3-venv python3-pip); fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # the packages' own services are not used (SiteWatch starts its servers on free ports)
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  PYTHON=$(pick_python)
fi

stamp=.venv/.sitewatch-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with $PYTHON and installing SiteWatch"
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    # Debian ships venv's pip bootstrap separately (python3-venv / python3.X-venv)
    rm -rf .venv
    ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "setup: installing python3-venv for Python $ver"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends python3-venv "python$ver-venv" >/dev/null \
      || $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# grafana-client's HTTP library brings urllib3-future, whose .pth file copies itself over
# urllib3 at every interpreter start; requests (and so schemathesis's own client, used by
# scripts/api_schema_check.py) then fails ('TrafficPolice' object has no attribute
# 'keys'). The fork also installs as urllib3_future, which that library uses when urllib3
# is the real one: keep the real urllib3.
for pth in .venv/lib/python3*/site-packages/urllib3_future.pth; do
  [ -f "$pth" ] || continue
  rm -f "$pth"
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "urllib3>=2,<3"
done
