"""What bench/compare prints and writes: the tables, the chart's code (run by pycell) and the
region of docs/benchmarks.md between the compare markers.

Only the region between BEGIN and END is ever rewritten; the file is read right before the write,
so edits others made elsewhere in it are kept. Without the markers the region is appended.
"""

import json
import textwrap

BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"

# The main table's workloads: (results key, column title, unit).
WORKLOADS = [
    ("new_session_ms", "new session + first result", "ms"),
    ("new_session_data_stack_ms", "… + numpy, pandas, matplotlib imported", "ms"),
    ("trivial_cell_ms", "trivial cell round trip", "ms"),
    ("memory", "PSS per idle session", "MB"),
    ("scenario_ms", "shipment scenario, request to chart", "ms"),
]
BASE = "pycell"


def wrap(text):
    """A paragraph, or a "- " bullet, wrapped at 100 columns like the rest of the docs."""
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(text, width=100, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def figure(results_of_peer, key):
    """The median of a workload for one peer (memory: PSS in MB), or None."""
    value = results_of_peer.get(key)
    if value is None:
        return None
    if key == "memory":
        return value["pss_bytes"] / 1e6
    return value["median"]


def number(x):
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return "%.0f" % x
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    if abs(x) >= 1:
        return "%.2f" % x
    return "%.3f" % x


def ratio(x, base):
    if x is None or not base:
        return ""
    r = x / base
    return "%.0f×" % r if r >= 100 else "%.1f×" % r if r >= 10 else "%.2f×" % r


def main_table(results):
    peers = results["peers"]
    base = peers.get(BASE, {})
    head = "| peer | " + " | ".join("%s (%s)" % (title, unit) for _, title, unit in WORKLOADS) + " |"
    lines = [head, "|---|" + "---:|" * len(WORKLOADS)]
    for key, p in peers.items():
        cells = []
        for workload, _, _ in WORKLOADS:
            x = figure(p, workload)
            b = figure(base, workload)
            text = number(x)
            if x is not None and key != BASE and b:
                text += " (%s)" % ratio(x, b)
            cells.append(text)
        lines.append("| %s | %s |" % (p["label"], " | ".join(cells)))
    return "\n".join(lines)


def spread_table(results):
    lines = ["| peer | figure | n | median | p90 | min | max |", "|---|---|---:|---:|---:|---:|---:|"]
    names = {"new_session_ms": "new session + first result",
             "new_session_data_stack_ms": "… + data stack imported",
             "trivial_cell_ms": "trivial cell", "scenario_ms": "shipment scenario"}
    for key, p in results["peers"].items():
        for workload, name in names.items():
            s = p.get(workload)
            if s:
                lines.append("| %s | %s | %d | %s | %s | %s | %s |" % (
                    p["label"], name, s["n"], number(s["median"]), number(s["p90"]),
                    number(s["min"]), number(s["max"])))
    return "\n".join(lines)


def cold_start_table(results):
    rows = [(p["label"], p["cold_start_ms"]) for p in results["peers"].values()
            if p.get("cold_start_ms")]
    if not rows:
        return ""
    lines = ["| sandbox | `python3 -c pass`, to its exit (ms) | `python3 -c 'import numpy, pandas, "
             "matplotlib, matplotlib.pyplot'` (ms) |", "|---|---:|---:|"]
    for label, c in rows:
        lines.append("| %s | %s (p90 %s) | %s (p90 %s) |" % (
            label.replace(" + IPython", ""), number(c["pass"]["median"]),
            number(c["pass"]["p90"]), number(c["data_stack"]["median"]),
            number(c["data_stack"]["p90"])))
    return "\n".join(lines)


def memory_table(results):
    lines = ["| peer | weighed | processes per session | PSS (MB) | USS (MB) | RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for p in results["peers"].values():
        m = p.get("memory")
        if not m:
            continue
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            p["label"], m["method"], number(m["processes_per_session"]),
            number(m["pss_bytes"] / 1e6), number(m["uss_bytes"] / 1e6),
            number(m["rss_bytes"] / 1e6)))
        own = m.get("own_processes")
        if own:
            lines.append("| %s | the session's own processes (its init and worker, found by "
                         "their cgroup), / K | %s | %s | %s | %s |" % (
                             p["label"], number(own["processes"]), number(own["pss_bytes"] / 1e6),
                             number(own["uss_bytes"] / 1e6), number(own["rss_bytes"] / 1e6)))
    return "\n".join(lines)


