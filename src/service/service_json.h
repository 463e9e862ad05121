// Helpers shared by the Service's source files (one a part: files.cc, sessions.cc,
// executions.cc, lineage.cc, identity.cc, operations.cc, session_files.cc, and the exports).
// Internal to src/service.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/caller.h"
#include "common/status.h"
#include "service/results.h"
#include "service/v1_views.h"
#include "store/metadata_store.h"

namespace pycell::service {

using Json = nlohmann::json;

// The error a client gets for a session that no longer runs, typed by why it ended.
inline Status EndedError(const std::string& id, const std::string& reason) {
  if (reason == "idle" || reason == "lifetime") {
    return Status::FailedPrecondition("session " + id + " expired (" + reason +
                                      " timeout); create a new session")
        .WithReason("session_expired");
  }
  if (reason == "closed") {
    return Status::FailedPrecondition("session " + id +
                                      " was ended by its user; create a new session")
        .WithReason("session_closed");
  }
  if (reason == "origin_ended") {
    return Status::FailedPrecondition("session " + id +
                                      " was a fork, and the session it was forked from ended "
                                      "(a fork lives inside its origin); create a new session")
        .WithReason("session_killed");
  }
  return Status::FailedPrecondition("session " + id + " was killed (" + reason +
                                    "); create a new session")
      .WithReason("session_killed");
}

inline std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// One page of a list: asks the store for one row more than the page holds, to know whether
// another page follows; `convert` makes each row the listing's item.
template <typename Item, typename Fetch, typename Convert>
Result<Listing<Item>> ListOf(const store::Page& page, Fetch fetch, Convert convert) {
  store::Page probe = page;
  probe.limit = page.limit + 1;
  ASSIGN_OR_RETURN(auto rows, fetch(probe));
  Listing<Item> list;
  list.has_more = rows.size() > static_cast<size_t>(page.limit);
  if (list.has_more) rows.resize(static_cast<size_t>(page.limit));
  for (const auto& row : rows) list.data.push_back(convert(row));
  return list;
}

// Who a diagnostic event is about: the caller, and the request (also in the audit event and the
// X-Request-Id header).
inline void AddCaller(const auth::Caller& caller, Json* event) {
  (*event)["principal"] = caller.principal;
  (*event)["project_id"] = caller.project_id;
  (*event)["key_id"] = caller.key_id;
  (*event)["request_id"] = caller.request_id;
}

}  // namespace pycell::service
