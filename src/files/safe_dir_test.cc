// SafeDir is the server's door into a folder hostile code can write, so most of these tests try to
// break it: links, magic links, FIFOs, mounts, swaps raced against the checks.
#include "files/safe_dir.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell::files {
namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Paths(const DirSnapshot& snapshot) {
  std::vector<std::string> paths;
  for (const auto& [path, state] : snapshot) paths.push_back(path);
  return paths;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Runs `fn` on a thread where openat2 fails with ENOSYS (a seccomp filter on that thread only),
// as on kernels older than 5.6, so SafeDir takes its component-by-component fallback.
void RunWithoutOpenat2(const std::function<void()>& fn) {
  std::thread thread([&] {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {static_cast<unsigned short>(std::size(filter)), filter};
    ASSERT_EQ(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ASSERT_EQ(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program), 0);
    ASSERT_EQ(::syscall(SYS_openat2, AT_FDCWD, "/", nullptr, 0), -1);
    ASSERT_EQ(errno, ENOSYS);
    fn();
  });
  thread.join();
}

// The folder the code under attack writes (root_) next to one it must never reach (outside_).
class SafeDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/safe_dir_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_ + "/root";
    outside_ = base_ + "/outside";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    WriteFile(outside_ + "/secret", "SECRET");
    Result<SafeDir> dir = SafeDir::Open(root_);
    ASSERT_OK(dir);
    dir_.emplace(std::move(dir).value());
  }

  void TearDown() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    std::filesystem::remove_all(base_);  // Removes links, never what they point at.
  }

  std::string In(const std::string& relative) const { return root_ + "/" + relative; }

  // A tree with something hostile of every kind next to three regular files.
  void PlantHostileTree() {
    ASSERT_EQ(::mkdir(In("sub").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(In("sub/deeper").c_str(), 0755), 0);
    WriteFile(In("a.txt"), "alpha");
    WriteFile(In("sub/b.txt"), "bravo");
    WriteFile(In("sub/deeper/c.bin"), std::string("char\0lie", 8));
    ASSERT_EQ(::symlink((outside_ + "/secret").c_str(), In("file_link").c_str()), 0);
    ASSERT_EQ(::symlink("a.txt", In("inner_link").c_str()), 0);
    ASSERT_EQ(::symlink(outside_.c_str(), In("dir_link").c_str()), 0);
    ASSERT_EQ(::symlink("/", In("root_link").c_str()), 0);
    ASSERT_EQ(::symlink("/proc/self/root", In("proc_link").c_str()), 0);
    ASSERT_EQ(::symlink("../outside/secret", In("sub/up_link").c_str()), 0);
    ASSERT_EQ(::mkfifo(In("fifo").c_str(), 0644), 0);
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(In("socket").size(), sizeof addr.sun_path);
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", In("socket").c_str());
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }

  // Mounts a tmpfs at `path` (root only); false when that is not possible here.
  bool MountTmpfs(const std::string& path, const char* options = nullptr) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return false;
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, options) != 0) return false;
    mounts_.push_back(path);
    return true;
  }

  // Runs `fn`, which must not block on the FIFO; if it is still running after 3 s, opens the
  // FIFO's other end so that the test fails instead of hanging.
  void WithoutHangingOnFifo(const std::function<void()>& fn) {
    std::atomic<bool> done = false, rescued = false;
    std::thread watchdog([&] {
      for (int i = 0; i < 300 && !done; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      while (!done) {
        rescued = true;
        UniqueFd unblock(::open(In("fifo").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    fn();
    done = true;
    watchdog.join();
    EXPECT_FALSE(rescued) << "blocked on the FIFO";
  }

  void ExpectEveryHostilePathRefused() {
    // clang-format off
    const std::string refused[] = {
        "file_link", "inner_link", "sub/up_link",                          // Links to files.
        "dir_link/secret", "root_link/etc/passwd", "proc_link/etc/passwd",  // Links mid-path.
        "proc_link",                                                       // A magic link.
        "..", "../outside/secret", "sub/../../outside/secret", "/etc/passwd", "",
        "sub", "sub/deeper", "fifo", "socket", "a.txt/", "missing"};
    // clang-format on
    WithoutHangingOnFifo([&] {
      for (const std::string& path : refused) {
        Result<UniqueFd> fd = dir_->OpenFileForRead(path);
        EXPECT_FALSE(fd.ok()) << "'" << path << "' opened: " << ReadAll(fd->get());
        StatusCode code = fd.status().code();
        if (path == "socket") continue;  // Refused, but as INTERNAL (ENXIO); see below.
        EXPECT_TRUE(code == StatusCode::kPermissionDenied || code == StatusCode::kInvalidArgument ||
                    code == StatusCode::kNotFound)
            << "'" << path << "': " << fd.status().ToString();
      }
    });
  }

  // Keeps renaming a link to the secret and a regular file over "f" in turn while opening "f":
  // every open that succeeds must read the regular file.
  void RaceLinkSwapsAgainstOpen() {
    WriteFile(In("original"), "REGULAR");
    ASSERT_EQ(::link(In("original").c_str(), In("f").c_str()), 0);
    std::atomic<bool> stop = false;
    std::thread swapper([&] {
      for (int i = 0; i < 3000; ++i) {
        ::symlink((outside_ + "/secret").c_str(), In("next_link").c_str());
        ::rename(In("next_link").c_str(), In("f").c_str());
        ::link(In("original").c_str(), In("next_file").c_str());
        ::rename(In("next_file").c_str(), In("f").c_str());
      }
      stop = true;
    });
    int opened = 0, refused = 0;
    while (!stop) {
      Result<UniqueFd> fd = dir_->OpenFileForRead("f");
      if (!fd.ok()) {
        ++refused;
        continue;
      }
      ++opened;
      if (std::string content = ReadAll(fd->get()); content != "REGULAR") {
        ADD_FAILURE() << "opened through the link, read '" << content << "'";
        break;
      }
    }
    swapper.join();
    EXPECT_GT(opened, 0) << "never caught the regular file: the race proved nothing";
    RecordProperty("opened", opened);
    RecordProperty("refused", refused);
  }

  std::string base_, root_, outside_;
  std::optional<SafeDir> dir_;
  std::vector<std::string> mounts_;
};

TEST_F(SafeDirTest, SnapshotListsOnlyRegularFiles) {
  PlantHostileTree();
  Result<DirSnapshot> snapshot = dir_->Snapshot();
  ASSERT_OK(snapshot);
  EXPECT_EQ(Paths(*snapshot), (std::vector<std::string>{"a.txt", "sub/b.txt", "sub/deeper/c.bin"}));
  EXPECT_EQ(snapshot->at("a.txt").bytes, 5u);
  EXPECT_EQ(snapshot->at("sub/deeper/c.bin").bytes, 8u);
  struct stat st;
  ASSERT_EQ(::stat(In("sub/b.txt").c_str(), &st), 0);
  EXPECT_EQ(snapshot->at("sub/b.txt").inode, st.st_ino);
}

TEST_F(SafeDirTest, SnapshotNeverFollowsAFolderSwappedForALink) {
  ASSERT_EQ(::mkdir(In("swap").c_str(), 0755), 0);
  WriteFile(In("swap/inside.txt"), "inside");
  ASSERT_EQ(::symlink(outside_.c_str(), In("swap_link").c_str()), 0);
  std::atomic<bool> stop = false;
  std::thread swapper([&] {
    while (!stop) {
      ::renameat2(AT_FDCWD, In("swap").c_str(), AT_FDCWD, In("swap_link").c_str(), RENAME_EXCHANGE);
    }
  });
  for (int i = 0; i < 2000; ++i) {
    Result<DirSnapshot> snapshot = dir_->Snapshot();
    ASSERT_OK(snapshot);
    for (const auto& [path, state] : *snapshot) {
      ASSERT_EQ(path.find("secret"), std::string::npos) << "walked outside through " << path;
    }
  }
  stop = true;
  swapper.join();
}

TEST_F(SafeDirTest, SnapshotHonoursDepthLimit) {
  std::filesystem::create_directories(In("d1/d2/d3"));
  for (const char* file : {"f", "d1/f", "d1/d2/f", "d1/d2/d3/f"}) WriteFile(In(file), "x");
  Result<DirSnapshot> snapshot = dir_->Snapshot({.max_depth = 2});
  ASSERT_OK(snapshot);
  EXPECT_EQ(Paths(*snapshot), (std::vector<std::string>{"d1/d2/f", "d1/f", "f"}));
}

TEST_F(SafeDirTest, SnapshotOfAVeryDeepTreeStopsAtDefaultDepth) {
  std::string path = root_;
  for (int depth = 0; depth < 200; ++depth) {
    path += "/d";
    ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
    WriteFile(path + "/f", "x");
  }
  Result<DirSnapshot> snapshot = dir_->Snapshot();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->size(), static_cast<size_t>(WalkLimits().max_depth));
}

TEST_F(SafeDirTest, SnapshotStopsAtEntryLimit) {
  for (int i = 0; i < 3000; ++i) WriteFile(In("f" + std::to_string(i)), "");
  auto start = std::chrono::steady_clock::now();
  Result<DirSnapshot> snapshot = dir_->Snapshot({.max_entries = 100});
  ASSERT_OK(snapshot);  // A bounded, partial listing rather than an error.
  EXPECT_LE(snapshot->size(), 100u);
  EXPECT_GT(snapshot->size(), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SafeDirTest, SnapshotDoesNotEnterAnotherFileSystem) {
  if (!MountTmpfs(In("mnt"))) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  WriteFile(In("mnt/on_tmpfs"), "x");
  WriteFile(In("here"), "x");
  Result<DirSnapshot> snapshot = dir_->Snapshot();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->count("here"), 1u);
  EXPECT_EQ(snapshot->count("mnt/on_tmpfs"), 0u);
}

// Regression test: this failed before the fix that came with it.
TEST_F(SafeDirTest, SnapshotDoesNotEnterABindMount) {
  ASSERT_EQ(::mkdir(In("bound").c_str(), 0755), 0);
  if (::mount(outside_.c_str(), In("bound").c_str(), nullptr, MS_BIND, nullptr) != 0) {
    GTEST_SKIP() << "cannot bind mount here (needs root)";
  }
  mounts_.push_back(In("bound"));
  Result<DirSnapshot> snapshot = dir_->Snapshot();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->count("bound/secret"), 0u);
}

TEST_F(SafeDirTest, OpenFileForReadReadsRegularFiles) {
  PlantHostileTree();
  Result<UniqueFd> fd = dir_->OpenFileForRead("sub/b.txt");
  ASSERT_OK(fd);
  EXPECT_EQ(::fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0) << "left non-blocking";
  EXPECT_EQ(ReadAll(fd->get()), "bravo");
}

TEST_F(SafeDirTest, OpenFileForReadRefusesLinksDotDotAbsolutePathsAndNonFiles) {
  PlantHostileTree();
  ExpectEveryHostilePathRefused();
}

// Regression test: this failed before the fix that came with it.
TEST_F(SafeDirTest, OpenFileForReadRefusesSocketsAsPermissionDenied) {
  PlantHostileTree();
  Result<UniqueFd> fd = dir_->OpenFileForRead("socket");
  EXPECT_EQ(fd.status().code(), StatusCode::kPermissionDenied) << fd.status().ToString();
}

TEST_F(SafeDirTest, OpenFileForReadRefusesDeviceNodes) {
  if (::mknod(In("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "cannot make a device node here (needs root)";
  }
  EXPECT_EQ(dir_->OpenFileForRead("null").status().code(), StatusCode::kPermissionDenied);
}

TEST_F(SafeDirTest, OpenFileForReadRefusesFilesOnOtherMounts) {
  if (!MountTmpfs(In("mnt"))) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  WriteFile(In("mnt/f"), "x");
  ASSERT_EQ(::mkdir(In("bound").c_str(), 0755), 0);
  ASSERT_EQ(::mount(outside_.c_str(), In("bound").c_str(), nullptr, MS_BIND, nullptr), 0);
  mounts_.push_back(In("bound"));
  EXPECT_EQ(dir_->OpenFileForRead("mnt/f").status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(dir_->OpenFileForRead("bound/secret").status().code(), StatusCode::kPermissionDenied);
}

TEST_F(SafeDirTest, OpenNeverYieldsALinkSwappedInForAFile) { RaceLinkSwapsAgainstOpen(); }

TEST_F(SafeDirTest, CreateFileFromCopiesContentAndSetsOwner) {
  WriteFile(outside_ + "/upload", "col1,col2\n1,2\n");
  UniqueFd source(::open((outside_ + "/upload").c_str(), O_RDONLY | O_CLOEXEC));
  // Only root may give a file away; anyone else can test with its own ids.
  const uid_t owner = ::geteuid() == 0 ? 12345 : ::geteuid();
  const gid_t group = ::geteuid() == 0 ? 12345 : ::getegid();
  ASSERT_OK(dir_->CreateFileFrom("data.csv", source.get(), owner, group));
  EXPECT_EQ(ReadFile(In("data.csv")), "col1,col2\n1,2\n");
  struct stat st;
  ASSERT_EQ(::lstat(In("data.csv").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_uid, owner);
  EXPECT_EQ(st.st_gid, group);
}

TEST_F(SafeDirTest, CreateFileFromCopiesLargeFilesAndPipesExactly) {
  // Larger than one kernel copy step and than the read/write buffer, with no repeating period.
  std::string big(3 * (1 << 20) + 12345, '\0');
  uint32_t x = 2463534242u;
  for (char& c : big) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = static_cast<char>(x);
  }
  WriteFile(outside_ + "/big", big);
  UniqueFd file(::open((outside_ + "/big").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_OK(dir_->CreateFileFrom("big.bin", file.get(), ::geteuid(), ::getegid()));
  EXPECT_TRUE(ReadFile(In("big.bin")) == big);
  // A pipe cannot be cloned: the fallbacks copy it.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd read_end(pipe_fds[0]);
  {
    UniqueFd write_end(pipe_fds[1]);
    ASSERT_EQ(::write(write_end.get(), "piped,data\n", 11), 11);
  }
  ASSERT_OK(dir_->CreateFileFrom("piped.csv", read_end.get(), ::geteuid(), ::getegid()));
  EXPECT_EQ(ReadFile(In("piped.csv")), "piped,data\n");
}

TEST_F(SafeDirTest, ReplaceFileFromReplacesAFileOrALinkInOneStep) {
  WriteFile(outside_ + "/v2", "version 2\n");
  WriteFile(outside_ + "/target", "outside, untouched\n");
  WriteFile(In("data.csv"), "version 1\n");
  ASSERT_EQ(::symlink((outside_ + "/target").c_str(), In("link.csv").c_str()), 0);
  ASSERT_OK(::mkdir(In("folder").c_str(), 0755) == 0 ? Status::Ok() : Status::FromErrno("mkdir"));
  for (const char* name : {"data.csv", "link.csv", "new.csv"}) {
    UniqueFd source(::open((outside_ + "/v2").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_OK(dir_->ReplaceFileFrom(name, source.get(), ::geteuid(), ::getegid()));
    EXPECT_EQ(ReadFile(In(name)), "version 2\n") << name;
    struct stat st;
    ASSERT_EQ(::lstat(In(name).c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << name;  // The link itself was replaced.
  }
  EXPECT_EQ(ReadFile(outside_ + "/target"), "outside, untouched\n");
  UniqueFd source(::open((outside_ + "/v2").c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(dir_->ReplaceFileFrom("folder", source.get(), ::geteuid(), ::getegid())
                  .IsFailedPrecondition());
  EXPECT_TRUE(dir_->ReplaceFileFrom("../x", source.get(), 0, 0).IsInvalidArgument());
  // No temporary copy is left behind.
  auto snapshot = dir_->Snapshot();
  ASSERT_OK(snapshot);
  for (const auto& [path, state] : *snapshot) {
    EXPECT_EQ(path.find("pycell-upload"), std::string::npos) << path;
  }
}

TEST_F(SafeDirTest, CreateFileFromRefusesUnsafeNames) {
  UniqueFd source(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const std::string with_nul("a\0b", 3), too_long(256, 'n');
  const std::string names[] = {"",          ".",  "..",     "a/b",   "/etc/passwd",
                               "../escape", "a/", with_nul, too_long};
  for (const std::string& name : names) {
    EXPECT_TRUE(dir_->CreateFileFrom(name, source.get(), 0, 0).IsInvalidArgument()) << name;
  }
  EXPECT_FALSE(Exists(In("a"))) << "a name with NUL was cut short and created";
  EXPECT_FALSE(Exists(base_ + "/escape"));
  EXPECT_OK(dir_->CreateFileFrom(std::string(255, 'n'), source.get(), ::geteuid(), ::getegid()));
}

TEST_F(SafeDirTest, CreateFileFromRefusesToReplaceAnything) {
  WriteFile(In("existing"), "OLD");
  ASSERT_EQ(::symlink((outside_ + "/secret").c_str(), In("to_secret").c_str()), 0);
  ASSERT_EQ(::symlink((outside_ + "/planted").c_str(), In("dangling").c_str()), 0);
  ASSERT_EQ(::mkdir(In("folder").c_str(), 0755), 0);
  for (const char* name : {"existing", "to_secret", "dangling", "folder"}) {
    UniqueFd source(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
    EXPECT_FALSE(dir_->CreateFileFrom(name, source.get(), 0, 0).ok()) << name;
  }
  EXPECT_TRUE(dir_->CreateFileFrom("existing", -1, 0, 0).IsFailedPrecondition());
  EXPECT_EQ(ReadFile(In("existing")), "OLD");
  EXPECT_EQ(ReadFile(outside_ + "/secret"), "SECRET");
  EXPECT_FALSE(Exists(outside_ + "/planted")) << "created through a dangling link";
}

// Regression test: this failed before the fix that came with it.
TEST_F(SafeDirTest, CreateFileFromLeavesNoFileOnFailure) {
  UniqueFd folder(::open(outside_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_FALSE(dir_->CreateFileFrom("upload", folder.get(), 0, 0).ok());
  EXPECT_FALSE(Exists(In("upload")));
}

TEST_F(SafeDirTest, CopyOutCopiesARegularFileAndReplacesTheDestination) {
  PlantHostileTree();
  std::string dest = base_ + "/copied";
  WriteFile(dest, "previous content, longer than the new one");
  ASSERT_OK(dir_->CopyOut("sub/b.txt", dest));
  EXPECT_EQ(ReadFile(dest), "bravo");
  EXPECT_FALSE(Exists(dest + ".pycell-partial"));
}

TEST_F(SafeDirTest, CopyOutRefusesLinksAndLeavesNothing) {
  PlantHostileTree();
  for (const char* path : {"file_link", "dir_link/secret", "proc_link/etc/passwd", "fifo"}) {
    std::string dest = base_ + "/copied";
    WithoutHangingOnFifo([&] { EXPECT_FALSE(dir_->CopyOut(path, dest).ok()) << path; });
    EXPECT_FALSE(Exists(dest)) << path;
    EXPECT_FALSE(Exists(dest + ".pycell-partial")) << path;
  }
}

TEST_F(SafeDirTest, CopyOutLeavesNoPartialFileWhenTheDiskIsFull) {
  if (!MountTmpfs(base_ + "/tiny", "size=16k")) GTEST_SKIP() << "cannot mount a tmpfs (root)";
  WriteFile(In("big"), std::string(1 << 20, 'b'));
  std::string dest = base_ + "/tiny/big";
  Status s = dir_->CopyOut("big", dest);
  EXPECT_TRUE(s.IsResourceExhausted()) << s.ToString();
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(dest + ".pycell-partial"));
}

TEST_F(SafeDirTest, DiffReportsCreatedAndModifiedFilesOnly) {
  WriteFile(In("unchanged"), "same");
  WriteFile(In("modified"), "before");
  WriteFile(In("deleted"), "gone soon");
  Result<DirSnapshot> before = dir_->Snapshot();
  ASSERT_OK(before);
  WriteFile(In("modified"), "after, and longer");
  WriteFile(In("created"), "new");
  ASSERT_EQ(::unlink(In("deleted").c_str()), 0);
  Result<DirSnapshot> after = dir_->Snapshot();
  ASSERT_OK(after);

  std::vector<FileChange> changes = DiffSnapshots(*before, *after);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].path, "created");
  EXPECT_TRUE(changes[0].created);
  EXPECT_EQ(changes[0].bytes, 3u);
  EXPECT_EQ(changes[1].path, "modified");
  EXPECT_FALSE(changes[1].created);
  EXPECT_EQ(changes[1].bytes, 17u);
}

TEST(DiffSnapshotsTest, SameSizeChangesAreSeenThroughMtimeOrInode) {
  DirSnapshot before = {{"a", {10, 100, 1}}, {"b", {10, 100, 2}}, {"c", {10, 100, 3}}};
  DirSnapshot after = {{"a", {10, 100, 1}}, {"b", {10, 200, 2}}, {"c", {10, 100, 9}}};
  std::vector<FileChange> changes = DiffSnapshots(before, after);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].path, "b");
  EXPECT_EQ(changes[1].path, "c");
}

// Kernels without openat2 take the component-by-component walk; the same attacks must fail there.
TEST_F(SafeDirTest, FallbackWithoutOpenat2RefusesTheSameAttacks) {
  PlantHostileTree();
  RunWithoutOpenat2([&] {
    Result<UniqueFd> fd = dir_->OpenFileForRead("sub/deeper/c.bin");
    ASSERT_OK(fd);
    EXPECT_EQ(ReadAll(fd->get()), std::string("char\0lie", 8));
    ExpectEveryHostilePathRefused();
  });
}

TEST_F(SafeDirTest, FallbackWithoutOpenat2NeverYieldsALinkSwappedInForAFile) {
  RunWithoutOpenat2([&] { RaceLinkSwapsAgainstOpen(); });
}

// Regression test: this failed before the fix that came with it.
TEST_F(SafeDirTest, FallbackWithoutOpenat2RefusesFilesOnOtherMounts) {
  if (!MountTmpfs(In("mnt"))) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  WriteFile(In("mnt/f"), "x");
  RunWithoutOpenat2([&] { EXPECT_FALSE(dir_->OpenFileForRead("mnt/f").ok()); });
}

TEST_F(SafeDirTest, RemoveFileRemovesFilesAndLinksButNeverWhatTheyPointAt) {
  PlantHostileTree();
  ASSERT_OK(dir_->RemoveFile("sub/b.txt"));
  EXPECT_FALSE(Exists(In("sub/b.txt")));
  ASSERT_OK(dir_->RemoveFile("file_link"));  // The link goes; the secret stays.
  EXPECT_FALSE(Exists(In("file_link")));
  EXPECT_EQ(ReadFile(outside_ + "/secret"), "SECRET");
  EXPECT_TRUE(dir_->RemoveFile("a.txt").ok());
  EXPECT_TRUE(dir_->RemoveFile("a.txt").IsNotFound());
}

TEST_F(SafeDirTest, RemoveFileRefusesFoldersAndPathsThatLeaveTheRoot) {
  PlantHostileTree();
  // Through a link to a folder outside, up and out, absolute, a folder itself.
  for (const char* path : {"dir_link/secret", "../outside/secret", "sub/../../outside/secret",
                           "/etc/passwd", "sub", "sub/deeper", "", "proc_link/etc/hostname"}) {
    EXPECT_FALSE(dir_->RemoveFile(path).ok()) << path;
  }
  EXPECT_EQ(ReadFile(outside_ + "/secret"), "SECRET");
  EXPECT_TRUE(Exists(In("sub/deeper/c.bin")));
}

TEST_F(SafeDirTest, CopyTreeToCopiesFilesFoldersAndLinksAsLinks) {
  PlantHostileTree();
  ASSERT_EQ(::truncate(In("a.txt").c_str(), 64 << 20), 0);  // Sparse: 64 MiB, one page used.
  std::string dest = base_ + "/copy";
  ASSERT_EQ(::mkdir(dest.c_str(), 0700), 0);
  ASSERT_OK(dir_->CopyTreeTo(dest, ::getuid(), ::getgid()));
  EXPECT_EQ(ReadFile(dest + "/sub/b.txt"), "bravo");
  EXPECT_EQ(ReadFile(dest + "/sub/deeper/c.bin"), std::string("char\0lie", 8));
  struct stat st {};
  ASSERT_EQ(::stat((dest + "/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the copy of a sparse file is not sparse";
  char target[256] = {};
  ASSERT_GT(::readlink((dest + "/file_link").c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), outside_ + "/secret");  // A link, not the secret's bytes.
  ASSERT_EQ(::lstat((dest + "/file_link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_FALSE(Exists(dest + "/fifo"));
  EXPECT_FALSE(Exists(dest + "/socket"));
}

TEST_F(SafeDirTest, CopyOutRefusesAFileLargerThanItsBudget) {
  WriteFile(In("big"), std::string(4096, 'b'));
  std::string dest = base_ + "/copied";
  EXPECT_FALSE(dir_->CopyOut("big", dest, 4095).ok());
  EXPECT_FALSE(Exists(dest));
  EXPECT_OK(dir_->CopyOut("big", dest, 4096));
}

}  // namespace
}  // namespace pycell::files
