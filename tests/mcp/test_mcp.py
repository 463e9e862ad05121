#!/usr/bin/python3
"""MCP at /mcp (docs/mcp.md), black-box, with the official TypeScript SDK client.

Usage:
  test_mcp.py --pycell PATH [--npm-cache DIR] [unittest arguments, e.g. -v or -k Stdio]

One `pycell serve` runs for the module (tests/pycell_server.py). The SDK client
(`@modelcontextprotocol/sdk`, pinned in package.json) is installed by this test with npm into
--npm-cache (default: tests/mcp/node_modules' folder; CTest passes <build>/mcp-node), and
client.mjs runs against the server: initialize, tools with schemas, state across two calls, a
matplotlib chart as image content, artifacts as resource links fetched with download_file, files
and sessions, tool errors, progress notifications for a 3-second cell and cancellation of a long
one. The transport's answers to bad requests, the per-tool permission check (with its audit
event) and `pycell mcp` over stdio are checked here directly.

Needs `node` and `npm` (Debian: `apt-get install nodejs npm`, or scripts/install-deps.sh).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import pycell_server  # noqa: E402  (tests/pycell_server.py)

PYCELL = None
NPM_CACHE = None
WORK_DIR = None
SERVER = None
ADMIN = None
SDK_RUN = None  # client.mjs's JSON output.
RUNTIME_DIR = "/run/pycell-mcp-tests"
ACCEPT = "application/json, text/event-stream"


def install_sdk():
    """npm install of package.json into NPM_CACHE (once per pinned version); the folder to run
    client.mjs from."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise RuntimeError("the MCP tests need `%s`: install Debian's nodejs and npm "
                               "(apt-get install nodejs npm, or scripts/install-deps.sh)" % tool)
    os.makedirs(NPM_CACHE, exist_ok=True)
    with open(os.path.join(HERE, "package.json")) as f:
        wanted = json.load(f)["dependencies"]["@modelcontextprotocol/sdk"]
    installed = os.path.join(NPM_CACHE, "node_modules", "@modelcontextprotocol", "sdk", "package.json")
    if os.path.realpath(NPM_CACHE) != HERE:
        shutil.copy(os.path.join(HERE, "package.json"), NPM_CACHE)
        shutil.copy(os.path.join(HERE, "client.mjs"), NPM_CACHE)
    try:
        with open(installed) as f:
            if json.load(f)["version"] == wanted:
                return NPM_CACHE
    except (OSError, ValueError, KeyError):
        pass
    run = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=NPM_CACHE, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError("npm install of @modelcontextprotocol/sdk@%s failed (exit %d):\n%s%s" %
                           (wanted, run.returncode, run.stdout, run.stderr))
    return NPM_CACHE


def setUpModule():
    global WORK_DIR, SERVER, ADMIN, SDK_RUN
    folder = install_sdk()
    SERVER, WORK_DIR = pycell_server.ServeProcess.in_new_folder(PYCELL, "pycell-mcp-tests-", RUNTIME_DIR)

    def setup():
        global ADMIN
        ADMIN = SERVER.client()
        run = subprocess.run(["node", os.path.join(folder, "client.mjs"), SERVER.url(),
                              SERVER.admin_key], cwd=folder, capture_output=True, text=True,
                             timeout=600)
        lines = [l for l in run.stdout.splitlines() if l.startswith("{")]
        if run.returncode != 0 or not lines:
            raise RuntimeError("client.mjs failed (exit %d):\nstdout: %s\nstderr: %s" %
                               (run.returncode, run.stdout[-4000:], run.stderr[-4000:]))
        return json.loads(lines[-1])

    SDK_RUN = pycell_server.start_for_module(SERVER, setup)


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


def rpc(method, params=None, id=1):
    message = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    return message


def post(client, message=None, raw=None, headers=None, timeout=120):
    h = {"Accept": ACCEPT}
    h.update(headers or {})
    return client.post_json("/mcp", message, raw=raw, headers=h, timeout=timeout)


