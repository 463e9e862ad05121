#include "aca/aca_api.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_reader.h"
#include "common/utf8.h"

namespace pycell::aca {
namespace {

bool EqualsNoCase(const std::string& a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string JoinedVersions() {
  std::string list;
  for (const std::string& v : SupportedApiVersions()) list += (list.empty() ? "" : ", ") + v;
  return list;
}

// The fields both contracts share, from the object that holds them.
Result<ExecuteRequest> ExecuteFields(const Json& fields, bool current) {
  ExecuteRequest request;
  if (fields.contains("codeInputType") && !fields["codeInputType"].is_null()) {
    const Json& type = fields["codeInputType"];
    if (!type.is_string() || !EqualsNoCase(type.get<std::string>(), "inline")) {
      return Status::InvalidArgument("codeInputType must be \"inline\"");
    }
  }
  if (fields.contains("executionType") && !fields["executionType"].is_null()) {
    const Json& type = fields["executionType"];
    std::string value = type.is_string() ? type.get<std::string>() : "";
    if (EqualsNoCase(value, "asynchronous")) {
      request.asynchronous = true;
    } else if (!EqualsNoCase(value, "synchronous")) {
      return Status::InvalidArgument("executionType must be \"synchronous\" or \"asynchronous\"");
    }
  }
  if (!fields.contains("code") || !fields["code"].is_string()) {
    return Status::InvalidArgument("code is required: a string of Python");
  }
  request.code = fields["code"].get<std::string>();
  ASSIGN_OR_RETURN(request.timeout,
                   OptionalTimeoutField(fields, "timeoutInSeconds", "the request's properties"));
  if (current && fields.contains("outputStreamsMaxLength") &&
      !fields["outputStreamsMaxLength"].is_null()) {
    const Json& m = fields["outputStreamsMaxLength"];
    if (!m.is_number_integer() || m.get<int64_t>() < 0) {
      return Status::InvalidArgument("outputStreamsMaxLength must be an integer ≥ 0");
    }
    request.output_streams_max_length = m.get<uint64_t>();
  }
  return request;
}

Result<Json> ParseObject(std::string_view body) {
  auto parsed = ParseUntrustedJson(body, JsonLimits{64u << 20, 32, 1u << 20});
  if (!parsed.ok()) {
    return Status::InvalidArgument("the body is not usable JSON (" + parsed.status().message() +
                                   "); send {\"properties\": {\"codeInputType\": \"inline\", "
                                   "\"executionType\": \"synchronous\", \"code\": \"1+1\"}}");
  }
  if (!parsed->is_object()) return Status::InvalidArgument("the body must be a JSON object");
  return std::move(*parsed);
}

const Json& Field(const Json& object, const char* key) {
  static const Json kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// UTF-8 safe cut to at most `n` bytes (never inside a character).
std::string Cut(const std::string& text, uint64_t n) {
  if (text.size() <= n) return text;
  size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "/mnt/data/a/b.csv" → "a/b.csv".
std::string RelativeToData(const std::string& path) {
  static const std::string kData = "/mnt/data/";
  return path.rfind(kData, 0) == 0 ? path.substr(kData.size()) : path;
}

}  // namespace

const std::vector<std::string>& SupportedApiVersions() {
  static const std::vector<std::string> kVersions = {"2024-02-02-preview", "2024-08-02-preview",
                                                     "2024-10-02-preview", "2025-02-02-preview",
                                                     "2025-10-02-preview"};
  return kVersions;
}

Result<Contract> ParseApiVersion(const std::string& api_version) {
  if (api_version.empty()) {
    return Status::InvalidArgument("api-version is required; supported: " + JoinedVersions());
  }
  const auto& versions = SupportedApiVersions();
  auto it = std::find(versions.begin(), versions.end(), api_version);
  if (it == versions.end()) {
    return Status::InvalidArgument("api-version " + api_version.substr(0, 64) +
                                   " is not supported; supported: " + JoinedVersions());
  }
  return it - versions.begin() < 2 ? Contract::kLegacy : Contract::kCurrent;
}

Status CheckIdentifier(const std::string& identifier) {
  static constexpr std::string_view kSpecial = "|-&^%$#(){}[];<>";
  bool ok = identifier.size() >= 4 && identifier.size() <= 128;
  for (char c : identifier) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) ||
                kSpecial.find(c) != std::string_view::npos);
  }
  if (!ok) {
    return Status::InvalidArgument(
        "identifier must be 4-128 characters, each a letter, a digit or one of |-&^%$#(){}[];<> "
        "(a UUID works)");
  }
  return Status::Ok();
}

Result<ExecuteRequest> ParseLegacyExecute(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  const Json& properties = Field(j, "properties");
  if (!properties.is_object()) {
    return Status::InvalidArgument(
        "the body must hold \"properties\": {\"codeInputType\": \"inline\", \"executionType\": "
        "\"synchronous\", \"code\": …}");
  }
  return ExecuteFields(properties, /*current=*/false);
}

Result<ExecuteRequest> ParseExecution(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  return ExecuteFields(j, /*current=*/true);
}

namespace {

// The value of `mime` in the output's bundle, or null.
const std::string* BundleValue(const kernel::Output& output, std::string_view mime) {
  for (const auto& [type, value] : output.bundle.data) {
    if (type == mime) return &value;
  }
  return nullptr;
}

}  // namespace

Json ResultOf(const session::ExecutionRecord& execution) {
  // The last image wins: a chart is what a cell that draws one is about.
  for (auto it = execution.outputs.rbegin(); it != execution.outputs.rend(); ++it) {
    if (const std::string* png = BundleValue(*it, "image/png")) {
      std::string base64 = *png;
      base64.erase(std::remove(base64.begin(), base64.end(), '\n'), base64.end());
      return Json{{"type", "image"}, {"format", "png"}, {"base64_data", base64}};
    }
  }
  for (const kernel::Output& output : execution.outputs) {
    if (output.kind != kernel::Output::Kind::kResult) continue;
    if (const std::string* json = BundleValue(output, "application/json")) {
      auto value = ParseUntrustedJson(*json);
      return value.ok() ? std::move(*value) : Json(*json);
    }
    const std::string* plain = BundleValue(output, "text/plain");
    std::string text = plain != nullptr ? *plain : "";
    auto number = ParseUntrustedJson(text, JsonLimits{64u << 20, 4, 16});
    if (number.ok() && number->is_number()) return *number;
    return text;
  }
  return "";
}

std::string StderrOf(const session::ExecutionRecord& execution) {
  std::string text = execution.stderr_text;
  if (execution.error) {
    if (!text.empty() && text.back() != '\n') text += '\n';
    if (!execution.error->traceback.empty()) {
      for (const std::string& line : execution.error->traceback) text += line + "\n";
    } else {
      text += execution.error->ename + ": " + execution.error->evalue + "\n";
    }
  }
  const std::string& status = execution.status;
  if (status == "timeout" || status == "crashed") {
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += status == "timeout" ? "the execution timed out\n" : "the session crashed\n";
  }
  return text;
}

Json LegacyExecuteResponse(const session::ExecutionRecord& execution) {
  bool ok = execution.status == "ok";
  Json result = ResultOf(execution);
  return {{"properties",
           {{"$id", execution.id},
            {"status", ok ? "Success" : "Failure"},
            {"stdout", execution.stdout_text},
            {"stderr", StderrOf(execution)},
            {"result", result},
            {"executionResult", result},
            {"executionTimeInMilliseconds", static_cast<int64_t>(execution.duration_ms)}}}};
}

Json ExecutionResponse(const session::ExecutionRecord& execution, const std::string& identifier,
                       bool asynchronous, std::optional<uint64_t> max_length) {
  const char* azure_status = execution.status == "ok"            ? "Succeeded"
                             : !execution.interrupted_by.empty() ? "Cancelled"
                                                                 : "Failed";
  // Cut as written: what is not UTF-8 becomes U+FFFD first, so the cut counts the bytes sent.
  std::string out = ReplaceNonUtf8(execution.stdout_text);
  std::string err = ReplaceNonUtf8(StderrOf(execution));
  if (max_length) {
    out = Cut(out, *max_length);
    err = Cut(err, *max_length);
  }
  return {{"id", execution.id},
          {"identifier", identifier},
          {"sessionId", identifier},
          {"executionType", asynchronous ? "Asynchronous" : "Synchronous"},
          {"status", azure_status},
          {"result",
           {{"stdout", out},
            {"stderr", err},
            {"executionResult", ResultOf(execution)},
            {"executionTimeInMilliseconds", static_cast<int64_t>(execution.duration_ms)}}}};
}

Result<std::string> SessionFileName(const std::string& raw, bool top_level) {
  std::string name = RelativeToData(raw);
  if (name == "/mnt/data") name.clear();
  auto invalid = [&](const char* why) {
    return Status::InvalidArgument(std::string("file name \"") + raw.substr(0, 200) + "\": " + why);
  };
  if (name.empty()) return invalid("give a file name relative to /mnt/data");
  if (name.size() > 1024) return invalid("too long");
  if (name.find('\0') != std::string::npos) return invalid("holds a NUL character");
  if (name.front() == '/') return invalid("give a path inside /mnt/data");
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    std::string segment = name.substr(start, slash == std::string::npos ? slash : slash - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return invalid("segments may not be empty, \".\" or \"..\"");
    }
    if (slash == std::string::npos) break;
    if (top_level) return invalid("uploads go to the top of /mnt/data; give a plain file name");
    start = slash + 1;
  }
  return name;
}

