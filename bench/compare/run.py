#!/usr/bin/python3
"""bench/compare: the same workloads through pycell and its peers, in one go on one machine.

  /usr/bin/python3 bench/compare/run.py --pycell build/pycell [--reps N] [--cells N]
      [--idle-sessions K] [--peers a,b,...] [--json FILE] [--write-docs]

Workloads (bench/compare/README.md says how each is taken):
  new session + first result   a new session and its `1`, back at the client
  trivial cell round trip      `1` on a warm session that has the data stack imported
  memory per idle session      K idle sessions with the data stack: PSS, USS and RSS they add
  shipment scenario            60 000 shipments as CSV -> upload -> exceptions per carrier ->
                               chart -> the PNG downloaded, from the first request to the last byte
  cold start                   (sandboxes only) `python3 -c pass`, and the data stack imported

Peers: pycell (warm pool; and with an empty pool), a Jupyter kernel through jupyter_client,
Jupyter Server's REST API and websocket, python3 in gVisor (`runsc do`), in bubblewrap, and with
no sandbox at all. Samples are interleaved (each repetition visits every peer, in a rotating
order), so that a change in the machine's load touches them all alike. With --write-docs the
chart is drawn by pycell itself, in a session of the server this run started, and saved as
docs/compare.png; the table goes between the compare markers at the end of docs/benchmarks.md.
Run as root (pycell, bubblewrap's namespaces and gVisor need it).
"""

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402
import procmem  # noqa: E402
import report  # noqa: E402
import shipments  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


def log(*args):
    print("[compare %s]" % time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def summary(samples):
    """Milliseconds (or bytes): median, p90, min, max, n."""
    xs = sorted(samples)
    if not xs:
        return None

    def percentile(p):
        rank = p * (len(xs) - 1)
        lo = int(rank)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)

    return {"n": len(xs), "median": statistics.median(xs), "p90": percentile(0.9),
            "min": xs[0], "max": xs[-1]}


def elapsed_ms(started):
    return (time.perf_counter() - started) * 1000.0


class LoadSampler:
    """The 1-minute load average every 5 s while the run lasts: the machine is shared."""

    def __init__(self):
        self.samples = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now():
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]

    def _run(self):
        while not self.stop_event.is_set():
            self.samples.append(float(self.now()[0]))
            self.stop_event.wait(5)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        return summary(self.samples)


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}
    with open("/proc/meminfo") as f:
        info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                info["hypervisor"] = " hypervisor " in line + " "
                break
    try:
        with open("/etc/debian_version") as f:
            info["debian"] = f.read().strip()
    except OSError:
        pass
    return info


def probe(argv, timeout=60):
    """None when `argv` runs and exits 0 within `timeout`, else why not."""
    if not shutil.which(argv[0]):
        return "%s is not installed" % argv[0]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, cwd="/tmp")
    except subprocess.TimeoutExpired:
        return "`%s` did not finish within %d s" % (" ".join(argv), timeout)
    if done.returncode != 0:
        return "`%s` exited %d: %s" % (" ".join(argv), done.returncode,
                                       done.stderr.decode(errors="replace")[-300:].strip())
    return None


def build_peers(args, mpl_cache):
    """The peers asked for, and {key: why not} for those that cannot run here."""
    wanted = args.peers.split(",") if args.peers else [
        "pycell", "pycell_cold", "jupyter_kernel", "jupyter_server", "runsc", "bwrap", "none"]
    chosen, missing = [], {}
    for key in wanted:
        if key == "pycell":
            chosen.append(peers.Pycell(args.pycell, ready_sessions=args.pool, key="pycell",
                                       label="pycell (REST, warm pool)"))
        elif key == "pycell_cold":
            chosen.append(peers.Pycell(args.pycell, ready_sessions=0, key="pycell_cold",
                                       label="pycell (REST, empty pool)"))
        elif key == "jupyter_kernel":
            if not (importlib.util.find_spec("jupyter_client") and
                    importlib.util.find_spec("ipykernel")):
                missing[key] = "python3-jupyter-client or python3-ipykernel is not installed"
            else:
                chosen.append(peers.JupyterKernel())
        elif key == "jupyter_server":
            if not importlib.util.find_spec("jupyter_server"):
                missing[key] = "python3-jupyter-server is not installed"
            else:
                chosen.append(peers.JupyterServer())
        elif key == "jupyter_server_nodelay":
            chosen.append(peers.JupyterServer(nodelay=True))
        elif key == "runsc":
            why = probe(["runsc", "--network=none", "do", "-quiet", "/bin/true"])
            if why:
                missing[key] = why
            else:
                chosen.append(peers.Sandboxed("runsc", mpl_cache))
        elif key == "bwrap":
            why = probe(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "/bin/true"])
            if why:
                missing[key] = why
            else:
                chosen.append(peers.Sandboxed("bwrap", mpl_cache))
        elif key == "none":
            chosen.append(peers.Sandboxed("none", mpl_cache))
        else:
            raise SystemExit("unknown peer %r" % key)
    return chosen, missing


