#include "evidence/signing_key.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/crypto.h"
#include "common/logging.h"
#include "common/unique_fd.h"

namespace pycell::evidence {

struct SigningKey::Handle {
  explicit Handle(EVP_PKEY* k) : pkey(k) {}
  ~Handle() { EVP_PKEY_free(pkey); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  EVP_PKEY* pkey;
};

namespace {

constexpr size_t kMaxKeyFileBytes = 16 << 10;

// The reason OpenSSL gave for the last failure (and clears its queue), for messages.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

// An Ed25519 public key from PEM, or InvalidArgument.
Result<PkeyPtr> ReadPublicKey(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf: " + OpenSslError());
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return Status::InvalidArgument("not a PEM public key (" + OpenSslError() + ")");
  }
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument("the public key is not an Ed25519 key");
  }
  return key;
}

Result<std::string> FingerprintOf(EVP_PKEY* key) {
  int size = i2d_PUBKEY(key, nullptr);
  if (size <= 0) return Status::Internal("i2d_PUBKEY: " + OpenSslError());
  std::string der(static_cast<size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key, &out) != size) return Status::Internal("i2d_PUBKEY: " + OpenSslError());
  return Sha256Hex(der);
}

Result<std::string> PublicPemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return Status::Internal("PEM_write_bio_PUBKEY: " + OpenSslError());
  }
  return BioText(bio.get());
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status WriteAllTo(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno("writing " + path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Moves `temp` to `path` unless `path` exists. AlreadyExists is reported as FailedPrecondition.
Status RenameNoReplace(const std::string& temp, const std::string& path) {
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  if (errno == EEXIST) return Status::FailedPrecondition(path + " exists");
  if (errno != EINVAL && errno != ENOSYS) return Status::FromErrno("renaming to " + path);
  // A file system without RENAME_NOREPLACE: link() refuses an existing name too.
  if (::link(temp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) return Status::FailedPrecondition(path + " exists");
    return Status::FromErrno("linking " + path);
  }
  ::unlink(temp.c_str());
  return Status::Ok();
}

}  // namespace

Result<SigningKey> SigningKey::FromHandle(std::shared_ptr<const Handle> key) {
  ASSIGN_OR_RETURN(std::string pem, PublicPemOf(key->pkey));
  ASSIGN_OR_RETURN(std::string fingerprint, FingerprintOf(key->pkey));
  return SigningKey(std::move(key), std::move(pem), std::move(fingerprint));
}

Result<SigningKey> SigningKey::Generate() {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &pkey) != 1) {
    return Status::Internal("generating an Ed25519 key: " + OpenSslError());
  }
  return FromHandle(std::make_shared<const Handle>(pkey));
}

std::string SigningKey::PrivatePem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  // PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: the file's mode protects it.
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_->pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return "";
  }
  return BioText(bio.get());
}

Result<SigningKey> SigningKey::Load(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return Status::FromErrno("opening " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat " + path);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::PermissionDenied(path + " may be read by others (mode " + mode +
                                    "); run `chmod 600 " + path + "` and start again");
  }
  if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    return Status::InvalidArgument(path + " is too large to be a key file");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("reading " + path);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf: " + OpenSslError());
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr) {
    return Status::InvalidArgument(path + " holds no PEM private key (" + OpenSslError() + ")");
  }
  auto handle = std::make_shared<const Handle>(pkey);
  if (EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument(path + " holds a private key that is not Ed25519");
  }
  return FromHandle(std::move(handle));
}

Result<SigningKey> SigningKey::LoadOrCreate(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return Load(path);
  if (errno != ENOENT) return Status::FromErrno("stat " + path);

  ASSIGN_OR_RETURN(SigningKey key, Generate());
  std::string pem = key.PrivatePem();
  if (pem.empty()) return Status::Internal("writing the key as PEM: " + OpenSslError());
  std::string dir = DirName(path);
  std::string temp = dir + "/.evidence.key.XXXXXX";
  int raw = ::mkostemp(temp.data(), O_CLOEXEC);  // Mode 0600.
  if (raw < 0) return Status::FromErrno("creating a temporary key file in " + dir);
  UniqueFd fd(raw);
  Status written = WriteAllTo(fd.get(), pem, temp);
  if (written.ok() && ::fchmod(fd.get(), 0600) != 0) written = Status::FromErrno("chmod " + temp);
  if (written.ok() && ::fsync(fd.get()) != 0) written = Status::FromErrno("fsync " + temp);
  fd.Reset();
  if (written.ok()) written = RenameNoReplace(temp, path);
  ::unlink(temp.c_str());                                 // Gone already when renamed.
  if (written.IsFailedPrecondition()) return Load(path);  // Another start made it first.
  RETURN_IF_ERROR(written);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) (void)::fsync(dir_fd.get());
  LOG_INFO("created the evidence signing key {} (Ed25519, sha256 {})", path, key.fingerprint());
  return key;
}

Result<std::string> SigningKey::Sign(std::string_view data) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey) != 1) {
    return Status::Internal("EVP_DigestSignInit: " + OpenSslError());
  }
  size_t size = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &size, in, data.size()) != 1) {
    return Status::Internal("EVP_DigestSign: " + OpenSslError());
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, in,
                     data.size()) != 1) {
    return Status::Internal("EVP_DigestSign: " + OpenSslError());
  }
  signature.resize(size);
  return signature;
}

Result<std::string> PublicKeyFingerprint(std::string_view pem) {
  ASSIGN_OR_RETURN(PkeyPtr key, ReadPublicKey(pem));
  return FingerprintOf(key.get());
}

Status VerifySignature(std::string_view public_pem, std::string_view data,
                       std::string_view signature) {
  ASSIGN_OR_RETURN(PkeyPtr key, ReadPublicKey(public_pem));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return Status::Internal("EVP_DigestVerifyInit: " + OpenSslError());
  }
  int verified = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(data.data()), data.size());
  ERR_clear_error();
  if (verified != 1) return Status::PermissionDenied("the signature does not verify");
  return Status::Ok();
}

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto invalid = [] { return Status::InvalidArgument("not base64"); };
  if (text.size() % 4 != 0) return invalid();
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (c == '=' && i + 2 >= text.size()) {
      ++padding;
    } else if (!alphabet || padding > 0) {
      return invalid();
    }
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < padding) return invalid();
  out.resize(static_cast<size_t>(n) - padding);
  // Only the canonical spelling (no stray bits in the last character) is accepted.
  if (Base64Encode(out) != text) return invalid();
  return out;
}

}  // namespace pycell::evidence
