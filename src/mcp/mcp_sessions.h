// McpSessions: the MCP sessions of the Streamable HTTP transport — the Mcp-Session-Id the server
// hands out at initialize, each bound to the API key that opened it, so that another key cannot
// use or end it. (An MCP session is a client conversation, not a pycell session: it holds no
// Python state.) Held in memory: a restart forgets them and clients initialize again (the
// transport's 404 tells them to). At most kMaxSessions; past it the least recently used goes.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "auth/caller.h"
#include "common/mutex.h"
#include "common/status.h"

namespace pycell::mcp {

class McpSessions {
 public:
  static constexpr size_t kMaxSessions = 10000;

  // A new session of `caller`'s key, speaking `protocol_version`; its id (mcp_…).
  std::string Open(const auth::Caller& caller, const std::string& protocol_version);
  // OK when `id` is a session of `caller`'s key (and marks it used); NotFound otherwise.
  Status Use(const std::string& id, const auth::Caller& caller);
  // Ends the session; NotFound as Use.
  Status End(const std::string& id, const auth::Caller& caller);
  size_t size() const;

 private:
  struct Entry {
    std::string key_id;
    std::string protocol_version;
    std::chrono::steady_clock::time_point last_used;
  };
  mutable Mutex mu_;
  std::map<std::string, Entry> sessions_ GUARDED_BY(mu_);
};

}  // namespace pycell::mcp
