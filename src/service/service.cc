#include "service/service.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/fs.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "files/media_type.h"

namespace pycell::service {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr size_t kMaxArtifactsPerExecution = 100;

Json TimeOrNull(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatRfc3339(std::chrono::system_clock::time_point(milliseconds(ms)));
}

// The error a client gets for a session that no longer runs, typed by why it ended.
Status EndedError(const std::string& id, const std::string& reason) {
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
  return Status::FailedPrecondition("session " + id + " was killed (" + reason +
                                    "); create a new session")
      .WithReason("session_killed");
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Json LimitsJson(const SessionLimits& l) {
  return {{"memory_bytes", l.memory_bytes},
          {"max_pids", l.max_pids},
          {"cpus", l.cpus},
          {"data_bytes", l.data_bytes},
          {"max_file_bytes", l.max_file_bytes},
          {"max_output_bytes", l.max_output_bytes},
          {"execution_timeout_s", l.execution_timeout.count()},
          {"max_execution_timeout_s", l.max_execution_timeout.count()},
          {"idle_timeout_s", l.idle_timeout.count()},
          {"active_lifetime_s", l.active_lifetime.count()}};
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

}  // namespace

Result<Json> Upload::Finish() {
  ASSIGN_OR_RETURN(std::string media_type, files::CheckUploadType(filename_, writer_->head()));
  Service* s = service_;
  store::FileRow row;
  row.id = NewId("file_");
  row.filename = filename_;
  row.media_type = media_type;
  row.purpose = "input";
  row.created_at_ms = s->NowMs();
  auto keep = s->config_.retention.input_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  {
    std::lock_guard<std::mutex> lock(s->blob_mu_);  // No delete may drop the blob in between.
    ASSIGN_OR_RETURN(files::BlobInfo blob, writer_->Commit());
    row.sha256 = blob.sha256;
    row.bytes = static_cast<int64_t>(blob.bytes);
    RETURN_IF_ERROR(s->store_->PutFile(row));
  }
  return s->FileJson(row);
}

Result<std::unique_ptr<Service>> Service::Open(const ServiceConfig& config, Clock* clock) {
  RETURN_IF_ERROR(config.Validate());
  const std::string& data = config.server.data_dir;
  if (data.empty() || data[0] != '/') {
    return Status::InvalidArgument("the data dir must be an absolute path");
  }
  RETURN_IF_ERROR(MakeDirs(data, 0700));
  std::unique_ptr<Service> service(new Service(config, clock));
  ASSIGN_OR_RETURN(service->store_, store::OpenSqliteStore(data + "/pycell.db"));
  ASSIGN_OR_RETURN(service->blobs_, files::FileStore::Open(data + "/files"));

  // What a crash left behind: sessions recorded as active (their processes died with the old
  // server), and blobs whose record was never written.
  ASSIGN_OR_RETURN(int64_t ended,
                   service->store_->EndActiveSessions("server_restart", service->NowMs()));
  if (ended > 0) LOG_INFO("marked {} sessions of the previous run ended (server_restart)", ended);
  ASSIGN_OR_RETURN(auto referenced, service->store_->ReferencedBlobs());
  std::set<std::string> wanted(referenced.begin(), referenced.end());
  ASSIGN_OR_RETURN(auto present, service->blobs_->ListBlobs());
  for (const std::string& sha : present) {
    if (!wanted.count(sha)) {
      LOG_INFO("removing blob {} that no file record names", sha);
      RETURN_IF_ERROR(service->blobs_->RemoveBlob(sha));
    }
  }

  for (const PoolConfig& pool : config.pools) {
    EngineConfig engine = config.EngineFor(pool);
    engine.state_dir = data;
    ASSIGN_OR_RETURN(auto manager, session::SessionManager::Create(engine, clock));
    Service* self = service.get();
    manager->SetEndObserver([self](const session::Session& s) {
      Status status = self->RecordEnd(s);
      if (!status.ok()) LOG_ERROR("recording the end of {}: {}", s.id(), status.ToString());
    });
    service->pools_[pool.name] = std::move(manager);
  }
  service->sweep_thread_ = std::thread([self = service.get()] { self->SweepLoop(); });
  return service;
}

Service::~Service() {
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.notify_all();
  if (sweep_thread_.joinable()) sweep_thread_.join();
  pools_.clear();  // Ends every session (recorded through the end observer).
}

int64_t Service::NowMs() const {
  return duration_cast<milliseconds>(clock_->WallNow().time_since_epoch()).count();
}

int64_t Service::ToWallMs(std::chrono::steady_clock::time_point t) const {
  return NowMs() + duration_cast<milliseconds>(t - clock_->Now()).count();
}

uint64_t Service::max_upload_bytes() const {
  uint64_t max = 0;
  for (const PoolConfig& pool : config_.pools) max = std::max(max, pool.limits.max_file_bytes);
  return max;
}

// --- files ----------------------------------------------------------------------------------

Json Service::FileJson(const store::FileRow& row) const {
  Json j = {{"id", row.id},
            {"object", "file"},
            {"filename", row.filename},
            {"bytes", row.bytes},
            {"sha256", row.sha256},
            {"media_type", row.media_type},
            {"purpose", row.purpose},
            {"created_at", TimeOrNull(row.created_at_ms)},
            {"expires_at", TimeOrNull(row.expires_at_ms)}};
  if (row.purpose == "output") {
    j["session_id"] = row.session_id;
    j["execution_id"] = row.execution_id;
    j["path"] = "/mnt/data/" + row.path;
  }
  return j;
}

Result<std::unique_ptr<Upload>> Service::BeginUpload(const std::string& filename) {
  if (!files::IsSafeFileName(filename) || !IsPrintableUtf8(filename)) {
    return Status::InvalidArgument(
        "filename must be a plain file name: UTF-8 without control characters, no '/', not '.' "
        "or '..', at most 255 bytes");
  }
  ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(max_upload_bytes()));
  return std::unique_ptr<Upload>(new Upload(this, filename, std::move(writer)));
}

Result<Json> Service::GetFile(const std::string& id) {
  if (!IsValidId(id, "file_")) return Status::NotFound("no file " + id);
  ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(id));
  return FileJson(row);
}

