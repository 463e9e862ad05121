// Row codecs: each record type the store keeps, described once as its table and the columns the
// store writes and reads there (the column's SQL name and the struct member that holds it). From
// that one description come the column list and placeholders of the SQL text, the binding of a row
// to a statement's parameters and the reading of a row from a statement's result. Adding a column
// is the struct's member, a migration that adds it to the table, and one line in sqlite_rows.cc.
//
// Internal to src/store: it speaks Statement (sqlite_db.h); the PostgreSQL store reuses the
// column lists and binds and reads through columns() (pg_store.cc). The order of a codec's columns
// is the order of the table's columns in every statement built from it; changing it changes the SQL
// text (sqlite_rows_test.cc pins it).
//
// Thread-safety: the codecs are constants, initialised at compile time; use them from any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "audit/audit_event.h"
#include "common/status.h"
#include "store/metadata_store.h"
#include "store/sqlite_db.h"

namespace pycell::store {

// One column of Row's table: its name in SQL and the member of Row that holds it. A bool is
// stored as the integer 0 or 1; a NULL reads as "", 0 or false.
template <typename Row>
struct Column {
  std::string_view name;
  std::variant<std::string Row::*, int64_t Row::*, double Row::*, bool Row::*> member;
};

template <typename Row>
class RowCodec {
 public:
  constexpr RowCodec(std::string_view table, std::span<const Column<Row>> columns)
      : table_(table), columns_(columns) {}

  std::string_view table() const { return table_; }
  int size() const { return static_cast<int>(columns_.size()); }
  // The columns themselves, for a backend that binds and reads rows its own way (pg_store.cc).
  std::span<const Column<Row>> columns() const { return columns_; }

  // "id, pool, status, …": every column, in order, for SELECT and INSERT.
  std::string ColumnList() const;
  // "?, ?, ?, …": one parameter per column, for INSERT … VALUES (…).
  std::string Placeholders() const;
  // "pool = excluded.pool, …": every column but those named in `kept`, in order, for
  // INSERT … ON CONFLICT … DO UPDATE SET.
  std::string ExcludedAssignments(std::initializer_list<std::string_view> kept) const;
  // "INSERT INTO <table> (<columns>) VALUES (?, …)"; with `verb` "INSERT OR REPLACE", a row with
  // the same key is replaced.
  std::string InsertSql(std::string_view verb = "INSERT") const;

  // Binds the members of `row` to parameters 1..size() of `statement`, in column order.
  void Bind(Statement& statement, const Row& row) const;
  // The current row of `statement`, whose result columns 0..size()-1 are ColumnList().
  Row Read(const Statement& statement) const;
  // Steps `statement` to its end, reading every row.
  Result<std::vector<Row>> ReadAll(Statement& statement) const;

 private:
  std::string_view table_;
  std::span<const Column<Row>> columns_;
};

// The store's tables (sqlite_rows.cc lists their columns).
extern const RowCodec<ProjectRow> kProjectCodec;         // projects
extern const RowCodec<KeyRow> kKeyCodec;                 // api_keys
extern const RowCodec<audit::AuditEvent> kAuditCodec;    // audit_events
extern const RowCodec<UsageEvent> kUsageCodec;           // usage_events
extern const RowCodec<SessionRow> kSessionCodec;         // sessions
extern const RowCodec<ExecutionRow> kExecutionCodec;     // executions
extern const RowCodec<FileRow> kFileCodec;               // files
extern const RowCodec<SessionInput> kSessionInputCodec;  // session_inputs

}  // namespace pycell::store
