// The one policy schema: limits and pool settings, with every default in exactly one place (here).
// Filled from flags today, and from the configuration file and request bodies later; whatever
// fills it calls Validate() before use.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace pycell {

// Limits of one session (a pool's defaults; a request may ask for less, never more than the
// pool's maximums).
struct SessionLimits {
  uint64_t memory_bytes = 2ull << 30;  // 2 GiB
  uint32_t max_pids = 256;
  double cpus = 1.0;
  uint64_t data_bytes = 1ull << 30;        // /mnt/data quota (tmpfs: counts as memory)
  uint64_t tmp_bytes = 256ull << 20;       // /tmp quota
  uint64_t max_file_bytes = 512ull << 20;  // one file, as Foundry agents
  uint32_t max_open_files = 1024;
  uint64_t max_output_bytes = 1ull << 20;      // per stream per execution, as ACA
  std::chrono::seconds execution_timeout{60};  // default for a cell
  std::chrono::seconds max_execution_timeout{600};
  std::chrono::seconds active_lifetime{3600};  // as Foundry's code interpreter
  std::chrono::seconds idle_timeout{1800};

  Status Validate() const;
};

struct PoolConfig {
  std::string name = "default";
  std::vector<std::string> preload = {"numpy", "pandas", "matplotlib", "IPython"};
  uint32_t ready_sessions = 2;  // Warm, contained sessions waiting to be handed out.
  SessionLimits limits;
};

struct EngineConfig {
  std::string python = "/usr/bin/python3";
  std::string state_dir = "/var/lib/pycell";  // Caches (and, later, the database and files).
  // Sessions' live folders (mount points of their root, /mnt/data and /tmp). Sessions' unprivileged
  // uids must be able to reach it, so it is kept apart from the state dir (which may sit under a
  // private folder): every parent needs o+x, and pycell creates it 0711.
  std::string runtime_dir = "/run/pycell";
  std::string cgroup_parent = "pycell";  // Under each hierarchy's root.
  uint32_t max_sessions = 64;
  // The most sessions one project may hold in the pool at once, so that one tenant cannot take
  // every slot. 0: three quarters of max_sessions (at least 1). See SessionShare().
  uint32_t max_sessions_per_project = 0;
  // When the pool is full, how long a request for a session waits for a slot before its 429.
  // Waiting requests are admitted fairly: a freed slot goes to the waiting project that holds
  // the fewest sessions (the longest waiting among equals). 0: refuse at once.
  std::chrono::milliseconds admission_wait{5000};
  // The CPU weight of all sessions together (the cgroup_parent group) against its siblings, in
  // cgroup v2's units (1-10000, 100 the default): with the server and zygote in a sibling group
  // of the same weight, sessions spinning every core leave the control plane half the CPU.
  uint32_t sessions_cpu_weight = 100;
  // The most bytes of outputs (displays and results, as JSON) an execution's stored record holds
  // inline. Past it, all the cell's outputs are stored as an output file counted against the
  // project's storage quota, and the record keeps those that fit and names the file.
  uint64_t max_record_outputs_bytes = 1 << 20;
  std::chrono::milliseconds interrupt_grace{3000};
  // Run even when a protection the policy expects is missing (e.g. not root). Off: refuse.
  bool allow_weaker_sandbox = false;
  PoolConfig pool;

  // max_sessions_per_project, or its default when 0.
  uint32_t SessionShare() const {
    if (max_sessions_per_project > 0) return max_sessions_per_project;
    uint32_t three_quarters = static_cast<uint32_t>(uint64_t{max_sessions} * 3 / 4);
    return three_quarters > 0 ? three_quarters : 1;
  }

  Status Validate() const;
};

// The HTTP server (`pycell serve`).
struct ServerConfig {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one.
  std::string data_dir = "./var";         // Database, file contents and engine caches.
  // Open connections, idle ones included (they cost no thread: a socket and a few KB). Past it,
  // a new connection gets 503 and is closed.
  uint32_t max_connections = 16384;
  // Open connections from one client address (an IPv6 client: its /64); past it, that client's
  // new connection gets 503 and is closed. Connections from server.trusted_proxies are not
  // counted per address.
  uint32_t max_connections_per_address = 64;
  // Threads running request handlers at once (a request holds one from its head's arrival to
  // its response's end: a long cell or an event stream holds it throughout). Past it, requests
  // wait for a free one.
  uint32_t max_workers = 512;
  std::chrono::seconds header_timeout{10};      // A request's whole head, from its first byte
                                                // (from the accept, on a new connection).
  std::chrono::seconds request_timeout{60};     // No progress reading or writing for this long.
  std::chrono::seconds keep_alive_timeout{75};  // Idle connection between requests.
  // A request body slower than this (bytes/s, measured over 10 s of waiting for it) is cut off
  // (408). 0: no minimum.
  uint64_t min_body_rate = 1024;
  std::chrono::seconds shutdown_grace{30};  // SIGTERM: in-flight requests get this long.
  uint64_t max_header_bytes = 16 << 10;
  uint64_t max_json_body_bytes = 8 << 20;  // Request bodies other than uploads (code, JSON).
  // A second listener serving only GET /metrics, without keys, for a local scraper; loopback
  // addresses only. "" = none (/metrics is then served on `listen`, to keys that may read it).
  std::string metrics_listen;
  // Where the Azure Container Apps dynamic sessions data plane is served (docs/aca.md): "" or a
  // path such as "/aca" (no trailing slash); clients use http://host:port/aca as their pool
  // management endpoint.
  std::string aca_prefix = "/aca";
  // Reverse proxies whose X-Forwarded-For header names the client (CIDR ranges such as
  // "10.0.0.0/8", or single addresses). From any other peer the header is ignored: the TCP peer
  // is the client, for authentication's failure lockout, the audit log and the access log.
  std::vector<std::string> trusted_proxies;

