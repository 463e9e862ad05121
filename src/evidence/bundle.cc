#include "evidence/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/crypto.h"
#include "common/json_reader.h"
#include "common/unique_fd.h"

namespace pycell::evidence {

using Json = nlohmann::json;

struct BundleWriter::Archive {
  ~Archive() {
    if (a) archive_write_free(a);
  }
  struct archive* a = nullptr;
};

namespace {

constexpr size_t kChunk = 64 << 10;

// SHA-256 over bytes that arrive in pieces.
class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
    CHECK(ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1);
  }
  ~Sha256Stream() { EVP_MD_CTX_free(ctx_); }
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const void* data, size_t size) { CHECK(EVP_DigestUpdate(ctx_, data, size) == 1); }
  std::string HexDigest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    CHECK(EVP_DigestFinal_ex(ctx_, digest, &size) == 1);
    return ToHex(digest, size);
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string ArchiveError(struct archive* a, const char* what) {
  const char* text = archive_error_string(a);
  return std::string(what) + ": " + (text ? text : "libarchive failed");
}

Status WriteData(struct archive* a, const char* data, size_t size) {
  while (size > 0) {
    la_ssize_t n = archive_write_data(a, data, size);
    if (n <= 0) return Status::Internal(ArchiveError(a, "writing the bundle"));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

const char* FileTypeName(mode_t type) {
  switch (type) {
    case AE_IFLNK:
      return "a symbolic link";
    case AE_IFDIR:
      return "a directory";
    case AE_IFCHR:
      return "a character device";
    case AE_IFBLK:
      return "a block device";
    case AE_IFIFO:
      return "a FIFO";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "not a regular file";
  }
}

}  // namespace

bool IsSafeMemberName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.back() == '/') return false;
  for (char c : name) {
    if (c < 0x21 || c > 0x7e || c == '\\') return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

// --- writing ----------------------------------------------------------------------------------

BundleWriter::BundleWriter(std::unique_ptr<Archive> archive, int64_t mtime_s)
    : archive_(std::move(archive)), mtime_s_(mtime_s) {}

BundleWriter::~BundleWriter() = default;

Result<std::unique_ptr<BundleWriter>> BundleWriter::Open(int fd, int64_t mtime_s) {
  auto archive = std::make_unique<Archive>();
  archive->a = archive_write_new();
  if (archive->a == nullptr) return Status::Internal("archive_write_new failed");
  struct archive* a = archive->a;
  if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_open_fd(a, fd) != ARCHIVE_OK) {
    return Status::Internal(ArchiveError(a, "starting the bundle"));
  }
  return std::unique_ptr<BundleWriter>(new BundleWriter(std::move(archive), mtime_s));
}

Status BundleWriter::Begin(const std::string& name, uint64_t size) {
  if (closed_) return Status::FailedPrecondition("the bundle is closed");
  if (!IsSafeMemberName(name)) {
    return Status::InvalidArgument("\"" + name + "\" cannot name a bundle member");
  }
  for (const MemberDigest& m : members_) {
    if (m.name == name) return Status::InvalidArgument("the bundle has a member " + name);
  }
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                      archive_entry_free);
  archive_entry_set_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0644);
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
  archive_entry_set_mtime(entry.get(), static_cast<time_t>(mtime_s_), 0);
  archive_entry_set_uname(entry.get(), "pycell");
  archive_entry_set_gname(entry.get(), "pycell");
  if (archive_write_header(archive_->a, entry.get()) != ARCHIVE_OK) {
    return Status::Internal(ArchiveError(archive_->a, ("adding " + name).c_str()));
  }
  return Status::Ok();
}

Status BundleWriter::Add(const std::string& name, std::string_view data) {
  RETURN_IF_ERROR(Begin(name, data.size()));
  RETURN_IF_ERROR(WriteData(archive_->a, data.data(), data.size()));
  members_.push_back({name, data.size(), Sha256Hex(data)});
  return Status::Ok();
}

Status BundleWriter::AddFromFd(const std::string& name, int fd, uint64_t size) {
  RETURN_IF_ERROR(Begin(name, size));
  Sha256Stream hash;
  std::vector<char> buffer(kChunk);
  uint64_t done = 0;
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - done));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("reading the contents of " + name);
    if (n == 0) {
      return Status::Internal("the contents of " + name + " ended after " + std::to_string(done) +
                              " of " + std::to_string(size) + " bytes");
    }
    hash.Update(buffer.data(), static_cast<size_t>(n));
    RETURN_IF_ERROR(WriteData(archive_->a, buffer.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  members_.push_back({name, size, hash.HexDigest()});
  return Status::Ok();
}

Result<std::string> BundleWriter::FinishSigned(const Json& metadata, const SigningKey& key) {
  if (!metadata.is_object())
    return Status::InvalidArgument("the manifest metadata is not an object");
  RETURN_IF_ERROR(Add(kPublicKeyMember, key.public_pem()));
  Json manifest = metadata;
  Json members = Json::array();
  for (const MemberDigest& m : members_) {
    members.push_back({{"name", m.name}, {"bytes", m.bytes}, {"sha256", m.sha256}});
  }
  manifest["members"] = std::move(members);
  manifest["signer"] = {{"algorithm", "Ed25519"}, {"public_key_sha256", key.fingerprint()}};
  std::string text = DumpJson(manifest, 2) + "\n";
  ASSIGN_OR_RETURN(std::string signature, key.Sign(text));
  RETURN_IF_ERROR(Add(kManifestMember, text));
  RETURN_IF_ERROR(Add(kSignatureMember, Base64Encode(signature) + "\n"));
  RETURN_IF_ERROR(Close());
  return Sha256Hex(text);
}

Status BundleWriter::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  if (archive_write_close(archive_->a) != ARCHIVE_OK) {
    return Status::Internal(ArchiveError(archive_->a, "finishing the bundle"));
  }
  return Status::Ok();
}

