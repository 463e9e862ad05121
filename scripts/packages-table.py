#!/usr/bin/python3
"""Prints docs/packages.md's table of the default environment, from src/kernel/packages.json, the
versions, import times and memory sessions reported, and the Debian package versions here.

  /usr/bin/python3 bench/preload_cost.py --pycell build/pycell --imports-report /tmp/report.json
  /usr/bin/python3 scripts/packages-table.py /tmp/report.json

The report holds, per import name, the version, the import's seconds inside a fresh session and
the session's peak memory after it (peak_mib). The one tests/api/test_packages.py writes
(PYCELL_PACKAGES_REPORT=FILE: every import in one session, in the list's order) has no peak_mib.
"""

import json
import os
import subprocess
import sys

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(os.path.join(SOURCE_DIR, "src", "kernel", "packages.json")) as f:
        spec = json.load(f)
    with open(sys.argv[1]) as f:
        report = json.load(f)
    debian = [p["debian"] for p in spec["packages"]]
    listed = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\n", *debian],
                            capture_output=True, text=True, check=True).stdout
    debian_versions = dict(line.split(" ", 1) for line in listed.splitlines())
    print("| import | version in a session | Debian package | import s | peak MiB | what for |")
    print("|---|---|---|---|---|---|")
    for p in spec["packages"]:
        got = report[p["import"]]
        imported = ", ".join("`%s`" % m for m in [p["import"]] + p.get("submodules", []))
        peak = got.get("peak_mib")
        print("| %s | %s | `%s` %s | %.2f | %s | %s |" % (
            imported, got.get("version") or "?", p["debian"],
            debian_versions.get(p["debian"], "(not installed)"), got["seconds"],
            "%.0f" % peak if peak is not None else "", p["purpose"]))


if __name__ == "__main__":
    main()
