# krappy - one entry point.
#
#   make            build bin/krappyd, bin/krappy, lib/libkrappy.{a,so}  (-O2)
#   make run        install what is missing, build, run krappyd on ./data
#   make cluster    the same, three nodes of one cluster (./data/node-N)
#   make test       install what is missing, build with ASan+UBSan, run unit
#                   tests, fuzz-corpus replay and the e2e suite, then an e2e
#                   smoke run on the -O2 build
#   make torture    the long loops (full counts)
#   make bench      speed figures
#   make install    PREFIX=/usr/local DESTDIR=
#   make deps       install missing Debian packages (or say which)
#   make fmt lint fuzz valgrind clean
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS; project flags are kept apart.

VERSION     := 0.1.0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# Where bash-completion looks for a command's completion.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR     ?=

CC          ?= cc
CFLAGS      ?= -O2 -g
PKG_CONFIG  ?= pkg-config

# BUILD=release (default) writes bin/ and lib/; BUILD=asan writes build/asan/.
BUILD       ?= release
ifeq ($(BUILD),release)
OUT         := .
VARIANT_CFLAGS :=
else ifeq ($(BUILD),asan)
OUT         := build/asan
VARIANT_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                  -fno-omit-frame-pointer
else
$(error BUILD must be release or asan)
endif
OBJ         := build/$(BUILD)/obj
# Test programs never go into the source tree.
TOUT        := build/$(BUILD)

WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wformat=2 -Wno-format-nonliteral
KR_CPPFLAGS := -Iinclude -Isrc -D_GNU_SOURCE -DKRAPPY_VERSION='"$(VERSION)"'
KR_CFLAGS   := -std=gnu11 -fPIC -MMD -MP $(WARN)

# Dependencies come from pkg-config; evaluated lazily so `make deps` runs first.
PC_CBOR      = $(shell $(PKG_CONFIG) --cflags --libs libcbor 2>/dev/null)
PC_SERVER    = $(shell $(PKG_CONFIG) --cflags --libs libevent libevent_pthreads libcbor rocksdb raft libuv 2>/dev/null)
PC_CMOCKA    = $(shell $(PKG_CONFIG) --cflags --libs cmocka 2>/dev/null)
# The Kafka codec's decompressors; Debian's snappy may lack a .pc file.
PC_KAFKA     = $(shell $(PKG_CONFIG) --libs zlib liblz4 libzstd 2>/dev/null || echo -lz -llz4 -lzstd) \
               $(shell $(PKG_CONFIG) --libs snappy 2>/dev/null || echo -lsnappy)
PC_CFLAGS    = $(shell $(PKG_CONFIG) --cflags libevent libcbor raft libuv 2>/dev/null) \
               $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)

ALL_CFLAGS   = $(KR_CPPFLAGS) $(CPPFLAGS) $(KR_CFLAGS) $(CFLAGS) $(VARIANT_CFLAGS)
ALL_LDFLAGS  = $(LDFLAGS) $(VARIANT_CFLAGS)

