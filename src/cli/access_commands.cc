// pycell keys create|list|revoke and pycell projects create|list|update (docs/access.md): over the
// API (/v1/keys, /v1/projects; an admin key), or with --data-dir straight on a data dir's
// database through auth/directory.h — the way to make a key when the server is down or no key is
// at hand. Both ways yield the API's JSON objects, so both print the same: fields or a table, or
// with --json the objects themselves.
//
// Exit codes as for the other client commands: 0, 1 for a failure (the server's error answer, an
// unreachable server, a data dir without a database), 2 for bad flags.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "auth/directory.h"
#include "cli/client_common.h"
#include "cli/commands.h"
#include "cli/local_store.h"
#include "common/config.h"

namespace pycell::cli {
namespace {

// The projects and keys, reached over the API or on a data dir; every call answers the JSON the
// API answers.
class Directory {
 public:
  static Result<Directory> Open(const ClientFlags& flags) {
    Directory directory;
    if (!flags.data_dir.empty()) {
      ASSIGN_OR_RETURN(directory.store_, OpenDataDirStore(flags.data_dir));
    } else {
      ASSIGN_OR_RETURN(directory.client_, Connect(flags));
    }
    return directory;
  }

  Result<Json> CreateKey(const auth::KeySpec& spec) {
    if (client_) {
      Json body = {
          {"principal", spec.principal}, {"role", spec.role}, {"all_projects", spec.all_projects}};
      if (!spec.project.empty()) body["project"] = spec.project;
      return JsonAnswer(client_->PostJson("/v1/keys", Dump(body)), *client_);
    }
    ASSIGN_OR_RETURN(auth::CreatedKey created,
                     auth::CreateKey(*store_, LocalCaller(), spec, WallNowMs()));
    return auth::CreatedKeyJson(created);
  }

  Result<Json> ListKeys(const std::string& project, bool include_revoked) {
    if (client_) {
      std::string query =
          Query({{"project", project}, {"include_revoked", include_revoked ? "true" : ""}});
      return JsonAnswer(client_->Get("/v1/keys" + query), *client_);
    }
    ASSIGN_OR_RETURN(auto keys, auth::ListKeys(*store_, project, include_revoked));
    return auth::KeyListJson(keys);
  }

  Result<Json> RevokeKey(const std::string& id) {
    if (client_) return JsonAnswer(client_->Delete("/v1/keys/" + Escape(id)), *client_);
    ASSIGN_OR_RETURN(store::KeyRow row, auth::RevokeKey(*store_, LocalCaller(), id, WallNowMs()));
    return auth::KeyJson(row);
  }

  // `body` as POST /v1/projects takes it; on a data dir it is read by the same function the
  // server reads it with.
  Result<Json> CreateProject(const Json& body) {
    if (client_) return JsonAnswer(client_->PostJson("/v1/projects", Dump(body)), *client_);
    ASSIGN_OR_RETURN(auth::ProjectSpec spec, auth::ProjectSpecFromJson(body, /*creating=*/true));
    ASSIGN_OR_RETURN(store::ProjectRow row,
                     auth::CreateProject(*store_, LocalCaller(), spec, WallNowMs()));
    return auth::ProjectJson(row);
  }

  Result<Json> UpdateProject(const std::string& id_or_name, const Json& body) {
    if (client_) {
      return JsonAnswer(client_->PatchJson("/v1/projects/" + Escape(id_or_name), Dump(body)),
                        *client_);
    }
    ASSIGN_OR_RETURN(auth::ProjectSpec spec, auth::ProjectSpecFromJson(body, /*creating=*/false));
    ASSIGN_OR_RETURN(store::ProjectRow row,
                     auth::UpdateProject(*store_, LocalCaller(), id_or_name, spec, WallNowMs()));
    return auth::ProjectJson(row);
  }

  Result<Json> ListProjects() {
    if (client_) return JsonAnswer(client_->Get("/v1/projects"), *client_);
    ASSIGN_OR_RETURN(auto projects, auth::ListProjects(*store_, LocalCaller()));
    return auth::ProjectListJson(projects);
  }

  // Project names by id, for showing keys; empty when the projects cannot be listed.
  std::map<std::string, std::string> ProjectNames() {
    std::map<std::string, std::string> names;
    auto projects = ListProjects();
    if (!projects.ok() || !(*projects)["data"].is_array()) return names;
    for (const Json& p : (*projects)["data"]) names[Field(p, "id")] = Field(p, "name");
    return names;
  }

