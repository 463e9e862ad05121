// Service: the domain calls against the real store, blobs and sandbox, with a fake clock so that
// retention and expiry can be tested without waiting days. Needs root; skipped otherwise.
#include "service/service.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "service/v1_views.h"
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

  Result<FileInfo> UploadText(const std::string& name, const std::string& text) {
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
  std::string sha = input->sha256;
  EXPECT_TRUE(std::filesystem::exists(BlobPath(sha)));

  clock_.Advance(hours(23));
  auto swept = service_->SweepExpiredFiles();
  ASSERT_OK(swept);
  EXPECT_EQ(*swept, 0);
  EXPECT_OK(service_->GetFile(caller_, input->id));

  clock_.Advance(hours(2));
  swept = service_->SweepExpiredFiles();
  ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1);
  EXPECT_TRUE(service_->GetFile(caller_, input->id).status().IsNotFound());
  EXPECT_FALSE(std::filesystem::exists(BlobPath(sha)));
}

TEST_F(ServiceTest, SharedBytesStayUntilTheLastRecordGoes) {
  auto first = UploadText("a.csv", "same,bytes\n");
  auto second = UploadText("b.csv", "same,bytes\n");
  ASSERT_OK(first);
  ASSERT_OK(second);
  std::string sha = first->sha256;
  ASSERT_EQ(sha, second->sha256);
  ASSERT_OK(service_->DeleteFile(caller_, first->id));
  EXPECT_TRUE(std::filesystem::exists(BlobPath(sha)));
  auto content = service_->OpenFile(caller_, second->id);
  ASSERT_OK(content);
  ASSERT_OK(service_->DeleteFile(caller_, second->id));
  EXPECT_FALSE(std::filesystem::exists(BlobPath(sha)));
}

TEST_F(ServiceTest, ArtifactsAreOutputFilesThatNameTheirExecution) {
  auto input = UploadText("in.csv", "n\n1\n2\n3\n");
  ASSERT_OK(input);
  CreateSessionRequest create;
  create.file_ids = {input->id};
  auto session = service_->CreateSession(caller_, create);
  ASSERT_OK(session);
  std::string id = session->row.id;
  auto text =
      service_->Execute(caller_, id,
                        "import os, pandas as pd\n"
                        "os.makedirs('out', exist_ok=True)\n"
                        "open('out/sum.txt', 'w').write(str(pd.read_csv('in.csv').n.sum()))\n",
                        std::nullopt);
  ASSERT_OK(text);
  const session::ExecutionRecord& record = text->record;
  ASSERT_EQ(record.status, "ok") << text->json;
  ASSERT_EQ(record.artifacts.size(), 1u) << text->json;
  const session::Artifact& artifact = record.artifacts[0];
  EXPECT_EQ(artifact.path, "out/sum.txt");
  // The stored record is the struct's serialization, and reads back as the same struct.
  EXPECT_EQ(record.ToJson(), text->json);
  auto stored = service_->GetExecution(caller_, record.id);
  ASSERT_OK(stored);
  EXPECT_EQ(stored->json, text->json);
  EXPECT_EQ(stored->record.ToJson(), text->json);
  Json view = ExecutionView(*stored);
  EXPECT_EQ(view["artifacts"][0]["path"], "/mnt/data/out/sum.txt");
  auto file = service_->GetFile(caller_, artifact.file_id);
  ASSERT_OK(file);
  EXPECT_EQ(file->purpose, "output");
  EXPECT_EQ(file->execution_id, record.id);
  EXPECT_EQ(file->session_id, id);
  EXPECT_EQ(FileView(*file)["path"], "/mnt/data/out/sum.txt");
  auto content = service_->OpenFile(caller_, artifact.file_id);
  ASSERT_OK(content);
  char buffer[16] = {};
  ASSERT_EQ(::pread(content->fd.get(), buffer, sizeof buffer, 0), 1);
  EXPECT_EQ(std::string(buffer), "6");
  // Outputs keep their own retention (48 h here).
  clock_.Advance(hours(30));
  ASSERT_OK(service_->SweepExpiredFiles());
  EXPECT_TRUE(service_->GetFile(caller_, input->id).status().IsNotFound());
  EXPECT_OK(service_->GetFile(caller_, artifact.file_id));
}

