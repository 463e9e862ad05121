// Service: the few domain calls every protocol ends in — upload a file, create a session (with
// files placed in /mnt/data), execute a cell (registering the files it wrote as output files),
// read and delete files, end a session. REST /v1, MCP and the Azure-compatible routes each
// translate their protocol into these calls. Nothing here knows about HTTP.
//
// It owns one SessionManager per pool, the MetadataStore (SQLite under the data dir) and the
// FileStore (blobs under the data dir), keeps the records in step with the live sessions, and
// runs the retention sweep.
//
// Every call takes the Caller (auth/caller.h). The route has already checked the caller's role
// (server); here each object a call touches is checked against the caller's scope — what the
// caller may not see is NotFound, worded as for an id that never existed — and every action is
// written with its audit event (and metered usage) in the same store transaction as its records.
// Quotas are checked before sessions are created, cells run and bytes are stored.
//
// Every call returns typed results (results.h, identity.h, usage/usage.h): none returns wire
// JSON but Notebook, whose .ipynb document is a file format. Each protocol builds its shapes from
// them in one place (v1_views.h for REST /v1, whose objects MCP embeds and evidence bundles hold;
// auth/directory.h for projects and keys; aca/aca_api.h for the Azure-compatible routes). The
// identity part is a class of its own (identity.h), reached through identity().
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "auth/authenticator.h"
#include "auth/caller.h"
#include "auth/directory.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/mutex.h"
#include "common/snapshot.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "diagnostics/diagnostics.h"
#include "evidence/signing_key.h"
#include "files/file_store.h"
#include "kernel/kernel.h"
#include "metrics/metrics.h"
#include "service/identity.h"
#include "service/results.h"
#include "service/session_records.h"
#include "session/session_manager.h"
#include "store/metadata_store.h"
#include "usage/usage.h"

namespace pycell::service {

using Json = nlohmann::json;

// An upload in progress: bytes go to a temporary blob while hashed; Finish checks the type,
// commits the blob and records the file. Dropping it unfinished leaves nothing behind.
class Upload {
 public:
  Status Write(std::string_view data) { return writer_->Write(data); }
  uint64_t bytes() const { return writer_->bytes(); }
  // The new input file.
  Result<FileInfo> Finish();

 private:
  friend class Service;
  Upload(class Service* service, auth::Caller caller, std::string filename,
         std::unique_ptr<files::BlobWriter> writer)
      : service_(service),
        caller_(std::move(caller)),
        filename_(std::move(filename)),
        writer_(std::move(writer)) {}
  class Service* service_;
  auth::Caller caller_;
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

// POST /v1/sessions's body (also MCP's create_session arguments) as a request: pool, file_ids
// (at most 100), limits {memory_bytes, execution_timeout_s}, metadata (at most 32 string values);
// InvalidArgument saying what is wrong. `body` must outlive the request (metadata points into it).
Result<CreateSessionRequest> CreateSessionRequestFromJson(Json& body);
// A `file_ids` list of `body` (absent or null: none).
Result<std::vector<std::string>> FileIdsFromJson(const Json& body);

// A readable stored file: its record and an open descriptor on its contents.
struct FileContent {
  store::FileRow row;
  UniqueFd fd;
};

// What an evidence bundle covers (docs/evidence.md): one session, or a period [from_ms, to_ms).
struct EvidenceRequest {
  std::string session_id;  // Set: the session, from its creation to its end (or now).
  int64_t from_ms = 0;
  int64_t to_ms = 0;
  bool with_files = false;  // Include file contents as files/<sha256>.
};

// A signed bundle, built in an unlinked temporary file under the data dir (so a bundle with file
// contents is never held in memory, and a crash leaves nothing behind).
struct EvidenceBundle {
  UniqueFd fd;  // Read it with pread from offset 0.
  uint64_t bytes = 0;
  std::string manifest_sha256;
  std::string filename;  // A suggested name: pycell-evidence-<session or period>.tar.gz.
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
  Result<std::unique_ptr<Upload>> BeginUpload(const auth::Caller& caller,
                                              const std::string& filename);
  Result<FileInfo> GetFile(const auth::Caller& caller, const std::string& id);
  Result<Listing<FileInfo>> ListFiles(const auth::Caller& caller, store::FileFilter filter,
                                      const store::Page& page);
  Result<FileContent> OpenFile(const auth::Caller& caller, const std::string& id);
  // Audits a download of `bytes` of `file` (before the first byte is sent) and meters it.
  Status RecordDownload(const auth::Caller& caller, const store::FileRow& file, uint64_t bytes);
  Status DeleteFile(const auth::Caller& caller, const std::string& id);

