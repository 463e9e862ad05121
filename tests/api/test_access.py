#!/usr/bin/python3
"""Keys, roles, projects, the audit log, lineage, usage and quotas (docs/access.md), black-box.

Usage:
  test_access.py --pycell PATH [unittest arguments, e.g. -v or -k Matrix]

One server runs for the module, started like the API tests' (tests/pycell_server.py): with its
bootstrap admin key the tests make two projects, A and B, and in each a key for every role (an
admin, an operator, two users, an auditor, and an auditor of all projects), then play the role x
route table of docs/access.md against objects that exist, check scope (project B guessing A's
ids, a user and another principal's session), authentication and its audit events, the audit
log's events, filters and chain, lineage and quotas. A trigger added to the running server's
database makes one principal's audit events fail, to show the action fails with them.

Tests that need a server of their own start one on a separate data dir: usage and cost (a
[prices] configuration), the failed-authentication rate limit (it locks this machine's address
out for a minute), bootstrap, and tampering with the audit log in SQLite (the server stopped).

Only the standard library (sqlite3 for the tampering).
"""

import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)
from pycell_server import RFC3339_RE, sha256, unique  # noqa: E402

PYCELL = None  # The binary, from --pycell.
WORK_DIR = None  # Temporary folder of this run: data dirs, logs, configuration files.
SERVER = None  # The module's server.
ADMIN = None  # A client of it with the bootstrap admin key.
WORLD = None  # The projects, keys and objects every test shares (World, made in setUpModule).

