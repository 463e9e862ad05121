#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/unique_fd.h"
#include "test_util.h"

namespace pycell::sandbox {
namespace {

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

using pycell::testing::TempDir;

// One mountinfo line for a cgroup (v1) hierarchy with the given controllers at `mount_point`.
std::string V1Line(int id, const std::string& mount_point, const std::string& controllers) {
  return std::to_string(id) + " 25 0:" + std::to_string(id) + " / " + mount_point +
         " rw,nosuid,nodev,noexec,relatime shared:" + std::to_string(id) + " - cgroup cgroup rw," +
         controllers + "\n";
}
std::string V2Line(const std::string& mount_point) {
  return "35 24 0:30 / " + mount_point +
         " rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
}
const char kUnrelatedLines[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "25 22 0:21 / /sys/fs/cgroup ro,nosuid shared:8 - tmpfs tmpfs ro,mode=755\n"
    "not a mountinfo line at all\n"
    "40 25 0:40 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";

Result<CgroupLayout> DetectFrom(const TempDir& tmp, const std::string& mountinfo) {
  WriteFile(tmp.path() + "/mountinfo", mountinfo);
  return CgroupLayout::Detect(tmp.path() + "/mountinfo");
}

TEST(CgroupLayoutTest, DetectsPureV1WithCpuAndCpuacctTogether) {
  TempDir tmp;
  Result<CgroupLayout> layout =
      DetectFrom(tmp, std::string(kUnrelatedLines) + V1Line(30, "/sys/fs/cgroup/memory", "memory") +
                          V1Line(31, "/sys/fs/cgroup/pids", "pids") +
                          V1Line(32, "/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"));
  ASSERT_OK(layout);
  EXPECT_TRUE(layout->Complete());
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) {
    EXPECT_EQ(layout->VersionOf(c), CgroupVersion::kV1) << c;
  }
  EXPECT_EQ(layout->RootOf("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout->RootOf("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout->RootOf("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout->Describe(), (std::vector<std::string>{
                                    "memory: cgroup v1 at /sys/fs/cgroup/memory",
                                    "pids: cgroup v1 at /sys/fs/cgroup/pids",
                                    "cpu: cgroup v1 at /sys/fs/cgroup/cpu,cpuacct",
                                }));
}

TEST(CgroupLayoutTest, DetectsPureV2FromItsControllersFile) {
  TempDir tmp;
  std::string root = tmp.Make("unified");
  WriteFile(root + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  Result<CgroupLayout> layout = DetectFrom(tmp, kUnrelatedLines + V2Line(root));
  ASSERT_OK(layout);
  EXPECT_TRUE(layout->Complete());
  for (const char* c : {"memory", "pids", "cpu", "io"}) {
    EXPECT_EQ(layout->VersionOf(c), CgroupVersion::kV2) << c;
    EXPECT_EQ(layout->RootOf(c), root) << c;
  }
  EXPECT_EQ(layout->VersionOf("cpuacct"), CgroupVersion::kNone);
  EXPECT_EQ(layout->Describe()[0], "memory: cgroup v2 at " + root);
}

TEST(CgroupLayoutTest, DetectsHybridWithAnEmptyV2) {
  TempDir tmp;
  std::string unified = tmp.Make("unified");
  WriteFile(unified + "/cgroup.controllers", "\n");
  Result<CgroupLayout> layout =
      DetectFrom(tmp, V1Line(30, "/sys/fs/cgroup/memory", "memory") +
                          V1Line(31, "/sys/fs/cgroup/pids", "pids") +
                          V1Line(32, "/sys/fs/cgroup/cpu", "cpu") + V2Line(unified));
  ASSERT_OK(layout);
  EXPECT_TRUE(layout->Complete());
  for (const char* c : {"memory", "pids", "cpu"}) {
    EXPECT_EQ(layout->VersionOf(c), CgroupVersion::kV1) << c;
  }
  EXPECT_EQ(layout->RootOf("pids"), "/sys/fs/cgroup/pids");
}

TEST(CgroupLayoutTest, ControllerListedInV2IsUsedThere) {
  TempDir tmp;
  std::string unified = tmp.Make("unified");
  WriteFile(unified + "/cgroup.controllers", "pids\n");
  Result<CgroupLayout> layout =
      DetectFrom(tmp, V1Line(30, "/sys/fs/cgroup/memory", "memory") +
                          V1Line(32, "/sys/fs/cgroup/cpu", "cpu") + V2Line(unified));
  ASSERT_OK(layout);
  EXPECT_TRUE(layout->Complete());
  EXPECT_EQ(layout->VersionOf("pids"), CgroupVersion::kV2);
  EXPECT_EQ(layout->VersionOf("memory"), CgroupVersion::kV1);
}

TEST(CgroupLayoutTest, MissingControllerMakesItIncomplete) {
  TempDir tmp;
  Result<CgroupLayout> layout = DetectFrom(
      tmp, V1Line(30, "/sys/fs/cgroup/memory", "memory") + V1Line(32, "/sys/fs/cgroup/cpu", "cpu"));
  ASSERT_OK(layout);
  EXPECT_FALSE(layout->Complete());
  EXPECT_EQ(layout->VersionOf("pids"), CgroupVersion::kNone);
  EXPECT_EQ(layout->RootOf("pids"), "");
  EXPECT_EQ(layout->Describe()[1], "pids: not available");

  Result<std::unique_ptr<Cgroup>> group = Cgroup::Create(*layout, "pycell", "x", {});
  EXPECT_TRUE(group.status().IsFailedPrecondition()) << group.status().ToString();
}

TEST(CgroupLayoutTest, V2WithoutCpuInItsControllersIsIncomplete) {
  TempDir tmp;
  std::string root = tmp.Make("unified");
  WriteFile(root + "/cgroup.controllers", "memory pids\n");
  Result<CgroupLayout> layout = DetectFrom(tmp, V2Line(root));
  ASSERT_OK(layout);
  EXPECT_FALSE(layout->Complete());
  EXPECT_EQ(layout->Describe()[2], "cpu: not available");
}

TEST(CgroupLayoutTest, EmptyOrMissingMountinfo) {
  TempDir tmp;
  Result<CgroupLayout> empty = DetectFrom(tmp, "");
  ASSERT_OK(empty);
  EXPECT_FALSE(empty->Complete());
  EXPECT_FALSE(CgroupLayout::Detect(tmp.path() + "/no-such-file").ok());
}

TEST(CgroupTest, V1CreateWritesLimitFiles) {
  TempDir tmp;
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) tmp.Make(c);
  CgroupLayout layout = CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path());
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(layout, "pycell", "sess_1", {256ull << 20, 64, 1.5});
  ASSERT_OK(group);
  const std::string& t = tmp.path();
  EXPECT_EQ((*group)->Paths(),
            (std::vector<std::string>{t + "/memory/pycell/sess_1", t + "/pids/pycell/sess_1",
                                      t + "/cpu/pycell/sess_1", t + "/cpuacct/pycell/sess_1"}));
  EXPECT_EQ(ReadFile(t + "/memory/pycell/sess_1/memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(ReadFile(t + "/memory/pycell/sess_1/memory.swappiness"), "0");
  EXPECT_EQ(ReadFile(t + "/pids/pycell/sess_1/pids.max"), "64");
  EXPECT_EQ(ReadFile(t + "/cpu/pycell/sess_1/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(ReadFile(t + "/cpu/pycell/sess_1/cpu.cfs_quota_us"), "150000");
  EXPECT_FALSE(Exists(t + "/memory/pycell/sess_1/memory.memsw.limit_in_bytes"));
  (void)(*group)->Destroy();  // Fails on plain folders (files left); TempDir cleans up.
}

TEST(CgroupTest, ZeroLimitsWriteNothing) {
  TempDir tmp;
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) tmp.Make(c);
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path()), "p", "s", {});
  ASSERT_OK(group);
  for (const std::string& dir : (*group)->Paths()) {
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << dir;
  }
}

TEST(CgroupTest, V2CreateEnablesControllersAndWritesLimitFiles) {
  TempDir tmp;
  std::string parent = tmp.Make("pycell");
  // A FIFO with a reader already open records each write separately, as cgroupfs takes them.
  ASSERT_EQ(::mkfifo((parent + "/cgroup.subtree_control").c_str(), 0644), 0);
  UniqueFd subtree_control(
      ::open((parent + "/cgroup.subtree_control").c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(subtree_control.valid());

  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp.path()), "pycell", "sess_2",
                     {512ull << 20, 100, 1.5});
  ASSERT_OK(group);
  char written[256] = {};
  ASSERT_GT(::read(subtree_control.get(), written, sizeof written - 1), 0);
  EXPECT_STREQ(written, "+memory+pids+cpu");

  std::string dir = parent + "/sess_2";
  EXPECT_EQ((*group)->Paths(), std::vector<std::string>{dir});
  EXPECT_EQ(ReadFile(dir + "/memory.max"), "536870912");
  EXPECT_EQ(ReadFile(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(ReadFile(dir + "/pids.max"), "100");
  EXPECT_EQ(ReadFile(dir + "/cpu.max"), "150000 100000");
  (void)(*group)->Destroy();  // Fails on plain folders (files left); TempDir cleans up.
}

TEST(CgroupTest, CreateRefusesAnExistingGroup) {
  TempDir tmp;
  tmp.Make("pycell/taken");
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp.path()), "pycell", "taken", {});
  EXPECT_FALSE(group.ok());
}

TEST(CgroupTest, CpuWeightIsSharesOnV1AndWeightOnV2) {
  TempDir tmp;
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) tmp.Make(c);
  auto v1 = Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path()), "p", "a", {});
  ASSERT_OK(v1);
  ASSERT_OK((*v1)->SetCpuWeight(1000));
  EXPECT_EQ(ReadFile(tmp.path() + "/cpu/p/a/cpu.shares"), "10240");
  auto low = Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path()), "p", "c", {});
  ASSERT_OK(low);
  ASSERT_OK((*low)->SetCpuWeight(0));  // Clamped to weight 1: 10 shares.
  EXPECT_EQ(ReadFile(tmp.path() + "/cpu/p/c/cpu.shares"), "10");
  (void)(*v1)->Destroy();
  (void)(*low)->Destroy();
  TempDir tmp2;
  auto v2 = Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp2.path()), "p", "b", {});
  ASSERT_OK(v2);
  ASSERT_OK((*v2)->SetCpuWeight(100));
  EXPECT_EQ(ReadFile(tmp2.path() + "/p/b/cpu.weight"), "100");
  (void)(*v2)->Destroy();
}

