#include "kernel/policy_json.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/json_reader.h"

namespace pycell::kernel {

using nlohmann::json;

std::string EncodePolicy(const sandbox::Policy& p) {
  json j = {
      {"session_dir", p.session_dir},
      {"hostname", p.hostname},
      {"host_uid_init", p.host_uid_init},
      {"host_uid_user", p.host_uid_user},
      {"host_gid_init", p.host_gid_init},
      {"host_gid_user", p.host_gid_user},
      {"readonly_binds", p.readonly_binds},
      {"memory_bytes", p.memory_bytes},
      {"max_pids", p.max_pids},
      {"cpus", p.cpus},
      {"data_bytes", p.data_bytes},
      {"tmp_bytes", p.tmp_bytes},
      {"max_file_bytes", p.max_file_bytes},
      {"max_open_files", p.max_open_files},
      {"seccomp", p.seccomp},
      {"private_runtime", p.private_runtime},
  };
  return DumpJson(j);
}

namespace {
// An unsigned integer field that fits T; anything else (negative, fractional, boolean, too
// large) throws, as a wrong type does.
template <typename T>
T Unsigned(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max()) {
    throw std::out_of_range(std::string(key) + " is not an unsigned integer in range");
  }
  return static_cast<T>(v.get<uint64_t>());
}
}  // namespace

Result<sandbox::Policy> DecodePolicy(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("policy is not JSON");
  sandbox::Policy p;
  try {
    p.session_dir = j.at("session_dir").get<std::string>();
    p.hostname = j.at("hostname").get<std::string>();
    p.host_uid_init = Unsigned<uid_t>(j, "host_uid_init");
    p.host_uid_user = Unsigned<uid_t>(j, "host_uid_user");
    p.host_gid_init = Unsigned<gid_t>(j, "host_gid_init");
    p.host_gid_user = Unsigned<gid_t>(j, "host_gid_user");
    p.readonly_binds = j.at("readonly_binds").get<std::vector<std::string>>();
    p.memory_bytes = Unsigned<uint64_t>(j, "memory_bytes");
    p.max_pids = Unsigned<uint32_t>(j, "max_pids");
    p.cpus = j.at("cpus").get<double>();
    p.data_bytes = Unsigned<uint64_t>(j, "data_bytes");
    p.tmp_bytes = Unsigned<uint64_t>(j, "tmp_bytes");
    p.max_file_bytes = Unsigned<uint64_t>(j, "max_file_bytes");
    p.max_open_files = Unsigned<uint32_t>(j, "max_open_files");
    p.seccomp = j.at("seccomp").get<bool>();
    p.private_runtime = j.at("private_runtime").get<bool>();
    if (!j.at("cpus").is_number() || !(p.cpus >= 0 && p.cpus <= 1024)) {
      throw std::out_of_range("cpus out of range");
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("policy field: ") + e.what());
  }
  return p;
}

}  // namespace pycell::kernel
