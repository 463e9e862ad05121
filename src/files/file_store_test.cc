// FileStore keeps every uploaded byte, so these tests check what a crash or a bad caller could
// break: hashes, read-only blobs, no half files left behind, limits, one blob per content.
#include "files/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace pycell::files {
namespace {

constexpr char kHelloWorldSha[] =
    "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
  return out;
}

std::vector<std::string> Entries(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(generator() & 0xff);
  return bytes;
}

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/file_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_ + "/store";
    Result<std::unique_ptr<FileStore>> store = FileStore::Open(root_);
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  void TearDown() override { std::filesystem::remove_all(base_); }

  // Writes `content` in pieces of `piece` bytes and commits.
  Result<BlobInfo> Store(const std::string& content, size_t piece = 7) {
    ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, store_->NewWriter(1 << 30));
    for (size_t at = 0; at < content.size(); at += piece) {
      RETURN_IF_ERROR(writer->Write(std::string_view(content).substr(at, piece)));
    }
    return writer->Commit();
  }

  std::string base_;
  std::string root_;
  std::unique_ptr<FileStore> store_;
};

TEST(Sha256HexTest, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("hello world"), kHelloWorldSha);
}

TEST_F(FileStoreTest, OpenCreatesBlobsWithItsShardsAndTmp) {
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/blobs").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Entries(root_ + "/blobs").size(), 256u);
  ASSERT_EQ(::stat((root_ + "/blobs/00").c_str(), &st), 0);
  ASSERT_EQ(::stat((root_ + "/blobs/ff").c_str(), &st), 0);
  ASSERT_EQ(::stat((root_ + "/tmp").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(FileStoreTest, CommittedBlobHasItsHashAsNameAndIsReadOnly) {
  Result<BlobInfo> info = Store("hello world");
  ASSERT_OK(info);
  EXPECT_EQ(info->sha256, kHelloWorldSha);
  EXPECT_EQ(info->bytes, 11u);

  std::string path = store_->BlobPath(kHelloWorldSha);
  EXPECT_EQ(path, root_ + "/blobs/b9/" + kHelloWorldSha);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_TRUE(store_->HasBlob(kHelloWorldSha));

  Result<UniqueFd> fd = store_->OpenBlob(kHelloWorldSha);
  ASSERT_OK(fd);
  EXPECT_EQ(ReadAll(fd->get()), "hello world");
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
}

TEST_F(FileStoreTest, ACommitRemakesAShardThatWentMissing) {
  ASSERT_EQ(::rmdir((root_ + "/blobs/b9").c_str()), 0);
  Result<BlobInfo> info = Store("hello world");
  ASSERT_OK(info);
  EXPECT_TRUE(store_->HasBlob(kHelloWorldSha));
}

TEST_F(FileStoreTest, EmptyContentIsABlobToo) {
  Result<BlobInfo> info = Store("");
  ASSERT_OK(info);
  EXPECT_EQ(info->sha256, Sha256Hex(""));
  EXPECT_EQ(info->bytes, 0u);
  EXPECT_TRUE(store_->HasBlob(info->sha256));
}

TEST_F(FileStoreTest, IdenticalContentIsOneBlobAndTheFirstIsKept) {
  std::string content = RandomBytes(100000, 1);
  Result<BlobInfo> first = Store(content, 4096);
  ASSERT_OK(first);
  struct stat before {};
  ASSERT_EQ(::stat(store_->BlobPath(first->sha256).c_str(), &before), 0);

  Result<BlobInfo> second = Store(content, 333);
  ASSERT_OK(second);
  EXPECT_EQ(second->sha256, first->sha256);
  EXPECT_EQ(second->sha256, Sha256Hex(content));
  struct stat after {};
  ASSERT_EQ(::stat(store_->BlobPath(first->sha256).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // Not replaced: sessions may have linked it.

  Result<std::vector<std::string>> blobs = store_->ListBlobs();
  ASSERT_OK(blobs);
  EXPECT_EQ(*blobs, std::vector<std::string>{first->sha256});
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
}

TEST_F(FileStoreTest, ConcurrentWritersOfTheSameContentLeaveOneIntactBlob) {
  std::string content = RandomBytes(200000, 2);
  std::vector<std::thread> threads;
  std::vector<Status> results(8);
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back(
        [&, t] { results[t] = ::pycell::testing::StatusOf(Store(content, 1000 + t)); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : results) EXPECT_OK(status);
  Result<UniqueFd> fd = store_->OpenBlob(Sha256Hex(content));
  ASSERT_OK(fd);
  EXPECT_EQ(ReadAll(fd->get()), content);
  EXPECT_EQ(store_->ListBlobs()->size(), 1u);
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
}

TEST_F(FileStoreTest, AWriterDestroyedBeforeCommitLeavesNothing) {
  {
    Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(1000);
    ASSERT_OK(writer);
    ASSERT_OK((*writer)->Write("half an upload"));
    EXPECT_EQ(Entries(root_ + "/tmp").size(), 1u);  // It does go through tmp.
  }
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
  EXPECT_TRUE(store_->ListBlobs()->empty());
}

TEST_F(FileStoreTest, OpenSweepsLeftoversOfACrashButKeepsBlobs) {
  Result<BlobInfo> kept = Store("kept");
  ASSERT_OK(kept);
  std::ofstream(root_ + "/tmp/upload-crashed", std::ios::binary) << "half";
  ASSERT_EQ(::mkdir((root_ + "/tmp/stray-folder").c_str(), 0700), 0);
  std::ofstream(root_ + "/tmp/stray-folder/inner", std::ios::binary) << "x";
  ASSERT_EQ(Entries(root_ + "/tmp").size(), 2u);

  Result<std::unique_ptr<FileStore>> reopened = FileStore::Open(root_);
  ASSERT_OK(reopened);
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
  EXPECT_TRUE((*reopened)->HasBlob(kept->sha256));
}

TEST_F(FileStoreTest, WritesPastTheLimitAreRefusedAndTheWriterCannotCommit) {
  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(10);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Write("123456"));
  Status status = (*writer)->Write("78901");
  EXPECT_TRUE(status.IsResourceExhausted()) << status.ToString();
  EXPECT_NE(status.message().find("larger than the limit of 10 bytes"), std::string::npos)
      << status.message();
  EXPECT_TRUE((*writer)->Write("7").IsResourceExhausted());  // It stays failed.
  EXPECT_TRUE((*writer)->Commit().status().IsResourceExhausted());
  writer->reset();
  EXPECT_TRUE(store_->ListBlobs()->empty());
  EXPECT_TRUE(Entries(root_ + "/tmp").empty());
}

TEST_F(FileStoreTest, ExactlyTheLimitIsAllowed) {
  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(10);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Write("12345"));
  ASSERT_OK((*writer)->Write("67890"));
  Result<BlobInfo> info = (*writer)->Commit();
  ASSERT_OK(info);
  EXPECT_EQ(info->bytes, 10u);
}

TEST_F(FileStoreTest, WriteFromCopiesARegularFileLargerThanItsBuffer) {
  std::string content = RandomBytes(3 * 1024 * 1024 + 17, 3);
  std::string source = base_ + "/source";
  std::ofstream(source, std::ios::binary) << content;
  UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());

  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(content.size());
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->WriteFrom(fd.get()));
  EXPECT_EQ((*writer)->bytes(), content.size());
  EXPECT_EQ((*writer)->head(), content.substr(0, 8192));
  Result<BlobInfo> info = (*writer)->Commit();
  ASSERT_OK(info);
  EXPECT_EQ(info->sha256, Sha256Hex(content));
  Result<UniqueFd> blob = store_->OpenBlob(info->sha256);
  ASSERT_OK(blob);
  EXPECT_EQ(ReadAll(blob->get()), content);
}

TEST_F(FileStoreTest, WriteFromReadsAPipeToItsEnd) {
  std::string content = RandomBytes(500000, 4);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]);
  std::thread feeder([&, write_fd = fds[1]] {
    for (size_t at = 0; at < content.size(); at += 1000) {
      size_t n = std::min<size_t>(1000, content.size() - at);
      ASSERT_EQ(::write(write_fd, content.data() + at, n), static_cast<ssize_t>(n));
    }
    ::close(write_fd);
  });
  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(1 << 20);
  ASSERT_OK(writer);
  Status status = (*writer)->WriteFrom(read_end.get());
  feeder.join();
  ASSERT_OK(status);
  Result<BlobInfo> info = (*writer)->Commit();
  ASSERT_OK(info);
  EXPECT_EQ(info->sha256, Sha256Hex(content));
  EXPECT_EQ(info->bytes, content.size());
}