TEST(CgroupTest, ParentCpuWeightWeighsAllSessionsTogether) {
  TempDir tmp;
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) tmp.Make(c);
  CgroupLayout v1 = CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path());
  ASSERT_OK(Cgroup::SetParentCpuWeight(v1, "p", 50));  // Made when missing.
  EXPECT_EQ(ReadFile(tmp.path() + "/cpu/p/cpu.shares"), "512");
  auto child = Cgroup::Create(v1, "p", "a", {});  // The parent already there is fine.
  ASSERT_OK(child);
  ASSERT_OK(Cgroup::SetParentCpuWeight(v1, "p", 20000));  // Clamped to 10000.
  EXPECT_EQ(ReadFile(tmp.path() + "/cpu/p/cpu.shares"), "102400");
  (void)(*child)->Destroy();
  TempDir tmp2;
  CgroupLayout v2 = CgroupLayout::ForTest(CgroupVersion::kV2, tmp2.path());
  ASSERT_OK(Cgroup::SetParentCpuWeight(v2, "p", 100));
  EXPECT_EQ(ReadFile(tmp2.path() + "/p/cpu.weight"), "100");
  EXPECT_FALSE(Cgroup::SetParentCpuWeight(v2, "missing/deeper", 100).ok());
}

TEST(CgroupTest, V1ReadUsageParsesUsageFiles) {
  TempDir tmp;
  for (const char* c : {"memory", "pids", "cpu", "cpuacct"}) tmp.Make(c);
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV1, tmp.path()), "p", "s", {});
  ASSERT_OK(group);
  const std::string& t = tmp.path();
  WriteFile(t + "/memory/p/s/memory.max_usage_in_bytes", "123456789\n");
  WriteFile(t + "/memory/p/s/memory.usage_in_bytes", "4096\n");
  WriteFile(t + "/memory/p/s/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  WriteFile(t + "/pids/p/s/pids.current", "5\n");
  WriteFile(t + "/cpuacct/p/s/cpuacct.usage", "987654321\n");
  CgroupUsage usage = (*group)->ReadUsage();
  EXPECT_EQ(usage.memory_peak_bytes, 123456789u);
  EXPECT_EQ(usage.memory_current_bytes, 4096u);
  EXPECT_EQ(usage.oom_kills, 3u);
  EXPECT_EQ(usage.pids_current, 5u);
  EXPECT_EQ(usage.cpu_ns, 987654321u);
  (void)(*group)->Destroy();  // Fails on plain folders (files left); TempDir cleans up.
}

