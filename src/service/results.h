// The typed results of the Service's domain calls. A call returns one of these, never wire JSON;
// each protocol builds its shapes from them in one place: service/v1_views.h for REST /v1 (whose
// objects MCP embeds and evidence bundles hold), mcp/mcp_tools.cc for MCP's tool results,
// aca/aca_api.h for the Azure-compatible routes, notebook/ for .ipynb.
//
// Plain data; thread-safety is that of the values.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "session/execution.h"
#include "store/metadata_store.h"

namespace pycell::service {

// A stored file: its record as the store keeps it (name, bytes, sha256, media type, purpose, the
// execution and path that made an output, expiry).
using FileInfo = store::FileRow;

// A session as the service reports it: its record (while it runs, the live one the service keeps
// in step with the store), and whether it has run past usage.expected_session.
struct SessionInfo {
  store::SessionRow row;
  bool over_expected_duration = false;
};

// A session made from an ended one's record (RestoreSession): the new session, and how its cells
// ran again.
struct RestoredSession {
  SessionInfo session;
  std::string restored_from;
  size_t restored_cells = 0;
  // Cells whose status differs from the original's.
  struct Difference {
    std::string original_execution_id;
    std::string original_status;
    std::string status;
  };
  std::vector<Difference> differences;
};

// One execution: the record as a struct, and the record as stored (its ToJson text, made once
// when the cell ran: the /v1 execution object, which the REST routes send as is).
struct ExecutionInfo {
  session::ExecutionRecord record;
  std::string json;
};

// A stored file placed into a session's /mnt/data (PutSessionFiles, ReplaceSessionFile).
struct PlacedFile {
  std::string file_id;
  std::string path;  // Relative to /mnt/data: the file's name.
  int64_t bytes = 0;
};

// A file in a session's /mnt/data now (ListSessionFiles).
struct SessionFile {
  std::string path;  // Relative to /mnt/data; bytes that are not UTF-8 escaped (common/utf8.h).
  uint64_t bytes = 0;
  int64_t modified_at_ns = 0;  // Since the epoch.
};

// One page of a list, in the order the call gives; has_more when another page follows (ask for
// it with after = the last item's id).
template <typename T>
struct Listing {
  std::vector<T> data;
  bool has_more = false;
};

}  // namespace pycell::service