 private:
  // Exactly one is set.
  std::unique_ptr<HttpClient> client_;
  std::unique_ptr<store::MetadataStore> store_;
};

std::string ProjectLabel(const std::map<std::string, std::string>& names, const std::string& id) {
  auto it = names.find(id);
  return it == names.end() ? id : it->second;
}

std::string RoleLabel(const Json& key) {
  std::string role = Field(key, "role");
  if (key.value("all_projects", false)) role += " (all projects)";
  return role;
}

// --- pycell keys ------------------------------------------------------------------------------

int KeysCreate(const ClientFlags& flags, const auth::KeySpec& spec) {
  auto directory = Directory::Open(flags);
  if (!directory.ok()) return Fail(directory.status());
  auto key = directory->CreateKey(spec);
  if (!key.ok()) return Fail(key.status());
  if (flags.json) {
    std::cout << Dump(*key) << "\n";
    return 0;
  }
  std::cout << "created " << Field(*key, "id") << " for principal " << Field(*key, "principal")
            << " (role " << RoleLabel(*key) << ", project "
            << ProjectLabel(directory->ProjectNames(), Field(*key, "project_id")) << ")\n\n"
            << "    " << Field(*key, "key") << "\n\n"
            << "This key is shown only this once and cannot be shown again: store it now. If it "
               "is lost, revoke it (pycell keys revoke "
            << Field(*key, "id") << ") and create another.\n";
  return 0;
}

struct KeyListFlags {
  std::string project;
  bool include_revoked = false;
};

int KeysList(const ClientFlags& flags, const KeyListFlags& list) {
  auto directory = Directory::Open(flags);
  if (!directory.ok()) return Fail(directory.status());
  auto keys = directory->ListKeys(list.project, list.include_revoked);
  if (!keys.ok()) return Fail(keys.status());
  if (flags.json) {
    std::cout << Dump(*keys) << "\n";
    return 0;
  }
  std::map<std::string, std::string> names = directory->ProjectNames();
  std::vector<std::vector<std::string>> rows;
  for (const Json& key : (*keys)["data"]) {
    rows.push_back({Field(key, "id"), Field(key, "principal"), RoleLabel(key),
                    ProjectLabel(names, Field(key, "project_id")), Field(key, "created_at"),
                    Field(key, "created_by"), Field(key, "revoked_at")});
  }
  PrintTable({"ID", "PRINCIPAL", "ROLE", "PROJECT", "CREATED", "CREATED BY", "REVOKED"}, rows);
  return 0;
}

int KeysRevoke(const ClientFlags& flags, const std::vector<std::string>& ids) {
  auto directory = Directory::Open(flags);
  if (!directory.ok()) return Fail(directory.status());
  int code = 0;
  for (const std::string& id : ids) {
    auto key = directory->RevokeKey(id);
    if (!key.ok()) {
      code = Fail(key.status());
      if (code == kExitInterrupted || key.status().reason() == "unreachable") return code;
      continue;
    }
    if (flags.json) {
      std::cout << Dump(*key) << "\n";
    } else {
      std::cout << "revoked " << Field(*key, "id") << " (principal " << Field(*key, "principal")
                << ", role " << RoleLabel(*key) << ") at " << Field(*key, "revoked_at") << "\n";
    }
  }
  return code;
}

// --- pycell projects --------------------------------------------------------------------------

struct ProjectFlags {
  std::string name;  // create: the new name; update: an id or a name.
  bool share_sessions = false;
  bool no_share_sessions = false;
  int64_t concurrent_sessions = 0;
  int64_t sessions_per_day = 0;
  double cpu_hours_per_day = 0;
  std::string storage;  // "10g", or bytes.
  // The quota options, to tell "not given" from 0 (which means: no quota).
  CLI::Option* concurrent_option = nullptr;
  CLI::Option* per_day_option = nullptr;
  CLI::Option* cpu_option = nullptr;
  CLI::Option* storage_option = nullptr;
};

// The body of POST or PATCH /v1/projects from the flags given, or a usage error.
Result<Json> ProjectBody(const ProjectFlags& project, bool creating) {
  Json body = Json::object();
  if (creating) body["name"] = project.name;
  if (project.share_sessions) body["share_sessions"] = true;
  if (project.no_share_sessions) body["share_sessions"] = false;
  Json quotas = Json::object();
  auto whole = [&](CLI::Option* option, int64_t value, const char* quota) -> Status {
    if (option->count() == 0) return Status::Ok();
    if (value < 0) {
      return Status::InvalidArgument(option->get_name() + " must be 0 (no quota) or more");
    }
    quotas[quota] = value;
    return Status::Ok();
  };
  RETURN_IF_ERROR(
      whole(project.concurrent_option, project.concurrent_sessions, "concurrent_sessions"));
  RETURN_IF_ERROR(whole(project.per_day_option, project.sessions_per_day, "sessions_per_day"));
  if (project.cpu_option->count() > 0) {
    if (!(project.cpu_hours_per_day >= 0)) {
      return Status::InvalidArgument("--max-cpu-hours-per-day must be 0 (no quota) or more");
    }
    quotas["cpu_hours_per_day"] = project.cpu_hours_per_day;
  }
  if (project.storage_option->count() > 0) {
    auto bytes = ParseByteSize(project.storage);
    if (!bytes.ok()) return bytes.status().WithContext("--max-storage-bytes");
    quotas["storage_bytes"] = *bytes;
  }
  if (!quotas.empty()) body["quotas"] = quotas;
  if (!creating && body.empty()) {
    return Status::InvalidArgument(
        "nothing to change: give --share-sessions, --no-share-sessions or a --max-… quota");
  }
  return body;
}

std::string QuotaText(const Json& quotas, const char* key) {
  if (!quotas.is_object() || !quotas.contains(key) || quotas[key].is_null()) return "-";
  if (std::string(key) == "storage_bytes" && quotas[key].is_number_integer() &&
      quotas[key].get<int64_t>() >= 0) {
    return HumanBytes(quotas[key].get<uint64_t>());
  }
  return Dump(quotas[key]);
}

void PrintProject(const Json& project) {
  PrintFields(project, {"id", "name", "share_sessions", "created_at"});
  const Json& quotas = project.contains("quotas") ? project["quotas"] : Json();
  std::string text;
  for (const char* key :
       {"concurrent_sessions", "sessions_per_day", "cpu_hours_per_day", "storage_bytes"}) {
    std::string value = QuotaText(quotas, key);
    if (value != "-") text += (text.empty() ? "" : ", ") + std::string(key) + " " + value;
  }
  std::cout << "quotas: " << (text.empty() ? "none" : text) << "\n";
}

int ProjectsWrite(const ClientFlags& flags, const ProjectFlags& project, bool creating) {
  auto body = ProjectBody(project, creating);
  if (!body.ok()) return UsageError(body.status());
  auto directory = Directory::Open(flags);
  if (!directory.ok()) return Fail(directory.status());
  auto written =
      creating ? directory->CreateProject(*body) : directory->UpdateProject(project.name, *body);
  if (!written.ok()) return Fail(written.status());
  if (flags.json) {
    std::cout << Dump(*written) << "\n";
  } else {
    PrintProject(*written);
  }
  return 0;
}

int ProjectsList(const ClientFlags& flags) {
  auto directory = Directory::Open(flags);
  if (!directory.ok()) return Fail(directory.status());
  auto projects = directory->ListProjects();
  if (!projects.ok()) return Fail(projects.status());
  if (flags.json) {
    std::cout << Dump(*projects) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& p : (*projects)["data"]) {
    const Json& quotas = p.contains("quotas") ? p["quotas"] : Json();
    rows.push_back({Field(p, "id"), Field(p, "name"),
                    p.value("share_sessions", false) ? "yes" : "no",
                    QuotaText(quotas, "concurrent_sessions"), QuotaText(quotas, "sessions_per_day"),
                    QuotaText(quotas, "cpu_hours_per_day"), QuotaText(quotas, "storage_bytes"),
                    Field(p, "created_at")});
  }
  PrintTable({"ID", "NAME", "SHARED SESSIONS", "CONCURRENT", "SESSIONS/DAY", "CPU H/DAY", "STORAGE",
              "CREATED"},
             rows);
  return 0;
}

// --- registration -----------------------------------------------------------------------------

// --data-dir: work on the data dir's database instead of a server; --url and --key then have no
// use, so they may not be given with it.
void AddDataDirFlag(CLI::App* command, ClientFlags* flags, const char* what) {
  CLI::Option* data_dir = command->add_option(
      "--data-dir", flags->data_dir,
      std::string("work directly on this data dir's database instead of a server (") + what + ")");
  data_dir->excludes(command->get_option("--url"));
  data_dir->excludes(command->get_option("--key"));
}

}  // namespace

std::function<int()> RegisterAccessCommands(CLI::App& app) {
  struct State {
    ClientFlags client;
    auth::KeySpec key;
    KeyListFlags key_list;
    std::vector<std::string> ids;
    ProjectFlags project_create;
    ProjectFlags project_update;
    Subcommands subcommands{&client};
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  auto add = [&](CLI::App* parent, const char* name, const char* help, std::function<int()> run) {
    CLI::App* command = s.subcommands.Add(parent, name, help, std::move(run));
    AddDataDirFlag(command, &s.client, "when the server is down");
    return command;
  };

  CLI::App* keys = app.add_subcommand("keys", "API keys (an admin key, or --data-dir)");
  keys->require_subcommand(1);
  CLI::App* create = add(keys, "create", "create a key; its secret is shown once",
                         [&s] { return KeysCreate(s.client, s.key); });
  create
      ->add_option("--principal", s.key.principal,
                   "who the key is for: a person, a service or an agent")
      ->required();
  create->add_option("--project", s.key.project, "its project, by id or name (default: default)");
  create->add_option("--role", s.key.role, "user, admin, operator or auditor")
      ->check(CLI::IsMember({"user", "admin", "operator", "auditor"}))
      ->capture_default_str();
  create->add_flag("--all-projects", s.key.all_projects,
                   "an auditor that reads every project, not only its own");
  CLI::App* list = add(keys, "list", "list keys (never their secrets)",
                       [&s] { return KeysList(s.client, s.key_list); });
  list->add_option("--project", s.key_list.project, "only this project's keys (id or name)");
  list->add_flag("--include-revoked", s.key_list.include_revoked, "also the revoked keys");
  add(keys, "revoke", "revoke keys; they stop working at once",
      [&s] { return KeysRevoke(s.client, s.ids); })
      ->add_option("ids", s.ids, "key ids (key_…)")
      ->required();

  CLI::App* projects = app.add_subcommand("projects", "projects and their quotas");
  projects->require_subcommand(1);
  auto add_quota_options = [](CLI::App* command, ProjectFlags* project) {
    project->concurrent_option =
        command->add_option("--max-concurrent-sessions", project->concurrent_sessions,
                            "sessions open at once (0: no quota)");
    project->per_day_option =
        command->add_option("--max-sessions-per-day", project->sessions_per_day,
                            "sessions created per UTC day (0: no quota)");
    project->cpu_option = command->add_option("--max-cpu-hours-per-day", project->cpu_hours_per_day,
                                              "CPU hours per UTC day (0: no quota)");
    project->storage_option =
        command->add_option("--max-storage-bytes", project->storage,
                            "bytes of files stored, e.g. 10737418240 or 10g (0: no quota)");
  };
  CLI::App* project_create = add(projects, "create", "create a project", [&s] {
    return ProjectsWrite(s.client, s.project_create, /*creating=*/true);
  });
  project_create->add_option("name", s.project_create.name, "1-64 characters of a-z, 0-9, - and _")
      ->required();
  project_create->add_flag("--share-sessions", s.project_create.share_sessions,
                           "users may see and use each other's sessions");
  add_quota_options(project_create, &s.project_create);
  add(projects, "list", "list projects", [&s] { return ProjectsList(s.client); });
  CLI::App* update = add(projects, "update", "change a project's sharing or quotas", [&s] {
    return ProjectsWrite(s.client, s.project_update, /*creating=*/false);
  });
  update->add_option("project", s.project_update.name, "the project's id or name")->required();
  CLI::Option* share = update->add_flag("--share-sessions", s.project_update.share_sessions,
                                        "users may see and use each other's sessions");
  update
      ->add_flag("--no-share-sessions", s.project_update.no_share_sessions,
                 "users see only their own sessions")
      ->excludes(share);
  add_quota_options(update, &s.project_update);
  return [state] { return state->subcommands.Run(); };
}

}  // namespace pycell::cli