// Regression test: this failed before the fix that came with it.
TEST(CgroupTest, V1ReadUsageReportsCpuWhenCpuAndCpuacctShareAFolder) {
  TempDir tmp;
  Result<CgroupLayout> layout = DetectFrom(
      tmp, V1Line(30, tmp.Make("memory"), "memory") + V1Line(31, tmp.Make("pids"), "pids") +
               V1Line(32, tmp.Make("cpu,cpuacct"), "cpu,cpuacct"));
  ASSERT_OK(layout);
  Result<std::unique_ptr<Cgroup>> group = Cgroup::Create(*layout, "p", "s", {});
  ASSERT_OK(group);
  WriteFile(tmp.path() + "/cpu,cpuacct/p/s/cpuacct.usage", "987654321\n");
  EXPECT_EQ((*group)->ReadUsage().cpu_ns, 987654321u);
}

TEST(CgroupTest, V2ReadUsageParsesUsageFiles) {
  TempDir tmp;
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp.path()), "p", "s", {});
  ASSERT_OK(group);
  std::string dir = tmp.path() + "/p/s";
  WriteFile(dir + "/memory.peak", "2097152\n");
  WriteFile(dir + "/memory.current", "1048576\n");
  WriteFile(dir + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
  WriteFile(dir + "/pids.current", "3\n");
  WriteFile(dir + "/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  CgroupUsage usage = (*group)->ReadUsage();
  EXPECT_EQ(usage.memory_peak_bytes, 2097152u);
  EXPECT_EQ(usage.memory_current_bytes, 1048576u);
  EXPECT_EQ(usage.oom_kills, 2u);
  EXPECT_EQ(usage.pids_current, 3u);
  EXPECT_EQ(usage.cpu_ns, 1500000u);
  (void)(*group)->Destroy();  // Fails on plain folders (files left); TempDir cleans up.
}

// Issue 16 row 6: a read that failed (the server out of descriptors) made a bystander's CPU time
// 0, and the difference with the earlier reading wrapped to 18 446 744 073 648 ms. What cannot be
// read is unknown, never a number.
TEST(CgroupTest, ReadUsageWithoutUsageFilesIsUnknownNotZero) {
  TempDir tmp;
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp.path()), "p", "s", {});
  ASSERT_OK(group);
  CgroupUsage usage = (*group)->ReadUsage();
  EXPECT_FALSE(usage.cpu_ns.has_value());
  EXPECT_FALSE(usage.memory_peak_bytes.has_value());
  EXPECT_EQ(usage.oom_kills + usage.pids_current, 0u);
  (void)(*group)->Destroy();  // Fails on plain folders (files left); TempDir cleans up.
}

