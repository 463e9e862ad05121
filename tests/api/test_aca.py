"""Azure Container Apps dynamic sessions routes (docs/aca.md), black-box against `pycell serve`.

The requests are those the framework clients send, replayed with their URLs, query strings,
headers, bodies and multipart layouts as their source builds them, and every field those clients
read is checked:
  - LangChain  langchain_azure_dynamic_sessions/tools/sessions.py (SessionsPythonREPLTool): requests;
    ?identifier=…&api-version=2024-02-02-preview; reads properties.result/stdout/stderr,
    value[0].properties.filename/size.
  - Semantic Kernel  core_plugins/sessions_python_tool/sessions_python_plugin.py: httpx; endpoint
    "code/execute/" (trailing slash stripped), ?identifier=…&api-version=…; body with
    timeoutInSeconds 100; upload filename "/mnt/data/<name>"; reads value[].properties.filename/size.
  - AutoGen  autogen_ext/code_executors/azure/_azure_container_code_executor.py: aiohttp;
    ?api-version=…&identifier=…; reads properties.status ("Success"/"Failure" substring),
    stdout, stderr, result; aiohttp FormData (Content-Type before Content-Disposition).
  - LlamaIndex  tools/azure_code_interpreter/base.py: requests; code with "\\n" appended; reads
    properties.result.base64_data/format; upload filename "/mnt/data/<name>".
Standard library only.
"""

import base64
import json
import os
import sys
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pycell_server  # noqa: E402

PYCELL = None
WORK_DIR = None
SERVER = None
ADMIN = None
USER_A = None
USER_B = None
RUNTIME_DIR = "/run/pycell-aca-tests"
LEGACY = "2024-02-02-preview"
CURRENT = "2025-02-02-preview"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

expect = pycell_server.expect


def langchain_url(path, identifier, prefix="/aca"):
    # _build_url: endpoint + "/" + path + "?identifier=<quote>&api-version=2024-02-02-preview"
    return "%s/%s?identifier=%s&api-version=%s" % (prefix, path, urllib.parse.quote(identifier),
                                                    LEGACY)


def autogen_url(path, identifier):
    # _construct_url: endpoint + path + "?api-version=…&identifier=…"
    return "/aca/%s?api-version=%s&identifier=%s" % (path, LEGACY, identifier)


def current_url(path, identifier=None, version=CURRENT):
    query = {"api-version": version}
    if identifier is not None:
        query["identifier"] = identifier
    return "/aca/%s?%s" % (path, urllib.parse.urlencode(query))


def requests_multipart(filename, data):
    """What requests' files=[("file", (name, data, "application/octet-stream"))] sends."""
    boundary = uuid.uuid4().hex
    body = (b"--" + boundary.encode() + b"\r\n" +
            b'Content-Disposition: form-data; name="file"; filename="' + filename.encode() +
            b'"\r\n' + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" +
            boundary.encode() + b"--\r\n")
    return body, "multipart/form-data; boundary=" + boundary


def aiohttp_multipart(filename, data):
    """What aiohttp.FormData().add_field("file", f, filename=…, content_type=…) sends: the part's
    Content-Type first, then Content-Disposition (with filename*)."""
    boundary = uuid.uuid4().hex
    quoted = urllib.parse.quote(filename)
    body = (b"--" + boundary.encode() + b"\r\n" +
            b"Content-Type: application/octet-stream\r\n" +
            b'Content-Disposition: form-data; name="file"; filename="' + filename.encode() +
            b"\"; filename*=utf-8''" + quoted.encode() + b"\r\n\r\n" + data + b"\r\n--" +
            boundary.encode() + b"--\r\n")
    return body, "multipart/form-data; boundary=" + boundary


def legacy_execute(client, identifier, code, url=None, extra=None, headers=None):
    properties = {"codeInputType": "inline", "executionType": "synchronous", "code": code}
    properties.update(extra or {})
    h = {"Content-Type": "application/json",
         "User-Agent": "langchain-azure-dynamic-sessions/0.2.0 (Language=Python)"}
    h.update(headers or {})
    return client.request("POST", url or langchain_url("code/execute", identifier),
                          body=json.dumps({"properties": properties}).encode(), headers=h)


