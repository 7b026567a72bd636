#!/usr/bin/env bash
# Installs what Touchstone needs on a fresh Debian machine with the Swift toolchain:
# the LMDB, zstd and jemalloc C libraries (and their tools), zlib, and the Python clients the
# end-to-end tests drive. Idempotent: installs only what is missing.
set -euo pipefail
need=()
for p in liblmdb-dev libzstd-dev libjemalloc-dev lmdb-utils zlib1g-dev zstd curl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${TOUCHSTONE_SKIP_PIP:-0}" != "1" ]; then
  python3 -c 'import segment.analytics' 2>/dev/null || python3 -m pip install -q segment-analytics-python >/dev/null 2>&1 || echo "setup: segment-analytics-python not installed (its test will be skipped)"
fi