# One folder per layer (docs/DESIGN.md); the arrows run one way:
# util <- proto <- client, util <- store <- cluster <- server (`make lint`
# checks the includes, .ci/layers.sh).
UTIL_SRC    := $(wildcard src/util/*.c)
PROTO_SRC   := $(wildcard src/proto/*.c)
STORE_SRC   := $(wildcard src/store/*.c)
SERVER_SRC  := $(filter-out src/server/main.c,$(wildcard src/server/*.c))
CLIENT_SRC  := $(filter-out src/client/cli.c src/client/cli_%.c,$(wildcard src/client/*.c))
CLI_SRC     := src/client/cli.c $(wildcard src/client/cli_*.c)
# The Kafka wire protocol (src/kafka/): a codec layer beside proto, used by
# the server.
KAFKA_SRC   := $(wildcard src/kafka/*.c)
# Replication (libraft + libuv): a layer over store, under server.
CLUSTER_SRC := $(wildcard src/cluster/*.c)
TEST_SRC    := $(wildcard tests/test_*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
E2E_SRC     := $(wildcard e2e/e2e_*.c)
E2E_LIB_SRC := e2e/harness.c e2e/cluster.c e2e/proxy.c
# What every e2e suite (a cmocka program, unlike the benches) links too.
E2E_SUITE_SRC := e2e/suite.c
HAMMER_SRC  := $(wildcard e2e/hammer/*.c)
BENCH_SRC   := $(wildcard e2e/bench/*.c)
# bench_vs: krappyd side by side with NATS JetStream and Redis Streams; it
# links the peers' C clients, so only `make bench` builds it.
VS_SRC      := $(wildcard e2e/bench/vs/*.c)

obj = $(patsubst %.c,$(OBJ)/%.o,$(1))

UTIL_OBJ    := $(call obj,$(UTIL_SRC))
PROTO_OBJ   := $(call obj,$(PROTO_SRC))
STORE_OBJ   := $(call obj,$(STORE_SRC))
KAFKA_OBJ   := $(call obj,$(KAFKA_SRC))
CLIENT_OBJ  := $(call obj,$(CLIENT_SRC))
CLI_OBJ     := $(call obj,$(CLI_SRC))
# The web console (src/server/console.html) is compiled in: see gen/console.c.
GEN         := build/$(BUILD)/gen
CONSOLE_OBJ := $(OBJ)/gen/console.o
SERVER_OBJ  := $(call obj,$(SERVER_SRC)) $(CONSOLE_OBJ)
CLUSTER_OBJ := $(call obj,$(CLUSTER_SRC))

# One archive per layer of the daemon, and the link order that follows from
# the arrows: a layer before the ones it uses. A call upwards has nothing to
# resolve it and fails to link. libkrappy.a is the client's layer (util and
# proto objects included, as it is installed).
LAYER_LIB   := build/$(BUILD)/lib
UTIL_LIB    := $(LAYER_LIB)/libkr_util.a
PROTO_LIB   := $(LAYER_LIB)/libkr_proto.a
STORE_LIB   := $(LAYER_LIB)/libkr_store.a
KAFKA_LIB   := $(LAYER_LIB)/libkr_kafka.a
CLUSTER_LIB := $(LAYER_LIB)/libkr_cluster.a
SERVER_LIB  := $(LAYER_LIB)/libkr_server.a
CLIENT_LIB  := $(LAYER_LIB)/libkr_client.a
DAEMON_LIBS := $(SERVER_LIB) $(KAFKA_LIB) $(CLUSTER_LIB) $(CLIENT_LIB) $(STORE_LIB) $(PROTO_LIB) \
               $(UTIL_LIB)

KRAPPYD     := $(OUT)/bin/krappyd
KRAPPY      := $(OUT)/bin/krappy
LIBA        := $(OUT)/lib/libkrappy.a
LIBSO       := $(OUT)/lib/libkrappy.so.0
TESTS       := $(patsubst tests/%.c,$(TOUT)/tests/%,$(TEST_SRC))
FUZZERS     := $(patsubst tests/fuzz/%.c,$(TOUT)/fuzz/%,$(FUZZ_SRC))
E2E         := $(patsubst e2e/%.c,$(TOUT)/e2e/%,$(E2E_SRC))
BENCHES     := $(patsubst e2e/bench/%.c,$(TOUT)/bench/%,$(BENCH_SRC))
HAMMER      := $(TOUT)/e2e/hammer
BENCH_VS    := $(TOUT)/bench/bench_vs

# Objects that only a pattern chain makes (e2e, fuzz and bench programs' own)
# are kept, not deleted as intermediates: a relink would compile them again.
# (Named, not every target: a bare .SECONDARY would stop FORCE forcing.)
.SECONDARY: $(call obj,$(E2E_SRC) $(E2E_SUITE_SRC) $(FUZZ_SRC) tests/fuzz/replay.c $(BENCH_SRC))

.PHONY: all deps run cluster test check unit fuzz-replay e2e smoke torture bench install \
        uninstall clean fmt lint fuzz valgrind symbols tests-build shim test-ui check-deploy \
        test-build test-build-asan test-build-release

all: $(KRAPPYD) $(KRAPPY) $(LIBA) $(LIBSO) symbols

deps:
	@sh .ci/deps.sh

# krappyd in the foreground (Ctrl-C stops it); once it listens, the last
# line printed says where the web console is.
run: deps
	@$(MAKE) --no-print-directory all
	@ports=$$(mktemp); http=$${KRAPPY_HTTP:-127.0.0.1:7071}; \
	./bin/krappyd --listen $${KRAPPY_LISTEN:-127.0.0.1:7070} --http "$$http" \
	    --data $${KRAPPY_DATA:-./data} --kafka-listen $${KRAPPY_KAFKA_LISTEN:-127.0.0.1:9092} \
	    --log-format text --port-file "$$ports" & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null' INT TERM; \
	while kill -0 $$pid 2>/dev/null && [ "$$(wc -l < "$$ports")" -lt 2 ]; do sleep 0.1; done; \
	host=$${http%:*}; case $$host in ""|0.0.0.0|"[::]") host=127.0.0.1 ;; esac; \
	[ "$$(wc -l < "$$ports")" -ge 3 ] && echo "make run: the Kafka listener is on port $$(sed -n 3p "$$ports")"; \
	[ "$$(wc -l < "$$ports")" -ge 2 ] && \
	    echo "make run: krappyd listens on port $$(sed -n 1p "$$ports"); the web console is at http://$$host:$$(sed -n 2p "$$ports")/ (Ctrl-C stops it)"; \
	wait $$pid; rc=$$?; while kill -0 $$pid 2>/dev/null; do wait $$pid; rc=$$?; done; \
	rm -f "$$ports"; exit $$rc

# Three nodes of one cluster on this machine (.ci/cluster.sh: data ports
# 7070, 7170, 7270, admin ports one above, raft ports two above; data in
# ./data/node-N); their logs interleaved here, Ctrl-C stops them.
cluster: deps
	@$(MAKE) --no-print-directory all
	@bash .ci/cluster.sh

# ---- build rules ----

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PC_CFLAGS) -c $< -o $@

# console.html becomes a C array with od and sed only (no xxd): od prints
# the bytes as hex, sed turns each into 0xNN, and a trailing NUL (not
# counted in the length) lets the page be used as a string too.
$(GEN)/console.c: src/server/console.html
	@mkdir -p $(dir $@)
	{ echo '/* Generated from src/server/console.html by the Makefile. Do not edit. */'; \
	  echo '#include "server/console.h"'; \
	  echo 'const char kr_console_html[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/[0-9a-f][0-9a-f]/0x&,/g' -e 's/^ *//'; \
	  echo '0x00};'; \
	  echo 'const size_t kr_console_html_len = sizeof kr_console_html - 1;'; \
	} > $@.tmp && mv $@.tmp $@

