#include "mcp/mcp_sessions.h"

#include <algorithm>

#include "common/ids.h"

namespace pycell::mcp {

std::string McpSessions::Open(const auth::Caller& caller, const std::string& protocol_version) {
  std::string id = NewId("mcp_");
  MutexLock lock(mu_);
  if (sessions_.size() >= kMaxSessions) {
    auto oldest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.last_used < b.second.last_used; });
    sessions_.erase(oldest);
  }
  sessions_[id] = Entry{caller.key_id, protocol_version, std::chrono::steady_clock::now()};
  return id;
}

Status McpSessions::Use(const std::string& id, const auth::Caller& caller) {
  MutexLock lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.key_id != caller.key_id) {
    return Status::NotFound("no MCP session " + id + "; send initialize again to start one");
  }
  it->second.last_used = std::chrono::steady_clock::now();
  return Status::Ok();
}

Status McpSessions::End(const std::string& id, const auth::Caller& caller) {
  MutexLock lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.key_id != caller.key_id) {
    return Status::NotFound("no MCP session " + id);
  }
  sessions_.erase(it);
  return Status::Ok();
}

size_t McpSessions::size() const {
  MutexLock lock(mu_);
  return sessions_.size();
}

}  // namespace pycell::mcp
