// The files part of the Service: uploads (Upload::Finish), stored files and their contents,
// deletion and the retention sweep.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/build_info.h"
#include "common/config_json.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "common/logging.h"
#include "common/utf8.h"
#include "files/media_type.h"
#include "sandbox/host_probe.h"
#include "service/service.h"
#include "service/service_json.h"
#include "usage/quota.h"
#include "usage/usage.h"

namespace pycell::service {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

Result<FileInfo> Upload::Finish() {
  ASSIGN_OR_RETURN(std::string media_type, files::CheckUploadType(filename_, writer_->head()));
  Service* s = service_;
  ASSIGN_OR_RETURN(store::ProjectRow project, s->store_->GetProject(caller_.project_id));
  Status quota = usage::CheckStorageQuota(*s->store_, project, static_cast<int64_t>(bytes()));
  if (!quota.ok()) return s->QuotaRefused(caller_, "", quota);
  store::FileRow row;
  row.id = NewId("file_");
  row.filename = filename_;
  row.media_type = media_type;
  row.purpose = "input";
  row.created_at_ms = s->NowMs();
  auto keep = s->LiveConfig()->retention.input_files;
  row.expires_at_ms = keep.count() > 0 ? row.created_at_ms + keep.count() * 1000 : 0;
  row.project_id = caller_.project_id;
  row.principal = caller_.principal;
  {
    MutexLock lock(s->blob_mu_);  // No delete may drop the blob in between.
    ASSIGN_OR_RETURN(files::BlobInfo blob, writer_->Commit());
    row.sha256 = blob.sha256;
    row.bytes = static_cast<int64_t>(blob.bytes);
    store::Trail trail = auth::AuditTrail(
        caller_, "file.upload", row.id, row.created_at_ms,
        {{"filename", row.filename}, {"bytes", row.bytes}, {"sha256", row.sha256}});
    trail.usage.push_back({row.created_at_ms, row.created_at_ms, row.project_id, row.principal, "",
                           "", "upload_bytes", row.bytes});
    Status put = s->store_->PutFile(row, trail);
    if (!put.ok()) {
      s->DropUnnamedBlob(row.sha256);  // Nothing of a refused upload is kept.
      return put;
    }
    s->metrics_->Upload(static_cast<uint64_t>(row.bytes));
  }
  return row;
}

// --- files ----------------------------------------------------------------------------------

Result<std::unique_ptr<Upload>> Service::BeginUpload(const auth::Caller& caller,
                                                     const std::string& filename) {
  if (!files::IsSafeFileName(filename) || !IsPrintableUtf8(filename)) {
    return Status::InvalidArgument(
        "filename must be a plain file name: UTF-8 without control characters, no '/', not '.' "
        "or '..', at most 255 bytes");
  }
  ASSIGN_OR_RETURN(auto writer, blobs_->NewWriter(max_upload_bytes()));
  return std::unique_ptr<Upload>(new Upload(this, caller, filename, std::move(writer)));
}

Result<store::FileRow> Service::VisibleFile(const auth::Caller& caller, const std::string& id) {
  if (IsValidId(id, "file_")) {
    auto row = store_->GetFile(id);
    if (row.ok() && auth::SeesProject(caller, row->project_id)) return row;
    if (!row.ok() && !row.status().IsNotFound()) return row.status();
  }
  return Status::NotFound("no file " + id);
}

Result<FileInfo> Service::GetFile(const auth::Caller& caller, const std::string& id) {
  return VisibleFile(caller, id);
}

Result<Listing<FileInfo>> Service::ListFiles(const auth::Caller& caller, store::FileFilter filter,
                                             const store::Page& page) {
  std::string scope = auth::ProjectScope(caller);
  if (!scope.empty()) {
    if (!filter.project_id.empty() && filter.project_id != scope) {
      return Status::NotFound("no project " + filter.project_id);
    }
    filter.project_id = scope;
  }
  return ListOf<FileInfo>(
      page, [&](const store::Page& p) { return store_->ListFiles(filter, p); },
      [](const store::FileRow& row) { return row; });
}

Result<FileContent> Service::OpenFile(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
  auto fd = blobs_->OpenBlob(row.sha256);
  if (!fd.ok()) {
    return Status::Internal("the contents of file " + id +
                            " are missing from the store: " + fd.status().message());
  }
  return FileContent{std::move(row), std::move(*fd)};
}

Status Service::RecordDownload(const auth::Caller& caller, const store::FileRow& file,
                               uint64_t bytes) {
  int64_t now = NowMs();
  store::Trail trail = auth::AuditTrail(
      caller, "file.download", file.id, now,
      {{"bytes", bytes}, {"sha256", file.sha256}, {"file_project_id", file.project_id}});
  trail.usage.push_back({now, now, caller.project_id, caller.principal, "", "", "download_bytes",
                         static_cast<int64_t>(bytes)});
  RETURN_IF_ERROR(store_->Record(trail));
  metrics_->Download(bytes);
  return Status::Ok();
}

void Service::DropUnnamedBlob(const std::string& sha256) {
  auto named = store_->FilesWithBlob(sha256);
  if (!named.ok()) return;  // Unknown: the start-up sweep removes it if it stays unnamed.
  if (*named == 0) {
    Status removed = blobs_->RemoveBlob(sha256);
    if (!removed.ok()) LOG_ERROR("removing unnamed blob {}: {}", sha256, removed.ToString());
  }
}

store::UsageEvent Service::StorageHeld(const store::FileRow& row) const {
  return {NowMs(), row.created_at_ms, row.project_id,  row.principal,
          "",      row.session_id,    "storage_bytes", row.bytes};
}

Status Service::DeleteFile(const auth::Caller& caller, const std::string& id) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, id));
  store::Trail trail =
      auth::AuditTrail(caller, "file.delete", id, NowMs(),
                       {{"filename", row.filename}, {"sha256", row.sha256}, {"bytes", row.bytes}});
  trail.usage.push_back(StorageHeld(row));
  MutexLock lock(blob_mu_);
  auto remaining = store_->DeleteFile(id, trail);
  if (!remaining.ok()) {
    if (remaining.status().IsNotFound()) return Status::NotFound("no file " + id);
    return remaining.status();
  }
  if (*remaining == 0) RETURN_IF_ERROR(blobs_->RemoveBlob(row.sha256));
  return Status::Ok();
}

