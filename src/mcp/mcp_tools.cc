#include "mcp/mcp_tools.h"

#include <unistd.h>

#include <algorithm>
#include <regex>

#include "common/crypto.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "common/utf8.h"
#include "evidence/signing_key.h"
#include "kernel/packages.h"
#include "service/service.h"
#include "service/v1_views.h"

namespace pycell::mcp {
namespace {

using P = auth::Permission;
using service::Service;

// --- arguments ------------------------------------------------------------------------------

// The string argument `name`, or "" when absent or null; InvalidArgument when another type.
Result<std::string> OptionalString(const Json& arguments, const char* name) {
  if (!arguments.contains(name) || arguments[name].is_null()) return std::string();
  if (!arguments[name].is_string()) {
    return Status::InvalidArgument(std::string(name) + " must be a string");
  }
  return arguments[name].get<std::string>();
}

Result<std::string> RequiredString(const Json& arguments, const char* name, const char* what) {
  ASSIGN_OR_RETURN(std::string value, OptionalString(arguments, name));
  if (value.empty()) return Status::InvalidArgument(std::string(name) + " is required: " + what);
  return value;
}

// --- content --------------------------------------------------------------------------------

Json Text(const std::string& text) { return {{"type", "text"}, {"text", text}}; }

std::string FileUri(const std::string& file_id) { return "pycell://files/" + file_id; }

std::string WithoutAnsi(const std::string& text) {
  static const std::regex kAnsi("\x1b\\[[0-9;]*[A-Za-z]");
  return std::regex_replace(text, kAnsi, "");
}

// The value of `mime` in the output's bundle, or null.
const std::string* BundleValue(const kernel::Output& output, std::string_view mime) {
  for (const auto& [type, value] : output.bundle.data) {
    if (type == mime) return &value;
  }
  return nullptr;
}

// The text of the last expression's value, or null.
Json ResultText(const session::ExecutionRecord& execution) {
  for (const kernel::Output& output : execution.outputs) {
    if (output.kind != kernel::Output::Kind::kResult) continue;
    if (const std::string* text = BundleValue(output, "text/plain")) return *text;
  }
  return nullptr;
}

// What a cell did, as a model reads it: its result alone when that is all, else labelled parts.
std::string CellText(const session::ExecutionRecord& execution, const Json& result) {
  const std::string& status = execution.status;
  if (execution.stdout_text.empty() && execution.stderr_text.empty() && !execution.error &&
      status == "ok") {
    return result.is_string() ? result.get<std::string>() : "(no output)";
  }
  std::string text;
  auto part = [&text](const std::string& label, const std::string& body) {
    if (body.empty()) return;
    if (!text.empty()) text += "\n";
    text += "[" + label + "]\n" + body;
    if (text.back() != '\n') text += "\n";
  };
  part("stdout", execution.stdout_text);
  part("stderr", execution.stderr_text);
  if (result.is_string()) part("result", result.get<std::string>());
  if (execution.error) {
    std::string trace;
    for (const std::string& line : execution.error->traceback) trace += WithoutAnsi(line) + "\n";
    part("error", execution.error->ename + ": " + execution.error->evalue + "\n" + trace);
  }
  if (status == "timeout") {
    part("timeout", "the cell ran past its timeout and was " + (execution.timeout_action.empty()
                                                                    ? std::string("stopped")
                                                                    : execution.timeout_action));
  }
  if (!execution.session_end_reason.empty()) {
    part("session ended", DumpJson(execution.session_end_reason));
  }
  return text;
}

// --- schemas --------------------------------------------------------------------------------

Json StringSchema(const std::string& description) {
  return {{"type", "string"}, {"description", description}};
}

Json ObjectSchema(Json properties, std::vector<std::string> required) {
  Json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

const char* kSessionIdHelp = "A session id (sess_…) from execute_python or create_session.";

Json SessionOutputSchema() {
  return ObjectSchema(
      {{"session_id", {{"type", "string"}}},
       {"status", {{"type", "string"}, {"enum", {"active", "ended"}}}},
       {"expires_at", {{"type", {"string", "null"}}}},
       {"end_reason", {{"type", {"string", "null"}}}},
       {"session", {{"type", "object"}, {"description", "The session object of REST /v1."}}}},
      {"session_id", "status", "expires_at", "session"});
}

Json SessionStructured(const service::SessionInfo& session) {
  Json view = service::SessionView(session);
  return {{"session_id", session.row.id},
          {"status", session.row.status},
          {"expires_at", view["expires_at"]},
          {"end_reason", view["end_reason"]},
          {"session", std::move(view)}};
}

// --- declarations ---------------------------------------------------------------------------

// A tool as the model sees it: its name, title and description, and its arguments as the
// properties of an object schema that admits no others (PycellTools refuses any other).
Tool Declare(const char* name, const char* title, std::string description, Json properties,
             std::vector<std::string> required) {
  Tool tool;
  tool.name = name;
  tool.title = title;
  tool.description = std::move(description);
  tool.input_schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) tool.input_schema["required"] = std::move(required);
  tool.input_schema["additionalProperties"] = false;
  return tool;
}

// `handler`, after an InvalidArgument for the first argument `schema` does not declare.
ToolHandler RefusingUndeclared(const Json& schema, ToolHandler handler) {
  std::vector<std::string> declared;
  for (const auto& [key, value] : schema["properties"].items()) declared.push_back(key);
  return [declared, handler = std::move(handler)](const Json& arguments,
                                                  ToolContext& context) -> Result<ToolResult> {
    if (arguments.is_object()) {
      for (const auto& [key, value] : arguments.items()) {
        if (std::find(declared.begin(), declared.end(), key) != declared.end()) continue;
        std::string list;
        for (const std::string& d : declared) list += (list.empty() ? "" : ", ") + d;
        return Status::InvalidArgument("unknown argument \"" + key + "\"; allowed: " + list);
      }
    }
    return handler(arguments, context);
  };
}

// --- the tools ------------------------------------------------------------------------------

Tool ExecutePython(Service* s) {
  Tool tool = Declare(
      "execute_python", "Run Python",
      "Runs Python code in a sandboxed, stateful IPython session (no network) and returns what it "
      "printed, the value of its last expression, charts (matplotlib figures as PNG images) and "
      "the files it wrote under /mnt/data (as resource links; fetch them with download_file). "
      "Variables, imports and files persist between calls with the same session_id. Without "
      "session_id a new session is created; every answer says its session_id and expires_at. "
      "Input files are in /mnt/data. Installed packages: " +
          kernel::DefaultPackageNames() + ".",
      {{"code", StringSchema("Python source of one cell.")},
       {"session_id", StringSchema(std::string(kSessionIdHelp) + " Omit to start a new session.")},
       {"timeout_s",
        {{"type", "number"},
         {"minimum", 1},
         {"description", "Seconds before the cell is interrupted (default: the session's)."}}}},
      {"code"});
  tool.output_schema = ObjectSchema(
      {{"session_id", {{"type", "string"}}},
       {"expires_at",
        {{"type", {"string", "null"}},
         {"description", "When the session ends unless used (RFC 3339)."}}},
       {"session_created", {{"type", "boolean"}}},
       {"execution_id", {{"type", "string"}}},
       {"status", {{"type", "string"}, {"enum", {"ok", "error", "timeout", "crashed"}}}},
       {"stdout", {{"type", "string"}}},
       {"stderr", {{"type", "string"}}},
       {"result",
        {{"type", {"string", "null"}},
         {"description", "text/plain of the last expression's value."}}},
       {"error",
        {{"type", {"object", "null"}},
         {"properties",
          {{"ename", {{"type", "string"}}},
           {"evalue", {{"type", "string"}}},
           {"traceback", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}}},
       {"artifacts",
        {{"type", "array"},
         {"items", ObjectSchema({{"file_id", {{"type", "string"}}},
                                 {"filename", {{"type", "string"}}},
                                 {"path", {{"type", "string"}}},
                                 {"bytes", {{"type", "integer"}}},
                                 {"sha256", {{"type", "string"}}},
                                 {"media_type", {{"type", "string"}}},
                                 {"uri", {{"type", "string"}}}},
                                {"file_id", "filename", "path", "bytes", "media_type", "uri"})}}}},
      {"session_id", "expires_at", "execution_id", "status", "stdout", "stderr", "result", "error",
       "artifacts"});
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    if (!args.contains("code") || !args["code"].is_string()) {
      return Status::InvalidArgument("code is required: a string of Python");
    }
    ASSIGN_OR_RETURN(std::optional<std::chrono::seconds> timeout,
                     OptionalTimeoutField(args, "timeout_s", "the arguments"));
    ASSIGN_OR_RETURN(std::string session_id, OptionalString(args, "session_id"));
    RETURN_IF_ERROR(ctx.Require(P::kExecutionsRun));
    bool created = session_id.empty();
    if (created) {
      RETURN_IF_ERROR(ctx.Require(P::kSessionsCreate));
      ASSIGN_OR_RETURN(service::SessionInfo session,
                       s->CreateSession(ctx.caller(), service::CreateSessionRequest{}));
      session_id = session.row.id;
    }
    const auth::Caller caller = ctx.caller();
    ctx.OnCancel([s, caller, session_id] { (void)s->InterruptSession(caller, session_id); });
    kernel::ExecuteObserver observer;
    auto chunk = [&ctx](const char* label, std::string_view text) {
      std::string message = std::string(label) + ": " + std::string(text.substr(0, 200));
      ctx.Progress(message);
    };
    observer.on_stdout = [&](std::string_view text) { chunk("stdout", text); };
    observer.on_stderr = [&](std::string_view text) { chunk("stderr", text); };
    observer.on_output = [&](const kernel::Output&) { ctx.Progress("display output"); };
    auto record =
        s->Execute(caller, session_id, args["code"].get<std::string>(), timeout, observer);
    if (!record.ok()) {
      if (!created) return record.status();
      return record.status().WithContext("in the new session " + session_id);
    }
    const session::ExecutionRecord& execution = record->record;
    Json expires_at = nullptr;
    if (auto session = s->GetSession(caller, session_id); session.ok()) {
      expires_at = service::SessionView(*session)["expires_at"];
    }
    Json result = ResultText(execution);
    ToolResult out;
    out.content.push_back(Text(CellText(execution, result)));
    for (const kernel::Output& output : execution.outputs) {
      if (const std::string* image = BundleValue(output, "image/png")) {
        std::string png = *image;
        png.erase(std::remove(png.begin(), png.end(), '\n'), png.end());
        out.content.push_back({{"type", "image"}, {"data", png}, {"mimeType", "image/png"}});
      }
    }
    Json artifacts = Json::array();
    for (const session::Artifact& a : execution.artifacts) {
      std::string uri = FileUri(a.file_id);
      std::string path = "/mnt/data/" + a.path;
      out.content.push_back(
          {{"type", "resource_link"},
           {"uri", uri},
           {"name", a.filename},
           {"description", "written by the cell at " + path +
                               "; fetch it with download_file {file_id: " + a.file_id + "}"},
           {"mimeType", a.media_type},
           {"size", a.bytes}});
      artifacts.push_back({{"file_id", a.file_id},
                           {"filename", a.filename},
                           {"path", path},
                           {"bytes", a.bytes},
                           {"sha256", a.sha256},
                           {"media_type", a.media_type},
                           {"uri", uri}});
    }
    const std::string& status = execution.status;
    out.content.push_back(
        Text("session_id: " + session_id +
             (expires_at.is_string() ? ", expires_at: " + expires_at.get<std::string>() : "")));
    out.structured = {{"session_id", session_id},
                      {"expires_at", expires_at},
                      {"session_created", created},
                      {"execution_id", execution.id},
                      {"status", status},
                      {"stdout", execution.stdout_text},
                      {"stderr", execution.stderr_text},
                      {"result", result},
                      {"error", execution.error ? Json{{"ename", execution.error->ename},
                                                       {"evalue", execution.error->evalue},
                                                       {"traceback", execution.error->traceback}}
                                                : Json(nullptr)},
                      {"artifacts", artifacts}};
    out.is_error = status != "ok";
    return out;
  };
  return tool;
}

Tool UploadFile(Service* s) {
  Tool tool = Declare(
      "upload_file", "Upload a file",
      "Stores a file (content_base64 with its filename) and, with session_id, places it in that "
      "session's /mnt/data where code can read it. With file_id instead of content, places an "
      "already stored file into the session (session_id required). Without session_id the file "
      "is only stored: pass its file_id to create_session.",
      {{"filename",
        StringSchema("The file's name in /mnt/data, e.g. sales.csv (with content_base64).")},
       {"content_base64", StringSchema("The file's bytes, base64 (RFC 4648).")},
       {"file_id", StringSchema("A stored file (file_…) to place into the session instead.")},
       {"session_id", StringSchema(kSessionIdHelp)}},
      {});
  tool.output_schema = ObjectSchema(
      {{"file_id", {{"type", "string"}}},
       {"filename", {{"type", "string"}}},
       {"bytes", {{"type", "integer"}}},
       {"session_id", {{"type", {"string", "null"}}}},
       {"path", {{"type", {"string", "null"}}, {"description", "Where it is in the session."}}}},
      {"file_id", "filename", "bytes", "session_id", "path"});
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    ASSIGN_OR_RETURN(std::string session_id, OptionalString(args, "session_id"));
    ASSIGN_OR_RETURN(std::string file_id, OptionalString(args, "file_id"));
    bool has_content = args.contains("content_base64") && !args["content_base64"].is_null();
    if (has_content == !file_id.empty()) {
      return Status::InvalidArgument("give either content_base64 (with filename) or file_id");
    }
    Json structured = {{"session_id", session_id.empty() ? Json(nullptr) : Json(session_id)},
                       {"path", nullptr}};
    if (has_content) {
      ASSIGN_OR_RETURN(std::string filename, RequiredString(args, "filename", "the file's name"));
      if (!args["content_base64"].is_string()) {
        return Status::InvalidArgument("content_base64 must be a string of base64");
      }
      std::string encoded = args["content_base64"].get<std::string>();
      std::erase_if(encoded,
                    [](char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; });
      auto bytes = evidence::Base64Decode(encoded);
      if (!bytes.ok()) return Status::InvalidArgument("content_base64 is not valid base64");
      RETURN_IF_ERROR(ctx.Require(P::kFilesWrite));
      if (!session_id.empty()) {
        RETURN_IF_ERROR(ctx.Require(P::kSessionsFiles));
        RETURN_IF_ERROR(s->RequireLive(ctx.caller(), session_id));
      }
      ASSIGN_OR_RETURN(auto upload, s->BeginUpload(ctx.caller(), filename));
      RETURN_IF_ERROR(upload->Write(*bytes));
      ASSIGN_OR_RETURN(service::FileInfo file, upload->Finish());
      file_id = file.id;
      structured["file_id"] = file_id;
      structured["filename"] = file.filename;
      structured["bytes"] = file.bytes;
    } else if (session_id.empty()) {
      return Status::InvalidArgument(
          "file_id places a stored file into a session: give session_id too");
    }
    if (!session_id.empty()) {
      RETURN_IF_ERROR(ctx.Require(P::kSessionsFiles));
      ASSIGN_OR_RETURN(auto placed, s->PutSessionFiles(ctx.caller(), session_id, {file_id}));
      if (placed.empty()) return Status::Internal("the file was not placed");
      structured["file_id"] = placed[0].file_id;
      structured["bytes"] = placed[0].bytes;
      structured["path"] = "/mnt/data/" + placed[0].path;
      if (!structured.contains("filename")) structured["filename"] = placed[0].path;
    }
    ToolResult out;
    std::string text = "stored " + structured["filename"].get<std::string>() + " as " + file_id +
                       " (" + std::to_string(structured["bytes"].get<int64_t>()) + " bytes)";
    if (structured["path"].is_string()) {
      text += "; in session " + session_id + " at " + structured["path"].get<std::string>();
    }
    out.content.push_back(Text(text));
    out.structured = std::move(structured);
    return out;
  };
  return tool;
}

Tool ListFiles(Service* s) {
  Tool tool = Declare("list_files", "List session files",
                      "Lists every file under /mnt/data of a session now, with its size.",
                      {{"session_id", StringSchema(kSessionIdHelp)}}, {"session_id"});
  tool.output_schema =
      ObjectSchema({{"session_id", {{"type", "string"}}},
                    {"files",
                     {{"type", "array"},
                      {"items", ObjectSchema({{"path", {{"type", "string"}}},
                                              {"bytes", {{"type", "integer"}}},
                                              {"modified_at", {{"type", "string"}}}},
                                             {"path", "bytes"})}}}},
                   {"session_id", "files"});
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    ASSIGN_OR_RETURN(std::string session_id, RequiredString(args, "session_id", kSessionIdHelp));
    RETURN_IF_ERROR(ctx.Require(P::kSessionsFiles));
    ASSIGN_OR_RETURN(auto files, s->ListSessionFiles(ctx.caller(), session_id));
    std::string text;
    Json listed = Json::array();
    for (const service::SessionFile& f : files) {
      text += "/mnt/data/" + f.path + " (" + std::to_string(f.bytes) + " bytes)\n";
      listed.push_back(service::SessionFileView(f));
    }
    ToolResult out;
    out.content.push_back(Text(text.empty() ? "/mnt/data is empty" : text));
    out.structured = {{"session_id", session_id}, {"files", std::move(listed)}};
    return out;
  };
  return tool;
}

// Reads all of `fd` (at most `bytes`, which the caller checked against kMaxEmbeddedBytes).
Result<std::string> ReadAll(int fd, uint64_t bytes) {
  std::string data(bytes, '\0');
  uint64_t done = 0;
  while (done < bytes) {
    ssize_t n = ::pread(fd, data.data() + done, bytes - done, static_cast<off_t>(done));
    if (n < 0) return Status::FromErrno("read the file");
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  data.resize(done);
  return data;
}

bool IsTextType(const std::string& media_type) {
  return media_type.rfind("text/", 0) == 0 || media_type.find("json") != std::string::npos ||
         media_type.find("xml") != std::string::npos || media_type == "application/javascript";
}

Tool DownloadFile(Service* s) {
  Tool tool = Declare(
      "download_file", "Download a file",
      "Returns a file's contents as an embedded resource (text, or base64 for binary files): a "
      "stored file by file_id (e.g. an artifact execute_python reported), or a file in a "
      "session's /mnt/data by session_id and path. Files over 16 MiB are not embedded.",
      {{"session_id", StringSchema(std::string(kSessionIdHelp) + " Needed with path.")},
       {"path", StringSchema("A path under /mnt/data, e.g. /mnt/data/out.csv or out.csv.")},
       {"file_id", StringSchema("A stored file id (file_…).")}},
      {});
  tool.output_schema = ObjectSchema({{"filename", {{"type", "string"}}},
                                     {"bytes", {{"type", "integer"}}},
                                     {"media_type", {{"type", "string"}}},
                                     {"sha256", {{"type", "string"}}},
                                     {"uri", {{"type", "string"}}},
                                     {"file_id", {{"type", {"string", "null"}}}},
                                     {"path", {{"type", {"string", "null"}}}}},
                                    {"filename", "bytes", "media_type", "sha256", "uri"});
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    ASSIGN_OR_RETURN(std::string session_id, OptionalString(args, "session_id"));
    ASSIGN_OR_RETURN(std::string path, OptionalString(args, "path"));
    ASSIGN_OR_RETURN(std::string file_id, OptionalString(args, "file_id"));
    if (path.empty() == file_id.empty()) {
      return Status::InvalidArgument("give either file_id, or session_id and path");
    }
    RETURN_IF_ERROR(ctx.Require(P::kFilesContent));
    service::FileContent content;
    std::string uri;
    if (!file_id.empty()) {
      ASSIGN_OR_RETURN(content, s->OpenFile(ctx.caller(), file_id));
      if (static_cast<uint64_t>(content.row.bytes) > kMaxEmbeddedBytes) {
        return Status::ResourceExhausted("the file has " + std::to_string(content.row.bytes) +
                                         " bytes, more than download_file embeds; fetch it with "
                                         "GET /v1/files/" +
                                         file_id + "/content");
      }
      RETURN_IF_ERROR(s->RecordDownload(ctx.caller(), content.row, content.row.bytes));
      uri = FileUri(file_id);
    } else {
      if (session_id.empty()) return Status::InvalidArgument("path needs session_id");
      std::string relative = path;
      if (relative.rfind("/mnt/data/", 0) == 0) relative = relative.substr(10);
      while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);
      if (relative.empty()) return Status::InvalidArgument("path must name a file under /mnt/data");
      ASSIGN_OR_RETURN(content, s->OpenSessionFile(ctx.caller(), session_id, relative));
      if (static_cast<uint64_t>(content.row.bytes) > kMaxEmbeddedBytes) {
        return Status::ResourceExhausted("the file has " + std::to_string(content.row.bytes) +
                                         " bytes, more than download_file embeds");
      }
      path = "/mnt/data/" + relative;
      uri = "pycell://sessions/" + session_id + "/files/" + relative;
    }
    ASSIGN_OR_RETURN(std::string data,
                     ReadAll(content.fd.get(), static_cast<uint64_t>(content.row.bytes)));
    Json resource = {{"uri", uri}, {"mimeType", content.row.media_type}};
    if (IsTextType(content.row.media_type) && IsValidUtf8(data)) {
      resource["text"] = data;
    } else {
      resource["blob"] = evidence::Base64Encode(data);
    }
    ToolResult out;
    out.content.push_back({{"type", "resource"}, {"resource", std::move(resource)}});
    out.structured = {{"filename", content.row.filename},
                      {"bytes", static_cast<int64_t>(data.size())},
                      {"media_type", content.row.media_type},
                      {"sha256", Sha256Hex(data)},
                      {"uri", uri},
                      {"file_id", file_id.empty() ? Json(nullptr) : Json(file_id)},
                      {"path", path.empty() ? Json(nullptr) : Json(path)}};
    return out;
  };
  return tool;
}

