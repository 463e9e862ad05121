// pycell run [FILE | -] [--file F]... [--out DIR] [--json]: one session, one cell, then gone.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/cell_printer.h"
#include "cli/commands.h"

namespace pycell::cli {
namespace {

struct RunFlags {
  EngineFlags engine;
  std::string code_file = "-";
  std::vector<std::string> files;
  std::string out_dir;
  bool json = false;
};

int Run(RunFlags& flags) {
  if (!flags.engine.Resolve()) return kExitUsage;
  std::string code;
  if (flags.code_file == "-") {
    code.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    std::ifstream in(flags.code_file);
    if (!in) {
      std::cerr << "pycell: cannot read " << flags.code_file << "\n";
      return kExitUsage;
    }
    code.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto opened = OpenSession(flags.engine.config, flags.files);
  if (!opened.ok()) {
    std::cerr << "pycell: " << opened.status().message() << "\n";
    return kExitUsage;
  }
  session::Session& session = *opened->session;
  kernel::ExecuteObserver observer;
  if (!flags.json) {
    observer.on_stdout = [](std::string_view s) { std::cout << s << std::flush; };
    observer.on_stderr = [](std::string_view s) { std::cerr << s << std::flush; };
  }
  auto record = session.Execute({code, std::nullopt}, observer);
  if (!record.ok()) {
    std::cerr << "pycell: " << record.status().message() << "\n";
    return kExitUsage;
  }
  bool saved = false;
  if (!flags.out_dir.empty() && record->session_end_reason.empty()) {
    Status s = SaveArtifacts(session, *record, flags.out_dir);
    if (!s.ok()) std::cerr << "pycell: " << s.message() << "\n";
    saved = s.ok();
  }
  if (flags.json) {
    std::cout << record->ToJson(2) << "\n";
    return ExitCodeFor(*record);
  }
  return PrintRecord(*record, saved);
}

}  // namespace

std::function<int()> RegisterRun(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run = app.add_subcommand("run", "run Python code in a new sandboxed session");
  run->add_option("code", flags->code_file, "file with the code, or - for standard input");
  run->add_option("--file", flags->files, "a file to place in /mnt/data (repeatable)")
      ->check(CLI::ExistingFile);
  run->add_option("--out", flags->out_dir,
                  "folder to write images and the files the code wrote under /mnt/data");
  run->add_flag("--json", flags->json, "print the full execution record as JSON");
  flags->engine.Register(run);
  return [flags] { return Run(*flags); };
}

}  // namespace pycell::cli
