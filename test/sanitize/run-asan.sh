#!/usr/bin/env bash
# make test-asan: the whole t/ suite against nginx 1.22.1 and the module
# built with clang + ASan + UBSan (test/sanitize/build-asan.sh).  The
# harness fails a block whose logs hold a sanitizer report
# (t/lib/Test/Nginx/Socket.pm, $SanitizerLog).
#
#   test/sanitize/run-asan.sh [prove args]       (default: -r t/)
#
# Environment: ASAN_DIR (build/asan), PROVE_JOBS (1), ASAN_LEAKS (1: leak
# detection on, with test/sanitize/lsan.supp for nginx core's at-exit
# allocations; 0: off), TEST_NGINX_TIMEOUT_SCALE (1).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/test/sanitize
ASAN_DIR=${ASAN_DIR:-$REPO/build/asan}
OBJS=$ASAN_DIR/nginx-1.22.1/objs

t0=$(date +%s)
"$HERE/build-asan.sh" "$ASAN_DIR"
t1=$(date +%s)

leaks=${ASAN_LEAKS:-1}
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$HERE/ubsan.supp"
export TEST_NGINX_BINARY=$OBJS/nginx
export TEST_NGINX_LOAD_MODULES=$OBJS/ngx_http_reverse_mcp_module.so

cd "$REPO"
[ $# -gt 0 ] || set -- -r t/
# prove's summary stays the last line (CI reads it); its "wallclock secs"
# is the suite's time
echo "test-asan: build $((t1 - t0)) s; ASAN_OPTIONS=$ASAN_OPTIONS"
exec prove -j"${PROVE_JOBS:-1}" -I t/lib "$@"
