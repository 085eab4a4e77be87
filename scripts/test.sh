#!/bin/sh
# The test command: install what the tests need, then run them (as root).
set -eu
cd "$(dirname "$0")/.."
scripts/install.sh --test
exec python3 -m pytest -q "$@"
