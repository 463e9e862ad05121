// The zygote process's main: started by Zygote::Start as `pycell __zygote`, with its control
// socket on descriptor 3, on which the first frame is its configuration
// ({"python", "preload", "cache_dir"}). It starts the embedded Python, runs runner.py's zygote_init
// (imports, shell, gc.freeze), then forks sessions on request — each one through the sandbox
// checklist (src/sandbox/contain.h) and into runner.py's serve().
//
// Requests (frames, src/kernel/frame.h):
//   {"type": "spawn", "policy": {...}, "cpus": n} + descriptors [stdout, stderr, control, go]
//     -> {"type": "spawned", "pid": host pid of the session's init} | {"type": "error", ...}
// Single-threaded by design: forking is only safe from a process with one thread.
#pragma once

namespace pycell::kernel {

// Never returns normally; the exit code says why the zygote stopped.
int ZygoteMain(int control_fd);

// Every binary that starts sessions (pycell, its tests, its benchmarks) is also the zygote: the
// engine re-executes /proc/self/exe with the one argument "__zygote". Call first thing in main():
//   if (int code; pycell::kernel::MaybeRunZygote(argc, argv, &code)) return code;
bool MaybeRunZygote(int argc, char** argv, int* exit_code);

}  // namespace pycell::kernel
