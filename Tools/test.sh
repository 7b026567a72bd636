#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
swift build --product touchstone
swift build --product touchstone-datagen
swift build --product touchstone-replay
swift test 2>&1
