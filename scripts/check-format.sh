#!/usr/bin/env bash
# The C++ sources as clang-format (.clang-format: Google style, 100 columns) would write them:
# lists each file it would change and fails if there is any. `make format` rewrites them.
# Run by `make test` (the format_check test) on the source tree it is given.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
mapfile -t files < <(find src tests bench fuzz -type f \( -name '*.cc' -o -name '*.h' \) | sort)
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/pycell-format.$$; then
  grep -o '^[^:]*\.\(cc\|h\)' /tmp/pycell-format.$$ | sort -u | sed 's/^/not formatted: /'
  rm -f /tmp/pycell-format.$$
  echo "run \`make format\` (clang-format -i) and commit the result" >&2
  exit 1
fi
rm -f /tmp/pycell-format.$$
echo "format_check: ${#files[@]} files formatted as .clang-format says"
