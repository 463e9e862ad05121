#include "common/config_json.h"

#include <curl/curl.h>

#include <memory>

namespace pycell {

using Json = nlohmann::json;

std::string RedactUrl(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(), curl_url_cleanup);
  if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return "(redacted: not a URL)";
  }
  char* part = nullptr;
  auto has = [&](CURLUPart which) {
    bool present = curl_url_get(parsed.get(), which, &part, 0) == CURLUE_OK && part && *part;
    curl_free(part);
    part = nullptr;
    return present;
  };
  if (has(CURLUPART_USER)) curl_url_set(parsed.get(), CURLUPART_USER, "redacted", 0);
  if (has(CURLUPART_PASSWORD)) curl_url_set(parsed.get(), CURLUPART_PASSWORD, "redacted", 0);
  if (has(CURLUPART_QUERY)) curl_url_set(parsed.get(), CURLUPART_QUERY, "redacted", 0);
  if (has(CURLUPART_FRAGMENT)) curl_url_set(parsed.get(), CURLUPART_FRAGMENT, nullptr, 0);
  if (curl_url_get(parsed.get(), CURLUPART_URL, &part, 0) != CURLUE_OK || !part) {
    return "(redacted: not a URL)";
  }
  std::string redacted = part;
  curl_free(part);
  return redacted;
}

Json DiagnosticSettingToJson(const DiagnosticSetting& s) {
  Json j = {{"name", s.name},
            {"categories", s.categories},
            {"sink", s.sink},
            {"queue_max", s.queue_max},
            {"max_retries", s.max_retries},
            {"backoff_ms", s.backoff.count()}};
  if (s.sink == "file") {
    j["path"] = s.path;
    j["max_bytes"] = s.max_bytes;
    j["keep"] = s.keep;
  } else if (s.sink == "syslog") {
    j["facility"] = s.facility;
    j["ident"] = s.ident;
    j["socket"] = s.socket;
  } else if (s.sink == "webhook") {
    j["url"] = RedactUrl(s.url);
    j["batch_max"] = s.batch_max;
    j["flush_interval_ms"] = s.flush_interval.count();
    j["timeout_ms"] = s.timeout.count();
  }
  return j;
}

Json LimitsToJson(const SessionLimits& l) {
  return {{"memory_bytes", l.memory_bytes},
          {"max_pids", l.max_pids},
          {"cpus", l.cpus},
          {"data_bytes", l.data_bytes},
          {"tmp_bytes", l.tmp_bytes},
          {"max_file_bytes", l.max_file_bytes},
          {"max_open_files", l.max_open_files},
          {"max_output_bytes", l.max_output_bytes},
          {"execution_timeout_s", l.execution_timeout.count()},
          {"max_execution_timeout_s", l.max_execution_timeout.count()},
          {"idle_timeout_s", l.idle_timeout.count()},
          {"active_lifetime_s", l.active_lifetime.count()}};
}

Json ConfigToJson(const ServiceConfig& config) {
  const ServerConfig& server = config.server;
  const EngineConfig& engine = config.engine;
  Json pools = Json::array();
  for (const PoolConfig& pool : config.pools) {
    pools.push_back({{"name", pool.name},
                     {"preload", pool.preload},
                     {"ready_sessions", pool.ready_sessions},
                     {"limits", LimitsToJson(pool.limits)}});
  }
  const PriceConfig& p = config.prices;
  Json diagnostic_settings = Json::array();
  for (const DiagnosticSetting& setting : config.diagnostic_settings) {
    diagnostic_settings.push_back(DiagnosticSettingToJson(setting));
  }
  return {{"server",
           {{"listen", server.listen},
            {"metrics_listen", server.metrics_listen},
            {"aca_prefix", server.aca_prefix},
            {"data_dir", server.data_dir},
            {"max_connections", server.max_connections},
            {"max_connections_per_address", server.max_connections_per_address},
            {"max_workers", server.max_workers},
            {"header_timeout_s", server.header_timeout.count()},
            {"request_timeout_s", server.request_timeout.count()},
            {"keep_alive_timeout_s", server.keep_alive_timeout.count()},
            {"shutdown_grace_s", server.shutdown_grace.count()},
            {"max_header", server.max_header_bytes},
            {"max_json_body", server.max_json_body_bytes},
            {"min_body_rate", server.min_body_rate},
            {"trusted_proxies", server.trusted_proxies}}},
          {"engine",
           {{"python", engine.python},
            {"runtime_dir", engine.runtime_dir},
            {"cgroup_parent", engine.cgroup_parent},
            {"max_sessions", engine.max_sessions},
            {"max_sessions_per_project", engine.SessionShare()},
            {"admission_wait_ms", engine.admission_wait.count()},
            {"sessions_cpu_weight", engine.sessions_cpu_weight},
            {"max_record_outputs", engine.max_record_outputs_bytes},
            {"interrupt_grace_ms", engine.interrupt_grace.count()},
            {"allow_weaker_sandbox", engine.allow_weaker_sandbox}}},
          {"pools", pools},
          {"retention",
           {{"input_files_days", config.retention.input_files.count() / 86400},
            {"output_files_days", config.retention.output_files.count() / 86400},
            {"sweep_interval_s", config.retention.sweep_interval.count()}}},
          {"prices",
           {{"currency", p.currency},
            {"price_per_session", p.per_session},
            {"price_per_cpu_hour", p.per_cpu_hour},
            {"price_per_gb_month", p.per_gb_month},
            {"price_per_gb_transferred", p.per_gb_transferred}}},
          {"usage", {{"expected_session_s", config.usage.expected_session.count()}}},
          // Never the URL: it may hold a password.
          {"store", {{"backend", config.store.postgresql() ? "postgresql" : "sqlite"}}},
          {"diagnostic_settings", diagnostic_settings}};
}

namespace {

void Flatten(const Json& json, const std::string& path, std::map<std::string, Json>* out) {
  if (json.is_object() && !json.empty()) {
    for (const auto& [key, value] : json.items()) {
      Flatten(value, path.empty() ? key : path + "." + key, out);
    }
  } else if (json.is_array() && !json.empty() && (json[0].is_object() || json[0].is_array())) {
    for (size_t i = 0; i < json.size(); ++i) {
      Flatten(json[i], path + "[" + std::to_string(i) + "]", out);
    }
  } else {
    (*out)[path] = json;  // Scalars, and lists of scalars (preload) as one value.
  }
}

}  // namespace

std::map<std::string, Json> FlattenJson(const Json& json) {
  std::map<std::string, Json> out;
  Flatten(json, "", &out);
  return out;
}

std::vector<ConfigChange> DiffConfigJson(const Json& before, const Json& after) {
  std::map<std::string, Json> old_leaves = FlattenJson(before);
  std::map<std::string, Json> new_leaves = FlattenJson(after);
  std::map<std::string, ConfigChange> changes;
  for (const auto& [key, value] : old_leaves) {
    auto it = new_leaves.find(key);
    if (it == new_leaves.end()) {
      changes[key] = {key, value, nullptr};
    } else if (it->second != value) {
      changes[key] = {key, value, it->second};
    }
  }
  for (const auto& [key, value] : new_leaves) {
    if (!old_leaves.count(key)) changes[key] = {key, nullptr, value};
  }
  std::vector<ConfigChange> out;
  for (auto& [key, change] : changes) out.push_back(std::move(change));
  return out;
}

}  // namespace pycell