def setUpModule():
    global WORK_DIR, SERVER, ADMIN, USER_A, USER_B
    SERVER, WORK_DIR = pycell_server.ServeProcess.in_new_folder(PYCELL, "pycell-aca-tests-", RUNTIME_DIR)

    def setup():
        global ADMIN, USER_A, USER_B
        ADMIN = SERVER.client()
        USER_A = ADMIN.with_key(pycell_server.create_key(ADMIN, "alice", "default", "user"))
        USER_B = ADMIN.with_key(pycell_server.create_key(ADMIN, "bob", "default", "user"))

    pycell_server.start_for_module(SERVER, setup)


def tearDownModule():
    pycell_server.stop_for_module(SERVER, WORK_DIR)


class TestLangChain(unittest.TestCase):
    def test_execute_keeps_state_and_files_round_trip(self):
        ident = str(uuid.uuid4())
        r = expect(legacy_execute(USER_A, ident, "x = 6 * 7\nprint('hi')\nx"), 200, "execute")
        p = r["properties"]
        self.assertEqual(p["status"], "Success")
        self.assertEqual(p["result"], 42)
        self.assertEqual(p["stdout"], "hi\n")
        self.assertEqual(p["stderr"], "")
        self.assertIsInstance(p["executionTimeInMilliseconds"], int)
        p = expect(legacy_execute(USER_A, ident, "x + 1"), 200, "second execute")["properties"]
        self.assertEqual(p["result"], 43, "state is kept across executions of one identifier")
        # upload_file: requests multipart, no Content-Type of ours, data={} (no other parts).
        body, ctype = requests_multipart("data.csv", b"a,b\n1,2\n")
        up = expect(USER_A.request("POST", langchain_url("files/upload", ident), body=body,
                                   headers={"Content-Type": ctype,
                                            "User-Agent": "langchain-azure-dynamic-sessions/0.2.0 (Language=Python)"}),
                    200, "upload")
        meta = up["value"][0]["properties"]
        self.assertEqual(meta["filename"], "data.csv")
        self.assertEqual(meta["size"], 8)
        p = expect(legacy_execute(USER_A, ident, "open('/mnt/data/data.csv').read()"), 200,
                   "read upload")["properties"]
        self.assertIn("1,2", p["result"])
        listing = expect(USER_A.get(langchain_url("files", ident)), 200, "list")
        names = {e["properties"]["filename"]: e["properties"]["size"] for e in listing["value"]}
        self.assertEqual(names.get("data.csv"), 8)
        expect(legacy_execute(USER_A, ident, "open('/mnt/data/out.txt','w').write('written')"),
               200, "write")
        got = USER_A.get(langchain_url("files/content/" + urllib.parse.quote("out.txt"), ident))
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.body, b"written")

    def test_failure(self):
        p = expect(legacy_execute(USER_A, str(uuid.uuid4()), "1/0"), 200, "1/0")["properties"]
        self.assertEqual(p["status"], "Failure")
        self.assertIn("ZeroDivisionError", p["stderr"])


class TestSemanticKernel(unittest.TestCase):
    def test_execute_upload_list_download(self):
        ident = str(uuid.uuid4())
        # _build_url_with_version: base + "code/execute" (slash stripped) + "?identifier=…&api-version=…"
        url = "/aca/code/execute?identifier=%s&api-version=%s" % (ident, LEGACY)
        headers = {"Authorization": "Bearer " + USER_A.key, "Content-Type": "application/json",
                   "user-agent": "semantic-kernel/1.0 (Language=Python)"}
        r = expect(legacy_execute(USER_A, ident, "print(1)", url=url,
                                  extra={"timeoutInSeconds": 100}, headers=headers), 200, "sk")
        p = r["properties"]
        self.assertEqual((p["result"], p["stdout"], p["stderr"]), ("", "1\n", ""))
        body, ctype = requests_multipart("/mnt/data/sk.txt", b"semantic")
        up = expect(USER_A.request("POST", "/aca/files/upload?identifier=%s&api-version=%s" %
                                   (ident, LEGACY), body=body, headers={"Content-Type": ctype}),
                    200, "sk upload")
        self.assertEqual(up["value"][0]["properties"]["filename"], "sk.txt")
        self.assertEqual(up["value"][0]["properties"]["size"], 8)
        listing = expect(USER_A.get("/aca/files?identifier=%s&api-version=%s" % (ident, LEGACY)),
                         200, "sk list")
        self.assertIn("sk.txt", [e["properties"]["filename"] for e in listing["value"]])
        got = USER_A.get("/aca/files/content/sk.txt?identifier=%s&api-version=%s" % (ident, LEGACY))
        self.assertEqual(got.body, b"semantic")


