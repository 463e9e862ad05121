// SigningKey: the server's Ed25519 key that signs evidence bundles (docs/evidence.md), and the
// checks a verifier makes with only the public half.
//
// The key lives in `<data-dir>/evidence.key` as a PEM PKCS#8 private key, mode 0600. The first
// start creates it atomically (written to a temporary file beside it, then renamed into place
// with RENAME_NOREPLACE), so a crash never leaves a half key and an existing key is never
// overwritten; later starts load it. A key file others may read is refused, with the chmod that
// fixes it.
//
// A key is identified by its fingerprint: the SHA-256 (lower-case hex) of its public key's DER
// SubjectPublicKeyInfo — what `openssl pkey -pubin -in public_key.pem -outform DER | sha256sum`
// prints.
//
// OpenSSL's types stay in signing_key.cc. Thread-safety: a SigningKey is immutable once made;
// Sign may be called from any thread (each call makes its own OpenSSL context).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell::evidence {

class SigningKey {
 public:
  // Loads the key at `path`, or creates it there when no file exists. Errors: Internal when the
  // file cannot be read or written; InvalidArgument when it holds no Ed25519 private key;
  // PermissionDenied when group or others may read it.
  static Result<SigningKey> LoadOrCreate(const std::string& path);
  // Loads an existing key file (the same checks as LoadOrCreate).
  static Result<SigningKey> Load(const std::string& path);
  // A fresh key held only in memory (tests, and LoadOrCreate before it writes one).
  static Result<SigningKey> Generate();

  // The Ed25519 signature (64 bytes) of `data`.
  Result<std::string> Sign(std::string_view data) const;

  // The public key as PEM ("-----BEGIN PUBLIC KEY-----…") and its fingerprint.
  const std::string& public_pem() const { return public_pem_; }
  const std::string& fingerprint() const { return fingerprint_; }

  struct Handle;  // The OpenSSL key; defined in signing_key.cc.

 private:
  SigningKey(std::shared_ptr<const Handle> key, std::string public_pem, std::string fingerprint)
      : key_(std::move(key)),
        public_pem_(std::move(public_pem)),
        fingerprint_(std::move(fingerprint)) {}
  static Result<SigningKey> FromHandle(std::shared_ptr<const Handle> key);
  std::string PrivatePem() const;

  std::shared_ptr<const Handle> key_;
  std::string public_pem_;
  std::string fingerprint_;
};

// The fingerprint of a PEM public key; InvalidArgument when `pem` holds no Ed25519 public key.
Result<std::string> PublicKeyFingerprint(std::string_view pem);

// OK when `signature` is the Ed25519 signature of `data` by the key `public_pem`;
// InvalidArgument when the key is not an Ed25519 PEM public key; PermissionDenied when the
// signature does not verify.
Status VerifySignature(std::string_view public_pem, std::string_view data,
                       std::string_view signature);

// Standard base64 (RFC 4648, with padding, no line breaks), through OpenSSL.
std::string Base64Encode(std::string_view data);
// The inverse; InvalidArgument for anything that is not exactly canonical base64.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace pycell::evidence
