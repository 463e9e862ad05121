// The client of a running `pycell serve` (REST API /v1):
//   pycell files upload|list|get|download|rm, pycell sessions create|list|show|rm (here), and
//   pycell exec (client_exec.cc).
// Every command takes --url (or $PYCELL_URL), --key (or $PYCELL_KEY, or a data dir's admin.key:
// client_common.h) and --json (print each object the server returned as one line of JSON
// instead of a table). Exit codes as in commands.h: a server's error answer or
// an unreachable server is 1, bad flags 2; exec adds the cell's own (0, 1, 124, 125).
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/config.h"

namespace pycell::cli {
namespace {

// Prints a list answer as a table (or its JSON line); notes how to get the next page.
void PrintList(const Json& list, const ClientFlags& flags, const std::string& next_command,
               const std::vector<std::string>& header,
               const std::function<std::vector<std::string>(const Json&)>& row) {
  if (flags.json) {
    std::cout << Dump(list) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& item : list["data"]) rows.push_back(row(item));
  PrintTable(header, rows);
  if (list.value("has_more", false)) {
    std::cerr << "(more: " << next_command << " --after " << Field(list, "last_id") << ")\n";
  }
}

int FilesUpload(const ClientFlags& flags, const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    if (Status s = CheckReadableFile(path); !s.ok()) return UsageError(s);
  }
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  int code = 0;
  for (const std::string& path : paths) {
    auto file = UploadFile(**client, path, "/v1/files");
    if (!file.ok()) {
      code = Fail(file.status());
      if (code == kExitInterrupted || file.status().reason() == "unreachable") return code;
      continue;
    }
    if (flags.json) {
      std::cout << Dump(*file) << "\n";
    } else {
      std::cout << Field(*file, "id") << "  " << Field(*file, "filename") << "  "
                << HumanBytes(file->value("bytes", uint64_t{0})) << "\n";
    }
  }
  return code;
}

struct ListFlags {
  std::string purpose;
  std::string session_id;
  std::string status;
  int limit = 0;
  std::string after;
};

int FilesList(const ClientFlags& flags, const ListFlags& list) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  std::string query = Query({{"purpose", list.purpose},
                             {"session_id", list.session_id},
                             {"limit", list.limit > 0 ? std::to_string(list.limit) : ""},
                             {"after", list.after}});
  auto answer = JsonAnswer((*client)->Get("/v1/files" + query), **client);
  if (!answer.ok()) return Fail(answer.status());
  PrintList(*answer, flags, "pycell files list", {"ID", "FILENAME", "SIZE", "PURPOSE", "CREATED"},
            [](const Json& f) -> std::vector<std::string> {
              return {Field(f, "id"), Field(f, "filename"),
                      HumanBytes(f.value("bytes", uint64_t{0})), Field(f, "purpose"),
                      Field(f, "created_at")};
            });
  return 0;
}

int FilesGet(const ClientFlags& flags, const std::string& id) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto file = JsonAnswer((*client)->Get("/v1/files/" + Escape(id)), **client);
  if (!file.ok()) return Fail(file.status());
  if (flags.json) {
    std::cout << Dump(*file) << "\n";
  } else {
    PrintFields(*file, {"id", "filename", "bytes", "sha256", "media_type", "purpose", "created_at",
                        "expires_at", "session_id", "execution_id", "path"});
  }
  return 0;
}

// Prints one producing step and, indented, the steps behind its inputs.
void PrintProducedBy(const nlohmann::json& produced, int depth) {
  std::string pad(static_cast<size_t>(depth) * 4, ' ');
  const auto& execution = produced.value("execution", nlohmann::json::object());
  const auto& session = produced.value("session", nlohmann::json::object());
  std::cout << pad << "written by " << Field(execution, "id") << " (" << Field(execution, "status")
            << ", " << Field(execution, "started_at") << ", code sha256 "
            << Field(execution, "code_sha256").substr(0, 12) << "…)\n";
  if (session.is_object()) {
    std::cout << pad << "  in session " << Field(session, "id") << " (pool "
              << Field(session, "pool");
    for (const char* key : {"agent_id", "thread_id", "run_id"}) {
      if (session.contains(key) && session[key].is_string()) {
        std::cout << ", " << key << " " << session[key].get<std::string>();
      }
    }
    std::cout << ")\n";
  }
  for (const auto& input : produced.value("inputs", nlohmann::json::array())) {
    std::cout << pad << "  from " << Field(input, "filename") << "  " << Field(input, "file_id")
              << "  sha256 " << Field(input, "sha256").substr(0, 12) << "…"
              << (input.value("exists", true) ? "" : "  (record deleted)") << "\n";
    if (input.contains("produced_by") && input["produced_by"].is_object()) {
      PrintProducedBy(input["produced_by"], depth + 1);
    }
  }
}