class TestAutoGen(unittest.TestCase):
    def test_executor_flow(self):
        ident = str(uuid.uuid4())
        h = {"Authorization": "Bearer " + USER_A.key, "Content-Type": "application/json"}
        url = autogen_url("code/execute", ident)
        for code in ("import os; os.chdir('/mnt/data')", "print('autogen')"):
            r = USER_A.request("POST", url, headers=h, body=json.dumps({"properties": {
                "codeInputType": "inline", "executionType": "synchronous", "code": code}}).encode())
            data = expect(r, 200, code)["properties"]
            self.assertIn("Success", data["status"])
            str(data["result"])
        self.assertEqual(data.get("stderr", "") + data.get("stdout", ""), "autogen\n")
        bad = expect(USER_A.request("POST", url, headers=h, body=json.dumps({"properties": {
            "codeInputType": "inline", "executionType": "synchronous", "code": "raise ValueError('x')"}}).encode()),
            200, "failure")["properties"]
        self.assertIn("Failure", bad["status"])
        body, ctype = aiohttp_multipart("in.txt", b"autogen input")
        expect(USER_A.request("POST", autogen_url("files/upload", ident), body=body,
                              headers={"Authorization": "Bearer " + USER_A.key,
                                       "Content-Type": ctype}), 200, "autogen upload")
        files = expect(USER_A.get(autogen_url("files", ident)), 200, "autogen list")
        self.assertIn("in.txt", [v["properties"]["filename"] for v in files["value"]])
        got = USER_A.get(autogen_url("files/content/in.txt", ident))
        self.assertEqual(got.body, b"autogen input")


class TestLlamaIndex(unittest.TestCase):
    def test_chart_is_an_image_result(self):
        ident = str(uuid.uuid4())
        code = ("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n")
        r = expect(legacy_execute(USER_A, ident, code), 200, "chart")["properties"]
        result = r["result"]
        self.assertIsInstance(result, dict, r)
        self.assertEqual(result["type"], "image")
        self.assertEqual(result["format"], "png")
        self.assertTrue(base64.b64decode(result["base64_data"]).startswith(PNG_MAGIC))

    def test_upload_with_mnt_data_prefix(self):
        ident = str(uuid.uuid4())
        body, ctype = requests_multipart("/mnt/data/llama.txt", b"llama")
        up = expect(USER_A.request("POST", langchain_url("files/upload", ident), body=body,
                                   headers={"Content-Type": ctype}), 200, "llama upload")
        entry = [e for e in up["value"] if "properties" in e][0]["properties"]
        self.assertEqual((entry["filename"], entry["size"]), ("llama.txt", 5))


class TestOwnership(unittest.TestCase):
    def test_same_identifier_other_principal_is_another_session(self):
        ident = "shared-" + uuid.uuid4().hex[:8]
        expect(legacy_execute(USER_A, ident, "secret = 'alice'"), 200, "alice")
        p = expect(legacy_execute(USER_B, ident, "'secret' in dir()"), 200, "bob")["properties"]
        self.assertEqual(p["result"], "False")
        p = expect(legacy_execute(USER_A, ident, "secret"), 200, "alice again")["properties"]
        self.assertEqual(p["result"], "'alice'")

    def test_no_key_is_401(self):
        r = legacy_execute(USER_A.with_key(None), str(uuid.uuid4()), "1")
        self.assertEqual(r.status, 401, r)
        self.assertIn("error", r.json())


