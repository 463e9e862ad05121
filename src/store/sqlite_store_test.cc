// Tests of the SQLite MetadataStore against real database files in a temporary folder. Where a test
// needs to see or bend the file behind the store's back (the version row, a held lock, the journal
// mode) it uses sqlite3 directly, as an operator's tool would.
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/metadata_store.h"
#include "store/migrations.h"
#include "test_util.h"

namespace pycell::store {
namespace {

// A sortable id: "prefix_" and 26 characters, zero-padded `n`, so a larger n is a newer id.
std::string Id(const std::string& prefix, int n) {
  std::string digits = std::to_string(n);
  return prefix + "_" + std::string(26 - digits.size(), '0') + digits;
}

SessionRow MakeSession(int n, const std::string& status = "active") {
  SessionRow row;
  row.id = Id("sess", n);
  row.pool = "default";
  row.status = status;
  row.end_reason = status == "ended" ? "closed" : "";
  row.created_at_ms = 1'000 + n;
  row.last_active_at_ms = 2'000 + n;
  row.expires_at_ms = 3'000 + n;
  row.ended_at_ms = status == "ended" ? 4'000 + n : 0;
  row.limits_json = R"({"memory_mb":2048})";
  row.metadata_json = R"({"agent_id":"a)" + std::to_string(n) + "\"}";
  row.execution_count = n;
  return row;
}

ExecutionRow MakeExecution(int n, const std::string& session_id) {
  ExecutionRow row;
  row.id = Id("exec", n);
  row.session_id = session_id;
  row.status = "ok";
  row.code = "print(" + std::to_string(n) + ")";
  row.code_sha256 = std::string(64, 'c');
  row.started_at_ms = 5'000 + n;
  row.duration_ms = 12.5 + n;
  row.record_json = R"({"id":")" + row.id + "\"}";
  return row;
}

FileRow MakeFile(int n, const std::string& sha256 = std::string(64, 'a')) {
  FileRow row;
  row.id = Id("file", n);
  row.filename = "f" + std::to_string(n) + ".csv";
  row.bytes = 100 + n;
  row.sha256 = sha256;
  row.media_type = "text/csv";
  row.purpose = "input";
  row.created_at_ms = 6'000 + n;
  return row;
}

FileRow MakeOutput(int n, const ExecutionRow& execution) {
  FileRow row = MakeFile(n, std::string(64, 'b'));
  row.purpose = "output";
  row.session_id = execution.session_id;
  row.execution_id = execution.id;
  row.path = "/mnt/data/out" + std::to_string(n) + ".png";
  return row;
}

void ExpectSameSession(const SessionRow& a, const SessionRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.pool, b.pool);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.end_reason, b.end_reason);
  EXPECT_EQ(a.created_at_ms, b.created_at_ms);
  EXPECT_EQ(a.last_active_at_ms, b.last_active_at_ms);
  EXPECT_EQ(a.expires_at_ms, b.expires_at_ms);
  EXPECT_EQ(a.ended_at_ms, b.ended_at_ms);
  EXPECT_EQ(a.limits_json, b.limits_json);
  EXPECT_EQ(a.metadata_json, b.metadata_json);
  EXPECT_EQ(a.execution_count, b.execution_count);
}

void ExpectSameExecution(const ExecutionRow& a, const ExecutionRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.session_id, b.session_id);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.code_sha256, b.code_sha256);
  EXPECT_EQ(a.started_at_ms, b.started_at_ms);
  EXPECT_DOUBLE_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.record_json, b.record_json);
}

void ExpectSameFile(const FileRow& a, const FileRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.filename, b.filename);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.sha256, b.sha256);
  EXPECT_EQ(a.media_type, b.media_type);
  EXPECT_EQ(a.purpose, b.purpose);
  EXPECT_EQ(a.created_at_ms, b.created_at_ms);
  EXPECT_EQ(a.expires_at_ms, b.expires_at_ms);
  EXPECT_EQ(a.session_id, b.session_id);
  EXPECT_EQ(a.execution_id, b.execution_id);
  EXPECT_EQ(a.path, b.path);
}

template <typename Row>
std::vector<std::string> Ids(const std::vector<Row>& rows) {
  std::vector<std::string> ids;
  for (const Row& row : rows) ids.push_back(row.id);
  return ids;
}

// A second, raw connection to the database file.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
  }
  // The first column of the first row, as text ("" when there is no row).
  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "pycell-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    path_ = dir_ + "/pycell.db";
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Opens (or reopens) the store at path_ into store_.
  void Open() {
    store_.reset();
    auto store = OpenSqliteStore(path_);
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<MetadataStore> store_;
};

// --- Opening and migrations --------------------------------------------------------------------

TEST_F(SqliteStoreTest, MigrationsAreNumberedFromOne) {
  int expected = 1;
  for (const Migration& migration : Migrations()) {
    EXPECT_EQ(migration.version, expected++);
    EXPECT_FALSE(migration.sql.empty());
  }
  EXPECT_EQ(LatestSchemaVersion(), static_cast<int>(Migrations().size()));
}