  // Sessions.
  Result<SessionInfo> CreateSession(const auth::Caller& caller,
                                    const CreateSessionRequest& request);
  Result<SessionInfo> GetSession(const auth::Caller& caller, const std::string& id);
  // project: "" = every project the caller sees.
  Result<Listing<SessionInfo>> ListSessions(const auth::Caller& caller, const std::string& status,
                                            const std::string& project, const store::Page& page);
  Result<SessionInfo> EndSession(const auth::Caller& caller, const std::string& id);
  // A new session with a copy of `id`'s live state (SessionManager::ForkSession), owned by the
  // caller, in the origin's project, pool, limits and metadata, with the origin's input files on
  // record as its own. Between cells only (409 session_busy otherwise).
  Result<SessionInfo> ForkSession(const auth::Caller& caller, const std::string& id);
  // Places stored files into the session's /mnt/data; returns what was placed. A name already
  // there is 409.
  Result<std::vector<PlacedFile>> PutSessionFiles(const auth::Caller& caller,
                                                  const std::string& session_id,
                                                  const std::vector<std::string>& file_ids);
  // Places one stored file, replacing a file of its name in one step (the Azure-compatible
  // upload's semantics): the session's /mnt/data never lacks the name meanwhile. Audited as
  // session.files.put with "replaced": true. Returns the placed entry.
  Result<PlacedFile> ReplaceSessionFile(const auth::Caller& caller, const std::string& session_id,
                                        const std::string& file_id);
  // Calls `listener` with the id of every session that ends from now on, however it ends
  // (deleted, expired, killed, the server stopping), after its end is recorded. Register before
  // serving: the list is read without a lock. A listener must not call back into the Service.
  void AddEndListener(std::function<void(const std::string& session_id)> listener) {
    end_listeners_.push_back(std::move(listener));
  }
  // OK when the session runs and the caller may use it; else NotFound or its typed end
  // (session_expired, …).
  Status RequireLive(const auth::Caller& caller, const std::string& session_id) {
    return LiveSession(caller, session_id).status();
  }
  // Removes a file from the session's /mnt/data (`path` relative to it, or starting with
  // "/mnt/data/"), with a session.files.delete audit event. NotFound when there is none. Returns
  // the removed file's path relative to /mnt/data (bytes that are not UTF-8 escaped).
  Result<std::string> RemoveSessionFile(const auth::Caller& caller, const std::string& session_id,
                                        const std::string& path);
  // What is in /mnt/data now.
  Result<std::vector<SessionFile>> ListSessionFiles(const auth::Caller& caller,
                                                    const std::string& session_id);
  // A file in the session's /mnt/data by its path (relative to it), opened read-only through
  // the session's safe folder, audited as session.files.get and metered as a download; its
  // record (row) carries only filename, bytes and media type. For the Azure-compatible routes,
  // which name session files by path rather than by file id.
  Result<FileContent> OpenSessionFile(const auth::Caller& caller, const std::string& session_id,
                                      const std::string& path);

