// The official MCP TypeScript SDK client against pycell's /mcp (Streamable HTTP).
// Usage: node client.mjs URL KEY — prints one JSON object: {checks: {name: {ok, detail}}}.
// test_mcp.py runs it and asserts every check; a check records what it saw, so a failure reads.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key] = process.argv.slice(2);
const checks = {};
function check(name, ok, detail) {
  checks[name] = { ok: Boolean(ok), detail };
}
async function attempt(name, fn) {
  try {
    await fn();
  } catch (e) {
    check(name, false, "threw: " + (e && e.stack ? e.stack : String(e)));
  }
}

const transport = new StreamableHTTPClientTransport(new URL(url + "/mcp"), {
  requestInit: { headers: { Authorization: "Bearer " + key } },
});
const client = new Client({ name: "pycell-mcp-test", version: "1.0.0" });
const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");

await attempt("initialize", async () => {
  await client.connect(transport);
  const info = client.getServerVersion();
  check("initialize", info && info.name === "pycell" && transport.sessionId,
        { server: info, session: transport.sessionId, protocol: transport.protocolVersion });
});

await attempt("list_tools", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  const want = ["create_session", "download_file", "end_session", "execute_python", "list_files", "upload_file"];
  const schemas = tools.every((t) => t.inputSchema && t.inputSchema.type === "object" &&
                                     t.outputSchema && t.outputSchema.type === "object");
  check("list_tools", JSON.stringify(names) === JSON.stringify(want) && schemas, { names, schemas });
});

let sessionId = null;
await attempt("state", async () => {
  const first = await client.callTool({ name: "execute_python", arguments: { code: "x = 41" } });
  sessionId = first.structuredContent && first.structuredContent.session_id;
  const expires = first.structuredContent && first.structuredContent.expires_at;
  const second = await client.callTool({
    name: "execute_python", arguments: { code: "x + 1", session_id: sessionId } });
  check("state", !first.isError && /^sess_/.test(sessionId || "") && typeof expires === "string" &&
                 second.structuredContent.result === "42" && text(second).includes("42") &&
                 second.structuredContent.session_id === sessionId,
        { first: first.structuredContent, second: second.structuredContent });
});

