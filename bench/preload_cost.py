#!/usr/bin/python3
"""What a heavier preload costs: memory per session and launch time, for a pool's `preload` list
(docs/configuration.md) with and without one more module (issue 20; results in docs/packages.md).

  /usr/bin/python3 bench/preload_cost.py --pycell build/pycell [--module sklearn --module plotly]
      [--sessions 5] [--rounds 3]

For the default preload list, then that list plus each --module, a real `pycell serve` starts with
a configuration holding only that pool, and this reports:
  - ready_s: from starting the server to /readyz (the zygote imports its preloads, then one warm
    session is contained);
  - zygote_rss_mib / zygote_pss_mib: the zygote's memory after its preloads (/proc smaps_rollup);
  - create_empty_pool_ms: a POST /v1/sessions right after another took the warm session, so it
    meets an empty pool (a fork of the zygote put in its sandbox, or the refill under way);
  - first_cell_ms / first_cell_mib: a first cell that imports the module (`import sklearn`), its
    duration_ms and the session's peak memory (its cgroup's, so pages shared with the zygote
    count only once the session writes to them), medians over the sessions;
  - trivial_cell_mib: the session's peak memory after a cell `1` (nothing imported by the cell).

With --imports-report FILE instead, it times each package of src/kernel/packages.json alone: for
each, a fresh session of the default pool runs one cell that imports it (and its listed
submodules), and FILE gets, per import name, the version, the import's seconds inside the session
and the session's peak memory after it (for scripts/packages-table.py and docs/packages.md).

Each figure is the median over --sessions sessions, then over --rounds rounds (the lists in
turn). As root (sessions need it). Other load on the machine shows in the times: run it quietly.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import pycell_server  # noqa: E402

DEFAULT_PRELOAD = ["numpy", "pandas", "matplotlib", "IPython"]
CONFIG = """
[[pools]]
name = "default"
preload = [{preload}]
ready_sessions = {ready}
"""


RUNTIME_DIR = "/run/pycell-preload-%d" % os.getpid()  # Removed at the end (main).


def smaps_rollup_kib(pid):
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def zygote_pids(server):
    """The server's zygote processes: descendants whose command line names the zygote."""
    return [pid for pid, _ in pycell_server.descendants(server.proc.pid)
            if "zygote" in pycell_server.cmdline(pid)]


def measure(pycell, preload, module, sessions):
    server, folder = pycell_server.ServeProcess.in_new_folder(
        pycell, "pycell-preload-", RUNTIME_DIR)
    config = os.path.join(folder, "pycell.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(preload=", ".join('"%s"' % m for m in preload), ready=1))
    started = time.monotonic()
    server.start(extra_args=("--config", config), ready_sessions=None, ready_timeout=300)
    ready_s = time.monotonic() - started
    try:
        zygotes = zygote_pids(server)
        rollup = smaps_rollup_kib(zygotes[0]) if zygotes else {}
        client = server.client()
        warm = pycell_server.expect(client.create_session(), 201, "the warm session")["id"]
        pycell_server.expect(client.delete("/v1/sessions/" + warm), 200, "end it")
        create_ms, cell_ms, cell_mib, trivial_mib = [], [], [], []
        for _ in range(sessions):
            time.sleep(1.0)  # The pool refills its one warm session.
            # Two back to back: the first takes the warm session, the second meets an empty pool
            # (it makes its own, or waits for the refill under way).
            ids = []
            for warm_or_cold in range(2):
                t = time.monotonic()
                created = pycell_server.expect(client.create_session(), 201, "POST /v1/sessions")
                if warm_or_cold == 1:
                    create_ms.append((time.monotonic() - t) * 1000)
                ids.append(created["id"])
            for sid in ids:
                trivial = pycell_server.expect(client.execute(sid, "1"), 200, "cell 1")
                trivial_mib.append(trivial["peak_memory_bytes"] / 2**20)
                record = pycell_server.expect(
                    client.execute(sid, "import %s" % module, timeout_s=300, timeout=330), 200,
                    "import %s" % module)
                if record["status"] != "ok":
                    raise RuntimeError("import %s failed: %r" % (module, record))
                cell_ms.append(record["duration_ms"])
                cell_mib.append(record["peak_memory_bytes"] / 2**20)
                pycell_server.expect(client.delete("/v1/sessions/" + sid), 200, "end")
        return {
            "ready_s": ready_s,
            "zygote_rss_mib": rollup.get("Rss", 0) / 1024,
            "zygote_pss_mib": rollup.get("Pss", 0) / 1024,
            "create_empty_pool_ms": statistics.median(create_ms),
            "first_cell_ms": statistics.median(cell_ms),
            "first_cell_mib": statistics.median(cell_mib),
            "trivial_cell_mib": statistics.median(trivial_mib),
        }
    finally:
        server.stop(timeout=60)
        pycell_server.stop_for_module(None, folder)


PACKAGES_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "kernel",
                             "packages.json")
