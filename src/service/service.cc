#include "service/service.h"

#include "common/json_reader.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/config_json.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "common/build_info.h"
#include "files/media_type.h"
#include "sandbox/host_probe.h"
#include "service/service_json.h"
#include "usage/quota.h"
#include "usage/usage.h"

namespace pycell::service {

Json TimeOrNull(int64_t ms) {
  if (ms == 0) return nullptr;
  return FormatRfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;


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

std::string BaseName(const std::string& path) {
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
void AddCaller(const auth::Caller& caller, Json* event) {
  (*event)["principal"] = caller.principal;
  (*event)["project_id"] = caller.project_id;
  (*event)["key_id"] = caller.key_id;
  (*event)["request_id"] = caller.request_id;
}

Json MetadataOf(const store::SessionRow& row) {
  Json metadata = Json::parse(row.metadata_json, nullptr, false);
  return metadata.is_discarded() ? Json::object() : metadata;
}

}  // namespace

Result<Json> Upload::Finish() {
  ASSIGN_OR_RETURN(std::string media_type, files::CheckUploadType(filename_, writer_->head()));
  Service* s = service_;
  ASSIGN_OR_RETURN(store::ProjectRow project, s->store_->GetProject(caller_.project_id));
  Status quota = usage::CheckStorageQuota(*s->store_, project, static_cast<int64_t>(bytes()));
  if (!quota.ok()) return s->QuotaRefused(caller_, "", quota);
  store::FileRow row;
  row.id = NewId("file_");
  row.filename = filename_;
  row.media_type = media_type;
  row.purpose = "input";
  row.created_at_ms = s->NowMs();
  auto keep = s->LiveConfig()->retention.input_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  row.project_id = caller_.project_id;
  row.principal = caller_.principal;
  {
    MutexLock lock(s->blob_mu_);  // No delete may drop the blob in between.
    ASSIGN_OR_RETURN(files::BlobInfo blob, writer_->Commit());
    row.sha256 = blob.sha256;
    row.bytes = static_cast<int64_t>(blob.bytes);
    store::Trail trail;
    trail.audit = auth::EventBy(caller_, "file.upload", row.id, row.created_at_ms);
    trail.audit->detail_json =
        DumpJson(Json{{"filename", row.filename}, {"bytes", row.bytes}, {"sha256", row.sha256}});
    trail.usage.push_back({row.created_at_ms, row.created_at_ms, row.project_id, row.principal,
                           "", "", "upload_bytes", row.bytes});
    Status put = s->store_->PutFile(row, trail);
    if (!put.ok()) {
      s->DropUnnamedBlob(row.sha256);  // Nothing of a refused upload is kept.
      return put;
    }
    s->metrics_->Upload(static_cast<uint64_t>(row.bytes));
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
  service->started_at_ms_ = service->NowMs();
  service->started_ = service->clock_->Now();
  // Probed once, before any thread or session: what `pycell show` reports as in force.
  Json protections = Json::array();
  for (const sandbox::Protection& p : sandbox::ProbeHost().protections) {
    protections.push_back({{"name", p.name}, {"available", p.available}, {"detail", p.detail}});
  }
  service->host_protections_json_ = DumpJson(protections);
  ASSIGN_OR_RETURN(service->store_, store::OpenSqliteStore(data + "/pycell.db"));
  // Diagnostic settings first, so that every audit event of this run reaches them.
  ASSIGN_OR_RETURN(auto diagnostics,
                   diagnostics::Diagnostics::Create(config.diagnostic_settings, {clock}));
  {
    MutexLock lock(service->diagnostics_mu_);  // No other thread yet; for the analysis.
    service->diagnostics_ = std::move(diagnostics);
  }
  service->store_->SetAuditListener(
      [self = service.get()](const audit::AuditEvent& event) { self->EmitAudit(event); });
  ASSIGN_OR_RETURN(service->blobs_, files::FileStore::Open(data + "/files"));
  // The key that signs evidence bundles: made at the first start, never replaced.
  ASSIGN_OR_RETURN(evidence::SigningKey evidence_key,
                   evidence::SigningKey::LoadOrCreate(data + "/evidence.key"));
  service->evidence_key_.emplace(std::move(evidence_key));
  ASSIGN_OR_RETURN(bool bootstrapped,
                   auth::Bootstrap(*service->store_, data + "/admin.key", service->NowMs()));
  (void)bootstrapped;  // Bootstrap logs it.
  service->authenticator_ = std::make_unique<auth::Authenticator>(
      service->store_.get(), clock, service->metrics_.get());
  service->metrics_->SetSampler([self = service.get()] { return self->SampleState(); });

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
    manager->SetLaunchObserver([self](const session::LaunchTimings& t) {
      self->metrics_->PoolRefill(t.total_ms / 1000);
    });
    manager->SetEndObserver([self](const session::Session& s) {
      Status status = self->RecordEnd(s);
      if (!status.ok()) LOG_ERROR("recording the end of {}: {}", s.id(), status.ToString());
      for (const auto& listener : self->end_listeners_) listener(s.id());
    });
    service->pools_[pool.name] = std::move(manager);
  }
  service->sweep_thread_ = std::thread([self = service.get()] { self->SweepLoop(); });
  return service;
}

Service::~Service() {
  {
    MutexLock lock(diagnostics_mu_);
    if (diagnostics_) diagnostics_->Close(diagnostics::Diagnostics::kCloseDeadline);
  }
  {
    MutexLock lock(sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.NotifyAll();
  if (sweep_thread_.joinable()) sweep_thread_.join();
  pools_.clear();  // Ends every session (recorded through the end observer).
  MutexLock end_lock(end_mu_);
  FlushUnrecordedEndsLocked();  // Whatever still fails is marked server_restart at next start.
}

int64_t Service::NowMs() const {
  return duration_cast<milliseconds>(clock_->WallNow().time_since_epoch()).count();
}

int64_t Service::ToWallMs(std::chrono::steady_clock::time_point t) const {
  return NowMs() + duration_cast<milliseconds>(t - clock_->Now()).count();
}

uint64_t Service::max_upload_bytes() const {
  uint64_t max = 0;
  for (const PoolConfig& pool : LiveConfig()->pools) {
    max = std::max(max, pool.limits.max_file_bytes);
  }
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
    // An execution's outputs file (outputs-<execution>.json) was never in the session.
    j["path"] = row.path.empty() ? Json(nullptr) : Json("/mnt/data/" + row.path);
  }
  return j;
}

Result<std::unique_ptr<Upload>> Service::BeginUpload(const auth::Caller& caller,
                                                     const std::string& filename) {
  if (!files::IsSafeFileName(filename) || !IsPrintableUtf8(filename)) {
    return Status::InvalidArgument(
        "filename must be a plain file name: UTF-8 without control characters, no '/', not '.' "
        "or '..', at most 255 bytes");
  }
  ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(max_upload_bytes()));
  return std::unique_ptr<Upload>(new Upload(this, caller, filename, std::move(writer)));
}

Result<store::FileRow> Service::VisibleFile(const auth::Caller& caller, const std::string& id) {
  if (IsValidId(id, "file_")) {
    auto row = store_->GetFile(id);
    if (row.ok() && auth::SeesProject(caller, row->project_id)) return row;
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
  }
  return Status::NotFound("no file " + id);
}

Result<Json> Service::GetFile(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
  return FileJson(row);
}

Result<Json> Service::ListFiles(const auth::Caller& caller, store::FileFilter filter,
                                const store::Page& page) {
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) {
    if (!filter.project_id.empty() && filter.project_id != scope) {
      return Status::NotFound("no project " + filter.project_id);
    }
    filter.project_id = scope;
  }
  return ListPage(
      page, [&](const store::Page& p) { return store_->ListFiles(filter, p); },
      [&](const store::FileRow& row) { return FileJson(row); });
}

Result<FileContent> Service::OpenFile(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
  auto fd = blobs_->OpenBlob(row.sha256);
  if (!fd.ok()) {
    return Status::Internal("the contents of file " + id + " are missing from the store: " +
                            fd.status().message());
  }
  return FileContent{std::move(row), std::move(*fd)};
}

Status Service::RecordDownload(const auth::Caller& caller, const store::FileRow& file,
                               uint64_t bytes) {
  store::Trail trail;
  int64_t now = NowMs();
  trail.audit = auth::EventBy(caller, "file.download", file.id, now);
  trail.audit->detail_json =
      DumpJson(Json{{"bytes", bytes}, {"sha256", file.sha256}, {"file_project_id", file.project_id}});
  trail.usage.push_back({now, now, caller.project_id, caller.principal, "", "", "download_bytes",
                         static_cast<int64_t>(bytes)});
  RETURN_IF_ERROR(store_->Record(trail));
  metrics_->Download(bytes);
  return Status::Ok();
}

void Service::DropUnnamedBlob(const std::string& sha256) {
  auto named = store_->FilesWithBlob(sha256);
  if (!named.ok()) return;  // Unknown: the start-up sweep removes it if it stays unnamed.
  if (*named == 0) {
    Status removed = blobs_->RemoveBlob(sha256);
    if (!removed.ok()) LOG_ERROR("removing unnamed blob {}: {}", sha256, removed.ToString());
  }
}

store::UsageEvent Service::StorageHeld(const store::FileRow& row) const {
  return {NowMs(), row.created_at_ms, row.project_id, row.principal, "", row.session_id,
          "storage_bytes", row.bytes};
}

Status Service::DeleteFile(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "file.delete", id, NowMs());
  trail.audit->detail_json =
      DumpJson(Json{{"filename", row.filename}, {"sha256", row.sha256}, {"bytes", row.bytes}});
  trail.usage.push_back(StorageHeld(row));
  MutexLock lock(blob_mu_);
  auto remaining = store_->DeleteFile(id, trail);
  if (!remaining.ok()) {
    if (remaining.status().IsNotFound()) return Status::NotFound("no file " + id);
    return remaining.status();
  }
  if (*remaining == 0) RETURN_IF_ERROR(blobs_->RemoveBlob(row.sha256));
  return Status::Ok();
}

