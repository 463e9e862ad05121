// Tests of the row codecs: the SQL text they make is the text the store has always sent, and every
// member of every record lands in the column of its name and reads back from it. The on-disk
// checks go through the store's public methods and read the file on a second connection, so they
// say nothing about how the store maps rows, only what it stores.
#include "store/sqlite_rows.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_event.h"
#include "store/metadata_store.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace pycell::store {
namespace {

// Each table's columns, in the order the store's SQL has always named them.
constexpr char kProjectColumnList[] =
    "id, name, share_sessions, quota_concurrent_sessions, quota_sessions_per_day, "
    "quota_cpu_hours_per_day, quota_storage_bytes, created_at_ms";
constexpr char kKeyColumnList[] =
    "id, secret_sha256, principal, project_id, role, all_projects, created_at_ms, revoked_at_ms, "
    "created_by";
constexpr char kAuditColumnList[] =
    "seq, id, time_ms, principal, project_id, key_id, action, target, outcome, request_id, "
    "code_sha256, detail_json, prev_hash, hash";
constexpr char kUsageColumnList[] =
    "time_ms, start_ms, project_id, principal, agent_id, session_id, kind, amount";
constexpr char kSessionColumnList[] =
    "id, pool, status, end_reason, created_at_ms, last_active_at_ms, expires_at_ms, ended_at_ms, "
    "limits_json, metadata_json, execution_count, project_id, principal, agent_id, cpu_ms, "
    "peak_memory_bytes, forked_from";
constexpr char kExecutionColumnList[] =
    "id, session_id, status, code, code_sha256, started_at_ms, duration_ms, record_json, "
    "project_id, principal, cpu_ms, peak_memory_bytes";
constexpr char kFileColumnList[] =
    "id, filename, bytes, sha256, media_type, purpose, created_at_ms, expires_at_ms, session_id, "
    "execution_id, path, project_id, principal";
constexpr char kSessionInputColumnList[] = "session_id, file_id, filename, sha256, placed_at_ms";

TEST(RowCodecTest, ColumnListsAreTheSqlTextTheStoreHasAlwaysSent) {
  EXPECT_EQ(kProjectCodec.ColumnList(), kProjectColumnList);
  EXPECT_EQ(kKeyCodec.ColumnList(), kKeyColumnList);
  EXPECT_EQ(kAuditCodec.ColumnList(), kAuditColumnList);
  EXPECT_EQ(kUsageCodec.ColumnList(), kUsageColumnList);
  EXPECT_EQ(kSessionCodec.ColumnList(), kSessionColumnList);
  EXPECT_EQ(kExecutionCodec.ColumnList(), kExecutionColumnList);
  EXPECT_EQ(kFileCodec.ColumnList(), kFileColumnList);
  EXPECT_EQ(kSessionInputCodec.ColumnList(), kSessionInputColumnList);
}

TEST(RowCodecTest, PlaceholdersAndAssignmentsFollowTheColumns) {
  EXPECT_EQ(kSessionInputCodec.Placeholders(), "?, ?, ?, ?, ?");
  EXPECT_EQ(kAuditCodec.size(), 14);
  EXPECT_EQ(kProjectCodec.ExcludedAssignments({"id", "created_at_ms"}),
            "name = excluded.name, share_sessions = excluded.share_sessions, "
            "quota_concurrent_sessions = excluded.quota_concurrent_sessions, "
            "quota_sessions_per_day = excluded.quota_sessions_per_day, "
            "quota_cpu_hours_per_day = excluded.quota_cpu_hours_per_day, "
            "quota_storage_bytes = excluded.quota_storage_bytes");
  EXPECT_EQ(kSessionCodec.ExcludedAssignments({"id"}),
            "pool = excluded.pool, status = excluded.status, end_reason = excluded.end_reason, "
            "created_at_ms = excluded.created_at_ms, "
            "last_active_at_ms = excluded.last_active_at_ms, "
            "expires_at_ms = excluded.expires_at_ms, ended_at_ms = excluded.ended_at_ms, "
            "limits_json = excluded.limits_json, metadata_json = excluded.metadata_json, "
            "execution_count = excluded.execution_count, project_id = excluded.project_id, "
            "principal = excluded.principal, agent_id = excluded.agent_id, "
            "cpu_ms = excluded.cpu_ms, peak_memory_bytes = excluded.peak_memory_bytes, "
            "forked_from = excluded.forked_from");
}

// A store on a fresh file, and a second connection that reads what it wrote. The records below
// set every member, none to its default, in the order of the columns.
class RowsOnDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<MetadataStore>> store = OpenSqliteStore(dir_ / "pycell.db");
    ASSERT_OK(store);
    store_ = std::move(store).value();
    Result<std::unique_ptr<SqliteDb>> raw = SqliteDb::Open(dir_ / "pycell.db");
    ASSERT_OK(raw);
    raw_ = std::move(raw).value();
  }

  // The `columns` of the one row of `table` where `where`, as text joined by '|' ("" when there is
  // no such row).
  std::string Stored(std::string_view table, std::string_view columns, const std::string& where) {
    std::string sql = "SELECT " + std::string(columns) + " FROM " + std::string(table);
    Result<Statement> select = raw_->Prepare(sql + " WHERE " + where);
    EXPECT_OK(select);
    if (!select.ok()) return "";
    Result<bool> has_row = select->Step();
    if (!has_row.ok() || !*has_row) return "";
    std::string out = select->ColumnText(0);
    int count = 1;
    for (char c : columns) count += c == ',' ? 1 : 0;
    for (int i = 1; i < count; ++i) out += "|" + select->ColumnText(i);
    return out;
  }

  // Writes `row` with `put` and expects it stored as its id then `rest`; reads it back with `get`,
  // writes what was read as `copy_id` and expects the same there: every member reads back from the
  // column it was written to.
  template <typename Row, typename Put, typename Get>
  void ExpectStoredAndReadBack(const Row& row, std::string_view table, std::string_view columns,
                               const std::string& rest, const std::string& copy_id, Put put,
                               Get get) {
    ASSERT_OK(put(row));
    EXPECT_EQ(Stored(table, columns, "id = '" + row.id + "'"), row.id + "|" + rest);
    Result<Row> read = get(row.id);
    ASSERT_OK(read);
    Row copy = *read;
    copy.id = copy_id;
    ASSERT_OK(put(copy));
    EXPECT_EQ(Stored(table, columns, "id = '" + copy_id + "'"), copy_id + "|" + rest);
  }

  testing::TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<SqliteDb> raw_;
};