def rotated(items, i):
    i %= max(len(items), 1)
    return items[i:] + items[:i]


def check_one(peer, value):
    if value != "1":
        raise peers.BenchError("%s: `1` gave %r" % (peer.key, value))


def phase_cold_start(active, args, out):
    """The bare price of a start in each sandbox: `python3 -c pass`, then with the data stack."""
    sandboxes = [p for p in active if isinstance(p, peers.Sandboxed)]
    samples = {p.key: {"pass": [], "data_stack": []} for p in sandboxes}
    for rep in range(args.reps):
        for peer in rotated(sandboxes, rep):
            for name, code in (("pass", "pass"), ("data_stack", peers.PRELOAD)):
                started = time.perf_counter()
                peer.cold_start(code)
                samples[peer.key][name].append(elapsed_ms(started))
        log("cold start %d/%d" % (rep + 1, args.reps))
    for key, by_code in samples.items():
        out[key]["cold_start_ms"] = {name: summary(xs) for name, xs in by_code.items()}


def phase_new_session(active, args, out):
    """t0; a new session; `1` -> "1" back (first result); then the data stack imported (for
    pycell a no-op: the zygote has it) -> ready for data work; the session ended, untimed."""
    first = {p.key: [] for p in active}
    ready = {p.key: [] for p in active}
    for rep in range(-1, args.reps):  # Repetition -1 warms each peer up (imports, caches).
        for peer in rotated(active, rep):
            peer.before_sample()
            started = time.perf_counter()
            session = peer.new_session()
            check_one(peer, session.run("1"))
            first_ms = elapsed_ms(started)
            session.run(peers.PRELOAD)
            ready_ms = elapsed_ms(started)
            session.close()
            if rep >= 0:
                first[peer.key].append(first_ms)
                ready[peer.key].append(ready_ms)
        log("new session %d/%d" % (rep + 1, args.reps))
    for peer in active:
        out[peer.key]["new_session_ms"] = summary(first[peer.key])
        out[peer.key]["new_session_data_stack_ms"] = summary(ready[peer.key])


def phase_scenario(active, args, csv_bytes, out):
    """From the upload's first byte to the chart's last: the whole shipment scenario."""
    samples = {p.key: [] for p in active}
    charts = {}
    for rep in range(-1, args.scenario_reps):
        for peer in rotated(active, rep):
            peer.before_sample()
            started = time.perf_counter()
            png = peer.scenario(csv_bytes)
            ms = elapsed_ms(started)
            peer.after_scenario()
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise peers.BenchError("%s: the chart is not a PNG" % peer.key)
            charts[peer.key] = hashlib.sha256(png).hexdigest()
            if rep >= 0:
                samples[peer.key].append(ms)
        log("scenario %d/%d" % (rep + 1, args.scenario_reps))
    for peer in active:
        out[peer.key]["scenario_ms"] = summary(samples[peer.key])
        out[peer.key]["scenario_chart_sha256"] = charts.get(peer.key)


def phase_trivial_cell(active, args, out):
    """`1` on one warm session per peer (data stack imported), interleaved cell by cell."""
    sessions = {}
    for peer in active:
        peer.before_sample()
        session = peer.new_session()
        session.run(peers.PRELOAD)
        for _ in range(20):  # Warm-up.
            check_one(peer, session.run("1"))
        sessions[peer.key] = session
    samples = {p.key: [] for p in active}
    for i in range(args.cells):
        for peer in rotated(active, i):
            started = time.perf_counter()
            value = sessions[peer.key].run("1")
            samples[peer.key].append(elapsed_ms(started))
            check_one(peer, value)
    for peer in active:
        sessions[peer.key].close()
        out[peer.key]["trivial_cell_ms"] = summary(samples[peer.key])
    log("trivial cells: %d per peer" % args.cells)


