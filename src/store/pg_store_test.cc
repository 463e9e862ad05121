// Tests of the PostgreSQL MetadataStore's own behaviour, on a real server (pg_test_server.h): the
// explicit migrations and the refusal to open an unmigrated database, bad URLs, the append-only
// audit table, the audit chain with many writers, a lost connection and a held lock. What every
// backend must do is tested once for both (StoreTest, in sqlite_store_test.cc and
// sqlite_store_durability_test.cc). Where a test bends the database behind the store's back it
// uses libpq directly, as psql would.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_event.h"
#include "store/metadata_store.h"
#include "store/migrations.h"
#include "store/pg_db.h"
#include "store/pg_migrations.h"
#include "store/pg_test_server.h"
#include "store/sqlite_store_test_util.h"
#include "test_util.h"

namespace pycell::store {
namespace {

using namespace store_test;  // NOLINT: the shared test helpers.

// A raw libpq connection, as an operator's psql.
class RawPg {
 public:
  explicit RawPg(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
  }
  ~RawPg() { PQfinish(conn_); }
  // Runs `sql`; the error message, or "" when it worked.
  std::string Exec(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    std::string error = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
                            ? ""
                            : std::string(PQresultErrorMessage(result));
    PQclear(result);
    return error;
  }
  // The first column of the first row ("" when there is none).
  std::string Query(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    std::string out;
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(result);
    if (PQntuples(result) > 0) out = PQgetvalue(result, 0, 0);
    PQclear(result);
    return out;
  }

 private:
  PGconn* conn_;
};

Trail AuditTrail(const std::string& action, const std::string& target) {
  Trail trail;
  trail.audit.emplace();
  trail.audit->time_ms = 42;
  trail.audit->principal = "alice";
  trail.audit->action = action;
  trail.audit->target = target;
  return trail;
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PgTestServer::Get();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = *server;
    auto url = server_->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
  }

