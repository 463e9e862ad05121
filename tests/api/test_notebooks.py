#!/usr/bin/python3
"""Sessions as notebooks, replay and restore (issue 5, "Notebooks, replay, restore, fork"),
black-box against a real server.

Usage:
  test_notebooks.py --pycell PATH [unittest arguments]

One server; a session with an input file and agent/thread/run metadata runs cells that print,
show a DataFrame, draw a chart, write a file and raise. GET /v1/sessions/{id}/notebook and
`pycell notebook` must give a notebook that Debian's python3-nbformat validates (nbformat 4),
whose cells are the session's cells in order with their outputs, and whose metadata ties it to the
records: session, principal, agent/thread/run ids, each execution's id and timing, the input
files with their SHA-256. Replay of that (deterministic) session reports every cell equal; a
session using `random` and `time` reports those cells as different (with a note for the time);
a session restored from an ended one has its variables and files back. A fork
(POST /v1/sessions/{id}/fork) starts from the origin's variables and files, then the two are
independent; it is refused while a cell runs and ends with its origin.
"""

import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

try:
    import nbformat  # Debian's python3-nbformat (scripts/install-deps.sh, TEST_PACKAGES)
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("test_notebooks.py needs Debian's python3-nbformat: apt-get install python3-nbformat")

PYCELL = None
WORK_DIR = None
SERVER = None
ADMIN = None
RUN = None
RUNTIME_DIR = "/run/pycell-notebook-tests"
CSV = b"carrier,late\nacme,3\nzenith,5\n"
CELLS = [
    "import pandas as pd\ndf = pd.read_csv('/mnt/data/shipments.csv')\nprint(len(df))",
    "df",
    "import matplotlib.pyplot as plt\nplt.bar(df.carrier, df.late)\nplt.title('late')",
    "df.to_csv('/mnt/data/out.csv', index=False)\nimport sys\nprint('warn', file=sys.stderr)",
    "1 / 0",
]


class Workload:
    def __init__(self):
        upload = pycell_server.expect(ADMIN.upload_raw("shipments.csv", CSV), 201, "upload")
        self.file = upload
        self.metadata = {"agent_id": "agent-7", "thread_id": "thread-3", "run_id": "run-42"}
        session = pycell_server.expect(
            ADMIN.create_session(file_ids=[upload["id"]], metadata=self.metadata), 201,
            "POST /v1/sessions")
        self.session_id = session["id"]
        self.executions = [pycell_server.expect(ADMIN.execute(self.session_id, code), 200, code)
                           for code in CELLS]
        self.reply = ADMIN.get("/v1/sessions/%s/notebook" % self.session_id)
        self.notebook = pycell_server.expect(self.reply, 200, "GET notebook")


def setUpModule():
    global SERVER, ADMIN, WORK_DIR, RUN
    SERVER, WORK_DIR = pycell_server.ServeProcess.in_new_folder(PYCELL, "pycell-notebook-tests-", RUNTIME_DIR)

    def setup():
        global ADMIN
        ADMIN = SERVER.client()
        return Workload()

    RUN = pycell_server.start_for_module(SERVER, setup)


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


