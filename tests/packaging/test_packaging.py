"""Packaging: the systemd unit, the production configuration and `make install`.

Run as root: /usr/bin/python3 tests/packaging/test_packaging.py --pycell build/pycell

- `systemd-analyze verify` accepts packaging/pycell.service as installed (a copy whose ExecStart
  names the staged binary: verify checks that the program exists), without a single warning;
- the unit sets none of the options docs/production.md lists as breaking the sandbox, and that
  table names every one of them;
- `make install DESTDIR=<tmp>` puts every file in place with its mode, a second install keeps a
  changed /etc/pycell/pycell.toml, PREFIX moves the binary and the unit's ExecStart with it, and
  `make uninstall` keeps the changed configuration;
- `pycell config check` accepts packaging/pycell.toml;
- the installed binary serves with the production configuration adapted to temporary folders
  (only listen, data_dir, runtime_dir and the file sink's path changed): /readyz, one cell through
  the API, the audit file sink written, SIGTERM, exit 0.

Python's standard library only.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
UNIT_SOURCE = os.path.join(REPO, "packaging", "pycell.service")
CONFIG_SOURCE = os.path.join(REPO, "packaging", "pycell.toml")
PRODUCTION_DOC = os.path.join(REPO, "docs", "production.md")
RUNTIME_DIR = "/run/pycell-packaging-tests"
PYCELL = None  # From --pycell.

# Options that would break the sandbox (docs/production.md, "what the unit deliberately does not
# set"), each with the values that would: None is any value.
BREAKING = {
    "PrivateUsers": None,
    "RestrictNamespaces": None,
    "SystemCallFilter": None,
    "ProtectControlGroups": None,
    "ProtectKernelTunables": None,
    "ProtectKernelLogs": None,
    "ProtectProc": None,
    "ProcSubset": None,
    "ProtectHostname": None,
    "PrivateDevices": None,
    "MemoryDenyWriteExecute": None,
    "LockPersonality": None,
    "RestrictSUIDSGID": None,
    "PrivateNetwork": None,
    "DynamicUser": None,
    "User": None,
    "OOMScoreAdjust": None,
}
FALSE_VALUES = {"no", "false", "off", "0"}


def read_unit(path):
    """{section: [(key, value), ...]} of a unit file (comments and blank lines skipped)."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                sections.setdefault(current, [])
                continue
            key, _, value = line.partition("=")
            sections.setdefault(current, []).append((key.strip(), value.strip()))
    return sections


def unit_value(sections, key, section="Service"):
    values = [v for k, v in sections.get(section, []) if k == key]
    return values[-1] if values else None


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


def make(*args):
    """`make -C <repo> ...`; the completed process."""
    return run(["make", "--no-print-directory", "-C", REPO, *args])


