// `pycell serve`: the HTTP service. Configuration from a TOML file (optional), then flags; all
// state under the data dir. SIGTERM or SIGINT stops it gracefully: no new connections, requests
// in flight get shutdown_grace to finish, then running cells are interrupted, and every session
// is ended with its reason recorded.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/config_file.h"
#include "common/logging.h"
#include "kernel/openapi_source.h"
#include "sandbox/mount_ns.h"
#include "server/aca_routes.h"
#include "server/http_server.h"
#include "server/mcp_routes.h"
#include "server/rest_v1.h"
#include "service/service.h"

namespace pycell::cli {

namespace {

struct ServeFlags {
  std::string config_path;
  std::string listen;
  std::string data_dir;
  std::string runtime_dir;
  bool allow_weaker_sandbox = false;
  int ready_sessions = -1;
  std::string metrics_listen;
};

// The configuration file (when given), then the flags over it, validated: at the start, and
// again on every SIGHUP.
Result<ServiceConfig> BuildConfig(const ServeFlags& flags) {
  ServiceConfig config;
  if (!flags.config_path.empty()) {
    ASSIGN_OR_RETURN(config, LoadConfigFile(flags.config_path));
  }
  if (!flags.listen.empty()) config.server.listen = flags.listen;
  if (!flags.data_dir.empty()) config.server.data_dir = flags.data_dir;
  if (!flags.runtime_dir.empty()) config.engine.runtime_dir = flags.runtime_dir;
  if (!flags.metrics_listen.empty()) config.server.metrics_listen = flags.metrics_listen;
  if (flags.allow_weaker_sandbox) config.engine.allow_weaker_sandbox = true;
  if (flags.ready_sessions >= 0) {
    for (auto& pool : config.pools)
      pool.ready_sessions = static_cast<uint32_t>(flags.ready_sessions);
  }
  std::string& data = config.server.data_dir;
  data = std::filesystem::absolute(data).lexically_normal().string();
  if (!data.empty() && data.back() == '/') data.pop_back();
  config.engine.state_dir = data;
  RETURN_IF_ERROR(config.Validate());
  return config;
}

// SIGHUP: reads the configuration again and applies what can change live (Service::Reload).
void Reload(const ServeFlags& flags, service::Service* service) {
  if (flags.config_path.empty()) {
    LOG_WARN("SIGHUP: pycell serve was started without --config; nothing to reload");
    return;
  }
  auto config = BuildConfig(flags);
  if (!config.ok()) {
    LOG_ERROR("SIGHUP: {} is invalid, the configuration in force is kept: {}", flags.config_path,
              config.status().message());
    return;
  }
  auto result = service->Reload(auth::Caller::System(), *config);
  if (!result.ok()) {
    LOG_ERROR("SIGHUP: the configuration in force is kept: {}", result.status().message());
  }
}

}  // namespace

std::function<int()> RegisterServe(CLI::App& app) {
  using Flags = ServeFlags;
  auto flags = std::make_shared<Flags>();
  CLI::App* serve = app.add_subcommand("serve", "run the HTTP service (REST API /v1)");
  serve->add_option("--config", flags->config_path,
                    "TOML configuration file (docs/configuration.md)");
  serve->add_option("--listen", flags->listen, "host:port to listen on (default 127.0.0.1:8080)");
  serve->add_option("--data-dir", flags->data_dir,
                    "folder for the database and file contents (default ./var)");
  serve->add_option("--runtime-dir", flags->runtime_dir, "folder for live sessions' mount points");
  serve->add_option("--ready-sessions", flags->ready_sessions, "warm sessions per pool");
  serve->add_option("--metrics-listen", flags->metrics_listen,
                    "loopback host:port serving only /metrics, without keys (port 0: any free)");
  serve->add_flag("--allow-weaker-sandbox", flags->allow_weaker_sandbox,
                  "run even where a protection is missing (see pycell doctor)");
  return [flags]() -> int {
    auto loaded = BuildConfig(*flags);
    if (!loaded.ok()) {
      std::cerr << "pycell serve: invalid configuration: " << loaded.status().message() << "\n";
      return 1;
    }
    ServiceConfig config = std::move(*loaded);
    // The data dir holds every record and file: only its owner may enter it.
    std::error_code ec;
    if (std::filesystem::create_directories(config.server.data_dir, ec)) {
      std::filesystem::permissions(config.server.data_dir, std::filesystem::perms::owner_all, ec);
    }

    // Sessions' mounts stay in this process's own mount namespace; signals are taken by sigwait
    // below, so every thread started from here on has them blocked. Both before any thread.
    if (::geteuid() == 0) {
      Status s = sandbox::mount_ns::PrivatizeHostMounts();
      if (!s.ok()) {
        std::cerr << "pycell serve: " << s.ToString() << "\n";
        return 1;
      }
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto service = service::Service::Open(config);
    if (!service.ok()) {
      std::cerr << "pycell serve: " << service.status().message() << "\n";
      return 1;
    }
    static const std::string openapi(kOpenApiSource);
    server::Router router;
    server::AddRestV1Routes(&router, service->get(), &openapi);
    server::AddAcaRoutes(&router, service->get(), config.server.aca_prefix);
    server::AddMcpRoutes(&router, service->get());
    server::HttpServerOptions options;
    options.config = config.server;
    options.max_streamed_body_bytes = (*service)->max_upload_bytes();
    service::Service* svc = service->get();
    options.on_request = [svc](const server::RequestLog& r) {
      svc->metrics().HttpRequest(r.method, r.route, r.status, r.seconds);
      svc->Emit(diagnostics::kRequests, [&r] {
        service::Json event = {{"event", "http.request"},    {"method", r.method},
                               {"route", r.route},           {"target", r.target},
                               {"status", r.status},         {"seconds", r.seconds},
                               {"request_id", r.request_id}, {"peer", r.peer},
                               {"principal", r.principal},   {"project_id", r.project_id}};
        return event;
      });
    };
    auto server = server::HttpServer::Start(options, &router);
    if (!server.ok()) {
      std::cerr << "pycell serve: " << server.status().message() << "\n";
      return 1;
    }
    // The scrape-only listener: /metrics and nothing else, no keys, loopback only.
    server::Router metrics_router;
    std::unique_ptr<server::HttpServer> metrics_server;
    if (!config.server.metrics_listen.empty()) {
      server::AddMetricsRoute(&metrics_router, service->get(), auth::Permission::kPublic);
      server::HttpServerOptions metrics_options;
      metrics_options.config = config.server;
      metrics_options.config.listen = config.server.metrics_listen;
      metrics_options.config.max_connections = 16;
      auto started = server::HttpServer::Start(metrics_options, &metrics_router);
      if (!started.ok()) {
        std::cerr << "pycell serve: metrics listener: " << started.status().message() << "\n";
        return 1;
      }
      metrics_server = std::move(*started);
      std::cout << "pycell serve: metrics on http://" << metrics_server->host() << ":"
                << metrics_server->port() << "/metrics" << std::endl;
    }
    // The one line scripts wait for (tests read the port from it).
    std::cout << "pycell serve: listening on http://" << (*server)->host() << ":"
              << (*server)->port() << " (data " << config.server.data_dir << ")" << std::endl;

    int signal_number = 0;
    while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
      Reload(*flags, service->get());
    }
    LOG_WARN("signal {}: stopping; requests in flight have {} s", signal_number,
             config.server.shutdown_grace.count());
    if (metrics_server) metrics_server->StopAccepting();
    (*server)->StopAccepting();
    if (!(*server)->WaitIdle(config.server.shutdown_grace)) {
      LOG_WARN("{} requests still running: interrupting their cells", (*server)->in_flight());
      (*service)->InterruptAll();
      (*server)->WaitIdle(std::chrono::seconds(5));
    }
    (*service)->Shutdown();
    (*server)->Join();
    server->reset();
    metrics_server.reset();
    service->reset();
    std::cout << "pycell serve: stopped" << std::endl;
    return 0;
  };
}

}  // namespace pycell::cli
