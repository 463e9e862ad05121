// PgConn, PgParams, PgResult and PgTransaction: a thin RAII layer over one libpq connection,
// internal to src/store (like sqlite_db.h, it names libpq's types by forward declaration only, and
// only here). It turns PostgreSQL's SQLSTATEs into pycell Statuses in one place:
//
//   23xxx (unique, foreign key, not null, check) and 22xxx (bad data, e.g. a NUL in TEXT)
//                                                         → InvalidArgument
//   40001, 40P01, 55P03, 57014 (serialization, deadlock, lock or statement timeout), 53xxx,
//   57P0x, 08xxx and a broken connection                  → Unavailable
//   anything else                                          → Internal, naming the statement
//
// Every statement is PQexecParams with its values as parameters: SQL text never holds a value.
// Strings are sent in binary format with their type left to the server, so a TEXT column gets the
// bytes as they are (checked as UTF-8 by the server) and a BYTEA column gets any bytes; results
// come back as text, BYTEA decoded from its hex form.
//
// Thread-safety: none. A PgConn and its results must be used by one thread at a time; PgStore
// guards its connection with a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace pycell::store {

// How long a statement waits for a row lock another connection holds before giving up
// (Unavailable); the SQLite store's busy timeout has the same value.
inline constexpr int kPgLockTimeoutMs = 5000;
// How long a statement may run at all.
inline constexpr int kPgStatementTimeoutMs = 30000;
// How long connecting may take, in seconds, unless the URL says otherwise (connect_timeout=).
inline constexpr int kPgConnectTimeoutSeconds = 5;

// `url` with the password, if any, replaced by "***": for messages and logs.
std::string RedactPostgresUrl(std::string_view url);

// The values of one statement's parameters, $1, $2, … in the order added.
class PgParams {
 public:
  PgParams& Add(std::string_view value);  // TEXT or BYTEA, any bytes.
  PgParams& Add(const char* value) { return Add(std::string_view(value)); }
  PgParams& Add(const std::string& value) { return Add(std::string_view(value)); }
  PgParams& Add(int64_t value);
  PgParams& Add(int value) { return Add(static_cast<int64_t>(value)); }
  PgParams& Add(double value);
  PgParams& Add(bool value) { return Add(int64_t{value ? 1 : 0}); }

  int size() const { return static_cast<int>(values_.size()); }

 private:
  friend class PgConn;
  std::vector<std::string> values_;
  std::vector<int> formats_;  // 1: binary (strings), 0: text (numbers).
};

// The rows a statement returned. Columns and rows are 0-based; NULL reads as "" / 0.
class PgResult {
 public:
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult();

  int rows() const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;
  std::string Text(int row, int column) const;
  int64_t Int64(int row, int column) const;
  double Double(int row, int column) const;

 private:
  friend class PgConn;
  explicit PgResult(pg_result* result) : result_(result) {}
  pg_result* result_;
};

class PgConn {
 public:
  // Connects to `url` (postgresql://user:password@host:port/database?options) and sets the
  // session's lock and statement timeouts. InvalidArgument when the URL cannot be parsed;
  // Unavailable when the server cannot be reached or refuses the login.
  static Result<std::unique_ptr<PgConn>> Connect(const std::string& url);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs one statement with `params` bound to $1, $2, ….
  Result<PgResult> Exec(std::string_view sql, const PgParams& params = {});
  // Runs a script of statements without parameters (migrations' DDL). `label` names it in
  // errors.
  Status ExecScript(std::string_view sql, std::string_view label);

  // True when the connection is known to be lost (a statement failed because of it).
  bool Broken() const;
  // Connects again with the same parameters. Unavailable if that fails.
  Status Reconnect();
  const std::string& redacted_url() const { return redacted_url_; }

 private:
  PgConn(pg_conn* conn, std::string redacted_url)
      : conn_(conn), redacted_url_(std::move(redacted_url)) {}
  // The Status for a failed result (or a null one), naming `what`.
  Status StatusFor(const pg_result* result, std::string_view what) const;
  // SET the session's timeouts: after every (re)connect.
  Status Configure();

  pg_conn* conn_;
  std::string redacted_url_;
};

// An open transaction that rolls back unless committed. BEGIN … COMMIT at READ COMMITTED: each
// statement sees what was committed before it started, and a row locked with FOR UPDATE is read
// again at its newest version once the lock is granted (what the audit chain's head relies on).
class PgTransaction {
 public:
  // Runs `begin` ("BEGIN", or "BEGIN ISOLATION LEVEL …") on `conn`.
  static Result<PgTransaction> Begin(PgConn& conn, std::string_view begin = "BEGIN");
  // Takes over the transaction the caller has just begun on `conn` (PgStore begins its own, to
  // retry BEGIN on a lost connection).
  static PgTransaction Adopt(PgConn& conn) { return PgTransaction(&conn); }
  PgTransaction(PgTransaction&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
  PgTransaction& operator=(PgTransaction&&) = delete;
  PgTransaction(const PgTransaction&) = delete;
  PgTransaction& operator=(const PgTransaction&) = delete;
  ~PgTransaction();

  Status Commit();

 private:
  explicit PgTransaction(PgConn* conn) : conn_(conn) {}
  PgConn* conn_;  // Null once committed or moved from.
};

}  // namespace pycell::store
