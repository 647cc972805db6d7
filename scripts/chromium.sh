#!/usr/bin/env bash
# Headless Chromium for the report's browser test (Debian's package): installed when missing and we may.
# Without it the test is skipped locally and fails under CI=true.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
    command -v "$name" >/dev/null && exit 0
done
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "chromium not found and not installable here (needs root + apt-get): the report's browser test is skipped" >&2
    exit 0
fi
echo "installing chromium (headless browser for the report test)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
}