TEST_F(SqliteStoreTest, OpenCreatesTheSchemaAtTheLatestVersion) {
  ASSERT_NO_FATAL_FAILURE(Open());
  auto version = store_->SchemaVersion();
  ASSERT_OK(version);
  EXPECT_EQ(*version, LatestSchemaVersion());

  RawDb raw(path_);
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(LatestSchemaVersion()));
  for (const char* index : {"files_by_sha256", "files_by_expiry", "files_by_session",
                            "executions_by_session", "sessions_by_status"}) {
    EXPECT_EQ(raw.Query(std::string("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                    "name = '") +
                        index + "'"),
              index);
  }
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndAppliesMigrationsOnce) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  std::string applied_at;
  {
    RawDb raw(path_);
    applied_at = raw.Query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1");
    EXPECT_GT(std::stoll(applied_at), 0);
  }

  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_OK(store_->GetSession(Id("sess", 1)));
  auto version = store_->SchemaVersion();
  ASSERT_OK(version);
  EXPECT_EQ(*version, LatestSchemaVersion());
  RawDb raw(path_);
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(LatestSchemaVersion()));
  EXPECT_EQ(raw.Query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1"), applied_at);
}

TEST_F(SqliteStoreTest, RefusesADatabaseNewerThanThisBinary) {
  ASSERT_NO_FATAL_FAILURE(Open());
  store_.reset();
  const int newer = LatestSchemaVersion() + 98;
  {
    RawDb raw(path_);
    raw.Exec("INSERT INTO schema_migrations (version, applied_at_ms) VALUES (" +
             std::to_string(newer) + ", 1)");
  }
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsInvalidArgument()) << store.status().ToString();
  EXPECT_NE(
      store.status().message().find("database schema version " + std::to_string(newer) +
                                    " is newer than this pycell (" +
                                    std::to_string(LatestSchemaVersion()) + "); upgrade pycell"),
      std::string::npos)
      << store.status().message();
}

TEST_F(SqliteStoreTest, AFileThatIsNotADatabaseIsAClearErrorAndIsLeftAlone) {
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage += static_cast<char>((i * 131 + 7) % 251);
  std::ofstream(path_, std::ios::binary) << garbage;

  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal) << store.status().ToString();
  EXPECT_NE(store.status().message().find("not a database"), std::string::npos)
      << store.status().message();
  EXPECT_NE(store.status().message().find(path_), std::string::npos) << store.status().message();

  std::ifstream in(path_, std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, garbage);
}

TEST_F(SqliteStoreTest, AMissingFolderIsAClearError) {
  const std::string path = dir_ + "/no/such/folder/pycell.db";
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal);
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status().message();
}

TEST_F(SqliteStoreTest, TwoProcessesMayCreateTheDatabaseAtOnce) {
  // Two connections racing through Open on a new file: one applies the migrations, the other
  // waits for its lock and then finds nothing left to do.
  constexpr int kOpeners = 4;
  std::vector<Status> statuses(kOpeners);
  std::vector<std::unique_ptr<MetadataStore>> stores(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      auto store = OpenSqliteStore(path_);
      statuses[i] = store.status();
      if (store.ok()) stores[i] = std::move(store).value();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kOpeners; ++i) {
    ASSERT_OK(statuses[i]);
    auto version = stores[i]->SchemaVersion();
    ASSERT_OK(version);
    EXPECT_EQ(*version, LatestSchemaVersion());
  }
  RawDb raw(path_);
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(LatestSchemaVersion()));
}

// --- Sessions ----------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, PutSessionInsertsThenReplacesTheWholeRow) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow row = MakeSession(1);
  ASSERT_OK(store_->PutSession(row));
  auto got = store_->GetSession(row.id);
  ASSERT_OK(got);
  ExpectSameSession(*got, row);

  row.status = "ended";
  row.end_reason = "idle";
  row.ended_at_ms = 99;
  row.execution_count = 42;
  row.metadata_json = R"({"thread_id":"t"})";
  row.pool = "gpu";
  ASSERT_OK(store_->PutSession(row));
  got = store_->GetSession(row.id);
  ASSERT_OK(got);
  ExpectSameSession(*got, row);
  auto all = store_->ListSessions("", Page{});
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 1u);
}