Result<int> Service::SweepExpiredFiles() {
  ASSIGN_OR_RETURN(auto expired, store_->ExpiredFiles(NowMs(), 1000));
  int removed = 0;
  auth::Caller retention = auth::Caller::System();
  for (const auto& row : expired) {
    retention.project_id = row.project_id;
    Status s = DeleteFile(retention, row.id);
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
  MutexLock lock(sweep_mu_);
  auto last_sweep = std::chrono::steady_clock::now();
  while (!stopping_) {
    // Every second: the ends a busy database refused; every sweep interval: retention.
    sweep_cv_.WaitFor(sweep_mu_, std::chrono::seconds(1),
                      [&]() REQUIRES(sweep_mu_) { return stopping_; });
    if (stopping_) break;
    lock.Unlock();
    try {
      {
        MutexLock end_lock(end_mu_);
        FlushUnrecordedEndsLocked();
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_sweep >= LiveConfig()->retention.sweep_interval) {
        last_sweep = now;
        auto swept = SweepExpiredFiles();
        if (!swept.ok()) LOG_ERROR("retention sweep: {}", swept.status().ToString());
        FlagLongSessions();
      }
    } catch (const std::exception& e) {
      // A bug: logged and counted, and the loop goes on (a crash here would recur at each start).
      LOG_ERROR("retention sweep: internal error: {}", e.what());
      metrics::CountInternalError("retention_sweep");
    }
    lock.Lock();
  }
}

// --- sessions -------------------------------------------------------------------------------

Json Service::SessionJson(const store::SessionRow& row) const {
  Json limits = Json::parse(row.limits_json, nullptr, false);
  auto expected = LiveConfig()->usage.expected_session;
  bool over = row.status == "active" && expected.count() > 0 &&
              NowMs() - row.created_at_ms > expected.count() * 1000;
  return {{"id", row.id},
          {"object", "session"},
          {"pool", row.pool},
          {"project_id", row.project_id},
          {"principal", row.principal},
          {"status", row.status},
          {"end_reason", row.end_reason.empty() ? Json(nullptr) : Json(row.end_reason)},
          {"created_at", TimeOrNull(row.created_at_ms)},
          {"last_active_at", TimeOrNull(row.last_active_at_ms)},
          {"expires_at", row.status == "active" ? TimeOrNull(row.expires_at_ms) : Json(nullptr)},
          {"ended_at", TimeOrNull(row.ended_at_ms)},
          {"execution_count", row.execution_count},
          {"cpu_seconds", row.cpu_ms / 1000},
          {"peak_memory_bytes", row.peak_memory_bytes},
          {"over_expected_duration", over},
          {"limits", limits.is_discarded() ? Json::object() : limits},
          {"metadata", MetadataOf(row)},
          {"forked_from", row.forked_from.empty() ? Json(nullptr) : Json(row.forked_from)}};
}

Status Service::QuotaRefused(const auth::Caller& caller, const std::string& target,
                             Status refusal) {
  if (refusal.reason() != "quota_exceeded") return refusal;  // The store failed: no refusal.
  metrics_->QuotaRefusal(usage::QuotaOf(refusal));
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "quota.exceeded", target, NowMs());
  trail.audit->outcome = "quota_exceeded";
  trail.audit->detail_json = DumpJson(Json{{"message", refusal.message()}});
  RETURN_IF_ERROR(store_->Record(trail));
  return refusal;
}

store::SessionRow Service::ActiveRow(const session::Session& session,
                                     const std::string& pool) const {
  store::SessionRow row;
  row.id = session.id();
  row.pool = pool;
  row.status = "active";
  row.created_at_ms = ToWallMs(session.created_at());
  row.last_active_at_ms = ToWallMs(session.last_active_at());
  row.expires_at_ms = ToWallMs(session.expires_at());
  row.limits_json = DumpJson(LimitsToJson(session.limits()));
  return row;
}

