// Small cryptographic helpers over OpenSSL, shared by the blob store (content hashes), the audit
// chain (event hashes) and API keys (random secrets, constant-time comparison).
//
// Thread-safety: pure functions; OpenSSL's RAND_bytes is thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pycell {

// Lower-case hex of `size` bytes.
std::string ToHex(const unsigned char* bytes, size_t size);
// SHA-256 of `data` as lower-case hex.
std::string Sha256Hex(std::string_view data);
// True when a and b are equal, in time that depends only on their lengths (CRYPTO_memcmp).
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// `size` bytes from OpenSSL's CSPRNG; Internal when it fails (no entropy).
Status RandomBytes(unsigned char* out, size_t size);

}  // namespace pycell