IMPORT_ONE = r"""
import importlib, importlib.metadata, json, time
_e = json.loads(%r)
_t = time.perf_counter()
_m = importlib.import_module(_e["import"])
for _sub in _e.get("submodules", []):
    importlib.import_module(_sub)
_seconds = time.perf_counter() - _t
_version = (importlib.metadata.version(_e["distribution"]) if _e["distribution"]
            else getattr(_m, "__version__", None))
print(json.dumps({"version": _version, "seconds": round(_seconds, 3)}))
"""


def imports_report(pycell, path):
    with open(PACKAGES_JSON) as f:
        spec = json.load(f)
    server, folder = pycell_server.ServeProcess.in_new_folder(
        pycell, "pycell-imports-", RUNTIME_DIR)
    server.start(ready_sessions=1)
    report = {}
    try:
        client = server.client()
        for entry in spec["packages"]:
            sid = pycell_server.expect(client.create_session(), 201, "POST /v1/sessions")["id"]
            record = pycell_server.expect(
                client.execute(sid, IMPORT_ONE % json.dumps(entry), timeout_s=300, timeout=330),
                200, "import " + entry["import"])
            if record["status"] != "ok":
                raise RuntimeError("import %s failed: %r" % (entry["import"], record))
            got = json.loads(record["stdout"].strip().splitlines()[-1])
            got["peak_mib"] = round(record["peak_memory_bytes"] / 2**20, 1)
            report[entry["import"]] = got
            print(entry["import"], got, flush=True)
            pycell_server.expect(client.delete("/v1/sessions/" + sid), 200, "end")
    finally:
        server.stop(timeout=60)
        pycell_server.stop_for_module(None, folder)
    with open(path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


def main():
    try:
        run()
    finally:
        shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


def run():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pycell", required=True)
    parser.add_argument("--module", action="append", default=None,
                        help="a module to add to the preload (repeatable; default sklearn, plotly)")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each list in turn; the medians are printed")
    parser.add_argument("--imports-report", metavar="FILE",
                        help="instead: time each package of packages.json alone, into FILE")
    args = parser.parse_args()
    if args.imports_report:
        imports_report(os.path.abspath(args.pycell), args.imports_report)
        return
    modules = args.module or ["sklearn", "plotly"]
    pycell = os.path.abspath(args.pycell)
    for module in modules:
        lists = (DEFAULT_PRELOAD, DEFAULT_PRELOAD + [module])
        results = {i: [] for i in range(len(lists))}
        for _ in range(args.rounds):
            for i, preload in enumerate(lists):
                results[i].append(measure(pycell, preload, module, args.sessions))
        for i, preload in enumerate(lists):
            medians = {key: statistics.median(r[key] for r in results[i])
                       for key in results[i][0]}
            print("preload=%s cell='import %s': %s" % (
                ",".join(preload), module,
                "  ".join("%s=%.1f" % kv for kv in medians.items())), flush=True)


if __name__ == "__main__":
    main()
