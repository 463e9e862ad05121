// Service::ExportEvidence: a signed evidence bundle of one session or a period (docs/evidence.md).
//
// What a bundle covers, within the caller's scope (auth::ProjectScope, as ListAudit):
//   - the period: a session's from its creation to its end (or now), or [from, to);
//   - the sessions involved: the given one; for a period, those created in it and those its
//     visible audit events name (directly, or through an execution);
//   - the audit segment: every event from the first to the last visible event of the period, in
//     seq order without gaps — events of projects the caller may not see as link-only stubs — so
//     a verifier can recompute the run (evidence/audit_segment.h).
// The bundle is written into an unlinked temporary file in the data dir (O_TMPFILE), so file
// contents stream from the blob store into the archive without being held in memory, and a
// crash leaves nothing behind. The export is audited (evidence.export, with the manifest's
// SHA-256) once the bundle is complete and before any byte of it is sent.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/build_info.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/json_reader.h"
#include "evidence/audit_segment.h"
#include "evidence/bundle.h"
#include "service/service.h"
#include "service/service_json.h"

namespace pycell::service {
namespace {

// The store's largest page of audit events, and of other rows.
constexpr int kAuditPage = 10000;
constexpr int kRowPage = 1000;

// An unlinked file in `dir` to build the bundle in.
Result<UniqueFd> AnonymousFile(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd.valid()) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return Status::FromErrno("creating a temporary file in " + dir);
  }
  // A file system without O_TMPFILE: a named file, unlinked at once.
  std::string path = dir + "/.evidence-XXXXXX";
  fd.Reset(::mkostemp(path.data(), O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("creating a temporary file in " + dir);
  ::unlink(path.c_str());
  return fd;
}

// Events of the audit log with seq in [first, last], oldest first.
Result<std::vector<audit::AuditEvent>> AuditRun(store::MetadataStore& store, int64_t first,
                                                int64_t last) {
  std::vector<audit::AuditEvent> run;
  store::AuditFilter filter;
  filter.after_seq = first - 1;
  filter.limit = kAuditPage;
  for (;;) {
    ASSIGN_OR_RETURN(auto page, store.ListAudit(filter));
    for (audit::AuditEvent& e : page) {
      if (e.seq > last) return run;
      run.push_back(std::move(e));
    }
    if (page.size() < static_cast<size_t>(kAuditPage)) return run;
    filter.after_seq = run.back().seq;
  }
}

}  // namespace

EvidenceKeyInfo Service::EvidencePublicKey() const {
  CHECK(evidence_key_.has_value());
  return {.pem = evidence_key_->public_pem(), .sha256 = evidence_key_->fingerprint()};
}

Result<EvidenceBundle> Service::ExportEvidence(const auth::Caller& caller,
                                               const EvidenceRequest& request) {
  CHECK(evidence_key_.has_value());
  if (request.with_files && !auth::RoleAllows(caller.role, auth::Permission::kFilesContent)) {
    return Status::PermissionDenied(
        "file contents need the files.content permission, which the " +
        std::string(auth::RoleName(caller.role)) +
        " role does not hold; export without with_files (the bundle still has every file's "
        "SHA-256), or use an admin key");
  }
  const int64_t now = NowMs();
  const std::string scope = auth::ProjectScope(caller);  // "" = every project.

  // --- the period and the sessions ---
  int64_t from = request.from_ms, to = request.to_ms;
  std::vector<store::SessionRow> sessions;
  std::set<std::string> session_ids;
  if (!request.session_id.empty()) {
    ASSIGN_OR_RETURN(store::SessionRow row, VisibleSession(caller, request.session_id));
    from = row.created_at_ms;
    to = (row.ended_at_ms > 0 ? row.ended_at_ms : now) + 1;  // The end itself is in.
    session_ids.insert(row.id);
    sessions.push_back(std::move(row));
  } else if (from <= 0 || to <= from) {
    return Status::InvalidArgument(
        "give a session, or a period with from before to (RFC 3339 times)");
  }

  // --- the audit segment: first and last visible events of the period, and all between ---
  int64_t first_seq = 0, last_seq = 0;
  std::set<std::string> named_sessions, named_executions;
  {
    store::AuditFilter filter;
    filter.from_ms = from;
    filter.to_ms = to;
    filter.project_id = scope;
    filter.limit = kAuditPage;
    for (;;) {
      ASSIGN_OR_RETURN(auto page, store_->ListAudit(filter));
      for (const audit::AuditEvent& e : page) {
        if (first_seq == 0) first_seq = e.seq;
        last_seq = e.seq;
        if (e.target.rfind("sess_", 0) == 0) named_sessions.insert(e.target);
        if (e.target.rfind("exec_", 0) == 0) named_executions.insert(e.target);
      }
      if (page.size() < static_cast<size_t>(kAuditPage)) break;
      filter.after_seq = page.back().seq;
    }
  }
  std::vector<audit::AuditEvent> run;
  if (first_seq > 0) {
    ASSIGN_OR_RETURN(run, AuditRun(*store_, first_seq, last_seq));
  }
  Json audit_segment = evidence::BuildAuditSegment(
      run, [&](const audit::AuditEvent& e) { return scope.empty() || e.project_id == scope; });

  if (request.session_id.empty()) {
    for (const std::string& exec_id : named_executions) {
      auto exec = store_->GetExecution(exec_id);
      if (exec.ok()) named_sessions.insert(exec->session_id);
    }
    ASSIGN_OR_RETURN(auto created, store_->SessionsCreated(from, to, scope));
    for (const store::SessionRow& row : created) named_sessions.insert(row.id);
    for (const std::string& id : named_sessions) {
      auto row = VisibleSession(caller, id);
      if (row.ok() && session_ids.insert(id).second) sessions.push_back(std::move(*row));
    }
    std::sort(sessions.begin(), sessions.end(), [](const auto& a, const auto& b) {
      return a.created_at_ms != b.created_at_ms ? a.created_at_ms < b.created_at_ms : a.id < b.id;
    });
  }

  // --- executions, files and lineage of those sessions ---
  Json session_list = Json::array();
  Json executions = Json::array();
  std::map<std::string, Json> files;  // By file id.
  std::vector<std::string> file_order;
  std::vector<std::string> outputs;
  auto file_entry = [&](const std::string& id) -> Json& {
    auto [it, added] = files.emplace(id, Json::object());
    if (added) file_order.push_back(id);
    return it->second;
  };
  for (const store::SessionRow& session : sessions) {
    session_list.push_back(SessionView(SessionInfoOf(session)));
    std::vector<Json> newest_first;
    store::Page page{kRowPage, ""};
    for (;;) {
      ASSIGN_OR_RETURN(auto rows, store_->ListExecutions(session.id, page));
      for (const store::ExecutionRow& row : rows) {
        Json record = Json::parse(row.record_json, nullptr, false);
        if (record.is_discarded()) {
          return Status::Internal("the stored record of execution " + row.id + " is not JSON");
        }
        newest_first.push_back(std::move(record));
      }
      if (rows.size() < static_cast<size_t>(kRowPage)) break;
      page.after = rows.back().id;
    }
    for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
      executions.push_back(std::move(*it));
    }

    ASSIGN_OR_RETURN(auto placed, store_->SessionInputs(session.id));
    for (const store::SessionInput& input : placed) {
      Json& entry = file_entry(input.file_id);
      if (entry.empty()) {
        auto row = store_->GetFile(input.file_id);
        if (row.ok() && auth::SeesProject(caller, row->project_id)) {
          entry = FileView(*row);
          entry["exists"] = true;
        } else {
          entry = {{"id", input.file_id},    {"object", "file"},   {"filename", input.filename},
                   {"sha256", input.sha256}, {"purpose", "input"}, {"exists", false}};
        }
        entry["placed_in"] = Json::array();
      }
      if (!entry.contains("placed_in")) entry["placed_in"] = Json::array();
      entry["placed_in"].push_back(
          {{"session_id", session.id}, {"placed_at", TimeOrNull(input.placed_at_ms)}});
    }
    store::FileFilter filter{.purpose = "output", .session_id = session.id};
    store::Page file_page{kRowPage, ""};
    for (;;) {
      ASSIGN_OR_RETURN(auto rows, store_->ListFiles(filter, file_page));
      for (const store::FileRow& row : rows) {
        Json& entry = file_entry(row.id);
        if (entry.empty()) {
          entry = FileView(row);
          entry["exists"] = true;
          outputs.push_back(row.id);
        }
      }
      if (rows.size() < static_cast<size_t>(kRowPage)) break;
      file_page.after = rows.back().id;
    }
  }
  Json lineage = Json::array();
  for (const std::string& id : outputs) {
    auto traced = Lineage(caller, id);
    if (traced.ok()) {
      lineage.push_back(LineageView(*traced));
    } else if (!traced.status().IsNotFound()) {
      return traced.status();
    }
  }