Result<int> Service::SweepExpiredFiles() {
  ASSIGN_OR_RETURN(auto expired, store_->ExpiredFiles(NowMs(), 1000));
  int removed = 0;
  auth::Caller retention = auth::Caller::System();
  for (const auto& row : expired) {
    retention.project_id = row.project_id;
    Status s = DeleteFile(retention, row.id);
    if (s.ok()) {
      ++removed;
    } else if (!s.IsNotFound()) {
      LOG_ERROR("retention: deleting {}: {}", row.id, s.ToString());
    }
  }
  if (removed > 0) LOG_INFO("retention: deleted {} expired files", removed);
  return removed;
}

void Service::SweepLoop() {
  MutexLock lock(sweep_mu_);
  auto last_sweep = std::chrono::steady_clock::now();
  while (!stopping_) {
    // Every second: the ends a busy database refused; every sweep interval: retention.
    sweep_cv_.WaitFor(sweep_mu_, std::chrono::seconds(1),
                      [&]() REQUIRES(sweep_mu_) { return stopping_; });
    if (stopping_) break;
    lock.Unlock();
    try {
      {
        MutexLock end_lock(end_mu_);
        FlushUnrecordedEndsLocked();
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_sweep >= LiveConfig()->retention.sweep_interval) {
        last_sweep = now;
        auto swept = SweepExpiredFiles();
        if (!swept.ok()) LOG_ERROR("retention sweep: {}", swept.status().ToString());
        FlagLongSessions();
      }
    } catch (const std::exception& e) {
      // A bug: logged and counted, and the loop goes on (a crash here would recur at each start).
      LOG_ERROR("retention sweep: internal error: {}", e.what());
      metrics::CountInternalError("retention_sweep");
    }
    lock.Lock();
  }
}

}  // namespace pycell::service