Result<Json> Service::CreateSession(const auth::Caller& caller,
                                    const CreateSessionRequest& request) {
  auto pool = pools_.find(request.pool);
  if (pool == pools_.end()) {
    std::string names;
    for (const auto& [name, m] : pools_) names += (names.empty() ? "" : ", ") + name;
    return Status::InvalidArgument("no pool named \"" + request.pool + "\"; pools: " + names);
  }
  const SessionLimits bounds = pool->second->Limits();
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
    ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
    if (!names.insert(row.filename).second) {
      return Status::InvalidArgument("two files are named \"" + row.filename +
                                     "\"; /mnt/data can hold only one of them");
    }
    inputs.push_back(std::move(row));
  }
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(caller.project_id));
  // From the quota check to the record the session holds a reserved slot, so a racing creation
  // counts it; the mutex is held only to check and reserve, not across a launch.
  ASSIGN_OR_RETURN(QuotaReservation reservation, ReserveSession(caller, project, ""));

  session::SessionOptions options;
  if (request.memory_bytes && *request.memory_bytes != bounds.memory_bytes) {
    options.memory_bytes = request.memory_bytes;
  }
  options.execution_timeout = request.execution_timeout;
  options.project_id = caller.project_id;
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
  store::SessionRow row = ActiveRow(*session, request.pool);
  row.metadata_json = request.metadata && !request.metadata->is_null() ? DumpJson(*request.metadata) : "{}";
  row.project_id = caller.project_id;
  row.principal = caller.principal;
  if (request.metadata && request.metadata->is_object() && request.metadata->contains("agent_id")) {
    row.agent_id = (*request.metadata)["agent_id"].get<std::string>();
  }
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "session.create", row.id, row.created_at_ms);
  Json file_ids = Json::array();
  for (const store::FileRow& input : inputs) file_ids.push_back(input.id);
  trail.audit->detail_json =
      DumpJson(Json{{"pool", row.pool}, {"file_ids", file_ids}, {"metadata", MetadataOf(row)}});
  Status put = store_->PutSession(row, trail);
  reservation.Release();
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
    MutexLock lock(rows_mu_);
    active_rows_[row.id] = row;
  }
  metrics_->SessionCreated(row.pool);
  return SessionJson(row);
}

Service::QuotaReservation::~QuotaReservation() { Release(); }

void Service::QuotaReservation::Release() {
  if (service_ == nullptr) return;
  MutexLock lock(service_->quota_mu_);
  if (--service_->reserved_sessions_[project_id_] == 0) {
    service_->reserved_sessions_.erase(project_id_);
  }
  service_ = nullptr;
}

Result<Service::QuotaReservation> Service::ReserveSession(const auth::Caller& caller,
                                                          const store::ProjectRow& project,
                                                          const std::string& target) {
  MutexLock lock(quota_mu_);
  int64_t pending = 0;
  if (auto it = reserved_sessions_.find(project.id); it != reserved_sessions_.end()) {
    pending = it->second;
  }
  Status quota = usage::CheckSessionQuotas(*store_, project, NowMs(), pending);
  if (!quota.ok()) return QuotaRefused(caller, target, quota);
  ++reserved_sessions_[project.id];
  return QuotaReservation(this, project.id);
}

Result<Json> Service::ForkSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<session::Session> live, LiveSession(caller, id));
  ASSIGN_OR_RETURN(store::SessionRow origin, store_->GetSession(id));
  auto pool = pools_.find(origin.pool);
  if (pool == pools_.end()) return EndedError(id, "crashed");
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(origin.project_id));
  ASSIGN_OR_RETURN(std::vector<store::SessionInput> inputs, store_->SessionInputs(id));
  ASSIGN_OR_RETURN(QuotaReservation reservation, ReserveSession(caller, project, id));
  auto forked = pool->second->ForkSession(id);
  if (!forked.ok()) {
    // Ended while it was being forked (a DELETE, expiry, a violation): the fork, which lives
    // inside the origin's processes, died with it. Say so, as for any ended session.
    if (live->end_reason() != session::EndReason::kNone) {
      return EndedError(id, session::EndReasonName(live->end_reason()));
    }
    return forked.status();
  }
  std::shared_ptr<session::Session> fork = std::move(*forked);
  store::SessionRow row = ActiveRow(*fork, origin.pool);
  row.metadata_json = origin.metadata_json;
  row.project_id = origin.project_id;
  row.principal = caller.principal;
  row.agent_id = origin.agent_id;
  row.forked_from = id;
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "session.fork", row.id, row.created_at_ms);
  trail.audit->project_id = row.project_id;
  trail.audit->detail_json =
      DumpJson(Json{{"forked_from", id}, {"pool", row.pool}, {"metadata", MetadataOf(row)}});
  Status put = store_->PutSession(row, trail);
  reservation.Release();
  if (!put.ok()) {
    (void)pool->second->EndSession(row.id, session::EndReason::kClosed);
    return put;
  }
  for (store::SessionInput& input : inputs) {
    input.session_id = row.id;
    input.placed_at_ms = row.created_at_ms;
  }
  if (!inputs.empty()) {
    Status recorded = store_->AddSessionInputs(inputs);
    if (!recorded.ok()) {  // A session whose inputs are not on record must not run.
      (void)pool->second->EndSession(row.id, session::EndReason::kClosed);
      return recorded;
    }
  }
  {
    MutexLock lock(rows_mu_);
    active_rows_[row.id] = row;
  }
  metrics_->SessionCreated(row.pool);
  return SessionJson(row);
}

Status Service::RecordEnd(const session::Session& s) {
  MutexLock end_lock(end_mu_);
  FlushUnrecordedEndsLocked();
  auth::Caller by = auth::Caller::System();
  std::optional<store::SessionRow> cached;
  {
    MutexLock lock(rows_mu_);
    auto active = active_rows_.find(s.id());
    if (active != active_rows_.end()) {
      cached = std::move(active->second);
      active_rows_.erase(active);
    }
    flagged_long_.erase(s.id());
    auto it = ended_by_.find(s.id());
    if (it != ended_by_.end()) {
      by = it->second;
      ended_by_.erase(it);
    }
  }
  auto stored = store_->GetSession(s.id());
  // The database unreadable (locked, say): the cached row stands in, so the end is still kept.
  if (!stored.ok() && !cached) return stored.status();
  store::SessionRow row = stored.ok() ? std::move(*stored) : std::move(*cached);
  if (row.status == "ended") return Status::Ok();
  row.status = "ended";
  row.end_reason = session::EndReasonName(s.end_reason());
  if (row.end_reason.empty()) row.end_reason = "shutdown";
  row.ended_at_ms = NowMs();
  if (by.key_id.empty()) by.project_id = row.project_id;  // The system acts in the session's.
  store::Trail trail;
  trail.audit = auth::EventBy(by, "session.end", row.id, row.ended_at_ms);
  trail.audit->detail_json = DumpJson(Json{{"reason", row.end_reason},
                                  {"execution_count", row.execution_count},
                                  {"wall_seconds", (row.ended_at_ms - row.created_at_ms) / 1000.0},
                                  {"cpu_seconds", row.cpu_ms / 1000}});
  if (s.end_reason() == session::EndReason::kProtocolViolation) {
    Status logged = store_->Record(ViolationTrail(row, s.protocol_violation(), ""));
    if (!logged.ok()) LOG_ERROR("session {}: auditing its violation: {}", row.id, logged.ToString());
    metrics_->SandboxEvent("protocol_violation");
  }
  Status written = store_->PutSession(row, trail);
  if (!written.ok()) {
    MutexLock lock(rows_mu_);
    std::string id = row.id;  // Not row.id below: the right side is moved from first.
    unrecorded_ends_[id] = {std::move(row), std::move(trail)};
    return written.WithContext("kept to retry");
  }
  metrics_->SessionEnded(row.pool, row.end_reason, (row.ended_at_ms - row.created_at_ms) / 1000.0);
  return Status::Ok();
}

