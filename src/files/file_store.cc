#include "files/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/logging.h"

namespace pycell::files {
namespace {

constexpr size_t kHeadBytes = 8 * 1024;
// WriteFrom reads this much at a time: few system calls per file, and a buffer that is cheap to
// allocate once per copy.
constexpr size_t kCopyBufferBytes = 1024 * 1024;

bool IsSha256Hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Status CheckSha256(const std::string& sha256) {
  if (IsSha256Hex(sha256)) return Status::Ok();
  return Status::InvalidArgument("\"" + sha256.substr(0, 80) +
                                 "\" is not a SHA-256 (64 lower-case hex digits)");
}

// A failed write of the store: a full disk (ENOSPC, EDQUOT) is neither the caller's fault nor a
// bug, so it says so and what to do (HTTP 507) — the path, which is the server's business, goes
// to the log only.
Status StorageFailure(const std::string& what, int err) {
  if (err != ENOSPC && err != EDQUOT) return Status::FromErrno(what, err);
  LOG_WARN("{}: {}: the file store is full", what, std::strerror(err));
  return Status::ResourceExhausted(
             "the server's file storage is full (no space left on its disk); free space in the "
             "server's data dir, or ask its operator to, then retry")
      .WithReason("insufficient_storage");
}

// A rename or a new entry is durable only once its folder is fsynced.
Status SyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("open folder " + path);
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync folder " + path);
  return Status::Ok();
}

// The names in `path` other than "." and "..".
Result<std::vector<std::string>> ListDir(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return Status::FromErrno("list " + path);
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) break;
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) return Status::FromErrno("list " + path);
  return names;
}

struct DigestDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using DigestContext = std::unique_ptr<EVP_MD_CTX, DigestDeleter>;

class FileBlobWriter : public BlobWriter {
 public:
  FileBlobWriter(std::string root, std::string temp_path, UniqueFd fd, DigestContext digest,
                 uint64_t max_bytes)
      : root_(std::move(root)),
        temp_path_(std::move(temp_path)),
        fd_(std::move(fd)),
        digest_(std::move(digest)),
        max_bytes_(max_bytes) {}

  ~FileBlobWriter() override {
    // Not committed: the half-written copy must not outlive us (Open sweeps it after a crash).
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  }

  Status Write(std::string_view data) override {
    CHECK(!committed_);
    RETURN_IF_ERROR(failure_);
    if (data.size() > max_bytes_ - bytes_) {
      return Fail(Status::ResourceExhausted("the file is larger than the limit of " +
                                            std::to_string(max_bytes_) + " bytes"));
    }
    if (head_.size() < kHeadBytes) {
      head_.append(data.substr(0, kHeadBytes - head_.size()));
    }
    if (EVP_DigestUpdate(digest_.get(), data.data(), data.size()) != 1) {
      return Fail(Status::Internal("SHA-256 update failed"));
    }
    while (!data.empty()) {
      ssize_t written = ::write(fd_.get(), data.data(), data.size());
      if (written < 0) {
        if (errno == EINTR) continue;
        return Fail(StorageFailure("write " + temp_path_, errno));
      }
      data.remove_prefix(static_cast<size_t>(written));
      bytes_ += static_cast<uint64_t>(written);
    }
    return Status::Ok();
  }

  Status WriteFrom(int fd) override {
    RETURN_IF_ERROR(failure_);
    std::unique_ptr<char[]> buffer(new char[kCopyBufferBytes]);
    while (true) {
      ssize_t got = ::read(fd, buffer.get(), kCopyBufferBytes);
      if (got < 0) {
        if (errno == EINTR) continue;
        return Fail(Status::FromErrno("read the source of " + temp_path_));
      }
      if (got == 0) return Status::Ok();
      RETURN_IF_ERROR(Write(std::string_view(buffer.get(), static_cast<size_t>(got))));
    }
  }

  uint64_t bytes() const override { return bytes_; }
  std::string_view head() const override { return head_; }

