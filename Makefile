# metafl build. `make` builds the three binaries under build/bin/.
# Everything under common/ goes into one static library that the daemons,
# the CLI, the tests and the benchmarks link, so a test drives the same round
# engine and site worker the daemons run. Each daemon's own objects (all of
# its folder but main.c) form a small archive of their own, linked by its
# binary and by the unit tests that drive the daemon object in-process.
#
#   make [all]            build/bin/{metafl-coordinator,metafl-site-agent,metafl}
#   make test             install missing deps, build, run unit + sanitizer + fuzz + integration tests
#   make demo             install missing deps, build, run the main job (build/demo/)
#   make bench            benchmarks; results in bench/results/, docs/BENCHMARKS.md
#   make lint             cppcheck + clang-tidy
#   make SANITIZER=address,undefined   a sanitizer build (in build/san/)
#   make BUILD=dir        build somewhere else (parallel work trees, CI)
#   make install [PREFIX=/usr/local] [DESTDIR=]   programs, systemd units, docs, example configs
#   make deb              build/metafl_VERSION_ARCH.deb (the same tree, PREFIX=/usr)

SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD ?= build
else
BUILD ?= build/san
endif

CC      ?= cc
PKGS    := libzmq libprotobuf-c libsodium openblas yaml-0.1 zlib libgfshare
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2
# -O3: the numerics are elementwise loops over 1M-float vectors (ReLU masks,
# SGD updates, Δ = θ' − θ, fixed-point folds) that -O2's cheap cost model
# leaves scalar; -O3 vectorises them (1M MLP step 3.9 -> 3.1 ms; rounds at
# 1M params collect ~15% faster, docs/ENGINE-NUMERICS.md). Results are the
# same bit for bit: C11 mode keeps -ffp-contract=off and nothing allows
# reassociation (checked: θ after `metafl train` and after a federated run identical at
# -O2 and -O3).
OPT  ?= -O3 -g
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CPPFLAGS += -Icommon -I$(BUILD)/gen -DMFL_VERSION='"$(VERSION)"' \
            -D_GNU_SOURCE -MMD -MP
CFLAGS   += -std=c11 $(OPT) $(WARN) -fno-strict-aliasing $(PKG_CFLAGS) -march=x86-64-v2
LDLIBS   += $(PKG_LIBS) -lm -lpthread
ifneq ($(SANITIZER),)
CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif

