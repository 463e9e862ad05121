// FileStore: the contents of every stored file, content-addressed under one folder:
//   <root>/blobs/<first two hex digits>/<sha256>   read-only (0444) once in place
//   <root>/tmp/                                     half-written uploads (removed at Open)
// A blob is written to a temporary file in <root>/tmp while it is hashed (SHA-256, OpenSSL),
// fsynced, then renamed into place and its folder fsynced — so a crash never leaves a half blob
// under a valid name. Blobs are shared: two files with the same content are one blob. Which blobs
// are still wanted is the metadata store's business (reference counts come from its records);
// the FileStore only writes, opens, lists and removes them.
//
// Thread-safety: every method may be called from any thread; a BlobWriter belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace pycell::files {

struct BlobInfo {
  std::string sha256;  // Lower-case hex.
  uint64_t bytes = 0;
};

// One blob being written. Destroying it before Commit() removes the temporary file.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends `data`. ResourceExhausted ("larger than the limit of N bytes") past max_bytes.
  virtual Status Write(std::string_view data) = 0;
  // Copies everything readable from `fd` (a regular file or pipe) through Write.
  virtual Status WriteFrom(int fd) = 0;
  virtual uint64_t bytes() const = 0;
  // The first bytes written (up to 8 KiB), for sniffing the media type.
  virtual std::string_view head() const = 0;
  // fsyncs, renames into place (or drops the copy when the blob already exists), fsyncs the
  // folder. After Commit the writer may not be used again.
  virtual Result<BlobInfo> Commit() = 0;
};

class FileStore {
 public:
  // Creates <root>/blobs and <root>/tmp when missing; empties <root>/tmp (leftovers of a crash).
  static Result<std::unique_ptr<FileStore>> Open(const std::string& root);

  Result<std::unique_ptr<BlobWriter>> NewWriter(uint64_t max_bytes);
  // Opens the blob for reading. NotFound if absent; InvalidArgument if `sha256` is not 64 hex.
  Result<UniqueFd> OpenBlob(const std::string& sha256) const;
  // The blob's path (for hard links / copies into a session). Does not check it exists.
  std::string BlobPath(const std::string& sha256) const;
  bool HasBlob(const std::string& sha256) const;
  // Removes the blob; OK if it was already gone.
  Status RemoveBlob(const std::string& sha256);
  // Every blob present (for sweeping blobs that no record names).
  Result<std::vector<std::string>> ListBlobs() const;

  const std::string& root() const { return root_; }

 private:
  explicit FileStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// The blob store names blobs by common/crypto.h's Sha256Hex.
using ::pycell::Sha256Hex;

}  // namespace pycell::files
