#!/usr/bin/env bash
# Set up everything the tests need, start Xvfb and a dummy JACK server, run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k gan -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export SDL_VIDEODRIVER=${SDL_VIDEODRIVER:-dummy} SDL_AUDIODRIVER=dummy PYGAME_HIDE_SUPPORT_PROMPT=1
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if command -v Xvfb >/dev/null; then
  Xvfb :97 -screen 0 1280x720x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
  export VJ_TEST_DISPLAY=:97
fi
if command -v jackd >/dev/null; then
  JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -d dummy -r 48000 >/dev/null 2>&1 & pids+=($!)
  export VJ_TEST_JACK=1
fi
.venv/bin/python -m pytest -q "$@"