def load_line(results):
    during = results.get("load_during") or {}
    return ("1-minute load average %s at the start, %s at the end; during the run (sampled every "
            "5 s) median %s, min %s, max %s" % (
                results["load_at_start"][0], results.get("load_at_end", ["?"])[0],
                number(during.get("median")), number(during.get("min")),
                number(during.get("max"))))


def versions(results):
    parts = []
    for p in results["peers"].values():
        for name, v in p.get("version", {}).items():
            if name == "python":  # The machine's, named once already.
                continue
            text = "%s %s" % (name, v)
            if text not in parts:
                parts.append(text)
    return ", ".join(parts)


def text_tables(results):
    """What the run prints at its end."""
    out = ["", "bench/compare: %s; %s" % (results["started_at"], load_line(results)), "",
           main_table(results), "", cold_start_table(results), "", memory_table(results), "",
           spread_table(results)]
    for key, why in results.get("unavailable", {}).items():
        out.append("left out: %s: %s" % (key, why))
    return "\n".join(out)


def compared(x, base, unit="ms"):
    """"12.3 ms, 4.5× pycell's 2.73 ms" / "0.6× (faster than) …"."""
    if x is None or not base:
        return "—"
    return "%s %s (%s pycell's %s)" % (number(x), unit, ratio(x, base), number(base))


def findings(results):
    """What the table says, computed from it: the sentences hold whatever the figures are."""
    peers = results["peers"]
    if BASE not in peers:
        return ""

    def get(key, workload):
        return figure(peers[key], workload) if key in peers else None

    def cold(key, code):
        c = peers.get(key, {}).get("cold_start_ms")
        return c[code]["median"] if c else None

    out = []
    base_new = get(BASE, "new_session_ms")
    starts = [(get(k, "new_session_ms"), peers[k]["label"]) for k in peers
              if k not in (BASE, "pycell_cold") and get(k, "new_session_ms")]
    if starts:
        fastest = min(starts)
        out.append(
            "- **A new session.** pycell hands over a warm session: %s ms to the first result; "
            "the fastest peer, %s, takes %s. With its pool empty pycell still answers in %s: a "
            "session is a fork of a zygote that has already imported numpy, pandas, matplotlib "
            "and IPython, while every peer starts a python3 and imports them (that import alone, "
            "with no sandbox, takes %s ms: cold-start table)." % (
                number(base_new), fastest[1], compared(fastest[0], base_new),
                compared(get("pycell_cold", "new_session_ms"), base_new),
                number(cold("none", "data_stack"))))
    base_cell = get(BASE, "trivial_cell_ms")
    pipe = get("none", "trivial_cell_ms")
    parts = []
    for key in ("jupyter_kernel", "jupyter_server", "runsc", "bwrap", "none"):
        if get(key, "trivial_cell_ms") is not None:
            parts.append("%s %s" % (peers[key]["label"], compared(get(key, "trivial_cell_ms"),
                                                                   base_cell)))
    if parts:
        text = ("- **A trivial cell.** pycell: %s ms over HTTP, with its record (SQLite, the "
                "audit event), the `/mnt/data` snapshots and the cgroup counters of every "
                "execution. " % number(base_cell))
        text += "; ".join(parts) + "."
        if pipe is not None and pipe < base_cell:
            text += (" A bare pipe to IPython that records nothing is cheaper: pycell's extra "
                     "per cell is its HTTP API and its bookkeeping, which the pipe peers do not "
                     "do.")
        out.append(text)
    base_mem = get(BASE, "memory")
    kernel_mem = get("jupyter_kernel", "memory")
    if base_mem and kernel_mem:
        text = ("- **An idle session** adds %s MB of PSS in pycell (its two processes share the "
                "zygote's pages copy-on-write) against %s for a Jupyter kernel" % (
                    number(base_mem), compared(kernel_mem, base_mem, "MB")))
        if get("runsc", "memory") and get("bwrap", "memory"):
            text += ("; gVisor's Sentry and gofer put %s MB on top of the same python3 in "
                     "bubblewrap (%s against %s MB)" % (
                         number(get("runsc", "memory") - get("bwrap", "memory")),
                         number(get("runsc", "memory")), number(get("bwrap", "memory"))))
        out.append(text + ".")
    base_sc = get(BASE, "scenario_ms")
    if base_sc:
        parts = ["%s %s" % (peers[k]["label"], compared(get(k, "scenario_ms"), base_sc))
                 for k in ("jupyter_kernel", "jupyter_server", "runsc", "bwrap", "none")
                 if get(k, "scenario_ms") is not None]
        text = ("- **The shipment scenario**, request to downloaded chart: pycell %s ms; %s." % (
            number(base_sc), "; ".join(parts)))
        if cold("none", "data_stack"):
            text += (" Much of every peer's extra is its cold start and the imports "
                     "(%s ms without a sandbox)." % number(cold("none", "data_stack")))
        out.append(text)
    iso = [(k, get(k, "scenario_ms"), cold(k, "data_stack")) for k in ("runsc", "bwrap", "none")]
    if all(x[1] for x in iso) and all(x[2] for x in iso):
        out.append(
            "- **The price of isolation alone** (same python3, same REPL): against no sandbox, "
            "bubblewrap costs %s on the data-stack import and %s on the scenario; gVisor %s and "
            "%s: each of the import's system calls (about 15 000 with no sandbox, per `strace -c`: "
            "5 000 `stat`s, 1 500 `open`s, 2 000 `read`s) stops the code and is served by the "
            "Sentry, and so is every read of the CSV." % (
                ratio(iso[1][2], iso[2][2]), ratio(iso[1][1], iso[2][1]),
                ratio(iso[0][2], iso[2][2]), ratio(iso[0][1], iso[2][1])))
    return "\n".join(wrap(line) for line in out)