  // Migrates url_ and opens it into store_.
  void Open() {
    store_.reset();
    ASSERT_OK(MigratePostgres(url_));
    auto store = OpenPostgresStore(url_);
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  PgTestServer* server_ = nullptr;
  std::string url_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_F(PgStoreTest, MigrationsKeepSqlitesNumbers) {
  ASSERT_EQ(PostgresMigrations().size(), Migrations().size());
  for (size_t i = 0; i < Migrations().size(); ++i) {
    EXPECT_EQ(PostgresMigrations()[i].version, Migrations()[i].version);
    EXPECT_EQ(PostgresMigrations()[i].description, Migrations()[i].description);
    EXPECT_FALSE(PostgresMigrations()[i].sql.empty());
  }
}

TEST_F(PgStoreTest, OpenRefusesAnUnmigratedDatabaseAndSaysHowToMigrate) {
  auto store = OpenPostgresStore(url_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsFailedPrecondition()) << store.status().ToString();
  EXPECT_NE(store.status().message().find("run `pycell migrate --store URL`"), std::string::npos)
      << store.status().message();
  EXPECT_NE(store.status().message().find("schema version 0"), std::string::npos)
      << store.status().message();
  // Nothing was created by the attempt.
  RawPg raw(url_);
  EXPECT_EQ(raw.Query("SELECT to_regclass('sessions') IS NULL"), "t");

  auto version = MigratePostgres(url_);
  ASSERT_OK(version);
  EXPECT_EQ(*version, LatestSchemaVersion());
  store = OpenPostgresStore(url_);
  ASSERT_OK(store);
  auto reported = (*store)->SchemaVersion();
  ASSERT_OK(reported);
  EXPECT_EQ(*reported, LatestSchemaVersion());
}

TEST_F(PgStoreTest, OpenRefusesADatabaseMigratedOnlyPartWay) {
  ASSERT_NO_FATAL_FAILURE(Open());
  store_.reset();
  RawPg raw(url_);
  ASSERT_EQ(raw.Exec("DELETE FROM schema_migrations WHERE version = " +
                     std::to_string(LatestSchemaVersion())),
            "");
  auto store = OpenPostgresStore(url_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsFailedPrecondition()) << store.status().ToString();
  EXPECT_NE(store.status().message().find(
                "schema version " + std::to_string(LatestSchemaVersion() - 1) +
                " and this pycell needs " + std::to_string(LatestSchemaVersion())),
            std::string::npos)
      << store.status().message();
}

TEST_F(PgStoreTest, MigrateAppliesEachMigrationOnceAndRefusesANewerDatabase) {
  ASSERT_OK(MigratePostgres(url_));
  RawPg raw(url_);
  const std::string applied_at =
      raw.Query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1");
  EXPECT_GT(std::stoll(applied_at), 0);
  ASSERT_OK(MigratePostgres(url_));
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(LatestSchemaVersion()));
  EXPECT_EQ(raw.Query("SELECT applied_at_ms FROM schema_migrations WHERE version = 1"), applied_at);

  const int newer = LatestSchemaVersion() + 98;
  ASSERT_EQ(raw.Exec("INSERT INTO schema_migrations VALUES (" + std::to_string(newer) + ", 1)"),
            "");
  for (Status status : {MigratePostgres(url_).status(), OpenPostgresStore(url_).status()}) {
    EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
    EXPECT_NE(status.message().find("database schema version " + std::to_string(newer) +
                                    " is newer than this pycell"),
              std::string::npos)
        << status.message();
  }
}

TEST_F(PgStoreTest, RecordsMadeBeforeProjectsBelongToTheDefaultProject) {
  // A database at schema 2 with a session and a file, as an older pycell left it.
  {
    RawPg raw(url_);
    std::string sql =
        "CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, "
        "applied_at_ms BIGINT NOT NULL);";
    for (const Migration& m : PostgresMigrations()) {
      if (m.version > 2) break;
      sql += std::string(m.sql) + "INSERT INTO schema_migrations VALUES (" +
             std::to_string(m.version) + ", 1);";
    }
    sql += "INSERT INTO sessions VALUES ('" + Id("sess", 1) +
           "', 'default', 'ended', 'closed', 1, 2, 3, 4, '{}', '{}', 0);"
           "INSERT INTO files VALUES ('" +
           Id("file", 1) + "', 'a.csv', 3, '" + std::string(64, 'a') +
           "', 'text/csv', 'input', 1, 0, '', '', '');";
    ASSERT_EQ(raw.Exec(sql), "");
  }
  EXPECT_TRUE(OpenPostgresStore(url_).status().IsFailedPrecondition());
  ASSERT_NO_FATAL_FAILURE(Open());
  auto session = store_->GetSession(Id("sess", 1));
  ASSERT_OK(session);
  EXPECT_EQ(session->project_id, kDefaultProjectId);
  EXPECT_EQ(session->forked_from, "");
  auto file = store_->GetFile(Id("file", 1));
  ASSERT_OK(file);
  EXPECT_EQ(file->project_id, kDefaultProjectId);
  EXPECT_EQ(file->filename, "a.csv");
  auto project = store_->GetProject(kDefaultProjectId);
  ASSERT_OK(project);
  EXPECT_EQ(project->name, "default");
}

TEST_F(PgStoreTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  constexpr int kMigrators = 4;
  std::vector<Status> statuses(kMigrators);
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&, i] { statuses[i] = MigratePostgres(url_).status(); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : statuses) EXPECT_OK(status);
  RawPg raw(url_);
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(LatestSchemaVersion()));
}

TEST_F(PgStoreTest, BadUrlsAreClearErrorsThatHideThePassword) {
  // Malformed: the caller's mistake.
  for (const std::string& url :
       {std::string("postgresql://pycell:hunter2@127.0.0.1:notaport/db"),
        std::string("postgresql://pycell:hunter2@127.0.0.1/db?nosuchoption=1"),
        std::string("postgres://pycell:hunter2@[::1/db")}) {
    for (Status status : {OpenMetadataStore(url).status(), MigratePostgres(url).status()}) {
      EXPECT_TRUE(status.IsInvalidArgument()) << url << ": " << status.ToString();
      EXPECT_EQ(status.message().find("hunter2"), std::string::npos) << status.message();
      EXPECT_NE(status.message().find("postgres store"), std::string::npos) << status.message();
    }
  }
  // Well-formed but nobody there (port 1 on loopback refuses at once), or no such database.
  for (const std::string& url : {std::string("postgresql://pycell:hunter2@127.0.0.1:1/db"),
                                 server_->Url("no_such_database")}) {
    const auto start = std::chrono::steady_clock::now();
    Status status = OpenMetadataStore(url).status();
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(kPgConnectTimeoutSeconds + 2));
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_NE(status.message().find("cannot connect"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("hunter2"), std::string::npos) << status.message();
  }
}

