#!/usr/bin/python3
"""The Jupyter baseline of session_bench: the same figures for ipykernel on the same machine.

Run by session_bench as `/usr/bin/python3 bench/jupyter_baseline.py ...`; prints one JSON object
on stdout (progress goes to stderr). Needs only the standard library and jupyter_client (with
ipykernel installed as the `python3` kernel): Debian's python3-jupyter-client and python3-ipykernel.

What it measures, with pycell's equivalent:
  start_ms            KernelManager.start_kernel + client channels + wait_for_ready: a new kernel,
                      like a pycell session created with the pool empty (Jupyter has no warm pool).
  preload_ms          then `import numpy, pandas, matplotlib.pyplot` in it: what a pycell session
                      has already (its zygote preloaded them), so start_ms + preload_ms is the
                      fair counterpart of pycell's empty-pool latency.
  first_cell_ms       the first `1` in the fresh, preloaded kernel.
  cell_ms[code]       round trip of a trivial cell on a warm kernel through a BlockingKernelClient:
                      execute, then both the execute_reply and the idle status.
  memory              USS (Private_Clean + Private_Dirty) and PSS of each idle kernel's processes,
                      from /proc/<pid>/smaps_rollup, bare and after the preload imports.
"""

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time

from jupyter_client.manager import KernelManager

PRELOAD = "import numpy, pandas, matplotlib, matplotlib.pyplot"


def log(*args):
    print("[jupyter]", *args, file=sys.stderr, flush=True)


def summary(samples):
    """Milliseconds: p50, p90, min, max, mean, n (the same shape session_bench prints)."""
    xs = sorted(samples)
    if not xs:
        return {"n": 0}

    def percentile(p):
        rank = p * (len(xs) - 1)
        lo = int(rank)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)

    return {"n": len(xs), "p50": percentile(0.5), "p90": percentile(0.9), "min": xs[0],
            "max": xs[-1], "mean": statistics.fmean(xs)}


def start_kernel():
    """A ready kernel and its blocking client; the time it took in ms."""
    started = time.perf_counter()
    km = KernelManager(kernel_name="python3")
    km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc, (time.perf_counter() - started) * 1000.0


def stop_kernel(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run_cell(kc, code, timeout=120):
    """Executes `code`; returns (ms until the execute_reply and the idle status, reply status)."""
    started = time.perf_counter()
    msg_id = kc.execute(code, store_history=True)
    status = None
    idle = False
    while status is None:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            status = reply["content"]["status"]
    while not idle:
        msg = kc.get_iopub_msg(timeout=timeout)
        idle = (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle")
    elapsed = (time.perf_counter() - started) * 1000.0
    if status != "ok":
        raise RuntimeError("cell %r failed in the kernel: %s" % (code, status))
    return elapsed


def process_tree(pid):
    """`pid` and its descendants (ipykernel runs in one process, but count any it started)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        try:
            with open("/proc/%d/task/%d/children" % (pids[i], pids[i])) as f:
                pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def memory_of(pids):
    """Summed USS and PSS in bytes of `pids`, from smaps_rollup."""
    uss = pss = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in ("Private_Clean", "Private_Dirty", "Pss"):
                        kb = int(rest.split()[0]) * 1024
                        if key == "Pss":
                            pss += kb
                        else:
                            uss += kb
        except OSError:
            pass
    return uss, pss


def kernel_pid(km):
    return km.provisioner.process.pid


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="kernel starts to time")
    parser.add_argument("--cell-iterations", type=int, default=200, help="trivial cells to time")
    parser.add_argument("--kernels", type=int, default=8, help="idle kernels to weigh")
    args = parser.parse_args()
    out = {"python": sys.version.split()[0], "preload": PRELOAD}
    for package in ("jupyter_client", "ipykernel"):
        out[package] = importlib.metadata.version(package)

    # 1. Start latency: a new kernel (the "empty pool" case), then the preloads in it.
    start, preload, first_cell = [], [], []
    for i in range(args.iterations):
        km, kc, ms = start_kernel()
        start.append(ms)
        preload.append(run_cell(kc, PRELOAD))
        first_cell.append(run_cell(kc, "1"))
        stop_kernel(km, kc)
        log("start %d/%d: %.0f ms, preload %.0f ms" % (i + 1, args.iterations, ms, preload[-1]))
    out["start_ms"] = summary(start)
    out["preload_ms"] = summary(preload)
    out["start_with_preload_ms"] = summary([a + b for a, b in zip(start, preload)])
    out["first_cell_ms"] = summary(first_cell)

    # 2. Trivial cell round trip on one warm kernel (with the preloads, like a pycell session).
    km, kc, _ = start_kernel()
    run_cell(kc, PRELOAD)
    codes = ("1", "pass")
    samples = {code: [] for code in codes}
    for i in range(-20, args.cell_iterations):  # The first 20 warm up; the codes interleave.
        for code in codes:
            ms = run_cell(kc, code)
            if i >= 0:
                samples[code].append(ms)
    out["cell_ms"] = {code: summary(samples[code]) for code in codes}
    for code in codes:
        log("cell %r: p50 %.2f ms" % (code, out["cell_ms"][code]["p50"]))
    stop_kernel(km, kc)

    # 3. Memory of idle kernels: K alive at once (as pycell's K sessions), bare then preloaded.
    kernels = [start_kernel()[:2] for _ in range(args.kernels)]
    memory = {}
    for phase in ("bare", "preloaded"):
        if phase == "preloaded":
            for _, kc in kernels:
                run_cell(kc, PRELOAD)
        for _, kc in kernels:
            run_cell(kc, "1")
        time.sleep(0.5)  # Let the kernels settle into idle.
        per_kernel = [memory_of(process_tree(kernel_pid(km))) for km, _ in kernels]
        memory[phase] = {
            "kernels": len(per_kernel),
            "uss_bytes": [u for u, _ in per_kernel],
            "pss_bytes": [p for _, p in per_kernel],
            "uss_mb_median": statistics.median(u for u, _ in per_kernel) / 2**20,
            "pss_mb_median": statistics.median(p for _, p in per_kernel) / 2**20,
        }
        log("memory %s: USS %.1f MB, PSS %.1f MB per kernel" %
            (phase, memory[phase]["uss_mb_median"], memory[phase]["pss_mb_median"]))
    out["memory"] = memory
    for km, kc in kernels:
        stop_kernel(km, kc)

    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