class TestNotebook(pycell_server.HttpAssertions, unittest.TestCase):
    def test_nbformat_validates_it(self):
        node = nbformat.reads(json.dumps(RUN.notebook), as_version=4)
        nbformat.validate(node)  # Raises on any schema error.
        self.assertEqual(RUN.notebook["nbformat"], 4)
        self.assertEqual(len(node.cells), len(CELLS))

    def test_cells_are_the_sessions_cells_in_order(self):
        cells = RUN.notebook["cells"]
        self.assertEqual([c["source"] for c in cells], CELLS)
        for cell, execution in zip(cells, RUN.executions):
            self.assertEqual(cell["id"], execution["id"])
            self.assertEqual(cell["execution_count"], execution["execution_count"])
            meta = cell["metadata"]["pycell"]
            self.assertEqual(meta["id"], execution["id"])
            self.assertEqual(meta["code_sha256"], execution["code_sha256"])
            self.assertEqual(meta["started_at"], execution["started_at"])

    def test_outputs(self):
        cells = RUN.notebook["cells"]
        self.assertEqual(cells[0]["outputs"],
                         [{"output_type": "stream", "name": "stdout", "text": "2\n"}])
        result = cells[1]["outputs"][0]
        self.assertEqual(result["output_type"], "execute_result")
        self.assertEqual(result["execution_count"], cells[1]["execution_count"])
        self.assertIn("text/html", result["data"])
        self.assertIn("zenith", result["data"]["text/plain"])
        images = [o for o in cells[2]["outputs"] if o["output_type"] == "display_data"]
        self.assertEqual(len(images), 1, cells[2]["outputs"])
        png = base64.b64decode(images[0]["data"]["image/png"])
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertEqual(cells[3]["outputs"],
                         [{"output_type": "stream", "name": "stderr", "text": "warn\n"}])
        artifacts = cells[3]["metadata"]["pycell"]["artifacts"]
        self.assertEqual([a["path"] for a in artifacts], ["/mnt/data/out.csv"])
        self.assertEqual(artifacts[0]["sha256"], RUN.executions[3]["artifacts"][0]["sha256"])
        error = cells[4]["outputs"][-1]
        self.assertEqual((error["output_type"], error["ename"]), ("error", "ZeroDivisionError"))
        self.assertTrue(error["traceback"])
        self.assertEqual(cells[4]["metadata"]["pycell"]["status"], "error")

    def test_provenance(self):
        meta = RUN.notebook["metadata"]["pycell"]
        self.assertEqual(meta["session_id"], RUN.session_id)
        self.assertEqual(meta["principal"], "admin")
        for key, value in RUN.metadata.items():
            self.assertEqual(meta[key], value)
        self.assertEqual(meta["input_files"],
                         [{"file_id": RUN.file["id"], "filename": "shipments.csv",
                           "sha256": pycell_server.sha256(CSV),
                           "placed_at": meta["input_files"][0]["placed_at"]}])
        self.assertEqual([e["id"] for e in meta["executions"]],
                         [e["id"] for e in RUN.executions])
        for entry, execution in zip(meta["executions"], RUN.executions):
            self.assertEqual(entry["started_at"], execution["started_at"])
            self.assertEqual(entry["duration_ms"], execution["duration_ms"])
        self.assertEqual(RUN.notebook["metadata"]["kernelspec"]["name"], "python3")

    def test_cli_writes_the_same_notebook(self):
        path = os.path.join(WORK_DIR, "s.ipynb")
        env_args = ("--url", SERVER.url(), "--key", SERVER.admin_key)
        code, out, err = pycell_server.run_pycell(
            PYCELL, ("notebook", RUN.session_id, *env_args), WORK_DIR)
        self.assertEqual(code, 0, err)
        from_stdout = json.loads(out)
        code, _, err = pycell_server.run_pycell(
            PYCELL, ("notebook", RUN.session_id, "--out", path, *env_args), WORK_DIR)
        self.assertEqual(code, 0, err)
        with open(path) as f:
            node = nbformat.read(f, as_version=4)
        nbformat.validate(node)
        for notebook in (from_stdout, json.loads(json.dumps(node))):
            self.assertEqual([c["id"] for c in notebook["cells"]],
                             [c["id"] for c in RUN.notebook["cells"]])

    def test_who_may_read_it(self):
        other = ADMIN.with_key(pycell_server.create_key(ADMIN, "someone-else", None, "user"))
        self.assertError(other.get("/v1/sessions/%s/notebook" % RUN.session_id), 404,
                         "not_found")
        auditor = ADMIN.with_key(pycell_server.create_key(ADMIN, "auditor-1", None, "auditor"))
        self.assertEqual(auditor.get("/v1/sessions/%s/notebook" % RUN.session_id).status, 200)
        self.assertError(ADMIN.get("/v1/sessions/sess_00000000000000000000000000/notebook"),
                         404, "not_found")

    def test_an_empty_session_is_an_empty_notebook(self):
        session = pycell_server.expect(ADMIN.create_session(), 201, "POST /v1/sessions")
        notebook = pycell_server.expect(
            ADMIN.get("/v1/sessions/%s/notebook" % session["id"]), 200, "notebook")
        nbformat.validate(nbformat.reads(json.dumps(notebook), as_version=4))
        self.assertEqual(notebook["cells"], [])
        ADMIN.delete("/v1/sessions/" + session["id"])


