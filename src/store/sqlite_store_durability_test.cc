// Tests of the MetadataStore, continued: bytes kept as written, concurrent writers, reopening,
// session inputs, and the audit chain and usage (sqlite_store_test.cc has the rest, and says which
// run on both backends).
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

TEST_P(StoreTest, TextRoundTripsByteForByte) {
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

TEST_P(StoreTest, ConcurrentWritersOnOneStore) {
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

TEST_P(StoreTest, ConcurrentWritersOnTwoConnections) {
  // Two stores on one database stand for two processes: the database's locks (SQLite's and its
  // busy timeout; PostgreSQL's row locks), not our mutex, keep them apart.
  ASSERT_NO_FATAL_FAILURE(Open());
  auto other = OpenAnother();
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

TEST_P(StoreTest, EverythingSurvivesReopening) {
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

TEST_P(StoreTest, SessionInputsRecordTheFirstPlacementAndSurviveTheirFile) {
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

// --- Audit trail and usage (migration 3) --------------------------------------------------------

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

TEST_P(StoreTest, EveryWriteAppendsItsEventToOneVerifiableChain) {
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

TEST_P(StoreTest, AnActionWhoseEventCannotBeWrittenLeavesNothing) {
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

TEST_P(StoreTest, TheAuditListenerHearsCommittedEventsOnly) {
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

TEST_P(StoreTest, QuotaCountsAndUsageQueriesSeeOneProject) {
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