TEST_F(SqliteStoreTest, UnknownIdsAreNotFound) {
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_TRUE(store_->GetSession(Id("sess", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->GetExecution(Id("exec", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->GetFile(Id("file", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->DeleteFile(Id("file", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->ListExecutions(Id("sess", 9), Page{}).status().IsNotFound());
  EXPECT_NE(store_->GetFile(Id("file", 9)).status().message().find(Id("file", 9)),
            std::string::npos);
}

TEST_F(SqliteStoreTest, ListSessionsPagesNewestFirstAndFiltersByStatus) {
  ASSERT_NO_FATAL_FAILURE(Open());
  // Put out of order: the order comes from the ids, not from insertion.
  for (int n : {3, 1, 5, 2, 4}) {
    ASSERT_OK(store_->PutSession(MakeSession(n, n % 2 == 1 ? "active" : "ended")));
  }
  auto page = store_->ListSessions("", Page{.limit = 2});
  ASSERT_OK(page);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{Id("sess", 5), Id("sess", 4)}));
  page = store_->ListSessions("", Page{.limit = 2, .after = page->back().id});
  ASSERT_OK(page);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{Id("sess", 3), Id("sess", 2)}));
  page = store_->ListSessions("", Page{.limit = 2, .after = page->back().id});
  ASSERT_OK(page);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{Id("sess", 1)}));
  ExpectSameSession(page->front(), MakeSession(1, "active"));
  page = store_->ListSessions("", Page{.limit = 2, .after = page->back().id});
  ASSERT_OK(page);
  EXPECT_TRUE(page->empty());

  auto active = store_->ListSessions("active", Page{});
  ASSERT_OK(active);
  EXPECT_EQ(Ids(*active), (std::vector<std::string>{Id("sess", 5), Id("sess", 3), Id("sess", 1)}));
  active = store_->ListSessions("active", Page{.limit = 1, .after = Id("sess", 5)});
  ASSERT_OK(active);
  EXPECT_EQ(Ids(*active), (std::vector<std::string>{Id("sess", 3)}));
  auto none = store_->ListSessions("no-such-status", Page{});
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(SqliteStoreTest, EndActiveSessionsEndsOnlyActiveOnes) {
  ASSERT_NO_FATAL_FAILURE(Open());
  for (int n = 1; n <= 3; ++n) ASSERT_OK(store_->PutSession(MakeSession(n, "active")));
  ASSERT_OK(store_->PutSession(MakeSession(4, "ended")));

  auto ended = store_->EndActiveSessions("server_restart", 777);
  ASSERT_OK(ended);
  EXPECT_EQ(*ended, 3);
  for (int n = 1; n <= 3; ++n) {
    auto row = store_->GetSession(Id("sess", n));
    ASSERT_OK(row);
    EXPECT_EQ(row->status, "ended");
    EXPECT_EQ(row->end_reason, "server_restart");
    EXPECT_EQ(row->ended_at_ms, 777);
    EXPECT_EQ(row->execution_count, n);  // Untouched.
  }
  auto already = store_->GetSession(Id("sess", 4));
  ASSERT_OK(already);
  ExpectSameSession(*already, MakeSession(4, "ended"));

  ended = store_->EndActiveSessions("server_restart", 888);
  ASSERT_OK(ended);
  EXPECT_EQ(*ended, 0);
}

// --- Executions --------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, RecordExecutionWritesExecutionFilesAndSession) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  session.execution_count = 0;
  ASSERT_OK(store_->PutSession(session));

  ExecutionRow execution = MakeExecution(1, session.id);
  std::vector<FileRow> outputs = {MakeOutput(1, execution), MakeOutput(2, execution)};
  session.execution_count = 1;
  session.last_active_at_ms = 9'999;
  ASSERT_OK(store_->RecordExecution(execution, outputs, session));

  auto got = store_->GetExecution(execution.id);
  ASSERT_OK(got);
  ExpectSameExecution(*got, execution);
  for (const FileRow& output : outputs) {
    auto file = store_->GetFile(output.id);
    ASSERT_OK(file);
    ExpectSameFile(*file, output);
  }
  auto stored_session = store_->GetSession(session.id);
  ASSERT_OK(stored_session);
  ExpectSameSession(*stored_session, session);

  // No artifacts is fine too.
  session.execution_count = 2;
  ASSERT_OK(store_->RecordExecution(MakeExecution(2, session.id), {}, session));
  stored_session = store_->GetSession(session.id);
  ASSERT_OK(stored_session);
  EXPECT_EQ(stored_session->execution_count, 2);
}

TEST_F(SqliteStoreTest, RecordExecutionIsAllOrNothing) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ASSERT_OK(store_->PutFile(MakeFile(7)));  // Its id will collide with the second artifact's.

  ExecutionRow execution = MakeExecution(1, session.id);
  std::vector<FileRow> outputs = {MakeOutput(8, execution), MakeOutput(7, execution)};
  SessionRow updated = session;
  updated.execution_count = session.execution_count + 1;
  updated.last_active_at_ms = 123'456;
  Status status = store_->RecordExecution(execution, outputs, updated);
  ASSERT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_NE(status.message().find(Id("file", 7)), std::string::npos) << status.message();

  EXPECT_TRUE(store_->GetExecution(execution.id).status().IsNotFound());
  EXPECT_TRUE(store_->GetFile(Id("file", 8)).status().IsNotFound());
  auto file7 = store_->GetFile(Id("file", 7));
  ASSERT_OK(file7);
  ExpectSameFile(*file7, MakeFile(7));  // The existing record was not overwritten.
  auto stored_session = store_->GetSession(session.id);
  ASSERT_OK(stored_session);
  ExpectSameSession(*stored_session, session);

  // The store is still usable: the failed transaction was rolled back, not left open.
  outputs.pop_back();
  ASSERT_OK(store_->RecordExecution(execution, outputs, updated));
  EXPECT_OK(store_->GetExecution(execution.id));
}

TEST_F(SqliteStoreTest, RecordExecutionRefusesAnUnknownSession) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);  // Never put.
  ExecutionRow execution = MakeExecution(1, session.id);
  Status status = store_->RecordExecution(execution, {MakeOutput(1, execution)}, session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(store_->GetSession(session.id).status().IsNotFound());
  EXPECT_TRUE(store_->GetExecution(execution.id).status().IsNotFound());
  EXPECT_TRUE(store_->GetFile(Id("file", 1)).status().IsNotFound());
}