RUNTIME_DIR = "/run/pycell-access-tests"
OTHER_RUNTIME_DIR = "/run/pycell-access-tests-other"  # For the servers of one test (one at once).
KEY_ID_RE = re.compile(r"^key_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
ZERO_HASH = "0" * 64
# Ids of the right shape that no server ever made (the default project's id is all zeros).
NEVER_MADE = {"file": "file_" + "0" * 26, "lineage": "file_" + "0" * 26,
              "session": "sess_" + "0" * 26,
              "execution": "exec_" + "0" * 26, "project": "proj_" + "0" * 25 + "1"}
# The permission table of docs/access.md: which roles hold each permission.
PERMISSIONS = {
    "whoami": {"admin", "operator", "user", "auditor"},
    "files.write": {"admin", "user"},
    "files.read": {"admin", "user", "auditor"},
    "files.content": {"admin", "user"},
    "lineage.read": {"admin", "user", "auditor"},
    "sessions.create": {"admin", "user"},
    "sessions.read": {"admin", "operator", "user", "auditor"},
    "sessions.end": {"admin", "operator", "user"},
    "sessions.files": {"admin", "user"},
    "executions.run": {"admin", "user"},
    "executions.read": {"admin", "user", "auditor"},
    "audit.read": {"admin", "auditor"},
    "evidence.export": {"admin", "auditor"},
    "usage.read": {"admin", "auditor"},
    "pools.read": {"admin", "operator"},
    "config.read": {"admin", "operator"},
    "projects.read": {"admin", "operator", "user", "auditor"},
    "projects.manage": {"admin"},
    "keys.manage": {"admin"},
}
BURN_CODE = ("import time\nstart = time.process_time()\n"
             "while time.process_time() - start < 1.0:\n    pass\n'burnt'")


# --- servers ---------------------------------------------------------------------------------


def serve(name, runtime_dir, config_text=None):
    """A started server of its own: data dir WORK_DIR/<name>-data, log WORK_DIR/<name>.log."""
    data_dir = os.path.join(WORK_DIR, name + "-data")
    os.makedirs(data_dir)
    server = pycell_server.ServeProcess(PYCELL, data_dir, runtime_dir,
                                        os.path.join(WORK_DIR, name + ".log"))
    extra = ()
    if config_text is not None:
        config = os.path.join(WORK_DIR, name + ".toml")
        with open(config, "w") as f:
            f.write(config_text)
        extra = ("--config", config)
    try:
        server.start(extra_args=extra)
    except BaseException:
        if server.proc and server.proc.poll() is None:
            server.kill()
        raise
    return server


def stop_quietly(server):
    if server is not None and server.proc is not None and server.proc.poll() is None:
        if server.stop(timeout=60) is None:
            print("a server did not stop within 60 s after SIGTERM\n" + server.log_tail(),
                  file=sys.stderr)


def run_cli(*args, timeout=120):
    """`pycell ARGS` with no PYCELL_* variables from the environment: (exit code, output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCELL_")}
    proc = subprocess.run([PYCELL, *args], capture_output=True, timeout=timeout, env=env,
                          cwd=WORK_DIR)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


# --- the shared world: projects, keys, objects -------------------------------------------------


class Key:
    """One API key: what the server said when it was made, and a client that sends it."""

    def __init__(self, label, created, client):
        self.label = label  # e.g. "user-a1", for messages.
        self.id = created["id"]
        self.secret = created.get("key")
        self.principal = created["principal"]
        self.project_id = created["project_id"]
        self.role = created["role"]
        self.all_projects = bool(created.get("all_projects"))
        self.client = client

    def __repr__(self):
        return "%s (%s of %s%s)" % (self.label, self.role, self.project_id,
                                    ", all projects" if self.all_projects else "")


class Obj:
    """Something a route touches: its kind, id, project and (for sessions) the principal."""

    def __init__(self, kind, id_, project_id, owner=None):
        self.kind, self.id, self.project_id, self.owner = kind, id_, project_id, owner


def expect_ok(reply, status, what):
    if reply.status != status:
        raise AssertionError("%s: want HTTP %d, got %r" % (what, status, reply))
    return reply.json()


class World:
    """Projects A and B, a key of each role in each, and in A a file, an output file, a session
    of user-a1 with an execution; in B a file and a session of user-b1."""

    def __init__(self):
        me = expect_ok(ADMIN.get("/v1/me"), 200, "GET /v1/me with the bootstrap admin key")
        self.root = Key("bootstrap-admin", key_of_me(me), ADMIN)
        self.projects = {}
        for letter in ("a", "b"):
            created = expect_ok(ADMIN.post_json("/v1/projects", {"name": "proj-" + letter}),
                                201, "POST /v1/projects proj-" + letter)
            self.projects[letter] = created
        self.keys = {}
        for letter in ("a", "b"):
            for label, role, all_projects in (("admin", "admin", False),
                                              ("operator", "operator", False),
                                              ("user-%s1", "user", False),
                                              ("user-%s2", "user", False),
                                              ("auditor", "auditor", False),
                                              ("auditor-all", "auditor", True)):
                principal = (label % letter) if "%" in label else "%s-%s" % (label, letter)
                # By the project's name here, by its id in the tests (both are accepted).
                self.keys[principal] = self.make_key(principal, "proj-" + letter, role,
                                                     all_projects)
        self.a, self.b = self.projects["a"]["id"], self.projects["b"]["id"]
        a1, b1 = self.keys["user-a1"].client, self.keys["user-b1"].client
        self.file_a = self.upload(a1, "input-a.csv", b"k,v\na,1\n")
        self.file_b = self.upload(b1, "input-b.csv", b"k,v\nb,2\n")
        self.session_a = self.session(a1, [self.file_a["id"]], {"agent_id": "agent-a1"})
        self.session_b = self.session(b1, [self.file_b["id"]], {"agent_id": "agent-b1"})
        record = expect_ok(a1.execute(self.session_a["id"],
                                      "open('/mnt/data/out-a.txt', 'w').write('from A')\n'ok'"),
                           200, "the first cell in project A")
        assert record["status"] == "ok", record
        self.execution_a = record
        self.output_a = [a for a in record["artifacts"] if a["filename"] == "out-a.txt"][0]
        self.objects = {
            "file": Obj("file", self.file_a["id"], self.a),
            "output": Obj("file", self.output_a["id"], self.a),
            # An output's lineage is its execution and session: seen as the execution is.
            "output_lineage": Obj("lineage", self.output_a["id"], self.a, "user-a1"),
            "session": Obj("session", self.session_a["id"], self.a, "user-a1"),
            "execution": Obj("execution", self.execution_a["id"], self.a, "user-a1"),
            "project": Obj("project", self.a, self.a),
        }

    @staticmethod
    def make_key(principal, project, role, all_projects=False):
        body = {"principal": principal, "project": project, "role": role,
                "all_projects": all_projects}
        created = expect_ok(ADMIN.post_json("/v1/keys", body), 201,
                            "POST /v1/keys %r" % body)
        return Key(principal, created, ADMIN.with_key(created["key"]))

    def all_keys(self):
        return [self.root] + list(self.keys.values())

    @staticmethod
    def upload(client, name, data):
        return expect_ok(client.upload_raw(unique(*name.rsplit(".", 1)), data), 201,
                         "upload " + name)

    @staticmethod
    def session(client, file_ids=(), metadata=None):
        body = {"file_ids": list(file_ids)}
        if metadata:
            body["metadata"] = metadata
        return expect_ok(client.create_session(**body), 201, "POST /v1/sessions")


def key_of_me(me):
    """The key object in GET /v1/me's answer. "The caller's key object (no secret) and its
    project" reads as the key's fields with a "project" beside them, or {"key", "project"}."""
    return me["key"] if isinstance(me.get("key"), dict) else me


def audit_events(client, **filters):
    """Every audit event the client may see that matches `filters`, oldest first, through
    every page (after_seq)."""
    events, after = [], None
    for _ in range(200):
        query = dict(filters, limit=1000)
        if after is not None:
            query["after_seq"] = after
        reply = client.get("/v1/audit?" + urllib.parse.urlencode(query))
        if reply.status != 200:
            raise AssertionError("GET /v1/audit?%s: want 200, got %r" %
                                 (urllib.parse.urlencode(query), reply))
        page = reply.json()
        events += page["data"]
        if not page.get("has_more") or not page["data"]:
            return events
        after = page["data"][-1]["seq"]
    raise AssertionError("GET /v1/audit did not stop paging")


def by_request_id(events):
    return {e.get("request_id"): e for e in events}


# --- module setup ----------------------------------------------------------------------------


def setUpModule():
    global SERVER, ADMIN, WORK_DIR, WORLD
    WORK_DIR = tempfile.mkdtemp(prefix="pycell-access-tests-")
    try:
        SERVER = serve("main", RUNTIME_DIR)
        ADMIN = SERVER.client()
        WORLD = World()
    except BaseException:
        if SERVER is not None:
            print(SERVER.log_tail(60), file=sys.stderr)
            if SERVER.proc.poll() is None:
                SERVER.kill()
        raise


def tearDownModule():
    try:
        if SERVER is None or SERVER.proc is None or SERVER.proc.poll() is not None:
            return
        health = ADMIN.get("/healthz", timeout=10)
        rc = SERVER.stop(timeout=60)
        if health.status != 200 or rc != 0:
            raise AssertionError("after the tests: GET /healthz %r; after SIGTERM the server "
                                 "exited %s (want 0)\n%s" % (health, rc, SERVER.log_tail()))
    finally:
        if os.environ.get("PYCELL_API_KEEP") is None:
            shutil.rmtree(WORK_DIR, ignore_errors=True)


class AccessTestCase(pycell_server.HttpAssertions, unittest.TestCase):
    maxDiff = 6000

    def assertTime(self, value):
        self.assertIsInstance(value, str)
        self.assertRegex(value, RFC3339_RE)

    def assertUnauthenticated(self, reply, what):
        self.assertEqual(reply.status, 401, "%s: want 401 unauthenticated, got %r" % (what, reply))
        self.assertError(reply, 401, "unauthenticated")
        challenge = reply.header("www-authenticate") or ""
        self.assertTrue(challenge.startswith("Bearer"),
                        "%s: a 401 needs `WWW-Authenticate: Bearer`, got %r" % (what, challenge))
        self.assertTrue(reply.header("x-request-id"), "%s: the 401 has no X-Request-Id" % what)

    def assertHiddenLike(self, reply, never_made, real_id, missing_id, what):
        """`reply` (for an object out of the key's scope) is the answer for a never-made id."""
        self.assertEqual(reply.status, 404, "%s: want 404 as for an id never made, got %r" %
                         (what, reply))
        self.assertEqual(never_made.status, 404, "%s, never-made id: want 404, got %r" %
                         (what, never_made))
        self.assertEqual(normalized(reply.body, real_id), normalized(never_made.body, missing_id),
                         "%s: the 404 differs from the one for a never-made id, so it says the "
                         "object exists" % what)

    def new_session(self, client, **body):
        reply = client.create_session(**body)
        self.assertEqual(reply.status, 201, reply)
        session = reply.json()
        self.addCleanup(ADMIN.delete, "/v1/sessions/" + session["id"])
        return session

    def run_ok(self, client, session_id, code, **kw):
        reply = client.execute(session_id, code, **kw)
        self.assertEqual(reply.status, 200, reply)
        record = reply.json()
        self.assertEqual(record["status"], "ok", record)
        return record


def normalized(body, object_id):
    return body.replace(object_id.encode(), b"<ID>")


# --- the role x route matrix -----------------------------------------------------------------


class Route:
    """One row of the matrix: the permission, the request, and what it touches.

    target: None (nothing that exists before), a key of World.objects (a shared object of
    project A), or "fresh_file" / "fresh_session" / "fresh_key" (a new object of project A for
    every key, for routes that destroy it). body(key) gives the JSON body, if any."""

    def __init__(self, permission, method, path, target=None, body=None, upload=None):
        self.permission, self.method, self.path = permission, method, path
        self.target, self.body, self.upload = target, body, upload

    def __repr__(self):
        return "%s %s" % (self.method, self.path)


COUNTER = [0]


def serial():
    COUNTER[0] += 1
    return "%d-%s" % (COUNTER[0], os.urandom(2).hex())


ROUTES = [
    Route("whoami", "GET", "/v1/me"),
    Route("files.write", "POST", "/v1/files", upload=("matrix.txt", b"made by the matrix\n")),
    Route("files.write", "DELETE", "/v1/files/{id}", target="fresh_file"),
    Route("files.read", "GET", "/v1/files"),
    Route("files.read", "GET", "/v1/files/{id}", target="file"),
    Route("files.content", "GET", "/v1/files/{id}/content", target="file"),
    Route("lineage.read", "GET", "/v1/files/{id}/lineage", target="output_lineage"),
    Route("sessions.create", "POST", "/v1/sessions", body=lambda key: {}),
    Route("sessions.read", "GET", "/v1/sessions"),
    Route("sessions.read", "GET", "/v1/sessions/{id}", target="session"),
    Route("sessions.end", "DELETE", "/v1/sessions/{id}", target="fresh_session"),
    Route("sessions.files", "POST", "/v1/sessions/{id}/files", target="session",
          body=lambda key: {"file_ids": [WORLD.file_a["id"]]}),
    Route("sessions.files", "GET", "/v1/sessions/{id}/files", target="session"),
    Route("sessions.files", "DELETE", "/v1/sessions/{id}/files/doomed.txt",
          target="fresh_session_file"),
    Route("executions.run", "POST", "/v1/sessions/{id}/executions", target="session",
          body=lambda key: {"code": "'run by %s'" % key.label}),
    Route("executions.read", "GET", "/v1/sessions/{id}/executions", target="session"),
    Route("executions.read", "GET", "/v1/executions/{id}", target="execution"),
    Route("executions.read", "GET", "/v1/sessions/{id}/notebook", target="session"),
    Route("executions.run", "POST", "/v1/sessions/{id}/replay", target="session",
          body=lambda key: {}),
    Route("sessions.create", "POST", "/v1/sessions/{id}/fork", target="session",
          body=lambda key: {}),
    Route("audit.read", "GET", "/v1/audit"),
    Route("evidence.export", "GET", "/v1/evidence?session={id}", target="session"),
    Route("whoami", "GET", "/v1/evidence/public-key"),
    Route("usage.read", "GET", "/v1/usage"),
    Route("pools.read", "GET", "/v1/pools"),
    Route("config.read", "GET", "/v1/config"),
    Route("config.read", "GET", "/v1/diagnostic-settings"),
    Route("projects.read", "GET", "/v1/projects"),
    Route("projects.read", "GET", "/v1/projects/{id}", target="project"),
    Route("projects.manage", "POST", "/v1/projects",
          body=lambda key: {"name": "matrix-" + serial()}),
    Route("projects.manage", "PATCH", "/v1/projects/{id}", target="project",
          body=lambda key: {"share_sessions": False}),
    Route("keys.manage", "POST", "/v1/keys",
          body=lambda key: {"principal": "matrix-" + serial(), "project": WORLD.a,
                            "role": "user"}),
    Route("keys.manage", "GET", "/v1/keys"),
    Route("keys.manage", "GET", "/v1/keys/{id}", target="fresh_key"),
    Route("keys.manage", "DELETE", "/v1/keys/{id}", target="fresh_key"),
]


def visible(key, obj):
    """Whether `key` may see `obj` (docs/access.md, "what each role sees"). None where the
    document leaves it open (a user reading the execution record of another principal's
    session by its id)."""
    if key.role in ("admin", "operator"):
        return True
    if key.role == "auditor":
        return key.all_projects or obj.project_id == key.project_id
    if obj.project_id != key.project_id:
        return False
    if obj.kind == "session" and obj.owner != key.principal:
        return False  # Project A does not share sessions (but in TestScope's sharing test).
    if obj.kind == "execution" and obj.owner != key.principal:
        return None
    if obj.kind == "lineage" and obj.owner != key.principal:
        return False  # Issue 16 row 13: the lineage route hides what the executions route does.
    return True


class TestRoleRouteMatrix(AccessTestCase):
    """Every route of docs/access.md's table with every role of both projects (and the
    bootstrap admin): allowed (2xx, or a 4xx other than 401/403/404), denied (403
    permission_denied) or, for an object out of the key's scope, 404 exactly as for an id that
    was never made."""

    def fresh_target(self, kind):
        a1 = WORLD.keys["user-a1"].client
        if kind == "fresh_file":
            f = WORLD.upload(a1, "doomed.txt", b"delete me\n")
            return Obj("file", f["id"], WORLD.a)
        if kind == "fresh_session":
            s = WORLD.session(a1)
            self.addCleanup(ADMIN.delete, "/v1/sessions/" + s["id"])
            return Obj("session", s["id"], WORLD.a, "user-a1")
        if kind == "fresh_session_file":
            s = WORLD.session(a1)
            self.addCleanup(ADMIN.delete, "/v1/sessions/" + s["id"])
            a1.execute(s["id"], "open('/mnt/data/doomed.txt', 'w').write('x')")
            return Obj("session", s["id"], WORLD.a, "user-a1")
        if kind == "fresh_key":
            k = WORLD.make_key("doomed-" + serial(), WORLD.a, "user")
            return Obj("key", k.id, WORLD.a)
        return WORLD.objects[kind]

    def call(self, key, route, obj, object_id=None):
        path = route.path.replace("{id}", object_id or (obj.id if obj else ""))
        client = key.client
        if route.upload:
            return client.upload_raw(unique(*route.upload[0].rsplit(".", 1)), route.upload[1])
        if route.body is not None:
            body = json.dumps(route.body(key)).encode()
            return client.request(route.method, path, body=body,
                                  headers={"Content-Type": "application/json"})
        return client.request(route.method, path)

    def still_there(self, obj):
        """After a refused DELETE: the object is as it was."""
        if obj.kind == "file":
            return ADMIN.get("/v1/files/" + obj.id).status == 200
        if obj.kind == "session":
            reply = ADMIN.get("/v1/sessions/" + obj.id)
            return reply.status == 200 and reply.json().get("status") == "active"
        if obj.kind == "key":
            reply = ADMIN.get("/v1/keys/" + obj.id)
            return reply.status == 200 and reply.json().get("revoked_at") is None
        return True

    def cleanup_created(self, route, reply):
        if reply.status == 201 and route.path == "/v1/sessions":
            ADMIN.delete("/v1/sessions/" + reply.json()["id"])

    def test_matrix(self):
        problems = []
        cells = 0
        tally = {"allowed": 0, "denied": 0, "hidden": 0, "open": 0}
        for route in ROUTES:
            for key in WORLD.all_keys():
                cells += 1
                obj = self.fresh_target(route.target) if route.target else None
                permitted = key.role in PERMISSIONS[route.permission]
                scope = visible(key, obj) if (obj is not None and permitted) else True
                reply = self.call(key, route, obj)
                self.cleanup_created(route, reply)
                cell = "%-16s %-32s" % (key.label, route)
                tally["denied" if not permitted else "hidden" if scope is False else
                      "open" if scope is None else "allowed"] += 1
                if not permitted:
                    want = "403 permission_denied"
                    if reply.status != 403 or error_code(reply) != "permission_denied":
                        problems.append("%s want %s, got %r" % (cell, want, reply))
                    elif route.method == "DELETE" and not self.still_there(obj):
                        problems.append("%s answered 403 but the object is gone" % cell)
                    continue
                if scope is False or (scope is None and reply.status == 404):
                    never = self.call(key, route, obj, NEVER_MADE.get(obj.kind, "x"))
                    if (reply.status != 404 or never.status != 404 or
                            normalized(reply.body, obj.id) !=
                            normalized(never.body, NEVER_MADE.get(obj.kind, "x"))):
                        problems.append("%s (out of scope) want 404 exactly as for a never-made "
                                        "id %r, got %r" % (cell, never, reply))
                    elif route.method == "DELETE" and not self.still_there(obj):
                        problems.append("%s answered 404 but the object is gone" % cell)
                    continue
                if reply.status in (401, 403, 404) or reply.status >= 500:
                    problems.append("%s want allowed (2xx, or a 4xx other than 401/403/404), "
                                    "got %r" % (cell, reply))
        if problems:
            self.fail("%d of %d cells of the role x route matrix differ from docs/access.md:\n"
                      "  %s" % (len(problems), cells, "\n  ".join(problems)))
        # Each kind of cell was played (a broken table could make the test pass vacuously).
        self.assertGreater(tally["allowed"], 150, tally)
        self.assertGreater(tally["denied"], 100, tally)
        self.assertGreater(tally["hidden"], 30, tally)

    def test_public_routes_need_no_key(self):
        anonymous = ADMIN.with_key(None)
        for path in ("/healthz", "/readyz", "/openapi.json"):
            for key in [None] + WORLD.all_keys():
                with self.subTest(path=path, key=key):
                    client = anonymous if key is None else key.client
                    reply = client.get(path)
                    self.assertEqual(reply.status, 200, "GET %s with %s: %r" % (path, key, reply))

    def test_routes_without_a_key_are_401(self):
        # A few routes, not all: each 401 counts towards the rate limit (20 a minute from one
        # address), and TestAuthentication makes 9 more on this server.
        anonymous = ADMIN.with_key(None)
        for method, path in (("GET", "/v1/files/" + WORLD.file_a["id"]),
                             ("POST", "/v1/sessions"),
                             ("POST", "/v1/sessions/%s/executions" % WORLD.session_a["id"]),
                             ("GET", "/v1/audit"), ("GET", "/v1/keys")):
            with self.subTest(method=method, path=path):
                reply = anonymous.request(method, path, body=b"{}" if method == "POST" else None,
                                          headers={"Content-Type": "application/json"})
                self.assertUnauthenticated(reply, "%s %s without a key" % (method, path))


def error_code(reply):
    try:
        return reply.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


# --- scope: projects and principals ----------------------------------------------------------


class TestScope(AccessTestCase):
    """Keys of project B see nothing of A (as if it did not exist); a user sees another
    principal's session only when its project shares sessions."""

    def hidden(self, client, path_template, real_id, kind, what, method="GET", body=None):
        def call(object_id):
            path = path_template.replace("{id}", object_id)
            if body is None:
                return client.request(method, path)
            return client.request(method, path, body=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
        self.assertHiddenLike(call(real_id), call(NEVER_MADE[kind]), real_id, NEVER_MADE[kind],
                              what)

    def test_project_b_cannot_see_project_a_ids(self):
        a_ids = {"file": WORLD.file_a["id"], "session": WORLD.session_a["id"],
                 "execution": WORLD.execution_a["id"]}
        cases = [("files.read", "GET", "/v1/files/{id}", "file"),
                 ("files.content", "GET", "/v1/files/{id}/content", "file"),
                 ("lineage.read", "GET", "/v1/files/{id}/lineage", "file"),
                 ("files.write", "DELETE", "/v1/files/{id}", "file"),
                 ("sessions.read", "GET", "/v1/sessions/{id}", "session"),
                 ("sessions.files", "GET", "/v1/sessions/{id}/files", "session"),
                 ("sessions.files", "POST", "/v1/sessions/{id}/files", "session"),
                 ("executions.read", "GET", "/v1/sessions/{id}/executions", "session"),
                 ("executions.read", "GET", "/v1/sessions/{id}/notebook", "session"),
                 ("executions.run", "POST", "/v1/sessions/{id}/executions", "session"),
                 ("sessions.end", "DELETE", "/v1/sessions/{id}", "session"),
                 ("executions.read", "GET", "/v1/executions/{id}", "execution")]
        bodies = {("POST", "/v1/sessions/{id}/executions"): {"code": "1"},
                  ("POST", "/v1/sessions/{id}/files"): {"file_ids": [WORLD.file_b["id"]]}}
        for label in ("user-b1", "auditor-b", "auditor-a"):
            key = WORLD.keys[label]
            for permission, method, path, kind in cases:
                if key.role not in PERMISSIONS[permission]:
                    continue  # A 403, whatever the id (the matrix checks those).
                if label == "auditor-a" and kind != "execution":
                    continue  # Sees them: only the execution of another principal is a question.
                with self.subTest(key=label, method=method, path=path):
                    what = "%s %s %s" % (label, method, path)
                    if label == "auditor-a":
                        reply = key.client.request(method, path.replace("{id}", a_ids[kind]))
                        self.assertEqual(reply.status, 200, "%s: an auditor reads its "
                                         "project's execution records: %r" % (what, reply))
                        continue
                    self.hidden(key.client, path, a_ids[kind], kind, what, method=method,
                                body=bodies.get((method, path)))
        # Nothing was touched by those attempts.
        self.assertEqual(ADMIN.get("/v1/files/" + WORLD.file_a["id"]).status, 200)
        self.assertEqual(ADMIN.get("/v1/sessions/" + WORLD.session_a["id"]).json()["status"],
                         "active")

    def test_project_b_cannot_use_project_a_files(self):
        b1 = WORLD.keys["user-b1"].client
        file_a, missing = WORLD.file_a["id"], NEVER_MADE["file"]
        self.assertHiddenLike(b1.create_session(file_ids=[file_a]),
                              b1.create_session(file_ids=[missing]), file_a, missing,
                              "user-b1 creates a session with project A's file")
        path = "/v1/sessions/%s/files" % WORLD.session_b["id"]
        self.assertHiddenLike(b1.post_json(path, {"file_ids": [file_a]}),
                              b1.post_json(path, {"file_ids": [missing]}), file_a, missing,
                              "user-b1 places project A's file in its session")

    def test_project_b_cannot_see_project_a_itself(self):
        for label in ("user-b1", "auditor-b"):
            client = WORLD.keys[label].client
            for ref, never in ((WORLD.a, NEVER_MADE["project"]), ("proj-a", "no-such-project")):
                with self.subTest(key=label, project=ref):
                    self.assertHiddenLike(client.get("/v1/projects/" + ref),
                                          client.get("/v1/projects/" + never), ref, never,
                                          "%s GET /v1/projects/%s" % (label, ref))
            reply = client.get("/v1/projects")
            self.assertEqual(reply.status, 200, reply)
            ids = [p["id"] for p in reply.json()["data"]]
            self.assertIn(WORLD.b, ids, "%s does not see its own project" % label)
            self.assertNotIn(WORLD.a, ids, "%s's GET /v1/projects lists project A" % label)
        reply = WORLD.keys["auditor-all-b"].client.get("/v1/projects/" + WORLD.a)
        self.assertEqual(reply.status, 200, "an all-projects auditor reads every project: %r" %
                         reply)

    def test_lists_never_hold_another_projects_rows(self):
        a_files = {WORLD.file_a["id"], WORLD.output_a["id"]}
        a_sessions = {WORLD.session_a["id"]}
        for label in ("user-b1", "user-b2", "auditor-b"):
            client = WORLD.keys[label].client
            with self.subTest(key=label, list="files"):
                files = {f["id"] for f in client.all_files()}
                self.assertEqual(files & a_files, set(), "%s lists project A's files" % label)
                self.assertIn(WORLD.file_b["id"], files, "%s misses its project's file" % label)
                for query in ("&session_id=" + WORLD.session_a["id"],
                              "&execution_id=" + WORLD.execution_a["id"]):
                    self.assertEqual(client.all_files(query), [],
                                     "%s: GET /v1/files?%s shows project A's files" %
                                     (label, query[1:]))
            with self.subTest(key=label, list="sessions"):
                reply = client.get("/v1/sessions?limit=1000")
                self.assertEqual(reply.status, 200, reply)
                sessions = {s["id"] for s in reply.json()["data"]}
                self.assertEqual(sessions & a_sessions, set(), "%s lists A's sessions" % label)
                if label != "user-b2":
                    self.assertIn(WORLD.session_b["id"], sessions)
                else:
                    self.assertNotIn(WORLD.session_b["id"], sessions,
                                     "user-b2 lists user-b1's session without share_sessions")
        auditor = WORLD.keys["auditor-b"].client
        events = audit_events(auditor)
        self.assertTrue(events, "auditor-b sees no audit event of its project")
        foreign = [e for e in events if e.get("project_id") not in (WORLD.b, "", None)]
        self.assertEqual(foreign, [], "auditor-b's GET /v1/audit holds other projects' events")
        self.assertIn(WORLD.b, {e.get("project_id") for e in events})
        # ?project= cannot widen a scoped key's view.
        reply = auditor.get("/v1/audit?project=" + WORLD.a)
        self.assertIn(reply.status, (200, 403, 404), reply)
        if reply.status == 200:
            self.assertEqual([e for e in reply.json()["data"]
                              if e.get("project_id") == WORLD.a], [],
                             "auditor-b reads project A's events with ?project=")
        reply = auditor.get("/v1/usage?group_by=principal&project=" + WORLD.a)
        self.assertIn(reply.status, (200, 403, 404), reply)
        if reply.status == 200:
            self.assertNotIn("user-a1", {row["key"] for row in reply.json()["data"]},
                             "auditor-b reads project A's usage with ?project=")
        for group_by in ("project", "principal", "agent"):
            with self.subTest(list="usage", group_by=group_by):
                reply = auditor.get("/v1/usage?group_by=" + group_by)
                self.assertEqual(reply.status, 200, reply)
                keys = {row["key"] for row in reply.json()["data"]}
                foreign = keys & {WORLD.a, "proj-a", "user-a1", "user-a2", "agent-a1"}
                self.assertEqual(foreign, set(), "auditor-b's usage by %s shows project A: %r"
                                 % (group_by, reply.json()))
        everyone = audit_events(WORLD.keys["auditor-all-b"].client)
        self.assertIn(WORLD.a, {e.get("project_id") for e in everyone},
                      "an all-projects auditor sees every project's events")

    def test_operators_see_sessions_of_every_project(self):
        reply = WORLD.keys["operator-b"].client.get("/v1/sessions?limit=1000")
        self.assertEqual(reply.status, 200, reply)
        self.assertIn(WORLD.session_a["id"], [s["id"] for s in reply.json()["data"]])

    def test_sharing_sessions_within_a_project(self):
        a2 = WORLD.keys["user-a2"].client
        b1 = WORLD.keys["user-b1"].client
        session_id = WORLD.session_a["id"]
        self.hidden(a2, "/v1/sessions/{id}", session_id, "session",
                    "user-a2 reads user-a1's session (no sharing)")
        self.hidden(a2, "/v1/sessions/{id}/executions", session_id, "session",
                    "user-a2 runs a cell in user-a1's session (no sharing)", method="POST",
                    body={"code": "1"})
        listed = [s["id"] for s in a2.get("/v1/sessions?limit=1000").json()["data"]]
        self.assertNotIn(session_id, listed, "user-a2 lists user-a1's session without sharing")

        reply = ADMIN.patch_json("/v1/projects/" + WORLD.a, {"share_sessions": True})
        self.addCleanup(ADMIN.patch_json, "/v1/projects/" + WORLD.a, {"share_sessions": False})
        self.assertEqual(reply.status, 200, reply)
        self.assertIs(reply.json()["share_sessions"], True, reply)
        reply = a2.get("/v1/sessions/" + session_id)
        self.assertEqual(reply.status, 200, "with share_sessions on, user-a2 reads user-a1's "
                         "session: %r" % reply)
        listed = [s["id"] for s in a2.get("/v1/sessions?limit=1000").json()["data"]]
        self.assertIn(session_id, listed, "with share_sessions on, user-a2 lists it")
        record = self.run_ok(a2, session_id, "'shared'")
        self.assertEqual(record["outputs"][0]["data"]["text/plain"], "'shared'")
        self.assertEqual(a2.get("/v1/sessions/%s/files" % session_id).status, 200)
        reply = a2.get("/v1/executions/" + WORLD.execution_a["id"])
        self.assertEqual(reply.status, 200, "with share_sessions on, user-a2 reads the shared "
                         "session's execution records: %r" % reply)
        # Sharing is within the project.
        self.hidden(b1, "/v1/sessions/{id}", session_id, "session",
                    "user-b1 reads a shared session of project A")

        reply = ADMIN.patch_json("/v1/projects/" + WORLD.a, {"share_sessions": False})
        self.assertEqual(reply.status, 200, reply)
        self.hidden(a2, "/v1/sessions/{id}", session_id, "session",
                    "user-a2 reads user-a1's session after sharing is off again")


# --- authentication --------------------------------------------------------------------------


class TestAuthentication(AccessTestCase):
    def test_bad_credentials_are_401_and_audited(self):
        a1 = WORLD.keys["user-a1"]
        key_id, secret = pycell_server.KEY_RE.match(a1.secret).groups()
        wrong_secret = "pyc_%s_%s" % (key_id, secret[:-1] + ("1" if secret[-1] != "1" else "2"))
        unknown_id = "pyc_%s_%s" % ("0" * 26, secret)
        cases = [("no Authorization header", None),
                 ("Basic", "Basic dXNlcjpwYXNzd29yZA=="),
                 ("Bearer with garbage", "Bearer garbage"),
                 ("Bearer with nothing", "Bearer "),
                 ("not a pyc_ key", "Bearer sk-" + "a" * 40),
                 ("the right key without Bearer", a1.secret),
                 ("a wrong secret", "Bearer " + wrong_secret),
                 ("an unknown key id", "Bearer " + unknown_id)]
        anonymous = ADMIN.with_key(None)
        request_ids = {}
        for what, header in cases:
            with self.subTest(case=what):
                reply = anonymous.get("/v1/me", headers={"Authorization": header} if header
                                      else None)
                self.assertUnauthenticated(reply, what)
                self.assertNotIn(secret, reply.body.decode("utf-8", "replace"))
                request_ids[reply.header("x-request-id")] = what
        events = by_request_id(audit_events(ADMIN, action="auth.denied"))
        for request_id, what in request_ids.items():
            with self.subTest(audited=what):
                event = events.get(request_id)
                self.assertIsNotNone(event, "%s: no auth.denied event with request_id %s" %
                                     (what, request_id))
                self.assertEqual(event["outcome"], "denied", event)
                detail = event.get("detail") or {}
                self.assertTrue(detail.get("reason"), "%s: the event says no reason: %r" %
                                (what, event))
                self.assertIn("127.0.0.1", str(detail.get("peer")),
                              "%s: the event has no source address (detail.peer): %r" %
                              (what, event))
                self.assertNotIn(secret, json.dumps(event), "the audit log holds a secret")

    def test_revoked_key_stops_at_the_next_request(self):
        key = WORLD.make_key("short-lived", "proj-a", "user")
        self.assertEqual(key.client.get("/v1/me").status, 200)
        reply = ADMIN.delete("/v1/keys/" + key.id)
        self.assertEqual(reply.status, 200, reply)
        revoked = reply.json()
        self.assertEqual(revoked["id"], key.id)
        self.assertTime(revoked["revoked_at"])
        self.assertNotIn("pyc_", json.dumps(revoked), "the revoked key object shows a secret")
        reply = key.client.get("/v1/me")
        self.assertUnauthenticated(reply, "the request right after DELETE /v1/keys/{id}")
        events = by_request_id(audit_events(ADMIN, action="auth.denied"))
        self.assertIn(reply.header("x-request-id"), events,
                      "no auth.denied event for the revoked key's request")
        listed = [k["id"] for k in ADMIN.get("/v1/keys?limit=1000").json()["data"]]
        self.assertNotIn(key.id, listed, "GET /v1/keys lists a revoked key without "
                         "include_revoked=true")
        reply = ADMIN.get("/v1/keys?include_revoked=true&limit=1000")
        self.assertEqual(reply.status, 200, reply)
        listed = {k["id"]: k for k in reply.json()["data"]}
        self.assertIn(key.id, listed)
        self.assertIsNotNone(listed[key.id]["revoked_at"])

    def test_403_is_audited(self):
        key = WORLD.keys["user-a1"]
        reply = key.client.get("/v1/audit")
        self.assertError(reply, 403, "permission_denied")
        event = by_request_id(audit_events(ADMIN, action="auth.denied")).get(
            reply.header("x-request-id"))
        self.assertIsNotNone(event, "no auth.denied event for a 403 (request %s)" %
                             reply.header("x-request-id"))
        self.assertEqual(event["outcome"], "denied", event)
        self.assertEqual(event["principal"], "user-a1", event)
        self.assertEqual(event["project_id"], WORLD.a, event)
        self.assertEqual(event["key_id"], key.id, event)
        self.assertTrue((event.get("detail") or {}).get("reason"), event)
        self.assertIn("127.0.0.1", str((event.get("detail") or {}).get("peer")), event)

    def test_keys_are_made_and_shown_once(self):
        reply = ADMIN.post_json("/v1/keys", {"principal": "shown-once", "project": WORLD.a,
                                             "role": "auditor", "all_projects": False})
        self.assertEqual(reply.status, 201, reply)
        created = reply.json()
        self.assertEqual(created["object"], "key")
        self.assertRegex(created["id"], KEY_ID_RE)
        match = pycell_server.KEY_RE.match(created["key"])
        self.assertIsNotNone(match, "the key is not pyc_<26>_<32>: %r" % created["key"])
        self.assertEqual("key_" + match.group(1), created["id"])
        self.assertEqual((created["principal"], created["project_id"], created["role"],
                          created["all_projects"]), ("shown-once", WORLD.a, "auditor", False))
        self.assertTime(created["created_at"])
        self.assertIsNone(created["revoked_at"])
        secret = match.group(2)
        for path in ("/v1/keys/" + created["id"], "/v1/keys?limit=1000",
                     "/v1/keys?project=proj-a&limit=1000"):
            reply = ADMIN.get(path)
            self.assertEqual(reply.status, 200, reply)
            self.assertNotIn(secret.encode(), reply.body, "GET %s shows a secret" % path)
            self.assertNotIn(b"pyc_", reply.body, "GET %s shows a key" % path)
        listed = ADMIN.get("/v1/keys?project=proj-b&limit=1000").json()["data"]
        self.assertEqual({k["project_id"] for k in listed}, {WORLD.b})
        # The server keeps only the secret's hash.
        stored = b""
        for name in os.listdir(SERVER.data_dir):
            if name.startswith("pycell.db"):
                with open(os.path.join(SERVER.data_dir, name), "rb") as f:
                    stored += f.read()
        self.assertTrue(stored)
        self.assertNotIn(secret.encode(), stored, "the database holds a key's secret")
        # Bad requests.
        for body, mentions in (({"principal": "x", "project": WORLD.a, "role": "root"}, "role"),
                               ({"project": WORLD.a, "role": "user"}, "principal")):
            with self.subTest(body=body):
                self.assertError(ADMIN.post_json("/v1/keys", body), 400, "invalid_request",
                                 mentions)

    def test_me(self):
        for label in ("user-a1", "operator-b", "auditor-all-a"):
            key = WORLD.keys[label]
            with self.subTest(key=label):
                reply = key.client.get("/v1/me")
                self.assertEqual(reply.status, 200, reply)
                me = key_of_me(reply.json())
                self.assertEqual(me["id"], key.id, me)
                self.assertEqual((me["principal"], me["project_id"], me["role"]),
                                 (key.principal, key.project_id, key.role), me)
                self.assertNotIn(b"pyc_", reply.body, "GET /v1/me shows a secret")
                self.assertIn(key.project_id, json.dumps(reply.json().get("project")),
                              "GET /v1/me returns the key's project too: %r" % reply.json())


# --- projects --------------------------------------------------------------------------------


class TestProjects(AccessTestCase):
    def test_create_get_patch(self):
        name = "finance-" + os.urandom(3).hex()
        quotas = {"concurrent_sessions": 10, "sessions_per_day": 500, "cpu_hours_per_day": 20,
                  "storage_bytes": 10737418240}
        reply = ADMIN.post_json("/v1/projects", {"name": name, "share_sessions": False,
                                                 "quotas": quotas})
        self.assertEqual(reply.status, 201, reply)
        project = reply.json()
        self.assertEqual(project["object"], "project")
        self.assertRegex(project["id"], r"^proj_[0-9a-hjkmnp-tv-z]{26}$")
        self.assertEqual(project["name"], name)
        self.assertIs(project["share_sessions"], False)
        self.assertEqual(project["quotas"], quotas)
        self.assertTime(project["created_at"])
        for ref in (project["id"], name):
            with self.subTest(by=ref):
                reply = ADMIN.get("/v1/projects/" + ref)
                self.assertEqual(reply.status, 200, reply)
                self.assertEqual(reply.json(), project)
        reply = ADMIN.patch_json("/v1/projects/" + name, {"share_sessions": True,
                                                          "quotas": {"storage_bytes": 0}})
        self.assertEqual(reply.status, 200, reply)
        patched = reply.json()
        self.assertIs(patched["share_sessions"], True)
        self.assertIn(patched["quotas"].get("storage_bytes"), (0, None), patched)
        listed = [p["name"] for p in ADMIN.get("/v1/projects").json()["data"]]
        self.assertIn(name, listed)
        self.assertIn("default", listed)

    def test_bad_projects(self):
        for name in ("", "Upper", "has space", "x" * 65, "dot.ted", "slash/ed"):
            with self.subTest(name=name):
                self.assertError(ADMIN.post_json("/v1/projects", {"name": name}), 400,
                                 "invalid_request", "name")
        self.assertEqual(ADMIN.post_json("/v1/projects", {"name": "x" * 64}).status, 201)
        reply = ADMIN.post_json("/v1/projects", {"name": "proj-a"})
        self.assertIn(reply.status, (400, 409), "a second project named proj-a: %r" % reply)
        reply = ADMIN.post_json("/v1/projects", {"name": "q-" + os.urandom(3).hex(),
                                                 "quotas": {"gpus": 1}})
        self.assertError(reply, 400, "invalid_request", "gpus")


# --- audit log -------------------------------------------------------------------------------


class TestAudit(AccessTestCase):
    """Each action leaves its event (principal, project, target, outcome, the request's id);
    the chain verifies over the API."""

    def test_each_action_is_recorded(self):
        a1 = WORLD.keys["user-a1"]
        expected = []  # (action, request id, key, target, project)

        def did(action, reply, key, target, project):
            self.assertLess(reply.status, 300, "%s: %r" % (action, reply))
            request_id = reply.header("x-request-id")
            self.assertTrue(request_id, "%s: no X-Request-Id" % action)
            expected.append((action, request_id, key, target, project))

        reply = a1.client.upload_raw(unique("audited", "csv"), b"a,b\n1,2\n")
        file_id = reply.json()["id"]
        did("file.upload", reply, a1, file_id, WORLD.a)
        reply = a1.client.create_session(file_ids=[file_id], metadata={"agent_id": "auditee"})
        session_id = reply.json()["id"]
        did("session.create", reply, a1, session_id, WORLD.a)
        code = "print('audited')\n6 * 7"
        reply = a1.client.execute(session_id, code)
        execution_id = reply.json()["id"]
        did("execution.run", reply, a1, (execution_id, session_id), WORLD.a)
        reply = a1.client.upload_multipart(unique("placed", "txt"), b"placed\n",
                                           path="/v1/sessions/%s/files" % session_id)
        did("session.files.put", reply, a1, (session_id, reply.json()["data"][0].get("file_id")),
            WORLD.a)
        reply = a1.client.get("/v1/files/%s/content" % file_id)
        did("file.download", reply, a1, file_id, WORLD.a)
        reply = a1.client.delete("/v1/files/" + file_id)
        did("file.delete", reply, a1, file_id, WORLD.a)
        reply = a1.client.delete("/v1/sessions/" + session_id)
        did("session.end", reply, a1, session_id, WORLD.a)
        root = WORLD.root
        name = "audited-" + os.urandom(3).hex()
        reply = ADMIN.post_json("/v1/projects", {"name": name})
        project_id = reply.json()["id"]
        did("project.create", reply, root, project_id, (project_id, root.project_id))
        reply = ADMIN.patch_json("/v1/projects/" + project_id, {"share_sessions": True})
        did("project.update", reply, root, project_id, (project_id, root.project_id))
        reply = ADMIN.post_json("/v1/keys", {"principal": "audited", "project": project_id,
                                             "role": "user"})
        key_id = reply.json()["id"]
        did("key.create", reply, root, key_id, (project_id, root.project_id))
        reply = ADMIN.delete("/v1/keys/" + key_id)
        did("key.revoke", reply, root, key_id, (project_id, root.project_id))

        for action, request_id, key, target, project in expected:
            with self.subTest(action=action):
                events = [e for e in audit_events(ADMIN, action=action)
                          if e.get("request_id") == request_id]
                self.assertEqual(len(events), 1, "want one %s event with request_id %s (the "
                                 "X-Request-Id of its response), found %r" %
                                 (action, request_id, events))
                event = events[0]
                self.check_event_shape(event)
                self.assertEqual(event["action"], action)
                self.assertEqual(event["principal"], key.principal, event)
                self.assertEqual(event["key_id"], key.id, event)
                self.assertIn(event["project_id"], project if isinstance(project, tuple)
                              else (project,), event)
                self.assertIn(event["target"], target if isinstance(target, tuple)
                              else (target,), event)
                self.assertEqual(event["outcome"], "ok", event)
                if action == "execution.run":
                    self.assertEqual(event["code_sha256"], sha256(code.encode()), event)
                    self.assertIn(execution_id, json.dumps(event),
                                  "the execution.run event names the execution: %r" % event)
        # Filters.
        for event in audit_events(ADMIN, target=session_id):
            self.assertEqual(event["target"], session_id, event)
        actions = [e["action"] for e in audit_events(ADMIN, target=file_id)]
        for action in ("file.upload", "file.download", "file.delete"):
            self.assertIn(action, actions, "GET /v1/audit?target=%s" % file_id)
        mine = audit_events(ADMIN, principal="user-a1")
        self.assertTrue(mine)
        self.assertEqual({e["principal"] for e in mine}, {"user-a1"})
        in_b = audit_events(ADMIN, project=WORLD.b)
        self.assertTrue(in_b)
        self.assertEqual({e["project_id"] for e in in_b}, {WORLD.b})
        self.assertEqual(audit_events(ADMIN, project="proj-b"), in_b,
                         "?project= takes a project's name as well as its id")
        future = (datetime.datetime.now(datetime.timezone.utc) +
                  datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(audit_events(ADMIN, **{"from": future}), [])
        past = "2000-01-01T00:00:00Z"
        self.assertEqual(audit_events(ADMIN, to=past), [])
        self.assertError(ADMIN.get("/v1/audit?from=yesterday"), 400, "invalid_request", "from")

    def check_event_shape(self, event):
        self.assertIsInstance(event["seq"], int)
        self.assertRegex(event["id"], r"^evt_")
        self.assertTime(event["time"])
        self.assertRegex(event["hash"], HEX64_RE)
        self.assertRegex(event["prev_hash"], HEX64_RE)
        self.assertIsInstance(event.get("detail"), dict, event)

    def test_paging_and_chain(self):
        reply = ADMIN.get("/v1/audit?limit=2")
        self.assertEqual(reply.status, 200, reply)
        first = reply.json()
        self.assertEqual(first["object"], "list")
        self.assertEqual(len(first["data"]), 2)
        self.assertTrue(first["has_more"])
        self.assertEqual(first["last_seq"], first["data"][-1]["seq"])
        second = ADMIN.get("/v1/audit?limit=2&after_seq=%d" % first["last_seq"]).json()
        self.assertEqual(second["data"][0]["seq"], first["last_seq"] + 1)
        events = audit_events(ADMIN)
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)),
                         "seq runs 1, 2, … with no gap")
        self.assertEqual(events[0]["prev_hash"], ZERO_HASH)
        for before, after in zip(events, events[1:]):
            self.assertEqual(after["prev_hash"], before["hash"],
                             "event %d does not carry event %d's hash" %
                             (after["seq"], before["seq"]))

    def test_verify_over_the_api(self):
        code, output = run_cli("audit", "verify", "--url", SERVER.url(), "--key",
                               SERVER.admin_key)
        self.assertEqual(code, 0, "pycell audit verify --url … --key …: exit %d\n%s" %
                         (code, output))
        code, output = run_cli("audit", "verify", "--url", SERVER.url(), "--key",
                               WORLD.keys["auditor-all-b"].secret)
        self.assertEqual(code, 0, "an all-projects auditor verifies the chain: exit %d\n%s" %
                         (code, output))
        code, output = run_cli("audit", "verify", "--url", SERVER.url(), "--key",
                               WORLD.keys["user-a1"].secret)
        self.assertNotEqual(code, 0, "a user may not read the audit log: %s" % output)