Tool CreateSession(Service* s) {
  Tool tool = Declare(
      "create_session", "Create a session",
      "Starts a new sandboxed Python session, optionally with stored files (file_ids from "
      "upload_file) placed in /mnt/data and metadata (e.g. agent_id, thread_id, run_id) recorded "
      "with it. Returns its session_id for execute_python.",
      {{"file_ids",
        {{"type", "array"},
         {"items", {{"type", "string"}}},
         {"maxItems", 100},
         {"description", "Stored files (file_…) to place in /mnt/data."}}},
       {"metadata",
        {{"type", "object"},
         {"additionalProperties", {{"type", "string"}}},
         {"description", "Up to 32 string values, e.g. agent_id, thread_id, run_id."}}}},
      {});
  tool.output_schema = SessionOutputSchema();
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    Json body = args;
    ASSIGN_OR_RETURN(service::CreateSessionRequest request,
                     service::CreateSessionRequestFromJson(body));
    RETURN_IF_ERROR(ctx.Require(P::kSessionsCreate));
    ASSIGN_OR_RETURN(service::SessionInfo session, s->CreateSession(ctx.caller(), request));
    ToolResult out;
    out.structured = SessionStructured(session);
    const Json& expires_at = out.structured["expires_at"];
    out.content.push_back(
        Text("session " + session.row.id + " is ready" +
             (expires_at.is_string() ? " (expires at " + expires_at.get<std::string>() + ")"
                                     : std::string())));
    return out;
  };
  return tool;
}

