#include "store/pg_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace pycell::store::store_test {
namespace {

namespace fs = std::filesystem;

// Guards the one server; the Environment's TearDown and Get() take it.
std::mutex server_mu;
PgTestServer* server = nullptr;  // Started and running, or null.
Status start_status;             // Why the first start failed: later tests fail with it too.

// The text a shell command printed (stdout), trimmed; "" when it failed.
std::string CommandOutput(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  if (::pclose(pipe) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

bool HasServerBinaries(const std::string& bindir) {
  return !bindir.empty() && ::access((bindir + "/initdb").c_str(), X_OK) == 0 &&
         ::access((bindir + "/pg_ctl").c_str(), X_OK) == 0;
}

// Where initdb and pg_ctl are (see the header), or "".
std::string FindBindir() {
  std::vector<std::string> candidates;
  if (const char* env = ::getenv("PYCELL_PG_BINDIR"); env != nullptr) candidates.push_back(env);
  candidates.push_back(CommandOutput("pg_config --bindir"));
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", error)) {
    candidates.push_back((entry.path() / "bin").string());
  }
  const std::string in_path = CommandOutput("command -v initdb");
  if (!in_path.empty()) candidates.push_back(fs::path(in_path).parent_path().string());
  for (const std::string& candidate : candidates) {
    if (HasServerBinaries(candidate)) return candidate;
  }
  return "";
}

// A loopback port nobody listens on now (the kernel's pick for port 0).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > 3000 ? all.substr(all.size() - 3000) : all;
}

// Runs one SQL statement on `url` with libpq; the error text, or "" when it worked.
std::string RunSql(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) != PGRES_COMMAND_OK) error = PQresultErrorMessage(result);
    PQclear(result);
  }
  PQfinish(conn);
  return error;
}

class PgServerEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { PgTestServer::StopIfStarted(); }
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgServerEnvironment);

}  // namespace

Result<PgTestServer*> PgTestServer::Get() {
  std::lock_guard lock(server_mu);
  if (server != nullptr) return server;
  if (!start_status.ok()) return start_status;
  auto* started = new PgTestServer();
  start_status = started->Start();
  if (!start_status.ok()) {
    delete started;
    return start_status;
  }
  server = started;
  return server;
}

void PgTestServer::StopIfStarted() {
  std::lock_guard lock(server_mu);
  if (server == nullptr) return;
  server->Stop();
  delete server;
  server = nullptr;
}

std::string PgTestServer::Url(const std::string& database) const {
  return "postgresql://pycell@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

Result<std::string> PgTestServer::CreateDatabase() {
  static std::atomic<int> next{0};
  // The name is ours (no outside text), so it may be spliced into the DDL, which takes no
  // parameters.
  const std::string name =
      "store_test_" + std::to_string(::getpid()) + "_" + std::to_string(++next);
  const std::string error = RunSql(AdminUrl(), "CREATE DATABASE " + name);
  if (!error.empty()) return Status::Internal("CREATE DATABASE " + name + ": " + error);
  return Url(name);
}

Status PgTestServer::Start() {
  bindir_ = FindBindir();
  if (bindir_.empty()) {
    return Status::FailedPrecondition(
        "the PostgreSQL tests need a PostgreSQL server's binaries (initdb, pg_ctl) and found none "
        "in $PYCELL_PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin or $PATH: install "
        "Debian's `postgresql` package (scripts/install-deps.sh does) or set PYCELL_PG_BINDIR");
  }
  std::string templ = (fs::temp_directory_path() / "pycell-pg-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) return Status::FromErrno("mkdtemp " + templ);
  dir_ = templ;
  if (::geteuid() == 0) {
    // PostgreSQL refuses to run as root.
    const char* user = ::getpwnam("postgres") != nullptr ? "postgres" : "nobody";
    const passwd* entry = ::getpwnam(user);
    if (entry == nullptr) return Status::FailedPrecondition("no `postgres` or `nobody` user");
    if (::chown(dir_.c_str(), entry->pw_uid, entry->pw_gid) != 0) {
      return Status::FromErrno("chown " + dir_ + " to " + user);
    }
    run_as_ = std::string("runuser -u ") + user + " -- ";
  }
  const std::string log = dir_ + "/initdb.log";
  const std::string initdb = run_as_ + bindir_ + "/initdb -D " + dir_ +
                             "/data -U pycell --auth=trust -E UTF8 --no-sync >" + log + " 2>&1";
  if (std::system(initdb.c_str()) != 0) {
    return Status::Internal("initdb failed (" + initdb + "):\n" + Tail(log));
  }
  // The port is free when asked but could be taken before the server binds it: try a few.
  std::string server_log;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreePort();
    server_log = dir_ + "/server-" + std::to_string(attempt) + ".log";
    // Durability settings off: the data is thrown away, and the tests run faster.
    const std::string start =
        run_as_ + bindir_ + "/pg_ctl -D " + dir_ + "/data -l " + server_log +
        " -w -t 60 -o \"-c listen_addresses=127.0.0.1 -c port=" + std::to_string(port_) +
        " -c unix_socket_directories=" + dir_ +
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off\"" +
        " start >/dev/null 2>&1";
    if (std::system(start.c_str()) == 0) break;
    port_ = 0;
  }
  if (port_ == 0) return Status::Internal("pg_ctl start failed:\n" + Tail(server_log));

  // The watchdog: a child that waits for this program's end (the pipe's write end closes, however
  // the program ends) and then stops the server, so a crashed test leaves no server behind.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe2");
  const std::string stop_command = run_as_ + bindir_ + "/pg_ctl -D " + dir_ +
                                   "/data -m immediate -w stop >/dev/null 2>&1; rm -rf " + dir_;
  const pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    // Only async-signal-safe calls until exec. Not holding the program's output open: a test
    // runner reading it would wait for the watchdog too.
    ::close(fds[1]);
    const int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
    ::dup2(null_fd, STDERR_FILENO);
    char byte;
    while (::read(fds[0], &byte, 1) != 0) {
    }
    ::execl("/bin/sh", "sh", "-c", stop_command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  watchdog_fd_ = fds[1];
  return Status::Ok();
}

void PgTestServer::Stop() {
  const std::string stop =
      run_as_ + bindir_ + "/pg_ctl -D " + dir_ + "/data -m immediate -w stop >/dev/null 2>&1";
  if (std::system(stop.c_str()) != 0) ADD_FAILURE() << "pg_ctl stop failed: " << stop;
  std::error_code error;
  fs::remove_all(dir_, error);
  // The watchdog wakes, finds nothing to stop, and exits.
  if (watchdog_fd_ >= 0) ::close(watchdog_fd_);
}

}  // namespace pycell::store::store_test
