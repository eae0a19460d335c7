# fbconnect — see README.md.  `make` builds, `make test` tests, `make run` runs it locally.
VERSION := 0.2.0
PREFIX ?= /usr/local
B ?= build
CC ?= cc
PKGS := libcurl jansson hiredis libsodium openssl

# Recursive (=) so pkg-config runs only when a recipe needs it, after `deps` has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings \
        -Wformat=2 -Wvla -Wnull-dereference -Werror
OPT ?= -O2 -D_FORTIFY_SOURCE=2
SAN ?=
CFLAGS_ALL = -std=c17 -D_GNU_SOURCE -g $(OPT) $(WARN) -pthread -fstack-protector-strong \
             -MMD -MP -Isrc -DFBCONNECT_VERSION='"$(VERSION)"' \
             -DFBCONNECT_TEMPLATE_DEFAULT='"$(PREFIX)/share/fbconnect/templates"' \
             $(SAN) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = -pthread $(SAN) $(LDFLAGS)

COMMON_SRC := src/arena.c src/buf.c src/log.c src/url.c src/fcgi.c src/request.c src/response.c \
              src/server.c src/template.c src/clock.c
CORE_SRC := src/config.c src/keys.c src/ids.c src/state.c src/seal.c src/record.c \
            src/wire.c src/redis.c src/store.c src/pointer.c src/svc.c src/oauth.c src/session.c src/pages.c src/app.c src/router.c \
            src/connection.c src/refresh.c src/rekey.c src/metrics.c src/admin.c src/events.c src/outbox.c src/trust.c \
            $(wildcard src/handlers/*.c)
SANDBOX_SRC := $(wildcard src/sandbox/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
CORE_TEST_SRC := $(wildcard tests/core/core_*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
SANDBOX_OBJ := $(SANDBOX_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
CORE_TEST_BIN := $(CORE_TEST_SRC:tests/core/%.c=$(B)/tests/%)

.PHONY: node-deps all deps test check unit run bench asan valgrind clean install fmt FORCE fuzz fuzz-targets
all: $(B)/fbconnect $(B)/fbsandbox

# The installed templates folder is compiled in: rebuild config.o when PREFIX changes.
$(B)/prefix.stamp: FORCE
	@mkdir -p $(B)
	@echo '$(PREFIX)' | cmp -s - $@ 2>/dev/null || echo '$(PREFIX)' > $@
$(B)/src/config.o: $(B)/prefix.stamp

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libfbc.a: $(COMMON_OBJ) $(CORE_OBJ)
	@ar rcs $@ $^

$(B)/fbconnect: $(B)/src/main.o $(B)/libfbc.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/fbsandbox: $(SANDBOX_OBJ) $(B)/libfbc.a
	@echo "LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libfbc.a
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(B)/libfbc.a $(PKG_LIBS) $$(pkg-config --libs cmocka)

# The core tests drive connection/refresh/store against a private redis-server and the
# sandbox (they need $(B)/fbsandbox); not under valgrind.
$(B)/tests/core_%: tests/core/core_%.c $(B)/libfbc.a
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(B)/libfbc.a $(PKG_LIBS) $$(pkg-config --libs cmocka)

unit: $(UNIT_BIN) $(CORE_TEST_BIN)

deps:
	@sh scripts/install-deps.sh test

# The whole suite, as CI runs it: the unit tests and one integration run (real Redis,
# nginx, sandbox, two fbconnect processes, Chromium) under ASan + UBSan + LSan, the unit
# tests under valgrind, and every fuzz target (corpus replay, then FUZZ_SECONDS each).
FUZZ_SECONDS ?= 30
# The suite's Node tools (Chromium's driver, the Standard Webhooks reference library).
node-deps:
	@[ -d tests/browser/node_modules/playwright-core ] && \
	    [ -d tests/browser/node_modules/standardwebhooks ] || \
	    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

test:
	@sh scripts/install-deps.sh test
	@$(MAKE) --no-print-directory node-deps
	@$(MAKE) --no-print-directory -j2 all unit
	@$(MAKE) --no-print-directory -j2 asan
	@$(MAKE) --no-print-directory -j2 fuzz
	@python3 tests/run.py --build build/asan --valgrind $(B) --fuzz build/fuzz/fuzz \
	    --fuzz-seconds $(FUZZ_SECONDS)

# Quicker: the same unit and integration tests on the plain build only.
check:
	@sh scripts/install-deps.sh test
	@$(MAKE) --no-print-directory node-deps
	@$(MAKE) --no-print-directory -j2 all unit
	@python3 tests/run.py --build $(B)

# make bench: fbconnect against a minimal FastCGI baseline behind the same nginx, with wrk
# and a flow driver (bench/), connection events on; writes build/bench/BENCHMARKS.md (the
# tracked BENCHMARKS.md is a copy of a measured run).  Not part of make test.
# The baseline is the libfcgi floor: the only thing still built on libfcgi.
BENCH_BIN := $(B)/bench/baseline $(B)/bench/flows
$(B)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS_ALL) $$(pkg-config --cflags fcgi) -o $@ $< $(PKG_LIBS) $$(pkg-config --libs fcgi)
bench:
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory -j2 all $(BENCH_BIN)
	@python3 bench/run.py --build $(B)

run:
	@sh scripts/install-deps.sh run
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh

asan:
	@$(MAKE) --no-print-directory B=build/asan OPT=-O1 \
	    SAN='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' all unit

# libFuzzer targets (tests/fuzz/README.md): clang, ASan + UBSan, in build/fuzz.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang OPT='-O1 -g' \
	    SAN='-fsanitize=fuzzer-no-link $(FUZZ_SAN)' fuzz-targets
fuzz-targets: $(FUZZ_TARGETS)
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(B)/libfbc.a
	@mkdir -p $(dir $@)
	@echo "FUZZ $@"
	@$(CC) $(CFLAGS_ALL) -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(B)/libfbc.a $(PKG_LIBS)

valgrind: unit
	@for t in $(UNIT_BIN); do \
	    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	      $$t >/dev/null || exit 1; done; echo "valgrind: no errors"

SYSTEMD_DIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/fbconnect $(DESTDIR)$(PREFIX)/share/fbconnect/templates \
	    $(DESTDIR)$(PREFIX)/share/fbconnect/nginx $(DESTDIR)$(PREFIX)/share/doc/fbconnect \
	    $(DESTDIR)$(SYSTEMD_DIR)
	install -m 755 $(B)/fbconnect $(DESTDIR)$(PREFIX)/bin/
	@# test equipment (hands tokens to anyone): apart from the production binaries
	install -m 755 $(B)/fbsandbox $(DESTDIR)$(PREFIX)/lib/fbconnect/
	install -m 644 templates/*.html templates/*.css $(DESTDIR)$(PREFIX)/share/fbconnect/templates/
	install -m 644 nginx/fbconnect*.conf nginx/fbsandbox.conf $(DESTDIR)$(PREFIX)/share/fbconnect/nginx/
	install -m 644 README.md SECURITY.md systemd/fbconnect.env.example $(DESTDIR)$(PREFIX)/share/doc/fbconnect/
	for u in fbconnect.service fbconnect.socket; do \
	    sed 's|@PREFIX@|$(PREFIX)|g' systemd/$$u.in > $(DESTDIR)$(SYSTEMD_DIR)/$$u && \
	    chmod 644 $(DESTDIR)$(SYSTEMD_DIR)/$$u; done

fmt:
	clang-format -i src/*.c src/*.h src/handlers/*.c src/sandbox/*.c tests/unit/*.c

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
