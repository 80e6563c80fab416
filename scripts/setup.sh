#!/usr/bin/env bash
# Set up (or update) .venv with reframe-vj and its dependencies. Offline-safe after the first run.
#   scripts/setup.sh          the app
#   scripts/setup.sh --test   the app, test dependencies and the Debian packages tests use (xvfb, jackd2,
#                             chromium: the web page's tests drive Debian's Chromium with playwright)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "setup: installing torch (about two minutes)..."
  if [ "$(uname -m)" = "x86_64" ]; then
    "${PIP[@]}" install "torch==2.14.1" "torchvision==0.29.1"
  else
    "${PIP[@]}" install "torch==2.9.1" "torchvision==0.24.1"
  fi
fi
if [ "${1:-}" = "--test" ]; then
  "${PIP[@]}" install -e ".[test]"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    command -v Xvfb >/dev/null || need+=(xvfb)
    command -v jackd >/dev/null || need+=(jackd2)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    if [ ${#need[@]} -gt 0 ]; then
      echo "setup: apt-get install ${need[*]}"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
        || echo "setup: could not install ${need[*]}; the tests that need them will skip"
    fi
  fi
else
  "${PIP[@]}" install -e .
fi
echo "setup: ready (.venv/bin/vj)"
