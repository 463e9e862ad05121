// The typed results of the Service's domain calls. A call returns one of these, never wire JSON;
// each protocol builds its shapes from them in one place: service/v1_views.h for REST /v1 (whose
// objects MCP embeds and evidence bundles hold), mcp/mcp_tools.cc for MCP's tool results,
// aca/aca_api.h for the Azure-compatible routes, notebook/ for .ipynb.
//
// Plain data; thread-safety is that of the values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/config_json.h"
#include "notebook/compare.h"
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

// An execution as lineage names it: what it ran and when, without its record (whose outputs a
// cell fills: a lineage report may name a thousand executions).
struct ExecutionSummary {
  std::string id;
  std::string status;  // As the session reported it.
  std::string code;    // Empty in FileLineage::Use, which names executions by code_sha256.
  std::string code_sha256;
  int64_t started_at_ms = 0;
  double duration_ms = 0;
};

// Where an output came from (Service::Lineage): the execution that wrote it (its status as the
// session reported it; the rest measured by the server), that execution's session (absent when
// its record is gone), and the files in /mnt/data when the cell started, each traced back the
// same way when it was itself an output the caller may see.
struct Origin {
  ExecutionSummary execution;
  std::optional<store::SessionRow> session;
  struct Input {
    std::string file_id;
    std::string filename;
    std::string sha256;
    std::string via;                            // "placed" | "written_earlier_in_session"
    bool exists = false;                        // Its record is still there.
    std::shared_ptr<const Origin> produced_by;  // Set for a traced output.
  };
  std::vector<Input> inputs;
};

// A file's lineage: where it came from (outputs only) and where it went — the sessions it was
// placed into, each with the cells that ran there after it was placed (oldest first).
struct FileLineage {
  FileInfo file;
  std::shared_ptr<const Origin> produced_by;
  struct Use {
    std::string session_id;
    int64_t placed_at_ms = 0;
    std::vector<ExecutionSummary> executions;
  };
  std::vector<Use> used_by;
};

// A session's cells run again in a new session and compared cell by cell (Service::Replay).
struct ReplayReport {
  std::string original_session_id;
  std::string replay_session_id;
  bool kept = false;  // The replay session was left running.
  struct Cell {
    size_t index = 0;
    std::string original_execution_id;
    std::string replay_execution_id;  // "" when the cell was not run.
    std::vector<notebook::Difference> differences;
    std::vector<std::string> notes;
    bool equal() const { return !replay_execution_id.empty() && differences.empty(); }
  };
  std::vector<Cell> cells;
  // The cell that compared images' pixels inside the replay session, when one ran.
  std::string pixel_check_execution_id;
  bool all_equal() const {
    for (const Cell& cell : cells) {
      if (!cell.equal()) return false;
    }
    return true;
  }
};

// A pool now: its warm sessions against their target, its sessions and those running a cell,
// what its zygote preloads and the limits new sessions get.
struct PoolInfo {
  std::string name;
  size_t ready = 0;
  uint32_t target_ready = 0;
  size_t active = 0;
  size_t executing = 0;
  std::vector<std::string> preload;
  SessionLimits limits;
};

// What a reload (Service::Reload) changed now and what waits for a restart, key by key.
struct ReloadOutcome {
  std::vector<ConfigChange> applied;
  std::vector<ConfigChange> needs_restart;
};

// The public half of the key that signs evidence bundles (Ed25519).
struct EvidenceKeyInfo {
  std::string pem;
  std::string sha256;  // Of the public key: its fingerprint.
};

// What `pycell show` prints (Service::Status).
struct ServiceStatus {
  int64_t started_at_ms = 0;
  int64_t uptime_s = 0;
  ServerConfig server;  // As started: listen, metrics_listen, data_dir.
  std::string store_backend;
  std::string store_location;
  int schema_version = 0;
  std::string host_protections_json;  // A JSON array of {name, available, detail}.
  std::vector<PoolInfo> pools;
  std::map<std::string, int64_t> keys_by_role;  // Live keys.
  EvidenceKeyInfo evidence_key;
  std::shared_ptr<const ServiceConfig> config;  // In force.
};

// One page of a list, in the order the call gives; has_more when another page follows (ask for
// it with after = the last item's id).
template <typename T>
struct Listing {
  std::vector<T> data;
  bool has_more = false;
};

}  // namespace pycell::service
