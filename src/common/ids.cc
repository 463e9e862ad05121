#include "common/ids.h"

#include <sys/random.h>

#include <chrono>
#include <cstdint>

#include "common/status.h"

namespace pycell {
namespace {
constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
}

std::string NewId(std::string_view prefix) {
  uint64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  unsigned char random[10];
  CHECK(getrandom(random, sizeof random, 0) == sizeof random);
  // 128 bits: 48 of time, 80 of randomness; 26 base32 digits carry 130.
  unsigned __int128 v = (static_cast<unsigned __int128>(ms & 0xFFFFFFFFFFFFull) << 80);
  for (int i = 0; i < 10; ++i) v |= static_cast<unsigned __int128>(random[i]) << (8 * (9 - i));
  std::string out(prefix);
  char digits[26];
  for (int i = 25; i >= 0; --i) {
    digits[i] = kAlphabet[static_cast<int>(v & 31)];
    v >>= 5;
  }
  out.append(digits, 26);
  return out;
}

bool IsValidId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 26 || id.substr(0, prefix.size()) != prefix) return false;
  for (char c : id.substr(prefix.size())) {
    if (std::string_view(kAlphabet).find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace pycell
