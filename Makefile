# pycell's entry points. `make run` and `make test` are the README's quick start; both install
# missing Debian packages first (scripts/install-deps.sh, as root), then build with CMake + Ninja.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
STATE_DIR ?= $(CURDIR)/var
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DPYCELL_WERROR=ON
endif

.PHONY: all deps build run repl test bench bench-http sanitize fuzz clean format install uninstall

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD)

# The main job: the service on 127.0.0.1:8080, all state under ./var (SQLite + file contents).
run: build
	$(BUILD)/pycell serve --data-dir $(STATE_DIR)

# The local, offline way in: one sandboxed Python session at a prompt.
repl: build
	$(BUILD)/pycell repl --state-dir $(STATE_DIR)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900

bench: build
	$(BUILD)/bench/session_bench --state-dir $(STATE_DIR)
	$(BUILD)/bench/http_bench --pycell $(BUILD)/pycell

bench-http: build
	$(BUILD)/bench/http_bench --pycell $(BUILD)/pycell

# AddressSanitizer + UndefinedBehaviorSanitizer build of everything, with its tests. Leak checks
# are off: the embedded interpreter keeps its objects until exit by design.
sanitize:
	ASAN_OPTIONS=detect_leaks=0 $(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DPYCELL_SANITIZE=ON"

# libFuzzer targets for every parser facing the network (fuzz/README.md): built with clang, ASan
# and UBSan in build-fuzz, each run FUZZ_SECONDS over its seeds and the corpus earlier runs grew
# (build-fuzz/fuzz-corpus). A crash's input and log land in build-fuzz/fuzz-artifacts/<target>.
FUZZ_SECONDS ?= 60
fuzz: deps
	./fuzz/run_fuzzers.sh --build-dir build-fuzz --seconds $(FUZZ_SECONDS)

format: deps
	clang-format -i $$(find src tests bench fuzz -type f \( -name '*.cc' -o -name '*.h' \))

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# `make install` (as root, after `make build`): the binary, the systemd unit, the production
# configuration and its documentation (docs/production.md). DESTDIR stages the tree elsewhere (for a
# package); PREFIX defaults to /usr/local. The unit goes to $(PREFIX)/lib/systemd/system, a folder
# systemd searches for /usr/local and /usr, so /etc/systemd/system stays the operator's (drop-ins,
# `systemctl edit pycell`) and an upgrade can replace the unit. runner.py and the OpenAPI document
# are compiled into the binary. /etc/pycell/pycell.toml is written only where none exists: an
# operator's file is never overwritten. Nothing is started: docs/production.md says what to run.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
PYCELL_BINARY ?= $(BUILD)/pycell
BINDIR = $(DESTDIR)$(PREFIX)/bin
DOCDIR = $(DESTDIR)$(PREFIX)/share/doc/pycell
UNIT = $(DESTDIR)$(SYSTEMD_UNIT_DIR)/pycell.service
CONFIG = $(DESTDIR)$(SYSCONFDIR)/pycell/pycell.toml

install:
	@test -x $(PYCELL_BINARY) || { echo "install: no $(PYCELL_BINARY); run make build first" >&2; exit 1; }
	install -D -m 0755 $(PYCELL_BINARY) $(BINDIR)/pycell
	install -d -m 0755 $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed -e 's|/usr/local/bin/pycell|$(PREFIX)/bin/pycell|g' \
	    -e 's|/usr/local/share/doc/pycell|$(PREFIX)/share/doc/pycell|g' \
	    -e 's|/etc/pycell/|$(SYSCONFDIR)/pycell/|g' packaging/pycell.service > $(UNIT).tmp
	chmod 0644 $(UNIT).tmp && mv $(UNIT).tmp $(UNIT)
	install -d -m 0755 $(DOCDIR)
	install -m 0644 docs/production.md docs/configuration.md pycell.example.toml $(DOCDIR)/
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/pycell
	@if [ -e $(CONFIG) ]; then \
	  echo "install: kept $(CONFIG) (yours); the packaged one is $(DOCDIR)/pycell.toml"; \
	else \
	  install -m 0640 packaging/pycell.toml $(CONFIG) && echo "install: wrote $(CONFIG)"; \
	fi
	install -m 0644 packaging/pycell.toml $(DOCDIR)/pycell.toml
	@echo "install: done; now: systemctl daemon-reload && systemctl enable --now pycell"

# Removes what `make install` put in place but the configuration when it was changed, and never
# /var/lib/pycell (records, files, keys) or /var/log/pycell. Stop the service first:
# systemctl disable --now pycell.
uninstall:
	@if [ -e $(CONFIG) ] && cmp -s $(CONFIG) $(DOCDIR)/pycell.toml; then \
	  rm -f $(CONFIG) && rmdir $(DESTDIR)$(SYSCONFDIR)/pycell 2>/dev/null || true; \
	elif [ -e $(CONFIG) ]; then \
	  echo "uninstall: kept $(CONFIG) (changed); /var/lib/pycell and /var/log/pycell are kept too"; \
	fi
	rm -f $(BINDIR)/pycell $(UNIT)
	rm -rf $(DOCDIR)
