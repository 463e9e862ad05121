// Helpers shared by the Service's source files (one a part: files.cc, sessions.cc,
// executions.cc, lineage.cc, identity.cc, operations.cc, session_files.cc, and the exports).
// Internal to src/service.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/caller.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::service {

// RFC 3339 (UTC, milliseconds) of a time in ms since the epoch; null for 0 ("never").
nlohmann::json TimeOrNull(int64_t ms);

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

// One page of a list as {"object": "list", "data", "has_more", "last_id"}: asks the store for one
// row more than the page holds, to know whether another page follows.
template <typename Fetch, typename ToJson>
Result<Json> ListPage(const store::Page& page, Fetch fetch, ToJson to_json) {
  store::Page probe = page;
  probe.limit = page.limit + 1;
  ASSIGN_OR_RETURN(auto rows, fetch(probe));
  bool more = rows.size() > static_cast<size_t>(page.limit);
  if (more) rows.resize(static_cast<size_t>(page.limit));
  Json data = Json::array();
  for (const auto& row : rows) data.push_back(to_json(row));
  return Json{{"object", "list"},
              {"data", std::move(data)},
              {"has_more", more},
              {"last_id", rows.empty() ? Json(nullptr) : Json(rows.back().id)}};
}

// Who a diagnostic event is about: the caller, and the request (also in the audit event and the
// X-Request-Id header).
inline void AddCaller(const auth::Caller& caller, Json* event) {
  (*event)["principal"] = caller.principal;
  (*event)["project_id"] = caller.project_id;
  (*event)["key_id"] = caller.key_id;
  (*event)["request_id"] = caller.request_id;
}

inline Json MetadataOf(const store::SessionRow& row) {
  Json metadata = Json::parse(row.metadata_json, nullptr, false);
  return metadata.is_discarded() ? Json::object() : metadata;
}

}  // namespace pycell::service