def sse_messages(body):
    """The JSON-RPC messages of a text/event-stream body."""
    out = []
    for event in body.decode("utf-8").split("\n\n"):
        data = [l[5:].lstrip() for l in event.splitlines() if l.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


class TestSdkClient(unittest.TestCase):
    """What the official SDK client saw (client.mjs)."""

    def check(self, name):
        result = SDK_RUN["checks"].get(name)
        self.assertIsNotNone(result, "client.mjs did not run check %r: %r" % (name, SDK_RUN))
        self.assertTrue(result["ok"], json.dumps(result["detail"], indent=1)[:6000])

    def test_initialize(self):
        self.check("initialize")

    def test_list_tools_with_schemas(self):
        self.check("list_tools")

    def test_state_across_calls(self):
        self.check("state")

    def test_chart_as_image(self):
        self.check("chart")

    def test_artifact_fetched_with_download_file(self):
        self.check("artifact")

    def test_files_and_sessions(self):
        self.check("files")

    def test_tool_errors_are_results(self):
        self.check("tool_error")

    def test_progress_notifications(self):
        self.check("progress")

    def test_cancellation_interrupts_the_cell(self):
        self.check("cancel")
        # The cancelled cell was interrupted (KeyboardInterrupt), not left to run.
        reply = ADMIN.get("/v1/sessions/%s/executions?limit=1000" % SDK_RUN["session_id"])
        self.assertEqual(reply.status, 200, reply)
        interrupted = [e for e in reply.json()["data"]
                       if (e.get("error") or {}).get("ename") == "KeyboardInterrupt"]
        self.assertEqual(len(interrupted), 1, [e["status"] for e in reply.json()["data"]])
        audit = ADMIN.get("/v1/audit?action=execution.interrupt&limit=100").json()["data"]
        self.assertTrue(any(e["target"] == SDK_RUN["session_id"] for e in audit), audit)

    def test_terminate_session(self):
        self.check("terminate")


class TestTransport(unittest.TestCase):
    """The Streamable HTTP transport's answers, by hand."""

    def test_get_is_not_offered(self):
        reply = ADMIN.get("/mcp", headers={"Accept": "text/event-stream"})
        self.assertEqual(reply.status, 405, reply)

    def test_foreign_origin_refused(self):
        # DNS rebinding: a page of another site in the user's browser must not reach /mcp.
        reply = post(ADMIN, rpc("ping", id=1), headers={"Origin": "https://evil.example"})
        self.assertEqual(reply.status, 403, reply)
        self.assertIn("Origin", reply.json()["error"]["message"])
        for origin in ("http://localhost:3000", "http://127.0.0.1",
                       "http://%s:%d" % (SERVER.host, SERVER.port)):
            reply = post(ADMIN, rpc("ping", id=2), headers={"Origin": origin})
            self.assertEqual(reply.status, 200, (origin, reply))

    def test_key_required(self):
        reply = post(ADMIN.with_key(None), rpc("ping"))
        self.assertEqual(reply.status, 401, reply)

    def test_parse_error(self):
        reply = post(ADMIN, raw=b"{not json")
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json()["error"]["code"], -32700)
        self.assertIsNone(reply.json()["id"])

    def test_batch_refused(self):
        reply = post(ADMIN, raw=json.dumps([rpc("ping", id=1), rpc("ping", id=2)]).encode())
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json()["error"]["code"], -32600)

    def test_unknown_method(self):
        reply = post(ADMIN, rpc("prompts/list", id="r1"))
        self.assertEqual(reply.status, 200, reply)
        self.assertEqual(reply.json(), {"jsonrpc": "2.0", "id": "r1", "error": {
            "code": -32601, "message": "Method not found: prompts/list"}})

    def result_of(self, reply):
        self.assertEqual(reply.status, 200, reply)
        body = reply.json() if reply.header("content-type").startswith("application/json") \
            else sse_messages(reply.body)[-1]
        return body

    def test_resources_read_artifacts_and_session_files(self):
        ran = self.result_of(post(ADMIN, rpc("tools/call", {"name": "execute_python", "arguments": {
            "code": "open('/mnt/data/r.txt', 'w').write('via resources')"}}, id=7)))
        structured = ran["result"]["structuredContent"]
        session_id, artifact = structured["session_id"], structured["artifacts"][0]
        link = [c for c in ran["result"]["content"] if c["type"] == "resource_link"][0]
        read = self.result_of(post(ADMIN, rpc("resources/read", {"uri": link["uri"]}, id=8)))
        self.assertEqual(read["result"]["contents"][0]["text"], "via resources", read)
        self.assertEqual(read["result"]["contents"][0]["uri"], "pycell://files/" + artifact["file_id"])
        live = self.result_of(post(ADMIN, rpc("resources/read", {
            "uri": "pycell://sessions/%s/files/r.txt" % session_id}, id=9)))
        self.assertEqual(live["result"]["contents"][0]["text"], "via resources", live)
        for uri in ("pycell://files/file_00000000000000000000000000", "https://example.com/x",
                    "pycell://sessions/%s/files/absent.txt" % session_id):
            missing = self.result_of(post(ADMIN, rpc("resources/read", {"uri": uri}, id=10)))
            self.assertEqual(missing["error"]["code"], -32002, (uri, missing))
        templates = self.result_of(post(ADMIN, rpc("resources/templates/list", id=11)))
        self.assertEqual(sorted(t["uriTemplate"] for t in templates["result"]["resourceTemplates"]),
                         ["pycell://files/{file_id}",
                          "pycell://sessions/{session_id}/files/{path}"])
        listed = self.result_of(post(ADMIN, rpc("resources/list", id=12)))
        self.assertEqual(listed["result"], {"resources": []})
        # Another project's key reads nothing of it: as for an id that never existed.
        project = ADMIN.post_json("/v1/projects", {"name": "mcp-other"}).json()
        key = pycell_server.create_key(ADMIN, "mcp-stranger", project["id"], "user")
        other = self.result_of(post(ADMIN.with_key(key), rpc("resources/read", {"uri": link["uri"]},
                                                                id=13)))
        self.assertEqual(other["error"]["code"], -32002, other)
        ADMIN.delete("/v1/sessions/" + session_id)

    def test_notification_accepted(self):
        reply = post(ADMIN, rpc("notifications/initialized", id=None))
        self.assertEqual(reply.status, 202, reply)
        self.assertEqual(reply.body, b"")

    def test_sessions(self):
        init = post(ADMIN, rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                              "clientInfo": {"name": "t", "version": "1"}}))
        self.assertEqual(init.status, 200, init)
        session = init.header("mcp-session-id")
        self.assertTrue(session and session.startswith("mcp_"), init.headers)
        headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"}
        self.assertEqual(post(ADMIN, rpc("ping"), headers=headers).json()["result"], {})
        # Another key cannot use it.
        created = ADMIN.post_json("/v1/keys", {"principal": "mcp-other", "role": "user"})
        self.assertEqual(created.status, 201, created)
        other = ADMIN.with_key(created.json()["key"])
        self.assertEqual(post(other, rpc("ping"), headers=headers).status, 404)
        self.assertEqual(post(ADMIN, rpc("ping"), headers={"MCP-Protocol-Version": "1999-01-01"}).status, 400)
        self.assertEqual(ADMIN.request("DELETE", "/mcp", headers=headers).status, 204)
        self.assertEqual(post(ADMIN, rpc("ping"), headers=headers).status, 404)
        self.assertEqual(ADMIN.request("DELETE", "/mcp").status, 400)

    def test_tools_call_streams_events(self):
        reply = post(ADMIN, rpc("tools/call", {"name": "execute_python",
                                               "arguments": {"code": "import time; time.sleep(2.5); 6*7"},
                                               "_meta": {"progressToken": 9}}, id=5))
        self.assertEqual(reply.status, 200, reply)
        self.assertTrue(reply.header("content-type").startswith("text/event-stream"), reply.headers)
        messages = sse_messages(reply.body)
        progress = [m for m in messages if m.get("method") == "notifications/progress"]
        self.assertGreaterEqual(len(progress), 2, messages)
        self.assertTrue(all(m["params"]["progressToken"] == 9 for m in progress))
        final = messages[-1]
        self.assertEqual(final["id"], 5)
        self.assertEqual(final["result"]["structuredContent"]["result"], "42")
        ADMIN.delete("/v1/sessions/" + final["result"]["structuredContent"]["session_id"])

    def test_json_answer_without_event_stream(self):
        reply = ADMIN.post_json("/mcp", rpc("tools/call", {"name": "execute_python",
                                                           "arguments": {"code": "2+2"}}),
                                headers={"Accept": "application/json"})
        self.assertEqual(reply.status, 200, reply)
        result = reply.json()["result"]
        self.assertEqual(result["structuredContent"]["result"], "4")
        ADMIN.delete("/v1/sessions/" + result["structuredContent"]["session_id"])

    def test_execute_python_says_what_is_installed(self):
        # The description the model reads names every package of the default environment.
        listed = ADMIN.post_json("/mcp", rpc("tools/list"), headers={"Accept": "application/json"})
        tools = {t["name"]: t for t in listed.json()["result"]["tools"]}
        description = tools["execute_python"]["description"]
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "kernel",
                            "packages.json")
        with open(path, encoding="utf-8") as f:
            for package in json.load(f)["packages"]:
                self.assertRegex(description, r"\b%s\b" % re.escape(package["import"]))

    def test_every_tool_refuses_an_undeclared_argument(self):
        # One check for all tools, derived from each tool's input schema: nothing runs, nothing
        # is created, and the error names the argument and what the tool takes.
        listed = ADMIN.post_json("/mcp", rpc("tools/list"), headers={"Accept": "application/json"})
        tools = listed.json()["result"]["tools"]
        self.assertEqual(len(tools), 6, [t["name"] for t in tools])
        before = ADMIN.get("/v1/sessions?status=active").json()["data"]
        for tool in tools:
            declared = sorted(tool["inputSchema"]["properties"])
            reply = ADMIN.post_json("/mcp", rpc("tools/call", {
                "name": tool["name"], "arguments": {"surprise": True}}),
                headers={"Accept": "application/json"})
            result = reply.json()["result"]
            self.assertTrue(result["isError"], (tool["name"], result))
            text = result["content"][0]["text"]
            self.assertIn('unknown argument "surprise"', text, tool["name"])
            self.assertIn(", ".join(declared), text, tool["name"])
        self.assertEqual(ADMIN.get("/v1/sessions?status=active").json()["data"], before)


