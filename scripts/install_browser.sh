#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard test. Without it that test is skipped
# (or fails when REQUIRE_BROWSER=1, as in CI).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "chromium is not installed and this user cannot install it: the dashboard test will be skipped." >&2
    echo "Install it with: sudo apt-get install chromium" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
