"""What one tenant's load costs everyone else (issue 16), for one or two pycell binaries measured
in the same run, one after the other on fresh data dirs:

  flood   the server's RSS growth while three sessions at once each write 1.1 million empty
          `display` frames on their control socket (the frames are forged, so the fixed server
          ends each as a protocol violation; the old one kept them): target < 256 MB.
  spin    a new session's latency (POST /v1/sessions, then the cell `1`) on an idle server, then
          while N other sessions each spin a CPU in a background thread (2 cores here): p50 and
          the ratio busy/idle, target <= 10.

    /usr/bin/python3 bench/tenant_bench.py --pycell build/pycell [--baseline OLD_PYCELL]
        [--spinners 100] [--samples 15] [--json out.json]

Loopback only; every loop is bounded in count and time; the servers are stopped at the end.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import pycell_server  # noqa: E402

FLOOD = (
    "import os, struct\n"
    "b = b'{\"type\":\"display\",\"data\":{},\"metadata\":{}}'\n"
    "frame = struct.pack('>I', len(b)) + b\n"
    "chunk = frame * 10000\n"
    "try:\n"
    "    for _ in range(110):\n"
    "        os.write(3, chunk)\n"
    "except OSError:\n"
    "    pass\n"
)
SPIN = (
    "import threading\n"
    "def spin():\n"
    "    while True:\n"
    "        pass\n"
    "threading.Thread(target=spin, daemon=True).start()\n"
)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def start(pycell, label, config):
    folder = tempfile.mkdtemp(prefix="tenant-bench-%s-" % label)
    data = os.path.join(folder, "data")
    os.makedirs(data)
    config_path = os.path.join(folder, "pycell.toml")
    with open(config_path, "w") as f:
        f.write(config)
    server = pycell_server.ServeProcess(pycell, data, "/run/pycell-tenant-bench",
                                        os.path.join(folder, "server.log"))
    try:
        server.start(extra_args=("--config", config_path), ready_sessions=2)
    except RuntimeError as e:
        if "max_sessions_per_project: unknown key" not in str(e):
            raise
        # A binary from before the per-project share: it has none to lift.
        with open(config_path, "w") as f:
            f.write("".join(l for l in config.splitlines(True)
                            if not l.startswith("max_sessions_per_project")))
        server.start(extra_args=("--config", config_path), ready_sessions=2)
    return server, folder


def stop(server, folder):
    try:
        if server.proc and server.proc.poll() is None:
            server.stop(timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def flood(pycell, label):
    server, folder = start(pycell, label, "[engine]\nmax_sessions = 16\n")
    try:
        admin = server.client(server.admin_key)
        sessions = [pycell_server.expect(admin.create_session(), 201, "create")["id"]
                    for _ in range(3)]
        pid = server.proc.pid
        base = rss_bytes(pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], rss_bytes(pid))
                except OSError:
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sizes, statuses = [], []

        def run(sid):
            reply = admin.execute(sid, FLOOD, timeout_s=120, timeout=300)
            sizes.append(len(reply.body))
            statuses.append(reply.status)

        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=400)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        alive = server.proc.poll() is None
        return {"rss_base_mb": base / 1e6, "rss_peak_mb": peak[0] / 1e6,
                "rss_growth_mb": (peak[0] - base) / 1e6, "response_bytes_max": max(sizes or [0]),
                "statuses": statuses, "seconds": elapsed, "server_alive": alive}
    finally:
        stop(server, folder)


def new_session_ms(admin):
    t0 = time.monotonic()
    created = admin.create_session()
    if created.status != 201:
        raise RuntimeError("create: %s %s" % (created.status, created.body[:200]))
    sid = created.json()["id"]
    ran = admin.execute(sid, "1", timeout=120)
    elapsed = (time.monotonic() - t0) * 1000
    if ran.status != 200 or ran.json().get("status") != "ok":
        raise RuntimeError("cell: %s %s" % (ran.status, ran.body[:200]))
    admin.delete("/v1/sessions/" + sid)
    return elapsed


def spin(pycell, label, spinners, samples):
    total = spinners + 8
    server, folder = start(pycell, label,
                           "[engine]\nmax_sessions = %d\nmax_sessions_per_project = %d\n" %
                           (total, total))
    try:
        admin = server.client(server.admin_key)
        idle = []
        for _ in range(samples):
            idle.append(new_session_ms(admin))
            time.sleep(0.2)  # The warm pool refills between samples, as on a quiet server.
        busy_ids = []
        for _ in range(spinners):
            sid = pycell_server.expect(admin.create_session(), 201, "create spinner")["id"]
            pycell_server.expect(admin.execute(sid, SPIN), 200, "start spinning")
            busy_ids.append(sid)
        time.sleep(2)
        busy = []
        for _ in range(samples):
            busy.append(new_session_ms(admin))
            time.sleep(0.2)
        for sid in busy_ids:
            admin.delete("/v1/sessions/" + sid)
        idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy)
        return {"spinners": spinners, "idle_p50_ms": idle_p50, "busy_p50_ms": busy_p50,
                "busy_max_ms": max(busy), "ratio": busy_p50 / idle_p50}
    finally:
        stop(server, folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pycell", required=True)
    parser.add_argument("--baseline", help="another pycell binary, measured in the same run")
    parser.add_argument("--spinners", type=int, default=100)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--only", choices=["flood", "spin"])
    parser.add_argument("--json")
    args = parser.parse_args()
    binaries = [("new", args.pycell)] + ([("baseline", args.baseline)] if args.baseline else [])
    results = {}
    for label, pycell in binaries:
        results[label] = {}
        if args.only in (None, "flood"):
            results[label]["flood"] = flood(pycell, label)
            print(label, "flood", json.dumps(results[label]["flood"]), flush=True)
        if args.only in (None, "spin"):
            results[label]["spin"] = spin(pycell, label, args.spinners, args.samples)
            print(label, "spin", json.dumps(results[label]["spin"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
