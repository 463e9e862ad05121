#include "store/sqlite_db.h"

#include <sqlite3.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace pycell::store {
namespace {

// sqlite3_errmsg is per connection and describes the most recent failing call on it; when nothing
// failed there ("not an error") the code's own description is the better one.
std::string Detail(sqlite3* db, int rc) {
  std::string message = db != nullptr ? sqlite3_errmsg(db) : "";
  if (message.empty() || message == "not an error") return sqlite3_errstr(rc);
  return message;
}

}  // namespace

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  // SQLITE_OPEN_NOMUTEX: SqliteStore's own mutex already serialises every use of the connection,
  // including multi-statement transactions that SQLite's per-call mutex could not keep together.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    // sqlite3_open_v2 may hand back a connection even when it fails; it must still be closed.
    std::string detail = Detail(raw, rc);
    sqlite3_close(raw);
    return Status::Internal("cannot open metadata database " + path + ": " + detail +
                            "; check that its folder exists and is writable");
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path));
  sqlite3_extended_result_codes(raw, 1);  // Finer messages; StatusFor maps on the primary code.
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);

  // The first statement is the first read of the file, so a file that is not a database fails
  // here (in prepare or in step) — before anything has been written to it.
  auto not_usable = [&path, raw](const Status& status) {
    if (status.code() == StatusCode::kUnavailable) return status;  // Locked, not broken.
    return Status::Internal(
        "cannot use " + path + " as the metadata database: " + sqlite3_errmsg(raw) +
        "; if it is not a pycell database, move it aside or choose another path");
  };
  // Two processes creating the file at once: switching it to WAL can answer "busy" at once,
  // without the busy handler, while the other one switches it. Retried for the busy timeout.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (;;) {  // Scoped: the pragma's statement must be finished before the next ones run.
    Result<Statement> journal = db->Prepare("PRAGMA journal_mode=WAL");
    Result<bool> row = journal.ok() ? journal->Step() : Result<bool>(journal.status());
    if (!row.ok() && row.status().code() == StatusCode::kUnavailable &&
        std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (!journal.ok()) return not_usable(journal.status());
    if (!row.ok()) return not_usable(row.status());
    // WAL lets readers run while a writer commits. An in-memory database reports "memory" and has
    // nobody else to wait for; anything else means WAL is unsupported where the file lives (some
    // network file systems), and silently falling back would change the locking we rely on.
    std::string mode = *row ? journal->ColumnText(0) : "";
    if (mode != "wal" && mode != "memory") {
      return Status::Internal("metadata database " + path +
                              ": cannot switch to WAL (journal_mode is " + mode +
                              "); put it on a local file system");
    }
    break;
  }
  // synchronous=NORMAL: in WAL mode a commit is safe from corruption and survives the process
  // being killed (the case that matters: kill -9, OOM, a crash); only the last commits before a
  // power loss may be lost. The invariants still hold then: a blob is fsynced before the record
  // that names it is written, so a lost record leaves an orphan blob (swept at start), never a
  // record without bytes. FULL would fsync on every execution: it took a trivial execution over
  // HTTP from 1.75 ms to 2.3 ms p50 on the reference machine (docs/benchmarks.md).
  RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=NORMAL", "PRAGMA synchronous"));
  // Off by default in SQLite, for backward compatibility; executions.session_id relies on it.
  RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON", "PRAGMA foreign_keys"));
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, entry] : cache_) sqlite3_finalize(entry.first);
  // sqlite3_close (not _v2) fails if a statement is still open, which would be our bug; every
  // Statement is owned by a scope shorter than the SqliteDb.
  sqlite3_close(db_);
}

