#include "kernel/policy_json.h"

#include <nlohmann/json.hpp>

namespace pycell::kernel {

using nlohmann::json;

std::string EncodePolicy(const sandbox::Policy& p) {
  json j = {
      {"session_dir", p.session_dir},       {"hostname", p.hostname},
      {"host_uid_init", p.host_uid_init},   {"host_uid_user", p.host_uid_user},
      {"host_gid_init", p.host_gid_init},   {"host_gid_user", p.host_gid_user},
      {"readonly_binds", p.readonly_binds}, {"memory_bytes", p.memory_bytes},
      {"max_pids", p.max_pids},             {"cpus", p.cpus},
      {"data_bytes", p.data_bytes},         {"tmp_bytes", p.tmp_bytes},
      {"max_file_bytes", p.max_file_bytes}, {"max_open_files", p.max_open_files},
      {"seccomp", p.seccomp},
  };
  return j.dump();
}

Result<sandbox::Policy> DecodePolicy(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("policy is not JSON");
  sandbox::Policy p;
  try {
    p.session_dir = j.at("session_dir").get<std::string>();
    p.hostname = j.at("hostname").get<std::string>();
    p.host_uid_init = j.at("host_uid_init").get<uid_t>();
    p.host_uid_user = j.at("host_uid_user").get<uid_t>();
    p.host_gid_init = j.at("host_gid_init").get<gid_t>();
    p.host_gid_user = j.at("host_gid_user").get<gid_t>();
    p.readonly_binds = j.at("readonly_binds").get<std::vector<std::string>>();
    p.memory_bytes = j.at("memory_bytes").get<uint64_t>();
    p.max_pids = j.at("max_pids").get<uint32_t>();
    p.cpus = j.at("cpus").get<double>();
    p.data_bytes = j.at("data_bytes").get<uint64_t>();
    p.tmp_bytes = j.at("tmp_bytes").get<uint64_t>();
    p.max_file_bytes = j.at("max_file_bytes").get<uint64_t>();
    p.max_open_files = j.at("max_open_files").get<uint32_t>();
    p.seccomp = j.at("seccomp").get<bool>();
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("policy field: ") + e.what());
  }
  return p;
}

}  // namespace pycell::kernel