$(CONSOLE_OBJ): $(GEN)/console.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(UTIL_LIB): $(UTIL_OBJ)
$(PROTO_LIB): $(PROTO_OBJ)
$(STORE_LIB): $(STORE_OBJ)
$(KAFKA_LIB): $(KAFKA_OBJ)
$(CLUSTER_LIB): $(CLUSTER_OBJ)
$(SERVER_LIB): $(SERVER_OBJ)
$(CLIENT_LIB): $(CLIENT_OBJ)
$(LIBA): $(UTIL_OBJ) $(PROTO_OBJ) $(CLIENT_OBJ)
$(DAEMON_LIBS) $(LIBA):
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBSO): $(UTIL_OBJ) $(PROTO_OBJ) $(CLIENT_OBJ) src/client/libkrappy.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libkrappy.so.0 -Wl,--version-script=src/client/libkrappy.map \
	    -o $@ $(UTIL_OBJ) $(PROTO_OBJ) $(CLIENT_OBJ) $(ALL_LDFLAGS) $(PC_CBOR)
	ln -sf libkrappy.so.0 $(OUT)/lib/libkrappy.so

$(KRAPPYD): $(OBJ)/src/server/main.o $(DAEMON_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_SERVER) $(PC_KAFKA) -lpthread -lm

