// pycell notebook SESSION [--out FILE] (docs/notebooks.md): GET /v1/sessions/{id}/notebook, the
// session's cells and outputs as a Jupyter notebook (nbformat 4) with provenance in its metadata,
// on standard output or into FILE.
// pycell replay SESSION [--keep]: POST /v1/sessions/{id}/replay, the cells run again in a new
// session and compared one by one; exit 0 when every cell matches, 1 when one differs.
// pycell fork SESSION: POST /v1/sessions/{id}/fork, a new session with a copy of the live state;
// prints the fork's id (the whole session object with --json).
#include <fcntl.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "common/json_reader.h"

namespace pycell::cli {
namespace {

struct NotebookFlags {
  std::string session_id;
  std::string out;  // "" or "-": standard output.
};

int Notebook(const ClientFlags& flags, const NotebookFlags& notebook) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto answer = JsonAnswer(
      (*client)->Get("/v1/sessions/" + Escape(notebook.session_id) + "/notebook"), **client);
  if (!answer.ok()) return Fail(answer.status());
  std::string text = answer->dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
  if (notebook.out.empty() || notebook.out == "-") {
    std::cout << text;
    return std::cout.good() ? 0 : 1;
  }
  UniqueFd fd(::open(notebook.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Fail(Status::FromErrno("open " + notebook.out));
  Status written = WriteAll(fd.get(), text);
  if (!written.ok()) return Fail(written);
  std::cerr << "wrote " << notebook.out << " (" << (*answer)["cells"].size() << " cells)\n";
  return 0;
}

int Replay(const ClientFlags& flags, const std::string& session_id, bool keep) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  Json body = {{"keep", keep}};
  auto answer = JsonAnswer(
      (*client)->PostJson("/v1/sessions/" + Escape(session_id) + "/replay", DumpJson(body)),
      **client);
  if (!answer.ok()) return Fail(answer.status());
  const Json& report = *answer;
  bool equal = report.value("all_equal", false);
  if (flags.json) {
    std::cout << Dump(report) << "\n";
    return equal ? 0 : 1;
  }
  std::cout << "replay of " << Field(report, "original_session_id") << " in "
            << Field(report, "replay_session_id") << (keep ? " (kept)" : "") << "\n";
  for (const Json& cell : report.value("cells", Json::array())) {
    std::cout << "  cell " << Field(cell, "index") << " (" << Field(cell, "original_execution_id")
              << "): " << (cell.value("equal", false) ? "same" : "DIFFERS") << "\n";
    for (const Json& d : cell.value("differences", Json::array())) {
      std::cout << "    " << Field(d, "what") << ": was " << Dump(d.value("original", Json()))
                << ", now " << Dump(d.value("replay", Json())) << "\n";
    }
    for (const Json& note : cell.value("notes", Json::array())) {
      std::cout << "    note: " << (note.is_string() ? note.get<std::string>() : Dump(note))
                << "\n";
    }
  }
  std::cout << (equal ? "every cell gave the same outputs\n" : "some cells differ\n");
  return equal ? 0 : 1;
}

int Fork(const ClientFlags& flags, const std::string& session_id) {
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  auto answer = JsonAnswer(
      (*client)->PostJson("/v1/sessions/" + Escape(session_id) + "/fork", "{}"), **client);
  if (!answer.ok()) return Fail(answer.status());
  if (flags.json) {
    std::cout << Dump(*answer) << "\n";
  } else {
    std::cout << Field(*answer, "id") << "\n";
  }
  return 0;
}

}  // namespace

std::function<int()> RegisterNotebookCommand(CLI::App& app) {
  struct State {
    ClientFlags client;
    NotebookFlags notebook;
    std::string replay_session;
    bool keep = false;
    std::string fork_session;
  };
  auto state = std::make_shared<State>();
  CLI::App* command = app.add_subcommand(
      "notebook", "a session's cells and outputs as a Jupyter notebook (.ipynb) with provenance");
  AddClientFlags(command, &state->client);
  command->add_option("session", state->notebook.session_id, "the session's id (sess_…)")
      ->required();
  command->add_option("--out,-o", state->notebook.out, "write to this file (default: stdout)");
  CLI::App* replay = app.add_subcommand(
      "replay",
      "run a session's cells again in a new session and compare the outputs cell by "
      "cell; exit 1 when one differs");
  AddClientFlags(replay, &state->client);
  replay->add_option("session", state->replay_session, "the session's id (sess_…)")->required();
  replay->add_flag("--keep", state->keep, "keep the replay session (default: end it)");
  CLI::App* fork = app.add_subcommand(
      "fork",
      "a new session with a copy of a session's live state (variables, /mnt/data); "
      "prints its id");
  AddClientFlags(fork, &state->client);
  fork->add_option("session", state->fork_session, "the session's id (sess_…)")->required();
  return [state, command, replay, fork]() -> int {
    if (command->parsed()) return Notebook(state->client, state->notebook);
    if (replay->parsed()) return Replay(state->client, state->replay_session, state->keep);
    if (fork->parsed()) return Fork(state->client, state->fork_session);
    return -1;
  };
}

}  // namespace pycell::cli
