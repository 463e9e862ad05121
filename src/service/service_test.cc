// Service: the domain calls against the real store, blobs and sandbox, with a fake clock so that
// retention and expiry can be tested without waiting days. Needs root; skipped otherwise.
#include "service/service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace pycell::service {
namespace {

using std::chrono::hours;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    data_dir_ = std::filesystem::current_path().string() + "/service-test-data";
    std::filesystem::remove_all(data_dir_);
    config_.server.data_dir = data_dir_;
    config_.engine.state_dir = data_dir_;
    config_.engine.runtime_dir = "/run/pycell-service-test";
    config_.pools[0].ready_sessions = 0;
    config_.retention.input_files = hours(24);
    config_.retention.output_files = hours(48);
    auto service = Service::Open(config_, &clock_);
    ASSERT_OK(service);
    service_ = std::move(*service);
  }
  void TearDown() override {
    service_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  Result<Json> UploadText(const std::string& name, const std::string& text) {
    ASSIGN_OR_RETURN(auto upload, service_->BeginUpload(caller_, name));
    RETURN_IF_ERROR(upload->Write(text));
    return upload->Finish();
  }
  std::string BlobPath(const std::string& sha) const {
    return data_dir_ + "/files/blobs/" + sha.substr(0, 2) + "/" + sha;
  }

  FakeClock clock_;
  ServiceConfig config_;
  // An admin of the default project (what the bootstrap key is).
  auth::Caller caller_ = [] {
    auth::Caller c;
    c.principal = "test";
    c.project_id = store::kDefaultProjectId;
    c.role = auth::Role::kAdmin;
    return c;
  }();
  std::string data_dir_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, FilesExpireByPurposeAndTheSweepRemovesTheirBytes) {
  auto input = UploadText("a.csv", "x,y\n1,2\n");
  ASSERT_OK(input);
  std::string sha = (*input)["sha256"];
  EXPECT_TRUE(std::filesystem::exists(BlobPath(sha)));

  clock_.Advance(hours(23));
  auto swept = service_->SweepExpiredFiles();
  ASSERT_OK(swept);
  EXPECT_EQ(*swept, 0);
  EXPECT_OK(service_->GetFile(caller_, (*input)["id"]));

  clock_.Advance(hours(2));
  swept = service_->SweepExpiredFiles();
  ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1);
  EXPECT_TRUE(service_->GetFile(caller_, (*input)["id"]).status().IsNotFound());
  EXPECT_FALSE(std::filesystem::exists(BlobPath(sha)));
}

TEST_F(ServiceTest, SharedBytesStayUntilTheLastRecordGoes) {
  auto first = UploadText("a.csv", "same,bytes\n");
  auto second = UploadText("b.csv", "same,bytes\n");
  ASSERT_OK(first);
  ASSERT_OK(second);
  std::string sha = (*first)["sha256"];
  ASSERT_EQ(sha, (*second)["sha256"].get<std::string>());
  ASSERT_OK(service_->DeleteFile(caller_, (*first)["id"]));
  EXPECT_TRUE(std::filesystem::exists(BlobPath(sha)));
  auto content = service_->OpenFile(caller_, (*second)["id"]);
  ASSERT_OK(content);
  ASSERT_OK(service_->DeleteFile(caller_, (*second)["id"]));
  EXPECT_FALSE(std::filesystem::exists(BlobPath(sha)));
}

TEST_F(ServiceTest, ArtifactsAreOutputFilesThatNameTheirExecution) {
  auto input = UploadText("in.csv", "n\n1\n2\n3\n");
  ASSERT_OK(input);
  CreateSessionRequest create;
  create.file_ids = {(*input)["id"]};
  auto session = service_->CreateSession(caller_, create);
  ASSERT_OK(session);
  std::string id = (*session)["id"];
  auto text = service_->Execute(caller_, 
      id,
      "import os, pandas as pd\n"
      "os.makedirs('out', exist_ok=True)\n"
      "open('out/sum.txt', 'w').write(str(pd.read_csv('in.csv').n.sum()))\n",
      std::nullopt);
  ASSERT_OK(text);
  Json record = Json::parse(*text);
  ASSERT_EQ(record["status"], "ok") << *text;
  ASSERT_EQ(record["artifacts"].size(), 1u) << *text;
  const Json& artifact = record["artifacts"][0];
  EXPECT_EQ(artifact["path"], "/mnt/data/out/sum.txt");
  auto file = service_->GetFile(caller_, artifact["id"]);
  ASSERT_OK(file);
  EXPECT_EQ((*file)["purpose"], "output");
  EXPECT_EQ((*file)["execution_id"], record["id"]);
  EXPECT_EQ((*file)["session_id"], id);
  auto content = service_->OpenFile(caller_, artifact["id"]);
  ASSERT_OK(content);
  char buffer[16] = {};
  ASSERT_EQ(::pread(content->fd.get(), buffer, sizeof buffer, 0), 1);
  EXPECT_EQ(std::string(buffer), "6");
  // Outputs keep their own retention (48 h here).
  clock_.Advance(hours(30));
  ASSERT_OK(service_->SweepExpiredFiles());
  EXPECT_TRUE(service_->GetFile(caller_, (*input)["id"]).status().IsNotFound());
  EXPECT_OK(service_->GetFile(caller_, artifact["id"]));
}

TEST_F(ServiceTest, AnIdleSessionEndsAndSaysWhy) {
  auto session = service_->CreateSession(caller_, {});
  ASSERT_OK(session);
  std::string id = (*session)["id"];
  clock_.Advance(std::chrono::seconds(config_.pools[0].limits.idle_timeout) + hours(1));
  // The manager's background pass notices within a second; wait for its record.
  for (int i = 0; i < 50; ++i) {
    auto now = service_->GetSession(caller_, id);
    ASSERT_OK(now);
    if ((*now)["status"] == "ended") break;
    usleep(100000);
  }
  auto ended = service_->GetSession(caller_, id);
  ASSERT_OK(ended);
  EXPECT_EQ((*ended)["status"], "ended");
  EXPECT_EQ((*ended)["end_reason"], "lifetime");  // Past the lifetime too: the first reason wins.
  auto run = service_->Execute(caller_, id, "1", std::nullopt);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().reason(), "session_expired") << run.status().ToString();
}

TEST_F(ServiceTest, UploadNamesMustBePlainPrintableUtf8) {
  for (const std::string& name : {std::string("../x.csv"), std::string("a/b.csv"),
                                  std::string("a\nb.csv"), std::string("caf\xe9.csv"),
                                  std::string(".."), std::string(300, 'a') + ".csv"}) {
    EXPECT_TRUE(service_->BeginUpload(caller_, name).status().IsInvalidArgument()) << name;
  }
  EXPECT_OK(service_->BeginUpload(caller_, "café.csv"));
}

}  // namespace
}  // namespace pycell::service
