// Session semantics against the real sandbox, the real zygote and Debian's Python. Needs root
// (the engine refuses to run without it); skipped otherwise.
#include "session/session.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/ids.h"
#include "session/session_manager.h"
#include "test_util.h"

namespace pycell::session {
namespace {

using std::chrono::seconds;

EngineConfig TestConfig(const std::string& name) {
  EngineConfig config;
  config.state_dir = std::filesystem::current_path().string() + "/session-test-" + name;
  config.runtime_dir = "/run/pycell-test-" + name;
  config.pool.ready_sessions = 1;
  config.pool.limits.execution_timeout = seconds(20);
  config.interrupt_grace = std::chrono::milliseconds(2000);
  return config;
}

std::string Find(const kernel::MimeBundle& bundle, const std::string& mime) {
  for (const auto& [m, v] : bundle.data) {
    if (m == mime) return v;
  }
  return "";
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    auto manager = SessionManager::Create(TestConfig("shared"));
    ASSERT_OK(manager);
    manager_ = std::move(*manager).release();
  }
  static void TearDownTestSuite() {
    delete manager_;
    manager_ = nullptr;
  }
  void SetUp() override {
    if (manager_ == nullptr) GTEST_SKIP() << "needs root";
  }

  std::shared_ptr<Session> NewSession(const SessionOptions& options = {}) {
    auto session = manager_->CreateSession(options);
    EXPECT_OK(session);
    return session.ok() ? *session : nullptr;
  }
  ExecutionRecord Run(Session& session, const std::string& code,
                      std::optional<seconds> timeout = std::nullopt) {
    auto record = session.Execute({code, timeout});
    EXPECT_OK(record);
    return record.ok() ? *record : ExecutionRecord{};
  }

  static SessionManager* manager_;
};
SessionManager* SessionTest::manager_ = nullptr;

TEST_F(SessionTest, StatePersistsAcrossCells) {
  auto s = NewSession();
  ASSERT_TRUE(s);
  EXPECT_EQ(Run(*s, "x = 41\nimport json").status, "ok");
  ExecutionRecord r = Run(*s, "x += 1\nprint(json.dumps({'x': x}))");
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(r.stdout_text, "{\"x\": 42}\n");
}

TEST_F(SessionTest, LastExpressionIsTheResult) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s, "a = 6\na * 7");
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].kind, kernel::Output::Kind::kResult);
  EXPECT_EQ(Find(r.outputs[0].bundle, "text/plain"), "42");
  EXPECT_EQ(r.execution_count, 1);
  // A DataFrame result carries HTML beside plain text.
  r = Run(*s, "import pandas as pd\npd.DataFrame({'a': [1, 2]})");
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_NE(Find(r.outputs[0].bundle, "text/html").find("<table"), std::string::npos);
}

TEST_F(SessionTest, DisplayAndChartsAreValidPng) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s,
                          "from IPython.display import display, JSON\n"
                          "display({'k': 1}, raw=False)\n"
                          "import matplotlib.pyplot as plt\n"
                          "plt.plot([1, 3, 2]); plt.title('t')\n"
                          "None");
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  std::string png;
  for (const auto& output : r.outputs) {
    if (std::string b64 = Find(output.bundle, "image/png"); !b64.empty()) png = b64;
  }
  ASSERT_FALSE(png.empty()) << "no image/png output";
  std::string bytes(png.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                          reinterpret_cast<const unsigned char*>(png.data()),
                          static_cast<int>(png.size()));
  ASSERT_GT(n, 100);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // The figure was flushed: the next cell shows no stale chart.
  r = Run(*s, "1");
  EXPECT_EQ(r.outputs.size(), 1u);
}

TEST_F(SessionTest, ErrorsCarryTheTraceback) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s, "def f():\n    return 1 / 0\nf()");
  EXPECT_EQ(r.status, "error");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->ename, "ZeroDivisionError");
  EXPECT_EQ(r.error->evalue, "division by zero");
  std::string traceback;
  for (const auto& line : r.error->traceback) traceback += line;
  EXPECT_NE(traceback.find("return 1 / 0"), std::string::npos);
  EXPECT_EQ(traceback.find("\x1b["), std::string::npos) << "no terminal colour codes";
  // The session goes on.
  EXPECT_EQ(Run(*s, "print('alive')").stdout_text, "alive\n");
  // A syntax error is an error too.
  r = Run(*s, "def (:");
  EXPECT_EQ(r.status, "error");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->ename, "SyntaxError");
}