TEST(CgroupTest, ReadUsageRefusesGarbageAndOverflow) {
  TempDir tmp;
  Result<std::unique_ptr<Cgroup>> group =
      Cgroup::Create(CgroupLayout::ForTest(CgroupVersion::kV2, tmp.path()), "p", "s", {});
  ASSERT_OK(group);
  std::string dir = tmp.path() + "/p/s";
  for (const char* text : {"", "12x\n", "-5\n", "99999999999999999999999\n"}) {
    WriteFile(dir + "/memory.peak", text);
    WriteFile(dir + "/cpu.stat", std::string("usage_usec ") + text);
    CgroupUsage usage = (*group)->ReadUsage();
    EXPECT_FALSE(usage.memory_peak_bytes.has_value()) << text;
    EXPECT_FALSE(usage.cpu_ns.has_value()) << text;
  }
  // usage_usec that would overflow once turned into nanoseconds.
  WriteFile(dir + "/cpu.stat", "usage_usec 18446744073709552\n");
  EXPECT_FALSE((*group)->ReadUsage().cpu_ns.has_value());
  (void)(*group)->Destroy();
}

// A child that, once told to go, forks a grandchild; both then sleep until killed.
pid_t ForkSleepingFamily(int go_read, int grandchild_pid_write) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  char go;
  if (::read(go_read, &go, 1) != 1) ::_exit(1);
  pid_t grandchild = ::fork();
  if (grandchild == 0) {
    while (true) ::pause();
  }
  if (::write(grandchild_pid_write, &grandchild, sizeof grandchild) != sizeof grandchild)
    ::_exit(1);
  while (true) ::pause();
}