PROTOS    := $(wildcard proto/*.proto)
PROTO_C   := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H   := $(PROTO_C:.c=.h)

LIB_SRC   := $(shell find common -name '*.c' | sort)
LIB_OBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
             $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
LIB       := $(BUILD)/libmetafl.a

COORD_SRC := $(filter-out %/main.c,$(wildcard coordinator/*.c))
AGENT_SRC := $(filter-out %/main.c,$(wildcard site-agent/*.c))
COORD_LIB := $(BUILD)/libmetafl-coordinator.a
AGENT_LIB := $(BUILD)/libmetafl-site-agent.a

CLI_SRC   := $(wildcard cli/*.c)
BINS      := $(BUILD)/bin/metafl-coordinator $(BUILD)/bin/metafl-site-agent $(BUILD)/bin/metafl

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BINS:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test unit-tests bench-bins demo app bench lint clean fuzz fuzz-bins install deb
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BINS)

# Generated protobuf code: a build output, never committed. It is compiled
# without -Wextra's unused-parameter noise, which protoc-c's output trips.
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

# Every object waits for the generated headers, so -j2 from clean works.
$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(COORD_LIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(COORD_SRC))
	@rm -f $@
	$(AR) rcs $@ $^
$(AGENT_LIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(AGENT_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/metafl-coordinator: $(BUILD)/obj/coordinator/main.o $(COORD_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/bin/metafl-site-agent: $(BUILD)/obj/site-agent/main.o $(AGENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/bin/metafl: $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC)) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The update encoders' block loops select between float results; GCC
# if-converts (and so vectorises) them only without -ftrapping-math. No
# result changes (nothing here enables floating-point traps; the unit test
# holds the bytes to the per-element definitions): docs/PERFORMANCE.md,
# "Durable writes and encoders".
$(BUILD)/obj/common/fed/quant.o: CFLAGS += -fno-trapping-math

# Unit tests may include a daemon's own headers as "coordinator/x.h".
$(BUILD)/obj/tests/unit/%.o: CPPFLAGS += -I.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(COORD_LIB) $(AGENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The hostile site (tests/hostile/): a real CURVE client that misbehaves on
# purpose, for the integration tests and bench/soak_hostile.sh.
HOSTILE := $(BUILD)/tests/hostile_site
$(BUILD)/tests/hostile_site: $(BUILD)/obj/tests/hostile/hostile_site.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The real site agent with one test fault switched on (tests only): each
# fault site parses its options and runs the agent with the shared
# tests/hostile/fault_site_run.c.
FAULT_RUN := $(BUILD)/obj/tests/hostile/fault_site_run.o
$(FAULT_RUN): CFLAGS += -Isite-agent

# The real site agent with a secure-aggregation fault switched on (tests only).
SECAGG_FAULT := $(BUILD)/tests/secagg_fault_site
$(BUILD)/tests/secagg_fault_site: $(BUILD)/obj/tests/hostile/secagg_fault_site.o $(FAULT_RUN) \
    $(BUILD)/libmetafl-site-agent.a $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/obj/tests/hostile/secagg_fault_site.o: CFLAGS += -Isite-agent

# The real site agent with a chunked-upload fault switched on (tests only).
CHUNK_FAULT := $(BUILD)/tests/chunk_fault_site
$(BUILD)/tests/chunk_fault_site: $(BUILD)/obj/tests/hostile/chunk_fault_site.o $(FAULT_RUN) \
    $(BUILD)/libmetafl-site-agent.a $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/obj/tests/hostile/chunk_fault_site.o: CFLAGS += -Isite-agent

# The real site agent that lies about its data or damages its held model
# (tests only).
SITE_FAULT := $(BUILD)/tests/site_fault_site
$(BUILD)/tests/site_fault_site: $(BUILD)/obj/tests/hostile/site_fault_site.o $(FAULT_RUN) \
    $(BUILD)/libmetafl-site-agent.a $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/obj/tests/hostile/site_fault_site.o: CFLAGS += -Isite-agent

unit-tests: $(UNIT_BINS) $(HOSTILE) $(SECAGG_FAULT) $(CHUNK_FAULT) $(SITE_FAULT)
bench-bins: $(BENCH_BINS)

deps:
	@bash deploy/install-deps.sh

# The README's test command: deps, a normal build, an ASan+UBSan build of
# the unit tests, a short fuzz run, then the integration tests with the
# real binaries. The runner prints "N passed, M failed" and fails if M > 0.
# The three builds use every core (JOBS); each fuzz target runs 3 s here
# (FUZZ_SECONDS=60 make test for a longer campaign), which keeps the whole
# command within 10 minutes on 2 cores.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	@bash deploy/get-wdbc.sh
	@$(MAKE) --no-print-directory -j$(JOBS) all unit-tests
	@$(MAKE) --no-print-directory -j$(JOBS) SANITIZER=address,undefined unit-tests
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-3} bash tests/run-tests.sh

# libFuzzer targets: the library rebuilt with clang and
# -fsanitize=fuzzer-no-link into build/fuzz/, one binary per decoder.
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/bin/%,$(FUZZ_SRC))
fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang \
	  SANITIZER=fuzzer-no-link,address,undefined OPT='-O1 -g' fuzz-bins
fuzz-bins: $(FUZZ_BINS)
build/fuzz/bin/%: build/fuzz/obj/tests/fuzz/%.o build/fuzz/libmetafl.a
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined $^ $(LDLIBS) -o $@

demo: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/demo.sh

# make app APP=imaging [SEEDS=3] [QUICK=1]: one clinical application end to
# end on the real daemons (deploy/app.sh, docs/APPS.md).
app: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/app.sh $(APP) --seeds $(or $(SEEDS),1) $(if $(filter 1,$(QUICK)),--quick)

bench: deps
	@$(MAKE) --no-print-directory all bench-bins
	@BUILD=$(BUILD) bash bench/run.sh

lint: $(PROTO_H)
	bash tests/lint/check_deps.sh
	bash tests/lint/check_test_pipes.sh
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -Icommon -I. \
	  -D_GNU_SOURCE common coordinator site-agent cli
	clang-tidy --quiet $(LIB_SRC) $(CLI_SRC) $(COORD_SRC) $(AGENT_SRC) coordinator/main.c site-agent/main.c -- \
	  $(CPPFLAGS) -std=c11 $(PKG_CFLAGS)

# Installation (docs/DEPLOY.md). The units name /usr/bin; installed
# elsewhere they are rewritten to $(BINDIR).
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
UNITDIR := $(PREFIX)/lib/systemd/system
DOCDIR  := $(PREFIX)/share/doc/metafl
DATADIR := $(PREFIX)/share/metafl
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(DATADIR)/configs/join
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	for u in deploy/systemd/*.service; do \
	  sed 's#/usr/bin/#$(BINDIR)/#g' $$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 configs/coordinator.yaml configs/site.yaml configs/consortium-schema.yaml \
	  $(DESTDIR)$(DATADIR)/configs/
	install -m 0644 configs/join/*.yaml $(DESTDIR)$(DATADIR)/configs/join/

# A Debian package of the installed tree: `apt install ./build/metafl_*.deb`
# adds the programs, both units (not enabled), docs and example configs, and
# creates the metafl system user and /etc/metafl/keys (0700).
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB      := $(BUILD)/metafl_$(VERSION)_$(DEB_ARCH).deb
deb: all
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/DEBIAN
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(CURDIR)/$(BUILD)/deb
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
	  -e "s/@SIZE@/$$(du -sk $(BUILD)/deb | cut -f1)/" deploy/deb/control >$(BUILD)/deb/DEBIAN/control
	install -m 0755 deploy/deb/postinst deploy/deb/postrm $(BUILD)/deb/DEBIAN/
	fakeroot dpkg-deb --build $(BUILD)/deb $(DEB)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