int Lineage(const ClientFlags& flags, const std::string& id) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto lineage = JsonAnswer((*client)->Get("/v1/files/" + Escape(id) + "/lineage"), **client);
  if (!lineage.ok()) return Fail(lineage.status());
  if (flags.json) {
    std::cout << Dump(*lineage) << "\n";
    return 0;
  }
  const auto& file = (*lineage)["file"];
  std::cout << Field(file, "filename") << "  " << Field(file, "id") << "  ("
            << Field(file, "purpose") << ", sha256 " << Field(file, "sha256") << ")\n";
  if ((*lineage)["produced_by"].is_object()) PrintProducedBy((*lineage)["produced_by"], 0);
  for (const auto& use : lineage->value("used_by", nlohmann::json::array())) {
    std::cout << "placed in session " << Field(use, "session_id") << " at "
              << Field(use, "placed_at") << "; cells after:";
    for (const auto& run : use.value("executions", nlohmann::json::array())) {
      std::cout << " " << Field(run, "id") << " (" << Field(run, "status") << ")";
    }
    std::cout << "\n";
  }
  return 0;
}

struct DownloadFlags {
  std::string id;
  std::string output;
  bool force = false;
};

int FilesDownload(const ClientFlags& flags, const DownloadFlags& download) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto file = JsonAnswer((*client)->Get("/v1/files/" + Escape(download.id)), **client);
  if (!file.ok()) return Fail(file.status());
  std::string filename = Field(*file, "filename");
  if (filename.find('/') != std::string::npos || filename == "." || filename == "..") {
    return Fail(Status::PermissionDenied("the server names the file \"" + filename +
                                         "\"; pass -o PATH to choose where it goes"));
  }
  std::string dest = download.output.empty() ? filename : download.output;
  struct stat st;
  if (::stat(dest.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
    dest += "/" + filename;
  }
  if (!download.force && ::lstat(dest.c_str(), &st) == 0) {
    std::cerr << "pycell: " << dest << " exists; pass --force to overwrite it\n";
    return 1;
  }
  // Into a hidden file beside the destination, which takes its name only once verified.
  size_t slash = dest.rfind('/');
  std::string dir = slash == std::string::npos ? "." : dest.substr(0, slash + 1);
  std::string temp = dir + (slash == std::string::npos ? "/" : "") + ".pycell-download-XXXXXX";
  UniqueFd fd(::mkstemp(temp.data()));
  if (!fd.valid()) return Fail(Status::FromErrno("creating a file in " + dir));
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd.get(), 0666 & ~mask);
  Status s = DownloadVerified(**client, download.id, fd.get(), Field(*file, "sha256"),
                              "download " + filename);
  if (s.ok()) {
    if (download.force) {
      if (::rename(temp.c_str(), dest.c_str()) != 0) s = Status::FromErrno(dest);
    } else if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
      s = errno == EEXIST
              ? Status::FailedPrecondition(dest + " exists; pass --force to overwrite it")
              : Status::FromErrno(dest);
    }
  }
  if (!s.ok()) {
    ::unlink(temp.c_str());
    return Fail(s.reason() == "interrupted" ? s : s.WithContext("nothing written to " + dest));
  }
  if (flags.json) {
    std::cout << Dump(*file) << "\n";
  } else {
    std::cout << "saved " << dest << " (" << HumanBytes(file->value("bytes", uint64_t{0}))
              << ", SHA-256 verified)\n";
  }
  return 0;
}

int FilesRemove(const ClientFlags& flags, const std::vector<std::string>& ids) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  int code = 0;
  for (const std::string& id : ids) {
    auto answer = JsonAnswer((*client)->Delete("/v1/files/" + Escape(id)), **client);
    if (!answer.ok()) {
      code = Fail(answer.status());
      if (code == kExitInterrupted) return code;
      continue;
    }
    if (flags.json) {
      std::cout << Dump(*answer) << "\n";
    } else {
      std::cout << "deleted " << id << "\n";
    }
  }
  return code;
}

// --- pycell sessions --------------------------------------------------------------------------

struct CreateFlags {
  std::vector<std::string> file_ids;
  std::string pool;
  std::string memory;
  int timeout_s = 0;
  std::vector<std::string> metadata;
};