void Service::FlushUnrecordedEndsLocked() {
  std::map<std::string, UnrecordedEnd> pending;
  {
    MutexLock lock(rows_mu_);
    pending = unrecorded_ends_;
  }
  for (const auto& [id, end] : pending) {
    Status written = store_->PutSession(end.row, end.trail);
    if (!written.ok()) {
      LOG_WARN("recording the end of {} (retried): {}", id, written.ToString());
      return;  // Still locked or full: the next try comes within a second.
    }
    LOG_INFO("recorded the end of {} ({}), which had waited for the database", id,
             end.row.end_reason);
    metrics_->SessionEnded(end.row.pool, end.row.end_reason,
                           (end.row.ended_at_ms - end.row.created_at_ms) / 1000.0);
    MutexLock lock(rows_mu_);
    unrecorded_ends_.erase(id);
  }
}

void Service::OverlayUnrecordedEnd(store::SessionRow* row) {
  MutexLock lock(rows_mu_);
  auto it = unrecorded_ends_.find(row->id);
  if (it != unrecorded_ends_.end()) *row = it->second.row;
}

Result<store::SessionRow> Service::VisibleSession(const auth::Caller& caller,
                                                  const std::string& id) {
  if (IsValidId(id, "sess_")) {
    auto row = store_->GetSession(id);
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
    if (row.ok() && auth::SeesProject(caller, row->project_id)) {
      bool shares = false;
      if (caller.role == auth::Role::kUser && row->principal != caller.principal) {
        auto project = store_->GetProject(row->project_id);
        shares = project.ok() && project->share_sessions;
      }
      if (auth::SeesSession(caller, row->project_id, row->principal, shares)) {
        OverlayUnrecordedEnd(&*row);
        return row;
      }
    }
  }
  return Status::NotFound("no session " + id);
}

Result<std::shared_ptr<session::Session>> Service::LiveSession(const auth::Caller& caller,
                                                               const std::string& id) {
  if (!IsValidId(id, "sess_")) return Status::NotFound("no session " + id);
  std::string pool_name;
  {
    MutexLock lock(rows_mu_);
    auto cached = active_rows_.find(id);
    if (cached != active_rows_.end() && cached->second.principal == caller.principal &&
        cached->second.project_id == caller.project_id) {
      pool_name = cached->second.pool;  // The common case: the owner, no database read.
    }
  }
  if (!pool_name.empty()) {
    auto live = pools_.at(pool_name)->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
  }
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  if (row.status == "ended") return EndedError(id, row.end_reason);
  auto pool = pools_.find(row.pool);
  if (pool != pools_.end()) {
    auto live = pool->second->Get(id);
    if (live.ok() && (*live)->end_reason() == session::EndReason::kNone) return *live;
    if (live.ok()) return EndedError(id, session::EndReasonName((*live)->end_reason()));
  }
  return EndedError(id, "crashed");
}

Result<Json> Service::GetSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  return SessionJson(row);
}

Result<Json> Service::ListSessions(const auth::Caller& caller, const std::string& status,
                                   const std::string& project, const store::Page& page) {
  std::string project_id;
  if (!project.empty()) {
    auto found = auth::FindProject(*store_, project);
    if (!found.ok() || !auth::SeesProject(caller, found->id)) {
      return Status::NotFound("no project " + project);
    }
    project_id = found->id;
  }
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) project_id = scope;
  std::string principal;
  if (caller.role == auth::Role::kUser) {
    ASSIGN_OR_RETURN(store::ProjectRow own, store_->GetProject(caller.project_id));
    if (!own.share_sessions) principal = caller.principal;
  }
  return ListPage(
      page,
      [&](const store::Page& p) { return store_->ListSessions(status, p, project_id, principal); },
      [&](const store::SessionRow& row) {
        store::SessionRow shown = row;  // An end the database has refused so far shows too.
        OverlayUnrecordedEnd(&shown);
        return SessionJson(shown);
      });
}

Result<Json> Service::EndSession(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, id));
  if (row.status == "active") {
    {
      MutexLock lock(rows_mu_);
      ended_by_[id] = caller;
    }
    auto pool = pools_.find(row.pool);
    bool ended = pool != pools_.end() &&
                 pool->second->EndSession(id, session::EndReason::kClosed).ok();
    {
      MutexLock lock(rows_mu_);
      ended_by_.erase(id);  // Used by RecordEnd when the pool ended it; not needed otherwise.
    }
    if (!ended) {  // Not live any more (its cell ended it): record what we know.
      MutexLock end_lock(end_mu_);
      {
        MutexLock lock(rows_mu_);
        active_rows_.erase(id);
      }
      // The pool may have recorded its end meanwhile (expiry, a violation): that reason stands.
      ASSIGN_OR_RETURN(store::SessionRow now, store_->GetSession(id));
      if (now.status == "ended") return SessionJson(now);
      row.status = "ended";
      row.end_reason = "crashed";
      row.ended_at_ms = NowMs();
      store::Trail trail;
      trail.audit = auth::EventBy(caller, "session.end", id, row.ended_at_ms);
      trail.audit->detail_json = DumpJson(Json{{"reason", row.end_reason}});
      RETURN_IF_ERROR(store_->PutSession(row, trail));
    }
    ASSIGN_OR_RETURN(row, store_->GetSession(id));
    OverlayUnrecordedEnd(&row);
  }
  return SessionJson(row);
}


// --- executions -----------------------------------------------------------------------------

Result<Service::StagedArtifact> Service::StageArtifact(session::Session& session,
                                                      const store::SessionRow& owner,
                                                      const auth::Caller& caller,
                                                      const std::string& execution_id,
                                                      const files::FileChange& change,
                                                      uint64_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd fd, session.OpenFile(change.path));
  ASSIGN_OR_RETURN(auto writer,
                   blobs_->NewWriter(std::min(session.limits().max_file_bytes, max_bytes)));
  RETURN_IF_ERROR(writer->WriteFrom(fd.get()));
  // The project the session belongs to pays for its outputs.
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
  Status quota = usage::CheckStorageQuota(*store_, project, static_cast<int64_t>(writer->bytes()));
  if (!quota.ok()) return QuotaRefused(caller, session.id(), quota);
  store::FileRow row;
  row.id = NewId("file_");
  // Names are bytes the code chose: registered with what is not UTF-8 escaped (utf8.h).
  row.filename = EscapeNonUtf8(BaseName(change.path));
  row.media_type = files::GuessMediaType(row.filename, writer->head());
  row.purpose = "output";
  row.created_at_ms = NowMs();
  auto keep = LiveConfig()->retention.output_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  row.session_id = session.id();
  row.execution_id = execution_id;
  row.path = EscapeNonUtf8(change.path);
  row.project_id = owner.project_id;
  row.principal = caller.principal;
  return StagedArtifact{std::move(row), std::move(writer)};
}