// --- reading ----------------------------------------------------------------------------------

const BundleMember* Bundle::Find(std::string_view name) const {
  for (const BundleMember& m : members) {
    if (m.digest.name == name) return &m;
  }
  return nullptr;
}

Result<Bundle> ReadBundle(const std::string& path, const ReadLimits& limits,
                          const std::function<bool(const std::string&)>& keep) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound("no file " + path);
    return Status::FromErrno("opening " + path);
  }
  std::unique_ptr<struct archive, decltype(&archive_read_free)> archive(archive_read_new(),
                                                                        archive_read_free);
  struct archive* a = archive.get();
  if (a == nullptr) return Status::Internal("archive_read_new failed");
  // Only what a bundle is: gzip around a tar. Anything else is not a bundle.
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_fd(a, fd.get(), kChunk) != ARCHIVE_OK) {
    return Status::InvalidArgument(path + " is not a gzip'd tar: " + ArchiveError(a, "reading it"));
  }
  Bundle bundle;
  std::set<std::string> names;
  uint64_t total = 0;
  std::vector<char> buffer(kChunk);
  bool first = true;
  for (;;) {
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      if (first) {
        return Status::InvalidArgument(path +
                                       " is not a gzip'd tar: " + ArchiveError(a, "reading it"));
      }
      bundle.refused = ReadRefusal{"", ArchiveError(a, "the archive is damaged")};
      return bundle;
    }
    first = false;
    const char* raw_name = archive_entry_pathname(entry);
    std::string name = raw_name ? raw_name : "";
    auto refuse = [&](std::string reason) {
      bundle.refused = ReadRefusal{name, std::move(reason)};
      return bundle;
    };
    if (bundle.members.size() >= limits.max_members) {
      return refuse("the bundle has more than " + std::to_string(limits.max_members) + " members");
    }
    if (!IsSafeMemberName(name)) {
      return refuse("unsafe member name (absolute, \"..\", empty parts or unprintable)");
    }
    if (archive_entry_hardlink(entry) != nullptr) return refuse("it is a hard link");
    if (archive_entry_symlink(entry) != nullptr) return refuse("it is a symbolic link");
    mode_t type = archive_entry_filetype(entry);
    if (type != AE_IFREG) return refuse(std::string("it is ") + FileTypeName(type));
    if (!archive_entry_size_is_set(entry) || archive_entry_size(entry) < 0) {
      return refuse("it has no size");
    }
    uint64_t size = static_cast<uint64_t>(archive_entry_size(entry));
    if (size > limits.max_member_bytes) {
      return refuse("it declares " + std::to_string(size) + " bytes, more than the limit of " +
                    std::to_string(limits.max_member_bytes));
    }
    if (size > limits.max_total_bytes - std::min(total, limits.max_total_bytes)) {
      return refuse("the members pass the limit of " + std::to_string(limits.max_total_bytes) +
                    " bytes in all");
    }
    if (!names.insert(name).second) return refuse("a second member of that name");
    total += size;

    BundleMember member;
    member.digest.name = name;
    bool keeping = (!keep || keep(name)) && size <= limits.max_kept_bytes;
    if (keeping) member.content.emplace().reserve(static_cast<size_t>(size));
    Sha256Stream hash;
    uint64_t read = 0;
    for (;;) {
      la_ssize_t n = archive_read_data(a, buffer.data(), buffer.size());
      if (n == 0) break;
      if (n < 0) return refuse(ArchiveError(a, "its data is damaged"));
      read += static_cast<uint64_t>(n);
      if (read > size) return refuse("it holds more bytes than it declares");
      hash.Update(buffer.data(), static_cast<size_t>(n));
      if (keeping) member.content->append(buffer.data(), static_cast<size_t>(n));
    }
    if (read != size) {
      return refuse("it holds " + std::to_string(read) + " bytes, not the " + std::to_string(size) +
                    " it declares");
    }
    member.digest.bytes = size;
    member.digest.sha256 = hash.HexDigest();
    bundle.members.push_back(std::move(member));
  }
  return bundle;
}

}  // namespace pycell::evidence