class TestCurrentContract(unittest.TestCase):
    def test_executions_files_session_metadata(self):
        ident = "cur-" + uuid.uuid4().hex
        r = USER_A.post_json(current_url("executions", ident),
                             {"identifier": ident, "codeInputType": "Inline",
                              "executionType": "Synchronous", "code": "y = 5\nprint('c')\ny * 2",
                              "timeoutInSeconds": 60})
        e = expect(r, 202, "POST executions")
        self.assertEqual((e["identifier"], e["status"], e["executionType"]),
                         (ident, "Succeeded", "Synchronous"))
        self.assertEqual(e["result"]["stdout"], "c\n")
        self.assertEqual(e["result"]["executionResult"], 10)
        self.assertIsInstance(e["result"]["executionTimeInMilliseconds"], int)
        got = expect(USER_A.get(current_url("executions/" + e["id"], ident)), 200, "GET execution")
        self.assertEqual((got["id"], got["status"]), (e["id"], "Succeeded"))
        self.assertEqual(USER_B.get(current_url("executions/" + e["id"], ident)).status, 404)
        cut = expect(USER_A.post_json(current_url("executions", ident),
                                      {"code": "print('x' * 100)", "outputStreamsMaxLength": 10}),
                     202, "cut")
        self.assertEqual(cut["result"]["stdout"], "x" * 10)
        failed = expect(USER_A.post_json(current_url("executions", ident), {"code": "1/0"}), 202,
                        "failed")
        self.assertEqual(failed["status"], "Failed")
        # Files: upload as curl -F does, list, get, content.
        body, ctype = requests_multipart("cur.md", b"# current")
        up = expect(USER_A.request("POST", current_url("files", ident) + "&path=/mnt/data",
                                   body=body, headers={"Content-Type": ctype}), 200, "POST files")
        self.assertEqual((up["name"], up["sizeInBytes"], up["type"]), ("cur.md", 9, "File"))
        listing = expect(USER_A.get(current_url("files", ident)), 200, "GET files")
        self.assertIn("cur.md", [f["name"] for f in listing["value"]])
        one = expect(USER_A.get(current_url("files/cur.md", ident)), 200, "GET file")
        self.assertEqual(one["sizeInBytes"], 9)
        self.assertIn("lastModifiedAt", one)
        self.assertEqual(USER_A.get(current_url("files/cur.md/content", ident)).body, b"# current")
        self.assertEqual(USER_A.get(current_url("files/none.md", ident)).status, 404)
        # Uploading the same name again replaces the file, as Azure does.
        body, ctype = requests_multipart("cur.md", b"# current, second version")
        up = expect(USER_A.request("POST", current_url("files", ident) + "&path=/mnt/data",
                                   body=body, headers={"Content-Type": ctype}), 200, "re-upload")
        self.assertEqual(up["sizeInBytes"], 25)
        self.assertEqual(USER_A.get(current_url("files/cur.md/content", ident)).body,
                         b"# current, second version")
        # DELETE removes it from /mnt/data: the session's code no longer sees it.
        self.assertEqual(USER_A.delete(current_url("files/cur.md", ident)).status, 204)
        self.assertEqual(USER_A.get(current_url("files/cur.md", ident)).status, 404)
        self.assertEqual(USER_A.delete(current_url("files/cur.md", ident)).status, 404)
        seen = expect(USER_A.post_json(current_url("executions", ident), {
            "code": "import os; print(os.path.exists('/mnt/data/cur.md'))"}), 202, "exists?")
        self.assertEqual(seen["result"]["stdout"], "False\n")
        self.assertEqual(USER_B.delete(current_url("files/cur.md", ident)).status, 404)
        # Session.
        s = expect(USER_A.get(current_url("session", ident)), 200, "GET session")
        self.assertEqual(s["identifier"], ident)
        for key in ("createdAt", "lastAccessedAt", "expireAt"):
            self.assertTrue(pycell_server.RFC3339_RE.match(s[key] or ""), (key, s))
        listed = expect(USER_A.get(current_url("listSessions")), 200, "listSessions")
        self.assertIn(ident, [x["identifier"] for x in listed["value"]])
        other = expect(USER_B.get(current_url("listSessions")), 200, "bob listSessions")
        self.assertNotIn(ident, [x["identifier"] for x in other["value"]])
        meta = expect(USER_A.get(current_url("metadata")), 200, "metadata")
        # Every package of the default environment (src/kernel/packages.json), those the pool's
        # zygote preloads marked.
        listed_packages = {p["name"]: p for p in meta["preinstalledPackages"]}
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "kernel",
                               "packages.json"), encoding="utf-8") as f:
            environment = json.load(f)["packages"]
        self.assertEqual(list(listed_packages), [p["import"] for p in environment])
        self.assertTrue(listed_packages["numpy"]["preloaded"], listed_packages["numpy"])
        self.assertFalse(listed_packages["xlsxwriter"]["preloaded"])
        self.assertEqual(listed_packages["sklearn"]["debian"], "python3-sklearn")
        self.assertEqual(USER_A.delete(current_url("session", ident)).status, 204)
        self.assertEqual(USER_A.get(current_url("session", ident)).status, 404)
        again = expect(USER_A.post_json(current_url("executions", ident), {"code": "'y' in dir()"}),
                       202, "after delete")
        self.assertEqual(again["result"]["executionResult"], "False", "a new session")