  // Runs one cell; `observer` sees output as it comes (for streaming). The record, with its
  // stored serialization (one serialization: what is stored is what is returned).
  Result<ExecutionInfo> Execute(const auth::Caller& caller, const std::string& session_id,
                                const std::string& code,
                                std::optional<std::chrono::seconds> timeout,
                                const kernel::ExecuteObserver& observer = {});
  // Sends the session's running cell (if any) a KeyboardInterrupt, as a timeout would; audited
  // as execution.interrupt. For MCP's notifications/cancelled.
  Status InterruptSession(const auth::Caller& caller, const std::string& session_id);
  Result<ExecutionInfo> GetExecution(const auth::Caller& caller, const std::string& id);
  Result<Listing<ExecutionInfo>> ListExecutions(const auth::Caller& caller,
                                                const std::string& session_id,
                                                const store::Page& page);

  // The session's cells and outputs as a Jupyter notebook (nbformat 4.5) with provenance in its
  // metadata (notebook_export.cc; docs/notebooks.md). The one call that returns JSON: an .ipynb
  // file is a document whose format is nbformat's, built by src/notebook, not a reply shape.
  Result<Json> Notebook(const auth::Caller& caller, const std::string& session_id);

  // Runs the session's cells again, in order, in a new session with the same pool, limits and
  // input files (by SHA-256), and reports cell by cell whether the outputs match (replay.cc;
  // docs/notebooks.md). The new session is ended afterwards unless `keep`.
  Result<ReplayReport> Replay(const auth::Caller& caller, const std::string& session_id, bool keep);
  // A new session made from an ended (or live) one's record: its cells are run again silently,
  // then it is handed over — variables and /mnt/data as the cells left them.
  Result<RestoredSession> RestoreSession(const auth::Caller& caller, const std::string& from);

  // Where a file came from and where it went: for an output, the execution that wrote it, its
  // session (pool, limits, principal, metadata) and the files in /mnt/data when the cell
  // started, each traced back the same way when it was itself an output; for any file, the
  // sessions it was placed into and the cells that ran there afterwards (those the caller sees).
  Result<FileLineage> Lineage(const auth::Caller& caller, const std::string& file_id);

  // The identity part: the caller, projects and keys (identity.h).
  Identity& identity() { return *identity_; }

  // The audit log (oldest first, paged by seq: has_more when events follow the last) and usage,
  // within the caller's scope (Identity::QueryScope of `project`).
  Result<Listing<audit::AuditEvent>> ListAudit(const auth::Caller& caller,
                                               store::AuditFilter filter,
                                               const std::string& project);
  Result<usage::Report> Usage(const auth::Caller& caller, const std::string& group_by,
                              int64_t from_ms, int64_t to_ms, const std::string& project);

  // Operators' views: pools with their warm and running sessions (the configuration in force is
  // LiveConfig()).
  std::vector<PoolInfo> Pools() const;
  // What `pycell show` prints: version and build, uptime, addresses, the data dir and store, the
  // host's sandbox protections (probed at start), pools, keys by role, and the configuration.
  Result<ServiceStatus> GetStatus();

  // Evidence bundles (evidence_export.cc): a signed tar.gz of the configuration, the audit chain
  // segment, executions, lineage, files, usage and metrics of a session or period, within the
  // caller's scope (as ListAudit); audited as evidence.export. with_files needs the
  // files.content permission too. The public half of the signing key.
  Result<EvidenceBundle> ExportEvidence(const auth::Caller& caller, const EvidenceRequest& request);
  EvidenceKeyInfo EvidencePublicKey() const;

  // Sends every running cell a KeyboardInterrupt (shutdown, after the grace period).
  void InterruptAll();
  // Stops the sweep and ends every session (reason "shutdown"), recording it.
  void Shutdown();
  // Ready when every pool holds its target of warm sessions.
  bool Ready() const;
  // Deletes expired files (and their blobs when no other record names them). Returns how many.
  Result<int> SweepExpiredFiles();
  // Logs, once per session, those running past usage.expected_session. Returns how many are.
  int FlagLongSessions();
  // What the state gauges of /metrics show now.
  metrics::StateSample SampleState();