Tool EndSession(Service* s) {
  Tool tool = Declare("end_session", "End a session",
                      "Ends a session: its processes stop and its /mnt/data is removed (files the "
                      "cells wrote stay stored).",
                      {{"session_id", StringSchema(kSessionIdHelp)}}, {"session_id"});
  tool.output_schema = SessionOutputSchema();
  tool.handler = [s](const Json& args, ToolContext& ctx) -> Result<ToolResult> {
    ASSIGN_OR_RETURN(std::string session_id, RequiredString(args, "session_id", kSessionIdHelp));
    RETURN_IF_ERROR(ctx.Require(P::kSessionsEnd));
    ASSIGN_OR_RETURN(service::SessionInfo session, s->EndSession(ctx.caller(), session_id));
    ToolResult out;
    out.content.push_back(Text("session " + session_id + " ended"));
    out.structured = SessionStructured(session);
    return out;
  };
  return tool;
}

}  // namespace

Result<ResourceCall> PycellResource(const std::string& uri) {
  constexpr std::string_view kFiles = "pycell://files/";
  constexpr std::string_view kSessions = "pycell://sessions/";
  if (uri.rfind(kFiles, 0) == 0) {
    std::string id = uri.substr(kFiles.size());
    if (!IsValidId(id, "file_")) return Status::NotFound("not a file id: " + id);
    return ResourceCall{"download_file", {{"file_id", id}}};
  }
  if (uri.rfind(kSessions, 0) == 0) {
    std::string rest = uri.substr(kSessions.size());
    size_t slash = rest.find("/files/");
    if (slash == std::string::npos || slash + 7 >= rest.size()) {
      return Status::NotFound("expected pycell://sessions/{session_id}/files/{path}");
    }
    std::string session_id = rest.substr(0, slash);
    if (!IsValidId(session_id, "sess_")) return Status::NotFound("not a session id: " + session_id);
    return ResourceCall{"download_file",
                        {{"session_id", session_id}, {"path", rest.substr(slash + 7)}}};
  }
  return Status::NotFound("pycell serves pycell://files/… and pycell://sessions/…/files/…");
}

Json PycellResourceTemplates() {
  return Json::array(
      {{{"uriTemplate", "pycell://files/{file_id}"},
        {"name", "stored file"},
        {"description", "A stored file (an upload or a file a cell wrote), by its id (file_…)."}},
       {{"uriTemplate", "pycell://sessions/{session_id}/files/{path}"},
        {"name", "session file"},
        {"description", "A file in a live session's /mnt/data, by its path there."}}});
}

std::vector<Tool> PycellTools(Service* service) {
  std::vector<Tool> tools = {ExecutePython(service), UploadFile(service),    ListFiles(service),
                             DownloadFile(service),  CreateSession(service), EndSession(service)};
  for (Tool& tool : tools) {
    tool.handler = RefusingUndeclared(tool.input_schema, std::move(tool.handler));
  }
  return tools;
}

}  // namespace pycell::mcp
