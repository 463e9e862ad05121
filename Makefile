# pycell's entry points. `make run` and `make test` are the README's quick start; both install
# missing Debian packages first (scripts/install-deps.sh, as root), then build with CMake + Ninja.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
STATE_DIR ?= $(CURDIR)/var
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DPYCELL_WERROR=ON
endif

.PHONY: all deps build run repl test bench bench-http sanitize clean format

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

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) build-asan
