#include "common/config_file.h"

#include <toml++/toml.h>

#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

namespace pycell {
namespace {

// Reads one table, remembering which keys were understood so the rest can be refused.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string where)
      : table_(table), where_(std::move(where)) {}

  std::string Key(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

  Status String(std::string_view key, std::string* out) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    auto value = node->value<std::string>();
    if (!value) return Status::InvalidArgument(Key(key) + ": expected a string");
    *out = *value;
    return Status::Ok();
  }

  template <typename Int>
  Status Integer(std::string_view key, Int* out, int64_t min, int64_t max) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    auto value = node->value_exact<int64_t>();
    if (!value) return Status::InvalidArgument(Key(key) + ": expected an integer");
    if (*value < min || *value > max) {
      return Status::InvalidArgument(Key(key) + ": " + std::to_string(*value) +
                                     " is out of range [" + std::to_string(min) + ", " +
                                     std::to_string(max) + "]");
    }
    *out = static_cast<Int>(*value);
    return Status::Ok();
  }

  Status Seconds(std::string_view key, std::chrono::seconds* out, int64_t min, int64_t max) {
    int64_t value = out->count();
    RETURN_IF_ERROR(Integer(key, &value, min, max));
    *out = std::chrono::seconds(value);
    return Status::Ok();
  }

  Status Milliseconds(std::string_view key, std::chrono::milliseconds* out, int64_t min,
                      int64_t max) {
    int64_t value = out->count();
    RETURN_IF_ERROR(Integer(key, &value, min, max));
    *out = std::chrono::milliseconds(value);
    return Status::Ok();
  }

  bool Has(std::string_view key) const { return table_.contains(key); }

  Status Double(std::string_view key, double* out) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    auto value = node->value<double>();  // Integers convert.
    if (!value) return Status::InvalidArgument(Key(key) + ": expected a number");
    *out = *value;
    return Status::Ok();
  }

  Status Bool(std::string_view key, bool* out) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    auto value = node->value<bool>();
    if (!value) return Status::InvalidArgument(Key(key) + ": expected true or false");
    *out = *value;
    return Status::Ok();
  }

  // A size: "512m", "2g", or a number of bytes.
  Status Bytes(std::string_view key, uint64_t* out) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    if (auto number = node->value_exact<int64_t>()) {
      if (*number < 0) return Status::InvalidArgument(Key(key) + ": must not be negative");
      *out = static_cast<uint64_t>(*number);
      return Status::Ok();
    }
    auto text = node->value<std::string>();
    if (!text) return Status::InvalidArgument(Key(key) + ": expected a size such as \"512m\"");
    auto bytes = ParseByteSize(*text);
    if (!bytes.ok()) return bytes.status().WithContext(Key(key));
    *out = *bytes;
    return Status::Ok();
  }

  Status Strings(std::string_view key, std::vector<std::string>* out) {
    const toml::node* node = Take(key);
    if (!node) return Status::Ok();
    const toml::array* array = node->as_array();
    if (!array) return Status::InvalidArgument(Key(key) + ": expected an array of strings");
    out->clear();
    for (const toml::node& item : *array) {
      auto value = item.value<std::string>();
      if (!value) return Status::InvalidArgument(Key(key) + ": expected an array of strings");
      out->push_back(*value);
    }
    return Status::Ok();
  }

  const toml::table* Table(std::string_view key, Status* error) {
    const toml::node* node = Take(key);
    if (!node) return nullptr;
    if (!node->is_table()) *error = Status::InvalidArgument(Key(key) + ": expected a table");
    return node->as_table();
  }

  const toml::array* Array(std::string_view key, Status* error) {
    const toml::node* node = Take(key);
    if (!node) return nullptr;
    if (!node->is_array())
      *error = Status::InvalidArgument(Key(key) + ": expected [[" + Key(key) + "]] tables");
    return node->as_array();
  }

  // Refuses keys nobody asked for (typos).
  Status Finish() const {
    for (const auto& [key, node] : table_) {
      if (!taken_.count(std::string(key.str()))) {
        return Status::InvalidArgument(Key(key.str()) +
                                       ": unknown key (see docs/configuration.md)");
      }
    }
    return Status::Ok();
  }

 private:
  const toml::node* Take(std::string_view key) {
    taken_.insert(std::string(key));
    return table_.get(key);
  }

  const toml::table& table_;
  std::string where_;
  std::set<std::string> taken_;
};

