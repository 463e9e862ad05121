#include "store/store_test_fixture.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "store/pg_test_server.h"
#include "test_util.h"

namespace pycell::store::store_test {

void StoreTest::SetUp() {
  if (GetParam() == Backend::kSqlite) {
    std::string templ = (std::filesystem::temp_directory_path() / "pycell-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    location_ = dir_ + "/pycell.db";
    return;
  }
  // No skipping when PostgreSQL is missing: CI installs it, and a silent skip would hide that
  // half of the suite did not run.
  auto server = PgTestServer::Get();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto url = (*server)->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  location_ = *url;
}

void StoreTest::TearDown() {
  store_.reset();
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

void StoreTest::Open() {
  store_.reset();
  auto store = OpenAnother();
  ASSERT_OK(store);
  store_ = std::move(store).value();
}

Result<std::unique_ptr<MetadataStore>> StoreTest::OpenAnother() {
  if (GetParam() == Backend::kSqlite) return OpenSqliteStore(location_);
  auto migrated = MigratePostgres(location_);
  if (!migrated.ok()) return migrated.status();
  return OpenPostgresStore(location_);
}

// "Backends/StoreTest.Name/sqlite", "…/postgres".
std::string BackendName(const ::testing::TestParamInfo<Backend>& param) {
  return param.param == Backend::kSqlite ? "sqlite" : "postgres";
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace pycell::store::store_test
