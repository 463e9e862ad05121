// The Service facade: opening it (one SessionManager per pool, the store, the blobs, the sweep)
// and its lifecycle. Each part of the domain API is a file of its own beside this one: files.cc,
// sessions.cc, session_files.cc, executions.cc, lineage.cc, identity.cc, operations.cc.
#include "service/service.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/build_info.h"
#include "common/config_json.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "files/media_type.h"
#include "sandbox/host_probe.h"
#include "service/service_json.h"
#include "usage/quota.h"
#include "usage/usage.h"

namespace pycell::service {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

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
  // SQLite in the data dir unless store.url names a PostgreSQL database (migrated beforehand by
  // `pycell migrate`; opening refuses an older schema).
  ASSIGN_OR_RETURN(
      service->store_,
      store::OpenMetadataStore(config.store.url.empty() ? data + "/pycell.db" : config.store.url));
  service->identity_ = std::make_unique<Identity>(*service->store_, *clock);
  // Diagnostic settings first, so that every audit event of this run reaches them.
  ASSIGN_OR_RETURN(auto diagnostics,
                   diagnostics::Diagnostics::Create(config.diagnostic_settings, {clock}));
  service->diagnostics_.Replace(std::move(diagnostics));
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
  service->authenticator_ =
      std::make_unique<auth::Authenticator>(service->store_.get(), clock, service->metrics_.get());
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
    manager->SetLaunchObserver(
        [self](const session::LaunchTimings& t) { self->metrics_->PoolRefill(t.total_ms / 1000); });
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
  if (auto diagnostics = diagnostics_.Get()) {
    diagnostics->Close(diagnostics::Diagnostics::kCloseDeadline);
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
    for (auto& s : manager->Sessions())
      (void)manager->EndSession(s->id(), session::EndReason::kShutdown);
  }
}

bool Service::Ready() const {
  for (const auto& [name, manager] : pools_) {
    if (manager->ReadyCount() < manager->PoolTarget()) return false;
  }
  return true;
}

}  // namespace pycell::service
