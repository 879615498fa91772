#!/usr/bin/env bash
# Builds nginx 1.22.1 from the vanilla source with clang + ASan + UBSan, and
# the module in the same tree (an ASan .so cannot be loaded by Debian's
# /usr/sbin/nginx: undefined __asan_* symbols).  Used by `make test-asan`.
#
#   test/sanitize/build-asan.sh [ASAN_DIR]      (default: build/asan)
#
# Result:  ASAN_DIR/nginx-1.22.1/objs/nginx
#          ASAN_DIR/nginx-1.22.1/objs/ngx_http_reverse_mcp_module.so
#
# The source tarball comes through apt with a PRIVATE deb-src list under
# ASAN_DIR/apt (the system's apt sources are not touched), from the mirror
# the machine already uses; its sha256 is checked.  nginx is configured and
# built once; later runs only rebuild the module (`make modules`), unless
# `config` or the configure arguments changed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
ASAN_DIR=$(realpath -m "${1:-$REPO/build/asan}")
VER=1.22.1
TARBALL=nginx_$VER.orig.tar.gz
SHA256=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
SRC=$ASAN_DIR/nginx-$VER
CC=${ASAN_CC:-clang}
JOBS=${ASAN_JOBS:-$(nproc)}

SAN='-fsanitize=address,undefined'
# -z nodelete: nginx dlclose()s its modules when it frees the cycle at exit,
# before LeakSanitizer reports; the module must stay mapped for its frames
# to be symbolized (otherwise "<unknown module>")
CONF_ARGS=(
    --with-cc="$CC"
    --prefix="$ASAN_DIR/prefix"
    --error-log-path=stderr
    --with-compat --with-debug --with-threads
    --with-http_ssl_module --with-http_v2_module
    --with-http_auth_request_module --with-http_sub_module
    --with-cc-opt="-O1 -g -fno-omit-frame-pointer $SAN -fsanitize-ignorelist=$REPO/test/sanitize/asan.ignorelist"
    --with-ld-opt="$SAN -Wl,-z,nodelete"
    --add-dynamic-module="$REPO"
)

log() { printf '[build-asan] %s\n' "$*" >&2; }
command -v "$CC" >/dev/null || { log "$CC is not installed (apt-get install clang)"; exit 1; }
t0=$(date +%s)

mkdir -p "$ASAN_DIR"

# --- 1. the source tarball --------------------------------------------------
tarball=$ASAN_DIR/src/$TARBALL
if ! echo "$SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
    log "fetching $TARBALL through apt (private deb-src list)"
    apt=$ASAN_DIR/apt
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$ASAN_DIR/src"
    # the mirror of the machine's own sources (deb822 or one-line format)
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/*$/\1/p' \
                 /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(sed -n \
        's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)\/*[[:space:]].*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    key=/usr/share/keyrings/debian-archive-keyring.gpg
    cat > "$apt/sources.list" <<EOF
deb-src [signed-by=$key] $mirror bookworm main
deb-src [signed-by=$key] $mirror-security bookworm-security main
EOF
    APTO=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::lists=$apt/lists" -o "Dir::Cache::archives=$apt/archives")
    apt-get -q "${APTO[@]}" update >"$apt/update.log" 2>&1 \
        || { cat "$apt/update.log" >&2; exit 1; }
    # only the orig tarball is needed: the newest .dsc/.debian.tar.xz may be
    # missing on the mirror (404), which makes apt-get exit non-zero
    (cd "$ASAN_DIR/src" && apt-get -q "${APTO[@]}" source --download-only nginx \
        >"$apt/source.log" 2>&1) || true
    if ! echo "$SHA256  $tarball" | sha256sum -c --status; then
        cat "$apt/source.log" >&2
        log "FAILED: $tarball missing or sha256 mismatch (want $SHA256)"
        exit 1
    fi
fi
log "source: $TARBALL sha256 ok"

# --- 2. configure + full build (once) ----------------------------------------
stamp=$ASAN_DIR/configured.args
want=$(printf '%s\n' "${CONF_ARGS[@]}"
       sha256sum "$REPO/config" "$REPO/test/sanitize/asan.ignorelist" | cut -d' ' -f1)
if [ ! -x "$SRC/objs/nginx" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "configuring and building nginx $VER with $CC + ASan + UBSan (-j$JOBS)"
    rm -rf "$SRC" "$stamp"
    tar -xzf "$tarball" -C "$ASAN_DIR"
    (cd "$SRC" && ./configure "${CONF_ARGS[@]}" >"$ASAN_DIR/configure.log" 2>&1) \
        || { tail -n 30 "$ASAN_DIR/configure.log" >&2; exit 1; }
    make -s -C "$SRC" -j"$JOBS" >"$ASAN_DIR/make.log" 2>&1 \
        || { tail -n 60 "$ASAN_DIR/make.log" >&2; exit 1; }
    printf '%s\n' "$want" > "$stamp"
    log "nginx built in $(( $(date +%s) - t0 )) s"
else
    # nginx's Makefile only knows the headers listed in `config`: drop the
    # module's objects when any source or header is newer than the .so
    so=$SRC/objs/ngx_http_reverse_mcp_module.so
    if [ -n "$(find "$REPO/src" -newer "$so" \( -name '*.c' -o -name '*.h' \) 2>/dev/null | head -n1)" ] \
       || [ ! -f "$so" ]; then
        rm -f "$SRC"/objs/addon/src/ngx_http_reverse_mcp_*.o
    fi
    make -s -C "$SRC" -j"$JOBS" modules >"$ASAN_DIR/make.log" 2>&1 \
        || { tail -n 60 "$ASAN_DIR/make.log" >&2; exit 1; }
    log "module up to date in $(( $(date +%s) - t0 )) s"
fi

"$SRC/objs/nginx" -v
ls -l "$SRC/objs/nginx" "$SRC/objs/ngx_http_reverse_mcp_module.so" >&2
