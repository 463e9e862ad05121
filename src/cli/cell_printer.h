// What run and repl share: starting the engine, and showing a cell's record to a person (text
// to the terminal, images and /mnt/data files into an output folder).
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "session/execution.h"
#include "session/session.h"
#include "session/session_manager.h"

namespace pycell::cli {

struct OpenedSession {
  std::unique_ptr<session::SessionManager> engine;  // Declared first: destroyed last.
  std::shared_ptr<session::Session> session;
};

// Privatizes this process's mounts (sessions' mounts never reach the host's table), starts the
// engine without a warm pool, opens one session and places `files` (host paths) in its
// /mnt/data under their base names. Call before any other thread starts.
Result<OpenedSession> OpenSession(EngineConfig config, const std::vector<std::string>& files);

// The exit code a cell's record deserves (see commands.h).
int ExitCodeFor(const session::ExecutionRecord& record);

// Prints results and displays as text (stdout and stderr were streamed already), and the error
// with its traceback to stderr. Returns the exit code the record deserves.
int PrintRecord(const session::ExecutionRecord& record, bool images_saved);

// Writes every image display into `out_dir` (<exec-count>-<n>.png, .svg) and copies the files the
// cell created or changed under /mnt/data there, keeping their relative paths. Links are never
// followed on the session's side. Prints one line per file written.
Status SaveArtifacts(const session::Session& session, const session::ExecutionRecord& record,
                     const std::string& out_dir);

}  // namespace pycell::cli