// The body of POST /v1/sessions, or a usage error.
Result<Json> CreateBody(const CreateFlags& create) {
  Json body = Json::object();
  if (!create.pool.empty()) body["pool"] = create.pool;
  if (!create.file_ids.empty()) body["file_ids"] = create.file_ids;
  if (!create.memory.empty()) {
    auto bytes = ParseByteSize(create.memory);
    if (!bytes.ok()) return bytes.status().WithContext("--memory");
    body["limits"]["memory_bytes"] = *bytes;
  }
  if (create.timeout_s < 0) return Status::InvalidArgument("--timeout must be at least 1 second");
  if (create.timeout_s > 0) body["limits"]["execution_timeout_s"] = create.timeout_s;
  for (const std::string& pair : create.metadata) {
    size_t equals = pair.find('=');
    if (equals == std::string::npos || equals == 0) {
      return Status::InvalidArgument("--metadata takes KEY=VALUE, not \"" + pair + "\"");
    }
    body["metadata"][pair.substr(0, equals)] = pair.substr(equals + 1);
  }
  return body;
}

int SessionsCreate(const ClientFlags& flags, const CreateFlags& create) {
  auto body = CreateBody(create);
  if (!body.ok()) return UsageError(body.status());
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto session = JsonAnswer((*client)->PostJson("/v1/sessions", Dump(*body)), **client);
  if (!session.ok()) return Fail(session.status());
  std::cout << (flags.json ? Dump(*session) : Field(*session, "id")) << "\n";
  return 0;
}

int SessionsFork(const ClientFlags& flags, const std::string& id) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto session =
      JsonAnswer((*client)->PostJson("/v1/sessions/" + Escape(id) + "/fork", "{}"), **client);
  if (!session.ok()) return Fail(session.status());
  std::cout << (flags.json ? Dump(*session) : Field(*session, "id")) << "\n";
  return 0;
}

int SessionsList(const ClientFlags& flags, const ListFlags& list) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  std::string query = Query({{"status", list.status},
                             {"limit", list.limit > 0 ? std::to_string(list.limit) : ""},
                             {"after", list.after}});
  auto answer = JsonAnswer((*client)->Get("/v1/sessions" + query), **client);
  if (!answer.ok()) return Fail(answer.status());
  PrintList(*answer, flags, "pycell sessions list",
            {"ID", "STATUS", "POOL", "EXECUTIONS", "CREATED", "END REASON"},
            [](const Json& s) -> std::vector<std::string> {
              return {Field(s, "id"),         Field(s, "status"),
                      Field(s, "pool"),       Field(s, "execution_count"),
                      Field(s, "created_at"), Field(s, "end_reason")};
            });
  return 0;
}

int SessionsShow(const ClientFlags& flags, const std::string& id) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto session = JsonAnswer((*client)->Get("/v1/sessions/" + Escape(id)), **client);
  if (!session.ok()) return Fail(session.status());
  if (flags.json) {
    std::cout << Dump(*session) << "\n";
    return 0;
  }
  PrintFields(*session, {"id", "status", "end_reason", "pool", "forked_from", "execution_count",
                         "created_at", "last_active_at", "expires_at", "ended_at"});
  for (const char* group : {"limits", "metadata"}) {
    if (!session->contains(group) || !(*session)[group].is_object()) continue;
    std::cout << group << ":" << ((*session)[group].empty() ? " -" : "") << "\n";
    for (const auto& [key, value] : (*session)[group].items()) {
      std::cout << "  " << key << ": "
                << (value.is_string() ? value.get<std::string>() : Dump(value)) << "\n";
    }
  }
  return 0;
}

int SessionsRemove(const ClientFlags& flags, const std::vector<std::string>& ids) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  int code = 0;
  for (const std::string& id : ids) {
    auto session = JsonAnswer((*client)->Delete("/v1/sessions/" + Escape(id)), **client);
    if (!session.ok()) {
      code = Fail(session.status());
      if (code == kExitInterrupted) return code;
      continue;
    }
    if (flags.json) {
      std::cout << Dump(*session) << "\n";
    } else {
      std::cout << "ended " << id << " (" << Field(*session, "end_reason") << ")\n";
    }
  }
  return code;
}

}  // namespace

