// Reading JSON that crosses a trust boundary: request bodies (REST, MCP, Azure-compatible), the
// runner's control frames, stored records written from them. One discipline for every such
// source, so that no input can end the process:
//
//  - ParseUntrustedJson bounds the nesting depth and the number of values *while* parsing (with
//    nlohmann's parser callback: its parser is iterative, and a value past a bound is discarded
//    before anything recursive — dump, copy, comparison — can see it), and the size before it
//    starts. A violation is InvalidArgument with a message that names the bound.
//  - The typed accessors (StringField, IntField, …) return a Status for a missing field or one of
//    the wrong type or range; they never throw and never insert.
//  - DumpJson serializes with invalid UTF-8 replaced (U+FFFD) instead of throwing: whatever bytes
//    a string holds (a file name written by sandboxed code, a percent-decoded path), it can be
//    written out.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace pycell {

struct JsonLimits {
  size_t max_bytes = 8u << 20;
  size_t max_depth = 64;         // Objects and arrays inside one another.
  size_t max_values = 1u << 20;  // Every value counts: objects, arrays, keys' values, scalars.
};

// Parses `text` within `limits`. InvalidArgument: not JSON, too large, too deep, too many values.
Result<nlohmann::json> ParseUntrustedJson(std::string_view text, const JsonLimits& limits = {});

// `value` as text, with invalid UTF-8 in strings replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& value, int indent = -1);

// Typed reads of one member of an object. `what` names the object in messages ("the 'done'
// frame", "the request body"). A field that is absent is NotFound for the *Field forms and
// nullopt for the Optional* forms; present with the wrong type or out of range is
// InvalidArgument in both.
Result<std::string> StringField(const nlohmann::json& object, std::string_view key,
                                std::string_view what);
Result<std::optional<std::string>> OptionalStringField(const nlohmann::json& object,
                                                       std::string_view key, std::string_view what);
Result<int64_t> IntField(const nlohmann::json& object, std::string_view key, int64_t min,
                         int64_t max, std::string_view what);
Result<std::optional<int64_t>> OptionalIntField(const nlohmann::json& object, std::string_view key,
                                                int64_t min, int64_t max, std::string_view what);
// A finite number (integer or float) in [min, max].
Result<double> NumberField(const nlohmann::json& object, std::string_view key, double min,
                           double max, std::string_view what);
Result<std::optional<bool>> OptionalBoolField(const nlohmann::json& object, std::string_view key,
                                              std::string_view what);
// An array of strings (at most `max_items`).
Result<std::vector<std::string>> StringArrayField(const nlohmann::json& object,
                                                  std::string_view key, size_t max_items,
                                                  std::string_view what);
// The one rule for the time a request gives a cell (REST's and MCP's "timeout_s", the Azure
// routes' "timeoutInSeconds"): absent or null is nullopt (the session's default); otherwise a
// number of seconds from 1 to 86400, a fraction rounded down. The session then refuses one past
// its pool's max_execution_timeout.
Result<std::optional<std::chrono::seconds>> OptionalTimeoutField(const nlohmann::json& object,
                                                                 std::string_view key,
                                                                 std::string_view what);
// The member if it is an object; NotFound when absent; InvalidArgument when of another type.
Result<const nlohmann::json*> ObjectField(const nlohmann::json& object, std::string_view key,
                                          std::string_view what);

}  // namespace pycell