std::optional<Service::StagedArtifact> Service::StageOutputs(session::ExecutionRecord* record,
                                                           const store::SessionRow& owner,
                                                           const auth::Caller& caller) {
  const uint64_t bound = LiveConfig()->engine.max_record_outputs_bytes;
  std::vector<std::string> texts;
  uint64_t total = 2;  // The array's brackets.
  for (const kernel::Output& output : record->outputs) {
    texts.push_back(session::OutputToJson(output, record->execution_count));
    total += texts.back().size() + 1;
  }
  if (total <= bound + 2) return std::nullopt;
  size_t fit = 0;  // The outputs the record keeps: those that fit within the bound, in order.
  for (uint64_t used = 2; fit < texts.size() && used + texts[fit].size() + 1 <= bound; ++fit) {
    used += texts[fit].size() + 1;
  }
  const size_t count = texts.size();
  record->outputs.resize(fit);
  auto stage = [&]() -> Result<StagedArtifact> {
    ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(total));
    RETURN_IF_ERROR(writer->Write("["));
    for (size_t i = 0; i < texts.size(); ++i) {
      if (i > 0) RETURN_IF_ERROR(writer->Write(","));
      RETURN_IF_ERROR(writer->Write(texts[i]));
    }
    RETURN_IF_ERROR(writer->Write("]"));
    ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
    Status quota =
        usage::CheckStorageQuota(*store_, project, static_cast<int64_t>(writer->bytes()));
    if (!quota.ok()) return QuotaRefused(caller, record->session_id, quota);
    store::FileRow row;
    row.id = NewId("file_");
    row.filename = "outputs-" + record->id + ".json";
    row.media_type = "application/json";
    row.purpose = "output";
    row.created_at_ms = NowMs();
    auto keep = LiveConfig()->retention.output_files;
    row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
    row.session_id = record->session_id;
    row.execution_id = record->id;
    row.project_id = owner.project_id;
    row.principal = caller.principal;  // No path: the code never saw this file.
    return StagedArtifact{std::move(row), std::move(writer)};
  };
  auto staged = stage();
  if (!staged.ok()) {
    record->outputs_truncated = true;
    record->outputs_file_skipped = staged.status().message();
    return std::nullopt;
  }
  record->outputs_file = session::ExecutionRecord::OutputsFile{staged->row.id, 0, "", count};
  return std::move(*staged);
}

store::Trail Service::ViolationTrail(const store::SessionRow& row, const std::string& rule,
                                     const std::string& execution_id) {
  auth::Caller system = auth::Caller::System();
  system.project_id = row.project_id;
  store::Trail trail;
  trail.audit = auth::EventBy(system, "security.protocol_violation", row.id, NowMs());
  trail.audit->outcome = "error";
  Json detail = {{"rule", rule}, {"principal", row.principal}, {"pool", row.pool}};
  if (!execution_id.empty()) detail["execution_id"] = execution_id;
  trail.audit->detail_json = DumpJson(detail);
  return trail;
}


Result<std::string> Service::Execute(const auth::Caller& caller, const std::string& session_id,
                                     const std::string& code, std::optional<seconds> timeout,
                                     const kernel::ExecuteObserver& observer) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  store::SessionRow owner;
  {
    MutexLock lock(rows_mu_);
    auto cached = active_rows_.find(session_id);
    if (cached == active_rows_.end()) return EndedError(session_id, "crashed");
    owner = cached->second;
  }
  {
    ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(owner.project_id));
    Status quota = usage::CheckCpuQuota(*store_, project, NowMs());
    if (!quota.ok()) return QuotaRefused(caller, session_id, quota);
  }
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
  record.code_sha256 = Sha256Hex(code);
  if (stopping_cells_ && record.status != "ok") record.interrupted_by = "server_shutdown";

  // Copied and hashed with no lock held (one tenant's large artifact must not stall everyone's
  // uploads and cells); blob_mu_ guards only the commits and the record.
  std::vector<StagedArtifact> staged;
  session::ExportPlan plan = session::PlanExport(record.files, session->limits().data_bytes);
  record.artifacts_skipped = std::move(plan.skipped);
  uint64_t budget = session->limits().data_bytes;
  for (const files::FileChange& change : plan.files) {
    // A file may have grown since it was listed: what is stored stays within the budget.
    auto artifact = StageArtifact(*session, owner, caller, record.id, change, budget);
    if (!artifact.ok()) {
      // A file that vanished, became a link or grew past the limit is not an artifact.
      record.artifacts_skipped.push_back({change.path, artifact.status().message()});
      continue;
    }
    budget -= std::min<uint64_t>(budget, artifact->writer->bytes());
    staged.push_back(std::move(*artifact));
  }
  std::optional<StagedArtifact> outputs_file = StageOutputs(&record, owner, caller);
  std::vector<store::FileRow> artifacts;
  MutexLock blob_lock(blob_mu_);
  if (outputs_file) {
    auto blob = outputs_file->writer->Commit();
    if (blob.ok()) {
      outputs_file->row.sha256 = blob->sha256;
      outputs_file->row.bytes = static_cast<int64_t>(blob->bytes);
      record.outputs_file->bytes = blob->bytes;
      record.outputs_file->sha256 = blob->sha256;
      artifacts.push_back(std::move(outputs_file->row));
    } else {
      record.outputs_file.reset();
      record.outputs_truncated = true;
      record.outputs_file_skipped = blob.status().message();
    }
  }
  for (StagedArtifact& artifact : staged) {
    auto blob = artifact.writer->Commit();
    if (!blob.ok()) {
      record.artifacts_skipped.push_back({artifact.row.path, blob.status().message()});
      continue;
    }
    store::FileRow& row = artifact.row;
    row.sha256 = blob->sha256;
    row.bytes = static_cast<int64_t>(blob->bytes);
    record.artifacts.push_back({row.id, row.filename, row.path, static_cast<uint64_t>(row.bytes),
                                row.sha256, row.media_type});
    artifacts.push_back(std::move(row));
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
  exec.project_id = owner.project_id;
  exec.principal = caller.principal;
  exec.cpu_ms = record.cpu_ms;
  exec.peak_memory_bytes = static_cast<int64_t>(record.peak_memory_bytes);

  store::SessionRow row;
  bool ended_meanwhile = false;
  {
    MutexLock lock(rows_mu_);
    auto cached = active_rows_.find(session_id);
    ended_meanwhile = cached == active_rows_.end();
    if (!ended_meanwhile) {
    store::SessionRow& live = cached->second;
    live.execution_count += 1;
    live.last_active_at_ms = ToWallMs(session->last_active_at());
    live.expires_at_ms = ToWallMs(session->expires_at());
    live.cpu_ms += record.cpu_ms;
    live.peak_memory_bytes = std::max(live.peak_memory_bytes, exec.peak_memory_bytes);
    if (!record.session_end_reason.empty()) {
      live.status = "ended";
      live.end_reason = record.session_end_reason;
      live.ended_at_ms = NowMs();
    }
    row = live;
    if (row.status == "ended") active_rows_.erase(cached);
    }
  }
  MutexLock end_lock(end_mu_, std::defer_lock);
  if (ended_meanwhile) {
    // Ended while the cell ran (DELETE, the pool's sweep): the code ran, so it is recorded all
    // the same, against the ended session's record (written by RecordEnd, which end_mu_ waits
    // for); the caller hears the session is gone.
    end_lock.Lock();
    auto stored = store_->GetSession(session_id);
    if (!stored.ok()) {
      for (const store::FileRow& artifact : artifacts) DropUnnamedBlob(artifact.sha256);
      return stored.status();
    }
    row = std::move(*stored);
    row.execution_count += 1;
    row.cpu_ms += record.cpu_ms;
    row.peak_memory_bytes = std::max(row.peak_memory_bytes, exec.peak_memory_bytes);
  }
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "execution.run", exec.id, NowMs());
  trail.audit->code_sha256 = exec.code_sha256;
  trail.audit->outcome = exec.status == "ok" ? "ok" : "error";
  Json artifact_ids = Json::array();
  for (const session::Artifact& a : record.artifacts) artifact_ids.push_back(a.file_id);
  Json detail = {{"session_id", session_id},
                 {"status", exec.status},
                 {"duration_ms", exec.duration_ms},
                 {"cpu_ms", exec.cpu_ms},
                 {"artifacts", artifact_ids}};
  if (record.outputs_file) detail["outputs_file"] = record.outputs_file->file_id;
  trail.audit->detail_json = DumpJson(detail);
  Status recorded = store_->RecordExecution(exec, artifacts, row, trail);
  if (!recorded.ok()) {
    for (const store::FileRow& artifact : artifacts) DropUnnamedBlob(artifact.sha256);
    return recorded;
  }
  blob_lock.Unlock();
  metrics_->Execution(exec.status, exec.duration_ms / 1000);
  std::string sandbox_event;
  if (exec.status == "timeout") sandbox_event = "timeout_" + record.timeout_action;
  if (record.session_end_reason == "memory") sandbox_event = "memory_kill";
  if (exec.status == "crashed") sandbox_event = "crashed";
  if (!sandbox_event.empty()) metrics_->SandboxEvent(sandbox_event);
  Emit(diagnostics::kExecutions, [&] {
    Json event = Json::parse(exec.record_json, nullptr, false);
    if (!event.is_object()) event = Json{{"id", exec.id}};
    event["event"] = "execution.completed";
    AddCaller(caller, &event);
    return event;
  });
  if (!sandbox_event.empty()) {
    Emit(diagnostics::kSecurity, [&] {
      Json event = {{"event", "sandbox." + sandbox_event},
                    {"session_id", session_id},
                    {"execution_id", exec.id},
                    {"status", exec.status},
                    {"session_end_reason", record.session_end_reason}};
      AddCaller(caller, &event);
      return event;
    });
  }
  if (ended_meanwhile) {
    return EndedError(session_id, row.end_reason.empty() ? "crashed" : row.end_reason);
  }
  if (row.status == "ended") {
    // The cell ended its session (memory, …). The pool's end observer will find the record
    // ended already, so the end's event is written here, by the system.
    auth::Caller system = auth::Caller::System();
    system.project_id = row.project_id;
    store::Trail end;
    end.audit = auth::EventBy(system, "session.end", row.id, row.ended_at_ms);
    end.audit->detail_json = DumpJson(Json{{"reason", row.end_reason}, {"execution_id", exec.id}});
    RETURN_IF_ERROR(store_->Record(end));
    if (!record.protocol_violation.empty()) {
      RETURN_IF_ERROR(store_->Record(ViolationTrail(row, record.protocol_violation, exec.id)));
      metrics_->SandboxEvent("protocol_violation");
    }
    metrics_->SessionEnded(row.pool, row.end_reason,
                           (row.ended_at_ms - row.created_at_ms) / 1000.0);
  }
  return std::move(exec.record_json);
}

