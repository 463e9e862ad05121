// UTF-8 checks for text that arrives from outside (file names, metadata) before it is stored or
// shown. Thread-safe pure functions.
#pragma once

#include <string>
#include <string_view>

namespace pycell {

// True when `text` is well-formed UTF-8: no overlong forms, surrogates or code points past
// U+10FFFF.
bool IsValidUtf8(std::string_view text);

// True when `text` is valid UTF-8 without control characters (C0, DEL): safe to store as a name
// and to echo in a header or a terminal.
bool IsPrintableUtf8(std::string_view text);

// The policy for names that sandboxed code wrote as bytes (a file under /mnt/data): each byte that
// is not part of well-formed UTF-8 becomes "%XX" (upper-case hex); everything else is kept, so a
// valid name is returned unchanged. The result is valid UTF-8: it can be stored, listed, audited
// and exported on every route. ("bad\xff.txt" is registered as "bad%FF.txt".)
std::string EscapeNonUtf8(std::string_view bytes);

// `bytes` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, as a JSON
// writer replaces them: for cutting text to a length before it is written out.
std::string ReplaceNonUtf8(std::string_view bytes);

}  // namespace pycell