$(KRAPPY): $(CLI_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(CLI_OBJ) $(LIBA) $(ALL_LDFLAGS) $(PC_CBOR) -lm

# A unit test links the layer of its module and what lies below, so a
# module that reached upwards would not link; a test not listed here (of
# the server, or new) gets every layer and libkrappy.
test_layer   = $(addprefix $(TOUT)/tests/,$(1))
UTIL_TESTS   := $(call test_layer,test_buf test_clock test_crc32c test_grow test_hostport \
                  test_json test_log test_metrics test_retry test_ring test_sched test_secret \
                  test_utf8)
PROTO_TESTS  := $(call test_layer,test_cbor test_cbor_text test_frame test_msg test_topic_config)
STORE_TESTS  := $(call test_layer,test_fdcache test_group test_index test_names test_overlay \
                  test_producers test_segment test_store test_store_alloc test_store_kafka \
                  test_store_producers test_compact test_view)
KAFKA_TESTS  := $(call test_layer,test_kafka_codec test_kafka_records)
CLUSTER_TESTS := $(filter $(TOUT)/tests/test_cluster_%,$(TESTS))
CLIENT_TESTS := $(call test_layer,test_client)
OTHER_TESTS  := $(filter-out $(UTIL_TESTS) $(PROTO_TESTS) $(STORE_TESTS) $(KAFKA_TESTS) \
                  $(CLUSTER_TESTS) $(CLIENT_TESTS),$(TESTS))

$(UTIL_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(UTIL_LIB)
$(PROTO_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(PROTO_LIB) $(UTIL_LIB)
$(STORE_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(STORE_LIB) $(PROTO_LIB) $(UTIL_LIB)
$(KAFKA_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(KAFKA_LIB) $(PROTO_LIB) $(UTIL_LIB)
$(CLIENT_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(LIBA)
$(OTHER_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(DAEMON_LIBS) $(LIBA)

# Unit tests that fail allocations on purpose (tests/alloc_fail.h) link the
# counting allocator, with the allocator calls of every object wrapped.
ALLOC_TESTS := $(addprefix $(TOUT)/tests/,test_msg test_cbor_text test_overlay test_group \
                 test_store_alloc)
ALLOC_OBJ   := $(OBJ)/tests/alloc_fail.o
$(ALLOC_TESTS): $(ALLOC_OBJ)
$(ALLOC_TESTS): TEST_ALLOC = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=mmap

$(filter-out $(CLUSTER_TESTS),$(TESTS)):
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(TEST_ALLOC) $(ALL_LDFLAGS) $(PC_SERVER) $(PC_KAFKA) $(PC_CMOCKA) -lpthread -lm

$(CLUSTER_TESTS): $(TOUT)/tests/%: $(OBJ)/tests/%.o $(CLUSTER_LIB) $(CLIENT_LIB) $(STORE_LIB) \
                  $(PROTO_LIB) $(UTIL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_SERVER) $(PC_CMOCKA) -lpthread -lm

# Fuzz targets built as plain programs that replay a corpus (tests/fuzz/
# replay.c); `make fuzz` builds them again with clang's libFuzzer.
$(TOUT)/fuzz/%: $(OBJ)/tests/fuzz/%.o $(OBJ)/tests/fuzz/replay.o $(DAEMON_LIBS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_SERVER) $(PC_KAFKA) -lpthread -lm

# The Kafka listener's e2e suite and benchmark drive librdkafka (Debian's
# librdkafka-dev); nothing else links it.
PC_RDKAFKA   = $(shell $(PKG_CONFIG) --libs rdkafka 2>/dev/null || echo -lrdkafka)
$(TOUT)/bench/bench_kafka: E2E_LIBS = $(PC_RDKAFKA)
# e2e_kafka also frames raw requests with the codec.
$(TOUT)/e2e/e2e_kafka: $(KAFKA_LIB)
$(TOUT)/e2e/e2e_kafka: E2E_LIBS = $(LIBA) $(PC_KAFKA) $(PC_RDKAFKA)

$(TOUT)/e2e/%: $(OBJ)/e2e/%.o $(call obj,$(E2E_LIB_SRC) $(E2E_SUITE_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_CBOR) $(PC_CMOCKA) $(E2E_LIBS) -lm

# e2e/hammer: the load-and-correctness tool (not a cmocka suite), one
# program from the parts in e2e/hammer/.
$(HAMMER): $(call obj,$(HAMMER_SRC)) $(call obj,$(E2E_LIB_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_CBOR) -lpthread -lm

$(TOUT)/bench/%: $(OBJ)/e2e/bench/%.o $(call obj,$(E2E_LIB_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_CBOR) $(E2E_LIBS) -lm

PC_PEERS     = $(foreach m,libnats hiredis,$(shell $(PKG_CONFIG) --libs $(m) 2>/dev/null))
$(call obj,$(VS_SRC)): PC_CFLAGS += $(foreach m,libnats hiredis,$(shell $(PKG_CONFIG) --cflags $(m) 2>/dev/null))

$(BENCH_VS): $(call obj,$(VS_SRC)) $(call obj,$(E2E_LIB_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_CBOR) $(PC_PEERS) -lpthread -lm

# Power-cut / fault-injection shim (tests/shim/krshim.c, LD_PRELOAD) and its
# tools. The shim and powercut are never sanitized (the shim is preloaded into
# ASan processes); shimtest and rocks_powercut take the variant's flags, so the
# asan build checks the shim inside an ASan process.
SHIM_DIR    := $(TOUT)/shim
SHIM_LIB    := $(SHIM_DIR)/libkrshim.so
SHIM_TOOLS  := $(SHIM_DIR)/powercut $(SHIM_DIR)/shimtest $(SHIM_DIR)/rocks_powercut
SHIM_CFLAGS  = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS)

shim: $(SHIM_LIB) $(SHIM_TOOLS)

$(SHIM_LIB): tests/shim/krshim.c
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -fPIC -shared -fvisibility=hidden -o $@ $< $(LDFLAGS) -ldl -lpthread

$(SHIM_DIR)/powercut: tests/shim/powercut.c
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -o $@ $< $(LDFLAGS)

$(SHIM_DIR)/shimtest: tests/shim/shimtest.c
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) $(VARIANT_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -lpthread

$(SHIM_DIR)/rocks_powercut: tests/shim/rocks_powercut.c
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) $(VARIANT_CFLAGS) $(shell $(PKG_CONFIG) --cflags rocksdb 2>/dev/null) \
	    -o $@ $< $(ALL_LDFLAGS) $(shell $(PKG_CONFIG) --libs rocksdb 2>/dev/null || echo -lrocksdb)

# libkrappy.so exports krappy_* and nothing else (the version script hides
# the rest); this keeps it that way. And no two members of libkrappy.a share
# a name (`ar x` would keep only one of them).
symbols: $(LIBSO) $(LIBA)
	@bad=$$(nm -D --defined-only $(LIBSO) | awk '$$2 ~ /[TDBR]/ {print $$3}' | grep -v '^krappy_' || true); \
	if [ -n "$$bad" ]; then echo "libkrappy.so exports non-API symbols: $$bad" >&2; exit 1; fi
	@dup=$$($(AR) t $(LIBA) | sort | uniq -d); \
	if [ -n "$$dup" ]; then echo "libkrappy.a has two members named: $$dup (rename one source file)" >&2; exit 1; fi

tests-build: $(KRAPPYD) $(KRAPPY) $(LIBA) $(TESTS) $(FUZZERS) $(E2E) $(HAMMER) $(BENCHES) shim

# ---- tests ----

# Everything, sanitized; then a smoke run of the optimised build. The two
# builds go side by side on every core unless make was given -jN (CI calls
# plain `make test`); .ci/test.sh runs KRAPPY_TEST_JOBS suites at a time.
TEST_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))

test: deps
	@$(MAKE) --no-print-directory $(TEST_J) test-build
	@sh .ci/test.sh

check: test

unit fuzz-replay e2e smoke torture:
	@$(MAKE) --no-print-directory $(TEST_J) test-build
	@sh .ci/test.sh $@

# Both variants of everything the suites run (each in its own sub-make, as
# BUILD picks the paths).
test-build: test-build-asan test-build-release
test-build-asan:
	@$(MAKE) --no-print-directory BUILD=asan tests-build
test-build-release:
	@$(MAKE) --no-print-directory BUILD=release all tests-build

# The web console in headless Chromium (playwright-core from npm, pinned in
# e2e/ui/package-lock.json, installed into build/ui/node_modules): every
# view and action driven in the browser; screenshots land in build/ui/*.png.
test-ui:
	@sh .ci/deps.sh chromium
	@$(MAKE) --no-print-directory bin/krappyd bin/krappy
	@sh e2e/ui/run.sh

# Offline checks of the deploy path (nix/ci/; no nixpkgs, no cluster here):
# the flake against a stand-in nixpkgs (evaluation for both systems, the
# package and image built with the real Makefile), the Kubernetes manifests
# against the schemas and nix/settings.nix, and the image run under podman
# as the StatefulSet runs it.
check-deploy:
	@pre=$$([ -e /nix ] && echo 1 || true); \
	sh nix/ci/check-nix.sh && sh nix/ci/check-k8s.sh && sh nix/ci/check-image.sh && \
	if [ -z "$$pre" ] && [ -e /nix ]; then \
	    echo "FAIL check-deploy wrote /nix on the host (everything belongs under build/)"; exit 1; \
	fi

# Speed figures (a benchmark that prints them; never a timed test): bench_vs
# runs krappyd, NATS JetStream and Redis Streams side by side (their servers
# and C clients come from Debian) and writes build/bench/results.md; then
# krappyd's own micro-benchmarks. BENCH_VS_ARGS="--quick" for a short run.
bench: deps
	@sh .ci/deps.sh nats-server libnats-dev redis-server libhiredis-dev
	@$(MAKE) --no-print-directory BUILD=release all tests-build $(BENCH_VS)
	@BENCH_VS_ARGS="$(BENCH_VS_ARGS)" sh .ci/test.sh bench

valgrind: deps
	@$(MAKE) --no-print-directory BUILD=release tests-build all
	@sh .ci/test.sh valgrind

# libFuzzer, when clang is there: make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 30
fuzz:
	@sh .ci/fuzz.sh $(FUZZ_SECONDS)

# ---- install ----

# Regenerated every time: it records PREFIX, which may differ per call.
krappy.pc: FORCE
	@printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: krappy\nDescription: Client library of the krappy event store\nVersion: %s\nRequires.private: libcbor\nLibs: -L$${libdir} -lkrappy\nCflags: -I$${includedir}\n' \
	    "$(PREFIX)" "$(LIBDIR)" "$(INCLUDEDIR)" "$(VERSION)" > $@

install: all krappy.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/krappy $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 bin/krappyd bin/krappy $(DESTDIR)$(BINDIR)/
	install -m 644 lib/libkrappy.a $(DESTDIR)$(LIBDIR)/
	install -m 755 lib/libkrappy.so.0 $(DESTDIR)$(LIBDIR)/
	ln -sf libkrappy.so.0 $(DESTDIR)$(LIBDIR)/libkrappy.so
	install -m 644 include/krappy/protocol.h include/krappy/client.h $(DESTDIR)$(INCLUDEDIR)/krappy/
	install -m 644 krappy.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 src/client/krappy-completion.bash $(DESTDIR)$(BASHCOMPDIR)/krappy

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/krappyd $(DESTDIR)$(BINDIR)/krappy \
	    $(DESTDIR)$(LIBDIR)/libkrappy.a $(DESTDIR)$(LIBDIR)/libkrappy.so.0 \
	    $(DESTDIR)$(LIBDIR)/libkrappy.so $(DESTDIR)$(PKGCONFIGDIR)/krappy.pc \
	    $(DESTDIR)$(BASHCOMPDIR)/krappy
	rm -rf $(DESTDIR)$(INCLUDEDIR)/krappy

# ---- hygiene ----

# cppcheck reads no system headers; it needs the TAILQ macros all the same.
QUEUE_H = $(firstword $(wildcard /usr/include/sys/queue.h /usr/include/*/sys/queue.h))

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src include tests e2e -name '*.[ch]')

fmt:
	clang-format -i $(C_FILES)

# lint: upward includes between the layers of src/ (.ci/layers.sh), then
# format and static analysis.
lint:
	@command -v cppcheck >/dev/null || sh .ci/deps.sh cppcheck clang-format
	sh .ci/layers.sh
	clang-format --dry-run --Werror $(C_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	    --inline-suppr --suppress=missingIncludeSystem --suppress=varFuncNullUB -Iinclude -Isrc -D_GNU_SOURCE \
	    $(addprefix --include=,$(QUEUE_H)) src

clean:
	rm -rf build bin lib krappy.pc

FORCE:

# This variant's dependency files only: the other may be writing its own.
-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