  Result<BlobInfo> Commit() override {
    CHECK(!committed_);
    committed_ = true;
    RETURN_IF_ERROR(failure_);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    if (EVP_DigestFinal_ex(digest_.get(), digest, &digest_size) != 1) {
      return Status::Internal("SHA-256 final failed");
    }
    BlobInfo info{ToHex(digest, digest_size), bytes_};

    if (::fsync(fd_.get()) != 0) return StorageFailure("fsync " + temp_path_, errno);
    if (::fchmod(fd_.get(), 0444) != 0) return Status::FromErrno("chmod " + temp_path_);
    fd_.Reset();

    std::string shard = root_ + "/blobs/" + info.sha256.substr(0, 2);
    // Open made every shard; one that has gone missing since is made again.
    bool new_shard = ::mkdir(shard.c_str(), 0700) == 0;
    if (!new_shard && errno != EEXIST) return Status::FromErrno("mkdir " + shard);
    std::string final_path = shard + "/" + info.sha256;
    // Same content, same name: a blob already there is this one. It is kept rather than replaced
    // (sessions may have hard-linked its inode); the destructor removes our copy.
    if (::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) !=
        0) {
      if (errno == EEXIST) return info;
      if (errno != EINVAL && errno != ENOSYS) {
        return Status::FromErrno("rename " + temp_path_ + " to " + final_path);
      }
      // A file system without RENAME_NOREPLACE: check, then rename (a racing twin writes the
      // same bytes, so losing the race is harmless).
      struct stat st {};
      if (::lstat(final_path.c_str(), &st) == 0) return info;
      if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
        return Status::FromErrno("rename " + temp_path_ + " to " + final_path);
      }
    }
    temp_path_.clear();
    RETURN_IF_ERROR(SyncDir(shard));
    if (new_shard) RETURN_IF_ERROR(SyncDir(root_ + "/blobs"));
    return info;
  }

 private:
  Status Fail(Status status) {
    failure_ = status;
    return status;
  }

  std::string root_;       // The store's; a copy, so that a writer may outlive its FileStore.
  std::string temp_path_;  // Empty once renamed into place.
  UniqueFd fd_;
  DigestContext digest_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::string head_;
  Status failure_;  // Sticky: a writer that failed once cannot be committed.
  bool committed_ = false;
};

}  // namespace

Result<std::unique_ptr<FileStore>> FileStore::Open(const std::string& root) {
  RETURN_IF_ERROR(MakeDirs(root + "/blobs", 0700));
  // All 256 shards up front, made durable once, so that a commit only ever syncs its own shard.
  for (int shard = 0; shard < 256; ++shard) {
    static constexpr char kDigits[] = "0123456789abcdef";
    RETURN_IF_ERROR(MakeDir(root + "/blobs/" + kDigits[shard >> 4] + kDigits[shard & 0xf], 0700));
  }
  RETURN_IF_ERROR(SyncDir(root + "/blobs"));
  RETURN_IF_ERROR(MakeDir(root + "/tmp", 0700));
  // Whatever is in tmp was being written when the server stopped: no record can name it.
  ASSIGN_OR_RETURN(std::vector<std::string> leftovers, ListDir(root + "/tmp"));
  for (const std::string& name : leftovers) {
    std::string path = root + "/tmp/" + name;
    std::error_code error;
    std::filesystem::remove_all(path, error);
    if (error) return Status::Internal("remove " + path + ": " + error.message());
  }
  return std::unique_ptr<FileStore>(new FileStore(root));
}

Result<std::unique_ptr<BlobWriter>> FileStore::NewWriter(uint64_t max_bytes) {
  std::string temp_path = root_ + "/tmp/upload-XXXXXX";
  UniqueFd fd(::mkostemp(temp_path.data(), O_CLOEXEC));
  if (!fd.valid()) return StorageFailure("create a temporary file in " + root_ + "/tmp", errno);
  DigestContext digest(EVP_MD_CTX_new());
  if (!digest || EVP_DigestInit_ex(digest.get(), EVP_sha256(), nullptr) != 1) {
    ::unlink(temp_path.c_str());
    return Status::Internal("SHA-256 init failed");
  }
  return std::unique_ptr<BlobWriter>(
      new FileBlobWriter(root_, std::move(temp_path), std::move(fd), std::move(digest), max_bytes));
}

Result<UniqueFd> FileStore::OpenBlob(const std::string& sha256) const {
  RETURN_IF_ERROR(CheckSha256(sha256));
  std::string path = BlobPath(sha256);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound("no blob " + sha256);
    return Status::FromErrno("open " + path);
  }
  return fd;
}

std::string FileStore::BlobPath(const std::string& sha256) const {
  // The name becomes a path: anything but a hash here is a bug in the caller, never a request to
  // honour (it could be "../..").
  CHECK(IsSha256Hex(sha256));
  return root_ + "/blobs/" + sha256.substr(0, 2) + "/" + sha256;
}

bool FileStore::HasBlob(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  struct stat st {};
  return ::lstat(BlobPath(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status FileStore::RemoveBlob(const std::string& sha256) {
  RETURN_IF_ERROR(CheckSha256(sha256));
  std::string path = BlobPath(sha256);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + path);
  return Status::Ok();
}

Result<std::vector<std::string>> FileStore::ListBlobs() const {
  std::vector<std::string> blobs;
  ASSIGN_OR_RETURN(std::vector<std::string> shards, ListDir(root_ + "/blobs"));
  for (const std::string& shard : shards) {
    std::string shard_path = root_ + "/blobs/" + shard;
    struct stat st {};
    if (shard.size() != 2 || !IsSha256Hex(shard + std::string(62, '0')) ||
        ::lstat(shard_path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(shard_path));
    for (std::string& name : names) {
      // Only names Commit could have made; anything else is not ours to report (or sweep).
      if (IsSha256Hex(name) && name.compare(0, 2, shard) == 0) blobs.push_back(std::move(name));
    }
  }
  std::sort(blobs.begin(), blobs.end());
  return blobs;
}

}  // namespace pycell::files