TEST_F(RowsOnDiskTest, ProjectsAndKeys) {
  ProjectRow project{"proj_rows", "rows", true, 3, 40, 2.5, 5000, 1700};
  // Put again under its own id: the name is unique. The upsert keeps created_at_ms.
  ExpectStoredAndReadBack(
      project, "projects", kProjectColumnList, "rows|1|3|40|2.5|5000|1700", "proj_rows",
      [&](const ProjectRow& row) { return store_->PutProject(row); },
      [&](const std::string& id) { return store_->GetProject(id); });

  KeyRow key{"key_rows", "5ec", "alice", "proj_rows", "auditor", true, 11, 12, "bootstrap"};
  ExpectStoredAndReadBack(
      key, "api_keys", kKeyColumnList, "5ec|alice|proj_rows|auditor|1|11|12|bootstrap", "key_copy",
      [&](const KeyRow& row) { return store_->PutKey(row); },
      [&](const std::string& id) { return store_->GetKey(id); });
}

TEST_F(RowsOnDiskTest, SessionsExecutionsAndFiles) {
  SessionRow session{"sess_rows", "gpu", "ended",     "idle", 21,   22,   23, 24,           "[1]",
                     "[2]",       25,    "proj_rows", "bob",  "a1", 26.5, 27, "sess_origin"};
  ExpectStoredAndReadBack(
      session, "sessions", kSessionColumnList,
      "gpu|ended|idle|21|22|23|24|[1]|[2]|25|proj_rows|bob|a1|26.5|27|sess_origin", "sess_copy",
      [&](const SessionRow& row) { return store_->PutSession(row); },
      [&](const std::string& id) { return store_->GetSession(id); });

  ExecutionRow execution{"exec_rows", "sess_rows",  "timeout",   "print(1)", "c0de", 31,
                         32.25,       "{\"id\":1}", "proj_rows", "bob",      33.5,   34};
  ExpectStoredAndReadBack(
      execution, "executions", kExecutionColumnList,
      "sess_rows|timeout|print(1)|c0de|31|32.25|{\"id\":1}|proj_rows|bob|33.5|34", "exec_copy",
      [&](const ExecutionRow& row) { return store_->RecordExecution(row, {}, session); },
      [&](const std::string& id) { return store_->GetExecution(id); });

  FileRow file{"file_rows", "out.png", 41,          "f11e",      "image/png",         "output",
               42,          43,        "sess_rows", "exec_rows", "/mnt/data/out.png", "proj_rows",
               "bob"};
  ExpectStoredAndReadBack(
      file, "files", kFileColumnList,
      "out.png|41|f11e|image/png|output|42|43|sess_rows|exec_rows|/mnt/data/out.png|proj_rows|bob",
      "file_copy", [&](const FileRow& row) { return store_->PutFile(row); },
      [&](const std::string& id) { return store_->GetFile(id); });
}

