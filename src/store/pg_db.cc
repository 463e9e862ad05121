#include "store/pg_db.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

namespace pycell::store {
namespace {

// BYTEAOID in the server's catalog headers, which libpq-dev does not ship; type OIDs below 10000
// are fixed by PostgreSQL.
constexpr Oid kByteaOid = 17;

// A statement's text for a message: whitespace collapsed, at most ~160 characters.
std::string Describe(std::string_view sql) {
  std::string out;
  for (char c : sql) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
    if (out.size() >= 160) return out + "…";
  }
  return out;
}

// libpq's messages end with a newline.
std::string Trimmed(const char* message) {
  std::string out = message != nullptr ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// BYTEA's text form ("\x" and two hex digits a byte; bytea_output = hex since PostgreSQL 9.0).
std::string DecodeBytea(const char* text, int length) {
  std::string out;
  if (length < 2 || text[0] != '\\' || text[1] != 'x') return std::string(text, length);
  out.reserve((length - 2) / 2);
  for (int i = 2; i + 1 < length; i += 2) {
    const int high = HexDigit(text[i]);
    const int low = HexDigit(text[i + 1]);
    if (high < 0 || low < 0) break;
    out += static_cast<char>(high * 16 + low);
  }
  return out;
}

}  // namespace

std::string RedactPostgresUrl(std::string_view url) {
  std::string out(url);
  // postgresql://user:password@host/…: the password is between the first ':' after the scheme
  // and the last '@' before the path.
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t end = out.find_first_of("/?", start);
    const size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at > start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // …?password=secret&… and key=value strings.
  for (size_t at = out.find("password="); at != std::string::npos;
       at = out.find("password=", at + 1)) {
    const size_t value = at + 9;
    const size_t end = out.find_first_of("& ", value);
    out.replace(value, (end == std::string::npos ? out.size() : end) - value, "***");
  }
  return out;
}

// --- PgParams --------------------------------------------------------------------------------

PgParams& PgParams::Add(std::string_view value) {
  values_.emplace_back(value);
  formats_.push_back(1);
  return *this;
}

PgParams& PgParams::Add(int64_t value) {
  values_.push_back(std::to_string(value));
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Add(double value) {
  char buffer[64];
  // The shortest text that reads back as the same double.
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  values_.emplace_back(buffer, error == std::errc() ? end : buffer);
  formats_.push_back(0);
  return *this;
}

// --- PgResult --------------------------------------------------------------------------------

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() { PQclear(result_); }

int PgResult::rows() const { return result_ != nullptr ? PQntuples(result_) : 0; }

int64_t PgResult::affected() const {
  const char* text = result_ != nullptr ? PQcmdTuples(result_) : "";
  int64_t value = 0;
  std::from_chars(text, text + std::char_traits<char>::length(text), value);
  return value;
}

std::string PgResult::Text(int row, int column) const {
  if (PQgetisnull(result_, row, column)) return "";
  const char* text = PQgetvalue(result_, row, column);
  const int length = PQgetlength(result_, row, column);
  if (PQftype(result_, column) == kByteaOid) return DecodeBytea(text, length);
  return std::string(text, length);
}

int64_t PgResult::Int64(int row, int column) const {
  const char* text = PQgetvalue(result_, row, column);
  int64_t value = 0;
  std::from_chars(text, text + PQgetlength(result_, row, column), value);
  return value;
}

double PgResult::Double(int row, int column) const {
  const char* text = PQgetvalue(result_, row, column);
  double value = 0;
  std::from_chars(text, text + PQgetlength(result_, row, column), value);
  return value;
}

// --- PgConn ----------------------------------------------------------------------------------

Result<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& url) {
  const std::string redacted = RedactPostgresUrl(url);
  // Parsed first so that a malformed URL is the caller's mistake, not an unreachable server.
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (options == nullptr) {
    // libpq quotes the URL it could not parse, password and all.
    std::string message = parse_error != nullptr ? Trimmed(parse_error) : "out of memory";
    PQfreemem(parse_error);
    for (size_t at = message.find(url); !url.empty() && at != std::string::npos;
         at = message.find(url, at + redacted.size())) {
      message.replace(at, url.size(), redacted);
    }
    return Status::InvalidArgument("postgres store " + redacted + ": " + message);
  }
  // libpq checks a port's form only when it connects, and reports it like a refused connection.
  std::string bad_port;
  for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (std::string_view(option->keyword) != "port" || option->val == nullptr) continue;
    const std::string_view ports = option->val;  // "5432" or "5432,5433" (one per host).
    for (size_t start = 0; start <= ports.size();) {
      const size_t end = std::min(ports.find(',', start), ports.size());
      const std::string_view port = ports.substr(start, end - start);
      int value = 0;
      const auto [rest, error] = std::from_chars(port.data(), port.data() + port.size(), value);
      if (!port.empty() && (error != std::errc() || rest != port.data() + port.size() ||
                            value < 1 || value > 65535)) {
        bad_port = port;
      }
      start = end + 1;
    }
  }
  PQconninfoFree(options);
  if (!bad_port.empty()) {
    return Status::InvalidArgument("postgres store " + redacted + ": invalid port \"" + bad_port +
                                   "\"");
  }

