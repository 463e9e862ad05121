// The store's tables, one column a line, and the codec that every statement binds and reads rows
// with. The column lists keep the order of the SQL text the store has always sent (see
// sqlite_rows_test.cc); the tables themselves are made by migrations.cc.
#include "store/sqlite_rows.h"

#include <algorithm>
#include <type_traits>

namespace pycell::store {
namespace {

constexpr Column<ProjectRow> kProjectColumns[] = {
    {"id", &ProjectRow::id},
    {"name", &ProjectRow::name},
    {"share_sessions", &ProjectRow::share_sessions},
    {"quota_concurrent_sessions", &ProjectRow::quota_concurrent_sessions},
    {"quota_sessions_per_day", &ProjectRow::quota_sessions_per_day},
    {"quota_cpu_hours_per_day", &ProjectRow::quota_cpu_hours_per_day},
    {"quota_storage_bytes", &ProjectRow::quota_storage_bytes},
    {"created_at_ms", &ProjectRow::created_at_ms},
};

constexpr Column<KeyRow> kKeyColumns[] = {
    {"id", &KeyRow::id},
    {"secret_sha256", &KeyRow::secret_sha256},
    {"principal", &KeyRow::principal},
    {"project_id", &KeyRow::project_id},
    {"role", &KeyRow::role},
    {"all_projects", &KeyRow::all_projects},
    {"created_at_ms", &KeyRow::created_at_ms},
    {"revoked_at_ms", &KeyRow::revoked_at_ms},
    {"created_by", &KeyRow::created_by},
};

constexpr Column<audit::AuditEvent> kAuditColumns[] = {
    {"seq", &audit::AuditEvent::seq},
    {"id", &audit::AuditEvent::id},
    {"time_ms", &audit::AuditEvent::time_ms},
    {"principal", &audit::AuditEvent::principal},
    {"project_id", &audit::AuditEvent::project_id},
    {"key_id", &audit::AuditEvent::key_id},
    {"action", &audit::AuditEvent::action},
    {"target", &audit::AuditEvent::target},
    {"outcome", &audit::AuditEvent::outcome},
    {"request_id", &audit::AuditEvent::request_id},
    {"code_sha256", &audit::AuditEvent::code_sha256},
    {"detail_json", &audit::AuditEvent::detail_json},
    {"prev_hash", &audit::AuditEvent::prev_hash},
    {"hash", &audit::AuditEvent::hash},
};

// usage_events.id is the table's own rowid, never written or read as a member.
constexpr Column<UsageEvent> kUsageColumns[] = {
    {"time_ms", &UsageEvent::time_ms},
    {"start_ms", &UsageEvent::start_ms},
    {"project_id", &UsageEvent::project_id},
    {"principal", &UsageEvent::principal},
    {"agent_id", &UsageEvent::agent_id},
    {"session_id", &UsageEvent::session_id},
    {"kind", &UsageEvent::kind},
    {"amount", &UsageEvent::amount},
};

constexpr Column<SessionRow> kSessionColumns[] = {
    {"id", &SessionRow::id},
    {"pool", &SessionRow::pool},
    {"status", &SessionRow::status},
    {"end_reason", &SessionRow::end_reason},
    {"created_at_ms", &SessionRow::created_at_ms},
    {"last_active_at_ms", &SessionRow::last_active_at_ms},
    {"expires_at_ms", &SessionRow::expires_at_ms},
    {"ended_at_ms", &SessionRow::ended_at_ms},
    {"limits_json", &SessionRow::limits_json},
    {"metadata_json", &SessionRow::metadata_json},
    {"execution_count", &SessionRow::execution_count},
    {"project_id", &SessionRow::project_id},
    {"principal", &SessionRow::principal},
    {"agent_id", &SessionRow::agent_id},
    {"cpu_ms", &SessionRow::cpu_ms},
    {"peak_memory_bytes", &SessionRow::peak_memory_bytes},
    {"forked_from", &SessionRow::forked_from},
};

constexpr Column<ExecutionRow> kExecutionColumns[] = {
    {"id", &ExecutionRow::id},
    {"session_id", &ExecutionRow::session_id},
    {"status", &ExecutionRow::status},
    {"code", &ExecutionRow::code},
    {"code_sha256", &ExecutionRow::code_sha256},
    {"started_at_ms", &ExecutionRow::started_at_ms},
    {"duration_ms", &ExecutionRow::duration_ms},
    {"record_json", &ExecutionRow::record_json},
    {"project_id", &ExecutionRow::project_id},
    {"principal", &ExecutionRow::principal},
    {"cpu_ms", &ExecutionRow::cpu_ms},
    {"peak_memory_bytes", &ExecutionRow::peak_memory_bytes},
};

constexpr Column<FileRow> kFileColumns[] = {
    {"id", &FileRow::id},
    {"filename", &FileRow::filename},
    {"bytes", &FileRow::bytes},
    {"sha256", &FileRow::sha256},
    {"media_type", &FileRow::media_type},
    {"purpose", &FileRow::purpose},
    {"created_at_ms", &FileRow::created_at_ms},
    {"expires_at_ms", &FileRow::expires_at_ms},
    {"session_id", &FileRow::session_id},
    {"execution_id", &FileRow::execution_id},
    {"path", &FileRow::path},
    {"project_id", &FileRow::project_id},
    {"principal", &FileRow::principal},
};

constexpr Column<SessionInput> kSessionInputColumns[] = {
    {"session_id", &SessionInput::session_id},     {"file_id", &SessionInput::file_id},
    {"filename", &SessionInput::filename},         {"sha256", &SessionInput::sha256},
    {"placed_at_ms", &SessionInput::placed_at_ms},
};

}  // namespace

template <typename Row>
std::string RowCodec<Row>::ColumnList() const {
  std::string out;
  for (const Column<Row>& column : columns_) {
    if (!out.empty()) out += ", ";
    out += column.name;
  }
  return out;
}

template <typename Row>
std::string RowCodec<Row>::Placeholders() const {
  std::string out;
  for (int i = 0; i < size(); ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

template <typename Row>
std::string RowCodec<Row>::ExcludedAssignments(std::initializer_list<std::string_view> kept) const {
  std::string out;
  for (const Column<Row>& column : columns_) {
    if (std::find(kept.begin(), kept.end(), column.name) != kept.end()) continue;
    if (!out.empty()) out += ", ";
    out.append(column.name).append(" = excluded.").append(column.name);
  }
  return out;
}

template <typename Row>
std::string RowCodec<Row>::InsertSql(std::string_view verb) const {
  return std::string(verb) + " INTO " + std::string(table_) + " (" + ColumnList() + ") VALUES (" +
         Placeholders() + ")";
}

template <typename Row>
void RowCodec<Row>::Bind(Statement& statement, const Row& row) const {
  int index = 1;
  for (const Column<Row>& column : columns_) {
    std::visit(
        [&](auto member) {
          const auto& value = row.*member;
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>, bool>) {
            statement.Bind(index, int64_t{value ? 1 : 0});
          } else {
            statement.Bind(index, value);
          }
        },
        column.member);
    ++index;
  }
}

template <typename Row>
Row RowCodec<Row>::Read(const Statement& statement) const {
  Row row;
  int index = 0;
  for (const Column<Row>& column : columns_) {
    std::visit(
        [&](auto member) {
          auto& value = row.*member;
          using Value = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<Value, std::string>) {
            value = statement.ColumnText(index);
          } else if constexpr (std::is_same_v<Value, int64_t>) {
            value = statement.ColumnInt64(index);
          } else if constexpr (std::is_same_v<Value, double>) {
            value = statement.ColumnDouble(index);
          } else {
            static_assert(std::is_same_v<Value, bool>);
            value = statement.ColumnInt64(index) != 0;
          }
        },
        column.member);
    ++index;
  }
  return row;
}

template <typename Row>
Result<std::vector<Row>> RowCodec<Row>::ReadAll(Statement& statement) const {
  std::vector<Row> rows;
  while (true) {
    ASSIGN_OR_RETURN(bool has_row, statement.Step());
    if (!has_row) return rows;
    rows.push_back(Read(statement));
  }
}

template class RowCodec<ProjectRow>;
template class RowCodec<KeyRow>;
template class RowCodec<audit::AuditEvent>;
template class RowCodec<UsageEvent>;
template class RowCodec<SessionRow>;
template class RowCodec<ExecutionRow>;
template class RowCodec<FileRow>;
template class RowCodec<SessionInput>;

constexpr RowCodec<ProjectRow> kProjectCodec("projects", kProjectColumns);
constexpr RowCodec<KeyRow> kKeyCodec("api_keys", kKeyColumns);
constexpr RowCodec<audit::AuditEvent> kAuditCodec("audit_events", kAuditColumns);
constexpr RowCodec<UsageEvent> kUsageCodec("usage_events", kUsageColumns);
constexpr RowCodec<SessionRow> kSessionCodec("sessions", kSessionColumns);
constexpr RowCodec<ExecutionRow> kExecutionCodec("executions", kExecutionColumns);
constexpr RowCodec<FileRow> kFileCodec("files", kFileColumns);
constexpr RowCodec<SessionInput> kSessionInputCodec("session_inputs", kSessionInputColumns);

}  // namespace pycell::store