TEST_F(SessionTest, OutputOfCExtensionsAndSubprocessesIsCaught) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s,
                          "import os, subprocess, sys\n"
                          "os.write(1, b'raw-fd\\n')\n"
                          "subprocess.run(['/bin/sh', '-c', 'echo from-child; echo err >&2'])\n"
                          "print('to-stderr', file=sys.stderr)");
  EXPECT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("raw-fd"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("from-child"), std::string::npos);
  EXPECT_NE(r.stderr_text.find("err"), std::string::npos);
  EXPECT_NE(r.stderr_text.find("to-stderr"), std::string::npos);
}

TEST_F(SessionTest, TimeoutInterruptsAndTheSessionSurvives) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s, "import time\nprint('before')\ntime.sleep(60)", seconds(1));
  EXPECT_EQ(r.status, "timeout");
  EXPECT_EQ(r.timeout_action, "interrupted");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->ename, "KeyboardInterrupt");
  EXPECT_EQ(r.stdout_text, "before\n");
  EXPECT_TRUE(r.session_end_reason.empty());
  EXPECT_EQ(Run(*s, "print('still here')").stdout_text, "still here\n");
}

TEST_F(SessionTest, ACellThatIgnoresTheInterruptIsKilled) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s,
                          "import signal, time\n"
                          "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                          "time.sleep(60)",
                          seconds(1));
  EXPECT_EQ(r.status, "timeout");
  EXPECT_EQ(r.timeout_action, "killed");
  EXPECT_EQ(r.session_end_reason, "killed_after_timeout");
  EXPECT_EQ(s->end_reason(), EndReason::kKilledAfterTimeout);
  EXPECT_FALSE(s->Execute({"1", std::nullopt}).ok());
}

TEST_F(SessionTest, RunawayMemoryEndsOnlyThatSession) {
  auto other = NewSession();
  SessionOptions small;
  small.memory_bytes = 256ull << 20;
  auto s = NewSession(small);
  ASSERT_TRUE(s);
  ExecutionRecord r = Run(*s, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))");
  EXPECT_EQ(r.session_end_reason, "memory");
  EXPECT_EQ(s->end_reason(), EndReason::kMemory);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->ename, "MemoryError");
  EXPECT_EQ(Run(*other, "print(2 + 2)").stdout_text, "4\n");
}

TEST_F(SessionTest, ForkBombIsContained) {
  auto s = NewSession();
  ExecutionRecord r =
      Run(*s,
          "import os\n"
          "pids = []\n"
          "try:\n"
          "    for _ in range(10000):\n"
          "        pid = os.fork()\n"
          "        if pid == 0:\n"
          "            import time; time.sleep(30); os._exit(0)\n"
          "        pids.append(pid)\n"
          "except OSError as e:\n"
          "    print('refused after', len(pids), e.errno)\n",
          seconds(30));  // 256 forks of a pandas-sized process: 6-8 s here when quiet.
  EXPECT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("refused after"), std::string::npos) << r.stdout_text;
  EXPECT_LE(s->ProcessIds().size(), 256u);
  // Another session is unaffected.
  auto other = NewSession();
  EXPECT_EQ(Run(*other, "print('fine')").stdout_text, "fine\n");
}

TEST_F(SessionTest, LargeOutputIsCappedAndMarked) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s, "import sys\nfor i in range(3000):\n    print('x' * 1000)");
  EXPECT_EQ(r.status, "ok");
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_LT(r.stdout_text.size(), (1u << 20) + 200);
  EXPECT_NE(r.stdout_text.find("[pycell: output truncated"), std::string::npos);
  // Output without newlines, and in one write, is capped too.
  r = Run(*s, "import os\nos.write(1, b'y' * (5 << 20))");
  EXPECT_TRUE(r.stdout_truncated);
}

