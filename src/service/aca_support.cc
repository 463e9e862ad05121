// The one domain call the Azure-compatible routes need beyond /v1's: reading a file of a live
// session's /mnt/data by its path (Azure names session files by path, not by stored file id).
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "files/media_type.h"
#include "service/service.h"
#include "common/json_reader.h"

namespace pycell::service {

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
  content.row.filename = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  content.row.bytes = st.st_size;
  char head[512];
  ssize_t n = ::pread(content.fd.get(), head, sizeof head, 0);
  content.row.media_type = files::GuessMediaType(
      content.row.filename, std::string_view(head, n > 0 ? static_cast<size_t>(n) : 0));
  content.row.path = path;
  content.row.session_id = session_id;

  store::Trail trail;
  int64_t now = NowMs();
  trail.audit = auth::EventBy(caller, "session.files.get", session_id, now);
  trail.audit->detail_json =
      DumpJson(Json{{"path", "/mnt/data/" + path}, {"bytes", content.row.bytes}});
  trail.usage.push_back({now, now, caller.project_id, caller.principal, "", session_id,
                         "download_bytes", content.row.bytes});
  RETURN_IF_ERROR(store_->Record(trail));
  metrics_->Download(static_cast<uint64_t>(content.row.bytes));
  return content;
}

}  // namespace pycell::service