Result<Json> Service::ListFiles(const store::FileFilter& filter, const store::Page& page) {
  return ListPage(
      page, [&](const store::Page& p) { return store_->ListFiles(filter, p); },
      [&](const store::FileRow& row) { return FileJson(row); });
}

Result<FileContent> Service::OpenFile(const std::string& id) {
  if (!IsValidId(id, "file_")) return Status::NotFound("no file " + id);
  ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(id));
  auto fd = blobs_->OpenBlob(row.sha256);
  if (!fd.ok()) {
    return Status::Internal("the contents of file " + id + " are missing from the store: " +
                            fd.status().message());
  }
  return FileContent{std::move(row), std::move(*fd)};
}

Status Service::DeleteFile(const std::string& id) {
  if (!IsValidId(id, "file_")) return Status::NotFound("no file " + id);
  ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(id));
  std::lock_guard<std::mutex> lock(blob_mu_);
  ASSIGN_OR_RETURN(int64_t remaining, store_->DeleteFile(id));
  if (remaining == 0) RETURN_IF_ERROR(blobs_->RemoveBlob(row.sha256));
  return Status::Ok();
}

Result<int> Service::SweepExpiredFiles() {
  ASSIGN_OR_RETURN(auto expired, store_->ExpiredFiles(NowMs(), 1000));
  int removed = 0;
  for (const auto& row : expired) {
    Status s = DeleteFile(row.id);
    if (s.ok()) {
      ++removed;
    } else if (!s.IsNotFound()) {
      LOG_ERROR("retention: deleting {}: {}", row.id, s.ToString());
    }
  }
  if (removed > 0) LOG_INFO("retention: deleted {} expired files", removed);
  return removed;
}

