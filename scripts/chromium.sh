#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the web page's browser test (tests/web), which
# drives it with Playwright's Python driver (no browser download: Playwright launches
# /usr/bin/chromium). Installs it with apt-get where this user can (CI runs as root); elsewhere it
# says how, and the browser test skips with that reason.
set -uo pipefail
browser="${LITHOSEG_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; then
    exit 0
  fi
  echo "apt-get could not install chromium; the browser test will be skipped" >&2
  exit 0
fi
echo "no $browser: install Debian's chromium (sudo apt-get install chromium) to run the browser test" >&2
