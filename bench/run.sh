#!/usr/bin/env bash
# `make bench` (after `make build bridge`): installs wrk when missing, builds
# the load tool build/mcpfast from bench/mcpfast.c, then runs bench/run.py
# under a hard 10-minute limit.  Knobs: see the header of bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" != 0 ]; then echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=300 --no-install-recommends wrk
fi
command -v node >/dev/null || { echo "bench: node is missing (make deps)" >&2; exit 1; }
[ -d node_modules/ws ] && [ -d node_modules/@modelcontextprotocol/sdk ] || \
    npm ci --no-audit --no-fund --loglevel=error

mkdir -p build
gcc -O2 -g -Wall -Wextra -Werror -std=gnu11 -o build/mcpfast bench/mcpfast.c -lcrypto

# 10,000 sockets in one process: raise the soft limit to the hard one
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec timeout --signal=TERM --kill-after=15 585 python3 bench/run.py "$@"
