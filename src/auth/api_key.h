// API key tokens: "pyc_<26 id characters>_<32 secret characters>" (Crockford base32, lower
// case). The id part names the key's record (key_<26>); the secret is 160 random bits from
// OpenSSL, stored only as its SHA-256. Verification compares hashes in constant time.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell::auth {

struct IssuedKey {
  std::string id;             // key_…
  std::string token;          // pyc_…: shown once, never stored.
  std::string secret_sha256;  // What is stored.
};
Result<IssuedKey> IssueKey();

struct TokenParts {
  std::string key_id;  // key_…
  std::string secret;
};
// Unauthenticated (saying what a key looks like) when `token` is not of the form above.
Result<TokenParts> ParseToken(std::string_view token);

// Whether SHA-256(secret) equals `stored_sha256`, in constant time.
bool SecretMatches(std::string_view secret, std::string_view stored_sha256);

}  // namespace pycell::auth