class TestRefusals(unittest.TestCase):
    def assertError(self, reply, status):
        self.assertEqual(reply.status, status, reply)
        body = reply.json()
        self.assertIsInstance(body["error"]["code"], str)
        self.assertIsInstance(body["error"]["message"], str)
        return body["error"]["message"]

    def test_bad_identifiers(self):
        for ident in ("abc", "x" * 129, "has space", "dot.ted", "é" * 4):
            self.assertError(legacy_execute(USER_A, ident, "1"), 400)
        self.assertError(USER_A.post_json("/aca/code/execute?api-version=" + LEGACY,
                                          {"properties": {"code": "1"}}), 400)

    def test_api_version(self):
        message = self.assertError(USER_A.post_json(
            "/aca/code/execute?identifier=abcd&api-version=2099-01-01",
            {"properties": {"code": "1"}}), 400)
        self.assertIn("2024-02-02-preview", message)
        self.assertIn("2025-10-02-preview", message)
        self.assertError(USER_A.post_json("/aca/code/execute?identifier=abcd",
                                          {"properties": {"code": "1"}}), 400)

    def test_hostile_bodies(self):
        url = langchain_url("code/execute", "hostile-" + uuid.uuid4().hex[:6])
        for raw in (b"", b"{", b"[]", b'{"properties": 1}', b'{"properties": {"code": 1}}',
                    b'{"properties": {"code": "1", "codeInputType": "url"}}',
                    b"\xff\xfe", b'{"properties": {"code": "1", "timeoutInSeconds": "x"}}'):
            self.assertError(USER_A.post_json(url, raw=raw), 400)

    def test_oversize_body(self):
        # A head announcing a body past server.max_json_body (8m): refused before it is read.
        path = langchain_url("code/execute", "big-" + uuid.uuid4().hex[:6])
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n" % (path, 9 << 20)).encode() + USER_A.auth_line() + b"\r\n"
        r = USER_A.raw_exchange(head, timeout=30)
        self.assertEqual(r.status, 413, r)
        self.assertIn("error", json.loads(r.body))

    def test_auditor_may_not_execute(self):
        auditor = ADMIN.with_key(pycell_server.create_key(ADMIN, "audrey", "default", "auditor"))
        self.assertError(legacy_execute(auditor, "audit-ident", "1"), 403)

    def test_download_traversal(self):
        ident = "trav-" + uuid.uuid4().hex[:6]
        expect(legacy_execute(USER_A, ident, "1"), 200, "make session")
        for name in ("..", "%2e%2e", "..%2Fetc%2Fpasswd"):
            r = USER_A.get(langchain_url("files/content/" + name, ident))
            self.assertIn(r.status, (400, 404), (name, r))


if __name__ == "__main__":
    PYCELL, rest = pycell_server.parse_pycell_argument(__doc__)
    unittest.main(argv=[sys.argv[0]] + rest)
