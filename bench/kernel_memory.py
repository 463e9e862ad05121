"""Kernel memory per session: what the host's kernel holds for each live session, which no
process's USS or PSS shows (mount and superblock structures, overlay and tmpfs inodes and
dentries, page tables, kernel stacks, namespaces).

  /usr/bin/python3 bench/kernel_memory.py --pycell build/pycell [--baseline OTHER_PYCELL]

Starts `pycell serve` with no warm pool, reads /proc/meminfo (Slab, KernelStack, PageTables),
creates --sessions sessions and runs one cell in each that opens a few dozen files of /usr and
/etc (what an import does), reads /proc/meminfo again, and ends them. Each round reports the
growth divided by the number of sessions; --rounds rounds, alternating with the --baseline
binary when one is given (an older build, say), and the medians. As root. The figure includes
whatever else the machine allocated meanwhile: run it on a quiet machine.
"""

import argparse
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import pycell_server  # noqa: E402

FIELDS = ("Slab", "KernelStack", "PageTables")
CELL = """
import glob, os
paths = sorted(glob.glob('/usr/lib/python3.11/*.py'))[:40] + ['/etc/ld.so.cache', '/etc/ssl/certs/ca-certificates.crt']
print(sum(len(open(p, 'rb').read(64)) for p in paths))
"""


def meminfo_kb():
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, rest = line.split(":", 1)
            if name in FIELDS:
                values[name] = int(rest.split()[0])
    return values


def settle():
    """Lets freed slab objects go back (RCU) before a reading."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")  # Reclaimable slab (dentries, inodes) of what nobody holds.
    time.sleep(1.0)


def one_round(pycell, sessions):
    server, folder = pycell_server.ServeProcess.in_new_folder(
        pycell, "pycell-kmem-", "/run/pycell-kmem-%d" % os.getpid())
    try:
        server.start(ready_sessions=0)
        client = server.client()
        warm = pycell_server.expect(client.create_session(), 201, "warm-up session")["id"]
        pycell_server.expect(client.execute(warm, CELL), 200, "warm-up cell")
        pycell_server.expect(client.delete("/v1/sessions/" + warm), 200, "end warm-up")
        settle()
        before = meminfo_kb()
        ids = []
        for _ in range(sessions):
            sid = pycell_server.expect(client.create_session(), 201, "create")["id"]
            reply = pycell_server.expect(client.execute(sid, CELL), 200, "cell")
            if reply["status"] != "ok":
                raise SystemExit("cell failed: %r" % reply)
            ids.append(sid)
        settle()
        after = meminfo_kb()
        for sid in ids:
            client.delete("/v1/sessions/" + sid)
        return {k: (after[k] - before[k]) / sessions for k in FIELDS}
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pycell", required=True)
    parser.add_argument("--baseline", help="another pycell binary, measured in turn")
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binaries = [("pycell", args.pycell)]
    if args.baseline:
        binaries.append(("baseline", args.baseline))
    results = {name: [] for name, _ in binaries}
    for r in range(args.rounds):
        for name, path in binaries:
            per = one_round(path, args.sessions)
            results[name].append(per)
            print("round %d %-8s per session: %s KiB" % (
                r + 1, name, ", ".join("%s %.0f" % (k, per[k]) for k in FIELDS)), flush=True)
    for name, rows in results.items():
        medians = {k: statistics.median(row[k] for row in rows) for k in FIELDS}
        total = sum(medians.values())
        print("median %-8s per session: %s KiB; together %.0f KiB" % (
            name, ", ".join("%s %.0f" % (k, medians[k]) for k in FIELDS), total))


if __name__ == "__main__":
    main()
