// StoreTest: the fixture of the tests every MetadataStore backend must pass, run once per backend
// (INSTANTIATE_TEST_SUITE_P in store_test_fixture.cc): SQLite in a temporary folder, PostgreSQL in
// a new database on the test program's own server (pg_test_server.h). A test written
// TEST_P(StoreTest, …) sees only the MetadataStore interface; tests that reach into an SQLite file
// stay TEST_F on SqliteStoreTest (sqlite_store_test_util.h), those that reach into PostgreSQL are
// in pg_store_test.cc. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>

#include "store/metadata_store.h"
#include "store/sqlite_store_test_util.h"

namespace pycell::store::store_test {

enum class Backend { kSqlite, kPostgres };
// How GoogleTest shows a Backend in its messages ("where GetParam() = postgres").
inline void PrintTo(Backend backend, std::ostream* out) {
  *out << (backend == Backend::kSqlite ? "sqlite" : "postgres");
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  // SQLite: a temporary folder; PostgreSQL: a new database (the test fails if there is no server).
  void SetUp() override;
  void TearDown() override;

  // Opens (or reopens) the store into store_: OpenSqliteStore, or MigratePostgres then
  // OpenPostgresStore. Call it with ASSERT_NO_FATAL_FAILURE.
  void Open();
  // Another store on the same database, standing for a second process.
  Result<std::unique_ptr<MetadataStore>> OpenAnother();

  std::string dir_;       // SQLite: the temporary folder.
  std::string location_;  // The database file's path, or the PostgreSQL URL.
  std::unique_ptr<MetadataStore> store_;
};

}  // namespace pycell::store::store_test