TEST_F(SqliteStoreTest, RecordExecutionRefusesAMismatchedSessionRow) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  ASSERT_OK(store_->PutSession(MakeSession(2)));
  Status status = store_->RecordExecution(MakeExecution(1, Id("sess", 1)), {}, MakeSession(2));
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(store_->GetExecution(Id("exec", 1)).status().IsNotFound());
}

TEST_F(SqliteStoreTest, RecordExecutionRefusesADuplicateExecutionId) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ASSERT_OK(store_->RecordExecution(MakeExecution(1, session.id), {}, session));
  Status status = store_->RecordExecution(MakeExecution(1, session.id), {}, session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
}

TEST_F(SqliteStoreTest, ListExecutionsPagesOneSessionNewestFirst) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow first = MakeSession(1);
  SessionRow second = MakeSession(2);
  ASSERT_OK(store_->PutSession(first));
  ASSERT_OK(store_->PutSession(second));
  for (int n = 1; n <= 5; ++n) {
    ASSERT_OK(store_->RecordExecution(MakeExecution(n, first.id), {}, first));
    ASSERT_OK(store_->RecordExecution(MakeExecution(100 + n, second.id), {}, second));
  }
  auto page = store_->ListExecutions(first.id, Page{.limit = 3});
  ASSERT_OK(page);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{Id("exec", 5), Id("exec", 4), Id("exec", 3)}));
  ExpectSameExecution(page->front(), MakeExecution(5, first.id));
  page = store_->ListExecutions(first.id, Page{.limit = 3, .after = Id("exec", 3)});
  ASSERT_OK(page);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{Id("exec", 2), Id("exec", 1)}));

  auto empty_session = MakeSession(3);
  ASSERT_OK(store_->PutSession(empty_session));
  auto none = store_->ListExecutions(empty_session.id, Page{});
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

// --- Files -------------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, PutFileRefusesADuplicateId) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutFile(MakeFile(1)));
  FileRow again = MakeFile(1);
  again.filename = "other.txt";
  Status status = store_->PutFile(again);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  auto got = store_->GetFile(Id("file", 1));
  ASSERT_OK(got);
  EXPECT_EQ(got->filename, MakeFile(1).filename);
}

TEST_F(SqliteStoreTest, ListFilesFiltersAndPages) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ExecutionRow e1 = MakeExecution(1, session.id);
  ExecutionRow e2 = MakeExecution(2, session.id);
  ASSERT_OK(store_->RecordExecution(e1, {MakeOutput(2, e1), MakeOutput(4, e1)}, session));
  ASSERT_OK(store_->RecordExecution(e2, {MakeOutput(5, e2)}, session));
  ASSERT_OK(store_->PutFile(MakeFile(1)));
  ASSERT_OK(store_->PutFile(MakeFile(3)));

  auto all = store_->ListFiles(FileFilter{}, Page{});
  ASSERT_OK(all);
  EXPECT_EQ(Ids(*all), (std::vector<std::string>{Id("file", 5), Id("file", 4), Id("file", 3),
                                                 Id("file", 2), Id("file", 1)}));
  auto inputs = store_->ListFiles(FileFilter{.purpose = "input"}, Page{});
  ASSERT_OK(inputs);
  EXPECT_EQ(Ids(*inputs), (std::vector<std::string>{Id("file", 3), Id("file", 1)}));
  auto by_session = store_->ListFiles(FileFilter{.session_id = session.id}, Page{});
  ASSERT_OK(by_session);
  EXPECT_EQ(Ids(*by_session),
            (std::vector<std::string>{Id("file", 5), Id("file", 4), Id("file", 2)}));
  auto by_execution = store_->ListFiles(FileFilter{.execution_id = e1.id}, Page{});
  ASSERT_OK(by_execution);
  EXPECT_EQ(Ids(*by_execution), (std::vector<std::string>{Id("file", 4), Id("file", 2)}));
  ExpectSameFile(by_execution->front(), MakeOutput(4, e1));
  auto combined = store_->ListFiles(
      FileFilter{.purpose = "output", .session_id = session.id, .execution_id = e1.id},
      Page{.limit = 1, .after = Id("file", 4)});
  ASSERT_OK(combined);
  EXPECT_EQ(Ids(*combined), (std::vector<std::string>{Id("file", 2)}));
  auto mismatch = store_->ListFiles(FileFilter{.purpose = "input", .execution_id = e1.id}, Page{});
  ASSERT_OK(mismatch);
  EXPECT_TRUE(mismatch->empty());

  auto paged = store_->ListFiles(FileFilter{}, Page{.limit = 2, .after = Id("file", 4)});
  ASSERT_OK(paged);
  EXPECT_EQ(Ids(*paged), (std::vector<std::string>{Id("file", 3), Id("file", 2)}));
}