Result<store::ExecutionRow> Service::VisibleExecution(const auth::Caller& caller,
                                                      const std::string& id) {
  if (IsValidId(id, "exec_")) {
    auto row = store_->GetExecution(id);
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
    if (row.ok() && VisibleSession(caller, row->session_id).ok()) return row;
  }
  return Status::NotFound("no execution " + id);
}

Result<std::string> Service::GetExecution(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::ExecutionRow row, VisibleExecution(caller, id));
  return std::move(row.record_json);
}

Result<Json> Service::ListExecutions(const auth::Caller& caller, const std::string& session_id,
                                     const store::Page& page) {
  RETURN_IF_ERROR(VisibleSession(caller, session_id).status());
  return ListPage(
      page, [&](const store::Page& p) { return store_->ListExecutions(session_id, p); },
      [](const store::ExecutionRow& row) { return Json::parse(row.record_json); });
}

// --- lineage --------------------------------------------------------------------------------

Result<Json> Service::ProducedBy(const auth::Caller& caller, const store::FileRow& output,
                                 int depth, std::set<std::string>* seen) {
  ASSIGN_OR_RETURN(store::ExecutionRow exec, store_->GetExecution(output.execution_id));
  // status is what the session reported; the rest the server measured itself.
  Json execution = {{"id", exec.id},
                    {"status", exec.status},
                    {"code", exec.code},
                    {"code_sha256", exec.code_sha256},
                    {"started_at", TimeOrNull(exec.started_at_ms)},
                    {"duration_ms", exec.duration_ms},
                    {"reported_fields", Json::array({"status"})}};
  Json session = nullptr;
  if (auto row = store_->GetSession(exec.session_id); row.ok()) {
    Json metadata = Json::parse(row->metadata_json, nullptr, false);
    if (metadata.is_discarded()) metadata = Json::object();
    session = {{"id", row->id},
               {"pool", row->pool},
               {"project_id", row->project_id},
               {"principal", row->principal},
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
    // Deeper only where the executions route would show the caller that execution.
    if (record.ok() && record->purpose == "output" && depth < kMaxLineageDepth &&
        VisibleSession(caller, record->session_id).ok() && seen->insert(file_id).second) {
      ASSIGN_OR_RETURN(input["produced_by"], ProducedBy(caller, *record, depth + 1, seen));
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
  store::FileFilter earlier{.purpose = "output", .session_id = exec.session_id};
  ASSIGN_OR_RETURN(auto written, store_->ListFiles(earlier, store::Page{1000, ""}));
  for (auto it = written.rbegin(); it != written.rend(); ++it) {  // Oldest first.
    if (it->execution_id == exec.id || it->created_at_ms > exec.started_at_ms) continue;
    if (it->path.empty()) continue;  // An earlier cell's outputs file: the code never saw it.
    RETURN_IF_ERROR(add_input(it->id, it->filename, it->sha256, "written_earlier_in_session"));
  }
  return Json{{"execution", execution}, {"session", session}, {"inputs", inputs}};
}

Result<Json> Service::Lineage(const auth::Caller& caller, const std::string& file_id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, file_id));
  // An output's lineage is its execution's code and session: shown to whoever the executions
  // route shows them (a user of a project that does not share sessions sees only their own).
  if (row.purpose == "output" && !VisibleSession(caller, row.session_id).ok()) {
    return Status::NotFound("no file " + file_id);  // As for an id never made.
  }
  Json lineage = {{"object", "lineage"}, {"file", FileJson(row)}, {"produced_by", nullptr}};
  if (row.purpose == "output") {
    std::set<std::string> seen = {row.id};
    ASSIGN_OR_RETURN(lineage["produced_by"], ProducedBy(caller, row, 0, &seen));
  }
  // Where it went: the sessions it was placed into and the cells that ran there after.
  Json used_by = Json::array();
  ASSIGN_OR_RETURN(auto uses, store_->UsesOfFile(file_id, 100));
  for (const store::SessionInput& use : uses) {
    if (!VisibleSession(caller, use.session_id).ok()) continue;  // Another's, not shared.
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

// --- identity, audit, usage -------------------------------------------------------------------

Result<Json> Service::Me(const auth::Caller& caller) {
  ASSIGN_OR_RETURN(store::KeyRow key, store_->GetKey(caller.key_id));
  ASSIGN_OR_RETURN(store::ProjectRow project, store_->GetProject(caller.project_id));
  Json me = auth::KeyJson(key);
  me["project"] = auth::ProjectJson(project);
  return me;
}

Result<Json> Service::CreateProject(const auth::Caller& caller, const auth::ProjectSpec& spec) {
  ASSIGN_OR_RETURN(store::ProjectRow row, auth::CreateProject(*store_, caller, spec, NowMs()));
  return auth::ProjectJson(row);
}

Result<Json> Service::UpdateProject(const auth::Caller& caller, const std::string& id_or_name,
                                    const auth::ProjectSpec& spec) {
  ASSIGN_OR_RETURN(store::ProjectRow row,
                   auth::UpdateProject(*store_, caller, id_or_name, spec, NowMs()));
  return auth::ProjectJson(row);
}

Result<Json> Service::GetProject(const auth::Caller& caller, const std::string& id_or_name) {
  auto row = auth::FindProject(*store_, id_or_name);
  if (!row.ok() || !auth::SeesProject(caller, row->id)) {
    if (row.ok() || row.status().IsNotFound()) return Status::NotFound("no project " + id_or_name);
    return row.status();
  }
  return auth::ProjectJson(*row);
}

Result<Json> Service::ListProjects(const auth::Caller& caller) {
  return auth::ProjectList(*store_, caller);
}

Result<Json> Service::CreateKey(const auth::Caller& caller, const auth::KeySpec& spec) {
  ASSIGN_OR_RETURN(auth::CreatedKey created, auth::CreateKey(*store_, caller, spec, NowMs()));
  Json key = auth::KeyJson(created.row);
  key["key"] = created.token;
  return key;
}

Result<Json> Service::GetKey(const auth::Caller&, const std::string& id) {
  if (IsValidId(id, "key_")) {
    auto row = store_->GetKey(id);
    if (row.ok()) return auth::KeyJson(*row);
    if (!row.status().IsNotFound()) return row.status();
  }
  return Status::NotFound("no key " + id);
}

Result<Json> Service::ListKeys(const auth::Caller&, const std::string& project,
                               bool include_revoked) {
  return auth::KeyList(*store_, project, include_revoked);
}

Result<Json> Service::RevokeKey(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::KeyRow row, auth::RevokeKey(*store_, caller, id, NowMs()));
  return auth::KeyJson(row);
}

Result<Json> Service::ListAudit(const auth::Caller& caller, store::AuditFilter filter,
                                const std::string& project) {
  if (!project.empty()) {
    auto found = auth::FindProject(*store_, project);
    if (!found.ok() || !auth::SeesProject(caller, found->id)) {
      return Status::NotFound("no project " + project);
    }
    filter.project_id = found->id;
  }
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) filter.project_id = scope;
  int limit = filter.limit;
  filter.limit = limit + 1;
  ASSIGN_OR_RETURN(auto events, store_->ListAudit(filter));
  bool more = events.size() > static_cast<size_t>(limit);
  if (more) events.resize(static_cast<size_t>(limit));
  Json data = Json::array();
  for (const audit::AuditEvent& e : events) data.push_back(audit::EventToJson(e));
  return Json{{"object", "list"},
              {"data", data},
              {"has_more", more},
              {"last_seq", events.empty() ? Json(nullptr) : Json(events.back().seq)}};
}

Result<Json> Service::Usage(const auth::Caller& caller, const std::string& group_by,
                            int64_t from_ms, int64_t to_ms, const std::string& project) {
  usage::UsageQuery query;
  query.group_by = group_by;
  query.from_ms = from_ms;
  query.to_ms = to_ms;
  if (!project.empty()) {
    auto found = auth::FindProject(*store_, project);
    if (!found.ok() || !auth::SeesProject(caller, found->id)) {
      return Status::NotFound("no project " + project);
    }
    query.project_id = found->id;
  }
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) query.project_id = scope;
  return usage::Report(*store_, LiveConfig()->prices, query, NowMs());
}