void Service::SweepLoop() {
  std::unique_lock<std::mutex> lock(sweep_mu_);
  while (!stopping_) {
    sweep_cv_.wait_for(lock, config_.retention.sweep_interval, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    auto swept = SweepExpiredFiles();
    if (!swept.ok()) LOG_ERROR("retention sweep: {}", swept.status().ToString());
    lock.lock();
  }
}

// --- sessions -------------------------------------------------------------------------------

Json Service::SessionJson(const store::SessionRow& row) const {
  Json metadata = Json::parse(row.metadata_json, nullptr, false);
  Json limits = Json::parse(row.limits_json, nullptr, false);
  return {{"id", row.id},
          {"object", "session"},
          {"pool", row.pool},
          {"status", row.status},
          {"end_reason", row.end_reason.empty() ? Json(nullptr) : Json(row.end_reason)},
          {"created_at", TimeOrNull(row.created_at_ms)},
          {"last_active_at", TimeOrNull(row.last_active_at_ms)},
          {"expires_at", row.status == "active" ? TimeOrNull(row.expires_at_ms) : Json(nullptr)},
          {"ended_at", TimeOrNull(row.ended_at_ms)},
          {"execution_count", row.execution_count},
          {"limits", limits.is_discarded() ? Json::object() : limits},
          {"metadata", metadata.is_discarded() ? Json::object() : metadata}};
}

Result<Json> Service::CreateSession(const CreateSessionRequest& request) {
  auto pool = pools_.find(request.pool);
  if (pool == pools_.end()) {
    std::string names;
    for (const auto& [name, m] : pools_) names += (names.empty() ? "" : ", ") + name;
    return Status::InvalidArgument("no pool named \"" + request.pool + "\"; pools: " + names);
  }
  const SessionLimits& bounds = pool->second->config().pool.limits;
  if (request.memory_bytes && (*request.memory_bytes > bounds.memory_bytes ||
                               *request.memory_bytes < (64ull << 20))) {
    return Status::InvalidArgument("limits.memory_bytes must be between 67108864 (64 MiB) and " +
                                   std::to_string(bounds.memory_bytes) + " (the pool's limit)");
  }
  if (request.execution_timeout && (request.execution_timeout->count() < 1 ||
                                    *request.execution_timeout > bounds.max_execution_timeout)) {
    return Status::InvalidArgument("limits.execution_timeout_s must be between 1 and " +
                                   std::to_string(bounds.max_execution_timeout.count()));
  }
  // Check the files before taking a session, so a typo costs nothing.
  std::vector<store::FileRow> inputs;
  std::set<std::string> names;
  for (const std::string& id : request.file_ids) {
    if (!IsValidId(id, "file_")) return Status::NotFound("no file " + id);
    ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(id));
    if (!names.insert(row.filename).second) {
      return Status::InvalidArgument("two files are named \"" + row.filename +
                                     "\"; /mnt/data can hold only one of them");
    }
    inputs.push_back(std::move(row));
  }
  session::SessionOptions options;
  if (request.memory_bytes && *request.memory_bytes != bounds.memory_bytes) {
    options.memory_bytes = request.memory_bytes;
  }
  options.execution_timeout = request.execution_timeout;
  ASSIGN_OR_RETURN(auto session, pool->second->CreateSession(options));
  for (const store::FileRow& input : inputs) {
    Status placed = [&]() -> Status {
      ASSIGN_OR_RETURN(UniqueFd fd, blobs_->OpenBlob(input.sha256));
      return session->PutFile(input.filename, fd.get());
    }();
    if (!placed.ok()) {
      (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
      return placed.WithContext("placing " + input.id + " in /mnt/data");
    }
  }
  SessionLimits limits = session->limits();
  store::SessionRow row;
  row.id = session->id();
  row.pool = request.pool;
  row.status = "active";
  row.created_at_ms = ToWallMs(session->created_at());
  row.last_active_at_ms = ToWallMs(session->last_active_at());
  row.expires_at_ms = ToWallMs(session->expires_at());
  row.limits_json = LimitsJson(limits).dump();
  row.metadata_json = request.metadata && !request.metadata->is_null() ? request.metadata->dump() : "{}";
  Status put = store_->PutSession(row);
  if (!put.ok()) {
    (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
    return put;
  }
  std::vector<store::SessionInput> placed;
  for (const store::FileRow& input : inputs) {
    placed.push_back({row.id, input.id, input.filename, input.sha256, row.created_at_ms});
  }
  if (!placed.empty()) {
    Status recorded = store_->AddSessionInputs(placed);
    if (!recorded.ok()) {  // A session whose inputs are not on record must not run.
      (void)pool->second->EndSession(session->id(), session::EndReason::kClosed);
      return recorded;
    }
  }
  {
    std::lock_guard<std::mutex> lock(rows_mu_);
    active_rows_[row.id] = row;
  }
  return SessionJson(row);
}

Status Service::RecordEnd(const session::Session& s) {
  {
    std::lock_guard<std::mutex> lock(rows_mu_);
    active_rows_.erase(s.id());
  }
  ASSIGN_OR_RETURN(store::SessionRow row, store_->GetSession(s.id()));
  if (row.status == "ended") return Status::Ok();
  row.status = "ended";
  row.end_reason = session::EndReasonName(s.end_reason());
  if (row.end_reason.empty()) row.end_reason = "shutdown";
  row.ended_at_ms = NowMs();
  return store_->PutSession(row);
}

Result<std::shared_ptr<session::Session>> Service::LiveSession(const std::string& id) {
  if (!IsValidId(id, "sess_")) return Status::NotFound("no session " + id);
  std::string pool_name;
  {
    std::lock_guard<std::mutex> lock(rows_mu_);
    auto cached = active_rows_.find(id);
    if (cached != active_rows_.end()) pool_name = cached->second.pool;
  }
  if (!pool_name.empty()) {  // The common case: no database read.
    auto live = pools_.at(pool_name)->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
  }
  ASSIGN_OR_RETURN(store::SessionRow row, store_->GetSession(id));
  if (row.status == "ended") return EndedError(id, row.end_reason);
  auto pool = pools_.find(row.pool);
  if (pool != pools_.end()) {
    auto live = pool->second->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
    if (live.ok()) return EndedError(id, session::EndReasonName((*live)->end_reason()));
  }
  return EndedError(id, "crashed");
}

Result<Json> Service::GetSession(const std::string& id) {
  if (!IsValidId(id, "sess_")) return Status::NotFound("no session " + id);
  ASSIGN_OR_RETURN(store::SessionRow row, store_->GetSession(id));
  return SessionJson(row);
}

Result<Json> Service::ListSessions(const std::string& status, const store::Page& page) {
  return ListPage(
      page, [&](const store::Page& p) { return store_->ListSessions(status, p); },
      [&](const store::SessionRow& row) { return SessionJson(row); });
}

Result<Json> Service::EndSession(const std::string& id) {
  if (!IsValidId(id, "sess_")) return Status::NotFound("no session " + id);
  ASSIGN_OR_RETURN(store::SessionRow row, store_->GetSession(id));
  if (row.status == "active") {
    auto pool = pools_.find(row.pool);
    bool ended = pool != pools_.end() &&
                 pool->second->EndSession(id, session::EndReason::kClosed).ok();
    if (!ended) {  // Not live any more (its cell ended it): record what we know.
      {
        std::lock_guard<std::mutex> lock(rows_mu_);
        active_rows_.erase(id);
      }
      row.status = "ended";
      row.end_reason = "crashed";
      row.ended_at_ms = NowMs();
      RETURN_IF_ERROR(store_->PutSession(row));
    }
    ASSIGN_OR_RETURN(row, store_->GetSession(id));
  }
  return SessionJson(row);
}

Result<Json> Service::PutSessionFiles(const std::string& session_id,
                                      const std::vector<std::string>& file_ids) {
  ASSIGN_OR_RETURN(auto session, LiveSession(session_id));
  Json placed = Json::array();
  for (const std::string& id : file_ids) {
    if (!IsValidId(id, "file_")) return Status::NotFound("no file " + id);
    ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(id));
    ASSIGN_OR_RETURN(UniqueFd fd, blobs_->OpenBlob(row.sha256));
    // SafeDir says FailedPrecondition (409) for a name already in /mnt/data.
    RETURN_IF_ERROR(session->PutFile(row.filename, fd.get()).WithContext("placing " + id));
    RETURN_IF_ERROR(
        store_->AddSessionInputs({{session_id, id, row.filename, row.sha256, NowMs()}}));
    placed.push_back({{"file_id", id}, {"path", "/mnt/data/" + row.filename}, {"bytes", row.bytes}});
  }
  return Json{{"object", "list"}, {"data", placed}};
}

Result<Json> Service::ListSessionFiles(const std::string& session_id) {
  ASSIGN_OR_RETURN(auto session, LiveSession(session_id));
  ASSIGN_OR_RETURN(files::DirSnapshot snapshot, session->ListFiles());
  Json data = Json::array();
  for (const auto& [path, state] : snapshot) {
    data.push_back({{"path", "/mnt/data/" + path},
                    {"bytes", state.bytes},
                    {"modified_at", FormatRfc3339(std::chrono::system_clock::time_point(
                                        duration_cast<std::chrono::system_clock::duration>(
                                            std::chrono::nanoseconds(state.mtime_ns))))}});
  }
  return Json{{"object", "list"}, {"data", data}};
}

// --- executions -----------------------------------------------------------------------------

Result<store::FileRow> Service::StoreArtifact(session::Session& session,
                                              const std::string& execution_id,
                                              const files::FileChange& change) {
  ASSIGN_OR_RETURN(UniqueFd fd, session.OpenFile(change.path));
  ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(session.limits().max_file_bytes));
  RETURN_IF_ERROR(writer->WriteFrom(fd.get()));
  store::FileRow row;
  row.id = NewId("file_");
  row.filename = BaseName(change.path);
  row.media_type = files::GuessMediaType(row.filename, writer->head());
  row.purpose = "output";
  row.created_at_ms = NowMs();
  auto keep = config_.retention.output_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  row.session_id = session.id();
  row.execution_id = execution_id;
  row.path = change.path;
  // The blob is committed here and its record with the execution: blob_mu_ is held until then
  // by the caller, so no delete can drop a blob an artifact is about to name.
  ASSIGN_OR_RETURN(files::BlobInfo blob, writer->Commit());
  row.sha256 = blob.sha256;
  row.bytes = static_cast<int64_t>(blob.bytes);
  return row;
}