namespace {

std::string ModifiedAt(const service::SessionFile& file) {
  return FormatRfc3339Ms(file.modified_at_ns / 1'000'000);
}

}  // namespace

Json LegacyFileEntry(const service::SessionFile& file) {
  return {{"$id", file.path},
          {"properties",
           {{"$id", file.path},
            {"filename", file.path},
            {"size", file.bytes},
            {"lastModifiedTime", ModifiedAt(file)},
            {"type", "file"}}}};
}

Json CurrentFileEntry(const service::SessionFile& file) {
  return {{"name", file.path},
          {"sizeInBytes", file.bytes},
          {"lastModifiedAt", ModifiedAt(file)},
          {"contentType", "application/octet-stream"},
          {"type", "File"}};
}

Json FileList(const std::vector<service::SessionFile>& files, Contract contract) {
  Json value = Json::array();
  for (const service::SessionFile& file : files) {
    value.push_back(contract == Contract::kLegacy ? LegacyFileEntry(file) : CurrentFileEntry(file));
  }
  return {{"value", value}};
}

Result<service::SessionFile> FindFile(const std::vector<service::SessionFile>& files,
                                      const std::string& name) {
  for (const service::SessionFile& file : files) {
    if (file.path == name) return file;
  }
  return Status::NotFound("no file " + BaseName(name) + " in /mnt/data of this session");
}

Json SessionResponse(const store::SessionRow& session, const std::string& identifier) {
  auto time = [](int64_t ms) {
    return ms == 0 ? Json(nullptr)
                   : Json(FormatRfc3339(
                         std::chrono::system_clock::time_point(std::chrono::milliseconds(ms))));
  };
  bool active = session.status == "active";
  return {{"identifier", identifier},
          {"sessionId", identifier},
          {"createdAt", time(session.created_at_ms)},
          {"lastAccessedAt", time(session.last_active_at_ms != 0 ? session.last_active_at_ms
                                                                 : session.created_at_ms)},
          {"expireAt", active ? time(session.expires_at_ms) : Json(nullptr)},
          {"expiresAt", active ? time(session.expires_at_ms) : Json(nullptr)},
          {"status", active ? "Running" : "Stopped"}};
}

Json SessionList(const std::vector<Json>& sessions) {
  Json value = Json::array();
  for (const Json& s : sessions) value.push_back(s);
  return {{"value", value}, {"nextLink", nullptr}};
}

}  // namespace pycell::aca
