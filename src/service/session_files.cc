// The session-files part of the Service: what is in a live session's /mnt/data — placing stored
// files there (or replacing one of the same name in one step), listing, reading one by its path
// (the Azure-compatible routes name session files by path, not by stored file id) and removing.
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_reader.h"
#include "common/utf8.h"
#include "files/media_type.h"
#include "service/service.h"

namespace pycell::service {

using std::chrono::duration_cast;

Result<PlacedFile> Service::PlaceFile(const auth::Caller& caller, session::Session& session,
                                      const std::string& file_id, bool replace) {
  ASSIGN_OR_RETURN(store::FileRow row, VisibleFile(caller, file_id));
  ASSIGN_OR_RETURN(UniqueFd fd, blobs_->OpenBlob(row.sha256));
  // SafeDir says FailedPrecondition (409) for a name already in /mnt/data, unless replacing.
  RETURN_IF_ERROR((replace ? session.ReplaceFile(row.filename, fd.get())
                           : session.PutFile(row.filename, fd.get()))
                      .WithContext("placing " + file_id));
  int64_t now = NowMs();
  Json detail = {{"file_id", file_id}, {"filename", row.filename}, {"sha256", row.sha256}};
  if (replace) detail["replaced"] = true;
  store::Trail trail = auth::AuditTrail(caller, "session.files.put", session.id(), now, detail);
  RETURN_IF_ERROR(
      store_->AddSessionInputs({{session.id(), file_id, row.filename, row.sha256, now}}, trail));
  return PlacedFile{file_id, row.filename, row.bytes};
}

Result<std::vector<PlacedFile>> Service::PutSessionFiles(const auth::Caller& caller,
                                                         const std::string& session_id,
                                                         const std::vector<std::string>& file_ids) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  std::vector<PlacedFile> placed;
  for (const std::string& id : file_ids) {
    ASSIGN_OR_RETURN(PlacedFile entry, PlaceFile(caller, *session, id, /*replace=*/false));
    placed.push_back(std::move(entry));
  }
  return placed;
}

Result<PlacedFile> Service::ReplaceSessionFile(const auth::Caller& caller,
                                               const std::string& session_id,
                                               const std::string& file_id) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  return PlaceFile(caller, *session, file_id, /*replace=*/true);
}

Result<std::string> Service::RemoveSessionFile(const auth::Caller& caller,
                                               const std::string& session_id,
                                               const std::string& path) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  std::string relative = path.rfind("/mnt/data/", 0) == 0 ? path.substr(10) : path;
  RETURN_IF_ERROR(session->RemoveFile(relative));
  std::string shown = EscapeNonUtf8(relative);
  store::Trail trail = auth::AuditTrail(caller, "session.files.delete", session_id, NowMs(),
                                        {{"path", "/mnt/data/" + shown}});
  RETURN_IF_ERROR(store_->Record(trail));
  return shown;
}

Result<std::vector<SessionFile>> Service::ListSessionFiles(const auth::Caller& caller,
                                                           const std::string& session_id) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  ASSIGN_OR_RETURN(files::DirSnapshot snapshot, session->ListFiles());
  std::vector<SessionFile> files;
  for (const auto& [path, state] : snapshot) {
    files.push_back({EscapeNonUtf8(path), state.bytes, static_cast<int64_t>(state.mtime_ns)});
  }
  return files;
}

Result<FileContent> Service::OpenSessionFile(const auth::Caller& caller,
                                             const std::string& session_id,
                                             const std::string& path) {
  ASSIGN_OR_RETURN(auto session, LiveSession(caller, session_id));
  auto fd = session->OpenFile(path);
  if (!fd.ok()) {
    if (fd.status().IsNotFound()) {
      return Status::NotFound("no file " + path + " in /mnt/data of this session");
    }
    return fd.status();
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Status::FromErrno("fstat " + path);
  FileContent content{store::FileRow{}, std::move(*fd)};
  content.row.filename =
      path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  content.row.bytes = st.st_size;
  char head[512];
  ssize_t n = ::pread(content.fd.get(), head, sizeof head, 0);
  content.row.media_type = files::GuessMediaType(
      content.row.filename, std::string_view(head, n > 0 ? static_cast<size_t>(n) : 0));
  content.row.path = path;
  content.row.session_id = session_id;

  int64_t now = NowMs();
  store::Trail trail =
      auth::AuditTrail(caller, "session.files.get", session_id, now,
                       {{"path", "/mnt/data/" + path}, {"bytes", content.row.bytes}});
  trail.usage.push_back({now, now, caller.project_id, caller.principal, "", session_id,
                         "download_bytes", content.row.bytes});
  RETURN_IF_ERROR(store_->Record(trail));
  metrics_->Download(static_cast<uint64_t>(content.row.bytes));
  return content;
}

}  // namespace pycell::service