class TestUnrecordedActionsFail(AccessTestCase):
    """"When the event cannot be written, the action fails (500) and nothing of it is kept": a
    trigger added to the running server's database refuses one principal's events of one
    action (the principal of a key made for this test, so nothing else is disturbed)."""

    def setUp(self):
        self.key = WORLD.make_key("unrecorded-" + serial(), WORLD.a, "user")
        self.triggers = []
        self.addCleanup(self.allow_events)

    def database(self):
        return sqlite3.connect(os.path.join(SERVER.data_dir, "pycell.db"), timeout=30)

    def refuse_events(self, action):
        name = "test_refuses_%s_%d" % (action.replace(".", "_"), len(self.triggers))
        db = self.database()
        try:
            db.execute("CREATE TRIGGER %s BEFORE INSERT ON audit_events WHEN NEW.principal = "
                       "'%s' AND NEW.action = '%s' BEGIN SELECT RAISE(ABORT, 'injected by "
                       "test_access.py'); END" % (name, self.key.principal, action))
            db.commit()
        finally:
            db.close()
        self.triggers.append(name)

    def allow_events(self):
        db = self.database()
        try:
            for name in self.triggers:
                db.execute("DROP TRIGGER IF EXISTS %s" % name)
            db.commit()
        finally:
            db.close()
        self.triggers = []

    def assertFailed(self, reply, what):
        self.assertEqual(reply.status, 500, "%s whose audit event cannot be written: want 500, "
                         "got %r" % (what, reply))

    def test_upload(self):
        data = ("unrecorded %s\n" % os.urandom(16).hex()).encode()
        name = unique("unrecorded", "txt")
        self.refuse_events("file.upload")
        self.assertFailed(self.key.client.upload_raw(name, data), "an upload")
        self.allow_events()
        self.assertNotIn(name, [f["filename"] for f in ADMIN.all_files()],
                         "the upload whose event failed was kept")
        digest = sha256(data)
        blob = os.path.join(SERVER.data_dir, "files", "blobs", digest[:2], digest)
        self.assertFalse(os.path.exists(blob), "its bytes were kept: %s" % blob)

    def test_download(self):
        data = ("secret %s\n" % os.urandom(16).hex()).encode()
        reply = self.key.client.upload_raw(unique("kept", "txt"), data)
        self.assertEqual(reply.status, 201, reply)
        self.refuse_events("file.download")
        reply = self.key.client.get("/v1/files/%s/content" % reply.json()["id"])
        self.assertFailed(reply, "a download")
        self.assertNotIn(data, reply.body, "the bytes went out before the event was written")

    def test_session_create(self):
        marker = "unrecorded-" + os.urandom(4).hex()
        self.refuse_events("session.create")
        self.assertFailed(self.key.client.create_session(metadata={"agent_id": marker}),
                          "a session")
        self.allow_events()
        sessions = ADMIN.get("/v1/sessions?limit=1000").json()["data"]
        kept = [s["id"] for s in sessions if s.get("metadata", {}).get("agent_id") == marker]
        self.assertEqual(kept, [], "the session whose event failed was kept")

    def test_execution(self):
        session = self.new_session(self.key.client)
        self.refuse_events("execution.run")
        self.assertFailed(self.key.client.execute(session["id"], "'unrecorded'"), "a cell")
        self.allow_events()
        listing = self.key.client.get("/v1/sessions/%s/executions" % session["id"])
        self.assertEqual(listing.status, 200, listing)
        self.assertEqual(listing.json()["data"], [], "the cell whose event failed left a record")
        self.run_ok(self.key.client, session["id"], "'recorded'")


