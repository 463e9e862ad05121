#include "auth/api_key.h"

#include "common/crypto.h"
#include "common/ids.h"

namespace pycell::auth {
namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kSecretBytes = 20;  // 160 bits: 32 base32 characters exactly.
constexpr size_t kSecretChars = 32;
constexpr std::string_view kTokenPrefix = "pyc_";

// 5 bytes → 8 characters, most significant bits first.
std::string Base32(const unsigned char* bytes, size_t size) {
  std::string out;
  uint64_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < size; ++i) {
    buffer = (buffer << 8) | bytes[i];
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

Status Malformed() {
  return Status::Unauthenticated(
      "the API key is malformed: send \"Authorization: Bearer pyc_…\" with a key made by "
      "`pycell keys create` (or the admin key in <data-dir>/admin.key)");
}

}  // namespace

Result<IssuedKey> IssueKey() {
  unsigned char secret[kSecretBytes];
  RETURN_IF_ERROR(RandomBytes(secret, sizeof secret));
  IssuedKey key;
  key.id = NewId("key_");
  std::string encoded = Base32(secret, sizeof secret);
  key.token = std::string(kTokenPrefix) + key.id.substr(4) + "_" + encoded;
  key.secret_sha256 = Sha256Hex(encoded);
  return key;
}

Result<TokenParts> ParseToken(std::string_view token) {
  if (token.substr(0, kTokenPrefix.size()) != kTokenPrefix) return Malformed();
  std::string_view rest = token.substr(kTokenPrefix.size());
  if (rest.size() != 26 + 1 + kSecretChars || rest[26] != '_') return Malformed();
  TokenParts parts{"key_" + std::string(rest.substr(0, 26)), std::string(rest.substr(27))};
  if (!IsValidId(parts.key_id, "key_")) return Malformed();
  for (char c : parts.secret) {
    if (std::string_view(kAlphabet).find(c) == std::string_view::npos) return Malformed();
  }
  return parts;
}

bool SecretMatches(std::string_view secret, std::string_view stored_sha256) {
  return ConstantTimeEquals(Sha256Hex(secret), stored_sha256);
}

}  // namespace pycell::auth
