// pycell audit list|verify|export (docs/access.md, "Audit log"): the hash-chained audit log, read
// over the API (GET /v1/audit, paged by after_seq; an admin or auditor key) or, with --data-dir,
// straight from a data dir's database — which is how to check a log whose server is down, or
// whose server one does not trust.
//
// verify walks the whole chain page by page (audit::VerifyChain carries the previous hash and
// seq from one page to the next, so no more than a page is held) and names the first broken
// event; it exits 0 when the chain verifies and 1 when it does not (or cannot be read).
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>

#include "audit/audit_event.h"
#include "auth/directory.h"
#include "cli/client_common.h"
#include "cli/commands.h"
#include "cli/local_store.h"
#include "common/clock.h"

namespace pycell::cli {
namespace {

// The API serves at most this many events a page; a data dir's store is read in larger pages.
constexpr int kApiPage = 1000;
constexpr int kStorePage = 10000;

struct AuditFlags {
  std::string from;  // RFC 3339 or a date.
  std::string to;
  std::string principal;
  std::string action;
  std::string target;
  std::string project;  // Id or name.
  int limit = 0;        // list: at most this many events; 0 = all that match.
  std::string out;      // export: the file to write; "" = stdout.
};

struct AuditPage {
  std::vector<audit::AuditEvent> events;
  std::vector<Json> json;  // The same events as the API shows them.
  bool has_more = false;
};

// The audit log of a server or of a data dir, read a page at a time, oldest first.
class AuditSource {
 public:
  static Result<AuditSource> Open(const ClientFlags& flags, const AuditFlags& filter) {
    AuditSource source;
    source.filter_ = filter;
    if (flags.data_dir.empty()) {
      ASSIGN_OR_RETURN(source.client_, Connect(flags));
      return source;
    }
    ASSIGN_OR_RETURN(source.store_, OpenDataDirStore(flags.data_dir));
    store::AuditFilter& f = source.store_filter_;
    if (!filter.from.empty()) {
      ASSIGN_OR_RETURN(f.from_ms, ParseRfc3339Ms(filter.from));
    }
    if (!filter.to.empty()) {
      ASSIGN_OR_RETURN(f.to_ms, ParseRfc3339Ms(filter.to));
    }
    f.principal = filter.principal;
    f.action = filter.action;
    f.target = filter.target;
    if (!filter.project.empty()) {
      ASSIGN_OR_RETURN(store::ProjectRow project,
                       auth::FindProject(*source.store_, filter.project));
      f.project_id = project.id;
    }
    return source;
  }

  bool remote() const { return client_ != nullptr; }
  HttpClient* client() { return client_.get(); }

  // The events after `after_seq` that match the filter, at most `limit` (capped at a page).
  Result<AuditPage> Next(int64_t after_seq, int limit) {
    AuditPage page;
    if (client_) {
      limit = std::min(limit, kApiPage);
      std::string query = Query({{"from", filter_.from},
                                 {"to", filter_.to},
                                 {"principal", filter_.principal},
                                 {"action", filter_.action},
                                 {"target", filter_.target},
                                 {"project", filter_.project},
                                 {"after_seq", std::to_string(after_seq)},
                                 {"limit", std::to_string(limit)}});
      ASSIGN_OR_RETURN(Json list, JsonAnswer(client_->Get("/v1/audit" + query), *client_));
      if (!list.contains("data") || !list["data"].is_array()) {
        return Status::Unavailable("the server's audit list has no \"data\" array");
      }
      for (Json& item : list["data"]) {
        auto event = audit::EventFromJson(item);
        if (!event.ok()) {
          return event.status().WithContext("the server sent an audit event pycell cannot read");
        }
        page.events.push_back(std::move(*event));
        page.json.push_back(std::move(item));
      }
      page.has_more = list.value("has_more", false);
    } else {
      limit = std::min(limit, kStorePage);
      store::AuditFilter f = store_filter_;
      f.after_seq = after_seq;
      f.limit = limit + 1;  // One more, to know whether more follow.
      ASSIGN_OR_RETURN(page.events, store_->ListAudit(f));
      if (page.events.size() > static_cast<size_t>(limit)) {
        page.events.resize(static_cast<size_t>(limit));
        page.has_more = true;
      }
      for (const audit::AuditEvent& e : page.events) page.json.push_back(audit::EventToJson(e));
    }
    // A page that does not move forward would loop for ever.
    if (page.has_more && (page.events.empty() || page.events.back().seq <= after_seq)) {
      return Status::Unavailable("the audit list did not advance past event " +
                                 std::to_string(after_seq));
    }
    return page;
  }