Status SqliteDb::Exec(std::string_view sql, std::string_view label) {
  std::string script(sql);  // sqlite3_exec needs a terminating NUL.
  int rc = sqlite3_exec(db_, script.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return StatusFor(rc, label);
  return Status::Ok();
}

Result<Statement> SqliteDb::Prepare(std::string_view sql) {
  auto cached = cache_.find(sql);
  if (cached != cache_.end() && !cached->second.second) {
    cached->second.second = true;
    return Statement(this, cached->second.first, /*cached=*/true);
  }
  sqlite3_stmt* stmt = nullptr;
  bool cache = cached == cache_.end();
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return StatusFor(rc, std::string(sql.substr(0, 160)));
  }
  if (cache) cache_.emplace(std::string(sql), std::make_pair(stmt, true));
  return Statement(this, stmt, cache);
}

void SqliteDb::Return(sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  for (auto& [sql, entry] : cache_) {
    if (entry.first == stmt) {
      entry.second = false;
      return;
    }
  }
}

Status SqliteDb::RunCached(std::string_view sql) {
  ASSIGN_OR_RETURN(Statement statement, Prepare(sql));
  return statement.Run();
}

int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

bool SqliteDb::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

Status SqliteDb::StatusFor(int rc, std::string_view what) const {
  std::string detail = Detail(db_, rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable("metadata database " + path_ + " is busy: another connection " +
                                 "held its lock for more than " +
                                 std::to_string(kBusyTimeoutMs / 1000) + " s (" + detail +
                                 "); try again");
    case SQLITE_FULL:
      // A full disk: not a bug, and not the caller's doing (HTTP 507).
      return Status::ResourceExhausted("metadata database " + path_ + " is full: the disk that " +
                                       "holds it has no space left (" + detail + "); free space " +
                                       "there, or ask the server's operator to, then retry")
          .WithReason("insufficient_storage");
    case SQLITE_CONSTRAINT:
      // Callers add which record broke it; SQLite's message names the constraint.
      return Status::InvalidArgument(detail);
    default:
      return Status::Internal("metadata database " + path_ + ": " + std::string(what) + ": " +
                              detail);
  }
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(other.stmt_),
      cached_(other.cached_),
      bind_status_(std::move(other.bind_status_)) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    db_ = other.db_;
    stmt_ = other.stmt_;
    cached_ = other.cached_;
    bind_status_ = std::move(other.bind_status_);
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (stmt_ == nullptr) return;
  if (cached_) {
    db_->Return(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

void Statement::NoteBindResult(int rc) {
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = db_->StatusFor(rc, Describe());
}

Statement& Statement::Bind(int index, std::string_view value) {
  // SQLITE_TRANSIENT: SQLite copies the bytes, so the caller's string may go away before Step.
  NoteBindResult(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  NoteBindResult(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  NoteBindResult(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

Result<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->StatusFor(rc, Describe());
}

Status Statement::Run() {
  while (true) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
  }
}

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  // The length, not strlen: code and JSON may hold NUL bytes.
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

int64_t Statement::ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::Describe() const {
  std::string sql = sqlite3_sql(stmt_);
  std::string out;
  bool space = false;
  for (char c : sql) {  // Collapse the layout of multi-line statements into one line.
    if (c == ' ' || c == '\n' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  if (out.size() > 160) out = out.substr(0, 157) + "...";
  return out;
}

Result<Transaction> Transaction::BeginImmediate(SqliteDb& db) {
  RETURN_IF_ERROR(db.RunCached("BEGIN IMMEDIATE"));
  return Transaction(&db);
}

Result<Transaction> Transaction::BeginRead(SqliteDb& db) {
  RETURN_IF_ERROR(db.RunCached("BEGIN"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  // Some errors (SQLITE_FULL, SQLITE_IOERR, …) make SQLite roll back on its own; only a
  // transaction still open needs ending, and a failure here has nowhere better to go.
  if (db_ != nullptr && db_->InTransaction()) (void)db_->RunCached("ROLLBACK");
}

Status Transaction::Commit() {
  RETURN_IF_ERROR(db_->RunCached("COMMIT"));
  db_ = nullptr;
  return Status::Ok();
}

}  // namespace pycell::store