std::function<int()> RegisterClientCommands(CLI::App& app) {
  struct State {
    ClientFlags client;
    std::vector<std::string> args;
    std::string id;
    ListFlags list;
    DownloadFlags download;
    CreateFlags create;
    ExecFlags exec;
    Subcommands subcommands{&client};
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  auto add = [&](CLI::App* parent, const char* name, const char* help, std::function<int()> run) {
    return s.subcommands.Add(parent, name, help, std::move(run));
  };

  CLI::App* files = app.add_subcommand("files", "files on a running server (pycell serve)");
  files->require_subcommand(1);
  add(files, "upload", "upload files", [&s] { return FilesUpload(s.client, s.args); })
      ->add_option("paths", s.args, "files to upload")
      ->required();
  CLI::App* list = add(files, "list", "list files", [&s] { return FilesList(s.client, s.list); });
  list->add_option("--purpose", s.list.purpose, "input or output")
      ->check(CLI::IsMember({"input", "output"}));
  list->add_option("--session", s.list.session_id, "only the outputs of this session");
  list->add_option("--limit", s.list.limit, "at most this many (1-1000)");
  list->add_option("--after", s.list.after, "the page after this id");
  add(files, "get", "show a file's metadata", [&s] { return FilesGet(s.client, s.id); })
      ->add_option("id", s.id, "file id")
      ->required();
  CLI::App* download = add(files, "download", "download a file, checking its SHA-256",
                           [&s] { return FilesDownload(s.client, s.download); });
  download->add_option("id", s.download.id, "file id")->required();
  download->add_option("-o,--output", s.download.output,
                       "where to write it (default: its filename, in the current folder)");
  download->add_flag("--force", s.download.force, "overwrite an existing file");
  add(files, "rm", "delete files", [&s] { return FilesRemove(s.client, s.args); })
      ->add_option("ids", s.args, "file ids")
      ->required();

  CLI::App* sessions = app.add_subcommand("sessions", "sessions on a running server");
  sessions->require_subcommand(1);
  CLI::App* create = add(sessions, "create", "create a session and print its id",
                         [&s] { return SessionsCreate(s.client, s.create); });
  // Repeatable options take one value each, so a positional after them stays a positional.
  create->add_option("--file", s.create.file_ids, "a file id to place in /mnt/data (repeatable)")
      ->allow_extra_args(false);
  create->add_option("--pool", s.create.pool, "the pool to take it from");
  create->add_option("--memory", s.create.memory, "memory limit, e.g. 512m");
  create->add_option("--timeout", s.create.timeout_s, "default seconds a cell may run");
  create->add_option("--metadata", s.create.metadata, "KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  CLI::App* sessions_list =
      add(sessions, "list", "list sessions", [&s] { return SessionsList(s.client, s.list); });
  sessions_list->add_option("--status", s.list.status, "active or ended")
      ->check(CLI::IsMember({"active", "ended"}));
  sessions_list->add_option("--limit", s.list.limit, "at most this many (1-1000)");
  sessions_list->add_option("--after", s.list.after, "the page after this id");
  add(sessions, "show", "show a session", [&s] { return SessionsShow(s.client, s.id); })
      ->add_option("id", s.id, "session id")
      ->required();
  add(sessions, "fork",
      "copy a session (its variables, /mnt/data and /tmp) into a new one and print its id",
      [&s] { return SessionsFork(s.client, s.id); })
      ->add_option("id", s.id, "session id")
      ->required();
  add(sessions, "rm", "end sessions", [&s] { return SessionsRemove(s.client, s.args); })
      ->add_option("ids", s.args, "session ids")
      ->required();

  add(&app, "lineage", "where a file came from and where it went",
      [&s] { return Lineage(s.client, s.id); })
      ->add_option("id", s.id, "file id")
      ->required();

  CLI::App* exec = add(&app, "exec", "run Python code on a running server, streaming its output",
                       [&s] { return Exec(s.client, s.exec); });
  exec->add_option("code", s.exec.code_file, "file with the code, or - for standard input");
  exec->add_option("--session", s.exec.session_id,
                   "run in this session (default: a new one, ended afterwards)");
  exec->add_option("--timeout", s.exec.timeout_s, "seconds the cell may run");
  exec->add_option("--out", s.exec.out_dir,
                   "folder to write images and the files the cell wrote under /mnt/data");
  exec->add_flag("--keep", s.exec.keep, "keep the new session (its id goes to stderr)");
  exec->add_option("--file", s.exec.files, "a file to upload into /mnt/data (repeatable)")
      ->allow_extra_args(false);

  return [state] { return state->subcommands.Run(); };
}

}  // namespace pycell::cli