TEST_F(RowsOnDiskTest, SessionInputs) {
  SessionInput input{"sess_rows", "file_rows", "in.csv", "beef", 51};
  ASSERT_OK(store_->AddSessionInputs({input}));
  const std::string rest = "|file_rows|in.csv|beef|51";
  EXPECT_EQ(Stored("session_inputs", kSessionInputColumnList, "session_id = 'sess_rows'"),
            "sess_rows" + rest);
  Result<std::vector<SessionInput>> read = store_->SessionInputs("sess_rows");
  ASSERT_OK(read);
  ASSERT_EQ(read->size(), 1u);
  SessionInput copy = read->front();
  copy.session_id = "sess_copy";
  ASSERT_OK(store_->AddSessionInputs({copy}));
  EXPECT_EQ(Stored("session_inputs", kSessionInputColumnList, "session_id = 'sess_copy'"),
            "sess_copy" + rest);
}

TEST_F(RowsOnDiskTest, AuditAndUsageEvents) {
  audit::AuditEvent event{0,          "evt_rows",      61,          "carol",  "proj_rows",
                          "key_rows", "file.download", "file_rows", "denied", "req_rows",
                          "c0de",     "{\"bytes\":3}", "",          ""};
  UsageEvent usage{62, 60, "proj_rows", "carol", "a2", "sess_rows", "download_bytes", 63};
  ASSERT_OK(store_->Record(Trail{.audit = event, .usage = {usage}}));

  // The store chains the first event to the genesis hash.
  audit::AuditEvent chained = event;
  chained.seq = 1;
  chained.prev_hash = audit::kGenesisHash;
  const std::string hash = audit::EventHash(chained);
  EXPECT_EQ(Stored("audit_events", kAuditColumnList, "id = 'evt_rows'"),
            "1|evt_rows|61|carol|proj_rows|key_rows|file.download|file_rows|denied|req_rows|c0de|"
            "{\"bytes\":3}|" +
                std::string(audit::kGenesisHash) + "|" + hash);
  Result<std::vector<audit::AuditEvent>> events = store_->ListAudit(AuditFilter{});
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  // The hash covers every other member: what was read is what was written.
  EXPECT_EQ(events->front().hash, hash);
  EXPECT_EQ(audit::EventHash(events->front()), hash);

  const std::string usage_rest = "|carol|a2|sess_rows|download_bytes|63";
  EXPECT_EQ(Stored("usage_events", kUsageColumnList, "id = 1"), "62|60|proj_rows" + usage_rest);
  Result<std::vector<UsageEvent>> read = store_->UsageEvents(0, 100, "");
  ASSERT_OK(read);
  ASSERT_EQ(read->size(), 1u);
  UsageEvent copy = read->front();
  copy.project_id = "proj_copy";
  ASSERT_OK(store_->Record(Trail{.usage = {copy}}));
  EXPECT_EQ(Stored("usage_events", kUsageColumnList, "id = 2"), "62|60|proj_copy" + usage_rest);
}

}  // namespace
}  // namespace pycell::store