Result<std::string> Service::Execute(const std::string& session_id, const std::string& code,
                              std::optional<seconds> timeout,
                              const kernel::ExecuteObserver& observer) {
  ASSIGN_OR_RETURN(auto session, LiveSession(session_id));
  session::ExecuteRequest request{code, timeout};
  auto executed = session->Execute(request, observer);
  if (!executed.ok()) {
    Status s = executed.status();
    if (s.IsFailedPrecondition() && s.reason().empty() &&
        session->end_reason() != session::EndReason::kNone) {
      return EndedError(session_id, session::EndReasonName(session->end_reason()));
    }
    return s;
  }
  session::ExecutionRecord record = std::move(*executed);
  record.code_sha256 = files::Sha256Hex(code);
  if (stopping_cells_ && record.status != "ok") record.interrupted_by = "server_shutdown";

  std::vector<store::FileRow> artifacts;
  std::unique_lock<std::mutex> blob_lock(blob_mu_);
  for (const files::FileChange& change : record.files) {
    if (artifacts.size() >= kMaxArtifactsPerExecution) {
      record.artifacts_skipped.push_back({change.path, "too many files in one execution"});
      continue;
    }
    auto row = StoreArtifact(*session, record.id, change);
    if (!row.ok()) {
      // A file that vanished, became a link or grew past the limit is not an artifact.
      record.artifacts_skipped.push_back({change.path, row.status().message()});
      continue;
    }
    record.artifacts.push_back({row->id, row->filename, row->path,
                                static_cast<uint64_t>(row->bytes), row->sha256,
                                row->media_type});
    artifacts.push_back(std::move(*row));
  }

  store::ExecutionRow exec;
  exec.id = record.id;
  exec.session_id = session_id;
  exec.status = record.status;
  exec.code = code;
  exec.code_sha256 = record.code_sha256;
  exec.started_at_ms =
      duration_cast<milliseconds>(record.started_at.time_since_epoch()).count();
  exec.duration_ms = record.duration_ms;
  exec.record_json = record.ToJson();

  store::SessionRow row;
  {
    std::lock_guard<std::mutex> lock(rows_mu_);
    auto cached = active_rows_.find(session_id);
    if (cached == active_rows_.end()) {
      return EndedError(session_id, "crashed");  // Ended while the cell ran.
    }
    store::SessionRow& live = cached->second;
    live.execution_count += 1;
    live.last_active_at_ms = ToWallMs(session->last_active_at());
    live.expires_at_ms = ToWallMs(session->expires_at());
    if (!record.session_end_reason.empty()) {
      live.status = "ended";
      live.end_reason = record.session_end_reason;
      live.ended_at_ms = NowMs();
    }
    row = live;
    if (row.status == "ended") active_rows_.erase(cached);
  }
  RETURN_IF_ERROR(store_->RecordExecution(exec, artifacts, row));
  return std::move(exec.record_json);
}

