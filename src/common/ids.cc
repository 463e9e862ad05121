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
  // 128 bits: 48 of time, then 80 of randomness; 26 base32 digits carry 130 (two leading zeros).
  unsigned char bytes[16];
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  CHECK(getrandom(bytes + 6, 10, 0) == 10);
  std::string out(prefix);
  char digits[26];
  for (int d = 25, bit = 127; d >= 0; --d) {
    int value = 0;
    for (int k = 0; k < 5; ++k, --bit) {  // Bits of digit d, least significant first.
      if (bit >= 0 && (bytes[bit / 8] >> (7 - bit % 8)) & 1) value |= 1 << k;
    }
    digits[d] = kAlphabet[value];
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