TEST_F(SqliteStoreTest, PageLimitIsClampedToOneThroughAThousand) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ExecutionRow execution = MakeExecution(1, session.id);
  std::vector<FileRow> outputs;
  for (int n = 1; n <= 1005; ++n) outputs.push_back(MakeOutput(n, execution));
  ASSERT_OK(store_->RecordExecution(execution, outputs, session));  // One transaction.

  auto big = store_->ListFiles(FileFilter{}, Page{.limit = 5000});
  ASSERT_OK(big);
  EXPECT_EQ(big->size(), 1001u);
  EXPECT_EQ(big->front().id, Id("file", 1005));
  for (int limit : {0, -7}) {
    auto small = store_->ListFiles(FileFilter{}, Page{.limit = limit});
    ASSERT_OK(small);
    EXPECT_EQ(Ids(*small), (std::vector<std::string>{Id("file", 1005)}));
  }
  auto sessions = store_->ListSessions("", Page{.limit = 0});
  ASSERT_OK(sessions);
  EXPECT_EQ(sessions->size(), 1u);
}

TEST_F(SqliteStoreTest, DeleteFileCountsTheRecordsStillNamingItsBlob) {
  ASSERT_NO_FATAL_FAILURE(Open());
  const std::string shared(64, 'a');
  const std::string alone(64, 'f');
  for (int n = 1; n <= 3; ++n) ASSERT_OK(store_->PutFile(MakeFile(n, shared)));
  ASSERT_OK(store_->PutFile(MakeFile(4, alone)));

  auto blobs = store_->ReferencedBlobs();
  ASSERT_OK(blobs);
  EXPECT_EQ(*blobs, (std::vector<std::string>{shared, alone}));

  auto remaining = store_->DeleteFile(Id("file", 2));
  ASSERT_OK(remaining);
  EXPECT_EQ(*remaining, 2);
  EXPECT_TRUE(store_->GetFile(Id("file", 2)).status().IsNotFound());
  EXPECT_TRUE(store_->DeleteFile(Id("file", 2)).status().IsNotFound());
  remaining = store_->DeleteFile(Id("file", 4));
  ASSERT_OK(remaining);
  EXPECT_EQ(*remaining, 0);
  blobs = store_->ReferencedBlobs();
  ASSERT_OK(blobs);
  EXPECT_EQ(*blobs, (std::vector<std::string>{shared}));
  remaining = store_->DeleteFile(Id("file", 1));
  ASSERT_OK(remaining);
  EXPECT_EQ(*remaining, 1);
  remaining = store_->DeleteFile(Id("file", 3));
  ASSERT_OK(remaining);
  EXPECT_EQ(*remaining, 0);
  blobs = store_->ReferencedBlobs();
  ASSERT_OK(blobs);
  EXPECT_TRUE(blobs->empty());
}

TEST_F(SqliteStoreTest, ExpiredFilesAreThoseDueOldestFirst) {
  ASSERT_NO_FATAL_FAILURE(Open());
  // id n expires at expiry[n]; 0 never expires. Ids and expiry orders differ on purpose.
  const int64_t expiry[] = {0, 300, 100, 0, 200};
  for (int n = 1; n <= 4; ++n) {
    FileRow file = MakeFile(n);
    file.expires_at_ms = expiry[n];
    ASSERT_OK(store_->PutFile(file));
  }
  auto due = store_->ExpiredFiles(250, 10);
  ASSERT_OK(due);
  EXPECT_EQ(Ids(*due), (std::vector<std::string>{Id("file", 2), Id("file", 4)}));
  EXPECT_EQ(due->front().expires_at_ms, 100);
  due = store_->ExpiredFiles(300, 10);  // Inclusive.
  ASSERT_OK(due);
  EXPECT_EQ(Ids(*due), (std::vector<std::string>{Id("file", 2), Id("file", 4), Id("file", 1)}));
  due = store_->ExpiredFiles(300, 1);
  ASSERT_OK(due);
  EXPECT_EQ(Ids(*due), (std::vector<std::string>{Id("file", 2)}));
  due = store_->ExpiredFiles(99, 10);
  ASSERT_OK(due);
  EXPECT_TRUE(due->empty());
  due = store_->ExpiredFiles(int64_t{1} << 62, 10);  // Never-expiring files stay out.
  ASSERT_OK(due);
  EXPECT_EQ(due->size(), 3u);
}

