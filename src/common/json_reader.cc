#include "common/json_reader.h"

#include <cmath>
#include <limits>

namespace pycell {

using nlohmann::json;

Result<json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::InvalidArgument("JSON of " + std::to_string(text.size()) +
                                   " bytes is over the limit of " +
                                   std::to_string(limits.max_bytes));
  }
  // The callback sees every value as the parser meets it. Returning false discards the value, so
  // nothing past a bound is ever built; the parser itself keeps one bit per open level, no stack
  // frame, so a million '[' cost a million bits and no recursion.
  size_t values = 0;
  const char* exceeded = nullptr;
  auto bound = [&](int depth, json::parse_event_t event, json& /*parsed*/) {
    if (exceeded != nullptr) return false;
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      if (static_cast<size_t>(depth) >= limits.max_depth) {
        exceeded = "nesting is deeper than";
        return false;
      }
    }
    if (event == json::parse_event_t::value || event == json::parse_event_t::object_start ||
        event == json::parse_event_t::array_start) {
      if (++values > limits.max_values) {
        exceeded = "more values than";
        return false;
      }
    }
    return true;
  };
  json parsed = json::parse(text.begin(), text.end(), bound, /*allow_exceptions=*/false);
  if (exceeded != nullptr) {
    size_t limit =
        std::string_view(exceeded).starts_with("nesting") ? limits.max_depth : limits.max_values;
    return Status::InvalidArgument(std::string("JSON refused: ") + exceeded + " the limit of " +
                                   std::to_string(limit));
  }
  if (parsed.is_discarded()) return Status::InvalidArgument("not valid JSON");
  return parsed;
}

std::string DumpJson(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

namespace {

Status WrongType(std::string_view key, std::string_view what, std::string_view expected) {
  return Status::InvalidArgument(std::string(what) + ": '" + std::string(key) + "' must be " +
                                 std::string(expected));
}

const json* Member(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Status Missing(std::string_view key, std::string_view what) {
  return Status::NotFound(std::string(what) + ": '" + std::string(key) + "' is missing");
}

Result<std::optional<int64_t>> IntOf(const json* value, std::string_view key, int64_t min,
                                     int64_t max, std::string_view what) {
  if (value == nullptr) return std::optional<int64_t>();
  std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  int64_t n;
  if (value->is_number_unsigned()) {
    uint64_t u = value->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return WrongType(key, what, range);
    }
    n = static_cast<int64_t>(u);
  } else if (value->is_number_integer()) {
    n = value->get<int64_t>();
  } else {
    return WrongType(key, what, range);
  }
  if (n < min || n > max) return WrongType(key, what, range);
  return std::optional<int64_t>(n);
}

}  // namespace

Result<std::optional<std::string>> OptionalStringField(const json& object, std::string_view key,
                                                       std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string()) return WrongType(key, what, "a string");
  return std::optional<std::string>(value->get_ref<const std::string&>());
}

Result<std::string> StringField(const json& object, std::string_view key, std::string_view what) {
  ASSIGN_OR_RETURN(std::optional<std::string> value, OptionalStringField(object, key, what));
  if (!value) return Missing(key, what);
  return std::move(*value);
}

Result<std::optional<int64_t>> OptionalIntField(const json& object, std::string_view key,
                                                int64_t min, int64_t max, std::string_view what) {
  return IntOf(Member(object, key), key, min, max, what);
}

Result<int64_t> IntField(const json& object, std::string_view key, int64_t min, int64_t max,
                         std::string_view what) {
  ASSIGN_OR_RETURN(std::optional<int64_t> value, IntOf(Member(object, key), key, min, max, what));
  if (!value) return Missing(key, what);
  return *value;
}

Result<double> NumberField(const json& object, std::string_view key, double min, double max,
                           std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr) return Missing(key, what);
  if (!value->is_number()) return WrongType(key, what, "a number");
  double d = value->get<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    return WrongType(key, what,
                     "a finite number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return d;
}

Result<std::optional<std::chrono::seconds>> OptionalTimeoutField(const json& object,
                                                                 std::string_view key,
                                                                 std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr || value->is_null()) return std::optional<std::chrono::seconds>();
  if (!value->is_number() || !std::isfinite(value->get<double>()) || value->get<double>() < 1 ||
      value->get<double>() > 86400) {
    return WrongType(key, what, "a number of seconds from 1 to 86400");
  }
  return std::optional<std::chrono::seconds>(static_cast<int64_t>(value->get<double>()));
}

Result<std::optional<bool>> OptionalBoolField(const json& object, std::string_view key,
                                              std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_boolean()) return WrongType(key, what, "true or false");
  return std::optional<bool>(value->get<bool>());
}

Result<std::vector<std::string>> StringArrayField(const json& object, std::string_view key,
                                                  size_t max_items, std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr) return Missing(key, what);
  std::string expected = "an array of at most " + std::to_string(max_items) + " strings";
  if (!value->is_array() || value->size() > max_items) return WrongType(key, what, expected);
  std::vector<std::string> out;
  out.reserve(value->size());
  for (const json& item : *value) {
    if (!item.is_string()) return WrongType(key, what, expected);
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<const json*> ObjectField(const json& object, std::string_view key, std::string_view what) {
  const json* value = Member(object, key);
  if (value == nullptr) return Missing(key, what);
  if (!value->is_object()) return WrongType(key, what, "an object");
  return value;
}

}  // namespace pycell