await attempt("chart", async () => {
  const result = await client.callTool({ name: "execute_python", arguments: {
    session_id: sessionId,
    code: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\nplt.show()" } });
  const images = result.content.filter((c) => c.type === "image");
  const png = images.length ? Buffer.from(images[0].data, "base64") : Buffer.alloc(0);
  const signature = png.subarray(0, 8).toString("hex");
  check("chart", !result.isError && images.length >= 1 && images[0].mimeType === "image/png" &&
                 signature === "89504e470d0a1a0a" && png.length > 1000,
        { images: images.length, signature, bytes: png.length, text: text(result) });
});

await attempt("artifact", async () => {
  const result = await client.callTool({ name: "execute_python", arguments: {
    session_id: sessionId,
    code: "open('/mnt/data/report.csv', 'w').write('a,b\\n1,2\\n')\nimport os; os.makedirs('/mnt/data/bin', exist_ok=True)\nopen('/mnt/data/bin/raw.bin', 'wb').write(bytes(range(256)))" } });
  const links = result.content.filter((c) => c.type === "resource_link");
  const csv = result.structuredContent.artifacts.find((a) => a.filename === "report.csv");
  const fetched = await client.callTool({ name: "download_file", arguments: { file_id: csv.file_id } });
  const resource = fetched.content.find((c) => c.type === "resource");
  const byPath = await client.callTool({ name: "download_file", arguments: {
    session_id: sessionId, path: "/mnt/data/bin/raw.bin" } });
  const blob = byPath.content.find((c) => c.type === "resource");
  // The artifact's link, read as a resource (resources/read).
  const viaLink = await client.readResource({ uri: "pycell://files/" + csv.file_id });
  const raw = blob && blob.resource.blob ? Buffer.from(blob.resource.blob, "base64") : Buffer.alloc(0);
  check("artifact", links.length === 2 && links.some((l) => l.uri === "pycell://files/" + csv.file_id) &&
                    resource && resource.resource.text === "a,b\n1,2\n" &&
                    viaLink.contents.length === 1 && viaLink.contents[0].text === "a,b\n1,2\n" &&
                    raw.length === 256 && raw[255] === 255 && byPath.structuredContent.bytes === 256,
        { links, resource: resource && resource.resource, rawLength: raw.length,
          byPath: byPath.structuredContent });
});

await attempt("files", async () => {
  const up = await client.callTool({ name: "upload_file", arguments: {
    filename: "sales.csv", content_base64: Buffer.from("region,amount\nnorth,10\n").toString("base64"),
    session_id: sessionId } });
  const list = await client.callTool({ name: "list_files", arguments: { session_id: sessionId } });
  const read = await client.callTool({ name: "execute_python", arguments: {
    session_id: sessionId, code: "open('/mnt/data/sales.csv').read().splitlines()[1]" } });
  const stored = await client.callTool({ name: "upload_file", arguments: {
    filename: "extra.txt", content_base64: Buffer.from("hello").toString("base64") } });
  const created = await client.callTool({ name: "create_session", arguments: {
    file_ids: [stored.structuredContent.file_id], metadata: { agent_id: "mcp-test" } } });
  const other = created.structuredContent.session_id;
  const there = await client.callTool({ name: "execute_python", arguments: {
    session_id: other, code: "open('/mnt/data/extra.txt').read()" } });
  const ended = await client.callTool({ name: "end_session", arguments: { session_id: other } });
  const paths = list.structuredContent.files.map((f) => f.path);
  check("files", !up.isError && up.structuredContent.path === "/mnt/data/sales.csv" &&
                 paths.includes("/mnt/data/sales.csv") && read.structuredContent.result === "'north,10'" &&
                 stored.structuredContent.session_id === null && /^sess_/.test(other) &&
                 there.structuredContent.result === "'hello'" &&
                 ended.structuredContent.status === "ended",
        { up: up.structuredContent, paths, read: read.structuredContent.result,
          there: there.structuredContent.result, ended: ended.structuredContent.status });
});

await attempt("tool_error", async () => {
  const bogus = await client.callTool({ name: "end_session", arguments: { session_id: "sess_nope" } });
  const raised = await client.callTool({ name: "execute_python", arguments: {
    session_id: sessionId, code: "1/0" } });
  const missing = await client.callTool({ name: "execute_python", arguments: {} });
  check("tool_error", bogus.isError === true && text(bogus).length > 0 &&
                      raised.isError === true && text(raised).includes("ZeroDivisionError") &&
                      raised.structuredContent.status === "error" &&
                      missing.isError === true && text(missing).includes("code"),
        { bogus: text(bogus), raised: text(raised), missing: text(missing) });
});

await attempt("progress", async () => {
  const notes = [];
  const started = Date.now();
  const result = await client.callTool(
    { name: "execute_python", arguments: { session_id: sessionId,
      code: "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(1)\n'done'" } },
    undefined,
    { onprogress: (p) => notes.push(p), resetTimeoutOnProgress: true, timeout: 60000 });
  const increasing = notes.every((n, i) => i === 0 || n.progress > notes[i - 1].progress);
  check("progress", !result.isError && result.structuredContent.result === "'done'" &&
                    notes.length >= 2 && increasing && notes.some((n) => (n.message || "").includes("tick")),
        { notes, seconds: (Date.now() - started) / 1000 });
});

await attempt("cancel", async () => {
  const controller = new AbortController();
  const started = Date.now();
  const call = client.callTool(
    { name: "execute_python", arguments: { session_id: sessionId,
      code: "import time\nfor i in range(60):\n    time.sleep(0.5)" } },
    undefined, { signal: controller.signal, timeout: 120000 });
  setTimeout(() => controller.abort("test cancels"), 1500);
  let rejected = false;
  try {
    await call;
  } catch (e) {
    rejected = true;
  }
  // The interrupted cell frees the session: the next cell runs within moments (while the
  // interrupt lands the session may still answer busy), not after the 30 s the cell would take.
  let after = null;
  const busy = [];
  while ((Date.now() - started) < 20000) {
    after = await client.callTool({ name: "execute_python", arguments: {
      session_id: sessionId, code: "x" } });
    if (!after.isError) break;
    busy.push(text(after));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seconds = (Date.now() - started) / 1000;
  check("cancel", rejected && !after.isError && after.structuredContent.result === "41" && seconds < 10,
        { rejected, after: after.structuredContent, busy, seconds });
});

await attempt("terminate", async () => {
  const id = transport.sessionId;
  await transport.terminateSession();
  check("terminate", transport.sessionId === undefined, { id });
});
await client.close();
console.log(JSON.stringify({ checks, session_id: sessionId }));