Json Service::Pools() const {
  Json data = Json::array();
  for (const auto& [name, manager] : pools_) {
    size_t running = 0;
    for (const auto& s : manager->Sessions()) running += s->busy() ? 1 : 0;
    data.push_back({{"name", name},
                    {"object", "pool"},
                    {"ready", manager->ReadyCount()},
                    {"target_ready", manager->PoolTarget()},
                    {"active", manager->Sessions().size()},
                    {"executing", running},
                    {"preload", manager->config().pool.preload},
                    {"limits", LimitsToJson(manager->Limits())}});
  }
  return Json{{"object", "list"}, {"data", data}, {"has_more", false}};
}

std::shared_ptr<const ServiceConfig> Service::LiveConfig() const {
  MutexLock lock(live_config_mu_);
  return live_config_;
}

Result<Json> Service::Reload(const auth::Caller& caller, const ServiceConfig& requested) {
  MutexLock reload_lock(reload_mu_);
  RETURN_IF_ERROR(requested.Validate());
  std::shared_ptr<const ServiceConfig> current = LiveConfig();
  // What may change live is taken from `requested`; the rest stays as it is.
  ServiceConfig next = requested;
  next.server = current->server;
  next.engine = current->engine;
  bool same_pools = next.pools.size() == current->pools.size();
  for (size_t i = 0; same_pools && i < next.pools.size(); ++i) {
    same_pools = next.pools[i].name == current->pools[i].name;
  }
  if (!same_pools) next.pools = current->pools;
  for (size_t i = 0; i < next.pools.size(); ++i) next.pools[i].preload = current->pools[i].preload;

  Json before = ConfigToJson(*current);
  std::vector<ConfigChange> wanted = DiffConfigJson(before, ConfigToJson(requested));
  std::set<std::string> applied_keys;
  for (const ConfigChange& change : DiffConfigJson(before, ConfigToJson(next))) {
    applied_keys.insert(change.key);
  }
  Json applied = Json::array();
  Json needs_restart = Json::array();
  for (const ConfigChange& change : wanted) {
    Json item = {{"key", change.key}, {"from", change.before}, {"to", change.after}};
    (applied_keys.count(change.key) ? applied : needs_restart).push_back(std::move(item));
  }
  Json result = {{"applied", applied}, {"needs_restart", needs_restart}};
  if (wanted.empty()) return result;

  // The new diagnostic settings start before anything changes: a sink that cannot start (a file
  // that cannot be opened) refuses the whole reload.
  std::shared_ptr<diagnostics::Diagnostics> fresh;
  bool new_settings = ConfigToJson(next)["diagnostic_settings"] != before["diagnostic_settings"];
  if (new_settings) {
    auto created = diagnostics::Diagnostics::Create(next.diagnostic_settings, {clock_});
    if (!created.ok()) return Status::InvalidArgument(created.status().message());
    fresh = std::move(*created);
  }
  store::Trail trail;
  trail.audit = auth::EventBy(caller, "config.change", "", NowMs());
  trail.audit->detail_json = DumpJson(result);
  Status recorded = store_->Record(trail);
  if (!recorded.ok()) {
    if (fresh) fresh->Close(std::chrono::milliseconds(0));
    return recorded;
  }

  for (size_t i = 0; i < next.pools.size(); ++i) {
    session::SessionManager& manager = *pools_.at(next.pools[i].name);
    if (LimitsToJson(next.pools[i].limits) != LimitsToJson(current->pools[i].limits)) {
      manager.SetLimits(next.pools[i].limits);
    }
    if (next.pools[i].ready_sessions != current->pools[i].ready_sessions) {
      manager.SetPoolTarget(next.pools[i].ready_sessions);
    }
  }
  {
    MutexLock lock(live_config_mu_);
    live_config_ = std::make_shared<const ServiceConfig>(std::move(next));
  }
  if (fresh) {
    {
      MutexLock lock(diagnostics_mu_);
      diagnostics_.swap(fresh);
    }
    fresh->Close(diagnostics::Diagnostics::kCloseDeadline);  // The old settings' queues.
  }
  LOG_INFO("configuration reloaded: {} change(s) applied, {} need a restart", applied.size(),
           needs_restart.size());
  for (const Json& item : needs_restart) {
    LOG_WARN("configuration: {} changed from {} to {}; it needs a restart (kept as it was)",
             item["key"].get<std::string>(), DumpJson(item["from"]), DumpJson(item["to"]));
  }
  return result;
}