def chart_code(results):
    """Matplotlib code for a pycell session: four panels (one per workload), a bar per peer
    with its median, pycell's bars in its own colour; saved as /mnt/data/compare.png."""
    panels = []
    for workload, title, unit in WORKLOADS:
        if workload == "new_session_data_stack_ms":
            continue
        bars = [(p["label"], figure(p, workload)) for p in results["peers"].values()
                if figure(p, workload) is not None]
        panels.append({"title": title, "unit": unit, "bars": bars})
    data = {"panels": panels,
            "subtitle": "%s, %d cores, 1-minute load average during the run: median %s, "
                        "max %s; medians of each figure" % (
                            results["started_at"], results["machine"]["nproc"],
                            number((results.get("load_during") or {}).get("median")),
                            number((results.get("load_during") or {}).get("max")))}
    return """
import json
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

data = json.loads(%r)
fig, axes = plt.subplots(2, 2, figsize=(13, 8))
for ax, panel in zip(axes.flat, data["panels"]):
    labels = [label for label, _ in panel["bars"]]
    values = [value for _, value in panel["bars"]]
    colors = ["#2b7bba" if label.startswith("pycell") else "#b0b0b0" for label in labels]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    if panel["unit"] == "ms":
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 3, max(values) * 6)
    else:
        ax.set_xlim(0, max(values) * 1.3)
    for i, value in enumerate(values):
        text = ("%%.0f" if value >= 100 else "%%.1f" if value >= 10 else "%%.2f") %% value
        ax.text(value, i, " " + text + " " + panel["unit"], va="center", fontsize=8)
    ax.set_title(panel["title"] + " (" + panel["unit"] + ", lower is better)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
fig.suptitle("pycell and its peers, same machine, same run\\n" + data["subtitle"], fontsize=11)
fig.tight_layout()
fig.savefig("/mnt/data/compare.png", dpi=100)
plt.close(fig)
""" % json.dumps(data)


