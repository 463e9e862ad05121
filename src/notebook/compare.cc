#include "notebook/compare.h"

#include <regex>

#include "common/json_reader.h"

namespace pycell::notebook {
namespace {

using Json = nlohmann::json;

constexpr size_t kExcerpt = 300;

Json Excerpt(const Json& value) {
  if (!value.is_string()) return value;
  const std::string& s = value.get_ref<const std::string&>();
  if (s.size() <= kExcerpt) return value;
  return s.substr(0, kExcerpt) + "…";
}

// Times, dates and addresses: what differs between two honest runs of the same code.
bool LooksNondeterministic(const std::string& text) {
  static const std::regex kPattern(
      R"(0x[0-9a-fA-F]{6,}|\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}:\d{2}|\b1[5-9]\d{8}(\.\d+)?\b)");
  return std::regex_search(text, kPattern);
}

// The JSON string value of `key`, or "" when absent or not a string.
std::string Text(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

bool IsBase64(const std::string& s) {
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=' &&
        c != '\n') {
      return false;
    }
  }
  return true;
}

class Comparer {
 public:
  void Field(const std::string& what, const Json& original, const Json& replay) {
    if (original == replay) return;
    result.differences.push_back({what, Excerpt(original), Excerpt(replay)});
    std::string both = (original.is_string() ? original.get<std::string>() : DumpJson(original)) +
                       (replay.is_string() ? replay.get<std::string>() : DumpJson(replay));
    if (LooksNondeterministic(both)) {
      result.notes.push_back(what +
                             " differs where it holds a time, a date or a memory address: "
                             "likely nondeterminism (time, datetime.now(), object reprs)");
    }
  }

  void Outputs(const Json& original, const Json& replay) {
    size_t n = std::max(original.size(), replay.size());
    for (size_t i = 0; i < n; ++i) {
      std::string where = "outputs[" + std::to_string(i) + "]";
      if (i >= original.size() || i >= replay.size()) {
        Field(where, i < original.size() ? original[i] : Json(nullptr),
              i < replay.size() ? replay[i] : Json(nullptr));
        continue;
      }
      const Json& a = original[i];
      const Json& b = replay[i];
      Field(where + ".output_type", a.value("output_type", Json()), b.value("output_type", Json()));
      Json a_data = a.value("data", Json::object());
      Json b_data = b.value("data", Json::object());
      if (!a_data.is_object() || !b_data.is_object()) {
        Field(where + ".data", a_data, b_data);
        continue;
      }
      for (const auto& [mime, value] : a_data.items()) {
        std::string at = where + "." + mime;
        if (!b_data.contains(mime)) {
          Field(at, value, nullptr);
        } else if (mime.rfind("image/png", 0) == 0 && value.is_string() &&
                   b_data[mime].is_string() && value != b_data[mime]) {
          if (IsBase64(value.get<std::string>()) && IsBase64(b_data[mime].get<std::string>())) {
            result.images_to_decode.push_back(
                {at, value.get<std::string>(), b_data[mime].get<std::string>()});
          } else {
            result.differences.push_back({at, "(image)", "(image, not base64)"});
          }
        } else {
          Field(at, value, b_data[mime]);
        }
      }
      for (const auto& [mime, value] : b_data.items()) {
        if (!a_data.contains(mime)) Field(where + "." + mime, nullptr, value);
      }
    }
  }

  CellComparison result;
};

}  // namespace

CellComparison CompareExecutions(const Json& original, const Json& replay) {
  Comparer c;
  c.Field("status", original.value("status", Json()), replay.value("status", Json()));
  c.Field("stdout", Text(original, "stdout"), Text(replay, "stdout"));
  c.Field("stderr", Text(original, "stderr"), Text(replay, "stderr"));
  Json a_error = original.value("error", Json());
  Json b_error = replay.value("error", Json());
  if (a_error.is_object() && b_error.is_object()) {
    c.Field("error.ename", a_error.value("ename", Json()), b_error.value("ename", Json()));
    c.Field("error.evalue", a_error.value("evalue", Json()), b_error.value("evalue", Json()));
  } else {
    c.Field("error", a_error.is_object() ? a_error.value("ename", Json()) : Json(nullptr),
            b_error.is_object() ? b_error.value("ename", Json()) : Json(nullptr));
  }
  Json a_outputs = original.value("outputs", Json::array());
  Json b_outputs = replay.value("outputs", Json::array());
  if (a_outputs.is_array() && b_outputs.is_array()) {
    c.Outputs(a_outputs, b_outputs);
  } else {
    c.Field("outputs", a_outputs, b_outputs);
  }
  return c.result;
}

std::string PixelComparisonCode(const std::vector<ImagePair>& pairs) {
  std::string list;
  for (const ImagePair& pair : pairs) {
    // Only the base64 alphabet reaches here (CompareExecutions checks), so plain quotes hold it.
    list += "    ('" + pair.original + "', '" + pair.replay + "'),\n";
  }
  return "import base64 as _b64, io as _io, json as _json\n"
         "import numpy as _np\n"
         "import matplotlib.image as _mpimg\n"
         "def _pycell_pixels(data):\n"
         "    return _mpimg.imread(_io.BytesIO(_b64.b64decode(data)), format='png')\n"
         "def _pycell_same(a, b):\n"
         "    try:\n"
         "        x, y = _pycell_pixels(a), _pycell_pixels(b)\n"
         "        return bool(x.shape == y.shape and _np.array_equal(x, y))\n"
         "    except Exception:\n"
         "        return False\n"
         "print(_json.dumps([_pycell_same(a, b) for a, b in [\n" +
         list + "]]))\n";
}

}  // namespace pycell::notebook