class TestPermissions(unittest.TestCase):
    """Each tool checks the permission of its REST route; a refusal is a tool error, audited."""

    def test_auditor_may_not_run_code(self):
        created = ADMIN.post_json("/v1/keys", {"principal": "mcp-auditor", "role": "auditor"})
        self.assertEqual(created.status, 201, created)
        auditor = ADMIN.with_key(created.json()["key"])
        reply = post(auditor, rpc("tools/call", {"name": "execute_python",
                                                 "arguments": {"code": "1"}}, id=3))
        messages = sse_messages(reply.body) if reply.header("content-type").startswith(
            "text/event-stream") else [reply.json()]
        result = messages[-1]["result"]
        self.assertTrue(result["isError"], result)
        self.assertIn("executions.run", result["content"][0]["text"])
        denied = ADMIN.get("/v1/audit?action=auth.denied&limit=1000").json()["data"]
        routes = [json.loads(e["detail"]).get("route") if isinstance(e["detail"], str)
                  else e["detail"].get("route") for e in denied]
        self.assertIn("MCP tools/call execute_python", routes)


class TestStdio(unittest.TestCase):
    """`pycell mcp`: JSON-RPC lines on stdin, forwarded to the server, answers on stdout."""

    def test_initialize_list_execute(self):
        proc = subprocess.Popen([PYCELL, "mcp", "--url", SERVER.url(), "--key", SERVER.admin_key],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()

        def send(message):
            proc.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
            proc.stdin.flush()

        def wait_for(id, timeout=120):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for line in list(lines):
                    m = json.loads(line)
                    if m.get("id") == id and ("result" in m or "error" in m):
                        return m
                time.sleep(0.05)
            self.fail("no answer to id %r on stdout: %r" % (id, lines))

        send(rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "stdio-test", "version": "1"}}, id=1))
        self.assertEqual(wait_for(1)["result"]["serverInfo"]["name"], "pycell")
        send(rpc("notifications/initialized", id=None))
        send(rpc("tools/list", id=2))
        self.assertEqual(len(wait_for(2)["result"]["tools"]), 6)
        send(rpc("tools/call", {"name": "execute_python", "arguments": {"code": "print('hi'); 20+22"},
                                "_meta": {"progressToken": "p"}}, id=3))
        call = wait_for(3)
        self.assertEqual(call["result"]["structuredContent"]["result"], "42", call)
        self.assertEqual(call["result"]["structuredContent"]["stdout"], "hi\n")
        send("{broken")
        send(rpc("nope/nope", id=4))
        self.assertEqual(wait_for(4)["error"]["code"], -32601)
        proc.stdin.close()
        rc = proc.wait(60)
        errors = proc.stderr.read()
        proc.stderr.close()
        reader.join(10)
        proc.stdout.close()
        self.assertEqual(rc, 0, errors)
        parsed = [json.loads(l) for l in lines]  # Every line is one JSON-RPC message.
        self.assertTrue(all(m.get("jsonrpc") == "2.0" for m in parsed), lines)
        self.assertTrue(any(m.get("error", {}).get("code") == -32700 for m in parsed), lines)
        ADMIN.delete("/v1/sessions/" + call["result"]["structuredContent"]["session_id"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pycell", required=True)
    parser.add_argument("--npm-cache", default=HERE)
    args, rest = parser.parse_known_args()
    PYCELL = os.path.abspath(args.pycell)
    NPM_CACHE = os.path.abspath(args.npm_cache)
    unittest.main(argv=[sys.argv[0]] + rest)