  // Hands a diagnostic event of `category` (diagnostics/diagnostics.h) to the diagnostic
  // settings' sinks; `make` builds it, and is called only when some setting lists the category.
  // The service emits audit, executions, sessions and security itself; the server, requests.
  void Emit(std::string_view category, const std::function<Json()>& make);
  // The diagnostic settings with their sinks' state (`pycell diagnostic-settings list`).
  std::vector<diagnostics::Diagnostics::SinkState> DiagnosticSettings() const;

  // The metrics every part of the service records into (GET /metrics scrapes them).
  metrics::Metrics& metrics() { return *metrics_; }
  // Checks API keys against this service's store (the server's Router::Authorize uses it).
  auth::Authenticator& authenticator() { return *authenticator_; }
  // The configuration the service started with; server and engine settings never change.
  const ServiceConfig& config() const { return config_; }
  // The configuration in force: the start's, with what reloads changed (pools' limits and ready
  // sessions, retention, prices, usage, diagnostic settings).
  std::shared_ptr<const ServiceConfig> LiveConfig() const;

  // Applies `next` (a configuration file read again on SIGHUP): what can change live changes
  // now — new sessions get the new limits (ready ones are replaced), prices, retention, usage and
  // diagnostic settings apply at once — and the rest (server, engine, the set of pools and their
  // preloads) is reported as needing a restart and kept. Audited as config.change with every
  // changed key (by `caller`); InvalidArgument, with nothing applied, when `next` is invalid or
  // a diagnostic setting cannot start. What changed and what waits, key by key (ReloadView is
  // its shape, in the API and in the audit event).
  Result<ReloadOutcome> Reload(const auth::Caller& caller, const ServiceConfig& next);
  uint64_t max_upload_bytes() const;

 private:
  friend class Upload;
  Service(ServiceConfig config, Clock* clock)
      : config_(std::move(config)),
        clock_(clock),
        live_config_(std::make_shared<const ServiceConfig>(config_)) {}

  // The records the caller may see, or NotFound worded as for an id that never existed.
  Result<store::SessionRow> VisibleSession(const auth::Caller& caller, const std::string& id);
  Result<store::FileRow> VisibleFile(const auth::Caller& caller, const std::string& id);
  Result<store::ExecutionRow> VisibleExecution(const auth::Caller& caller, const std::string& id);
  // A new session like `original` (pool, limits, input files checked by SHA-256), its metadata
  // with link_key: original.id.
  Result<SessionInfo> StartFromRecord(const auth::Caller& caller, const store::SessionRow& original,
                                      const std::string& link_key);
  // Every execution of a session, oldest first.
  Result<std::vector<store::ExecutionRow>> SessionExecutions(const std::string& session_id);
  // The live session the caller may use, or the typed error its record explains.
  Result<std::shared_ptr<session::Session>> LiveSession(const auth::Caller& caller,
                                                        const std::string& id);
  // Records a refusal past a quota (quota.exceeded) and returns it.
  Status QuotaRefused(const auth::Caller& caller, const std::string& target, Status refusal);
  Status RecordEnd(const session::Session& session) EXCLUDES(end_mu_);
  // Writes the ends RecordEnd could not (the database was locked or full), oldest first, until
  // one fails again.
  void FlushUnrecordedEndsLocked() REQUIRES(end_mu_);
  // The diagnostic events an audit event makes (the store's audit listener).
  void EmitAudit(const audit::AuditEvent& event);
  // One changed file on its way to becoming an output: copied and hashed (the slow part) without
  // any lock held; committed under blob_mu_ with the execution's record.
  struct StagedArtifact {
    store::FileRow row;
    std::unique_ptr<files::BlobWriter> writer;
  };
  Result<StagedArtifact> StageArtifact(session::Session& session, const store::SessionRow& owner,
                                       const auth::Caller& caller, const std::string& execution_id,
                                       const files::FileChange& change, uint64_t max_bytes);
  // Places stored file `file_id` into the session's /mnt/data (replacing one of its name when
  // `replace`), on record as an input of the session; the placed entry.
  Result<PlacedFile> PlaceFile(const auth::Caller& caller, session::Session& session,
                               const std::string& file_id, bool replace);
  // When the record's outputs are larger than engine.max_record_outputs: all of them as an output
  // file (a JSON array), staged like an artifact, and the record cut to the outputs that fit.
  // Nothing when they fit, or when the file could not be made (the record says why).
  std::optional<StagedArtifact> StageOutputs(session::ExecutionRecord* record,
                                             const store::SessionRow& owner,
                                             const auth::Caller& caller);
  // A session slot reserved against the project's quotas (a refusal is audited).
  Result<SessionReservations::Reservation> ReserveSession(const auth::Caller& caller,
                                                          const store::ProjectRow& project,
                                                          const std::string& target);
  // The audit event of a session ended for breaking the control protocol (a security event).
  store::Trail ViolationTrail(const store::SessionRow& row, const std::string& rule,
                              const std::string& execution_id);
  static constexpr int kMaxLineageDepth = 16;
  Result<std::shared_ptr<const Origin>> ProducedBy(const auth::Caller& caller,
                                                   const store::FileRow& output, int depth,
                                                   std::set<std::string>* seen);
  // The session as reported: its row, and whether it runs past usage.expected_session.
  SessionInfo SessionInfoOf(const store::SessionRow& row) const;
  // The record of a session just made: its id, pool, times and limits, status active.
  store::SessionRow ActiveRow(const session::Session& session, const std::string& pool) const;
  // After a record naming `sha256` could not be written: removes the blob unless another record
  // names it.
  void DropUnnamedBlob(const std::string& sha256) REQUIRES(blob_mu_);
  // The storage a deleted file held, for usage.
  store::UsageEvent StorageHeld(const store::FileRow& row) const;
  int64_t NowMs() const;
  int64_t ToWallMs(std::chrono::steady_clock::time_point t) const;
  void SweepLoop() EXCLUDES(sweep_mu_);