  // Keywords are applied in order and the URL (dbname, expanded) comes last, so its own
  // connect_timeout or application_name wins over these defaults.
  const std::string timeout = std::to_string(kPgConnectTimeoutSeconds);
  const char* const keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* const values[] = {timeout.c_str(), "pycell", url.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Status::Internal("postgres store " + redacted + ": out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = Trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::Unavailable("postgres store " + redacted + ": cannot connect: " + message);
  }
  std::unique_ptr<PgConn> db(new PgConn(conn, redacted));
  RETURN_IF_ERROR(db->Configure());
  return db;
}

PgConn::~PgConn() { PQfinish(conn_); }

Status PgConn::Configure() {
  // SET takes no parameters; set_config does. Session-wide: a pooler in transaction mode
  // (PgBouncer) would lose them, so connect to PostgreSQL or a session-mode pool.
  PgParams params;
  // client_min_messages: NOTICEs ("relation … already exists, skipping") would go to stderr.
  params.Add(std::to_string(kPgLockTimeoutMs)).Add(std::to_string(kPgStatementTimeoutMs));
  return Exec(
             "SELECT set_config('lock_timeout', $1, false), "
             "set_config('statement_timeout', $2, false), "
             "set_config('client_min_messages', 'warning', false)",
             params)
      .status();
}

bool PgConn::Broken() const { return PQstatus(conn_) == CONNECTION_BAD; }

Status PgConn::Reconnect() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return Status::Unavailable("postgres store " + redacted_url_ +
                               ": cannot reconnect: " + Trimmed(PQerrorMessage(conn_)));
  }
  return Configure();
}

Result<PgResult> PgConn::Exec(std::string_view sql, const PgParams& params) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  values.reserve(params.values_.size());
  lengths.reserve(params.values_.size());
  for (const std::string& value : params.values_) {
    values.push_back(value.data());
    lengths.push_back(static_cast<int>(value.size()));
  }
  PGresult* result = PQexecParams(conn_, std::string(sql).c_str(), params.size(),
                                  /*paramTypes=*/nullptr, values.data(), lengths.data(),
                                  params.formats_.data(), /*resultFormat=*/0);
  const ExecStatusType status = PQresultStatus(result);
  if (result != nullptr && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)) {
    return PgResult(result);
  }
  Status failed = StatusFor(result, Describe(sql));
  PQclear(result);
  return failed;
}

Status PgConn::ExecScript(std::string_view sql, std::string_view label) {
  PGresult* result = PQexec(conn_, std::string(sql).c_str());
  const ExecStatusType status = PQresultStatus(result);
  Status out = Status::Ok();
  if (result == nullptr || (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)) {
    out = StatusFor(result, label);
  }
  PQclear(result);
  return out;
}

Status PgConn::StatusFor(const pg_result* result, std::string_view what) const {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message =
      result != nullptr ? Trimmed(PQresultErrorMessage(result)) : Trimmed(PQerrorMessage(conn_));
  if (message.empty()) message = Trimmed(PQerrorMessage(conn_));
  std::string text = "postgres: " + std::string(what) + ": " + message;
  if (state == nullptr || Broken()) {
    // No SQLSTATE: libpq itself failed (the connection dropped, the server went away).
    if (Broken()) return Status::Unavailable(text + " (connection lost)");
    return Status::Internal(text);
  }
  const std::string_view code(state);
  if (code.starts_with("23") || code.starts_with("22")) return Status::InvalidArgument(text);
  if (code == "40001" || code == "40P01" || code == "55P03" || code == "57014" ||
      code.starts_with("53") || code.starts_with("57P") || code.starts_with("08")) {
    return Status::Unavailable(text);
  }
  return Status::Internal(text);
}

// --- PgTransaction ---------------------------------------------------------------------------

Result<PgTransaction> PgTransaction::Begin(PgConn& conn, std::string_view begin) {
  RETURN_IF_ERROR(conn.Exec(begin).status());
  return PgTransaction(&conn);
}

PgTransaction::~PgTransaction() {
  if (conn_ != nullptr && !conn_->Broken()) (void)conn_->Exec("ROLLBACK");
}

Status PgTransaction::Commit() {
  PgConn* conn = conn_;
  conn_ = nullptr;
  return conn->Exec("COMMIT").status();
}

}  // namespace pycell::store