TEST_F(FileStoreTest, WriteFromStopsAtTheLimit) {
  std::string source = base_ + "/big";
  std::ofstream(source, std::ios::binary) << std::string(5000, 'x');
  UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(4999);
  ASSERT_OK(writer);
  EXPECT_TRUE((*writer)->WriteFrom(fd.get()).IsResourceExhausted());
}

TEST_F(FileStoreTest, HeadKeepsTheFirstEightKiB) {
  std::string content = RandomBytes(20000, 5);
  Result<std::unique_ptr<BlobWriter>> writer = store_->NewWriter(1 << 20);
  ASSERT_OK(writer);
  for (size_t at = 0; at < content.size(); at += 3000) {
    ASSERT_OK((*writer)->Write(std::string_view(content).substr(at, 3000)));
  }
  EXPECT_EQ((*writer)->head(), content.substr(0, 8192));
}

TEST_F(FileStoreTest, BadHashesAreRefusedAndMissingBlobsAreNotFound) {
  for (const std::string& bad :
       {std::string("../../../etc/passwd"), std::string(""), std::string(64, 'g'),
        std::string(63, 'a'), std::string(kHelloWorldSha).substr(0, 63) + "/",
        // Upper case is hex, but never a name Commit gives.
        std::string(64, 'A')}) {
    EXPECT_TRUE(store_->OpenBlob(bad).status().IsInvalidArgument()) << bad;
    EXPECT_TRUE(store_->RemoveBlob(bad).IsInvalidArgument()) << bad;
    EXPECT_FALSE(store_->HasBlob(bad)) << bad;
  }
  EXPECT_TRUE(store_->OpenBlob(kHelloWorldSha).status().IsNotFound());
}