PROSE_METHOD = """\
### How each figure is taken

Every peer runs its cells in IPython (pycell's runner, ipykernel, and for the sandboxes
`bench/compare/repl.py`: an `InteractiveShell` behind one JSON line each way on a pipe), and every
client is Python in the benchmark's process (`http.client` on one keep-alive connection for the
REST APIs, `BlockingKernelClient` for the kernel, tornado's websocket client for Jupyter Server).
Samples are interleaved: each repetition visits every peer, in a rotating order, so a change in
the machine's load touches them alike; one repetition before them warms each peer up.

| figure | how |
|---|---|
| new session + first result | from the request for a session to `1` back at the client. pycell: `POST /v1/sessions {}` + `POST …/executions {"code": "1"}` (warm pool: before each sample `/readyz` is awaited, so it is a hand-over; empty pool: a server with `--ready-sessions 0`, so a fork from the zygote and the whole containment). Jupyter kernel: `KernelManager.start_kernel`, client channels, `wait_for_ready`, the cell. Jupyter Server: `POST /api/kernels`, the websocket `/api/kernels/{id}/channels`, the cell. Sandboxes: `runsc do` / `bwrap` / nothing, python3 with repl.py, to its `ready` line, then the cell |
| … + data stack imported | the same sample, continued with `import numpy, pandas, matplotlib, matplotlib.pyplot`: when the session can start data work (in pycell a no-op: its zygote imported them) |
| trivial cell round trip | `1` on one warm session per peer that has imported the data stack, after 20 warm-up cells; the peers' cells interleaved one by one. Jupyter: until both the `execute_reply` and the `idle` status |
| PSS per idle session | K sessions of one peer alive at once, each with the data stack imported and one `1` run, settled for 2 s; PSS summed from `/proc/<pid>/smaps_rollup`. For the servers (pycell, Jupyter Server) the growth of the server's whole process tree over K, so the server's own share and the pages sessions share with pycell's zygote count; for the others the session's own process tree (the kernel; `runsc`, its gofer, its sandbox and stub processes; `bwrap` and python3) |
| shipment scenario | a CSV of {rows} shipments (`bench/compare/shipments.py`: deterministic, seed 7, {mb} MB, SHA-256 `{sha}…`) → upload → one cell: `pandas.read_csv` with three date columns, late (delivered after the promised date), damaged and lost per carrier, a stacked bar chart saved as PNG → the PNG's bytes at the client. pycell: `POST /v1/files` (raw body), `POST /v1/sessions {"file_ids": …}`, the cell, `GET /v1/files/{artifact}/content`. Jupyter kernel: the CSV written into a new folder, a kernel started there, the cell, the PNG read from the folder. Jupyter Server: `PUT /api/contents` (a folder, then the CSV as text), `POST /api/kernels {"path": …}`, the cell over the websocket, `GET /files/…`. bubblewrap and no sandbox: the CSV written into a new folder (bound as `/mnt/data`), the interpreter started there, the cell, the PNG read from the folder. gVisor: the same, but its overlay keeps the sandbox's writes inside, so the PNG comes back base64 over the pipe. Ending the session is not timed. {same_png} |
| cold start (sandboxes) | `python3 -c pass` to its exit inside the sandbox, and the same with the data stack imported: the bare price of a start |

All peers but pycell get a warm matplotlib font cache (`MPLCONFIGDIR` pointing at one built
before the run), as pycell's zygote has matplotlib imported; without it every cold start would
spend a second or more rebuilding it."""

