// Tests of the MetadataStore. TEST_P(StoreTest, …) runs on both backends (store_test_fixture.h):
// a real SQLite file in a temporary folder and a real PostgreSQL database. TEST_F(SqliteStoreTest,
// …) is SQLite's own: where a test needs to see or bend the file behind the store's back (the
// version row, a held lock, the journal mode) it uses sqlite3 directly, as an operator's tool
// would.
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
#include "store/sqlite_store_test_util.h"
#include "store/store_test_fixture.h"
#include "test_util.h"

namespace pycell::store {
namespace {

using namespace store_test;  // NOLINT: the shared test helpers.

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

TEST_P(StoreTest, PutSessionInsertsThenReplacesTheWholeRow) {
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

TEST_P(StoreTest, UnknownIdsAreNotFound) {
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_TRUE(store_->GetSession(Id("sess", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->GetExecution(Id("exec", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->GetFile(Id("file", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->DeleteFile(Id("file", 9)).status().IsNotFound());
  EXPECT_TRUE(store_->ListExecutions(Id("sess", 9), Page{}).status().IsNotFound());
  EXPECT_NE(store_->GetFile(Id("file", 9)).status().message().find(Id("file", 9)),
            std::string::npos);
}

TEST_P(StoreTest, ListSessionsPagesNewestFirstAndFiltersByStatus) {
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

TEST_P(StoreTest, EndActiveSessionsEndsOnlyActiveOnes) {
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

TEST_P(StoreTest, RecordExecutionWritesExecutionFilesAndSession) {
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

TEST_P(StoreTest, RecordExecutionIsAllOrNothing) {
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

TEST_P(StoreTest, RecordExecutionRefusesAnUnknownSession) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);  // Never put.
  ExecutionRow execution = MakeExecution(1, session.id);
  Status status = store_->RecordExecution(execution, {MakeOutput(1, execution)}, session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(store_->GetSession(session.id).status().IsNotFound());
  EXPECT_TRUE(store_->GetExecution(execution.id).status().IsNotFound());
  EXPECT_TRUE(store_->GetFile(Id("file", 1)).status().IsNotFound());
}

TEST_P(StoreTest, RecordExecutionRefusesAMismatchedSessionRow) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  ASSERT_OK(store_->PutSession(MakeSession(2)));
  Status status = store_->RecordExecution(MakeExecution(1, Id("sess", 1)), {}, MakeSession(2));
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(store_->GetExecution(Id("exec", 1)).status().IsNotFound());
}

TEST_P(StoreTest, RecordExecutionRefusesADuplicateExecutionId) {
  ASSERT_NO_FATAL_FAILURE(Open());
  SessionRow session = MakeSession(1);
  ASSERT_OK(store_->PutSession(session));
  ASSERT_OK(store_->RecordExecution(MakeExecution(1, session.id), {}, session));
  Status status = store_->RecordExecution(MakeExecution(1, session.id), {}, session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
}

TEST_P(StoreTest, ListExecutionsPagesOneSessionNewestFirst) {
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

TEST_P(StoreTest, PutFileRefusesADuplicateId) {
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

TEST_P(StoreTest, ListFilesFiltersAndPages) {
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

TEST_P(StoreTest, PageLimitIsClampedToOneThroughAThousand) {
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

TEST_P(StoreTest, DeleteFileCountsTheRecordsStillNamingItsBlob) {
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

TEST_P(StoreTest, ExpiredFilesAreThoseDueOldestFirst) {
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

}  // namespace
}  // namespace pycell::store