TEST_F(SessionTest, ManyDisplaysAreCapped) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s,
                          "from IPython.display import display, HTML\n"
                          "for i in range(200):\n"
                          "    display(HTML('x' * (1 << 20)))\n"
                          "print('done')");
  EXPECT_EQ(r.status, "ok");
  EXPECT_TRUE(r.outputs_truncated);
  EXPECT_LT(r.outputs.size(), 40u);
  EXPECT_EQ(r.stdout_text, "done\n");
}

TEST_F(SessionTest, SessionsAreIndependent) {
  auto a = NewSession();
  auto b = NewSession();
  Run(*a,
      "secret = 'only-a'\nopen('/mnt/data/a.txt', 'w').write('a')\n"
      "open('/tmp/a.tmp', 'w').write('a')\n"
      "import subprocess\np = subprocess.Popen(['sleep', '30'])");
  ExecutionRecord r = Run(*b,
                          "import os\n"
                          "print('secret' in globals())\n"
                          "print(os.path.exists('/mnt/data/a.txt'), os.path.exists('/tmp/a.tmp'))\n"
                          "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))");
  EXPECT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("False\nFalse False\n"), std::string::npos) << r.stdout_text;
  // b sees only its own init (1) and runner (2): not a's sleep.
  EXPECT_NE(r.stdout_text.find("[1, 2]"), std::string::npos) << r.stdout_text;
}

// Locks live on inodes: every file two sessions can both open must be a different inode in
// each (the runtime through an overlay of each session's own, device nodes of its own, stdin
// reopened on them), or their locks are a channel between them (security case 75).
TEST_F(SessionTest, SessionsLockNoInodeInCommon) {
  const std::string kLock =
      "import fcntl, os, sys\n"
      "paths = [os.path.realpath(sys.executable), '/usr/lib/os-release', '/etc/ld.so.cache',\n"
      "         '/etc/ssl/certs/ca-certificates.crt', '/dev/null', '/dev/urandom', '/usr']\n"
      "def try_locks(fds):\n"
      "    for fd in fds:\n"
      "        try:\n"
      "            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('locked', end=' ')\n"
      "        except OSError as e:\n"
      "            print('refused', e.errno, end=' ')\n"
      "held = [os.open(p, os.O_RDONLY) for p in paths]\n"
      "try_locks(held + [0])\n";
  auto a = NewSession();
  auto b = NewSession();
  ASSERT_TRUE(a && b);
  // a holds an exclusive lock on each; b must still get its own on every one.
  ExecutionRecord r = Run(*a, kLock);
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  // fd 0 is /dev/null again, already locked through `held`: refused within a, as it must be.
  EXPECT_EQ(r.stdout_text, "locked locked locked locked locked locked locked refused 11 ");
  r = Run(*b, kLock);
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "locked locked locked locked locked locked locked refused 11 ");
  // And a fork (which has b's state, `try_locks` too), whose device nodes (and so stdin) are its
  // own, not its origin's.
  auto fork = manager_->ForkSession(b->id());
  ASSERT_OK(fork);
  r = Run(
      **fork,
      "try_locks([0, os.open('/dev/null', os.O_RDONLY), os.open('/dev/urandom', os.O_RDONLY)])");
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  // stdin first: the fork's own /dev/null, so the later open of /dev/null finds it locked.
  EXPECT_EQ(r.stdout_text, "locked refused 11 locked ");
  // The host's files stay unlocked by either: another process gets them.
  for (const char* path : {"/usr/lib/os-release", "/etc/ld.so.cache", "/dev/null"}) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0) << path << " is locked on the host";
    ::close(fd);
  }
}

// Sessions forked from one zygote must not share its random state.
TEST_F(SessionTest, RandomNumbersDifferBetweenSessionsOfOnePool) {
  const std::string code = "import numpy, random\nprint(numpy.random.rand(), random.random())";
  auto a = NewSession();
  auto b = NewSession();
  std::string first = Run(*a, code).stdout_text;
  std::string second = Run(*b, code).stdout_text;
  EXPECT_FALSE(first.empty());
  EXPECT_NE(first, second);
}

