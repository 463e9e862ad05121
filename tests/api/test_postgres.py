#!/usr/bin/python3
"""pycell serve on PostgreSQL (issue 18, the store), black-box.

Usage:
  test_postgres.py --pycell PATH [unittest arguments]

The test starts its own PostgreSQL (Debian's initdb and pg_ctl, on a free loopback port, in a
temporary folder), then:
- `pycell serve` with `[store] url` refuses to start on an empty database and says to run
  `pycell migrate`;
- `pycell migrate --store URL` makes the schema, and a second run changes nothing;
- the server then runs the ordinary work on it: a file uploaded, a session made with it, cells
  that keep their state, the file a cell wrote, the audit log and the usage report;
- the records are in PostgreSQL (read back with psql), the configuration views and `pycell show`
  say the backend and never the URL;
- after a restart the session is recorded as ended by the restart and the files are still there.

Only the standard library, and Debian's PostgreSQL binaries.
"""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None
RUNTIME_DIR = "/run/pycell-postgres-tests"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throwaway PostgreSQL server: trust authentication on 127.0.0.1, user `pycell`."""

    def __init__(self, folder):
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise RuntimeError("PostgreSQL's binaries are missing (/usr/lib/postgresql/*/bin); "
                               "scripts/install-deps.sh installs the postgresql package")
        self.bin = bindirs[-1]
        self.folder = folder
        self.port = None
        # The server refuses to run as root: as the postgres user when there is one.
        self.run_as = []
        if os.geteuid() == 0:
            user = "postgres"
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                user, entry = "nobody", pwd.getpwnam("nobody")
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            self.run_as = ["runuser", "-u", user, "--"]

    def _run(self, args):
        proc = subprocess.run(self.run_as + args, capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError("%s failed:\n%s%s" % (args[0], proc.stdout.decode(),
                                                     proc.stderr.decode()))

    def start(self):
        data = os.path.join(self.folder, "data")
        self._run([self.bin + "/initdb", "-D", data, "-U", "pycell", "--auth=trust", "-E",
                   "UTF8", "--no-sync"])
        for _ in range(3):
            self.port = free_port()
            try:
                self._run([self.bin + "/pg_ctl", "-D", data, "-l",
                           os.path.join(self.folder, "server.log"), "-w", "-t", "60", "-o",
                           "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s"
                           % (self.port, self.folder), "start"])
                break
            except RuntimeError:
                self.port = None
        if self.port is None:
            raise RuntimeError("pg_ctl start failed three times")
        self.sql("postgres", "CREATE DATABASE pycell")

    def stop(self):
        if self.port is not None:
            subprocess.run(self.run_as + [self.bin + "/pg_ctl", "-D",
                                          os.path.join(self.folder, "data"), "-m", "fast", "-w",
                                          "stop"], capture_output=True, timeout=120)
            self.port = None

    def url(self, database="pycell"):
        return "postgresql://pycell@127.0.0.1:%d/%s" % (self.port, database)

    def sql(self, database, statement):
        """The rows psql prints for `statement` (unaligned, tuples only)."""
        proc = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                               self.url(database), "-c", statement],
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError("psql %r: %s" % (statement, proc.stderr.decode()))
        return proc.stdout.decode().strip()


WORK = None
PG = None
SERVER = None
CONFIG_PATH = None


def setUpModule():
    global WORK, PG, SERVER, CONFIG_PATH
    WORK = tempfile.mkdtemp(prefix="pycell-postgres-")
    os.chmod(WORK, 0o755)
    pg_folder = os.path.join(WORK, "pg")
    os.makedirs(pg_folder)
    PG = Postgres(pg_folder)
    PG.start()
    CONFIG_PATH = os.path.join(WORK, "pycell.toml")
    with open(CONFIG_PATH, "w") as f:
        f.write('[store]\nurl = "%s"\n' % PG.url())
    data_dir = os.path.join(WORK, "data")
    os.makedirs(data_dir)
    SERVER = pycell_server.ServeProcess(PYCELL, data_dir, RUNTIME_DIR,
                                        os.path.join(WORK, "server.log"))


def tearDownModule():
    try:
        if SERVER is not None and SERVER.proc is not None and SERVER.proc.poll() is None:
            SERVER.kill()
    finally:
        if PG is not None:
            PG.stop()
        if WORK and os.environ.get("PYCELL_API_KEEP") is None:
            shutil.rmtree(WORK, ignore_errors=True)


class TestServeOnPostgres(unittest.TestCase):
    def test_the_whole_path(self):
        # An empty database: the server does not migrate it itself (many nodes would race), it
        # says what to run.
        with self.assertRaises(RuntimeError) as refused:
            SERVER.start(extra_args=("--config", CONFIG_PATH), listen_timeout=30)
        self.assertIn("pycell migrate", refused.exception.args[0] + SERVER.log_tail())
        SERVER.proc.wait(timeout=30)

        code, out, err = pycell_server.run_pycell(PYCELL, ["migrate", "--store", PG.url()], WORK)
        self.assertEqual(code, 0, out + err)
        self.assertIn("schema version", out)
        code, again, err = pycell_server.run_pycell(PYCELL, ["migrate", "--store", PG.url()], WORK)
        self.assertEqual(code, 0, again + err)
        self.assertEqual(again, out)  # Nothing more to apply.

        pycell_server.start_for_module(SERVER, lambda: None,
                                       extra_args=("--config", CONFIG_PATH))
        admin = pycell_server.Client(SERVER.host, SERVER.port, SERVER.admin_key)

        uploaded = pycell_server.expect(admin.upload_raw("sales.csv", b"region,amount\nn,3\ns,4\n"),
                                        201, "upload")
        session = pycell_server.expect(
            admin.post_json("/v1/sessions", {"file_ids": [uploaded["id"]]}), 201, "new session")
        sid = session["id"]
        ran = pycell_server.expect(admin.post_json(
            "/v1/sessions/%s/executions" % sid,
            {"code": "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\n"
                     "df.assign(double=df.amount * 2).to_csv('/mnt/data/out.csv')\n"
                     "int(df.amount.sum())"}), 200, "cell")
        self.assertEqual(ran["status"], "ok", ran)
        self.assertEqual(ran["outputs"][-1]["data"]["text/plain"], "7")
        outputs = [f for f in ran["artifacts"] if f["filename"] == "out.csv"]
        self.assertEqual(len(outputs), 1, ran["artifacts"])
        again = pycell_server.expect(admin.post_json(
            "/v1/sessions/%s/executions" % sid, {"code": "len(df)"}), 200, "second cell")
        self.assertEqual(again["outputs"][-1]["data"]["text/plain"], "2")  # State kept.

        lineage = pycell_server.expect(admin.get("/v1/files/%s/lineage" % outputs[0]["id"]), 200,
                                       "lineage")
        self.assertEqual(lineage["produced_by"]["execution"]["id"], ran["id"])
        self.assertEqual([i["file_id"] for i in lineage["produced_by"]["inputs"]],
                         [uploaded["id"]])
        audit = pycell_server.expect(admin.get("/v1/audit?limit=500"), 200, "audit")
        actions = [e["action"] for e in audit["data"]]
        for action in ("file.upload", "session.create", "execution.run"):
            self.assertIn(action, actions)
        usage = pycell_server.expect(admin.get("/v1/usage"), 200, "usage")
        self.assertGreaterEqual(usage["total"]["sessions"], 1)

        # The records are PostgreSQL's, and the chain is linked there.
        self.assertEqual(PG.sql("pycell", "SELECT status FROM sessions WHERE id = '%s'" % sid),
                         "active")
        self.assertEqual(PG.sql("pycell", "SELECT count(*) FROM executions WHERE session_id = "
                                          "'%s'" % sid), "2")
        # Nothing shows the URL: the configuration and the service say only the backend.
        config = pycell_server.expect(admin.get("/v1/config"), 200, "config")
        self.assertEqual(config["store"], {"backend": "postgresql"})
        service = pycell_server.expect(admin.get("/v1/service"), 200, "service")
        self.assertEqual(service["store"]["backend"], "postgresql")
        self.assertNotIn(str(PG.port), json.dumps(config) + json.dumps(service["store"]))

        # A restart: the session died with the old process and is recorded so; files remain.
        self.assertEqual(SERVER.stop(timeout=60), 0, SERVER.log_tail())
        pycell_server.start_for_module(SERVER, lambda: None,
                                       extra_args=("--config", CONFIG_PATH))
        admin = pycell_server.Client(SERVER.host, SERVER.port, SERVER.admin_key)
        ended = pycell_server.expect(admin.get("/v1/sessions/" + sid), 200, "session after restart")
        self.assertEqual(ended["status"], "ended")
        files = pycell_server.expect(admin.get("/v1/files"), 200, "files after restart")
        self.assertEqual({uploaded["id"], outputs[0]["id"]} - {f["id"] for f in files["data"]},
                         set())
        content = admin.get("/v1/files/%s/content" % outputs[0]["id"])
        self.assertEqual(content.status, 200)
        self.assertIn(b"double", content.body)
        self.assertEqual(SERVER.stop(timeout=60), 0, SERVER.log_tail())


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
