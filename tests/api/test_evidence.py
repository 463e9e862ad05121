#!/usr/bin/python3
"""Signed evidence bundles (issue 6, "Evidence bundles"; docs/evidence.md), black-box.

Usage:
  test_evidence.py --pycell PATH [unittest arguments, e.g. -v or -k Tamper]

One server runs for the module (tests/pycell_server.py). A user of the default project runs a
small workload — uploads a CSV, opens a session with it, runs two cells that write a file — while
a user of another project uploads a file (so a project-scoped auditor's bundle has events it may
not see). The tests then export bundles with `pycell evidence export` and over GET /v1/evidence,
verify them offline with `pycell evidence verify`, and tamper with them: one byte changed in
each member (repacked with Python's tarfile), another Ed25519 key (`openssl genpkey`) given as
--pubkey. They check who may export (admin, auditor; not user or operator), that an auditor gets
no file contents, that exporting is audited, and that the signing key survives a restart.

Standard library and the openssl command only.
"""

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None
SERVER = None
ADMIN = None
RUN = None  # The Workload.

RUNTIME_DIR = "/run/pycell-evidence-tests"
CSV = b"region,amount\nnorth,10\nsouth,20\neast,5\n"
CELL_1 = ("import csv\nrows = list(csv.reader(open('/mnt/data/sales.csv')))[1:]\n"
          "open('/mnt/data/summary.txt', 'w').write('total %d\\n' % sum(int(r[1]) for r in rows))\n"
          "len(rows)")
CELL_2 = "open('/mnt/data/summary.txt', 'a').write('checked\\n')\nopen('/mnt/data/summary.txt').read()"
MEMBERS = {"config.json", "audit.json", "executions.json", "lineage.json", "files.json",
           "usage.json", "metrics.txt", "public_key.pem", "manifest.json", "manifest.sig"}


def run_cli(*args, timeout=180):
    return pycell_server.run_pycell(PYCELL, args, WORK_DIR, timeout)


expect = pycell_server.expect


def make_key(principal, project, role):
    return pycell_server.create_key(ADMIN, principal, project, role)


def path(name):
    return os.path.join(WORK_DIR, name)


def read_members(bundle):
    """{name: bytes} of a bundle, in archive order (dicts keep it)."""
    with tarfile.open(bundle, "r:gz") as tar:
        members = {}
        for info in tar.getmembers():
            assert info.isfile(), info.name
            members[info.name] = tar.extractfile(info).read()
        return members