Result<std::string> Service::GetExecution(const std::string& id) {
  if (!IsValidId(id, "exec_")) return Status::NotFound("no execution " + id);
  ASSIGN_OR_RETURN(store::ExecutionRow row, store_->GetExecution(id));
  return std::move(row.record_json);
}

Result<Json> Service::ListExecutions(const std::string& session_id, const store::Page& page) {
  if (!IsValidId(session_id, "sess_")) return Status::NotFound("no session " + session_id);
  RETURN_IF_ERROR(store_->GetSession(session_id).status());
  return ListPage(
      page, [&](const store::Page& p) { return store_->ListExecutions(session_id, p); },
      [](const store::ExecutionRow& row) { return Json::parse(row.record_json); });
}

// --- lineage --------------------------------------------------------------------------------

Result<Json> Service::ProducedBy(const store::FileRow& output, int depth,
                                 std::set<std::string>* seen) {
  ASSIGN_OR_RETURN(store::ExecutionRow exec, store_->GetExecution(output.execution_id));
  Json execution = {{"id", exec.id},
                    {"status", exec.status},
                    {"code", exec.code},
                    {"code_sha256", exec.code_sha256},
                    {"started_at", TimeOrNull(exec.started_at_ms)},
                    {"duration_ms", exec.duration_ms}};
  Json session = nullptr;
  if (auto row = store_->GetSession(exec.session_id); row.ok()) {
    Json metadata = Json::parse(row->metadata_json, nullptr, false);
    if (metadata.is_discarded()) metadata = Json::object();
    session = {{"id", row->id},
               {"pool", row->pool},
               {"created_at", TimeOrNull(row->created_at_ms)},
               {"limits", Json::parse(row->limits_json, nullptr, false)},
               {"metadata", metadata},
               {"agent_id", metadata.value("agent_id", Json(nullptr))},
               {"thread_id", metadata.value("thread_id", Json(nullptr))},
               {"run_id", metadata.value("run_id", Json(nullptr))}};
  }
  // What was in /mnt/data when the cell started: the files placed before it, and what earlier
  // cells of the same session wrote.
  Json inputs = Json::array();
  auto add_input = [&](const std::string& file_id, const std::string& filename,
                       const std::string& sha256, const std::string& how) -> Status {
    Json input = {{"file_id", file_id}, {"filename", filename}, {"sha256", sha256}, {"via", how}};
    auto record = store_->GetFile(file_id);
    input["exists"] = record.ok();
    if (record.ok() && record->purpose == "output" && depth < kMaxLineageDepth &&
        seen->insert(file_id).second) {
      ASSIGN_OR_RETURN(input["produced_by"], ProducedBy(*record, depth + 1, seen));
    }
    inputs.push_back(std::move(input));
    return Status::Ok();
  };
  ASSIGN_OR_RETURN(auto placed, store_->SessionInputs(exec.session_id));
  for (const store::SessionInput& p : placed) {
    if (p.placed_at_ms <= exec.started_at_ms) {
      RETURN_IF_ERROR(add_input(p.file_id, p.filename, p.sha256, "placed"));
    }
  }
  store::FileFilter earlier{"output", exec.session_id, ""};
  ASSIGN_OR_RETURN(auto written, store_->ListFiles(earlier, store::Page{1000, ""}));
  for (auto it = written.rbegin(); it != written.rend(); ++it) {  // Oldest first.
    if (it->execution_id == exec.id || it->created_at_ms > exec.started_at_ms) continue;
    RETURN_IF_ERROR(add_input(it->id, it->filename, it->sha256, "written_earlier_in_session"));
  }
  return Json{{"execution", execution}, {"session", session}, {"inputs", inputs}};
}

