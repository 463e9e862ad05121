#include "common/utf8.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace pycell {

namespace {

// The length of the well-formed UTF-8 sequence that starts at text[i], or 0 when none does.
size_t SequenceAt(std::string_view text, size_t i) {
  auto byte = static_cast<unsigned char>(text[i]);
  size_t extra;
  uint32_t code_point;
  if (byte < 0x80) {
    return 1;
  } else if ((byte & 0xe0) == 0xc0) {
    extra = 1;
    code_point = byte & 0x1f;
  } else if ((byte & 0xf0) == 0xe0) {
    extra = 2;
    code_point = byte & 0x0f;
  } else if ((byte & 0xf8) == 0xf0) {
    extra = 3;
    code_point = byte & 0x07;
  } else {
    return 0;
  }
  if (i + extra >= text.size()) return 0;
  for (size_t k = 1; k <= extra; ++k) {
    auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (next & 0x3f);
  }
  // Overlong forms, surrogates and values past Unicode's range are not UTF-8.
  static constexpr uint32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
  if (code_point < kMinimum[extra] || code_point > 0x10ffff ||
      (code_point >= 0xd800 && code_point <= 0xdfff)) {
    return 0;
  }
  return extra + 1;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t n = SequenceAt(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string EscapeNonUtf8(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t n = SequenceAt(bytes, i);
    if (n == 0) {
      auto byte = static_cast<unsigned char>(bytes[i]);
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string ReplaceNonUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t n = SequenceAt(bytes, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool IsPrintableUtf8(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return IsValidUtf8(text);
}

}  // namespace pycell
