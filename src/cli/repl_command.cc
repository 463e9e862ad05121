// pycell repl [--file F]... [--out DIR]: one session kept open; each entered cell runs in it.
//
// A cell is one line, or — when a line opens a block (ends with ':' or '\') — every line up to
// the next empty line. "%%end" on its own line also ends a cell (for scripts).
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/cell_printer.h"
#include "cli/commands.h"

namespace pycell::cli {
namespace {

struct ReplFlags {
  EngineFlags engine;
  std::vector<std::string> files;
  std::string out_dir;
};

bool OpensBlock(const std::string& line) {
  auto end = line.find_last_not_of(" \t\r");
  if (end == std::string::npos) return false;
  char last = line[end];
  return last == ':' || last == '\\' || last == '(' || last == '[' || last == '{' ||
         line.rfind("%%", 0) == 0 || line.rfind("@", 0) == 0;
}

// Reads the next cell; false at end of input.
bool ReadCell(bool interactive, int count, std::string* cell) {
  cell->clear();
  std::string line;
  if (interactive) std::cout << "In [" << count << "]: " << std::flush;
  while (std::getline(std::cin, line)) {
    if (cell->empty() && line.empty()) {
      if (interactive) std::cout << "In [" << count << "]: " << std::flush;
      continue;
    }
    if (line == "%%end") return true;
    bool in_block = !cell->empty();
    if (in_block && line.empty()) return true;
    *cell += line + "\n";
    if (!in_block && !OpensBlock(line)) return true;
    if (interactive) std::cout << "   ...: " << std::flush;
  }
  return !cell->empty();
}

int Repl(ReplFlags& flags) {
  if (!flags.engine.Resolve()) return kExitUsage;
  auto opened = OpenSession(flags.engine.config, flags.files);
  if (!opened.ok()) {
    std::cerr << "pycell: " << opened.status().message() << "\n";
    return kExitUsage;
  }
  session::Session& session = *opened->session;
  bool interactive = ::isatty(0);
  if (interactive) {
    std::cout << "pycell session " << session.id()
              << " (files in /mnt/data; blank line ends a block; Ctrl-D quits)\n";
  }
  kernel::ExecuteObserver observer;
  observer.on_stdout = [](std::string_view s) { std::cout << s << std::flush; };
  observer.on_stderr = [](std::string_view s) { std::cerr << s << std::flush; };
  int last = 0;
  std::string cell;
  for (int count = 1; ReadCell(interactive, count, &cell); ++count) {
    auto record = session.Execute({cell, std::nullopt}, observer);
    if (!record.ok()) {
      std::cerr << "pycell: " << record.status().message() << "\n";
      return kExitSessionEnded;
    }
    bool saved = false;
    if (!flags.out_dir.empty() && record->session_end_reason.empty()) {
      saved = SaveArtifacts(session, *record, flags.out_dir).ok();
    }
    last = PrintRecord(*record, saved);
    if (!record->session_end_reason.empty()) return last;
  }
  return last;
}

}  // namespace

std::function<int()> RegisterRepl(CLI::App& app) {
  auto flags = std::make_shared<ReplFlags>();
  CLI::App* repl = app.add_subcommand("repl", "keep one sandboxed session open and run cells");
  repl->add_option("--file", flags->files, "a file to place in /mnt/data (repeatable)")
      ->check(CLI::ExistingFile);
  repl->add_option("--out", flags->out_dir, "folder for images and files the cells write");
  flags->engine.Register(repl);
  return [flags] { return Repl(*flags); };
}

}  // namespace pycell::cli