TEST_F(SessionTest, FilesWrittenUnderMntDataAreReported) {
  auto s = NewSession();
  ExecutionRecord r = Run(*s,
                          "import os\n"
                          "os.makedirs('/mnt/data/out', exist_ok=True)\n"
                          "open('/mnt/data/out/r.csv', 'w').write('a,b\\n')\n"
                          "os.symlink('/etc/passwd', '/mnt/data/link')\n"
                          "open('/tmp/not-reported', 'w').write('x')");
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_EQ(r.files[0].path, "out/r.csv");
  EXPECT_TRUE(r.files[0].created);
  r = Run(*s, "open('/mnt/data/out/r.csv', 'a').write('1,2\\n')");
  ASSERT_EQ(r.files.size(), 1u);
  EXPECT_FALSE(r.files[0].created);
  r = Run(*s, "x = 1");
  EXPECT_TRUE(r.files.empty());
}

TEST_F(SessionTest, PutFileIsReadableAndWritableByTheCode) {
  auto s = NewSession();
  char path[] = "/tmp/pycell-put-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "week,units\n1,5\n", 15), 15);
  ::lseek(fd, 0, SEEK_SET);
  ASSERT_OK(s->PutFile("sales.csv", fd));
  ::close(fd);
  ::unlink(path);
  EXPECT_FALSE(s->PutFile("../escape.csv", 0).ok());
  ExecutionRecord r = Run(*s,
                          "import pandas as pd\n"
                          "df = pd.read_csv('sales.csv')\n"  // The working folder is /mnt/data.
                          "open('/mnt/data/sales.csv', 'a').write('2,6\\n')\n"
                          "print(int(df.units.sum()))");
  EXPECT_EQ(r.stdout_text, "5\n") << r.stderr_text;
}

