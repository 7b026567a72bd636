#!/usr/bin/env bash
# Runs the benchmarks in release mode on a datagen set and prints the Markdown tables the
# README shows. Installs PostgreSQL (the peer) when missing.
#   Tools/bench.sh [CUSTOMERS]     (default 20000 customers ≈ 1M events)
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
command -v /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}
customers="${1:-20000}"
# One product per call: swift build honours only the last --product.
for p in touchstone touchstone-datagen touchstone-bench; do swift build -c release --scratch-path .build-release --product "$p"; done
out="${TMPDIR:-/tmp}/touchstone-bench-data"
mkdir -p "$out"
file="$out/datagen-$customers.ndjson"
[ -s "$file" ] || .build-release/release/touchstone-datagen --customers "$customers" --seed 42 --out "$file"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
.build-release/release/touchstone-bench log --input "$file"