TEST_F(FileStoreTest, BlobPathOfSomethingElseThanAHashIsABug) {
  EXPECT_DEATH(store_->BlobPath("../../etc/passwd"), "CHECK failed");
}

TEST_F(FileStoreTest, RemoveBlobRemovesAndIsIdempotent) {
  Result<BlobInfo> info = Store("to be removed");
  ASSERT_OK(info);
  ASSERT_OK(store_->RemoveBlob(info->sha256));
  EXPECT_FALSE(store_->HasBlob(info->sha256));
  EXPECT_TRUE(store_->OpenBlob(info->sha256).status().IsNotFound());
  EXPECT_OK(store_->RemoveBlob(info->sha256));
}

TEST_F(FileStoreTest, ListBlobsNamesOnlyBlobs) {
  Result<BlobInfo> a = Store("a");
  Result<BlobInfo> b = Store("b");
  ASSERT_OK(a);
  ASSERT_OK(b);
  // Strays a person or another tool might leave: none is a blob.
  std::ofstream(root_ + "/blobs/" + a->sha256.substr(0, 2) + "/notes.txt") << "x";
  ASSERT_EQ(::mkdir((root_ + "/blobs/zz").c_str(), 0700), 0);
  std::ofstream(root_ + "/blobs/zz/" + std::string(64, 'f')) << "x";
  ASSERT_EQ(::rmdir((root_ + "/blobs/ab").c_str()), 0);
  std::ofstream(root_ + "/blobs/ab") << "a file where a folder goes";
  std::ofstream(root_ + "/blobs/README") << "not a shard";
  std::string misplaced =
      b->sha256.substr(0, 2) == "00" ? std::string(64, '1') : std::string(64, '0');
  std::ofstream(root_ + "/blobs/" + b->sha256.substr(0, 2) + "/" + misplaced) << "x";

  Result<std::vector<std::string>> blobs = store_->ListBlobs();
  ASSERT_OK(blobs);
  std::vector<std::string> expected = {a->sha256, b->sha256};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*blobs, expected);
}

}  // namespace
}  // namespace pycell::files
