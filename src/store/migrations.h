// Schema migrations: the metadata schema as an ordered list of numbered SQL scripts. Migration N
// takes a database from version N-1 to N; table schema_migrations records each one applied, so the
// database's version is the highest number in it (0 for a new file).
//
// A released migration is never edited: a change to the schema is a new migration at the end. The
// SQL stays portable (standard types, ON CONFLICT, no SQLite-only syntax) so the PostgreSQL backend
// can run the same scripts.
//
// Thread-safety: the functions take the connection; callers serialise its use.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "common/status.h"
#include "store/sqlite_db.h"

namespace pycell::store {

struct Migration {
  int version;
  std::string_view description;
  std::string_view sql;
};

// Every migration this binary knows, in order: Migrations()[i].version == i + 1.
std::span<const Migration> Migrations();

// The newest schema version this binary knows.
int LatestSchemaVersion();

// The version the database is at. REQUIRES: the schema_migrations table exists (ApplyMigrations
// creates it).
Result<int> CurrentSchemaVersion(SqliteDb& db);

// Creates schema_migrations if needed, then applies each pending migration in its own
// transaction, stamped `now_ms`. A migration another process applied meanwhile is skipped, so two
// processes may open a new database at once. InvalidArgument if the database is at a version newer
// than LatestSchemaVersion(): this binary does not know its tables and must not write to them.
Status ApplyMigrations(SqliteDb& db, int64_t now_ms);

}  // namespace pycell::store