  const ServiceConfig config_;
  Clock* const clock_;
  // The operations part's state: the configuration in force (replaced whole by a reload).
  Snapshot<const ServiceConfig> live_config_;
  Mutex reload_mu_;  // One reload at a time.
  int64_t started_at_ms_ = 0;
  std::chrono::steady_clock::time_point started_;  // For uptime: steady across clock steps.
  std::string host_protections_json_;              // From sandbox::ProbeHost at Open.
  std::unique_ptr<store::MetadataStore> store_;
  std::unique_ptr<files::FileStore> blobs_;
  std::unique_ptr<metrics::Metrics> metrics_ = std::make_unique<metrics::Metrics>();
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<Identity> identity_;                // Over store_ and clock_; set by Open.
  std::optional<evidence::SigningKey> evidence_key_;  // <data-dir>/evidence.key; set by Open.
  // Replaced whole when the settings change; Emit works on the instance it copied.
  Snapshot<diagnostics::Diagnostics> diagnostics_;
  std::map<std::string, std::unique_ptr<session::SessionManager>> pools_;  // Fixed after Open.
  // Held while a blob is committed and its record written, and while a record is deleted and
  // its blob removed: a delete can never remove a blob a new record is about to name.
  Mutex blob_mu_;
  // The sessions part's state: live records, who ends what, ends waiting to be written, long
  // runners; and the session slots reserved against quotas.
  SessionRecords records_;
  SessionReservations reservations_;
  std::vector<std::function<void(const std::string&)>> end_listeners_;  // AddEndListener
  // Held while a session's end is recorded, and while a cell that outlived its session is
  // recorded against the ended row, so that neither write undoes the other.
  Mutex end_mu_;

  std::atomic<bool> stopping_cells_{false};  // InterruptAll or Shutdown was called.
  Mutex sweep_mu_;
  CondVar sweep_cv_;
  bool stopping_ GUARDED_BY(sweep_mu_) = false;
  std::thread sweep_thread_;
};

}  // namespace pycell::service
