// Service: the few domain calls every protocol ends in — upload a file, create a session (with
// files placed in /mnt/data), execute a cell (registering the files it wrote as output files),
// read and delete files, end a session. REST /v1 translates HTTP into these calls today; MCP and
// the Azure-compatible routes will translate into the same ones. Nothing here knows about HTTP.
//
// It owns one SessionManager per pool, the MetadataStore (SQLite under the data dir) and the
// FileStore (blobs under the data dir), keeps the records in step with the live sessions, and
// runs the retention sweep.
//
// Objects cross this interface as JSON (nlohmann) in the shape the API documents
// (docs/openapi.json): one place builds each object, every adapter reuses it.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "files/file_store.h"
#include "kernel/kernel.h"
#include "session/session_manager.h"
#include "store/metadata_store.h"

namespace pycell::service {

using Json = nlohmann::json;

// An upload in progress: bytes go to a temporary blob while hashed; Finish checks the type,
// commits the blob and records the file. Dropping it unfinished leaves nothing behind.
class Upload {
 public:
  Status Write(std::string_view data) { return writer_->Write(data); }
  uint64_t bytes() const { return writer_->bytes(); }
  // The file object (JSON) of the new input file.
  Result<Json> Finish();

 private:
  friend class Service;
  Upload(class Service* service, std::string filename, std::unique_ptr<files::BlobWriter> writer)
      : service_(service), filename_(std::move(filename)), writer_(std::move(writer)) {}
  class Service* service_;
  std::string filename_;
  std::unique_ptr<files::BlobWriter> writer_;
};

struct CreateSessionRequest {
  std::string pool = "default";
  std::vector<std::string> file_ids;
  std::optional<uint64_t> memory_bytes;
  std::optional<std::chrono::seconds> execution_timeout;
  Json* metadata = nullptr;  // An object of strings, or null.
};

// A readable stored file: its record and an open descriptor on its contents.
struct FileContent {
  store::FileRow row;
  UniqueFd fd;
};

class Service {
 public:
  // Opens the store and the blobs under config.server.data_dir (which must be absolute), ends
  // the sessions a crash left "active" (server_restart), sweeps blobs no record names, starts one
  // SessionManager per pool and the retention sweep.
  static Result<std::unique_ptr<Service>> Open(const ServiceConfig& config,
                                               Clock* clock = Clock::Real());
  ~Service();

  // Files.
  Result<std::unique_ptr<Upload>> BeginUpload(const std::string& filename);
  Result<Json> GetFile(const std::string& id);
  Result<Json> ListFiles(const store::FileFilter& filter, const store::Page& page);
  Result<FileContent> OpenFile(const std::string& id);
  Status DeleteFile(const std::string& id);

  // Sessions.
  Result<Json> CreateSession(const CreateSessionRequest& request);
  Result<Json> GetSession(const std::string& id);
  Result<Json> ListSessions(const std::string& status, const store::Page& page);
  Result<Json> EndSession(const std::string& id);
  // Places stored files into the session's /mnt/data; returns what was placed.
  Result<Json> PutSessionFiles(const std::string& session_id, const std::vector<std::string>& file_ids);
  // OK when the session runs; else NotFound or its typed end (session_expired, …).
  Status RequireLive(const std::string& session_id) { return LiveSession(session_id).status(); }
  // What is in /mnt/data now.
  Result<Json> ListSessionFiles(const std::string& session_id);

  // Runs one cell; `observer` sees output as it comes (for streaming). The execution object as
  // JSON text (what is stored is what is returned: one serialization).
  Result<std::string> Execute(const std::string& session_id, const std::string& code,
                       std::optional<std::chrono::seconds> timeout,
                       const kernel::ExecuteObserver& observer = {});
  Result<std::string> GetExecution(const std::string& id);

  // Where a file came from and where it went: for an output, the execution that wrote it, its
  // session (pool, limits, metadata) and the files in /mnt/data when the cell started, each
  // traced back the same way when it was itself an output; for any file, the sessions it was
  // placed into and the cells that ran there afterwards.
  Result<Json> Lineage(const std::string& file_id);
  Result<Json> ListExecutions(const std::string& session_id, const store::Page& page);

  // Sends every running cell a KeyboardInterrupt (shutdown, after the grace period).
  void InterruptAll();
  // Stops the sweep and ends every session (reason "shutdown"), recording it.
  void Shutdown();
  // Ready when every pool holds its target of warm sessions.
  bool Ready() const;
  // Deletes expired files (and their blobs when no other record names them). Returns how many.
  Result<int> SweepExpiredFiles();

  const ServiceConfig& config() const { return config_; }
  uint64_t max_upload_bytes() const;

 private:
  friend class Upload;
  Service(ServiceConfig config, Clock* clock) : config_(std::move(config)), clock_(clock) {}

  // The live session, or the typed error its record explains (session_expired, …).
  Result<std::shared_ptr<session::Session>> LiveSession(const std::string& id);
  Status RecordEnd(const session::Session& session);
  Result<store::FileRow> StoreArtifact(session::Session& session, const std::string& execution_id,
                                       const files::FileChange& change);
  Json FileJson(const store::FileRow& row) const;
  static constexpr int kMaxLineageDepth = 16;
  Result<Json> ProducedBy(const store::FileRow& output, int depth, std::set<std::string>* seen);
  Json SessionJson(const store::SessionRow& row) const;
  int64_t NowMs() const;
  int64_t ToWallMs(std::chrono::steady_clock::time_point t) const;
  void SweepLoop();

  const ServiceConfig config_;
  Clock* const clock_;
  std::unique_ptr<store::MetadataStore> store_;
  std::unique_ptr<files::FileStore> blobs_;
  std::map<std::string, std::unique_ptr<session::SessionManager>> pools_;  // Fixed after Open.
  // Held while a blob is committed and its record written, and while a record is deleted and
  // its blob removed: a delete can never remove a blob a new record is about to name.
  std::mutex blob_mu_;
  // The records of the sessions that run, kept in step with the store (which is written first
  // on create, with every execution and at the end), so that a cell reads no database row.
  std::mutex rows_mu_;
  std::map<std::string, store::SessionRow> active_rows_;  // GUARDED_BY(rows_mu_)

  std::atomic<bool> stopping_cells_{false};  // InterruptAll or Shutdown was called.
  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool stopping_ = false;  // GUARDED_BY(sweep_mu_)
  std::thread sweep_thread_;
};

}  // namespace pycell::service
