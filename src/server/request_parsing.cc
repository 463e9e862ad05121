#include "server/request_parsing.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/clock.h"
#include "common/json_reader.h"

namespace pycell::server {

namespace {
// Request bodies: the size is bounded by server.max_json_body before they get here; what a
// legitimate body nests (metadata, tool arguments) is shallow.
const JsonLimits kBodyJsonLimits{64u << 20, 32, 1u << 20};
}  // namespace

Result<nlohmann::json> ParseBody(const Request& request,
                                 std::initializer_list<const char*> allowed) {
  if (request.body.empty()) return nlohmann::json::object();
  auto parsed = ParseUntrustedJson(request.body, kBodyJsonLimits);
  if (!parsed.ok()) {
    return Status::InvalidArgument("the body is not usable JSON (" + parsed.status().message() +
                                   "); send an object such as {\"code\": \"1+1\"}");
  }
  nlohmann::json j = std::move(*parsed);
  if (!j.is_object()) return Status::InvalidArgument("the body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return Status::InvalidArgument("unknown field \"" + key + "\"; allowed: " + list);
    }
  }
  return j;
}

Result<store::Page> PageFrom(const Request& request) {
  store::Page page;
  const std::string& limit = request.Query("limit");
  if (!limit.empty()) {
    char* end = nullptr;
    long value = std::strtol(limit.c_str(), &end, 10);
    if (*end != '\0' || value < 1 || value > 1000) {
      return Status::InvalidArgument("limit must be an integer from 1 to 1000");
    }
    page.limit = static_cast<int>(value);
  }
  page.after = request.Query("after");
  return page;
}

std::string ContentDisposition(const std::string& filename) {
  std::string ascii, encoded;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : filename) {
    ascii += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '_';
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

std::optional<std::pair<uint64_t, uint64_t>> ParseRange(const std::string& header, uint64_t size,
                                                        bool* unsatisfiable) {
  *unsatisfiable = false;
  if (header.rfind("bytes=", 0) != 0) return std::nullopt;
  std::string spec = header.substr(6);
  if (spec.find(',') != std::string::npos) return std::nullopt;
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string first = spec.substr(0, dash), last = spec.substr(dash + 1);
  auto number = [](const std::string& s, uint64_t* out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    *out = std::stoull(s);
    return true;
  };
  uint64_t a = 0, b = 0;
  if (first.empty()) {
    if (!number(last, &b)) return std::nullopt;
    if (b == 0 || size == 0) {
      *unsatisfiable = true;
      return std::nullopt;
    }
    b = std::min(b, size);
    return std::make_pair(size - b, size - 1);
  }
  if (!number(first, &a)) return std::nullopt;
  if (last.empty()) {
    b = size - 1;
  } else if (!number(last, &b) || b < a) {
    return std::nullopt;
  }
  if (a >= size) {
    *unsatisfiable = true;
    return std::nullopt;
  }
  return std::make_pair(a, std::min(b, size - 1));
}

Result<int64_t> TimeQuery(const Request& request, const char* name, int64_t fallback) {
  const std::string& text = request.Query(name);
  if (text.empty()) return fallback;
  auto ms = ParseRfc3339Ms(text);
  if (!ms.ok()) return Status::InvalidArgument(std::string(name) + ": " + ms.status().message());
  return ms;
}

Result<store::AuditFilter> AuditFilterFrom(const Request& request) {
  store::AuditFilter filter;
  ASSIGN_OR_RETURN(filter.from_ms, TimeQuery(request, "from", 0));
  ASSIGN_OR_RETURN(filter.to_ms, TimeQuery(request, "to", 0));
  filter.principal = request.Query("principal");
  filter.action = request.Query("action");
  filter.target = request.Query("target");
  const std::string& after = request.Query("after_seq");
  if (!after.empty()) {
    char* end = nullptr;
    long long value = std::strtoll(after.c_str(), &end, 10);
    if (*end != '\0' || value < 0)
      return Status::InvalidArgument("after_seq must be an integer ≥ 0");
    filter.after_seq = value;
  }
  ASSIGN_OR_RETURN(store::Page page, PageFrom(request));
  filter.limit = page.limit;
  return filter;
}

Result<auth::KeySpec> KeySpecFrom(const Request& request) {
  ASSIGN_OR_RETURN(nlohmann::json body,
                   ParseBody(request, {"principal", "project", "role", "all_projects"}));
  auth::KeySpec spec;
  if (!body.contains("principal") || !body["principal"].is_string()) {
    return Status::InvalidArgument("principal is required: the name of who will use the key");
  }
  spec.principal = body["principal"].get<std::string>();
  if (body.contains("project") && !body["project"].is_null()) {
    if (!body["project"].is_string()) return Status::InvalidArgument("project must be a string");
    spec.project = body["project"].get<std::string>();
  }
  if (body.contains("role") && !body["role"].is_null()) {
    if (!body["role"].is_string()) return Status::InvalidArgument("role must be a string");
    spec.role = body["role"].get<std::string>();
  }
  if (body.contains("all_projects") && !body["all_projects"].is_null()) {
    if (!body["all_projects"].is_boolean()) {
      return Status::InvalidArgument("all_projects must be true or false");
    }
    spec.all_projects = body["all_projects"].get<bool>();
  }
  return spec;
}

Result<nlohmann::json> ParseObject(const Request& request) {
  if (request.body.empty()) return nlohmann::json::object();
  auto parsed = ParseUntrustedJson(request.body, kBodyJsonLimits);
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::InvalidArgument(
        "the body must be a JSON object" +
        (parsed.ok() ? std::string() : " (" + parsed.status().message() + ")"));
  }
  return std::move(*parsed);
}

}  // namespace pycell::server