# --- lineage ---------------------------------------------------------------------------------


class TestLineage(AccessTestCase):
    def test_two_step_chain(self):
        a1 = WORLD.keys["user-a1"].client
        reply = a1.upload_raw(unique("raw", "csv"), b"n\n1\n2\n3\n")
        self.assertEqual(reply.status, 201, reply)
        raw = reply.json()
        first = self.new_session(a1, file_ids=[raw["id"]], metadata={
            "agent_id": "lineage-agent", "thread_id": "thread-1", "run_id": "run-1"})
        code1 = ("rows = open('%s').read().split()[1:]\n"
                 "open('/mnt/data/out.csv', 'w').write('n\\n' + '\\n'.join(str(int(r) * 10) "
                 "for r in rows) + '\\n')" % raw["filename"])
        step1 = self.run_ok(a1, first["id"], code1)
        out = [a for a in step1["artifacts"] if a["filename"] == "out.csv"]
        self.assertEqual(len(out), 1, step1["artifacts"])
        out = out[0]
        second = self.new_session(a1, file_ids=[out["id"]], metadata={
            "agent_id": "lineage-agent-2", "thread_id": "thread-2", "run_id": "run-2"})
        code2 = ("total = sum(int(r) for r in open('out.csv').read().split()[1:])\n"
                 "open('/mnt/data/summary.csv', 'w').write('total\\n%d\\n' % total)")
        step2 = self.run_ok(a1, second["id"], code2)
        summary = [a for a in step2["artifacts"] if a["filename"] == "summary.csv"][0]

        reply = a1.get("/v1/files/%s/lineage" % summary["id"])
        self.assertEqual(reply.status, 200, reply)
        lineage = reply.json()
        self.assertEqual(lineage["file"]["id"], summary["id"])
        produced = lineage["produced_by"]
        self.assertIsNotNone(produced, lineage)
        execution, session = produced["execution"], produced["session"]
        self.assertEqual(execution["id"], step2["id"])
        self.assertEqual(execution["code"], code2)
        self.assertEqual(execution["code_sha256"], sha256(code2.encode()))
        self.assertEqual(execution["status"], "ok")
        self.assertTime(execution["started_at"])
        self.assertEqual(session["id"], second["id"])
        self.assertEqual(session["principal"], "user-a1", session)
        self.assertEqual(session["project_id"], WORLD.a, session)
        self.assertEqual((session["agent_id"], session["thread_id"], session["run_id"]),
                         ("lineage-agent-2", "thread-2", "run-2"), session)
        self.assertEqual(session["pool"], "default")
        self.assertIn("limits", session)
        inputs = {i["filename"]: i for i in produced["inputs"]}
        self.assertIn("out.csv", inputs, produced["inputs"])
        self.assertEqual(inputs["out.csv"]["file_id"], out["id"])
        self.assertEqual(inputs["out.csv"]["sha256"], out["sha256"])
        earlier = inputs["out.csv"].get("produced_by")
        self.assertIsNotNone(earlier, "out.csv was itself an output: its lineage recurses")
        self.assertEqual(earlier["execution"]["id"], step1["id"])
        self.assertEqual(earlier["execution"]["code_sha256"], sha256(code1.encode()))
        self.assertEqual(earlier["session"]["id"], first["id"])
        self.assertEqual(earlier["session"]["principal"], "user-a1")
        self.assertEqual((earlier["session"]["agent_id"], earlier["session"]["thread_id"],
                          earlier["session"]["run_id"]),
                         ("lineage-agent", "thread-1", "run-1"))
        raw_input = [i for i in earlier["inputs"] if i["file_id"] == raw["id"]]
        self.assertEqual(len(raw_input), 1, earlier["inputs"])
        self.assertEqual(raw_input[0]["sha256"], raw["sha256"])

        reply = a1.get("/v1/files/%s/lineage" % out["id"])
        self.assertEqual(reply.status, 200, reply)
        used_by = reply.json()["used_by"]
        self.assertIn(second["id"], [u["session_id"] for u in used_by], used_by)
        use = [u for u in used_by if u["session_id"] == second["id"]][0]
        self.assertIn(step2["id"], [e["id"] for e in use["executions"]], use)

        # An auditor of the project reads the same lineage; project B does not see it.
        reply = WORLD.keys["auditor-a"].client.get("/v1/files/%s/lineage" % summary["id"])
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), lineage)
        b1 = WORLD.keys["user-b1"].client
        self.assertHiddenLike(b1.get("/v1/files/%s/lineage" % summary["id"]),
                              b1.get("/v1/files/%s/lineage" % NEVER_MADE["file"]),
                              summary["id"], NEVER_MADE["file"], "user-b1 reads A's lineage")