def repack(members, out):
    """A gzip'd tar of {name: bytes}, as the server writes one (pax)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    with open(out, "wb") as f:
        f.write(gzip.compress(raw.getvalue()))


def export_cli(key, out, *args):
    return run_cli("evidence", "export", "--url", SERVER.url(), "--key", key, "--out", out, *args)


def verify_cli(bundle, *args):
    return run_cli("evidence", "verify", bundle, *args)


class Workload:
    def __init__(self):
        self.user_key = make_key("evidence-user", "default", "user")
        self.user = ADMIN.with_key(self.user_key)
        self.auditor_key = make_key("evidence-auditor", "default", "auditor")
        self.operator_key = make_key("evidence-operator", "default", "operator")
        other = "evidence-other-" + os.urandom(3).hex()
        expect(ADMIN.post_json("/v1/projects", {"name": other}), 201, "POST /v1/projects")
        self.other_user = ADMIN.with_key(make_key("evidence-other-user", other, "user"))

        self.csv = expect(self.user.upload_raw("sales.csv", CSV), 201, "upload sales.csv")
        self.session = expect(self.user.create_session(file_ids=[self.csv["id"]]), 201,
                              "POST /v1/sessions")
        sid = self.session["id"]
        self.cell_1 = expect(self.user.execute(sid, CELL_1), 200, "cell 1")
        assert self.cell_1["status"] == "ok", self.cell_1
        # Another project's event in the middle of the session's.
        self.other_file = expect(self.other_user.upload_raw("other.txt", b"not yours\n"), 201,
                                 "upload in the other project")
        self.cell_2 = expect(self.user.execute(sid, CELL_2), 200, "cell 2")
        assert self.cell_2["status"] == "ok", self.cell_2
        self.ended = expect(self.user.delete("/v1/sessions/" + sid), 200, "DELETE the session")
        # A session of the other project, after the first one ended.
        self.other_session = expect(self.other_user.create_session(), 201,
                                    "POST /v1/sessions in the other project")
        expect(self.other_user.delete("/v1/sessions/" + self.other_session["id"]), 200,
               "DELETE the other project's session")
        self.outputs = [f for f in ADMIN.all_files("&session_id=" + sid)
                        if f["purpose"] == "output"]
        assert self.outputs, "the cells wrote no output file"

        # The admin's bundle, with file contents, through the CLI.
        self.bundle = path("admin.tar.gz")
        code, out, err = export_cli(ADMIN.key, self.bundle, "--session", sid, "--with-files")
        self.export_result = (code, out, err)
        self.public_key = expect(ADMIN.get("/v1/evidence/public-key"), 200,
                                 "GET /v1/evidence/public-key")
        self.public_key_file = path("server.pub")
        with open(self.public_key_file, "w") as f:
            f.write(self.public_key["pem"])
        # Another Ed25519 key, made by OpenSSL's command line.
        self.other_key_file = path("other.key")
        self.other_pub_file = path("other.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                        self.other_key_file], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", self.other_key_file, "-pubout", "-out",
                        self.other_pub_file], check=True, capture_output=True)


def setUpModule():
    global SERVER, ADMIN, WORK_DIR, RUN
    WORK_DIR = tempfile.mkdtemp(prefix="pycell-evidence-tests-")
    data_dir = path("data")
    os.makedirs(data_dir)
    SERVER = pycell_server.ServeProcess(PYCELL, data_dir, RUNTIME_DIR, path("server.log"))

    def setup():
        global ADMIN
        ADMIN = SERVER.client()
        return Workload()

    RUN = pycell_server.start_for_module(SERVER, setup)


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


class EvidenceCase(pycell_server.HttpAssertions, unittest.TestCase):
    def assertVerifies(self, bundle, *args):
        code, out, err = verify_cli(bundle, *args)
        self.assertEqual(code, 0, "verify %s %s: exit %d\n%s%s" % (bundle, args, code, out, err))
        self.assertIn("VALID", out)
        return out

    def assertInvalid(self, bundle, naming, *args):
        code, out, err = verify_cli(bundle, *args)
        self.assertEqual(code, 1, "verify %s %s: want exit 1, got %d\n%s%s" %
                         (bundle, args, code, out, err))
        self.assertIn("INVALID", out)
        fails = [line for line in out.splitlines() if line.startswith("FAIL")]
        self.assertTrue(any(naming in line for line in fails),
                        "no FAIL line names %s:\n%s" % (naming, out))
        return out


# --- a bundle, and what is in it ---------------------------------------------------------------


class TestExport(EvidenceCase):
    def test_cli_export_succeeds_and_verifies(self):
        code, out, err = RUN.export_result
        self.assertEqual(code, 0, "export: exit %d\n%s%s\n%s" % (code, out, err,
                                                                  SERVER.log_tail()))
        self.assertIn(RUN.public_key["sha256"], out)
        out = self.assertVerifies(RUN.bundle)
        self.assertIn("self-asserted", out)
        self.assertIn(RUN.public_key["sha256"], out)
        for line in ("OK    signature:", "OK    members:", "OK    files:", "OK    audit:"):
            self.assertIn(line, out)

    def test_json_result(self):
        code, out, err = verify_cli(RUN.bundle, "--json")
        self.assertEqual(code, 0, out + err)
        result = json.loads(out)
        self.assertEqual(result["object"], "evidence_verification")
        self.assertTrue(result["valid"])
        self.assertEqual(result["problems"], [])
        self.assertEqual(result["fingerprint"], RUN.public_key["sha256"])
        self.assertEqual(result["key"], "self_asserted")

    def test_members(self):
        members = read_members(RUN.bundle)
        csv_sha = hashlib.sha256(CSV).hexdigest()
        files = {name for name in members if name.startswith("files/")}
        self.assertEqual(set(members) - files, MEMBERS)
        self.assertIn("files/" + csv_sha, files)
        self.assertEqual(members["files/" + csv_sha], CSV)
        for name in files:
            self.assertEqual(hashlib.sha256(members[name]).hexdigest(), name[len("files/"):])

        manifest = json.loads(members["manifest.json"])
        listed = {m["name"]: m for m in manifest["members"]}
        self.assertEqual(set(listed), set(members) - {"manifest.json", "manifest.sig"})
        for name, m in listed.items():
            self.assertEqual(m["bytes"], len(members[name]), name)
            self.assertEqual(m["sha256"], hashlib.sha256(members[name]).hexdigest(), name)
        self.assertEqual(manifest["signer"]["public_key_sha256"], RUN.public_key["sha256"])
        self.assertEqual(manifest["scope"]["session_id"], RUN.session["id"])
        self.assertEqual(manifest["exported_by"]["role"], "admin")
        self.assertTrue(manifest["with_files"])
        self.assertTrue(pycell_server.RFC3339_RE.match(manifest["created_at"]), manifest)
        self.assertEqual(members["public_key.pem"].decode(), RUN.public_key["pem"])

        executions = json.loads(members["executions.json"])
        codes = [e["code"] for e in executions["executions"]]
        self.assertEqual(codes, [CELL_1, CELL_2])
        self.assertEqual([s["id"] for s in executions["sessions"]], [RUN.session["id"]])

        audit = json.loads(members["audit.json"])
        actions = [(e.get("action"), e.get("target")) for e in audit["events"]]
        self.assertIn(("session.create", RUN.session["id"]), actions)
        self.assertIn(("session.end", RUN.session["id"]), actions)
        self.assertEqual(audit["redacted"], 0, "an admin sees every project")
        seqs = [e["seq"] for e in audit["events"]]
        self.assertEqual(seqs, list(range(audit["first_seq"], audit["last_seq"] + 1)))

        file_list = json.loads(members["files.json"])["data"]
        by_id = {f["id"]: f for f in file_list}
        self.assertIn(RUN.csv["id"], by_id)
        self.assertEqual(by_id[RUN.csv["id"]]["sha256"], csv_sha)
        self.assertTrue(by_id[RUN.csv["id"]]["content_included"])
        for output in RUN.outputs:
            self.assertIn(output["id"], by_id)
            self.assertEqual(by_id[output["id"]]["purpose"], "output")
        lineage = json.loads(members["lineage.json"])["data"]
        self.assertEqual({l["file"]["id"] for l in lineage}, {o["id"] for o in RUN.outputs})
        self.assertIn("pycell_", members["metrics.txt"].decode())
        self.assertEqual(json.loads(members["config.json"])["object"], "config")

    def test_audit_segment_matches_the_live_chain(self):
        members = read_members(RUN.bundle)
        audit = json.loads(members["audit.json"])
        live = expect(ADMIN.get("/v1/audit?after_seq=%d&limit=%d" %
                                (audit["first_seq"] - 1,
                                 audit["last_seq"] - audit["first_seq"] + 1)),
                      200, "GET /v1/audit")["data"]
        self.assertEqual([e["hash"] for e in live], [e["hash"] for e in audit["events"]])

    def test_period_export(self):
        created = RUN.session["created_at"]
        ended = datetime.datetime.fromisoformat(RUN.ended["ended_at"].replace("Z", "+00:00"))
        out = path("period.tar.gz")
        # The period [created, ended + 1 s).
        end = (ended + datetime.timedelta(seconds=1)).isoformat()
        code, stdout, err = export_cli(ADMIN.key, out, "--from", created, "--to", end)
        self.assertEqual(code, 0, stdout + err)
        self.assertVerifies(out)
        members = read_members(out)
        manifest = json.loads(members["manifest.json"])
        self.assertIsNone(manifest["scope"]["session_id"])
        self.assertFalse(manifest["with_files"])
        self.assertFalse([n for n in members if n.startswith("files/")])
        sessions = json.loads(members["executions.json"])["sessions"]
        self.assertIn(RUN.session["id"], [s["id"] for s in sessions])

    def test_exporting_is_audited(self):
        reply = ADMIN.get("/v1/evidence?session=" + RUN.session["id"])
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.header("content-type"), "application/gzip")
        manifest_sha = reply.header("x-evidence-manifest-sha256")
        with tarfile.open(fileobj=io.BytesIO(reply.body), mode="r:gz") as tar:
            manifest = tar.extractfile("manifest.json").read()
        self.assertEqual(hashlib.sha256(manifest).hexdigest(), manifest_sha)
        events = expect(ADMIN.get("/v1/audit?action=evidence.export&limit=1000"), 200,
                        "GET /v1/audit")["data"]
        mine = [e for e in events if e["detail"].get("manifest_sha256") == manifest_sha]
        self.assertEqual(len(mine), 1, events)
        self.assertEqual(mine[0]["target"], RUN.session["id"])
        self.assertEqual(mine[0]["detail"]["bytes"], len(reply.body))
        self.assertEqual(mine[0]["detail"]["signer_sha256"], RUN.public_key["sha256"])


# --- tampering and keys ------------------------------------------------------------------------


class TestTamper(EvidenceCase):
    def test_one_byte_changed_in_each_member_fails_naming_it(self):
        members = read_members(RUN.bundle)
        repack(members, path("repacked.tar.gz"))
        self.assertVerifies(path("repacked.tar.gz"))  # Repacking alone changes nothing.
        for name in members:
            with self.subTest(member=name):
                changed = dict(members)
                data = bytearray(changed[name])
                data[len(data) // 2] ^= 0x01
                changed[name] = bytes(data)
                bundle = path("changed.tar.gz")
                repack(changed, bundle)
                self.assertInvalid(bundle, name)

    def test_extra_and_missing_members_fail(self):
        members = read_members(RUN.bundle)
        extra = dict(members)
        extra["notes.txt"] = b"added after signing\n"
        repack(extra, path("extra.tar.gz"))
        self.assertInvalid(path("extra.tar.gz"), "notes.txt")
        missing = {k: v for k, v in members.items() if k != "lineage.json"}
        repack(missing, path("missing.tar.gz"))
        self.assertInvalid(path("missing.tar.gz"), "lineage.json")

    def test_hostile_names_are_refused(self):
        members = read_members(RUN.bundle)
        hostile = dict(members)
        hostile["../escape.txt"] = b"x"
        repack(hostile, path("hostile.tar.gz"))
        self.assertInvalid(path("hostile.tar.gz"), "../escape.txt")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(WORK_DIR), "escape.txt")))

    def test_unreadable_is_exit_2(self):
        with open(path("not-a-bundle.tar.gz"), "wb") as f:
            f.write(b"plain text\n")
        for bundle in (path("not-a-bundle.tar.gz"), path("absent.tar.gz")):
            code, out, err = verify_cli(bundle)
            self.assertEqual(code, 2, out + err)

    def test_the_servers_key_is_the_expected_key(self):
        shown = run_cli("show", "--json", "--url", SERVER.url(), "--key", ADMIN.key)
        self.assertEqual(shown[0], 0, shown)
        info = json.loads(shown[1])
        self.assertEqual(info["evidence_public_key"]["pem"], RUN.public_key["pem"])
        self.assertEqual(info["evidence_public_key"]["sha256"], RUN.public_key["sha256"])
        human = run_cli("show", "--url", SERVER.url(), "--key", ADMIN.key)
        self.assertIn(RUN.public_key["sha256"], human[1])
        # The fingerprint is the SHA-256 of the DER public key, as openssl computes it.
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", RUN.public_key_file,
                              "-outform", "DER"], check=True, capture_output=True).stdout
        self.assertEqual(hashlib.sha256(der).hexdigest(), RUN.public_key["sha256"])
        out = self.assertVerifies(RUN.bundle, "--pubkey", RUN.public_key_file)
        self.assertIn("the expected key", out)
        code, out, err = verify_cli(RUN.bundle, "--pubkey", RUN.public_key_file, "--json")
        self.assertEqual(json.loads(out)["key"], "expected")

    def test_another_key_fails(self):
        out = self.assertInvalid(RUN.bundle, "public_key.pem", "--pubkey", RUN.other_pub_file)
        self.assertIn(RUN.public_key["sha256"], out)
        # A --pubkey that is not a public key is a usage error.
        code, out, err = verify_cli(RUN.bundle, "--pubkey", path("data/../server.log"))
        self.assertEqual(code, 2, out + err)

    def test_signature_by_another_key_fails(self):
        members = read_members(RUN.bundle)
        with open(path("manifest.json"), "wb") as f:
            f.write(members["manifest.json"])
        signature = subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", RUN.other_key_file, "-in",
             path("manifest.json")], check=True, capture_output=True).stdout
        self.assertEqual(len(signature), 64)
        forged = dict(members)
        forged["manifest.sig"] = base64.b64encode(signature) + b"\n"
        repack(forged, path("forged.tar.gz"))
        self.assertInvalid(path("forged.tar.gz"), "manifest.sig")


# --- who may export ----------------------------------------------------------------------------


class TestAccess(EvidenceCase):
    def test_user_and_operator_get_403(self):
        for label, key in (("user", RUN.user_key), ("operator", RUN.operator_key)):
            with self.subTest(role=label):
                reply = ADMIN.with_key(key).get("/v1/evidence?session=" + RUN.session["id"])
                self.assertError(reply, 403, "permission_denied")
                code, out, err = export_cli(key, path("denied.tar.gz"), "--session",
                                            RUN.session["id"])
                self.assertEqual(code, 1, out + err)
                self.assertIn("HTTP 403", err)
                self.assertFalse(os.path.exists(path("denied.tar.gz")))

    def test_no_key_gets_401(self):
        reply = ADMIN.with_key(None).get("/v1/evidence?session=" + RUN.session["id"])
        self.assertEqual(reply.status, 401, reply)

    def test_auditor_exports_without_file_contents(self):
        out = path("auditor.tar.gz")
        code, stdout, err = export_cli(RUN.auditor_key, out, "--session", RUN.session["id"])
        self.assertEqual(code, 0, stdout + err)
        self.assertVerifies(out, "--pubkey", RUN.public_key_file)
        members = read_members(out)
        manifest = json.loads(members["manifest.json"])
        self.assertEqual(manifest["exported_by"]["role"], "auditor")
        audit = json.loads(members["audit.json"])
        # The other project's upload happened between two of the session's events: a stub.
        stubs = [e for e in audit["events"] if e.get("redacted")]
        self.assertTrue(stubs, "the other project's event should be a link-only stub")
        for stub in stubs:
            self.assertEqual(set(stub), {"seq", "hash", "prev_hash", "redacted"})
        self.assertNotIn(RUN.other_file["id"], members["audit.json"].decode())
        # File contents need files.content, which auditors do not hold.
        reply = ADMIN.with_key(RUN.auditor_key).get(
            "/v1/evidence?with_files=true&session=" + RUN.session["id"])
        self.assertError(reply, 403, "permission_denied", "files.content")

    def test_auditor_does_not_see_another_projects_session(self):
        other = RUN.other_session["id"]
        reply = ADMIN.with_key(RUN.auditor_key).get("/v1/evidence?session=" + other)
        self.assertError(reply, 404, "not_found")
        self.assertEqual(ADMIN.get("/v1/evidence?session=" + other).status, 200)

    def test_bad_requests(self):
        sid = RUN.session["id"]
        for query in ("", "?from=2024-01-01T00:00:00Z", "?session=%s&from=2024-01-01&to=2024-01-02" % sid,
                      "?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z",
                      "?session=%s&with_files=maybe" % sid, "?from=yesterday&to=today"):
            with self.subTest(query=query):
                self.assertError(ADMIN.get("/v1/evidence" + query), 400, "invalid_request")
        self.assertError(ADMIN.get("/v1/evidence?session=sess_" + "0" * 26), 404, "not_found")
        code, out, err = export_cli(ADMIN.key, path("x.tar.gz"))
        self.assertEqual(code, 2, out + err)

    def test_public_key_route_needs_a_key(self):
        self.assertEqual(ADMIN.with_key(None).get("/v1/evidence/public-key").status, 401)
        reply = ADMIN.with_key(RUN.user_key).get("/v1/evidence/public-key")
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json()["sha256"], RUN.public_key["sha256"])
        self.assertEqual(reply.json()["algorithm"], "Ed25519")


# --- the key file (last: restarts the server) --------------------------------------------------


class TestZKeyFile(EvidenceCase):
    def test_key_file_is_private_and_survives_a_restart(self):
        key_file = os.path.join(SERVER.data_dir, "evidence.key")
        mode = os.stat(key_file).st_mode & 0o777
        self.assertEqual(mode, 0o600, oct(mode))
        with open(key_file) as f:
            before = f.read()
        self.assertTrue(before.startswith("-----BEGIN PRIVATE KEY-----"))
        self.assertEqual(SERVER.stop(timeout=60), 0, SERVER.log_tail())
        SERVER.start()
        with open(key_file) as f:
            self.assertEqual(f.read(), before)
        reply = SERVER.client().get("/v1/evidence/public-key")
        self.assertEqual(reply.json()["sha256"], RUN.public_key["sha256"])
        # A bundle exported before the restart still verifies against the key served after.
        self.assertVerifies(RUN.bundle, "--pubkey", RUN.public_key_file)


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