Result<Json> Service::Lineage(const std::string& file_id) {
  if (!IsValidId(file_id, "file_")) return Status::NotFound("no file " + file_id);
  ASSIGN_OR_RETURN(store::FileRow row, store_->GetFile(file_id));
  Json lineage = {{"object", "lineage"}, {"file", FileJson(row)}, {"produced_by", nullptr}};
  if (row.purpose == "output") {
    std::set<std::string> seen = {row.id};
    ASSIGN_OR_RETURN(lineage["produced_by"], ProducedBy(row, 0, &seen));
  }
  // Where it went: the sessions it was placed into and the cells that ran there after.
  Json used_by = Json::array();
  ASSIGN_OR_RETURN(auto uses, store_->UsesOfFile(file_id, 100));
  for (const store::SessionInput& use : uses) {
    Json executions = Json::array();
    ASSIGN_OR_RETURN(auto runs, store_->ListExecutions(use.session_id, store::Page{1000, ""}));
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->started_at_ms < use.placed_at_ms) continue;
      executions.push_back({{"id", it->id},
                            {"status", it->status},
                            {"code_sha256", it->code_sha256},
                            {"started_at", TimeOrNull(it->started_at_ms)}});
    }
    used_by.push_back({{"session_id", use.session_id},
                       {"placed_at", TimeOrNull(use.placed_at_ms)},
                       {"executions", executions}});
  }
  lineage["used_by"] = used_by;
  return lineage;
}

// --- lifecycle ------------------------------------------------------------------------------

void Service::InterruptAll() {
  stopping_cells_ = true;
  for (auto& [name, manager] : pools_) {
    for (auto& s : manager->Sessions()) {
      if (s->busy()) s->Interrupt();
    }
  }
}

void Service::Shutdown() {
  stopping_cells_ = true;
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.notify_all();
  for (auto& [name, manager] : pools_) {
    for (auto& s : manager->Sessions()) (void)manager->EndSession(s->id(), session::EndReason::kShutdown);
  }
}

bool Service::Ready() const {
  for (const auto& [name, manager] : pools_) {
    if (manager->ReadyCount() < manager->config().pool.ready_sessions) return false;
  }
  return true;
}

}  // namespace pycell::service