class TestReplay(pycell_server.HttpAssertions, unittest.TestCase):
    def replay(self, session_id, **body):
        return pycell_server.expect(
            ADMIN.post_json("/v1/sessions/%s/replay" % session_id, body, timeout=600), 200,
            "POST replay")

    def test_a_deterministic_session_replays_equal(self):
        report = self.replay(RUN.session_id)
        self.assertTrue(report["all_equal"], json.dumps(report, indent=1)[:3000])
        self.assertEqual([c["original_execution_id"] for c in report["cells"]],
                         [e["id"] for e in RUN.executions])
        for cell in report["cells"]:
            self.assertTrue(cell["equal"], cell)
            self.assertTrue(cell["replay_execution_id"].startswith("exec_"))
        # The replay ran in its own session, which has ended (keep was not asked for).
        replayed = pycell_server.expect(
            ADMIN.get("/v1/sessions/" + report["replay_session_id"]), 200, "GET replay session")
        self.assertEqual(replayed["status"], "ended")
        self.assertEqual(replayed["metadata"]["replay_of"], RUN.session_id)

    def test_random_and_time_differ(self):
        session = pycell_server.expect(ADMIN.create_session(), 201, "POST /v1/sessions")
        cells = ["x = 6 * 7\nprint(x)", "import random\nprint(random.random())",
                 "import time\nprint(time.time())"]
        for code in cells:
            pycell_server.expect(ADMIN.execute(session["id"], code), 200, code)
        report = self.replay(session["id"], keep=True)
        self.assertFalse(report["all_equal"])
        self.assertEqual([c["equal"] for c in report["cells"]], [True, False, False])
        self.assertEqual(report["cells"][1]["differences"][0]["what"], "stdout")
        self.assertTrue(any("time" in note for note in report["cells"][2]["notes"]),
                        report["cells"][2])
        kept = pycell_server.expect(ADMIN.get("/v1/sessions/" + report["replay_session_id"]),
                                    200, "GET")
        self.assertEqual(kept["status"], "active")
        # The kept replay session holds the replayed state.
        x = pycell_server.expect(ADMIN.execute(report["replay_session_id"], "x"), 200, "x")
        self.assertEqual(x["outputs"][0]["data"]["text/plain"], "42")
        code, out, _ = pycell_server.run_pycell(
            PYCELL, ("replay", session["id"], "--url", SERVER.url(), "--key", SERVER.admin_key),
            WORK_DIR, timeout=600)
        self.assertEqual(code, 1, out)
        self.assertIn("DIFFERS", out)
        code, out, _ = pycell_server.run_pycell(
            PYCELL, ("replay", RUN.session_id, "--url", SERVER.url(), "--key", SERVER.admin_key),
            WORK_DIR, timeout=600)
        self.assertEqual(code, 0, out)
        for sid in (session["id"], report["replay_session_id"]):
            ADMIN.delete("/v1/sessions/" + sid)

    def test_missing_input_file_is_refused(self):
        upload = pycell_server.expect(ADMIN.upload_raw("gone.txt", b"soon gone\n"), 201, "upload")
        session = pycell_server.expect(ADMIN.create_session(file_ids=[upload["id"]]), 201, "POST")
        pycell_server.expect(ADMIN.execute(session["id"], "print(1)"), 200, "cell")
        ADMIN.delete("/v1/sessions/" + session["id"])
        self.assertEqual(ADMIN.delete("/v1/files/" + upload["id"]).status, 200)
        reply = ADMIN.post_json("/v1/sessions/%s/replay" % session["id"], {})
        self.assertError(reply, 409, "conflict")
        self.assertIn(upload["id"], reply.json()["error"]["message"])


class TestRestore(pycell_server.HttpAssertions, unittest.TestCase):
    def test_restore_after_the_session_ended(self):
        upload = pycell_server.expect(ADMIN.upload_raw("in.csv", CSV), 201, "upload")
        session = pycell_server.expect(
            ADMIN.create_session(file_ids=[upload["id"]], metadata={"agent_id": "a1"}), 201,
            "POST /v1/sessions")
        for code in ("import pandas as pd\ndf = pd.read_csv('/mnt/data/in.csv')",
                     "total = int(df.late.sum())\nopen('/mnt/data/total.txt', 'w').write(str(total))",
                     "1 / 0"):
            pycell_server.expect(ADMIN.execute(session["id"], code), 200, code)
        self.assertEqual(ADMIN.delete("/v1/sessions/" + session["id"]).status, 200)
        gone = ADMIN.execute(session["id"], "total")
        self.assertEqual(gone.status, 410, gone)

        restored = pycell_server.expect(
            ADMIN.post_json("/v1/sessions", {"restore_from": session["id"]}, timeout=600), 201,
            "restore")
        self.assertNotEqual(restored["id"], session["id"])
        self.assertEqual(restored["status"], "active")
        self.assertEqual(restored["restored_from"], session["id"])
        self.assertEqual(restored["restored_cells"], 3)
        self.assertEqual(restored["restore_differences"], [])
        self.assertEqual(restored["metadata"]["restored_from"], session["id"])
        self.assertEqual(restored["metadata"]["agent_id"], "a1")
        cell = pycell_server.expect(
            ADMIN.execute(restored["id"], "print(total, len(df), open('/mnt/data/total.txt').read())"),
            200, "after restore")
        self.assertEqual(cell["stdout"], "8 2 8\n")
        ADMIN.delete("/v1/sessions/" + restored["id"])

    def test_restore_from_refuses_other_fields_and_unknown_ids(self):
        self.assertError(ADMIN.post_json("/v1/sessions", {"restore_from": "sess_x", "pool": "default"}),
                         400, "invalid_request")
        self.assertError(ADMIN.post_json("/v1/sessions",
                                         {"restore_from": "sess_00000000000000000000000000"}),
                         404, "not_found")