  Status Validate() const;
};

// How long stored files are kept, by purpose (0: forever).
struct RetentionConfig {
  std::chrono::seconds input_files{30 * 24 * 3600};
  std::chrono::seconds output_files{30 * 24 * 3600};
  std::chrono::seconds sweep_interval{60};
};

// What usage costs (docs/access.md). All 0 by default: pycell meters, the operator prices.
struct PriceConfig {
  std::string currency = "USD";
  double per_session = 0;  // Each session, from allocation to end (like ACA sessions).
  double per_cpu_hour = 0;
  double per_gb_month = 0;        // Storage held: 10^9 bytes for 730 hours.
  double per_gb_transferred = 0;  // Uploads and downloads: 10^9 bytes.
};

struct UsageConfig {
  // Sessions running longer than this are flagged (a warning in the log, and the session object
  // says over_expected_duration). 0: never.
  std::chrono::seconds expected_session{1800};
};

// What diagnostic events are about, and where a diagnostic setting can send them
// (docs/configuration.md, "Diagnostic settings").
inline constexpr std::array<std::string_view, 5> kDiagnosticCategories = {
    "audit", "executions", "sessions", "requests", "security"};
inline constexpr std::array<std::string_view, 4> kDiagnosticSinks = {"file", "stdout", "syslog",
                                                                     "webhook"};
inline constexpr std::array<std::string_view, 13> kSyslogFacilities = {
    "user",   "daemon", "auth",   "authpriv", "syslog", "local0", "local1",
    "local2", "local3", "local4", "local5",   "local6", "local7"};

// One `[[diagnostic_settings]]` table: these categories go to this sink (src/diagnostics). Keys
// of other sinks are not allowed in the file; here they simply keep their defaults.
struct DiagnosticSetting {
  std::string name;                     // Unique; how `diagnostic-settings list` names it.
  std::vector<std::string> categories;  // At least one, from kDiagnosticCategories.
  std::string sink;                     // One of kDiagnosticSinks; no default.
  // Every sink: events wait in a queue of their own (full: new events are dropped and counted);
  // a failed write is retried max_retries times, waiting backoff, then twice as long, ….
  uint32_t queue_max = 10000;
  uint32_t max_retries = 5;
  std::chrono::milliseconds backoff{500};
  // file: JSON lines at `path`; past max_bytes it is renamed path.1 (path.1 to path.2, …) and
  // a new one started; `keep` renamed files are kept (0: none, the full file is deleted).
  std::string path;
  uint64_t max_bytes = 64ull << 20;  // 64 MiB
  uint32_t keep = 5;
  // syslog: one JSON object per message, at priority info of `facility`, sent to the Unix
  // datagram socket `socket` (the local syslog daemon's; rsyslog and journald listen there).
  std::string facility = "user";
  std::string ident = "pycell";
  std::string socket = "/dev/log";
  // webhook: POST of a JSON array of up to batch_max events to `url`, sent when the batch is
  // full or its first event has waited flush_interval; a 2xx answer within `timeout` delivers.
  std::string url;
  uint32_t batch_max = 100;
  std::chrono::milliseconds flush_interval{1000};
  std::chrono::milliseconds timeout{5000};
};

// The semantic checks of a list of settings (known categories and sinks, a path or url where
// the sink needs one, unique names). InvalidArgument naming the key, as
// "diagnostic_settings[1].sink: …".
Status ValidateDiagnosticSettings(const std::vector<DiagnosticSetting>& settings);

// Everything `pycell serve` is configured with: file, then flags, then request bodies (within
// the pools' limits). engine.pool is unused here: each of `pools` gets its own engine.
// The metadata store: projects, keys, sessions, executions, files, usage and the audit chain.
struct StoreConfig {
  // "" = SQLite at <server.data_dir>/pycell.db: one machine's store, made and migrated at start.
  // "postgresql://user@host:port/database?sslmode=…" = a PostgreSQL many pycell processes share,
  // whose schema `pycell migrate --store URL` made (docs/postgresql.md). The password is best
  // left out of the URL and given as libpq's PGPASSWORD (or a ~/.pgpass); the configuration's
  // views never show the URL, only the backend.
  std::string url;

  bool postgresql() const {
    return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  }
  Status Validate() const;
};

struct ServiceConfig {
  ServerConfig server;
  StoreConfig store;
  EngineConfig engine;
  std::vector<PoolConfig> pools = {PoolConfig{}};
  RetentionConfig retention;
  PriceConfig prices;
  UsageConfig usage;
  std::vector<DiagnosticSetting> diagnostic_settings;  // None by default.

  // The engine configuration of one pool.
  EngineConfig EngineFor(const PoolConfig& pool) const;
  Status Validate() const;
};

// "2g", "512m", "64k", "1024" -> bytes.
Result<uint64_t> ParseByteSize(const std::string& text);

}  // namespace pycell