 private:
  AuditFlags filter_;
  std::unique_ptr<HttpClient> client_;  // Exactly one of these is set.
  std::unique_ptr<store::MetadataStore> store_;
  store::AuditFilter store_filter_;
};

// Calls `each` for every page of the events that match, up to `limit` events (0: all).
Status ForEachPage(AuditSource& source, int limit,
                   const std::function<Status(const AuditPage&)>& each, bool* cut_short) {
  int64_t after_seq = 0;
  int64_t left = limit > 0 ? limit : INT64_MAX;
  for (;;) {
    int want = static_cast<int>(std::min<int64_t>(left, kStorePage));
    ASSIGN_OR_RETURN(AuditPage page, source.Next(after_seq, want));
    RETURN_IF_ERROR(each(page));
    left -= static_cast<int64_t>(page.events.size());
    if (!page.has_more || page.events.empty()) {
      if (cut_short) *cut_short = false;
      return Status::Ok();
    }
    if (left <= 0) {
      if (cut_short) *cut_short = true;
      return Status::Ok();
    }
    after_seq = page.events.back().seq;
  }
}

int AuditList(const ClientFlags& flags, const AuditFlags& audit_flags) {
  if (audit_flags.limit < 0) return UsageError(Status::InvalidArgument("--limit must be ≥ 1"));
  auto source = AuditSource::Open(flags, audit_flags);
  if (!source.ok()) return Fail(source.status());
  Json data = Json::array();
  std::vector<std::vector<std::string>> rows;
  bool cut_short = false;
  Status s = ForEachPage(
      *source, audit_flags.limit,
      [&](const AuditPage& page) {
        for (const Json& e : page.json) {
          if (flags.json) {
            data.push_back(e);
          } else {
            rows.push_back({Field(e, "seq"), Field(e, "time"), Field(e, "principal"),
                            Field(e, "action"), Field(e, "target"), Field(e, "outcome")});
          }
        }
        return Status::Ok();
      },
      &cut_short);
  if (!s.ok()) return Fail(s);
  if (flags.json) {
    Json list = {{"object", "list"},
                 {"data", data},
                 {"has_more", cut_short},
                 {"last_seq", data.empty() ? Json(nullptr) : data.back()["seq"]}};
    std::cout << Dump(list) << "\n";
    return 0;
  }
  PrintTable({"SEQ", "TIME", "PRINCIPAL", "ACTION", "TARGET", "OUTCOME"}, rows);
  if (cut_short) {
    std::cerr << "(more: raise --limit, or narrow with --from, --action, …)\n";
  }
  return 0;
}

// Over the API the chain is whole only for a key that reads every project. A project-scoped
// auditor would see gaps and report them as a broken chain; say so instead. (Best effort: when
// GET /v1/me does not say, the walk goes ahead.)
Status CheckSeesEveryProject(HttpClient& client) {
  auto me = JsonAnswer(client.Get("/v1/me"), client);
  if (!me.ok()) return Status::Ok();
  const Json& key = me->contains("key") && (*me)["key"].is_object() ? (*me)["key"] : *me;
  if (key.value("role", std::string()) == "auditor" && !key.value("all_projects", false)) {
    return Status::PermissionDenied(
        "this key is an auditor of one project and sees only that project's events, so it cannot "
        "walk the whole chain; use an admin key, an auditor key made with --all-projects, or "
        "--data-dir");
  }
  return Status::Ok();
}

int AuditVerify(const ClientFlags& flags) {
  auto source = AuditSource::Open(flags, AuditFlags());
  if (!source.ok()) return Fail(source.status());
  if (source->remote()) {
    if (Status s = CheckSeesEveryProject(*source->client()); !s.ok()) return Fail(s);
  }
  std::string prev_hash = audit::kGenesisHash;
  int64_t next_seq = 1;
  int64_t count = 0;
  std::optional<audit::ChainBreak> broken;
  Status s = ForEachPage(
      *source, 0,
      [&](const AuditPage& page) {
        broken = audit::VerifyChain(page.events, prev_hash, next_seq);
        if (broken) return Status::Unavailable("broken");  // Stops the walk.
        count += static_cast<int64_t>(page.events.size());
        if (!page.events.empty()) {
          prev_hash = page.events.back().hash;
          next_seq = page.events.back().seq + 1;
        }
        return Status::Ok();
      },
      nullptr);
  if (broken) {
    if (flags.json) {
      std::cout << Dump({{"object", "audit_verification"},
                         {"verified", false},
                         {"seq", broken->seq},
                         {"id", broken->id},
                         {"reason", broken->reason}})
                << "\n";
    } else {
      std::cout << "audit chain BROKEN at event " << broken->seq << " (" << broken->id
                << "): " << broken->reason << "\n";
    }
    return 1;
  }
  if (!s.ok()) return Fail(s);
  if (flags.json) {
    std::cout << Dump({{"object", "audit_verification"},
                       {"verified", true},
                       {"events", count},
                       {"last_hash", prev_hash}})
              << "\n";
  } else {
    std::cout << "audit chain verified: " << count << " events, last hash " << prev_hash << "\n";
  }
  return 0;
}

int AuditExport(const ClientFlags& flags, const AuditFlags& audit_flags) {
  auto source = AuditSource::Open(flags, audit_flags);
  if (!source.ok()) return Fail(source.status());
  // Into a hidden file beside --out that takes its name once complete: a failed export leaves
  // no partial file that looks whole.
  std::FILE* out = stdout;
  std::string temp;
  if (!audit_flags.out.empty()) {
    size_t slash = audit_flags.out.rfind('/');
    temp = (slash == std::string::npos ? std::string() : audit_flags.out.substr(0, slash + 1)) +
           ".pycell-audit-XXXXXX";
    int fd = ::mkstemp(temp.data());
    if (fd < 0) return Fail(Status::FromErrno("creating a file beside " + audit_flags.out));
    mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd, 0666 & ~mask);
    out = ::fdopen(fd, "w");
    if (!out) {
      ::close(fd);
      ::unlink(temp.c_str());
      return Fail(Status::FromErrno("opening " + temp));
    }
  }
  int64_t count = 0;
  Status s = ForEachPage(
      *source, 0,
      [&](const AuditPage& page) {
        for (const audit::AuditEvent& e : page.events) {
          std::string line = Dump(audit::EventToJson(e)) + "\n";
          if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) {
            return Status::FromErrno("writing the export");
          }
          ++count;
        }
        return Status::Ok();
      },
      nullptr);
  if (out == stdout) {
    if (std::fflush(stdout) != 0 && s.ok()) s = Status::FromErrno("writing the export");
    return s.ok() ? 0 : Fail(s);
  }
  if (std::fflush(out) != 0 || ::fsync(fileno(out)) != 0) {
    if (s.ok()) s = Status::FromErrno("writing " + temp);
  }
  if (std::fclose(out) != 0 && s.ok()) s = Status::FromErrno("writing " + temp);
  if (s.ok() && ::rename(temp.c_str(), audit_flags.out.c_str()) != 0) {
    s = Status::FromErrno(audit_flags.out);
  }
  if (!s.ok()) {
    ::unlink(temp.c_str());
    return Fail(s.WithContext("nothing written to " + audit_flags.out));
  }
  std::cerr << "exported " << count << " events to " << audit_flags.out << "\n";
  return 0;
}

}  // namespace

