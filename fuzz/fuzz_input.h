// Helpers the fuzz targets share for reading their input. Seed files stay plain text (a request,
// a body, a config) rather than a binary encoding, so that anyone can read and add them: where a
// target needs more than the bytes themselves (how to cut a body into the pieces the network
// delivers, which descriptors ride along), it draws that from a generator seeded with a hash of
// the input, so a given input always runs the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace pycell::fuzz {

// FNV-1a over the input: the seed of its Chooser.
inline uint64_t HashOf(std::string_view data) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : data) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// SplitMix64: deterministic choices derived from the input.
class Chooser {
 public:
  explicit Chooser(std::string_view data) : state_(HashOf(data)) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // In [low, high].
  size_t Between(size_t low, size_t high) { return low + Next() % (high - low + 1); }
  bool OneIn(unsigned n) { return Next() % n == 0; }

 private:
  uint64_t state_;
};

// A piece size for cutting a stream the way the network does: mostly small pieces (a byte, a
// few bytes: every state boundary gets crossed), sometimes up to `most`.
inline size_t PieceSize(Chooser& chooser, size_t most) {
  switch (chooser.Next() % 4) {
    case 0:
      return 1;
    case 1:
      return chooser.Between(1, 8);
    case 2:
      return chooser.Between(1, 64);
    default:
      return chooser.Between(1, most);
  }
}

// Splits "first line\nrest" (a request target, a Content-Type) at the first '\n'; without one,
// the whole input is the first part and the rest is empty.
inline std::pair<std::string_view, std::string_view> SplitFirstLine(std::string_view data) {
  size_t newline = data.find('\n');
  if (newline == std::string_view::npos) return {data, {}};
  std::string_view first = data.substr(0, newline);
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  return {first, data.substr(newline + 1)};
}

}  // namespace pycell::fuzz