PROSE_PEERS = """\
### What each peer gives that pycell does not, and the other way round

- **Jupyter kernel through `jupyter_client`**: the whole Jupyter messaging protocol — rich
  display and `update_display`, comms (ipywidgets), `input()` over the stdin channel, interrupts,
  the debugger (debugpy), kernels for other languages, and every tool built on it. It is a
  library, not a service: no isolation at all (the kernel runs as the caller, with the caller's
  files and network), no limits, no keys, no record of what ran, no file store. pycell gives the
  sandbox, the REST and MCP APIs, the warm pool (a session is a fork of a zygote that has already
  imported the data stack, which is most of the gap in the first two columns), files with
  lineage, an audit log, quotas and metering — and has no widgets, no stdin, no debugger and only
  Python.
- **Jupyter Server's REST API**: remote access to the same kernels, over HTTP and a websocket
  with a token; a contents API with notebooks, checkpoints and a file browser; terminals; the
  extension system JupyterLab and Notebook stand on. Its kernels are not isolated either (the
  server's user, files and network), and its access control is one token (or an identity
  provider) — no roles, projects, quotas or audit trail; uploads go through the contents API as
  JSON (text or base64). Its 1.23 release leaves Nagle's algorithm on for kernel websockets, so
  a cell's small messages wait for the client's delayed ACK: most of its trivial-cell figure
  (the optional peer `jupyter_server_nodelay` sets TCP_NODELAY to show how much: in a separate
  run of 300 cells each, load average 3.6, the median fell from 48.0 to 12.6 ms).
- **gVisor (`runsc do`)**: a much stronger boundary than pycell's. The code talks to gVisor's
  user-space kernel (the Sentry), which implements Linux's system calls itself and reaches the
  host through a small, seccomp-filtered set: a host-kernel bug that code in pycell's namespaces
  can reach directly (they share the host kernel) has to be reached through the Sentry first.
  It is an OCI runtime (Docker, Kubernetes). The price is in the table: a sandbox to boot for
  each session, every system call trapped (the ptrace platform here), and more memory (a Sentry
  and a gofer per session). `runsc do` has no session API, files or limits of its own: the
  benchmark pipes repl.py; a service on gVisor would have to build what pycell has.
- **bubblewrap**: the same kernel primitives as pycell (user, mount, pid, network, IPC and UTS
  namespaces, no capabilities) in a small tool (Flatpak's sandbox). No seccomp filter
  unless one is passed in, no cgroup limits (memory, processes, CPU), no warm state: each session
  is a cold python3 that imports what it needs, and nothing around it (no API, files, records).
- **No sandbox**: the floor: a cold python3 with IPython and a pipe; what any isolation adds is
  measured against it.
- **What only pycell has here**, against all of them: sessions ready before they are asked for
  (a warm pool of zygote forks with the data stack imported), isolation and resource limits
  together (six namespaces, a seccomp filter, cgroup limits on memory, processes and CPU, quota'd
  tmpfs for `/mnt/data` and `/tmp`), a file store whose outputs carry their lineage, and the
  service around them: API keys with roles and projects, quotas, a hash-chained audit log,
  metering, signed evidence bundles, notebooks exported from sessions, MCP and the Azure
  dynamic-sessions API. What it lacks is above: Jupyter's protocol and ecosystem (widgets,
  stdin, debugger, other languages, a notebook UI), and gVisor's second kernel between the code
  and the host's."""


def method_text(results):
    charts = {p.get("scenario_chart_sha256") for p in results["peers"].values()}
    charts.discard(None)
    same_png = ("Every peer's PNG had the same SHA-256." if len(charts) == 1 else
                "The peers' PNGs differed (%d distinct SHA-256)." % len(charts))
    csv = results["csv"]
    fields = {"{rows}": "{:,}".format(csv["rows"]).replace(",", " "),
              "{mb}": "%.1f" % (csv["bytes"] / 1e6), "{sha}": csv["sha256"][:12],
              "{same_png}": same_png}
    text = PROSE_METHOD
    for field, value in fields.items():
        text = text.replace(field, value)
    return text


