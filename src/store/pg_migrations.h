// The PostgreSQL schema: the same numbered migrations as migrations.h (version N here is the
// schema of version N there, so both backends report one version for one schema), written in
// PostgreSQL's own DDL. Applied only by MigratePostgres (metadata_store.h) — the scale-out runs
// `pycell migrate` once, as a Job, and nodes never migrate implicitly — and checked by
// OpenPostgresStore.
//
// Thread-safety: the functions take the connection; callers serialise its use.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "store/migrations.h"
#include "store/pg_db.h"

namespace pycell::store {

// Every PostgreSQL migration, in order: PostgresMigrations()[i].version == i + 1, and there are
// LatestSchemaVersion() of them.
std::span<const Migration> PostgresMigrations();

// The version the database is at; 0 when no migration was ever applied.
Result<int> PostgresSchemaVersion(PgConn& conn);

// Applies each pending migration in its own transaction, stamped `now_ms`, under a transaction
// advisory lock so that two migrators at once apply each migration once. InvalidArgument if the
// database is newer than this binary. Returns the version reached.
Result<int> ApplyPostgresMigrations(PgConn& conn, int64_t now_ms);

}  // namespace pycell::store