std::function<int()> RegisterAuditCommand(CLI::App& app) {
  struct State {
    ClientFlags client;
    AuditFlags audit;
    Subcommands subcommands{&client};
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  auto add = [&](CLI::App* parent, const char* name, const char* help, std::function<int()> run) {
    CLI::App* command = s.subcommands.Add(parent, name, help, std::move(run));
    CLI::Option* data_dir =
        command->add_option("--data-dir", s.client.data_dir,
                            "read this data dir's database directly instead of asking a server");
    data_dir->excludes(command->get_option("--url"));
    data_dir->excludes(command->get_option("--key"));
    return command;
  };

  CLI::App* audit = app.add_subcommand("audit", "the hash-chained audit log");
  audit->require_subcommand(1);
  CLI::App* list = add(audit, "list", "list audit events, oldest first",
                       [&s] { return AuditList(s.client, s.audit); });
  list->add_option("--from", s.audit.from, "from this time (RFC 3339, or a date: 2026-01-31)");
  list->add_option("--to", s.audit.to, "until this time (exclusive)");
  list->add_option("--principal", s.audit.principal, "only this principal's actions");
  list->add_option("--action", s.audit.action, "only this action, e.g. file.download");
  list->add_option("--target", s.audit.target, "only actions on this id");
  list->add_option("--project", s.audit.project, "only this project (id or name)");
  list->add_option("--limit", s.audit.limit, "at most this many events (default: all)");
  add(audit, "verify", "walk the whole hash chain; exit 1 naming the first broken event",
      [&s] { return AuditVerify(s.client); });
  add(audit, "export", "write every event as JSON lines", [&s] {
    return AuditExport(s.client, s.audit);
  })->add_option("--out", s.audit.out, "the file to write (default: standard output)");
  return [state] { return state->subcommands.Run(); };
}

}  // namespace pycell::cli
