// The operations part of the Service: pools, live configuration and reload, service
// information, diagnostic events and settings, metrics samples, long-session flags.
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
#include "service/service.h"
#include "service/service_json.h"
#include "service/v1_views.h"
#include "usage/quota.h"
#include "usage/usage.h"

namespace pycell::service {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// --- operations ---------------------------------------------------------------------------

std::vector<PoolInfo> Service::Pools() const {
  std::vector<PoolInfo> pools;
  for (const auto& [name, manager] : pools_) {
    PoolInfo& pool = pools.emplace_back();
    pool.name = name;
    pool.ready = manager->ReadyCount();
    pool.target_ready = manager->PoolTarget();
    for (const auto& s : manager->Sessions()) {
      pool.active += 1;
      pool.executing += s->busy() ? 1 : 0;
    }
    pool.preload = manager->config().pool.preload;
    pool.limits = manager->Limits();
  }
  return pools;
}

std::shared_ptr<const ServiceConfig> Service::LiveConfig() const { return live_config_.Get(); }

Result<ReloadOutcome> Service::Reload(const auth::Caller& caller, const ServiceConfig& requested) {
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
  ReloadOutcome outcome;
  for (ConfigChange& change : wanted) {
    (applied_keys.count(change.key) ? outcome.applied : outcome.needs_restart)
        .push_back(std::move(change));
  }
  if (outcome.applied.empty() && outcome.needs_restart.empty()) return outcome;

  // The new diagnostic settings start before anything changes: a sink that cannot start (a file
  // that cannot be opened) refuses the whole reload.
  std::shared_ptr<diagnostics::Diagnostics> fresh;
  bool new_settings = ConfigToJson(next)["diagnostic_settings"] != before["diagnostic_settings"];
  if (new_settings) {
    auto created = diagnostics::Diagnostics::Create(next.diagnostic_settings, {clock_});
    if (!created.ok()) return Status::InvalidArgument(created.status().message());
    fresh = std::move(*created);
  }
  store::Trail trail = auth::AuditTrail(caller, "config.change", "", NowMs(), ReloadView(outcome));
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
  live_config_.Replace(std::make_shared<const ServiceConfig>(std::move(next)));
  if (fresh) {
    std::shared_ptr<diagnostics::Diagnostics> old = diagnostics_.Replace(std::move(fresh));
    if (old) old->Close(diagnostics::Diagnostics::kCloseDeadline);  // The old settings' queues.
  }
  LOG_INFO("configuration reloaded: {} change(s) applied, {} need a restart",
           outcome.applied.size(), outcome.needs_restart.size());
  for (const ConfigChange& change : outcome.needs_restart) {
    LOG_WARN("configuration: {} changed from {} to {}; it needs a restart (kept as it was)",
             change.key, DumpJson(change.before), DumpJson(change.after));
  }
  return outcome;
}

Result<ServiceStatus> Service::GetStatus() {
  ServiceStatus status;
  ASSIGN_OR_RETURN(status.schema_version, store_->SchemaVersion());
  ASSIGN_OR_RETURN(auto keys, store_->ListKeys("", /*include_revoked=*/false));
  for (const char* role : {"admin", "operator", "user", "auditor"}) status.keys_by_role[role] = 0;
  for (const store::KeyRow& key : keys) status.keys_by_role[key.role] += 1;
  status.started_at_ms = started_at_ms_;
  status.uptime_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->Now() - started_).count();
  status.server = config_.server;
  // A PostgreSQL URL may hold a password: only the backend is shown.
  status.store_backend = config_.store.postgresql() ? "postgresql" : "sqlite";
  status.store_location = config_.store.postgresql() ? "" : config_.server.data_dir + "/pycell.db";
  status.host_protections_json = host_protections_json_;
  status.pools = Pools();
  status.evidence_key = EvidencePublicKey();
  status.config = LiveConfig();
  return status;
}

void Service::Emit(std::string_view category, const std::function<Json()>& make) {
  std::shared_ptr<diagnostics::Diagnostics> current = diagnostics_.Get();
  if (current && current->Wants(category)) current->Emit(category, make());
}

// Every audit event goes to `audit` as the API shows it; session lifecycle events also to
// `sessions`, and refusals (failed logins, denied permissions, quotas) also to `security`.
void Service::EmitAudit(const audit::AuditEvent& event) {
  Emit(diagnostics::kAudit, [&] { return audit::EventToJson(event); });
  if (event.action == "session.create" || event.action == "session.end") {
    Emit(diagnostics::kSessions, [&] {
      Json detail = Json::parse(event.detail_json, nullptr, false);
      Json out = {{"event", event.action == "session.create" ? "session.created" : "session.ended"},
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

std::vector<diagnostics::Diagnostics::SinkState> Service::DiagnosticSettings() const {
  std::shared_ptr<diagnostics::Diagnostics> current = diagnostics_.Get();
  if (!current) return {};
  return current->States();
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
  sample.sessions_over_expected = static_cast<double>(records_.FlaggedLongRunning());
  return sample;
}

int Service::FlagLongSessions() {
  auto expected = LiveConfig()->usage.expected_session;
  if (expected.count() <= 0) return 0;
  int64_t now = NowMs();
  SessionRecords::LongRunning long_running = records_.FlagLongRunning(now, expected.count() * 1000);
  for (const store::SessionRow& row : long_running.newly_flagged) {
    LOG_WARN("session {} (project {}, principal {}) has run {} s, past the expected {} s", row.id,
             row.project_id, row.principal, (now - row.created_at_ms) / 1000, expected.count());
  }
  return long_running.count;
}

}  // namespace pycell::service