Status ReadLimits(const toml::table& table, const std::string& where, SessionLimits* limits) {
  TableReader r(table, where);
  RETURN_IF_ERROR(r.Bytes("memory", &limits->memory_bytes));
  RETURN_IF_ERROR(r.Integer("max_pids", &limits->max_pids, 1, 1 << 22));
  RETURN_IF_ERROR(r.Double("cpus", &limits->cpus));
  RETURN_IF_ERROR(r.Bytes("data", &limits->data_bytes));
  RETURN_IF_ERROR(r.Bytes("tmp", &limits->tmp_bytes));
  RETURN_IF_ERROR(r.Bytes("max_file", &limits->max_file_bytes));
  RETURN_IF_ERROR(r.Integer("max_open_files", &limits->max_open_files, 16, 1 << 20));
  RETURN_IF_ERROR(r.Bytes("max_output", &limits->max_output_bytes));
  RETURN_IF_ERROR(r.Seconds("execution_timeout_s", &limits->execution_timeout, 1, 86400));
  RETURN_IF_ERROR(r.Seconds("max_execution_timeout_s", &limits->max_execution_timeout, 1, 86400));
  RETURN_IF_ERROR(r.Seconds("active_lifetime_s", &limits->active_lifetime, 1, 30 * 86400));
  RETURN_IF_ERROR(r.Seconds("idle_timeout_s", &limits->idle_timeout, 1, 30 * 86400));
  return r.Finish();
}

Status ReadPool(const toml::table& table, const std::string& where, PoolConfig* pool) {
  TableReader r(table, where);
  RETURN_IF_ERROR(r.String("name", &pool->name));
  RETURN_IF_ERROR(r.Strings("preload", &pool->preload));
  RETURN_IF_ERROR(r.Integer("ready_sessions", &pool->ready_sessions, 0, 1024));
  Status error;
  if (const toml::table* limits = r.Table("limits", &error)) {
    RETURN_IF_ERROR(ReadLimits(*limits, where + ".limits", &pool->limits));
  }
  RETURN_IF_ERROR(error);
  return r.Finish();
}

// Keys only some sinks have, with the sink they belong to.
constexpr std::pair<std::string_view, std::string_view> kSinkKeys[] = {
    {"path", "file"},          {"max_bytes", "file"},    {"keep", "file"},
    {"facility", "syslog"},    {"ident", "syslog"},      {"socket", "syslog"},
    {"url", "webhook"},        {"batch_max", "webhook"}, {"flush_interval_ms", "webhook"},
    {"timeout_ms", "webhook"},
};

// Ranges here only keep the numbers in their types; ValidateDiagnosticSettings (config.cc) says
// what is sensible, for settings from anywhere.
Status ReadDiagnosticSetting(const toml::table& table, const std::string& where,
                             DiagnosticSetting* setting) {
  TableReader r(table, where);
  constexpr int64_t kU32 = UINT32_MAX;
  RETURN_IF_ERROR(r.String("name", &setting->name));
  RETURN_IF_ERROR(r.Strings("categories", &setting->categories));
  RETURN_IF_ERROR(r.String("sink", &setting->sink));
  RETURN_IF_ERROR(r.Integer("queue_max", &setting->queue_max, 0, kU32));
  RETURN_IF_ERROR(r.Integer("max_retries", &setting->max_retries, 0, kU32));
  RETURN_IF_ERROR(r.Milliseconds("backoff_ms", &setting->backoff, 0, INT32_MAX));
  const std::string& sink = setting->sink;
  bool known = false;
  for (std::string_view name : kDiagnosticSinks) known = known || name == sink;
  // A key of another sink is a mistake worth naming; with an unknown sink every sink key is
  // read, so that Validate reports the sink itself.
  for (auto [key, owner] : kSinkKeys) {
    if (known && owner != sink && r.Has(key)) {
      return Status::InvalidArgument(r.Key(key) + ": only " + std::string(owner) +
                                     " sinks have it (this one is \"" + sink + "\")");
    }
  }
  if (!known || sink == "file") {
    RETURN_IF_ERROR(r.String("path", &setting->path));
    RETURN_IF_ERROR(r.Bytes("max_bytes", &setting->max_bytes));
    RETURN_IF_ERROR(r.Integer("keep", &setting->keep, 0, kU32));
  }
  if (!known || sink == "syslog") {
    RETURN_IF_ERROR(r.String("facility", &setting->facility));
    RETURN_IF_ERROR(r.String("ident", &setting->ident));
    RETURN_IF_ERROR(r.String("socket", &setting->socket));
  }
  if (!known || sink == "webhook") {
    RETURN_IF_ERROR(r.String("url", &setting->url));
    RETURN_IF_ERROR(r.Integer("batch_max", &setting->batch_max, 0, kU32));
    RETURN_IF_ERROR(r.Milliseconds("flush_interval_ms", &setting->flush_interval, 0, INT32_MAX));
    RETURN_IF_ERROR(r.Milliseconds("timeout_ms", &setting->timeout, 0, INT32_MAX));
  }
  return r.Finish();
}

