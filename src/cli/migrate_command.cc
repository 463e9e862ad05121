// pycell migrate --store URL (docs/postgresql.md): brings a PostgreSQL metadata store to this
// binary's schema version. Run once per release — on Kubernetes as a Job before the new routers
// and nodes start — since pycell never migrates a PostgreSQL store when it opens one. An SQLite
// store needs no command: it migrates itself when opened.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "store/metadata_store.h"

namespace pycell::cli {

std::function<int()> RegisterMigrateCommand(CLI::App& app) {
  auto url = std::make_shared<std::string>();
  CLI::App* command = app.add_subcommand(
      "migrate", "bring a PostgreSQL metadata store to this pycell's schema version");
  command
      ->add_option("--store", *url,
                   "postgresql://user@host:port/database (the password is best kept out of the "
                   "command line: libpq reads PGPASSWORD and ~/.pgpass)")
      ->required();
  return [url, command]() -> int {
    if (!command->parsed()) return -1;
    if (!store::IsPostgresUrl(*url)) {
      std::cerr << "pycell migrate: --store must be a postgresql:// or postgres:// URL (an SQLite "
                   "store migrates itself when pycell opens it)\n";
      return kExitUsage;
    }
    Result<int> version = store::MigratePostgres(*url);
    if (!version.ok()) {
      std::cerr << "pycell migrate: " << version.status().ToString() << "\n";
      return 1;
    }
    std::cout << "metadata store at schema version " << *version << "\n";
    return 0;
  };
}

}  // namespace pycell::cli