TEST_F(SqliteStoreTest, TextRoundTripsByteForByte) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ExecutionRow execution = MakeExecution(1, session.id);
  static constexpr char kCode[] = "s = 'caf\xc3\xa9 \xf0\x9f\x90\x8d'\n# a NUL: \0 end";
  execution.code = std::string(kCode, sizeof(kCode) - 1);
  execution.record_json = R"({"stdout":"it's \"quoted\"; DROP TABLE files; --"})";
  ASSERT_OK(store_->RecordExecution(execution, {}, session));
  auto got = store_->GetExecution(execution.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->code, execution.code);
  EXPECT_EQ(got->code.size(), sizeof(kCode) - 1);
  EXPECT_EQ(got->record_json, execution.record_json);
}

// --- Concurrency, locking and durability ------------------------------------------------------

TEST_F(SqliteStoreTest, ConcurrentWritersOnOneStore) {
  ASSERT_NO_FATAL_FAILURE(Open());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SessionRow session = MakeSession(t + 1);
      session.execution_count = 0;
      if (!store_->PutSession(session).ok()) ++failures;
      for (int i = 0; i < kPerThread; ++i) {
        const int n = (t + 1) * 1000 + i;
        ExecutionRow execution = MakeExecution(n, session.id);
        ++session.execution_count;
        if (!store_->RecordExecution(execution, {MakeOutput(n, execution)}, session).ok()) {
          ++failures;
        }
        if (!store_->ListFiles(FileFilter{.session_id = session.id}, Page{}).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    auto session = store_->GetSession(Id("sess", t + 1));
    ASSERT_OK(session);
    EXPECT_EQ(session->execution_count, kPerThread);
    auto executions = store_->ListExecutions(session->id, Page{.limit = 1000});
    ASSERT_OK(executions);
    EXPECT_EQ(executions->size(), static_cast<size_t>(kPerThread));
  }
  auto files = store_->ListFiles(FileFilter{}, Page{.limit = 1000});
  ASSERT_OK(files);
  EXPECT_EQ(files->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(SqliteStoreTest, ConcurrentWritersOnTwoConnections) {
  // Two stores on one file stand for two processes: SQLite's locks and the busy timeout, not our
  // mutex, keep them apart.
  ASSERT_NO_FATAL_FAILURE(Open());
  auto other = OpenSqliteStore(path_);
  ASSERT_OK(other);
  MetadataStore* stores[] = {store_.get(), other.value().get()};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        Status status = stores[t % 2]->PutFile(MakeFile(t * 100 + i));
        if (!status.ok()) {
          ADD_FAILURE() << status.ToString();
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (MetadataStore* store : stores) {
    auto files = store->ListFiles(FileFilter{}, Page{.limit = 1000});
    ASSERT_OK(files);
    EXPECT_EQ(files->size(), 80u);
  }
}

TEST_F(SqliteStoreTest, ABusyDatabaseIsUnavailableAfterTheTimeoutWhileReadsGoOn) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  RawDb raw(path_);
  raw.Exec("BEGIN IMMEDIATE");
  raw.Exec("UPDATE sessions SET pool = 'held' WHERE id = '" + Id("sess", 1) + "'");

  // WAL: readers see the last commit while another connection holds the write lock.
  auto read = store_->GetSession(Id("sess", 1));
  ASSERT_OK(read);
  EXPECT_EQ(read->pool, "default");

  const auto start = std::chrono::steady_clock::now();
  Status status = store_->PutSession(MakeSession(2));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_GE(waited, std::chrono::seconds(4));  // It waited for the lock before giving up.

  raw.Exec("ROLLBACK");
  EXPECT_OK(store_->PutSession(MakeSession(2)));
}

TEST_F(SqliteStoreTest, EverythingSurvivesReopening) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ExecutionRow execution = MakeExecution(1, session.id);
  FileRow output = MakeOutput(1, execution);
  FileRow input = MakeFile(2);
  input.expires_at_ms = 50;
  session.execution_count = 10;
  ASSERT_OK(store_->RecordExecution(execution, {output}, session));
  ASSERT_OK(store_->PutFile(input));
  auto ended = store_->EndActiveSessions("closed", 70);
  ASSERT_OK(ended);
  session.status = "ended";
  session.end_reason = "closed";
  session.ended_at_ms = 70;

  ASSERT_NO_FATAL_FAILURE(Open());
  auto got_session = store_->GetSession(session.id);
  ASSERT_OK(got_session);
  ExpectSameSession(*got_session, session);
  auto got_execution = store_->GetExecution(execution.id);
  ASSERT_OK(got_execution);
  ExpectSameExecution(*got_execution, execution);
  auto got_output = store_->GetFile(output.id);
  ASSERT_OK(got_output);
  ExpectSameFile(*got_output, output);
  auto due = store_->ExpiredFiles(60, 10);
  ASSERT_OK(due);
  ASSERT_EQ(due->size(), 1u);
  ExpectSameFile(due->front(), input);
}

TEST_F(SqliteStoreTest, SessionInputsRecordTheFirstPlacementAndSurviveTheirFile) {
  Open();
  ASSERT_OK(store_->AddSessionInputs({{"sess_a", "file_1", "in.csv", "aa", 100},
                                      {"sess_a", "file_2", "two.csv", "bb", 200},
                                      {"sess_b", "file_1", "in.csv", "aa", 300}}));
  // Placing again keeps the first time.
  ASSERT_OK(store_->AddSessionInputs({{"sess_a", "file_1", "in.csv", "aa", 999}}));
  auto inputs = store_->SessionInputs("sess_a");
  ASSERT_OK(inputs);
  ASSERT_EQ(inputs->size(), 2u);
  EXPECT_EQ((*inputs)[0].file_id, "file_1");
  EXPECT_EQ((*inputs)[0].placed_at_ms, 100);
  EXPECT_EQ((*inputs)[1].sha256, "bb");
  auto uses = store_->UsesOfFile("file_1", 10);
  ASSERT_OK(uses);
  ASSERT_EQ(uses->size(), 2u);
  EXPECT_EQ((*uses)[0].session_id, "sess_a");
  EXPECT_EQ((*uses)[1].session_id, "sess_b");
  auto one = store_->UsesOfFile("file_1", 1);
  ASSERT_OK(one);
  EXPECT_EQ(one->size(), 1u);
  auto none = store_->SessionInputs("sess_unknown");
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  Open();  // Durable.
  auto again = store_->SessionInputs("sess_a");
  ASSERT_OK(again);
  EXPECT_EQ(again->size(), 2u);
}

}  // namespace
}  // namespace pycell::store

