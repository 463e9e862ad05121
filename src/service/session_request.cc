// The JSON shape of a session request, read once for every protocol (REST /v1, MCP).
#include <nlohmann/json.hpp>

#include "service/service.h"

namespace pycell::service {

Result<std::vector<std::string>> FileIdsFromJson(const Json& body) {
  std::vector<std::string> ids;
  if (!body.contains("file_ids") || body["file_ids"].is_null()) return ids;
  const Json& list = body["file_ids"];
  if (!list.is_array()) return Status::InvalidArgument("file_ids must be an array of file ids");
  if (list.size() > 100) return Status::InvalidArgument("at most 100 file_ids at once");
  for (const Json& id : list) {
    if (!id.is_string()) return Status::InvalidArgument("file_ids must be an array of strings");
    ids.push_back(id.get<std::string>());
  }
  return ids;
}

Result<CreateSessionRequest> CreateSessionRequestFromJson(Json& body) {
  CreateSessionRequest r;
  if (body.contains("pool")) {
    if (!body["pool"].is_string()) return Status::InvalidArgument("pool must be a string");
    r.pool = body["pool"].get<std::string>();
  }
  ASSIGN_OR_RETURN(r.file_ids, FileIdsFromJson(body));
  if (body.contains("limits") && !body["limits"].is_null()) {
    const Json& limits = body["limits"];
    if (!limits.is_object()) return Status::InvalidArgument("limits must be an object");
    for (const auto& [key, value] : limits.items()) {
      if (key == "memory_bytes") {
        if (!value.is_number_unsigned())
          return Status::InvalidArgument("limits.memory_bytes must be a positive integer");
        r.memory_bytes = value.get<uint64_t>();
      } else if (key == "execution_timeout_s") {
        if (!value.is_number_unsigned())
          return Status::InvalidArgument("limits.execution_timeout_s must be a positive integer");
        r.execution_timeout = std::chrono::seconds(value.get<uint64_t>());
      } else {
        return Status::InvalidArgument("unknown limit \"" + key +
                                       "\"; allowed: memory_bytes, execution_timeout_s");
      }
    }
  }
  if (body.contains("metadata") && !body["metadata"].is_null()) {
    Json& metadata = body["metadata"];
    if (!metadata.is_object())
      return Status::InvalidArgument("metadata must be an object of strings");
    if (metadata.size() > 32) return Status::InvalidArgument("metadata holds at most 32 keys");
    for (const auto& [key, value] : metadata.items()) {
      if (key.empty() || key.size() > 64 || !value.is_string() ||
          value.get<std::string>().size() > 512) {
        return Status::InvalidArgument(
            "metadata keys must be 1-64 characters and values strings of at most 512");
      }
    }
    r.metadata = &metadata;
  }
  return r;
}

}  // namespace pycell::service
