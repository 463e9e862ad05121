#include "cli/cell_printer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "sandbox/mount_ns.h"

namespace pycell::cli {
namespace {

const std::string* Find(const kernel::MimeBundle& bundle, const std::string& mime) {
  for (const auto& [m, v] : bundle.data) {
    if (m == mime) return &v;
  }
  return nullptr;
}

}  // namespace

Result<OpenedSession> OpenSession(EngineConfig config, const std::vector<std::string>& files) {
  if (::geteuid() == 0) {
    RETURN_IF_ERROR(sandbox::mount_ns::PrivatizeHostMounts());
  }
  config.pool.ready_sessions = 0;  // One session, started on demand.
  OpenedSession opened;
  ASSIGN_OR_RETURN(opened.engine, session::SessionManager::Create(config));
  ASSIGN_OR_RETURN(opened.session, opened.engine->CreateSession());
  for (const std::string& path : files) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno("--file " + path);
    std::string name = path.substr(path.rfind('/') + 1);
    RETURN_IF_ERROR(opened.session->PutFile(name, fd.get()).WithContext("--file " + path));
  }
  return opened;
}

int ExitCodeFor(const session::ExecutionRecord& record) {
  if (record.status == "ok") return 0;
  if (record.status == "error") return kExitCellError;
  if (record.status == "timeout") return kExitTimeout;
  return kExitSessionEnded;
}

int PrintRecord(const session::ExecutionRecord& record, bool images_saved) {
  for (const kernel::Output& output : record.outputs) {
    const std::string* text = Find(output.bundle, "text/plain");
    bool image = Find(output.bundle, "image/png") || Find(output.bundle, "image/svg+xml");
    if (image && !images_saved) {
      std::cout << "[" << (text ? *text : std::string("image"))
                << " — pass --out DIR to save images]\n";
    } else if (!image && text) {
      std::cout << (output.kind == kernel::Output::Kind::kResult
                        ? "Out[" + std::to_string(record.execution_count) + "]: "
                        : "")
                << *text << "\n";
    }
  }
  std::cout.flush();
  if (record.error) {
    for (const std::string& line : record.error->traceback) std::cerr << line << "\n";
    if (record.error->traceback.empty()) {
      std::cerr << record.error->ename << ": " << record.error->evalue << "\n";
    }
  }
  if (record.status == "timeout") {
    std::cerr << "pycell: the cell timed out and was " << record.timeout_action << "\n";
  }
  if (!record.session_end_reason.empty()) {
    std::cerr << "pycell: the session ended (" << record.session_end_reason << ")\n";
  }
  return ExitCodeFor(record);
}

Status SaveArtifacts(const session::Session& session, const session::ExecutionRecord& record,
                     const std::string& out_dir) {
  RETURN_IF_ERROR(MakeDirs(out_dir, 0755));
  int n = 0;
  for (const kernel::Output& output : record.outputs) {
    const std::string* png = Find(output.bundle, "image/png");
    const std::string* svg = Find(output.bundle, "image/svg+xml");
    if (!png && !svg) continue;
    std::string name = out_dir + "/output-" + std::to_string(record.execution_count) + "-" +
                       std::to_string(++n) + (png ? ".png" : ".svg");
    std::ofstream file(name, std::ios::binary | std::ios::trunc);
    file << (png ? Base64Decode(*png) : *svg);
    if (!file) return Status::Internal("could not write " + name);
    std::cerr << "saved " << name << "\n";
  }
  // The same bounds as the server's artifacts (session::PlanExport).
  uint64_t budget = session.limits().data_bytes;
  session::ExportPlan plan = session::PlanExport(record.files, budget);
  for (const session::SkippedArtifact& skipped : plan.skipped) {
    std::cerr << "pycell: not copied: /mnt/data/" << skipped.path << ": " << skipped.reason << "\n";
  }
  for (const files::FileChange& change : plan.files) {
    std::string dest = out_dir + "/" + change.path;
    auto slash = dest.rfind('/');
    RETURN_IF_ERROR(MakeDirs(dest.substr(0, slash), 0755));
    Status copied = session.CopyFileOut(change.path, dest, budget);
    struct stat st {};
    if (copied.ok() && ::stat(dest.c_str(), &st) == 0) {
      budget -= std::min<uint64_t>(budget, static_cast<uint64_t>(st.st_size));
    }
    if (!copied.ok()) {
      std::cerr << "pycell: not copied: /mnt/data/" << change.path << ": " << copied.message()
                << "\n";
      continue;
    }
    std::cerr << "saved " << dest << "\n";
  }
  return Status::Ok();
}

}  // namespace pycell::cli