def pycell_session_pids(root, session_ids):
    """The host pids of pycell sessions (their init and worker), by their memory cgroup, which
    is named after the session (…/pycell/<session id>)."""
    found = []
    for pid in procmem.tree(root):
        try:
            with open("/proc/%d/cgroup" % pid) as f:
                text = f.read()
        except OSError:
            continue
        if any("/" + sid + "\n" in text or text.endswith("/" + sid) for sid in session_ids):
            found.append(pid)
    return found


def phase_memory(active, args, out):
    """K idle sessions of one peer at a time, each with the data stack and one `1` run.
    Servers (pycell, Jupyter Server): the growth of the server's whole process tree over K, so
    the server's own share and the pages the sessions share with a zygote count. Others: the
    session's own processes (the kernel; the sandbox and everything in it)."""
    k = args.idle_sessions
    for peer in active:
        root = peer.memory_root()
        peer.before_sample()
        time.sleep(1)
        before = procmem.memory(procmem.tree(root)) if root else None
        sessions = [peer.new_session() for _ in range(k)]
        for session in sessions:
            session.run(peers.PRELOAD)
            check_one(peer, session.run("1"))
        peer.after_memory()
        time.sleep(2)  # Let them settle into idle.
        result = {"sessions": k}
        if root:
            after = procmem.memory(procmem.tree(root))
            result["method"] = "growth of the server's process tree / K"
            for field in ("pss", "uss", "rss"):
                result[field + "_bytes"] = (after[field] - before[field]) / k
            result["processes_per_session"] = (after["processes"] - before["processes"]) / k
            if isinstance(peer, peers.Pycell):
                own = procmem.memory(pycell_session_pids(root, [s.id for s in sessions]))
                result["own_processes"] = {f + "_bytes": own[f] / k for f in ("pss", "uss", "rss")}
                result["own_processes"]["processes"] = own["processes"] / k
        else:
            per = [procmem.memory(s.pids()) for s in sessions]
            result["method"] = "the session's own processes, median over K"
            for field in ("pss", "uss", "rss"):
                result[field + "_bytes"] = statistics.median(m[field] for m in per)
            result["processes_per_session"] = statistics.median(m["processes"] for m in per)
        for session in sessions:
            session.close()
        out[peer.key]["memory"] = result
        log("memory %s: PSS %.1f MB per idle session" % (peer.key, result["pss_bytes"] / 1e6))


def draw_chart(pycell, results, path):
    """pycell draws the chart: a session of the run's own server gets matplotlib code with the
    figures, writes compare.png to /mnt/data, and the PNG is downloaded from its artifact."""
    session = pycell.new_session()
    try:
        record = session.execute(report.chart_code(results), timeout_s=300)
        charts = [a for a in record["artifacts"] if a["filename"] == "compare.png"]
        if not charts:
            raise peers.BenchError("the chart cell wrote no compare.png: %s" %
                                   json.dumps(record)[:800])
        png = pycell.http.request("GET", "/v1/files/%s/content" % charts[0]["id"])
    finally:
        session.close()
    with open(path, "wb") as f:
        f.write(png)
    return {"path": os.path.relpath(path, REPO), "bytes": len(png), "execution": record["id"],
            "sha256": hashlib.sha256(png).hexdigest()}


