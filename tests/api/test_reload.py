#!/usr/bin/python3
"""SIGHUP reloads the configuration (issue 6, "Running it for real"), black-box.

Usage:
  test_reload.py --pycell PATH [unittest arguments]

A server starts with a configuration file; the test writes a new version of the file and sends
SIGHUP, then checks that what can change live did (a pool's memory limit and ready target, a
price, a new diagnostic setting), that what cannot (server settings, the preloads) was kept and
reported, that the change is one config.change audit event naming every key, that new sessions get
the new limits while a session started before keeps its own, and that an invalid file changes
nothing and the server keeps serving.

Only the standard library.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None
RUNTIME_DIR = "/run/pycell-reload-tests"

CONFIG = """
[server]
max_connections = {connections}

[prices]
currency = "EUR"
price_per_session = {price}

[[pools]]
name = "default"
preload = [{preload}]
ready_sessions = {ready}

[pools.limits]
memory = "{memory}"
{extra}
"""


class TestReload(pycell_server.HttpAssertions, unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="pycell-reload-tests-")
        self.data = os.path.join(self.work, "data")
        os.makedirs(self.data)
        self.config = os.path.join(self.work, "pycell.toml")
        self.write(connections=512, price=0.0, preload='"numpy"', ready=1, memory="512m")
        self.server = pycell_server.ServeProcess(PYCELL, self.data, RUNTIME_DIR,
                                                 os.path.join(self.work, "server.log"))
        # --ready-sessions is not passed: the file's ready_sessions must be the one in force.
        self.server.start(extra_args=("--config", self.config), ready_sessions=None)
        self.admin = self.server.client()

    def tearDown(self):
        try:
            if self.server.proc is not None and self.server.proc.poll() is None:
                self.assertEqual(self.server.stop(timeout=60), 0, self.server.log_tail())
        finally:
            if os.environ.get("PYCELL_API_KEEP") is None:
                shutil.rmtree(self.work, ignore_errors=True)

    def write(self, extra="", **values):
        with open(self.config, "w") as f:
            f.write(CONFIG.format(extra=extra, **values))

    def live(self):
        reply = self.admin.get("/v1/config")
        self.assertEqual(reply.status, 200, reply)
        return reply.json()

    def config_changes(self):
        reply = self.admin.get("/v1/audit?action=config.change")
        self.assertEqual(reply.status, 200, reply)
        return reply.json()["data"]

    def hup_and_wait(self, changed, timeout=30):
        os.kill(self.server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = self.live()
            if changed(live):
                return live
            time.sleep(0.05)
        self.fail("the configuration did not change within %d s\n%s" %
                  (timeout, self.server.log_tail()))

    def test_live_changes_apply_and_the_rest_is_reported(self):
        before = self.admin.create_session()
        self.assertEqual(before.status, 201, before)
        self.assertEqual(before.json()["limits"]["memory_bytes"], 512 << 20)
        sink = os.path.join(self.work, "log", "audit.jsonl")
        self.write(connections=100, price=0.25, preload='"numpy", "pandas"', ready=2,
                   memory="256m", extra='\n[[diagnostic_settings]]\nname = "added"\n'
                   'categories = ["audit", "sessions"]\nsink = "file"\npath = "%s"\n' % sink)
        live = self.hup_and_wait(lambda c: c["prices"]["price_per_session"] == 0.25)
        pool = live["pools"][0]
        self.assertEqual(pool["limits"]["memory_bytes"], 256 << 20)
        self.assertEqual(pool["ready_sessions"], 2)
        self.assertEqual(pool["preload"], ["numpy"], "preloads need a new zygote: kept")
        self.assertEqual(live["server"]["max_connections"], 512, "needs a restart: kept")
        self.assertEqual(live["prices"]["currency"], "EUR")
        self.assertEqual([d["name"] for d in live["diagnostic_settings"]], ["added"])

        events = self.config_changes()
        self.assertEqual(len(events), 1, events)
        event = events[0]
        self.assertEqual(event["principal"], "system")
        applied = {item["key"]: item for item in event["detail"]["applied"]}
        restart = {item["key"]: item for item in event["detail"]["needs_restart"]}
        self.assertEqual(applied["pools[0].limits.memory_bytes"]["from"], 512 << 20)
        self.assertEqual(applied["pools[0].limits.memory_bytes"]["to"], 256 << 20)
        self.assertIn("prices.price_per_session", applied)
        self.assertIn("pools[0].ready_sessions", applied)
        self.assertIn("diagnostic_settings", applied)
        self.assertEqual(set(restart), {"server.max_connections", "pools[0].preload"})

        # New sessions get the new limits (the ready ones were replaced); the old one keeps its.
        after = self.admin.create_session()
        self.assertEqual(after.status, 201, after)
        self.assertEqual(after.json()["limits"]["memory_bytes"], 256 << 20)
        old = self.admin.get("/v1/sessions/" + before.json()["id"])
        self.assertEqual(old.json()["limits"]["memory_bytes"], 512 << 20)
        cell = self.admin.execute(after.json()["id"], "print(6 * 7)")
        self.assertEqual(cell.status, 200, cell)
        self.assertEqual(cell.json()["status"], "ok", cell)
        # The new diagnostic setting receives events from now on (the session's end here).
        self.assertEqual(self.admin.delete("/v1/sessions/" + after.json()["id"]).status, 200)
        deadline = time.monotonic() + 10
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(sink):
                with open(sink) as f:
                    lines = [json.loads(line) for line in f]
                if any(e.get("event") == "session.ended" for e in lines):
                    break
            time.sleep(0.05)
        self.assertTrue(any(e.get("event") == "session.ended" and
                            e["session_id"] == after.json()["id"] for e in lines), lines)
        self.assertTrue(any(e.get("category") == "audit" for e in lines), lines)
        # The pool settles at its new target.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pools = self.admin.get("/v1/pools").json()["data"]
            if pools[0]["ready"] == 2:
                break
            time.sleep(0.1)
        self.assertEqual(pools[0]["target_ready"], 2, pools)
        self.assertEqual(pools[0]["ready"], 2, pools)

    def test_invalid_file_changes_nothing(self):
        with open(self.config, "w") as f:
            f.write('[prices]\nprice_per_session = "free"\n')
        os.kill(self.server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "SIGHUP" not in self.server.log_tail(200):
            time.sleep(0.05)
        self.assertIn("price_per_session", self.server.log_tail(200))
        live = self.live()
        self.assertEqual(live["prices"]["price_per_session"], 0.0)
        self.assertEqual(live["pools"][0]["limits"]["memory_bytes"], 512 << 20)
        self.assertEqual(self.config_changes(), [])
        self.assertEqual(self.admin.get("/healthz").status, 200)

    def test_a_sink_that_cannot_start_refuses_the_whole_reload(self):
        self.write(connections=512, price=0.5, preload='"numpy"', ready=1, memory="512m",
                   extra='\n[[diagnostic_settings]]\nname = "bad"\ncategories = ["audit"]\n'
                   'sink = "file"\npath = "/proc/version/x.jsonl"\n')
        os.kill(self.server.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "/proc/version/x.jsonl" not in \
                self.server.log_tail(200):
            time.sleep(0.05)
        self.assertIn("/proc/version/x.jsonl", self.server.log_tail(200))
        self.assertEqual(self.live()["prices"]["price_per_session"], 0.0)
        self.assertEqual(self.config_changes(), [])

    def test_unchanged_file_records_nothing(self):
        os.kill(self.server.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(self.admin.get("/healthz").status, 200)
        self.assertEqual(self.config_changes(), [])


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