TEST_F(SessionTest, ASecondCallerGetsBusy) {
  auto s = NewSession();
  std::thread slow([&] { Run(*s, "import time\ntime.sleep(2)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto second = s->Execute({"1", std::nullopt});
  EXPECT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsFailedPrecondition()) << second.status().ToString();
  slow.join();
}

TEST_F(SessionTest, AnEndedSessionLeavesNothingBehind) {
  auto s = NewSession();
  Run(*s,
      "import subprocess\n"
      "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
      "open('/mnt/data/f', 'w').write('x')");
  std::vector<pid_t> pids = s->ProcessIds();
  ASSERT_GE(pids.size(), 3u);  // init, runner, sleep
  std::string dir = s->dir();
  std::string mounts_before = ReadFile("/proc/self/mountinfo");
  EXPECT_NE(mounts_before.find(dir + "/data"), std::string::npos);
  ASSERT_OK(manager_->EndSession(s->id()));
  EXPECT_EQ(s->end_reason(), EndReason::kClosed);
  for (pid_t pid : pids) {
    EXPECT_FALSE(PathExists("/proc/" + std::to_string(pid) + "/status") &&
                 ReadFile("/proc/" + std::to_string(pid) + "/status").find("State:\tZ") ==
                     std::string::npos)
        << "process " << pid << " survived";
  }
  EXPECT_FALSE(PathExists(dir));
  EXPECT_EQ(ReadFile("/proc/self/mountinfo").find(dir), std::string::npos);
  EXPECT_FALSE(PathExists("/sys/fs/cgroup/memory/pycell/" + s->id()));
  EXPECT_FALSE(PathExists("/sys/fs/cgroup/pids/pycell/" + s->id()));
}

TEST_F(SessionTest, WarmPoolHandsOverAndRefills) {
  ASSERT_TRUE(manager_->WaitForWarmPool(seconds(30)));
  EXPECT_GE(manager_->ReadyCount(), 1u);
  auto s = NewSession();
  EXPECT_EQ(Run(*s, "print('warm')").stdout_text, "warm\n");
  EXPECT_TRUE(manager_->WaitForWarmPool(seconds(30)));
}

// The zygote's children: a killed zygote is replaced on the next launch, and running sessions
// are not affected (they are processes of their own).
std::vector<pid_t> ZygotePids() {
  std::vector<pid_t> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    std::string stat = ReadFile(entry.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || cmdline.rfind("pycell-zygote", 0) != 0) continue;
    pid_t ppid = std::atoi(stat.c_str() + close + 4);  // ") S <ppid>"
    if (ppid == ::getpid()) pids.push_back(std::stoi(name));
  }
  return pids;
}

TEST_F(SessionTest, AKilledZygoteIsReplaced) {
  auto running = NewSession();
  std::vector<pid_t> zygotes = ZygotePids();
  ASSERT_EQ(zygotes.size(), 1u);
  ASSERT_EQ(::kill(zygotes[0], SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  SessionOptions fresh;  // Own limits: not from the warm pool, so it needs the zygote.
  fresh.memory_bytes = 1ull << 30;
  auto s = NewSession(fresh);
  ASSERT_TRUE(s);
  EXPECT_EQ(Run(*s, "print('reborn')").stdout_text, "reborn\n");
  EXPECT_EQ(Run(*running, "print('unaffected')").stdout_text, "unaffected\n");
  EXPECT_EQ(ZygotePids().size(), 1u);
}

// A pycell killed with its sessions leaves folders and cgroups; the next one removes them, and
// leaves alone the sessions of pycells still running.
TEST_F(SessionTest, LeftoversOfADeadPycellAreSweptLiveSessionsAreNot) {
  auto live = NewSession();
  ASSERT_TRUE(live);
  const std::string leftover_id = NewId("sess_");
  const std::string leftover = "/run/pycell-test-shared/sessions/" + leftover_id;
  for (const char* sub : {"", "/root", "/data", "/tmp"}) {
    ASSERT_EQ(::mkdir((leftover + sub).c_str(), 0711), 0);
  }
  const std::string cgroup = "/sys/fs/cgroup/pids/pycell/" + leftover_id;
  bool has_cgroup = ::mkdir(cgroup.c_str(), 0755) == 0;

  EngineConfig config = TestConfig("shared");  // The same runtime dir as the live session's.
  config.pool.ready_sessions = 0;
  auto second = SessionManager::Create(config);
  ASSERT_OK(second);
  EXPECT_FALSE(PathExists(leftover));
  if (has_cgroup) {
    EXPECT_FALSE(PathExists(cgroup));
  }
  EXPECT_TRUE(PathExists(live->dir()));
  EXPECT_EQ(Run(*live, "print('alive')").stdout_text, "alive\n");
}

// Expiry runs on a fake clock: no sleeping past a 30-minute idle timeout.
TEST(SessionExpiryTest, IdleAndLifetimeEndSessions) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  FakeClock clock;
  EngineConfig config = TestConfig("expiry");
  config.pool.ready_sessions = 0;
  auto manager = SessionManager::Create(config, &clock);
  ASSERT_OK(manager);
  auto idle = (*manager)->CreateSession();
  auto busy = (*manager)->CreateSession();
  ASSERT_OK(idle);
  ASSERT_OK(busy);
  clock.Advance(std::chrono::minutes(20));
  ASSERT_OK((*busy)->Execute({"1", std::nullopt}));
  clock.Advance(std::chrono::minutes(11));  // idle: 31 min without a cell; busy: 11.
  (*manager)->ExpireSessions();
  EXPECT_EQ((*idle)->end_reason(), EndReason::kIdle);
  EXPECT_EQ((*busy)->end_reason(), EndReason::kNone);
  EXPECT_FALSE((*manager)->Get((*idle)->id()).ok());
  for (int i = 0; i < 3; ++i) {  // Active every 10 minutes, until the hour is up.
    clock.Advance(std::chrono::minutes(10));
    ASSERT_OK((*busy)->Execute({"1", std::nullopt}));
  }
  (*manager)->ExpireSessions();
  EXPECT_EQ((*busy)->end_reason(), EndReason::kLifetime);
}

// Regression: a server started under umask 077 (systemd's UMask=0077) built every session's root
// with folders uid 1000 could not enter, and each cell failed on /mnt/data.
TEST(SessionUmaskTest, ARestrictiveUmaskOfTheServerDoesNotReachTheSession) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  EngineConfig config = TestConfig("umask");
  config.pool.ready_sessions = 0;
  mode_t old = ::umask(077);  // What the zygote inherits.
  auto manager = SessionManager::Create(config);
  ::umask(old);
  ASSERT_OK(manager);
  auto session = (*manager)->CreateSession();
  ASSERT_OK(session);
  auto record =
      (*session)->Execute({"import os\nopen('/mnt/data/x.txt', 'w').write('1')\n"
                           "print(sorted(os.listdir('/mnt/data')), oct(os.umask(0o22)), "
                           "open('/etc/passwd').read()[:4])",
                           std::nullopt});
  ASSERT_OK(record);
  EXPECT_EQ(record->status, "ok") << record->stderr_text;
  EXPECT_EQ(record->stdout_text, "['x.txt'] 0o22 root\n") << record->stderr_text;
}

// A fork starts from the origin's variables and files, and from then on the two are apart: a
// change in one is invisible in the other, in memory, in /mnt/data, in /tmp and in /dev/shm.
TEST_F(SessionTest, ForkCopiesStateAndThenTheTwoAreIndependent) {
  auto origin = NewSession();
  ASSERT_TRUE(origin);
  ASSERT_EQ(Run(*origin,
                "import os\n"
                "x = [1, 2, 3]\n"
                "open('/mnt/data/a.txt', 'w').write('origin')\n"
                "os.makedirs('/mnt/data/sub', exist_ok=True)\n"
                "open('/mnt/data/sub/b.txt', 'w').write('nested')\n"
                "os.symlink('a.txt', '/mnt/data/link')\n"
                "with open('/mnt/data/sparse', 'wb') as f: f.truncate(100 << 20)\n"
                "open('/tmp/t.txt', 'w').write('tmp')\n"
                "open('/dev/shm/s', 'w').write('shm')\n"
                "os.chdir('/mnt/data/sub')")
                .status,
            "ok");
  auto fork = manager_->ForkSession(origin->id());
  ASSERT_OK(fork);
  std::shared_ptr<Session> b = *fork;
  EXPECT_NE(b->id(), origin->id());
  EXPECT_EQ(b->origin_id(), origin->id());

  ExecutionRecord r =
      Run(*b,
          "import os\n"
          "print(x, open('/mnt/data/a.txt').read(), open('b.txt').read(),\n"
          "      os.readlink('/mnt/data/link'), os.path.getsize('/mnt/data/sparse'),\n"
          "      os.stat('/mnt/data/sparse').st_blocks, open('/tmp/t.txt').read(),\n"
          "      os.path.exists('/dev/shm/s'), os.getcwd(), os.getuid())\n"
          "x.append(4)\n"
          "open('/mnt/data/a.txt', 'w').write('fork')\n"
          "open('/mnt/data/only-fork', 'w').write('1')\n"
          "open('/tmp/t.txt', 'w').write('fork tmp')");
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_EQ(r.stdout_text,
            "[1, 2, 3] origin nested a.txt 104857600 0 tmp False /mnt/data/sub 1000\n");
  r = Run(*origin,
          "print(x, open('/mnt/data/a.txt').read(), os.path.exists('/mnt/data/only-fork'),\n"
          "      open('/tmp/t.txt').read(), open('/dev/shm/s').read())");
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "[1, 2, 3] origin False tmp shm\n");
  // The host sees the fork's file in the fork's folder only.
  EXPECT_EQ(ReadFile(b->dir() + "/data/a.txt"), "fork");
  EXPECT_EQ(ReadFile(origin->dir() + "/data/a.txt"), "origin");

  // Ending the fork leaves the origin as it was.
  ASSERT_OK(manager_->EndSession(b->id()));
  EXPECT_EQ(Run(*origin, "print(sum(x))").stdout_text, "6\n");
}

