// An evidence bundle as an archive: a gzip'd POSIX tar of named members, written with each
// member's size and SHA-256 recorded as it goes, and signed by a manifest (docs/evidence.md):
//
//   <members>        whatever the exporter adds (config.json, audit.json, files/<sha256>, …)
//   public_key.pem   the signer's public key
//   manifest.json    {"members": [{name, bytes, sha256}…], "signer": {…}, plus metadata}
//   manifest.sig     base64 of the Ed25519 signature of manifest.json's exact bytes
//
// Reading never extracts anything to disk: members are hashed as they stream by and kept in
// memory only when asked. A hostile archive is refused at the first entry that is not a plain
// regular file with a safe relative name ("../x", "/etc/x", links, devices, duplicates), or whose
// size passes the limits; what was read before it is kept, with the refusal, for the verifier to
// report.
//
// libarchive's types stay in bundle.cc. Thread-safety: a BundleWriter serves one thread; ReadBundle
// is reentrant.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "evidence/signing_key.h"

namespace pycell::evidence {

inline constexpr const char* kManifestMember = "manifest.json";
inline constexpr const char* kSignatureMember = "manifest.sig";
inline constexpr const char* kPublicKeyMember = "public_key.pem";
inline constexpr const char* kFilesPrefix = "files/";

// A member's name, size and SHA-256 (lower-case hex).
struct MemberDigest {
  std::string name;
  uint64_t bytes = 0;
  std::string sha256;
};

// Whether `name` may name a member: relative, '/'-separated parts that are neither empty, "." nor
// "..", printable ASCII, at most 255 bytes.
bool IsSafeMemberName(std::string_view name);

class BundleWriter {
 public:
  // Writes the archive to `fd` (not owned; from its current offset). Every member gets mode 0644
  // and mtime `mtime_s` (seconds since the epoch).
  static Result<std::unique_ptr<BundleWriter>> Open(int fd, int64_t mtime_s);
  ~BundleWriter();
  BundleWriter(const BundleWriter&) = delete;
  BundleWriter& operator=(const BundleWriter&) = delete;

  // One member from memory. InvalidArgument for an unsafe or repeated name.
  Status Add(const std::string& name, std::string_view data);
  // One member of `size` bytes read from `fd` (from offset 0, not owned); Internal when it holds
  // fewer bytes.
  Status AddFromFd(const std::string& name, int fd, uint64_t size);

  // Adds public_key.pem, then manifest.json — `metadata` (an object) with "members" (every member
  // added so far and public_key.pem, in order) and "signer" ({"algorithm": "Ed25519",
  // "public_key_sha256"}) — then manifest.sig, and closes the archive. Returns manifest.json's
  // SHA-256.
  Result<std::string> FinishSigned(const nlohmann::json& metadata, const SigningKey& key);
  // Closes the archive as it is (no manifest): for tests that build bundles by hand.
  Status Close();

  const std::vector<MemberDigest>& members() const { return members_; }

  struct Archive;  // libarchive's writer; defined in bundle.cc.

 private:
  BundleWriter(std::unique_ptr<Archive> archive, int64_t mtime_s);
  Status Begin(const std::string& name, uint64_t size);

  std::unique_ptr<Archive> archive_;
  int64_t mtime_s_;
  bool closed_ = false;
  std::vector<MemberDigest> members_;
};

struct ReadLimits {
  uint64_t max_member_bytes = 64ull << 30;  // One member's size.
  uint64_t max_total_bytes = 256ull << 30;  // All members together (gzip bombs).
  uint64_t max_kept_bytes = 256ull << 20;   // A member kept in memory.
  size_t max_members = 1000000;
};

struct BundleMember {
  MemberDigest digest;
  std::optional<std::string> content;  // When kept (and not over max_kept_bytes).
};

// Why reading stopped early: the entry's name as the archive gives it ("" when unknown).
struct ReadRefusal {
  std::string member;
  std::string reason;
};

struct Bundle {
  std::vector<BundleMember> members;  // In archive order.
  std::optional<ReadRefusal> refused;

  const BundleMember* Find(std::string_view name) const;
};

// Reads the bundle at `path`. `keep(name)` says which members' contents to keep in memory
// (default: all). Errors (the file is unreadable, not a verdict on it): NotFound or Internal
// when it cannot be opened; InvalidArgument when it is not a gzip'd tar at all.
Result<Bundle> ReadBundle(const std::string& path, const ReadLimits& limits = {},
                          const std::function<bool(const std::string&)>& keep = {});

}  // namespace pycell::evidence
