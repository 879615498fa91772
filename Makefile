# ngx_http_reverse_mcp_module: build against Debian's nginx-dev, run, test.
#
#   make run     install what is missing, build, start the quickstart gateway
#   make test    install what is missing, build, run the whole suite (prove)

SHELL        := /bin/bash
REPO         := $(abspath .)
BUILD        := $(REPO)/build
NGINX_SRC    ?= /usr/share/nginx/src
NGINX        ?= /usr/sbin/nginx
MODULE       := $(BUILD)/ngx_http_reverse_mcp_module.so
RUNDIR       := $(BUILD)/run
PROVE_JOBS   ?= 1

APT_PKGS := nginx-core nginx-dev libyajl-dev libssl-dev libcurl4-openssl-dev \
            openssl curl ca-certificates make gcc \
            libtest-base-perl libmojolicious-perl libprotocol-websocket-perl \
            libio-socket-ssl-perl libtest-longstring-perl libtext-diff-perl \
            liblist-moreutils-perl libcpanel-json-xs-perl libcmocka-dev \
            clang libclang-rt-14-dev

SRCS := $(wildcard src/*.c src/*.h) config

# reverse-mcp-bridge: bridge/*.c plus the frame codec shared with the module
BRIDGE       := $(BUILD)/reverse-mcp-bridge
BRIDGE_SRCS  := $(wildcard bridge/*.c) src/ngx_http_reverse_mcp_ws_codec.c
BRIDGE_DEPS  := $(BRIDGE_SRCS) $(wildcard bridge/*.h) \
                src/ngx_http_reverse_mcp_ws_codec.h

.PHONY: all deps build bridge run test unit fuzz certs clean

all: build

deps:
	@missing=$$(for p in $(APT_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	        grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    if [ "$$(id -u)" != 0 ]; then echo "run as root to install packages" >&2; exit 1; fi; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	        -o DPkg::Lock::Timeout=300 --no-install-recommends $$missing; \
	fi
	@if ! command -v node >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; fi
	@if [ -f package-lock.json ] && { [ ! -d node_modules ] || \
	    [ package-lock.json -nt node_modules/.package-lock.json ]; }; then \
	    npm ci --no-audit --no-fund --loglevel=error; fi

$(BUILD)/Makefile: config
	@mkdir -p $(BUILD)
	cd $(NGINX_SRC) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(REPO) \
	    --builddir=$(BUILD) > $(BUILD)/configure.log

$(MODULE): $(BUILD)/Makefile $(SRCS)
	$(MAKE) -s -f $(BUILD)/Makefile -C $(NGINX_SRC) modules

build: deps $(MODULE)

bridge: deps $(BRIDGE)

$(BRIDGE): $(BRIDGE_DEPS)
	@mkdir -p $(BUILD)
	gcc -O2 -g -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE \
	    -D_FORTIFY_SOURCE=2 -fstack-protector-strong -Isrc -Ibridge \
	    -o $@ $(BRIDGE_SRCS) -lssl -lcrypto

certs: $(BUILD)/certs/server.crt

$(BUILD)/certs/server.crt:
	@mkdir -p $(BUILD)/certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=reverse-mcp-dev-ca" \
	    -keyout $(BUILD)/certs/ca.key -out $(BUILD)/certs/ca.crt 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	    -keyout $(BUILD)/certs/server.key -out $(BUILD)/certs/server.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > $(BUILD)/certs/san.ext
	openssl x509 -req -in $(BUILD)/certs/server.csr -CA $(BUILD)/certs/ca.crt \
	    -CAkey $(BUILD)/certs/ca.key -CAcreateserial -days 3650 \
	    -extfile $(BUILD)/certs/san.ext -out $(BUILD)/certs/server.crt 2>/dev/null

# The quickstart: nginx in the foreground with conf-examples/quickstart.conf,
# and reverse-mcp-bridge serving the demo stdio MCP server (tools/) as
# "demo".  Prefix build/run: modules/ -> build, certs/ -> build/certs.
run: build bridge certs
	@mkdir -p $(RUNDIR)/logs $(RUNDIR)/temp
	@ln -sfn $(BUILD) $(RUNDIR)/modules
	@ln -sfn $(BUILD)/certs $(RUNDIR)/certs
	@cp conf-examples/*.conf conf-examples/*.token $(RUNDIR)/
	$(NGINX) -p $(RUNDIR) -c quickstart.conf -t
	@echo "gateway: connector ws://127.0.0.1:9090/ws, status http://127.0.0.1:8080/status"
	@echo "demo: reverse-mcp-bridge + tools/demo-stdio-server.mjs, log in $(RUNDIR)/logs/demo.log"
	@REVERSE_MCP_TOKEN=demo-token $(BRIDGE) --url ws://127.0.0.1:9090/ws \
	    --name demo --backoff-max 5s -- node tools/demo-stdio-server.mjs \
	    > $(RUNDIR)/logs/demo.log 2>&1 & demo=$$!; \
	trap 'kill $$demo 2>/dev/null' EXIT; \
	$(NGINX) -p $(RUNDIR) -c quickstart.conf

unit:
	$(MAKE) -s -C test/unit test

# libFuzzer, FUZZ_SECONDS per target (README.md, Testing); the targets
# that drive the module's nginx glue link against the ASan nginx build of
# test-asan (built once, shared)
fuzz: deps
	$(MAKE) -s -C test/unit fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-60}

test: build bridge unit
	prove -j$(PROVE_JOBS) -I t/lib -r t/

# Sanitizer runs of the whole t/ suite (test/sanitize/): nginx 1.22.1 and the
# module built with clang + ASan + UBSan in build/asan/ (the source comes
# through apt; nginx is built once, later runs rebuild only the module), or
# Debian's nginx and the module under valgrind memcheck.
.PHONY: test-asan test-valgrind
test-asan: deps bridge
	test/sanitize/run-asan.sh

test-valgrind: build bridge
	test/sanitize/run-valgrind.sh

clean:
	rm -rf $(BUILD) t/servroot*

# The soak (bench/soak.py): SOAK_SECONDS (600) of 1,000 churning reverse
# servers and a steady tools/call load on 2 workers, loopback only; prints
# calls, errors, zone usage and worker RSS at start, middle and end.
.PHONY: soak
soak: build
	gcc -O2 -g -Wall -Wextra -Werror -std=gnu11 -o $(BUILD)/mcpfast \
	    bench/mcpfast.c -lcrypto
	ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	timeout --signal=TERM --kill-after=15 \
	    $$(( $${SOAK_SECONDS:-600} + 240 )) python3 bench/soak.py

# The benchmark suite (bench/README.md): tools/call, idle sockets, tools/list,
# connect storm and large results against baselines measured in the same run;
# loopback only, under 10 minutes; results in bench/results/latest.md.
.PHONY: bench
bench: build bridge
	bench/run.sh
