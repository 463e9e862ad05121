// SqliteDb, Statement and Transaction: a thin RAII layer over one sqlite3 connection, internal to
// src/store (the one header outside a .cc file allowed to name sqlite3 types, and only by forward
// declaration). It turns SQLite result codes into pycell Statuses in one place:
//
//   SQLITE_BUSY / SQLITE_LOCKED (after the busy timeout)  → Unavailable
//   SQLITE_CONSTRAINT (unique, foreign key, not null, …)  → InvalidArgument
//   anything else                                          → Internal, naming the statement
//
// Thread-safety: none. A SqliteDb and everything prepared on it must be used by one thread at a
// time; SqliteStore guards its connection with a mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace pycell::store {

// How long a statement waits for another connection's write lock before giving up (Unavailable).
inline constexpr int kBusyTimeoutMs = 5000;

class Statement;

class SqliteDb {
 public:
  // Opens (creating if needed) the database at `path` and sets the connection up: WAL journal,
  // synchronous=NORMAL (sqlite_db.cc says why not FULL), foreign keys on, busy timeout
  // kBusyTimeoutMs. Internal with a message that names `path` when the file cannot be opened or is
  // not an SQLite database.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs a script of one or more statements that return no rows we need. `label` names the script
  // in error messages (scripts are too long to quote).
  Status Exec(std::string_view sql, std::string_view label);
  // Prepares one statement, or hands out the cached one for the same text (reset and cleared
  // when the Statement goes away): parsing SQL was the largest cost of a small transaction.
  Result<Statement> Prepare(std::string_view sql);
  // Prepare(sql) and Run(): one statement, no rows (BEGIN, COMMIT, …).
  Status RunCached(std::string_view sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t Changes() const;
  // True while a transaction is open.
  bool InTransaction() const;
  const std::string& path() const { return path_; }

  // The Status for SQLite result code `rc`, with `what` (a statement or a label) and
  // sqlite3_errmsg in its message.
  Status StatusFor(int rc, std::string_view what) const;

 private:
  friend class Statement;
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // A cached statement came back: reset it for the next user.
  void Return(sqlite3_stmt* stmt);
  sqlite3* db_;
  std::string path_;
  // SQL text -> its prepared statement, and whether one is handed out now (a second user of the
  // same text at once gets a fresh, uncached statement). Used under the store's mutex, like the
  // connection itself.
  std::map<std::string, std::pair<sqlite3_stmt*, bool>, std::less<>> cache_;
};

// One prepared statement. Bind parameters (1-based, as SQLite counts them), then Step through the
// rows or Run it. A failed Bind is remembered and returned by the next Step or Run, so call sites
// can bind without checking each call.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);

  // true: a row is ready to read; false: the statement is done.
  Result<bool> Step();
  // Steps to the end, ignoring any rows.
  Status Run();

  // Columns of the current row, 0-based. NULL reads as "" / 0.
  std::string ColumnText(int column) const;
  int64_t ColumnInt64(int column) const;
  double ColumnDouble(int column) const;

 private:
  friend class SqliteDb;
  Statement(SqliteDb* db, sqlite3_stmt* stmt, bool cached)
      : db_(db), stmt_(stmt), cached_(cached) {}
  void Release();
  void NoteBindResult(int rc);
  // The statement's text, shortened for error messages.
  std::string Describe() const;

  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  bool cached_ = false;  // Owned by the db's cache: returned, not finalized.
  Status bind_status_;   // The first Bind failure, if any.
};

// An open transaction that rolls back unless committed, so an early `return status;` in the
// middle of a method leaves nothing half written.
class Transaction {
 public:
  // BEGIN IMMEDIATE: takes the write lock up front. A deferred transaction that later needs to
  // write can fail with SQLITE_BUSY at once, without waiting, when another connection wrote in
  // between; taking the lock first makes the busy timeout apply to every writer.
  static Result<Transaction> BeginImmediate(SqliteDb& db);
  // BEGIN (deferred): for reads of several statements that must see one snapshot.
  static Result<Transaction> BeginRead(SqliteDb& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status Commit();

 private:
  explicit Transaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // Null once committed or moved from.
};

}  // namespace pycell::store