TEST_F(PgStoreTest, RedactPostgresUrlHidesPasswordsOnly) {
  EXPECT_EQ(RedactPostgresUrl("postgresql://u:secret@h:5432/d"), "postgresql://u:***@h:5432/d");
  EXPECT_EQ(RedactPostgresUrl("postgresql://u@h/d"), "postgresql://u@h/d");
  EXPECT_EQ(RedactPostgresUrl("postgresql://u:p%40ss@h/d?sslmode=require&password=x"),
            "postgresql://u:***@h/d?sslmode=require&password=***");
  EXPECT_EQ(RedactPostgresUrl("postgresql://h/d?password=x&sslmode=require"),
            "postgresql://h/d?password=***&sslmode=require");
}

TEST_F(PgStoreTest, TheAuditTableRefusesUpdatesDeletesAndTruncate) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->Record(AuditTrail("file.download", "x")));
  RawPg raw(url_);
  for (const char* sql : {"UPDATE audit_events SET principal = 'mallory'",
                          "DELETE FROM audit_events", "TRUNCATE audit_events"}) {
    EXPECT_NE(raw.Exec(sql).find("append-only"), std::string::npos) << sql;
  }
  EXPECT_EQ(raw.Query("SELECT principal FROM audit_events"), "alice");
}

// The audit chain's many-writers case: several stores (connections, standing for pycell
// processes) append at once, each action in its own transaction. Every event must get its own
// seq, in one unbroken chain; without the head row's lock two writers would read the same head
// and the second insert would fail on the seq's primary key, or fork the chain.
TEST_F(PgStoreTest, ManyWritersAppendToOneUnbrokenChain) {
  ASSERT_NO_FATAL_FAILURE(Open());
  constexpr int kStores = 4;
  constexpr int kThreadsPerStore = 2;
  constexpr int kPerThread = 25;
  std::vector<std::unique_ptr<MetadataStore>> stores;
  for (int i = 0; i < kStores; ++i) {
    auto store = OpenPostgresStore(url_);
    ASSERT_OK(store);
    stores.push_back(std::move(store).value());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kStores * kThreadsPerStore; ++t) {
    threads.emplace_back([&, t] {
      MetadataStore& store = *stores[t % kStores];
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * 1000 + i;
        // Half the events ride on a change, half are alone.
        Status status = i % 2 == 0
                            ? store.PutFile(MakeFile(n), AuditTrail("file.upload", Id("file", n)))
                            : store.Record(AuditTrail("file.download", Id("file", n)));
        if (!status.ok()) {
          ADD_FAILURE() << status.ToString();
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  AuditFilter all;
  all.limit = 10001;
  auto events = store_->ListAudit(all);
  ASSERT_OK(events);
  constexpr int kTotal = kStores * kThreadsPerStore * kPerThread;
  ASSERT_EQ(events->size(), static_cast<size_t>(kTotal));
  EXPECT_EQ(events->back().seq, kTotal);
  auto broken = audit::VerifyChain(*events);
  EXPECT_FALSE(broken.has_value()) << broken->seq << ": " << broken->reason;
  auto totals = store_->Totals();
  ASSERT_OK(totals);
  EXPECT_EQ(totals->audit_events, kTotal);
  EXPECT_EQ(totals->files, (kPerThread + 1) / 2 * kStores * kThreadsPerStore);
}

TEST_F(PgStoreTest, ALostConnectionIsReestablishedOnce) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  const std::string database = url_.substr(url_.rfind('/') + 1);
  RawPg admin(server_->AdminUrl());
  // As a server restart or a proxy's idle cut would: the store's backend goes away.
  auto terminate = [&] {
    EXPECT_NE(admin.Query("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = '" +
                          database + "'"),
              "0");
  };
  terminate();
  auto read = store_->GetSession(Id("sess", 1));  // A lone statement.
  ASSERT_OK(read);
  EXPECT_EQ(read->id, Id("sess", 1));
  terminate();
  ASSERT_OK(store_->PutSession(MakeSession(2), AuditTrail("session.create", Id("sess", 2))));
  terminate();
  auto executions = store_->ListExecutions(Id("sess", 2), Page{});  // A read transaction.
  ASSERT_OK(executions);
  auto events = store_->ListAudit(AuditFilter{});
  ASSERT_OK(events);
  EXPECT_EQ(events->size(), 1u);
}

TEST_F(PgStoreTest, AHeldLockIsUnavailableAfterTheTimeoutWhileReadsGoOn) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(store_->PutSession(MakeSession(1)));
  RawPg raw(url_);
  ASSERT_EQ(raw.Exec("BEGIN"), "");
  ASSERT_EQ(raw.Exec("SELECT * FROM audit_head FOR UPDATE"), "");

  // MVCC: reads do not wait for the lock.
  auto read = store_->GetSession(Id("sess", 1));
  ASSERT_OK(read);

  const auto start = std::chrono::steady_clock::now();
  Status status = store_->Record(AuditTrail("file.download", "x"));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kInternal) << status.ToString();  // An unwritable event.
  EXPECT_NE(status.message().find("lock timeout"), std::string::npos) << status.message();
  EXPECT_GE(waited, std::chrono::milliseconds(kPgLockTimeoutMs - 1000));
  status = store_->PutSession(MakeSession(2), AuditTrail("session.create", Id("sess", 2)));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(store_->GetSession(Id("sess", 2)).status().IsNotFound());  // Rolled back.
  // A change waiting on a row another transaction holds: Unavailable (503), as SQLite's busy.
  ASSERT_EQ(raw.Exec("SELECT * FROM sessions FOR UPDATE"), "");
  status = store_->PutSession(MakeSession(1));
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();

  ASSERT_EQ(raw.Exec("ROLLBACK"), "");
  EXPECT_OK(store_->Record(AuditTrail("file.download", "x")));
}

TEST_F(PgStoreTest, BytesATextColumnCannotHoldAreRefusedOrKeptAsBytes) {
  ASSERT_NO_FATAL_FAILURE(Open());
  // Code, file names and paths are BYTEA: any bytes round-trip.
  FileRow file = MakeFile(1);
  file.filename = std::string("na\0me\xff\xfe.csv", 12);
  file.path = std::string("/mnt/data/\x80\x00", 12);
  ASSERT_OK(store_->PutFile(file));
  auto got = store_->GetFile(file.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->filename, file.filename);
  EXPECT_EQ(got->path, file.path);
  // Elsewhere PostgreSQL's TEXT refuses them: a clear InvalidArgument, nothing written.
  SessionRow session = MakeSession(1);
  session.pool = std::string("po\0ol", 5);
  Status status = store_->PutSession(session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  session.pool = "\xff\xfe";
  status = store_->PutSession(session);
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_TRUE(store_->GetSession(session.id).status().IsNotFound());
  EXPECT_OK(store_->PutSession(MakeSession(2)));  // And the store goes on.
}

TEST_F(PgStoreTest, OpenMetadataStorePicksTheBackendByTheUrl) {
  ASSERT_OK(MigratePostgres(url_));
  auto store = OpenMetadataStore(url_);
  ASSERT_OK(store);
  ASSERT_OK((*store)->PutSession(MakeSession(1)));
  RawPg raw(url_);
  EXPECT_EQ(raw.Query("SELECT id FROM sessions"), Id("sess", 1));
  // Anything else is an SQLite file.
  ::pycell::testing::TempDir dir;
  auto sqlite = OpenMetadataStore(dir.path() + "/pycell.db");
  ASSERT_OK(sqlite);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/pycell.db"));
  EXPECT_TRUE((*sqlite)->GetSession(Id("sess", 1)).status().IsNotFound());
  EXPECT_TRUE(IsPostgresUrl("postgres://h/d"));
  EXPECT_TRUE(IsPostgresUrl("postgresql://h/d"));
  EXPECT_FALSE(IsPostgresUrl("/var/lib/pycell/pycell.db"));
  EXPECT_FALSE(IsPostgresUrl("postgresql.db"));
}

}  // namespace
}  // namespace pycell::store
