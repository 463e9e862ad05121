// Typed, sortable identifiers: "sess_", "exec_", "file_", "key_" followed by 26 characters of
// Crockford base32 — 48 bits of milliseconds since the epoch, then 80 random bits (as ULID does),
// so ids sort by creation time and cannot be guessed. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace pycell {

std::string NewId(std::string_view prefix);
// True when `id` is `prefix` followed by 26 characters of the id alphabet. Use it on every id that
// comes from outside before it names a folder or a row.
bool IsValidId(std::string_view id, std::string_view prefix);

}  // namespace pycell