// --- Audit trail and usage (migration 3) --------------------------------------------------------

namespace pycell::store {
namespace {

Trail AuditTrail(const std::string& action, const std::string& target, const std::string& id = "") {
  Trail trail;
  trail.audit.emplace();
  trail.audit->id = id;
  trail.audit->time_ms = 42;
  trail.audit->principal = "alice";
  trail.audit->action = action;
  trail.audit->target = target;
  return trail;
}

TEST_F(SqliteStoreTest, EveryWriteAppendsItsEventToOneVerifiableChain) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutFile(MakeFile(1), AuditTrail("file.upload", Id("file", 1))));
  ASSERT_OK(store_->PutSession(MakeSession(1), AuditTrail("session.create", Id("sess", 1))));
  ExecutionRow exec = MakeExecution(1, Id("sess", 1));
  ASSERT_OK(store_->RecordExecution(exec, {MakeOutput(2, exec)}, MakeSession(1),
                                    AuditTrail("execution.run", exec.id)));
  ASSERT_OK(store_->DeleteFile(Id("file", 1), AuditTrail("file.delete", Id("file", 1))));
  ASSERT_OK(store_->Record(AuditTrail("file.download", Id("file", 2))));
  AuditFilter all;
  auto events = store_->ListAudit(all);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 5u);
  EXPECT_EQ((*events)[2].action, "execution.run");
  EXPECT_EQ((*events)[0].prev_hash, audit::kGenesisHash);
  EXPECT_FALSE(audit::VerifyChain(*events).has_value());
  AuditFilter page;
  page.after_seq = 3;
  page.action = "file.download";
  auto filtered = store_->ListAudit(page);
  ASSERT_OK(filtered);
  ASSERT_EQ(filtered->size(), 1u);
  EXPECT_EQ((*filtered)[0].seq, 5);
}

TEST_F(SqliteStoreTest, AnActionWhoseEventCannotBeWrittenLeavesNothing) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->Record(AuditTrail("file.download", "x", "evt_same")));
  // The event's id is taken: the event cannot be written, so the file must not be either.
  Status put = store_->PutFile(MakeFile(1), AuditTrail("file.upload", Id("file", 1), "evt_same"));
  EXPECT_FALSE(put.ok());
  EXPECT_TRUE(store_->GetFile(Id("file", 1)).status().IsNotFound());
  ASSERT_OK(store_->PutFile(MakeFile(1)));
  EXPECT_FALSE(
      store_->DeleteFile(Id("file", 1), AuditTrail("file.delete", Id("file", 1), "evt_same")).ok());
  auto kept = store_->GetFile(Id("file", 1));
  EXPECT_OK(kept);  // Still there.
}

