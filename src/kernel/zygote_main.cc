#define PY_SSIZE_T_CLEAN
#include "kernel/zygote_main.h"

#include <Python.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/json_reader.h"
#include "common/status.h"
#include "kernel/frame.h"
#include "kernel/policy_json.h"
#include "kernel/runner_source.h"
#include "sandbox/contain.h"

namespace pycell::kernel {
namespace {

using nlohmann::json;

// Descriptors as the session's worker sees them.
constexpr int kSessionControlFd = 3;
constexpr int kLifelineFd = 4;  // The server's lifeline, or /dev/null when none was sent.
constexpr int kGoFd = 5;        // Closed before the checklist runs.

PyObject* runner_module = nullptr;
sandbox::seccomp::Program seccomp_program;  // Compiled once; every session installs it.

Status PythonError(const char* what) {
  PyErr_Print();
  return Status::Internal(std::string("python: ") + what);
}

void ReportAndExit(const Status& status);

// The module `_pycell`, built into the zygote for runner.py: fork_session() makes a session fork
// (src/sandbox/contain.h, ContainForkChild). In the origin's code process it returns
// (pid, stdout_read, stderr_read, control, go_write): the fork's first process as this session
// numbers it, and the server's ends of the fork's pipes and control socket, which the server takes
// with pidfd_getfd before runner.py closes them here. In the fork it returns None, in the fork's
// code process, once the host has admitted it: descriptors 1, 2 and 3 are then the fork's own.
PyObject* ForkSession(PyObject*, PyObject*) {
  int out[2], err[2], ctl[2], go[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return PyErr_SetFromErrno(PyExc_OSError);
  if (::pipe2(err, O_CLOEXEC) != 0 ||
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0 ||
      ::pipe2(go, O_CLOEXEC) != 0) {
    return PyErr_SetFromErrno(PyExc_OSError);  // What was made leaks into a failed fork only.
  }
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr) std::snprintf(cwd, sizeof cwd, "/mnt/data");
  std::string here = cwd;
  PyOS_BeforeFork();
  pid_t pid = sandbox::CloneForFork();
  if (pid == 0) {
    int admission = ::fcntl(go[0], F_DUPFD_CLOEXEC, 10);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::dup2(ctl[1], kSessionControlFd);
    for (int fd : {out[0], out[1], err[0], err[1], ctl[0], ctl[1], go[0], go[1]}) ::close(fd);
    Status s = sandbox::ContainForkChild(admission, here);
    if (!s.ok()) ReportAndExit(s.WithContext("fork"));
    PyOS_AfterFork_Child();
    Py_RETURN_NONE;
  }
  int saved = errno;
  PyOS_AfterFork_Parent();
  for (int fd : {out[1], err[1], ctl[1], go[0]}) ::close(fd);
  if (pid < 0) {
    for (int fd : {out[0], err[0], ctl[0], go[1]}) ::close(fd);
    errno = saved;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return Py_BuildValue("(iiiii)", static_cast<int>(pid), out[0], err[0], ctl[0], go[1]);
}

PyMethodDef kPycellMethods[] = {
    {"fork_session", ForkSession, METH_NOARGS, "Fork this session (see zygote_main.cc)."},
    {nullptr, nullptr, 0, nullptr}};
PyModuleDef kPycellModule = {PyModuleDef_HEAD_INIT, "_pycell", nullptr, -1, kPycellMethods};
PyObject* InitPycellModule() { return PyModule_Create(&kPycellModule); }

Status StartPython(const json& config) {
  if (PyImport_AppendInittab("_pycell", &InitPycellModule) != 0) {
    return Status::Internal("python: register _pycell");
  }
  PyConfig py;
  PyConfig_InitPythonConfig(&py);
  py.parse_argv = 0;
  py.use_environment = 0;          // No PYTHON* variables from anywhere.
  py.user_site_directory = 0;      // Nothing from a home folder.
  py.safe_path = 1;                // No current folder on sys.path.
  py.install_signal_handlers = 1;  // SIGINT -> KeyboardInterrupt.
  py.write_bytecode = 0;
  std::string executable = config.value("python", "/usr/bin/python3");
  PyStatus st = PyConfig_SetBytesString(&py, &py.program_name, executable.c_str());
  if (!PyStatus_Exception(st))
    st = PyConfig_SetBytesString(&py, &py.executable, executable.c_str());
  if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&py);
  PyConfig_Clear(&py);
  if (PyStatus_Exception(st)) {
    return Status::Internal(std::string("python start: ") + (st.err_msg ? st.err_msg : "?"));
  }
  PyObject* code = Py_CompileString(kRunnerSource, "runner.py", Py_file_input);
  if (code == nullptr) return PythonError("compile runner.py");
  runner_module = PyImport_ExecCodeModule("pycell_runner", code);
  Py_DECREF(code);
  if (runner_module == nullptr) return PythonError("load runner.py");
  PyObject* result =
      PyObject_CallMethod(runner_module, "zygote_init", "s", DumpJson(config).c_str());
  if (result == nullptr) return PythonError("zygote_init");
  Py_DECREF(result);
  return Status::Ok();
}

void ReportAndExit(const Status& status) {
  json error = {{"type", "error"}, {"message", status.message()}};
  (void)WriteFrame(kSessionControlFd, DumpJson(error));
  ::_exit(1);
}

// In the cloned child: descriptors into place, wait for the host's go, then the checklist.
[[noreturn]] void RunSession(int zygote_fd, Frame& request, const sandbox::Policy& policy,
                             double cpus) {
  PyOS_AfterFork_Child();
  ::close(zygote_fd);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  bool has_lifeline = request.fds.size() == 5;
  std::vector<std::pair<int, int>> moves = {{request.fds[0].get(), 1},
                                            {request.fds[1].get(), 2},
                                            {request.fds[2].get(), kSessionControlFd},
                                            {request.fds[3].get(), kGoFd}};
  if (has_lifeline) moves.emplace_back(request.fds[4].get(), kLifelineFd);
  // Move the received descriptors above the targets first so no dup2 clobbers another.
  for (auto& [source, target] : moves) source = ::fcntl(source, F_DUPFD_CLOEXEC, 10);
  ::dup2(devnull, 0);
  for (const auto& [source, target] : moves) ::dup2(source, target);
  char go = 0;
  if (::read(kGoFd, &go, 1) != 1 || go != 'g') ::_exit(1);  // The host gave up on us.
  // The same pipe later says the host has put us in our cgroup.
  Status s =
      sandbox::ContainChild(policy,
                            /*keep_fds=*/has_lifeline ? kLifelineFd + 1 : kLifelineFd,
                            /*admission_fd=*/kGoFd,
                            /*lifeline_fd=*/has_lifeline ? kLifelineFd : -1, seccomp_program);
  if (!s.ok()) ReportAndExit(s.WithContext("sandbox"));
  // Only the worker gets here, contained.
  PyOS_AfterFork_Child();
  PyObject* result = PyObject_CallMethod(runner_module, "serve", "id", kSessionControlFd, cpus);
  if (result == nullptr) PyErr_Print();
  ::_exit(result == nullptr ? 1 : 0);
}

json HandleSpawn(int zygote_fd, Frame& request, const json& message) {
  if (request.fds.size() != 4 && request.fds.size() != 5) {
    return {{"type", "error"}, {"message", "spawn needs 4 or 5 descriptors"}};
  }
  auto policy = DecodePolicy(DumpJson(message.value("policy", json::object())));
  if (!policy.ok()) return {{"type", "error"}, {"message", policy.status().message()}};
  double cpus = message.value("cpus", 1.0);
  PyOS_BeforeFork();
  pid_t pid = sandbox::CloneContained();
  if (pid == 0) RunSession(zygote_fd, request, *policy, cpus);
  int err = errno;
  PyOS_AfterFork_Parent();
  if (pid < 0) {
    return {{"type", "error"},
            {"message", Status::FromErrno("clone with new namespaces (does this host allow user "
                                          "namespaces? see `pycell doctor`)",
                                          err)
                            .message()}};
  }
  return {{"type", "spawned"}, {"pid", pid}};
}

}  // namespace

bool MaybeRunZygote(int argc, char** argv, int* exit_code) {
  if (argc != 2 || std::string(argv[1]) != "__zygote") return false;
  *exit_code = ZygoteMain(3);
  return true;
}

int ZygoteMain(int control_fd) {
  // Sessions are reaped by the kernel: the zygote never waits for them.
  ::signal(SIGCHLD, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  // The server's supplementary groups (root's) must not reach any session.
  if (::getuid() == 0 && ::setgroups(0, nullptr) != 0) std::perror("setgroups");
  auto program = sandbox::seccomp::Compile();
  if (!program.ok()) {
    (void)WriteFrame(control_fd,
                     DumpJson(json({{"type", "error"}, {"message", program.status().message()}})));
    return 2;
  }
  seccomp_program = std::move(*program);
  FrameReader reader;
  auto config_frame = ReadFrame(control_fd, reader, std::chrono::seconds(30));
  if (!config_frame.ok()) return 2;
  json config = json::parse(config_frame->payload, nullptr, false);
  if (!config.is_object()) return 2;
  Status started = StartPython(config);
  if (!started.ok()) {
    (void)WriteFrame(control_fd,
                     DumpJson(json({{"type", "error"}, {"message", started.message()}})));
    return 2;
  }
  if (!WriteFrame(control_fd, DumpJson(json({{"type", "ready"}}))).ok()) return 3;
  while (true) {
    auto frame = ReadFrame(control_fd, reader, std::chrono::hours(24 * 365));
    if (!frame.ok()) return frame.status().IsDeadlineExceeded() ? 4 : 0;  // Server gone.
    json message = json::parse(frame->payload, nullptr, false);
    json reply;
    if (message.is_object() && message.value("type", "") == "spawn") {
      reply = HandleSpawn(control_fd, *frame, message);
    } else {
      reply = {{"type", "error"}, {"message", "unknown request"}};
    }
    if (!WriteFrame(control_fd, DumpJson(reply)).ok()) return 0;
  }
}

}  // namespace pycell::kernel
