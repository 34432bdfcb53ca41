# cq - cache and queue tools for the shell.
#
#   make            build bin/cachectl bin/qctl bin/cqstat (in $(BUILD))
#   make check      install missing deps, build, start the sandbox, run every
#                   test, stop the sandbox; prints "N passed, N failed" last
#   make demo       the same set-up, then a walk through the main jobs
#   make bench      benchmarks against peers (QUICK=1 for a short run)
#   make install    PREFIX, DESTDIR, BINDIR, LIBDIR, MANDIR, completion dirs
#   SANITIZE=1      build with ASan + UBSan;  V=1 shows the commands

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BUILD ?= build

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
# override: `make CFLAGS=-O0` replaces the default above, not the flags the
# build needs (-fPIC for libcq.so, -MMD for header dependencies, warnings)
override CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes
override CPPFLAGS += -D_GNU_SOURCE -Ilib -Icmd $(shell $(PKG_CONFIG) --cflags hiredis librabbitmq jansson 2>/dev/null)
override CFLAGS += -fPIC -MMD -MP
override LDFLAGS += -Wl,--as-needed
ifeq ($(SANITIZE),1)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
endif

# Each program links only what it uses: cachectl must start fast, so it
# never loads librabbitmq/OpenSSL (start-up is dominated by the shared
# libraries a process loads: measured, a bare hiredis GET program takes
# 1.2 ms, the same linked to librabbitmq + OpenSSL + jansson 2.9 ms).
LIBS_REDIS = $(shell $(PKG_CONFIG) --libs hiredis 2>/dev/null || echo -lhiredis)
LIBS_AMQP = $(shell $(PKG_CONFIG) --libs librabbitmq 2>/dev/null || echo -lrabbitmq) \
	$(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)
LIBS_JSON = $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
LIBS_CURL = $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
LIBS_cachectl = $(LIBS_REDIS) $(LIBS_JSON) -lm
LIBS_qctl = $(LIBS_AMQP) $(LIBS_REDIS) $(LIBS_JSON) -lm
LIBS_cqstat = $(LIBS_AMQP) $(LIBS_REDIS) $(LIBS_JSON) $(LIBS_CURL) -lm

ifneq ($(V),1)
Q = @
E = @printf '  %-7s %s\n'
else
Q =
E = @true
endif

LIB_SRC = $(sort $(wildcard lib/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
PROGS = cachectl qctl cqstat
BINS = $(PROGS:%=$(BUILD)/bin/%)
CLI_OBJ = $(BUILD)/cmd/cli.o
UNIT_SRC = $(sort $(wildcard tests/unit/*.c))
UNIT_BINS = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BINS) $(BUILD)/libcq.a $(BUILD)/libcq.so

# $(BUILD)/.flags holds the compiler and flags the build dir was built with;
# it is rewritten only when they change, and everything compiled depends on
# it, so `make SANITIZE=1` or `make CC=clang` in a used build dir rebuilds.
BUILD_FLAGS = CC=$(CC) CPPFLAGS=$(CPPFLAGS) CFLAGS=$(CFLAGS) LDFLAGS=$(LDFLAGS) \
	SANITIZE=$(if $(filter 1,$(SANITIZE)),1,0)

$(BUILD)/.flags: FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(subst ','\'',$(BUILD_FLAGS))' ]; then \
		[ ! -f $@ ] || printf '  %-7s %s\n' FLAGS "changed: rebuilding $(BUILD)"; \
		printf '%s\n' '$(subst ','\'',$(BUILD_FLAGS))' > $@; \
	fi

$(BUILD)/%.o: %.c $(BUILD)/.flags
	$(E) CC $<
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcq.a: $(LIB_OBJ)
	$(E) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/libcq.so: $(LIB_OBJ) lib/libcq.map $(BUILD)/.flags
	$(E) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libcq.so.0 -Wl,--version-script=lib/libcq.map \
		$(LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS_cqstat)

$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(CLI_OBJ) $(BUILD)/libcq.a $(BUILD)/.flags
	$(E) LD $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(CLI_OBJ) $(BUILD)/libcq.a $(LIBS_$*)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcq.a $(BUILD)/.flags
	$(E) CC $<
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libcq.a $(LIBS_cqstat) -lcmocka

unit: $(UNIT_BINS)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang against a
# sanitized, coverage-instrumented copy of lib/; `make fuzz FUZZ_S=N` runs
# each for N seconds from its committed seed corpus (tests/fuzz/run).
FUZZ_CC ?= clang
FUZZ_S ?= 10
FUZZ_JOBS ?= 1
FUZZ_CFLAGS = -g -O1 -std=gnu11 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/fuzz/%.o)

$(BUILD)/fuzz/lib/%.o: lib/%.c
	$(E) FUZZCC $<
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJ)
	$(E) FUZZLD $@
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LIBS_cqstat)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)tests/fuzz/run --seconds $(FUZZ_S) --jobs $(FUZZ_JOBS) $(FUZZ_BINS)

# The fault tests: each starts, kills and restarts its own private servers.
faults: all
	$(Q)CQ_BIN_DIR=$(abspath $(BUILD))/bin bats $(if $(FAULTS_TAP),--tap) tests/faults/

# The whole test run.  scripts/check does the work so that the summary line
# comes last whatever fails.
check:
	$(Q)scripts/check

deps:
	$(Q)scripts/install-deps

demo: deps all
	$(Q)BUILD=$(BUILD) scripts/demo

bench: all
	$(Q)bench/run $(if $(filter-out 0,$(QUICK)),--quick)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libcq.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libcq.so $(DESTDIR)$(LIBDIR)/libcq.so.0
	ln -sf libcq.so.0 $(DESTDIR)$(LIBDIR)/libcq.so
	install -m 644 lib/cq.h lib/cq_cache.h lib/cq_queue.h lib/cq_stats.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7/
	for p in $(PROGS); do \
		install -m 644 completions/$$p.bash $(DESTDIR)$(BASHCOMPDIR)/$$p; \
		install -m 644 completions/_$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p; \
		install -m 644 completions/$$p.fish $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
	done
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(shell sed -n 's/^#define CQ_VERSION "\(.*\)"/\1/p' lib/cq.h)|' \
		lib/libcq.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libcq.pc

clean:
	rm -rf $(BUILD)

.PHONY: all unit check deps demo bench install clean fuzz fuzz-build faults FORCE
.SECONDARY:

-include $(LIB_OBJ:.o=.d) $(BINS:$(BUILD)/bin/%=$(BUILD)/cmd/%.d) $(CLI_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d)
