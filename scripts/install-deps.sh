#!/usr/bin/env bash
# Installs the Debian 12 packages pycell needs to build, test and run. Idempotent: installs only
# what is missing, so `make` on a machine that has everything touches no network. Needs root
# (or sudo) when something is missing.
#
# Boost: Debian 12's default, 1.74 (libboost-dev). Boost 1.81's -dev packages conflict with it, and
# python3-scipy needs it (through python3-pythran), so the runtime stack and Boost 1.81 cannot be
# installed together. 1.74 has Asio and Beast; JSON comes from nlohmann-json instead of Boost.JSON.
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev nlohmann-json3-dev
  libseccomp-dev libssl-dev libspdlog-dev libcli11-dev libtomlplusplus-dev libsqlite3-dev
  libmagic-dev libcurl4-openssl-dev prometheus-cpp-dev libarchive-dev
  libgtest-dev libgmock-dev libbenchmark-dev python3-dev
)
# libpq-dev: the PostgreSQL metadata store's client library (src/store/pg_db.cc; docs/postgresql.md).
BUILD_PACKAGES+=(libpq-dev)
RUNTIME_PACKAGES=(
  python3 python3-ipython python3-matplotlib-inline
  python3-numpy python3-pandas python3-scipy python3-matplotlib python3-seaborn
  python3-sklearn python3-statsmodels python3-openpyxl python3-xlrd python3-pil python3-sympy
  python3-tabulate python3-lxml python3-bs4 python3-networkx python3-docx python3-pypdf
  uidmap
)
# The rest of the default environment analysts reach for (issue 20; src/kernel/packages.json lists
# every package a session can import, docs/packages.md their versions). About 2.2 GB with their
# dependencies: python3-wordcloud alone needs texlive-fonts-extra (1.4 GB, for its one default
# font), python3-opencv pulls in Qt 5, VTK and Open MPI, python3-geopandas GDAL and PROJ.
RUNTIME_PACKAGES+=(
  python3-xlsxwriter python3-plotly python3-reportlab python3-fitz python3-sqlalchemy
  python3-requests python3-tqdm python3-chardet python3-odf python3-h5py python3-tables
  python3-geopandas python3-shapely python3-xgboost python3-skimage python3-opencv
  python3-markdown python3-wordcloud python3-numba python3-folium python3-matplotlib-venn
)
BENCH_PACKAGES=(python3-jupyter-client python3-ipykernel)
# bench/compare runs the same workloads through pycell's peers: Jupyter Server's REST API and
# websocket (python3-jupyter-server; its websocket client is tornado's, which it depends on), a
# cold python3 inside gVisor (runsc: `runsc do`) and inside bubblewrap (bwrap).
BENCH_PACKAGES+=(python3-jupyter-server runsc bubblewrap)
# For the tests: promtool (tests/api/test_metrics.py checks a live scrape with it), and
# systemd-analyze (tests/packaging verifies the unit; minimal images such as containers lack it),
# nbformat (tests/api/test_notebooks.py validates exported notebooks), libfaketime (faketime:
# tests/faults jumps the server's wall clock), and node and npm (tests/mcp runs the official MCP
# TypeScript SDK client, installed from npm).
TEST_PACKAGES=(prometheus systemd python3-nbformat faketime)
# clang-format: make test's format_check holds the sources to .clang-format (`make format`).
TEST_PACKAGES+=(clang-format)
# postgresql: store_test runs the MetadataStore suite on a real PostgreSQL too, which it starts
# itself (initdb and pg_ctl in a temporary folder: src/store/pg_test_server.h) and fails without.
# Debian's package would also start a cluster of its own on install: see policy-rc.d below.
TEST_PACKAGES+=(postgresql)
# Debian's nodejs and npm, unless a Node.js with npm is there already: NodeSource's nodejs package
# provides npm itself and conflicts with Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  TEST_PACKAGES+=(nodejs npm)
fi

# For the fuzz targets (fuzz/README.md; `make fuzz`, and the fuzz_smoke test of `make test`):
# libFuzzer comes with clang only. clang gives clang++ (clang-14 on Debian 12); libclang-rt-14-dev
# holds libFuzzer and the ASan/UBSan runtimes, which clang-14 does not pull in; llvm-14 has
# llvm-symbolizer, which turns the sanitizers' stacks into file:line.
FUZZ_PACKAGES=(clang libclang-rt-14-dev llvm-14)

missing=()
for p in "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" "${BENCH_PACKAGES[@]}" "${TEST_PACKAGES[@]}" \
         "${FUZZ_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Debian's prometheus package is installed for its promtool only, and postgresql for its
  # binaries only (the tests start their own server): neither server may start (nor be enabled)
  # because of us. policy-rc.d refuses service starts during the install.
  no_service_starts=""
  if [[ " ${missing[*]} " == *" prometheus "* || " ${missing[*]} " == *" postgresql "* ]] &&
     [ ! -e /usr/sbin/policy-rc.d ]; then
    no_service_starts=1
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$no_service_starts" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now prometheus postgresql >/dev/null 2>&1 || true
    fi
  fi
fi

# Subordinate ids for the sessions (pycell runs them as unprivileged host uids from this range).
if [ "$(id -u)" -eq 0 ]; then
  grep -q '^root:' /etc/subuid 2>/dev/null || usermod --add-subuids 1000000-1065535 root
  grep -q '^root:' /etc/subgid 2>/dev/null || usermod --add-subgids 1000000-1065535 root
fi