# --- quotas ----------------------------------------------------------------------------------


CPU_LIMITS = ("0.0002", "2e-04", "2e-4", "0.72")


class TestQuotas(AccessTestCase):
    def project_with(self, quotas):
        name = "quota-" + os.urandom(3).hex()
        reply = ADMIN.post_json("/v1/projects", {"name": name, "quotas": quotas})
        self.assertEqual(reply.status, 201, reply)
        project = reply.json()
        for quota, value in quotas.items():
            self.assertEqual(project["quotas"].get(quota), value, project)
        key = WORLD.make_key("quota-user-" + os.urandom(2).hex(), name, "user")
        return project, key

    def assertQuotaExceeded(self, reply, quota, limits, what):
        """limits: the ways the limit may be written (e.g. ("0.0002", "2e-04"))."""
        error = self.assertError(reply, 429, "quota_exceeded")
        self.assertIn(quota, error["message"], "%s: the message names the quota" % what)
        limits = limits if isinstance(limits, tuple) else (str(limits),)
        self.assertTrue(any(limit in error["message"] for limit in limits),
                        "%s: the message names the limit (%s): %r" %
                        (what, " or ".join(limits), error["message"]))
        return error

    def quota_events(self, project_id):
        return by_request_id(audit_events(ADMIN, action="quota.exceeded", project=project_id))

    def test_concurrent_sessions(self):
        project, key = self.project_with({"concurrent_sessions": 1})
        first = key.client.create_session()
        self.assertEqual(first.status, 201, first)
        second = key.client.create_session()
        self.assertQuotaExceeded(second, "concurrent_sessions", 1, "a second session")
        self.assertEqual(ADMIN.delete("/v1/sessions/" + first.json()["id"]).status, 200)
        third = key.client.create_session()
        self.assertEqual(third.status, 201, "after the first session ended: %r" % third)
        self.assertEqual(key.client.delete("/v1/sessions/" + third.json()["id"]).status, 200)
        event = self.quota_events(project["id"]).get(second.header("x-request-id"))
        self.assertIsNotNone(event, "no quota.exceeded event for request %s" %
                             second.header("x-request-id"))
        self.assertEqual(event["outcome"], "quota_exceeded", event)
        self.assertEqual(event["principal"], key.principal, event)
        self.assertIn("concurrent_sessions", json.dumps(event.get("detail")), event)

    def test_sessions_per_day(self):
        project, key = self.project_with({"sessions_per_day": 1})
        first = key.client.create_session()
        self.assertEqual(first.status, 201, first)
        self.assertEqual(key.client.delete("/v1/sessions/" + first.json()["id"]).status, 200)
        second = key.client.create_session()
        self.assertQuotaExceeded(second, "sessions_per_day", 1, "a second session today")
        retry = second.header("retry-after")
        self.assertIsNotNone(retry, "a daily quota's 429 says when it resets (Retry-After)")
        now = datetime.datetime.now(datetime.timezone.utc)
        to_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
        self.assertLessEqual(abs(int(retry) - to_midnight), 120,
                             "Retry-After %s is not the time to 00:00 UTC (%d s)" %
                             (retry, to_midnight))
        # A quota of null is none.
        reply = ADMIN.patch_json("/v1/projects/" + project["id"],
                                 {"quotas": {"sessions_per_day": None}})
        self.assertEqual(reply.status, 200, reply)
        third = key.client.create_session()
        self.assertEqual(third.status, 201, "with the quota removed: %r" % third)
        ADMIN.delete("/v1/sessions/" + third.json()["id"])
        self.assertIn(second.header("x-request-id"), self.quota_events(project["id"]))

    def test_storage_bytes(self):
        project, key = self.project_with({"storage_bytes": 4000})
        first = key.client.upload_raw(unique("fill", "txt"), b"x" * 3000)
        self.assertEqual(first.status, 201, first)
        name = unique("overflow", "txt")
        refused = os.urandom(1500).hex().encode()
        second = key.client.upload_raw(name, refused)
        self.assertQuotaExceeded(second, "storage_bytes", 4000, "an upload past the quota")
        self.assertNotIn(name, [f["filename"] for f in key.client.all_files()],
                         "the refused upload was kept")
        # Nor its bytes: refused uploads must not fill the disk the quota protects.
        digest = sha256(refused)
        blob = os.path.join(SERVER.data_dir, "files", "blobs", digest[:2], digest)
        self.assertFalse(os.path.exists(blob), "the refused upload's bytes were kept: %s" % blob)
        self.assertEqual(key.client.delete("/v1/files/" + first.json()["id"]).status, 200)
        third = key.client.upload_raw(name, refused)
        self.assertEqual(third.status, 201, "after deleting a file: %r" % third)
        event = self.quota_events(project["id"]).get(second.header("x-request-id"))
        self.assertIsNotNone(event, "no quota.exceeded event for the refused upload")
        self.assertEqual(event["outcome"], "quota_exceeded", event)

    def test_cpu_hours_per_day(self):
        # 0.0002 h = 0.72 s: the first cell (1 s of CPU) may start, the next may not.
        project, key = self.project_with({"cpu_hours_per_day": 0.0002})
        session = self.new_session(key.client)
        self.run_ok(key.client, session["id"], BURN_CODE, timeout_s=30)
        reply = key.client.execute(session["id"], "1")
        self.assertQuotaExceeded(reply, "cpu_hours_per_day", CPU_LIMITS, "a cell past the CPU "
                                 "quota")
        self.assertIsNotNone(reply.header("retry-after"))
        reply = key.client.create_session()
        self.assertQuotaExceeded(reply, "cpu_hours_per_day", CPU_LIMITS, "a session past the "
                                 "CPU quota")