TEST_F(ServiceTest, AnIdleSessionEndsAndSaysWhy) {
  auto session = service_->CreateSession(caller_, {});
  ASSERT_OK(session);
  std::string id = session->row.id;
  clock_.Advance(std::chrono::seconds(config_.pools[0].limits.idle_timeout) + hours(1));
  // The manager's background pass notices within a second; wait for its record.
  for (int i = 0; i < 50; ++i) {
    auto now = service_->GetSession(caller_, id);
    ASSERT_OK(now);
    if (now->row.status == "ended") break;
    usleep(100000);
  }
  auto ended = service_->GetSession(caller_, id);
  ASSERT_OK(ended);
  EXPECT_EQ(ended->row.status, "ended");
  EXPECT_EQ(ended->row.end_reason, "lifetime");  // Past the lifetime too: the first reason wins.
  auto run = service_->Execute(caller_, id, "1", std::nullopt);
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().reason(), "session_expired") << run.status().ToString();
}

// Another process holds the database's write lock past the busy timeout while a session is
// ended: the end is answered, shown by GET and by the list alike, and written (with its audit
// event) once the lock goes.
TEST_F(ServiceTest, AnEndTheDatabaseRefusedShowsEverywhereAndIsWrittenLater) {
  auto session = service_->CreateSession(caller_, {});
  ASSERT_OK(session);
  std::string id = session->row.id;
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((data_dir_ + "/pycell.db").c_str(), &other), SQLITE_OK);
  auto query = [&](const std::string& sql) {
    std::string value;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(other, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  };
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto ended = service_->EndSession(caller_, id);  // Waits out the busy timeout.
  ASSERT_OK(ended);
  EXPECT_EQ(ended->row.status, "ended");
  EXPECT_EQ(ended->row.end_reason, "closed");
  auto got = service_->GetSession(caller_, id);
  ASSERT_OK(got);
  EXPECT_EQ(got->row.status, "ended");
  auto listed = service_->ListSessions(caller_, "", "", store::Page{});
  ASSERT_OK(listed);
  int seen = 0;
  for (const SessionInfo& listed_session : listed->data) {
    const store::SessionRow& row = listed_session.row;
    if (row.id != id) continue;
    ++seen;
    EXPECT_EQ(row.status, "ended");
    EXPECT_EQ(row.end_reason, "closed");
  }
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(query("SELECT status FROM sessions WHERE id = '" + id + "'"), "active");
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  // The sweep thread retries every second.
  std::string status;
  for (int i = 0; i < 100 && status != "ended"; ++i) {
    usleep(100000);
    status = query("SELECT status FROM sessions WHERE id = '" + id + "'");
  }
  EXPECT_EQ(status, "ended");
  EXPECT_EQ(query("SELECT end_reason FROM sessions WHERE id = '" + id + "'"), "closed");
  sqlite3_close(other);
}

TEST_F(ServiceTest, UploadNamesMustBePlainPrintableUtf8) {
  for (const std::string& name :
       {std::string("../x.csv"), std::string("a/b.csv"), std::string("a\nb.csv"),
        std::string("caf\xe9.csv"), std::string(".."), std::string(300, 'a') + ".csv"}) {
    EXPECT_TRUE(service_->BeginUpload(caller_, name).status().IsInvalidArgument()) << name;
  }
  EXPECT_OK(service_->BeginUpload(caller_, "café.csv"));
}

// The caller of a user key of `principal` in `project_id`.
auth::Caller UserIn(const std::string& project_id, const std::string& principal) {
  auth::Caller c;
  c.principal = principal;
  c.project_id = project_id;
  c.role = auth::Role::kUser;
  return c;
}

