// Comparing a cell's two runs, for replay (Service::Replay, docs/notebooks.md): the original
// execution record against the replayed one. Text (stdout, stderr, the error, every text MIME type)
// must match exactly; images are equal when their bytes are, and otherwise when their decoded
// pixels are — which the caller decides (decoding runs inside a sandboxed session, never in the
// server), so CompareExecutions only lists the image pairs it could not settle by bytes.
//
// A text difference that touches something that looks like a time, a date or a memory address
// gets a note: those are the usual nondeterminism (time.time(), datetime.now(), object reprs).
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pycell::notebook {

struct ImagePair {
  std::string where;     // "outputs[2].image/png"
  std::string original;  // Base64, as in the records.
  std::string replay;
};

// One way a replayed cell differs from its original: what ("stdout", "outputs[2].text/html", …)
// and the two values, as the records hold them (text cut to a few hundred bytes; null where one
// side has nothing).
struct Difference {
  std::string what;
  nlohmann::json original;
  nlohmann::json replay;
};

struct CellComparison {
  std::vector<Difference> differences;
  std::vector<std::string> notes;
  std::vector<ImagePair> images_to_decode;  // Bytes differ: equal only if pixels are.
};

CellComparison CompareExecutions(const nlohmann::json& original, const nlohmann::json& replay);

// Python for a sandboxed session that decodes each pair's PNGs and prints one JSON line: a list
// of booleans, true where the pixels are identical (same shape, same values).
std::string PixelComparisonCode(const std::vector<ImagePair>& pairs);

}  // namespace pycell::notebook