Json Service::ConfigJson() const {
  Json config = ConfigToJson(*LiveConfig());
  config["object"] = "config";
  return config;
}

Result<Json> Service::ServiceInfo() {
  ASSIGN_OR_RETURN(int schema, store_->SchemaVersion());
  ASSIGN_OR_RETURN(auto keys, store_->ListKeys("", /*include_revoked=*/false));
  Json by_role = {{"admin", 0}, {"operator", 0}, {"user", 0}, {"auditor", 0}};
  for (const store::KeyRow& key : keys) by_role[key.role] = by_role.value(key.role, 0) + 1;
  return Json{{"object", "service"},
              {"version", PYCELL_VERSION},
              {"build", {{"commit", PYCELL_GIT_COMMIT},
                         {"type", PYCELL_BUILD_TYPE},
                         {"compiler", PYCELL_COMPILER}}},
              {"started_at", TimeOrNull(started_at_ms_)},
              {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(clock_->Now() -
                                                                            started_)
                                .count()},
              {"listen", config_.server.listen},
              {"metrics_listen", config_.server.metrics_listen.empty()
                                     ? Json(nullptr)
                                     : Json(config_.server.metrics_listen)},
              {"data_dir", config_.server.data_dir},
              {"store", {{"backend", "sqlite"},
                         {"path", config_.server.data_dir + "/pycell.db"},
                         {"schema_version", schema}}},
              {"host_protections", Json::parse(host_protections_json_)},
              {"pools", Pools()["data"]},
              {"keys_by_role", by_role},
              {"evidence_public_key", EvidencePublicKey()},
              {"config", ConfigToJson(*LiveConfig())}};
}

void Service::Emit(std::string_view category, const std::function<Json()>& make) {
  std::shared_ptr<diagnostics::Diagnostics> current;
  {
    MutexLock lock(diagnostics_mu_);
    current = diagnostics_;
  }
  if (current && current->Wants(category)) current->Emit(category, make());
}

// Every audit event goes to `audit` as the API shows it; session lifecycle events also to
// `sessions`, and refusals (failed logins, denied permissions, quotas) also to `security`.
void Service::EmitAudit(const audit::AuditEvent& event) {
  Emit(diagnostics::kAudit, [&] { return audit::EventToJson(event); });
  if (event.action == "session.create" || event.action == "session.end") {
    Emit(diagnostics::kSessions, [&] {
      Json detail = Json::parse(event.detail_json, nullptr, false);
      Json out = {{"event", event.action == "session.create" ? "session.created"
                                                              : "session.ended"},
                  {"session_id", event.target},
                  {"principal", event.principal},
                  {"project_id", event.project_id},
                  {"request_id", event.request_id},
                  {"audit_event_id", event.id}};
      if (detail.is_object()) {
        for (auto& [key, value] : detail.items()) out[key] = value;
      }
      return out;
    });
  }
  if (event.action == "auth.denied" || event.action == "quota.exceeded" ||
      event.outcome == "denied") {
    Emit(diagnostics::kSecurity, [&] {
      Json out = audit::EventToJson(event);
      out["event"] = event.action;
      out["audit_event_id"] = event.id;
      return out;
    });
  }
}

Json Service::DiagnosticSettings() const {
  std::shared_ptr<diagnostics::Diagnostics> current;
  {
    MutexLock lock(diagnostics_mu_);
    current = diagnostics_;
  }
  Json data = Json::array();
  if (current) {
    for (const diagnostics::Diagnostics::SinkState& state : current->States()) {
      data.push_back({{"name", state.name},
                      {"sink", state.sink},
                      {"categories", state.categories},
                      {"sent", state.sent},
                      {"failed", state.failed},
                      {"dropped", state.dropped},
                      {"queued", state.queued},
                      {"last_error", state.last_error.empty() ? Json(nullptr)
                                                              : Json(state.last_error)}});
    }
  }
  return Json{{"object", "list"}, {"data", data}};
}

metrics::StateSample Service::SampleState() {
  metrics::StateSample sample;
  for (const auto& [name, manager] : pools_) {
    metrics::PoolState pool{name, static_cast<double>(manager->ReadyCount()), 0, 0};
    for (const auto& s : manager->Sessions()) {
      pool.active += 1;
      pool.executing += s->busy() ? 1 : 0;
    }
    sample.pools.push_back(pool);
  }
  if (auto totals = store_->Totals(); totals.ok()) {
    sample.files_stored = static_cast<double>(totals->files);
    sample.bytes_stored = static_cast<double>(totals->bytes);
    sample.audit_events = static_cast<double>(totals->audit_events);
  }
  {
    MutexLock lock(rows_mu_);
    sample.sessions_over_expected = static_cast<double>(flagged_long_.size());
  }
  return sample;
}

int Service::FlagLongSessions() {
  auto expected = LiveConfig()->usage.expected_session;
  if (expected.count() <= 0) return 0;
  int64_t now = NowMs();
  int over = 0;
  MutexLock lock(rows_mu_);
  for (const auto& [id, row] : active_rows_) {
    if (now - row.created_at_ms <= expected.count() * 1000) continue;
    ++over;
    if (flagged_long_.insert(id).second) {
      LOG_WARN("session {} (project {}, principal {}) has run {} s, past the expected {} s",
               id, row.project_id, row.principal, (now - row.created_at_ms) / 1000,
               expected.count());
    }
  }
  return over;
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
    MutexLock lock(sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.NotifyAll();
  for (auto& [name, manager] : pools_) {
    for (auto& s : manager->Sessions()) (void)manager->EndSession(s->id(), session::EndReason::kShutdown);
  }
}

bool Service::Ready() const {
  for (const auto& [name, manager] : pools_) {
    if (manager->ReadyCount() < manager->PoolTarget()) return false;
  }
  return true;
}

}  // namespace pycell::service