TEST_F(SqliteStoreTest, TheAuditListenerHearsCommittedEventsOnly) {
  ASSERT_NO_FATAL_FAILURE(Open());
  std::vector<audit::AuditEvent> heard;
  store_->SetAuditListener([&](const audit::AuditEvent& e) { heard.push_back(e); });
  ASSERT_OK(store_->PutFile(MakeFile(1), AuditTrail("file.upload", Id("file", 1), "evt_one")));
  EXPECT_FALSE(
      store_->PutFile(MakeFile(2), AuditTrail("file.upload", Id("file", 2), "evt_one")).ok());
  ASSERT_EQ(heard.size(), 1u);  // The refused write's event was rolled back, and not heard.
  EXPECT_EQ(heard[0].seq, 1);
  EXPECT_EQ(heard[0].hash, audit::EventHash(heard[0]));
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  ASSERT_OK(store_->EndActiveSessions("server_restart", 99));
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[1].action, "session.end");
  EXPECT_EQ(heard[1].principal, "system");
}

TEST_F(SqliteStoreTest, TheAuditTableRefusesUpdatesAndDeletes) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->Record(AuditTrail("file.download", "x")));
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_NE(
      sqlite3_exec(db, "UPDATE audit_events SET principal = 'mallory'", nullptr, nullptr, &error),
      SQLITE_OK);
  EXPECT_NE(std::string(error ? error : "").find("append-only"), std::string::npos);
  sqlite3_free(error);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit_events", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, RecordsMadeBeforeProjectsBelongToTheDefaultProject) {
  // A database at schema 2 with a session, an execution and a file, then opened by this binary.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, "
        "applied_at_ms BIGINT NOT NULL);";
    for (const Migration& m : Migrations()) {
      if (m.version > 2) break;
      sql += std::string(m.sql) + "INSERT INTO schema_migrations VALUES (" +
             std::to_string(m.version) + ", 1);";
    }
    sql += "INSERT INTO sessions VALUES ('" + Id("sess", 1) +
           "', 'default', 'ended', 'closed', 1, 2, 3, 4, '{}', '{}', 0);"
           "INSERT INTO files VALUES ('" +
           Id("file", 1) + "', 'a.csv', 3, '" + std::string(64, 'a') +
           "', 'text/csv', 'input', 1, 0, '', '', '');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  auto session = store_->GetSession(Id("sess", 1));
  ASSERT_OK(session);
  EXPECT_EQ(session->project_id, kDefaultProjectId);
  auto file = store_->GetFile(Id("file", 1));
  ASSERT_OK(file);
  EXPECT_EQ(file->project_id, kDefaultProjectId);
  auto project = store_->GetProject(kDefaultProjectId);
  ASSERT_OK(project);
  EXPECT_EQ(project->name, "default");
}

TEST_F(SqliteStoreTest, QuotaCountsAndUsageQueriesSeeOneProject) {
  ASSERT_NO_FATAL_FAILURE(Open());
  for (int n = 1; n <= 3; ++n) {
    SessionRow s = MakeSession(n, n == 3 ? "ended" : "active");
    s.project_id = n == 2 ? "proj_b" : "proj_a";
    s.cpu_ms = 100 * n;
    ASSERT_OK(store_->PutSession(s));
    ExecutionRow e = MakeExecution(n, s.id);
    e.project_id = s.project_id;
    e.cpu_ms = 250;
    FileRow f = MakeFile(10 + n);
    f.project_id = s.project_id;
    ASSERT_OK(store_->RecordExecution(e, {f}, s));
  }
  EXPECT_EQ(*store_->CountActiveSessions("proj_a"), 1);
  EXPECT_EQ(*store_->CountSessionsSince("proj_a", 0), 2);
  EXPECT_EQ(*store_->CountSessionsSince("proj_a", 1'002), 1);
  EXPECT_DOUBLE_EQ(*store_->CpuMsSince("proj_a", 0), 500);
  EXPECT_EQ(*store_->StoredBytes("proj_b"), 112);
  EXPECT_EQ(store_->SessionsCreated(0, 10'000, "proj_a")->size(), 2u);
  EXPECT_EQ(store_->SessionsCreated(0, 10'000, "")->size(), 3u);
  Trail usage;
  usage.usage.push_back({5'000, 5'000, "proj_a", "alice", "", "", "download_bytes", 7});
  usage.usage.push_back({9'000, 1'000, "proj_b", "bob", "", "", "storage_bytes", 9});
  ASSERT_OK(store_->Record(usage));
  EXPECT_EQ(store_->UsageEvents(4'000, 6'000, "")->size(), 2u);  // The storage spans it.
  EXPECT_EQ(store_->UsageEvents(4'000, 6'000, "proj_a")->size(), 1u);
  EXPECT_EQ(store_->UsageEvents(9'001, 10'000, "")->size(), 0u);
}

}  // namespace
}  // namespace pycell::store