TEST_F(SessionTest, ForkEndsWithItsOriginAndRefusesABusyOrigin) {
  auto origin = NewSession();
  ASSERT_TRUE(origin);
  ASSERT_EQ(Run(*origin, "import time\nv = 7").status, "ok");
  std::thread busy([&] { Run(*origin, "time.sleep(2)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto refused = manager_->ForkSession(origin->id());
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("running a cell"), std::string::npos)
      << refused.status().ToString();
  busy.join();

  auto fork = manager_->ForkSession(origin->id());
  ASSERT_OK(fork);
  std::shared_ptr<Session> b = *fork;
  EXPECT_EQ(Run(*b, "print(v)").stdout_text, "7\n");
  // A fork of a fork.
  auto grandchild = manager_->ForkSession(b->id());
  ASSERT_OK(grandchild);
  EXPECT_EQ(Run(**grandchild, "print(v * 6)").stdout_text, "42\n");
  ASSERT_OK(manager_->EndSession(origin->id()));
  EXPECT_EQ(b->end_reason(), EndReason::kOriginEnded);
  EXPECT_EQ((*grandchild)->end_reason(), EndReason::kOriginEnded);
  EXPECT_FALSE(manager_->Get(b->id()).ok());
  EXPECT_FALSE(manager_->ForkSession(origin->id()).ok());
}

// Issue 16: the control socket is hostile input. A frame the code forges ends its own session as a
// protocol violation, and only that session.
constexpr const char* kForge =
    "import os, struct\n"
    "def fr(s):\n"
    "    b = s.encode()\n"
    "    os.write(3, struct.pack('>I', len(b)) + b)\n";

TEST_F(SessionTest, AForgedFrameEndsOnlyThatSession) {
  auto bystander = NewSession();
  for (const char* frame : {R"({"type":1})", R"({"type":"done","status":null})",
                            R"({"type":"error","ename":1,"evalue":"x","traceback":[]})"}) {
    auto attacker = NewSession();
    ASSERT_TRUE(attacker && bystander);
    ExecutionRecord r =
        Run(*attacker, std::string(kForge) + "fr('" + frame + "')\nimport time\ntime.sleep(1)");
    EXPECT_EQ(r.status, "crashed") << frame;
    EXPECT_EQ(r.session_end_reason, "protocol_violation") << frame;
    EXPECT_FALSE(r.protocol_violation.empty()) << frame;
    EXPECT_TRUE(r.outputs.empty());
    EXPECT_EQ(attacker->end_reason(), EndReason::kProtocolViolation);
    EXPECT_EQ(attacker->protocol_violation(), r.protocol_violation);
    EXPECT_EQ(Run(*bystander, "6 * 7").status, "ok");
  }
}

TEST_F(SessionTest, AForgedCompletionCannotPutLiesInTheRecord) {
  auto s = NewSession();
  ASSERT_TRUE(s);
  ExecutionRecord r = Run(*s, std::string(kForge) +
                                  "fr('{\"type\":\"done\",\"id\":1,\"status\":\"ok\","
                                  "\"execution_count\":999999,\"duration_ms\":1e300}')\n"
                                  "import time\ntime.sleep(1)");
  EXPECT_EQ(r.session_end_reason, "protocol_violation");
  EXPECT_NE(r.execution_count, 999999);
  EXPECT_LT(r.runner_ms, 1e6);
}

TEST_F(SessionTest, AFrameBetweenCellsEndsTheSessionWithinSeconds) {
  auto s = NewSession();
  ASSERT_TRUE(s);
  ExecutionRecord r = Run(*s, std::string(kForge) +
                                  "import threading, time\n"
                                  "threading.Timer(0.3, fr, args=('{\"type\":\"display\","
                                  "\"data\":{}}',)).start()");
  ASSERT_EQ(r.status, "ok");
  for (int i = 0; i < 50 && s->end_reason() == EndReason::kNone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(s->end_reason(), EndReason::kProtocolViolation);
  EXPECT_NE(s->protocol_violation().find("between cells"), std::string::npos)
      << s->protocol_violation();
}

TEST_F(SessionTest, DescriptorsPassedOnTheControlSocketAreAViolationAndClosed) {
  auto s = NewSession();
  ASSERT_TRUE(s);
  ExecutionRecord r = Run(*s,
                          "import os, socket, time\n"
                          "sock = socket.socket(fileno=os.dup(3))\n"
                          "for _ in range(50):\n"
                          "    socket.send_fds(sock, [b'\\0\\0\\0\\2{}'], [0, 1, 2] * 5)\n"
                          "time.sleep(1)");
  EXPECT_EQ(r.session_end_reason, "protocol_violation");
  EXPECT_NE(r.protocol_violation.find("descriptors"), std::string::npos) << r.protocol_violation;
}

// Issue 16 row 12: an End() while the session forked freed the kernel under the fork, which then
// read a closed descriptor ("Bad file descriptor"). A fork is busy as a cell is.
TEST_F(SessionTest, EndingASessionWhileItForksIsClean) {
  for (int i = 0; i < 8; ++i) {
    auto origin = NewSession();
    ASSERT_TRUE(origin);
    ASSERT_EQ(Run(*origin, "x = 1").status, "ok");
    Result<std::shared_ptr<Session>> fork = Status::Internal("not run");
    std::thread forker([&] { fork = manager_->ForkSession(origin->id()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(i * 3));
    (void)manager_->EndSession(origin->id());
    forker.join();
    if (!fork.ok()) {
      EXPECT_EQ(fork.status().message().find("Bad file descriptor"), std::string::npos)
          << fork.status().ToString();
    } else {
      (void)manager_->EndSession((*fork)->id());
    }
  }
}

// The fork's cgroup holds its processes (limits apply to it alone), and its code cannot use the
// one clone it was made with to reach further: namespaces made that way still have no mounts.
TEST_F(SessionTest, ForkHasItsOwnCgroupAndItsCodeGainsNothing) {
  auto origin = NewSession();
  ASSERT_TRUE(origin);
  auto fork = manager_->ForkSession(origin->id());
  ASSERT_OK(fork);
  std::shared_ptr<Session> b = *fork;
  std::vector<pid_t> theirs = b->ProcessIds();
  std::vector<pid_t> ours = origin->ProcessIds();
  ASSERT_EQ(theirs.size(), 2u);  // The fork's init and its runner.
  for (pid_t pid : theirs) EXPECT_EQ(std::count(ours.begin(), ours.end(), pid), 0);
  ExecutionRecord r =
      Run(*b,
          "import ctypes, os\n"
          "libc = ctypes.CDLL(None, use_errno=True)\n"
          "print(libc.mount(b'none', b'/mnt', b'tmpfs', 0, None), ctypes.get_errno())\n"
          "print(libc.unshare(0x10000000), ctypes.get_errno())");
  ASSERT_EQ(r.status, "ok") << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "-1 1\n-1 1\n");
}

// What one execution may export: by logical size (sparse files at their full size) within the
// data quota, and at most kMaxExportedFiles files; the rest skipped with the reason.
TEST(PlanExportTest, BoundsFilesAndLogicalBytes) {
  constexpr uint64_t kMiB = 1 << 20;
  std::vector<files::FileChange> changed = {
      {"a", 400 * kMiB, true}, {"b", 400 * kMiB, true}, {"c", 400 * kMiB, true}, {"d", 1, true}};
  ExportPlan plan = PlanExport(changed, 1024 * kMiB);
  ASSERT_EQ(plan.files.size(), 3u);
  EXPECT_EQ(plan.files[2].path, "d");
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_EQ(plan.skipped[0].path, "c");
  EXPECT_NE(plan.skipped[0].reason.find("quota"), std::string::npos);

  std::vector<files::FileChange> many;
  for (size_t i = 0; i < kMaxExportedFiles + 5; ++i) many.push_back({std::to_string(i), 1, true});
  plan = PlanExport(many, 1024 * kMiB);
  EXPECT_EQ(plan.files.size(), kMaxExportedFiles);
  EXPECT_EQ(plan.skipped.size(), 5u);
  EXPECT_TRUE(PlanExport({{"big", 2048 * kMiB, true}}, 1024 * kMiB).files.empty());
}

}  // namespace
}  // namespace pycell::session
