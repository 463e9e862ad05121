// What the SQLite store's tests share: ids, rows, comparisons, a raw second connection to the
// database file and the fixture with a store in a temporary folder. Test-only.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/metadata_store.h"
#include "test_util.h"

namespace pycell::store::store_test {

// A sortable id: "prefix_" and 26 characters, zero-padded `n`, so a larger n is a newer id.
inline std::string Id(const std::string& prefix, int n) {
  std::string digits = std::to_string(n);
  return prefix + "_" + std::string(26 - digits.size(), '0') + digits;
}

inline SessionRow MakeSession(int n, const std::string& status = "active") {
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

inline ExecutionRow MakeExecution(int n, const std::string& session_id) {
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

inline FileRow MakeFile(int n, const std::string& sha256 = std::string(64, 'a')) {
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

inline FileRow MakeOutput(int n, const ExecutionRow& execution) {
  FileRow row = MakeFile(n, std::string(64, 'b'));
  row.purpose = "output";
  row.session_id = execution.session_id;
  row.execution_id = execution.id;
  row.path = "/mnt/data/out" + std::to_string(n) + ".png";
  return row;
}

inline void ExpectSameSession(const SessionRow& a, const SessionRow& b) {
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

inline void ExpectSameExecution(const ExecutionRow& a, const ExecutionRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.session_id, b.session_id);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.code_sha256, b.code_sha256);
  EXPECT_EQ(a.started_at_ms, b.started_at_ms);
  EXPECT_DOUBLE_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.record_json, b.record_json);
}

inline void ExpectSameFile(const FileRow& a, const FileRow& b) {
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
inline std::vector<std::string> Ids(const std::vector<Row>& rows) {
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

}  // namespace pycell::store::store_test