# --- servers of their own --------------------------------------------------------------------


PRICES_TOML = """\
[prices]
price_per_session = 0.03
price_per_cpu_hour = 36.0
currency = "USD"

[usage]
expected_session_s = 3

# Long sessions are looked for when the retention sweep runs.
[retention]
sweep_interval_s = 1
"""


class TestUsage(AccessTestCase):
    """A server with prices: a known workload (one session, a cell that burns ~1 s of CPU, an
    upload and a download) lands in GET /v1/usage within sensible bounds, priced."""

    @classmethod
    def setUpClass(cls):
        cls.server = serve("usage", OTHER_RUNTIME_DIR, PRICES_TOML)

    @classmethod
    def tearDownClass(cls):
        stop_quietly(cls.server)

    def test_known_workload(self):
        try:
            self.check_known_workload()
        except BaseException:
            print(self.server.log_tail(60), file=sys.stderr)
            raise

    def check_known_workload(self):
        admin = self.server.client()
        reply = admin.post_json("/v1/projects", {"name": "metered"})
        self.assertEqual(reply.status, 201, reply)
        project = reply.json()
        reply = admin.post_json("/v1/keys", {"principal": "meter-1", "project": "metered",
                                             "role": "user"})
        self.assertEqual(reply.status, 201, reply)
        user = admin.with_key(reply.json()["key"])
        reply = user.upload_raw(unique("blob", "txt"), os.urandom(50000).hex().encode())
        self.assertEqual(reply.status, 201, reply)
        uploaded = reply.json()
        size = uploaded["bytes"]
        content = "/v1/files/%s/content" % uploaded["id"]
        self.assertEqual(user.get(content).status, 200)
        # What was sent counts, not the file's size: 10 bytes of a range, nothing for a HEAD or
        # a 304.
        self.assertEqual(user.get(content, headers={"Range": "bytes=0-9"}).status, 206)
        self.assertEqual(user.request("HEAD", content).status, 200)
        etag = '"%s"' % uploaded["sha256"]
        self.assertEqual(user.get(content, headers={"If-None-Match": etag}).status, 304)
        downloaded = size + 10

        started = time.monotonic()
        reply = user.create_session(metadata={"agent_id": "burner"})
        self.assertEqual(reply.status, 201, reply)
        session_id = reply.json()["id"]
        self.assertIs(reply.json().get("over_expected_duration"), False, reply.json())
        record = self.run_ok(user, session_id, BURN_CODE, timeout_s=30)
        self.assertEqual(record["outputs"][0]["data"]["text/plain"], "'burnt'")
        # Past expected_session_s (3 s) the session is flagged, once in the log.
        deadline = time.monotonic() + 20
        flagged = None
        while time.monotonic() < deadline:
            flagged = user.get("/v1/sessions/" + session_id).json()
            if flagged.get("over_expected_duration") is True and \
                    self.log_mentions(session_id) >= 1:
                break
            time.sleep(0.5)
        self.assertIs(flagged.get("over_expected_duration"), True,
                      "a session past [usage] expected_session_s is flagged: %r" % flagged)
        self.assertEqual(self.log_mentions(session_id), 1, "one warning per session in the log")
        self.assertEqual(user.delete("/v1/sessions/" + session_id).status, 200)
        wall = time.monotonic() - started

        agents = self.usage(admin, "agent")
        rows = {row["key"]: row for row in agents["data"]}
        self.assertIn("burner", rows, agents)
        burner = rows["burner"]
        self.assertEqual(burner["sessions"], 1, burner)
        self.assertEqual(burner["executions"], 1, burner)
        self.assertGreaterEqual(burner["cpu_seconds"], 0.8, "a cell that burns 1 s of CPU: %r"
                                % burner)
        self.assertLessEqual(burner["cpu_seconds"], 3.0, burner)
        self.assertGreater(burner["session_seconds"], 1.0, burner)
        self.assertLessEqual(burner["session_seconds"], wall + 2, burner)
        self.assertGreater(burner["peak_memory_bytes"], 1 << 20, burner)
        self.check_cost(burner)
        self.assertIn("", rows, "uploads outside a session fall under agent \"\": %r" % agents)
        self.assertGreaterEqual(rows[""]["bytes_uploaded"], size, rows[""])
        self.assertEqual(agents["currency"], "USD")
        self.assertEqual(agents["group_by"], "agent")
        self.assertEqual(agents["object"], "usage")
        self.assertIn(0.03, agents["prices"].values(), agents["prices"])
        self.assertIn(36.0, agents["prices"].values(), agents["prices"])
        self.assertTime(agents["from"])
        self.assertTime(agents["to"])

        for group_by, key in (("principal", "meter-1"), ("project", None)):
            with self.subTest(group_by=group_by):
                usage = self.usage(admin, group_by)
                rows = {row["key"]: row for row in usage["data"]}
                if key is None:
                    key = project["id"] if project["id"] in rows else "metered"
                self.assertIn(key, rows, usage)
                row = rows[key]
                if group_by == "project":
                    by_name = self.usage(admin, group_by, project="metered")
                    self.assertEqual([r["key"] for r in by_name["data"]], [key],
                                     "?project= takes the project's name: %r" % by_name)
                self.assertEqual(row["sessions"], 1, row)
                self.assertEqual(row["executions"], 1, row)
                self.assertGreaterEqual(row["cpu_seconds"], 0.8, row)
                self.assertLessEqual(row["cpu_seconds"], 3.0, row)
                self.assertEqual(row["bytes_uploaded"], size, row)
                self.assertEqual(row["bytes_downloaded"], downloaded,
                                 "one whole download (%d bytes) and a 10-byte range: %r" %
                                 (size, row))
                self.assertGreater(row["storage_byte_hours"], 0, row)
                self.check_cost(row)
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        days = self.usage(admin, "day")
        rows = {row["key"]: row for row in days["data"]}
        self.assertIn(today, rows, days)
        self.assertGreaterEqual(rows[today]["sessions"], 1)
        total = days["total"]
        for field in ("sessions", "session_seconds", "executions", "cpu_seconds",
                      "peak_memory_bytes", "bytes_uploaded", "bytes_downloaded",
                      "storage_byte_hours", "cost"):
            self.assertIn(field, total, total)
        self.check_cost(total)
        # A period after now holds nothing.
        now = datetime.datetime.now(datetime.timezone.utc)
        later = self.usage(admin, "agent", **{
            "from": (now + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to": (now + datetime.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")})
        self.assertNotIn("burner", {row["key"] for row in later["data"]}, later)
        self.assertError(admin.get("/v1/usage?group_by=color"), 400, "invalid_request",
                         "group_by")

    def usage(self, client, group_by, **query):
        reply = client.get("/v1/usage?" + urllib.parse.urlencode(dict(query, group_by=group_by)))
        self.assertEqual(reply.status, 200, reply)
        return reply.json()

    def check_cost(self, row):
        cost = row["cost"]
        self.assertAlmostEqual(cost["sessions"], 0.03 * row["sessions"], places=6, msg=row)
        self.assertAlmostEqual(cost["cpu"], row["cpu_seconds"] / 3600 * 36.0, places=5, msg=row)
        parts = cost["sessions"] + cost["cpu"] + cost["storage"] + cost["transfer"]
        self.assertAlmostEqual(cost["total"], parts, places=6, msg=row)

    def log_mentions(self, session_id):
        try:
            with open(self.server.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
        except OSError:
            return 0
        return sum(1 for line in log.splitlines() if session_id in line and
                   ("expected" in line.lower() or "duration" in line.lower()))


class TestBootstrap(AccessTestCase):
    """The first start makes the default project and an admin key in <data-dir>/admin.key
    (0600), says so in the log without the secret; a restart keeps it."""

    def test_first_start_and_restart(self):
        server = serve("bootstrap", OTHER_RUNTIME_DIR)
        try:
            path = os.path.join(server.data_dir, "admin.key")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, "admin.key must be 0600")
            key = server.admin_key
            secret = pycell_server.KEY_RE.match(key).group(2)
            me = server.client().get("/v1/me")
            self.assertEqual(me.status, 200, me)
            me = key_of_me(me.json())
            self.assertEqual((me["role"], me["principal"]), ("admin", "admin"), me)
            projects = server.client().get("/v1/projects").json()["data"]
            default = [p for p in projects if p["id"] == me["project_id"]]
            self.assertEqual([p["name"] for p in default], ["default"], projects)
            with open(server.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace") + "\n".join(server.stdout_lines)
            announced = log.count("admin.key")
            self.assertGreaterEqual(announced, 1, "the log says where the admin key was written")
            self.assertNotIn(secret, log, "the log shows the admin key's secret")
            self.assertEqual(server.stop(), 0)
            server.start(extra_args=())
            self.assertEqual(server.admin_key, key, "a restart replaced admin.key")
            self.assertEqual(server.client().get("/v1/me").status, 200)
            with open(server.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace") + "\n".join(server.stdout_lines)
            self.assertEqual(log.count("admin.key"), announced,
                             "the admin key is announced once, at the first start, not again")
        finally:
            stop_quietly(server)


class TestRateLimit(AccessTestCase):
    """More than 20 failed authentications from one address within 60 s: its failures are 429
    too_many_failures for the rest of the minute, with no event per refusal; its valid keys are
    still accepted. On a server of its own, since it locks this machine's failures out."""

    def test_failures_are_rate_limited(self):
        server = serve("ratelimit", OTHER_RUNTIME_DIR)
        try:
            self.check_rate_limit(server)
        except BaseException:
            print(server.log_tail(60), file=sys.stderr)
            raise
        finally:
            stop_quietly(server)

    def check_rate_limit(self, server):
        bad = server.client("pyc_%s_%s" % ("0" * 26, "0" * 32))
        replies = [bad.get("/v1/me") for _ in range(25)]
        statuses = [r.status for r in replies]
        self.assertEqual(statuses[:20], [401] * 20, "the first 20 failures are 401s: %r" %
                         statuses)
        self.assertIn(statuses[20], (401, 429), statuses)
        self.assertEqual(statuses[21:], [429] * 4, "past 20 failures in a minute: 429 %r" %
                         statuses)
        for reply in replies[21:]:
            self.assertError(reply, 429, "too_many_failures")
            retry = reply.header("retry-after")
            self.assertIsNotNone(retry, "a 429 says how long with Retry-After")
            self.assertTrue(1 <= int(retry) <= 60, "Retry-After %r: within the minute" % retry)
        # Its failures are refused whatever they claim to come from (no trusted proxy is set,
        # so X-Forwarded-For is ignored) — but a valid key from the same address is never
        # refused (issue 16, row 8: one client behind a proxy locked out everyone).
        spoofed = bad.get("/v1/me", headers={"X-Forwarded-For": "203.0.113.9",
                                             "X-Real-IP": "203.0.113.9"})
        self.assertError(spoofed, 429, "too_many_failures")
        self.assertEqual(server.client().get("/v1/me").status, 200,
                         "the failed-key lockout refused a valid key")
        self.assertError(server.client().with_key(None).get("/v1/me"), 429, "too_many_failures")
        self.assertEqual(server.stop(), 0)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(server.data_dir, "pycell.db"),
                             uri=True)
        try:
            denied = db.execute("SELECT COUNT(*) FROM audit_events WHERE action = "
                                "'auth.denied'").fetchone()[0]
        finally:
            db.close()
        self.assertGreaterEqual(denied, 20, "every 401 is audited")
        self.assertLessEqual(denied, 22, "the refusals past the limit fill the log (%d "
                             "auth.denied events for 20 failures and 7 refusals)" % denied)


class TestAuditTampering(AccessTestCase):
    """With the server stopped, events are changed, deleted and swapped in SQLite; `pycell audit
    verify --data-dir` finds each and names the first broken event."""

    @classmethod
    def setUpClass(cls):
        cls.server = serve("tamper", OTHER_RUNTIME_DIR)
        try:
            admin = cls.server.client()
            for i in range(3):
                assert admin.post_json("/v1/projects", {"name": "t%d" % i}).status == 201
                created = admin.post_json("/v1/keys", {"principal": "p%d" % i, "project":
                                                       "t%d" % i, "role": "user"}).json()
                assert admin.delete("/v1/keys/" + created["id"]).status == 200
            # A session the shutdown ends: its session.end is the system's.
            reply = admin.create_session()
            assert reply.status == 201, reply
            cls.session_id = reply.json()["id"]
            cls.stop_code = cls.server.stop()
        except BaseException:
            print(cls.server.log_tail(60), file=sys.stderr)
            stop_quietly(cls.server)
            raise
        cls.db_path = os.path.join(cls.server.data_dir, "pycell.db")
        cls.backup = os.path.join(WORK_DIR, "tamper-backup.db")
        shutil.copyfile(cls.db_path, cls.backup)

    def setUp(self):
        self.assertEqual(self.stop_code, 0)
        self.restore()

    def restore(self):
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.db_path + suffix):
                os.remove(self.db_path + suffix)
        shutil.copyfile(self.backup, self.db_path)

    def tamper(self, *statements):
        db = sqlite3.connect(self.db_path)
        try:
            # The triggers that refuse changes are what an intruder drops first.
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                      "AND tbl_name = 'audit_events'").fetchall():
                db.execute('DROP TRIGGER "%s"' % name)
            for statement, args in statements:
                db.execute(statement, args)
            db.commit()
        finally:
            db.close()

    def rows(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM audit_events ORDER BY seq")]
        finally:
            db.close()

    def verify(self):
        return run_cli("audit", "verify", "--data-dir", self.server.data_dir)

    def assertBrokenAt(self, seqs, what):
        code, output = self.verify()
        self.assertEqual(code, 1, "%s: pycell audit verify --data-dir exits %d, want 1\n%s" %
                         (what, code, output))
        named = [s for s in seqs if re.search(r"(seq|event)\D{0,4}%d\b" % s, output)]
        self.assertTrue(named, "%s: the output does not name seq %s:\n%s" %
                        (" or ".join(map(str, seqs)), what, output))

    def test_intact_chain_verifies(self):
        code, output = self.verify()
        self.assertEqual(code, 0, "the untouched log: exit %d\n%s" % (code, output))
        rows = self.rows()
        self.assertGreaterEqual(len(rows), 9, "3 project.create, 3 key.create, 3 key.revoke")

    def test_hash_follows_the_documented_formula(self):
        previous = ZERO_HASH
        for row in self.rows():
            array = [row["seq"], row["id"], row["time_ms"], row["principal"], row["project_id"],
                     row["key_id"], row["action"], row["target"], row["outcome"],
                     row["request_id"], row["code_sha256"], json.loads(row["detail_json"]),
                     row["prev_hash"]]
            canonical = json.dumps(array, separators=(",", ":"), sort_keys=True,
                                   ensure_ascii=False)
            self.assertEqual(row["prev_hash"], previous, row)
            self.assertEqual(row["hash"], sha256(canonical.encode()),
                             "event %d's hash is not SHA-256 of %s" % (row["seq"], canonical))
            previous = row["hash"]

    def test_one_changed_byte(self):
        target = self.rows()[4]
        principal = target["principal"]
        changed = chr(ord(principal[0]) ^ 1) + principal[1:]
        self.tamper(("UPDATE audit_events SET principal = ? WHERE seq = ?",
                     (changed, target["seq"])))
        self.assertBrokenAt([target["seq"]], "one byte of event %d's principal changed" %
                            target["seq"])
        self.restore()
        detail = self.rows()[6]
        self.tamper(("UPDATE audit_events SET time_ms = time_ms + 1 WHERE seq = ?",
                     (detail["seq"],)))
        self.assertBrokenAt([detail["seq"]], "event %d's time moved by 1 ms" % detail["seq"])

    def test_deleted_event(self):
        seq = self.rows()[3]["seq"]
        self.tamper(("DELETE FROM audit_events WHERE seq = ?", (seq,)))
        self.assertBrokenAt([seq, seq + 1], "event %d deleted" % seq)

    def test_swapped_events(self):
        rows = self.rows()
        first, second = rows[2], rows[3]
        columns = [c for c in first if c != "seq"]
        assignments = ", ".join("%s = ?" % c for c in columns)
        self.tamper(
            ("UPDATE audit_events SET id = 'swap-tmp' WHERE seq = ?", (first["seq"],)),
            ("UPDATE audit_events SET %s WHERE seq = ?" % assignments,
             tuple(first[c] for c in columns) + (second["seq"],)),
            ("UPDATE audit_events SET %s WHERE seq = ?" % assignments,
             tuple(second[c] for c in columns) + (first["seq"],)))
        self.assertBrokenAt([first["seq"]], "events %d and %d swapped" %
                            (first["seq"], second["seq"]))

    def test_shutdown_ends_sessions_as_system(self):
        ends = [r for r in self.rows() if r["action"] == "session.end" and
                r["target"] == self.session_id]
        self.assertEqual(len(ends), 1, "want one session.end event for the session SIGTERM "
                         "ended: %r" % ends)
        self.assertEqual(ends[0]["principal"], "system", ends[0])

    def test_export(self):
        code, output = run_cli("audit", "export", "--data-dir", self.server.data_dir)
        self.assertEqual(code, 0, output)
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        rows = self.rows()
        self.assertEqual([e["seq"] for e in lines], [r["seq"] for r in rows],
                         "pycell audit export prints every event, one JSON object a line")
        self.assertEqual([e["hash"] for e in lines], [r["hash"] for r in rows])

    def test_live_tampering_is_found_over_the_api(self):
        self.server.start(extra_args=())
        try:
            seq = self.rows()[5]["seq"]
            self.tamper(("UPDATE audit_events SET target = target || 'x' WHERE seq = ?", (seq,)))
            code, output = run_cli("audit", "verify", "--url", self.server.url(), "--key",
                                   self.server.admin_key)
            self.assertEqual(code, 1, "verify --url after event %d was edited: exit %d\n%s" %
                             (seq, code, output))
            self.assertTrue(re.search(r"(seq|event)\D{0,4}%d\b" % seq, output),
                            "verify --url does not name event %d:\n%s" % (seq, output))
        finally:
            self.assertEqual(self.server.stop(), 0)

    def test_restored_log_verifies_again(self):
        self.tamper(("DELETE FROM audit_events WHERE seq = ?", (2,)))
        self.restore()
        code, output = self.verify()
        self.assertEqual(code, 0, output)


# --- main ------------------------------------------------------------------------------------


def main():
    global PYCELL
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