Status ReadRoot(const toml::table& root, ServiceConfig* config) {
  TableReader r(root, "");
  Status error;
  if (const toml::table* server = r.Table("server", &error)) {
    TableReader s(*server, "server");
    ServerConfig& c = config->server;
    RETURN_IF_ERROR(s.String("listen", &c.listen));
    RETURN_IF_ERROR(s.String("data_dir", &c.data_dir));
    RETURN_IF_ERROR(s.Integer("max_connections", &c.max_connections, 1, 1 << 20));
    RETURN_IF_ERROR(
        s.Integer("max_connections_per_address", &c.max_connections_per_address, 1, 1 << 20));
    RETURN_IF_ERROR(s.Integer("max_workers", &c.max_workers, 1, 65536));
    RETURN_IF_ERROR(s.Seconds("header_timeout_s", &c.header_timeout, 1, 3600));
    RETURN_IF_ERROR(s.Seconds("request_timeout_s", &c.request_timeout, 1, 86400));
    RETURN_IF_ERROR(s.Seconds("keep_alive_timeout_s", &c.keep_alive_timeout, 1, 86400));
    RETURN_IF_ERROR(s.Bytes("min_body_rate", &c.min_body_rate));
    RETURN_IF_ERROR(s.Seconds("shutdown_grace_s", &c.shutdown_grace, 0, 86400));
    RETURN_IF_ERROR(s.Bytes("max_header", &c.max_header_bytes));
    RETURN_IF_ERROR(s.Bytes("max_json_body", &c.max_json_body_bytes));
    RETURN_IF_ERROR(s.String("metrics_listen", &c.metrics_listen));
    RETURN_IF_ERROR(s.String("aca_prefix", &c.aca_prefix));
    RETURN_IF_ERROR(s.Strings("trusted_proxies", &c.trusted_proxies));
    RETURN_IF_ERROR(s.Finish());
  }
  RETURN_IF_ERROR(error);
  if (const toml::table* engine = r.Table("engine", &error)) {
    TableReader e(*engine, "engine");
    EngineConfig& c = config->engine;
    RETURN_IF_ERROR(e.String("python", &c.python));
    RETURN_IF_ERROR(e.String("runtime_dir", &c.runtime_dir));
    RETURN_IF_ERROR(e.String("cgroup_parent", &c.cgroup_parent));
    RETURN_IF_ERROR(e.Integer("max_sessions", &c.max_sessions, 1, 100000));
    RETURN_IF_ERROR(e.Integer("max_sessions_per_project", &c.max_sessions_per_project, 0, 100000));
    int64_t wait_ms = c.admission_wait.count();
    RETURN_IF_ERROR(e.Integer("admission_wait_ms", &wait_ms, 0, 600000));
    c.admission_wait = std::chrono::milliseconds(wait_ms);
    RETURN_IF_ERROR(e.Integer("sessions_cpu_weight", &c.sessions_cpu_weight, 1, 10000));
    RETURN_IF_ERROR(e.Bytes("max_record_outputs", &c.max_record_outputs_bytes));
    int64_t grace_ms = c.interrupt_grace.count();
    RETURN_IF_ERROR(e.Integer("interrupt_grace_ms", &grace_ms, 0, 600000));
    c.interrupt_grace = std::chrono::milliseconds(grace_ms);
    RETURN_IF_ERROR(e.Bool("allow_weaker_sandbox", &c.allow_weaker_sandbox));
    RETURN_IF_ERROR(e.Finish());
  }
  RETURN_IF_ERROR(error);
  if (const toml::table* retention = r.Table("retention", &error)) {
    TableReader t(*retention, "retention");
    RetentionConfig& c = config->retention;
    int64_t input_days = c.input_files.count() / 86400,
            output_days = c.output_files.count() / 86400;
    RETURN_IF_ERROR(t.Integer("input_files_days", &input_days, 0, 36500));
    RETURN_IF_ERROR(t.Integer("output_files_days", &output_days, 0, 36500));
    c.input_files = std::chrono::seconds(input_days * 86400);
    c.output_files = std::chrono::seconds(output_days * 86400);
    RETURN_IF_ERROR(t.Seconds("sweep_interval_s", &c.sweep_interval, 1, 86400));
    RETURN_IF_ERROR(t.Finish());
  }
  RETURN_IF_ERROR(error);
  if (const toml::table* prices = r.Table("prices", &error)) {
    TableReader t(*prices, "prices");
    PriceConfig& c = config->prices;
    RETURN_IF_ERROR(t.String("currency", &c.currency));
    RETURN_IF_ERROR(t.Double("price_per_session", &c.per_session));
    RETURN_IF_ERROR(t.Double("price_per_cpu_hour", &c.per_cpu_hour));
    RETURN_IF_ERROR(t.Double("price_per_gb_month", &c.per_gb_month));
    RETURN_IF_ERROR(t.Double("price_per_gb_transferred", &c.per_gb_transferred));
    RETURN_IF_ERROR(t.Finish());
    for (auto [key, price] : {std::pair{"price_per_session", c.per_session},
                              {"price_per_cpu_hour", c.per_cpu_hour},
                              {"price_per_gb_month", c.per_gb_month},
                              {"price_per_gb_transferred", c.per_gb_transferred}}) {
      if (!(price >= 0 && price < 1e9)) {
        return Status::InvalidArgument(std::string("prices.") + key +
                                       ": must be a number from 0 up");
      }
    }
    if (c.currency.empty() || c.currency.size() > 8) {
      return Status::InvalidArgument("prices.currency: expected a currency code such as \"USD\"");
    }
  }
  RETURN_IF_ERROR(error);
  if (const toml::table* store = r.Table("store", &error)) {
    TableReader t(*store, "store");
    RETURN_IF_ERROR(t.String("url", &config->store.url));
    RETURN_IF_ERROR(t.Finish());
  }
  if (const toml::table* usage = r.Table("usage", &error)) {
    TableReader t(*usage, "usage");
    RETURN_IF_ERROR(
        t.Seconds("expected_session_s", &config->usage.expected_session, 0, 365 * 86400));
    RETURN_IF_ERROR(t.Finish());
  }
  RETURN_IF_ERROR(error);
  if (const toml::array* pools = r.Array("pools", &error)) {
    config->pools.clear();
    for (size_t i = 0; i < pools->size(); ++i) {
      std::string where = "pools[" + std::to_string(i) + "]";
      const toml::table* table = (*pools)[i].as_table();
      if (!table) return Status::InvalidArgument(where + ": expected a table ([[pools]])");
      PoolConfig pool;
      RETURN_IF_ERROR(ReadPool(*table, where, &pool));
      config->pools.push_back(std::move(pool));
    }
  }
  RETURN_IF_ERROR(error);
  if (const toml::array* settings = r.Array("diagnostic_settings", &error)) {
    config->diagnostic_settings.clear();
    for (size_t i = 0; i < settings->size(); ++i) {
      std::string where = "diagnostic_settings[" + std::to_string(i) + "]";
      const toml::table* table = (*settings)[i].as_table();
      if (!table) {
        return Status::InvalidArgument(where + ": expected a table ([[diagnostic_settings]])");
      }
      DiagnosticSetting setting;
      RETURN_IF_ERROR(ReadDiagnosticSetting(*table, where, &setting));
      config->diagnostic_settings.push_back(std::move(setting));
    }
  }
  RETURN_IF_ERROR(error);
  return r.Finish();
}

}  // namespace

Result<ServiceConfig> ParseConfig(std::string_view text, const std::string& source,
                                  ServiceConfig base) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status::InvalidArgument(source + ":" + std::to_string(where.line) + ":" +
                                   std::to_string(where.column) + ": " +
                                   std::string(e.description()));
  }
  RETURN_IF_ERROR(ReadRoot(root, &base).WithContext(source));
  RETURN_IF_ERROR(base.Validate().WithContext(source));
  return base;
}

Result<ServiceConfig> LoadConfigFile(const std::string& path, ServiceConfig base) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read configuration file " + path);
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path, std::move(base));
}

}  // namespace pycell