def report_only(args):
    """--from-json: the chart and the docs from an earlier run's figures."""
    with open(args.from_json) as f:
        results = json.load(f)
    chart = args.chart or (os.path.join(REPO, "docs", "compare.png") if args.write_docs else None)
    if chart:
        pycell = peers.Pycell(args.pycell, ready_sessions=1)
        pycell.start()
        try:
            results["chart"] = draw_chart(pycell, results, chart)
        finally:
            pycell.stop()
        log("chart drawn by pycell: %s" % results["chart"]["path"])
    print(report.text_tables(results))
    if args.write_docs:
        report.write_docs_region(os.path.join(REPO, "docs", "benchmarks.md"),
                                 report.docs_region(results))
        log("wrote the compare region of docs/benchmarks.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pycell", required=True, help="the pycell binary (e.g. build/pycell)")
    parser.add_argument("--reps", type=int, default=20,
                        help="samples per peer of new session and cold start (default 20)")
    parser.add_argument("--scenario-reps", type=int, default=None,
                        help="samples per peer of the shipment scenario (default: --reps)")
    parser.add_argument("--cells", type=int, default=200,
                        help="trivial cells per peer (default 200)")
    parser.add_argument("--idle-sessions", type=int, default=8,
                        help="idle sessions weighed at once per peer (default 8)")
    parser.add_argument("--pool", type=int, default=2,
                        help="pycell's warm pool (default 2, the configuration's default)")
    parser.add_argument("--rows", type=int, default=60000, help="shipments in the CSV")
    parser.add_argument("--peers", help="comma-separated subset of: pycell, pycell_cold, "
                        "jupyter_kernel, jupyter_server, runsc, bwrap, none; and, not by default, "
                        "jupyter_server_nodelay")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--chart", help="save the chart pycell draws here (default with "
                        "--write-docs: docs/compare.png)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write docs/compare.png (drawn by pycell) and the compare region "
                        "of docs/benchmarks.md")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: take the figures of an earlier run's --json file "
                        "and only draw the chart (a pycell server is started for it) and write "
                        "the docs")
    args = parser.parse_args()
    if args.from_json:
        return report_only(args)
    if args.scenario_reps is None:
        args.scenario_reps = args.reps
    if os.geteuid() != 0:
        raise SystemExit("run.py: run it as root (pycell serve, bubblewrap and runsc need it)")
    # ipykernel's debugger warns about frozen modules on every start; it is only noise here.
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"

    sampler = LoadSampler()
    results = {"started_at": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"), "load_at_start": LoadSampler.now(), "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k != "write_docs"},
        "command": " ".join(["/usr/bin/python3"] + [os.path.relpath(sys.argv[0], REPO)] +
                            sys.argv[1:])}
    sampler.start()
    log("load average at start: %s" % " ".join(results["load_at_start"]))

    started = time.perf_counter()
    csv_bytes = shipments.make_csv(rows=args.rows)
    results["csv"] = {"rows": args.rows, "bytes": len(csv_bytes), "seed": 7,
                      "sha256": hashlib.sha256(csv_bytes).hexdigest()}
    log("CSV: %d shipments, %d bytes in %.1f s" % (args.rows, len(csv_bytes),
                                                   time.perf_counter() - started))

    # A warm matplotlib font cache for every peer but pycell (whose zygote imported matplotlib
    # once): without it each cold start would rebuild it. Jupyter's kernels inherit the variable.
    scratch = tempfile.mkdtemp(prefix="pycell-compare-")
    mpl_cache = os.path.join(scratch, "mplconfig")
    os.makedirs(mpl_cache)
    subprocess.run([peers.PYTHON, "-c", "import matplotlib.pyplot"], check=True,
                   env=dict(os.environ, MPLCONFIGDIR=mpl_cache))
    os.environ["MPLCONFIGDIR"] = mpl_cache

    active, missing = build_peers(args, mpl_cache)
    results["unavailable"] = missing
    for key, why in missing.items():
        log("peer %s left out: %s" % (key, why))
    out = {}
    started_peers = []
    try:
        for peer in active:
            log("starting %s" % peer.key)
            peer.start()
            started_peers.append(peer)
            out[peer.key] = {"label": peer.label, "version": peer.version()}
        results["peers"] = out
        pycell = next((p for p in active if p.key == "pycell"), None)
        warm_only = [p for p in active if p.key != "pycell_cold"]

        phase_cold_start(active, args, out)
        phase_new_session(active, args, out)
        phase_scenario(active, args, csv_bytes, out)
        phase_trivial_cell(warm_only, args, out)
        phase_memory(warm_only, args, out)

        results["load_during"] = sampler.stop()
        results["load_at_end"] = LoadSampler.now()
        results["finished_at"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC")
        results["pycell_binary"] = subprocess.run(
            [os.path.abspath(args.pycell), "--version"], capture_output=True,
            text=True).stdout.strip()
        chart = args.chart or (os.path.join(REPO, "docs", "compare.png") if args.write_docs
                               else None)
        if chart:
            if pycell is None:
                raise SystemExit("run.py: the chart needs the pycell peer (it draws it)")
            results["chart"] = draw_chart(pycell, results, chart)
            log("chart drawn by pycell: %s" % results["chart"]["path"])
    finally:
        for peer in started_peers:
            try:
                peer.stop()
            except Exception as e:  # One peer's failed stop must not leave the others running.
                log("stopping %s: %s" % (peer.key, e))
        shutil.rmtree(scratch, ignore_errors=True)

    print(report.text_tables(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    if args.write_docs:
        report.write_docs_region(os.path.join(REPO, "docs", "benchmarks.md"),
                                 report.docs_region(results))
        log("wrote the compare region of docs/benchmarks.md")


if __name__ == "__main__":
    main()