TEST(CgroupTest, RealHierarchyLimitsKillsAndRemoves) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  Result<CgroupLayout> layout = CgroupLayout::Detect();
  if (!layout.ok() || !layout->Complete()) GTEST_SKIP() << "this host lacks a cgroup controller";
  if (layout->VersionOf("memory") != CgroupVersion::kV1) GTEST_SKIP() << "written for v1 hosts";

  Result<std::unique_ptr<Cgroup>> created =
      Cgroup::Create(*layout, "pycell-test", NewId("test_"), {256ull << 20, 32, 0.5});
  ASSERT_OK(created);
  Cgroup& group = **created;
  auto part = [&](const std::string& controller) {
    std::string root = layout->RootOf(controller);
    for (const std::string& p : group.Paths()) {
      if (p.starts_with(root + "/")) return p;
    }
    return std::string();
  };
  EXPECT_EQ(ReadFile(part("memory") + "/memory.limit_in_bytes"), "268435456\n");
  EXPECT_EQ(ReadFile(part("pids") + "/pids.max"), "32\n");
  EXPECT_EQ(ReadFile(part("cpu") + "/cpu.cfs_quota_us"), "50000\n");

  int go[2], report[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  pid_t child = ForkSleepingFamily(go[0], report[1]);
  ASSERT_GT(child, 0);
  ASSERT_OK(group.AddProcess(child));
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  pid_t grandchild = 0;
  ASSERT_EQ(::read(report[0], &grandchild, sizeof grandchild),
            static_cast<ssize_t>(sizeof grandchild));
  for (int fd : {go[0], go[1], report[0], report[1]}) ::close(fd);

  std::vector<pid_t> members = group.Processes();
  std::sort(members.begin(), members.end());
  EXPECT_EQ(members, (std::vector<pid_t>{child, grandchild}));
  EXPECT_EQ(group.ReadUsage().pids_current, 2u);

  ASSERT_OK(group.KillAll());
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL);
  EXPECT_TRUE(group.Processes().empty());

  std::vector<std::string> paths = group.Paths();
  ASSERT_OK(group.Destroy());
  for (const std::string& p : paths) {
    EXPECT_FALSE(Exists(p)) << p;
    ::rmdir(std::filesystem::path(p).parent_path().c_str());  // "pycell-test", if now empty.
  }
}

}  // namespace
}  // namespace pycell::sandbox
