#!/usr/bin/env bash
# make test-valgrind: the whole t/ suite with Debian's nginx and the module
# (make build) under valgrind memcheck, like Test::Nginx's
# TEST_NGINX_USE_VALGRIND mode: the harness starts nginx under valgrind
# (one log per process in logs/valgrind.PID.log), multiplies its waits and
# the clients' timeouts by TEST_NGINX_TIMEOUT_SCALE, and fails a block
# whose valgrind logs show errors (t/lib/Test/Nginx/Socket.pm).
#
#   test/sanitize/run-valgrind.sh [prove args]   (default: -r t/)
#
# Environment: TEST_NGINX_TIMEOUT_SCALE (10), TEST_NGINX_VALGRIND_OPTS
# (extra valgrind options, e.g. --leak-check=full), PROVE_JOBS (1).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

export TEST_NGINX_USE_VALGRIND=1
export TEST_NGINX_TIMEOUT_SCALE=${TEST_NGINX_TIMEOUT_SCALE:-10}

cd "$REPO"
[ $# -gt 0 ] || set -- -r t/
# prove's summary stays the last line (CI reads it)
echo "test-valgrind: TEST_NGINX_TIMEOUT_SCALE=$TEST_NGINX_TIMEOUT_SCALE"
exec prove -j"${PROVE_JOBS:-1}" -I t/lib "$@"