LIMITS = [
    "- The machine is shared with other builds and tests (load above); medians move with it. "
    "Read ratios, not absolute figures, and prefer a quiet-machine re-run.",
    "- gVisor runs on its default platform, ptrace (runsc 0.0~20221219, Debian 12's): every "
    "system call of the code is a ptrace stop. Its KVM platform could not be measured: /dev/kvm "
    "exists, but this machine is itself a Firecracker microVM, and `runsc --platform=kvm do "
    "python3 …` ran without any output for ten minutes until it was killed (not investigated "
    "further). The faster systrap platform is newer than this release. With KVM "
    "on bare metal gVisor's per-call cost would be lower; this run cannot say by how much.",
    "- The sandboxes' sessions are repl.py, not a service: they have no file API, so their "
    "\"upload\" is a write into a folder the sandbox sees and their \"download\" a read from it "
    "(gVisor: over the pipe). That favours them over the two servers.",
    "- pycell's sessions are limited to 1 CPU by their cgroup; the other peers may use both "
    "cores (pandas and matplotlib here are mostly single-threaded).",
    "- Every client is Python, so every round trip carries Python's client cost: `http.client` "
    "and the JSON of pycell's execution record, `jupyter_client`'s message handling, tornado's "
    "websocket. pycell's own C++ client (`bench/http_bench`, above) measures its trivial round "
    "trip at 1.1–1.3 ms.",
]


def unavailable_text(results):
    lines = []
    for key, why in results.get("unavailable", {}).items():
        lines.append(wrap("- `%s` was left out: %s." % (key, why)))
    return "\n".join(lines)


def docs_region(results):
    machine = results["machine"]
    args = results["args"]
    parts = [BEGIN, "", "# pycell and its peers, side by side: `bench/compare`", "",
             wrap("`bench/compare/run.py` runs the same workloads, in one go on one machine, "
                  "through pycell and through the peers Debian 12 offers: a Jupyter kernel "
                  "through `jupyter_client`, Jupyter Server's REST API and websocket, and a cold "
                  "python3 in gVisor (`runsc do`), in bubblewrap, and with no sandbox. It writes "
                  "this section and the chart, which pycell itself draws in a session of the "
                  "server the run started. As root, 13–17 minutes on this machine; options "
                  "and method in `bench/compare/README.md`:"), "",
             "```", "/usr/bin/python3 bench/compare/run.py --pycell build/pycell --write-docs",
             "```", "",
             "## Results (run of %s)" % results["started_at"], "",
             "The run recorded here:", "", "```", results["command"], "```", "",
             wrap("Machine: %d cores (%s%s), %.0f GiB, Linux %s, Debian %s, Python %s; %s. %s." % (
                 machine["nproc"], machine.get("cpu", "?"),
                 ", a VM" if machine.get("hypervisor") else "", machine["mem_total_gib"],
                 machine["kernel"], machine.get("debian", "?"), machine["python"],
                 versions(results), load_line(results).capitalize())),
             "",
             wrap("Medians of %d new sessions, %d scenarios and %d trivial cells per peer; "
                  "K = %d idle sessions weighed per peer. pycell: `%s`, warm pool of %d (the "
                  "configuration's default); every session limited to 1 CPU (`limits.cpus`), "
                  "the other peers are not. In brackets: the figure ÷ pycell's (warm pool) in "
                  "the same run." % (
                      args["reps"], args["scenario_reps"], args["cells"], args["idle_sessions"],
                      results.get("pycell_binary", "?"), args["pool"])),
             "",
             "![pycell and its peers](compare.png)", "",
             main_table(results), "",
             "What it says:", "", findings(results), "",
             "Cold starts inside the sandboxes, without a session around them:", "",
             cold_start_table(results), "",
             "Memory, in detail (MB = 10^6 bytes):", "",
             memory_table(results), "",
             "<details><summary>Every latency: n, median, p90, min, max (ms)</summary>", "",
             spread_table(results), "", "</details>", "",
             method_text(results), "", PROSE_PEERS, "",
             "### Limits of this comparison", ""] + [wrap(line) for line in LIMITS]
    missing = unavailable_text(results)
    if missing:
        parts += [missing]
    parts += ["", END]
    return "\n".join(parts) + "\n"


def write_docs_region(path, region):
    """Replaces the text between the markers (themselves included) with `region`, or appends
    it; reads the file right before writing so that nothing outside the region changes."""
    with open(path) as f:
        text = f.read()
    begin, end = text.find(BEGIN), text.find(END)
    if begin >= 0 and end > begin:
        text = text[:begin] + region.rstrip("\n") + text[end + len(END):]
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + region
    with open(path, "w") as f:
        f.write(text)