class TestFork(pycell_server.HttpAssertions, unittest.TestCase):
    def fork(self, session_id):
        return ADMIN.post_json("/v1/sessions/%s/fork" % session_id, {})

    def test_a_fork_is_a_copy_then_independent(self):
        upload = pycell_server.expect(ADMIN.upload_raw("in.csv", CSV), 201, "upload")
        origin = pycell_server.expect(
            ADMIN.create_session(file_ids=[upload["id"]], metadata={"agent_id": "a9"}), 201,
            "POST /v1/sessions")
        pycell_server.expect(ADMIN.execute(
            origin["id"], "import pandas as pd\ndf = pd.read_csv('/mnt/data/in.csv')\n"
                          "open('/mnt/data/note.txt', 'w').write('origin')"), 200, "cell")
        fork = pycell_server.expect(self.fork(origin["id"]), 201, "POST fork")
        self.assertNotEqual(fork["id"], origin["id"])
        self.assertEqual(fork["forked_from"], origin["id"])
        self.assertEqual(fork["status"], "active")
        self.assertEqual(fork["metadata"]["agent_id"], "a9")
        self.assertEqual(fork["limits"], origin["limits"])
        self.assertIsNone(origin.get("forked_from"))

        cell = pycell_server.expect(ADMIN.execute(
            fork["id"], "df['late'] = df.late * 10\nopen('/mnt/data/note.txt', 'w').write('fork')\n"
                        "print(int(df.late.sum()))"), 200, "fork cell")
        self.assertEqual(cell["stdout"], "80\n")
        self.assertEqual([f["path"] for f in cell["files"]], ["/mnt/data/note.txt"])
        back = pycell_server.expect(ADMIN.execute(
            origin["id"], "print(int(df.late.sum()), open('/mnt/data/note.txt').read())"),
            200, "origin cell")
        self.assertEqual(back["stdout"], "8 origin\n")
        # The fork's input is on record as its own: its outputs trace back to the upload.
        listed = pycell_server.expect(ADMIN.get("/v1/sessions/%s/files" % fork["id"]), 200, "ls")
        self.assertIn("in.csv", json.dumps(listed))
        events = pycell_server.expect(ADMIN.get("/v1/audit?action=session.fork"), 200, "audit")
        mine = [e for e in events["data"] if e["target"] == fork["id"]]
        self.assertEqual(len(mine), 1, events)
        self.assertEqual(mine[0]["detail"]["forked_from"], origin["id"])

        # Ending the origin ends the fork, which says why.
        self.assertEqual(ADMIN.delete("/v1/sessions/" + origin["id"]).status, 200)
        ended = pycell_server.expect(ADMIN.get("/v1/sessions/" + fork["id"]), 200, "GET fork")
        self.assertEqual(ended["status"], "ended")
        self.assertEqual(ended["end_reason"], "origin_ended")
        self.assertError(self.fork(origin["id"]), 410, "session_closed")
        gone = ADMIN.execute(fork["id"], "1")
        self.assertError(gone, 410, "session_killed")
        self.assertIn("origin", gone.json()["error"]["message"])

    def test_busy_unknown_and_bad_body(self):
        session = pycell_server.expect(ADMIN.create_session(), 201, "POST /v1/sessions")
        import threading
        slow = threading.Thread(target=ADMIN.execute, args=(session["id"], "import time\ntime.sleep(3)"))
        slow.start()
        import time
        time.sleep(1)
        self.assertError(self.fork(session["id"]), 409, "session_busy")
        slow.join()
        self.assertError(ADMIN.post_json("/v1/sessions/%s/fork" % session["id"], {"x": 1}),
                         400, "invalid_request")
        self.assertError(self.fork("sess_00000000000000000000000000"), 404, "not_found")
        ADMIN.delete("/v1/sessions/" + session["id"])

    def test_cli_forks(self):
        session = pycell_server.expect(ADMIN.create_session(), 201, "POST /v1/sessions")
        pycell_server.expect(ADMIN.execute(session["id"], "word = 'kept'"), 200, "cell")
        code, out, err = pycell_server.run_pycell(
            PYCELL, ("fork", session["id"], "--url", SERVER.url(), "--key", SERVER.admin_key),
            WORK_DIR)
        self.assertEqual(code, 0, err)
        fork_id = out.strip()
        self.assertTrue(fork_id.startswith("sess_"), out)
        cell = pycell_server.expect(ADMIN.execute(fork_id, "print(word)"), 200, "fork cell")
        self.assertEqual(cell["stdout"], "kept\n")
        code, _, err = pycell_server.run_pycell(
            PYCELL, ("fork", "sess_00000000000000000000000000", "--url", SERVER.url(), "--key",
                     SERVER.admin_key), WORK_DIR)
        self.assertNotEqual(code, 0)
        self.assertIn("not_found", err)
        ADMIN.delete("/v1/sessions/" + session["id"])


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