TEST_F(ServiceTest, ADailyQuotaIsHitAndResetsAtMidnightUtc) {
  auth::ProjectSpec spec;
  spec.name = "daily";
  spec.sessions_per_day = 1;
  auto project = service_->identity().CreateProject(caller_, spec);
  ASSERT_OK(project);
  auth::Caller alice = UserIn(project->id, "alice");
  auto first = service_->CreateSession(alice, {});
  ASSERT_OK(first);
  ASSERT_OK(service_->EndSession(alice, first->row.id));
  auto refused = service_->CreateSession(alice, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().reason(), "quota_exceeded");
  EXPECT_NE(refused.status().message().find("sessions_per_day (limit 1"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("resets at"), std::string::npos);
  int64_t retry = refused.status().retry_after_s();
  EXPECT_GT(retry, 0);
  EXPECT_LE(retry, 86400);
  // The refusal is on record.
  store::AuditFilter filter;
  filter.action = "quota.exceeded";
  auto events = service_->ListAudit(caller_, filter, "");
  ASSERT_OK(events);
  EXPECT_EQ(events->data.size(), 1u);
  // Past midnight (UTC) the quota is whole again.
  clock_.Advance(std::chrono::seconds(retry + 1));
  auto next_day = service_->CreateSession(alice, {});
  EXPECT_OK(next_day);
}

TEST_F(ServiceTest, AnotherProjectsObjectsAnswerAsIfTheyDidNotExist) {
  auto file = UploadText("secret.csv", "a\n1\n");
  ASSERT_OK(file);
  auto session = service_->CreateSession(caller_, {});
  ASSERT_OK(session);
  auth::ProjectSpec spec;
  spec.name = "other";
  auto project = service_->identity().CreateProject(caller_, spec);
  ASSERT_OK(project);
  auth::Caller mallory = UserIn(project->id, "mallory");
  std::string file_id = file->id, session_id = session->row.id;
  std::string made_up_file = "file_" + std::string(26, '7');
  auto theirs = service_->GetFile(mallory, file_id);
  auto missing = service_->GetFile(mallory, made_up_file);
  ASSERT_TRUE(theirs.status().IsNotFound());
  EXPECT_EQ(theirs.status().message(), "no file " + file_id);
  EXPECT_EQ(missing.status().message(), "no file " + made_up_file);
  EXPECT_TRUE(service_->OpenFile(mallory, file_id).status().IsNotFound());
  EXPECT_TRUE(service_->DeleteFile(mallory, file_id).IsNotFound());
  EXPECT_TRUE(service_->Lineage(mallory, file_id).status().IsNotFound());
  EXPECT_TRUE(service_->GetSession(mallory, session_id).status().IsNotFound());
  EXPECT_TRUE(service_->Execute(mallory, session_id, "1", std::nullopt).status().IsNotFound());
  EXPECT_TRUE(service_->EndSession(mallory, session_id).status().IsNotFound());
  CreateSessionRequest with_their_file;
  with_their_file.file_ids = {file_id};
  EXPECT_TRUE(service_->CreateSession(mallory, with_their_file).status().IsNotFound());
  auto files = service_->ListFiles(mallory, {}, store::Page{});
  ASSERT_OK(files);
  EXPECT_TRUE(files->data.empty());
  auto sessions = service_->ListSessions(mallory, "", "", store::Page{});
  ASSERT_OK(sessions);
  EXPECT_TRUE(sessions->data.empty());
  // The session still runs for its owner.
  EXPECT_OK(service_->Execute(caller_, session_id, "1", std::nullopt));
}

TEST_F(ServiceTest, SessionsPastTheirExpectedDurationAreFlagged) {
  auto session = service_->CreateSession(caller_, {});
  ASSERT_OK(session);
  EXPECT_FALSE(session->over_expected_duration);
  EXPECT_FALSE(SessionView(*session)["over_expected_duration"].get<bool>());
  EXPECT_EQ(service_->FlagLongSessions(), 0);
  clock_.Advance(config_.usage.expected_session + std::chrono::seconds(1));
  EXPECT_EQ(service_->FlagLongSessions(), 1);
  auto later = service_->GetSession(caller_, session->row.id);
  ASSERT_OK(later);
  EXPECT_TRUE(later->over_expected_duration);
  EXPECT_TRUE(SessionView(*later)["over_expected_duration"].get<bool>());
}

}  // namespace
}  // namespace pycell::service
