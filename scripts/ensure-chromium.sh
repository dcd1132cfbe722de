#!/usr/bin/env bash
# The report test opens biounet's HTML report in headless Chromium (Debian's package).
# Install it when missing and when we may (root with apt-get); otherwise say so and go on:
# the report test then reports itself as skipped with this reason.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the report test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the report rendering test will be skipped"
else
  echo "note: chromium is not installed and cannot be installed here; the report rendering test will be skipped"
fi
exit 0