class UnitTest(unittest.TestCase):
    def setUp(self):
        self.unit = read_unit(UNIT_SOURCE)

    def test_no_option_that_breaks_the_sandbox(self):
        with open(PRODUCTION_DOC) as f:
            doc = f.read()
        for section, pairs in self.unit.items():
            for key, value in pairs:
                if key in BREAKING and value.lower() not in FALSE_VALUES:
                    self.fail("[%s] %s=%s breaks the sandbox (docs/production.md)" %
                              (section, key, value))
        for key in BREAKING:
            self.assertTrue(re.search(r"^\|[^|\n]*`%s=" % key, doc, re.MULTILINE),
                            "docs/production.md's table of options not set lacks %s" % key)

    def test_umask_lets_sessions_read_their_root(self):
        umask = unit_value(self.unit, "UMask")
        self.assertIsNotNone(umask, "the unit must say UMask= (0022): sessions inherit it")
        self.assertEqual(int(umask, 8) & 0o055, 0,
                         "UMask=%s: sessions build their /etc and /mnt under it and must read "
                         "them as another uid" % umask)

    def test_service_essentials(self):
        self.assertEqual(unit_value(self.unit, "ExecStart"),
                         "/usr/local/bin/pycell serve --config /etc/pycell/pycell.toml")
        self.assertEqual(unit_value(self.unit, "ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(unit_value(self.unit, "Type"), "simple")  # No sd_notify in pycell.
        self.assertEqual(unit_value(self.unit, "StateDirectory"), "pycell")
        self.assertEqual(unit_value(self.unit, "RuntimeDirectory"), "pycell")
        self.assertEqual(unit_value(self.unit, "LogsDirectory"), "pycell")
        self.assertEqual(unit_value(self.unit, "KillMode"), "mixed")
        with open(CONFIG_SOURCE, "rb") as f:
            config = tomllib.load(f)
        grace = config.get("server", {}).get("shutdown_grace_s", 30)
        stop = unit_value(self.unit, "TimeoutStopSec")
        match = re.fullmatch(r"(\d+)s?", stop or "")
        self.assertTrue(match, "TimeoutStopSec=%r: want seconds" % stop)
        self.assertGreaterEqual(int(match.group(1)), grace + 10,
                                "TimeoutStopSec must outlast shutdown_grace_s (%d) and the "
                                "interrupt, end and flush after it" % grace)
        # The paths the unit makes writable are the ones the configuration uses.
        self.assertEqual(config["server"]["data_dir"], "/var/lib/pycell")
        self.assertEqual(config["engine"]["runtime_dir"], "/run/pycell")
        for setting in config.get("diagnostic_settings", []):
            if setting.get("sink") == "file":
                self.assertTrue(setting["path"].startswith("/var/log/pycell/"), setting)


class InstallTest(unittest.TestCase):
    """`make install` into a staging folder, then systemd-analyze and the installed binary."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="pycell-packaging-tests-")
        cls.destdir = os.path.join(cls.work, "root")
        cls.install = make("install", "DESTDIR=" + cls.destdir, "PYCELL_BINARY=" + PYCELL)
        if cls.install.returncode != 0:
            raise AssertionError("make install DESTDIR=%s failed (%d)\n%s%s" %
                                 (cls.destdir, cls.install.returncode, cls.install.stdout,
                                  cls.install.stderr))
        cls.binary = cls.staged("/usr/local/bin/pycell")
        cls.unit = cls.staged("/usr/local/lib/systemd/system/pycell.service")
        cls.config = cls.staged("/etc/pycell/pycell.toml")

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("PYCELL_PACKAGING_KEEP") is None:
            shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def staged(cls, path):
        return cls.destdir + path

    def assertMode(self, path, mode):
        self.assertTrue(os.path.exists(path), "make install did not write %s" % path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), mode,
                         "%s: mode %o, want %o" % (path, stat.S_IMODE(os.stat(path).st_mode), mode))

    def test_every_file_in_place(self):
        self.assertMode(self.binary, 0o755)
        self.assertTrue(filecmp_equal(self.binary, PYCELL), "the installed binary is not --pycell")
        self.assertMode(self.unit, 0o644)
        self.assertMode(os.path.dirname(self.config), 0o750)
        self.assertMode(self.config, 0o640)
        self.assertTrue(filecmp_equal(self.config, CONFIG_SOURCE))
        doc = self.staged("/usr/local/share/doc/pycell")
        for name in ("production.md", "configuration.md", "pycell.example.toml", "pycell.toml"):
            self.assertMode(os.path.join(doc, name), 0o644)
        # runner.py and the OpenAPI document are compiled in: nothing else to install.
        self.assertFalse(any(name.endswith((".py", ".json"))
                             for _, _, files in os.walk(self.destdir) for name in files))
        with open(self.unit) as f:
            installed = f.read()
        with open(UNIT_SOURCE) as f:
            self.assertEqual(installed, f.read(), "with the default PREFIX the unit is as written")

    def test_second_install_keeps_a_changed_configuration(self):
        destdir = os.path.join(self.work, "again")
        self.assertEqual(make("install", "DESTDIR=" + destdir, "PYCELL_BINARY=" + PYCELL)
                         .returncode, 0)
        config = destdir + "/etc/pycell/pycell.toml"
        with open(config, "a") as f:
            f.write("# the operator's change\n")
        with open(config, "rb") as f:
            changed = f.read()
        again = make("install", "DESTDIR=" + destdir, "PYCELL_BINARY=" + PYCELL)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("kept", again.stdout)
        with open(config, "rb") as f:
            self.assertEqual(f.read(), changed, "a second make install overwrote pycell.toml")
        gone = make("uninstall", "DESTDIR=" + destdir)
        self.assertEqual(gone.returncode, 0, gone.stderr)
        self.assertFalse(os.path.exists(destdir + "/usr/local/bin/pycell"))
        self.assertFalse(os.path.exists(destdir + "/usr/local/lib/systemd/system/pycell.service"))
        self.assertTrue(os.path.exists(config), "make uninstall removed a changed pycell.toml")

    def test_prefix_moves_binary_and_exec_start(self):
        destdir = os.path.join(self.work, "usr-prefix")
        done = make("install", "DESTDIR=" + destdir, "PREFIX=/usr", "PYCELL_BINARY=" + PYCELL)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.access(destdir + "/usr/bin/pycell", os.X_OK))
        unit = read_unit(destdir + "/usr/lib/systemd/system/pycell.service")
        self.assertEqual(unit_value(unit, "ExecStart"),
                         "/usr/bin/pycell serve --config /etc/pycell/pycell.toml")

    def test_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
        if not os.access(analyze, os.X_OK):
            self.fail("systemd-analyze is missing: install the Debian package `systemd` "
                      "(apt-get install systemd; scripts/install-deps.sh installs it)")
        # verify checks that ExecStart's program exists: a copy of the installed unit that names
        # the staged binary and documentation, under the same file name.
        folder = os.path.join(self.work, "verify")
        os.makedirs(folder, exist_ok=True)
        with open(self.unit) as f:
            text = f.read()
        text = text.replace("/usr/local/bin/pycell", self.binary)
        text = text.replace("/usr/local/share/doc/pycell", self.staged("/usr/local/share/doc/pycell"))
        copy = os.path.join(folder, "pycell.service")
        with open(copy, "w") as f:
            f.write(text)
        verified = run([analyze, "verify", copy])
        output = (verified.stdout + verified.stderr).strip()
        self.assertEqual(verified.returncode, 0, output)
        # Unknown keys and bad values are only warnings (exit 0): none may be printed.
        self.assertEqual(output, "", "systemd-analyze verify warned about the unit:\n" + output)

    def test_config_check_accepts_the_production_configuration(self):
        for path in (CONFIG_SOURCE, self.config):
            checked = run([self.binary, "config", "check", path])
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
            self.assertIn("valid", checked.stdout)

    def test_installed_binary_serves_with_the_production_configuration(self):
        folder = os.path.join(self.work, "serve")
        data_dir, log_dir = os.path.join(folder, "data"), os.path.join(folder, "log")
        os.makedirs(data_dir)
        with open(self.config) as f:
            text = f.read()
        audit_path = os.path.join(log_dir, "audit.jsonl")
        replacements = [('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"'),
                        ('data_dir = "/var/lib/pycell"', 'data_dir = "%s"' % data_dir),
                        ('runtime_dir = "/run/pycell"', 'runtime_dir = "%s"' % RUNTIME_DIR),
                        ('path = "/var/log/pycell/audit.jsonl"', 'path = "%s"' % audit_path)]
        for old, new in replacements:
            self.assertEqual(text.count(old), 1, "packaging/pycell.toml no longer says %s" % old)
            text = text.replace(old, new)
        adapted = os.path.join(folder, "pycell.toml")
        with open(adapted, "w") as f:
            f.write(text)
        with open(self.config, "rb") as f:
            installed = tomllib.load(f)
        self.assertEqual(without_paths(tomllib.loads(text)), without_paths(installed),
                         "the adapted file must differ only in its addresses and paths")

        server = pycell_server.ServeProcess(self.binary, data_dir, RUNTIME_DIR,
                                            os.path.join(folder, "server.log"))
        try:
            server.start(ready_sessions=None, extra_args=("--config", adapted))
            client = server.client()
            session = client.create_session(metadata={"agent_id": "packaging-test"})
            self.assertIn(session.status, (200, 201), session)
            session_id = session.json()["id"]
            reply = client.execute(session_id, "import numpy\nprint(int(numpy.arange(5).sum()))")
            self.assertEqual(reply.status, 200, reply)
            record = reply.json()
            self.assertEqual(record["status"], "ok", record)
            self.assertEqual(record.get("stdout"), "10\n", record)
            self.assertEqual(client.delete("/v1/sessions/" + session_id).status, 200)
            rc = server.stop(timeout=90)
            self.assertEqual(rc, 0, "after SIGTERM the server exited %s\n%s" %
                             (rc, server.log_tail()))
            self.assertIn(pycell_server.STOPPED_LINE, server.stdout_lines)
        except BaseException:
            if server.proc is not None:
                print(server.log_tail(60), file=sys.stderr)
                if server.proc.poll() is None:
                    server.kill()
            raise
        # The production file sink got the audit events of what was just done.
        self.assertTrue(os.path.exists(audit_path), "no %s from the file diagnostic setting" %
                        audit_path)
        with open(audit_path) as f:
            events = f.read()
        self.assertIn('"category":"audit"', events.replace(" ", ""))
        self.assertIn(session_id, events)


def without_paths(config):
    """The configuration without the keys the serving test changes."""
    config = dict(config)
    config["server"] = {k: v for k, v in config["server"].items() if k not in ("listen", "data_dir")}
    config["engine"] = {k: v for k, v in config["engine"].items() if k != "runtime_dir"}
    config["diagnostic_settings"] = [{k: v for k, v in s.items() if k != "path"}
                                     for s in config.get("diagnostic_settings", [])]
    return config


def filecmp_equal(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
