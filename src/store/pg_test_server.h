// PgTestServer: a real PostgreSQL server for the store's tests, started by the test program itself
// — initdb into a temporary folder, pg_ctl start on a free loopback port (and a Unix socket in
// that folder only), trust authentication for the user "pycell" — once per test program, on first
// use, and stopped when the program ends (a GoogleTest Environment, and a watchdog process that
// stops it if the program dies first). Each test gets its own database (CreateDatabase).
//
// As root, the server runs as the `postgres` system user (or `nobody`) — PostgreSQL refuses to
// run as root — with the folder chowned to it. The binaries are found in $PYCELL_PG_BINDIR,
// `pg_config --bindir`, /usr/lib/postgresql/*/bin or $PATH; when they are missing, Get() says so
// and the tests that need them fail (CI installs them: scripts/install-deps.sh).
//
// Test-only. Thread-safety: Get() and CreateDatabase() may be called from any thread.
#pragma once

#include <string>

#include "common/status.h"

namespace pycell::store::store_test {

class PgTestServer {
 public:
  // The program's server, started now if it is not running yet. FailedPrecondition naming what
  // is missing when PostgreSQL is not installed; Internal with the server's log when it would not
  // start.
  static Result<PgTestServer*> Get();

  // Makes a new, empty database and returns its URL (postgresql://pycell@127.0.0.1:PORT/NAME).
  Result<std::string> CreateDatabase();
  // The URL of the maintenance database "postgres".
  std::string AdminUrl() const { return Url("postgres"); }
  std::string Url(const std::string& database) const;
  int port() const { return port_; }

  // Stops the server if Get() started one (the Environment calls it at the end).
  static void StopIfStarted();

 private:
  PgTestServer() = default;
  Status Start();
  void Stop();

  std::string bindir_;
  std::string dir_;     // The temporary folder: data/, the socket, the log.
  std::string run_as_;  // "runuser -u USER -- " when root, else "".
  int port_ = 0;
  int watchdog_fd_ = -1;  // Closing it (or dying) tells the watchdog to stop the server.
};

}  // namespace pycell::store::store_test