  // File contents: opened now, so files.json can say which are included; streamed in later.
  std::map<std::string, std::pair<UniqueFd, uint64_t>> contents;  // By sha256.
  for (const std::string& id : file_order) {
    Json& entry = files[id];
    std::string sha = entry.value("sha256", std::string());
    bool included = false;
    if (request.with_files && !sha.empty()) {
      if (contents.count(sha)) {
        included = true;
      } else if (auto fd = blobs_->OpenBlob(sha); fd.ok()) {
        struct stat st {};
        if (::fstat(fd->get(), &st) != 0) return Status::FromErrno("stat of blob " + sha);
        contents.emplace(sha, std::make_pair(std::move(*fd), static_cast<uint64_t>(st.st_size)));
        included = true;
      }
    }
    entry["content_included"] = included;
  }
  Json file_list = Json::array();
  for (const std::string& id : file_order) file_list.push_back(std::move(files[id]));

  ASSIGN_OR_RETURN(usage::Report usage_report, Usage(caller, "project", from, to, ""));
  const Json usage = usage::ReportJson(usage_report);

  // --- the bundle ---
  ASSIGN_OR_RETURN(UniqueFd fd, AnonymousFile(config_.server.data_dir));
  ASSIGN_OR_RETURN(auto writer, evidence::BundleWriter::Open(fd.get(), now / 1000));
  auto add_json = [&](const char* name, const Json& j) {
    return writer->Add(name, j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
  };
  RETURN_IF_ERROR(add_json("config.json", ConfigView(*LiveConfig())));
  RETURN_IF_ERROR(add_json("audit.json", audit_segment));
  RETURN_IF_ERROR(add_json("executions.json", Json{{"object", "evidence_executions"},
                                                   {"sessions", session_list},
                                                   {"executions", executions}}));
  RETURN_IF_ERROR(
      add_json("lineage.json", Json{{"object", "evidence_lineage"}, {"data", lineage}}));
  RETURN_IF_ERROR(add_json(
      "files.json",
      Json{{"object", "evidence_files"}, {"with_files", request.with_files}, {"data", file_list}}));
  RETURN_IF_ERROR(add_json("usage.json", usage));
  RETURN_IF_ERROR(writer->Add("metrics.txt", metrics_->Scrape()));
  for (auto& [sha, content] : contents) {
    RETURN_IF_ERROR(
        writer->AddFromFd(evidence::kFilesPrefix + sha, content.first.get(), content.second));
  }
  Json metadata = {
      {"object", "evidence_manifest"},
      {"format", 1},
      {"created_at", TimeOrNull(now)},
      {"server", {{"version", PYCELL_VERSION}, {"commit", PYCELL_GIT_COMMIT}}},
      {"exported_by",
       {{"principal", caller.principal},
        {"key_id", caller.key_id},
        {"project_id", caller.project_id},
        {"role", auth::RoleName(caller.role)},
        {"request_id", caller.request_id}}},
      {"scope",
       {{"session_id", request.session_id.empty() ? Json(nullptr) : Json(request.session_id)},
        {"from", TimeOrNull(from)},
        {"to", TimeOrNull(to)},
        {"project_id", scope.empty() ? Json(nullptr) : Json(scope)}}},
      {"with_files", request.with_files},
      {"audit",
       {{"first_seq", audit_segment["first_seq"]},
        {"last_seq", audit_segment["last_seq"]},
        {"last_hash", audit_segment["last_hash"]}}},
      {"counts",
       {{"sessions", sessions.size()},
        {"executions", executions.size()},
        {"files", file_list.size()},
        {"file_contents", contents.size()}}}};
  ASSIGN_OR_RETURN(std::string manifest_sha256, writer->FinishSigned(metadata, *evidence_key_));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat of the bundle");

  EvidenceBundle bundle;
  bundle.bytes = static_cast<uint64_t>(st.st_size);
  bundle.manifest_sha256 = manifest_sha256;
  bundle.filename =
      "pycell-evidence-" +
      (request.session_id.empty() ? TimeOrNull(from).get<std::string>().substr(0, 10) + "-to-" +
                                        TimeOrNull(to).get<std::string>().substr(0, 10)
                                  : request.session_id) +
      ".tar.gz";

  // Audited before a byte is sent: an export whose event cannot be written fails.
  store::Trail trail = auth::AuditTrail(
      caller, "evidence.export", request.session_id, NowMs(),
      {{"session_id", request.session_id.empty() ? Json(nullptr) : Json(request.session_id)},
       {"from", TimeOrNull(from)},
       {"to", TimeOrNull(to)},
       {"with_files", request.with_files},
       {"bytes", bundle.bytes},
       {"manifest_sha256", manifest_sha256},
       {"signer_sha256", evidence_key_->fingerprint()},
       {"audit_first_seq", audit_segment["first_seq"]},
       {"audit_last_seq", audit_segment["last_seq"]},
       {"sessions", sessions.size()},
       {"file_contents", contents.size()}});
  RETURN_IF_ERROR(store_->Record(trail));
  bundle.fd = std::move(fd);
  return bundle;
}

}  // namespace pycell::service
