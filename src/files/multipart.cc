#include "files/multipart.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "common/utf8.h"

namespace pycell::files {
namespace {

// RFC 2046 §5.1.1: a boundary is 1–70 of these, not ending in a space.
constexpr std::string_view kBoundaryChars =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";
constexpr size_t kMaxBoundary = 70;

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// RFC 9110 tchar: what a header or parameter name may be made of.
bool IsTokenChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// Client bytes quoted for an error message: printable ASCII as is, the rest as \xNN, cut short.
std::string Quote(std::string_view text, size_t max_chars = 60) {
  std::string quoted = "\"";
  for (size_t i = 0; i < text.size() && i < max_chars; ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\') {
      quoted.push_back(static_cast<char>(byte));
    } else {
      static constexpr char kDigits[] = "0123456789abcdef";
      quoted += "\\x";
      quoted.push_back(kDigits[byte >> 4]);
      quoted.push_back(kDigits[byte & 0xf]);
    }
  }
  if (text.size() > max_chars) quoted += "...";
  return quoted + "\"";
}

std::string QuoteChar(char c) { return Quote(std::string_view(&c, 1)); }

using Parameters = std::vector<std::pair<std::string, std::string>>;

// The `; name=value` list after a header value's first word (RFC 9110 §5.6.6). Values are tokens
// or quoted strings (backslash escapes the next character); names are lower-cased.
Status ParseParameters(std::string_view text, Parameters* parameters) {
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && IsSpace(text[i])) ++i;
  };
  while (true) {
    skip_space();
    if (i == text.size()) return Status::Ok();
    if (text[i] != ';') {
      return Status::InvalidArgument("expected ';' before " + Quote(text.substr(i)));
    }
    ++i;
    skip_space();
    if (i == text.size()) return Status::Ok();  // A trailing ';' is harmless.
    if (text[i] == ';') continue;
    size_t name_start = i;
    while (i < text.size() && IsTokenChar(text[i])) ++i;
    std::string name = Lower(text.substr(name_start, i - name_start));
    skip_space();
    if (name.empty() || i == text.size() || text[i] != '=') {
      return Status::InvalidArgument("a parameter is not name=value at " +
                                     Quote(text.substr(name_start)));
    }
    ++i;
    skip_space();
    std::string value;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        char c = text[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        // A backslash escapes only '"' and itself (what RFC 9110's quoted-pair is used for in
        // practice); before anything else it is kept, as browsers send "C:\\dir\\a.csv" raw.
        if (c == '\\' && i < text.size() && (text[i] == '"' || text[i] == '\\')) c = text[i++];
        value.push_back(c);
      }
      if (!closed) {
        return Status::InvalidArgument("the value of parameter " + Quote(name) +
                                       " has no closing quote");
      }
    } else {
      size_t value_start = i;
      while (i < text.size() && text[i] != ';' && !IsSpace(text[i]) && text[i] != '"') ++i;
      value = text.substr(value_start, i - value_start);
      if (value.empty()) {
        return Status::InvalidArgument("parameter " + Quote(name) + " has an empty value");
      }
    }
    for (const auto& [seen, unused] : *parameters) {
      if (seen == name) return Status::InvalidArgument("parameter " + Quote(name) + " is repeated");
    }
    parameters->emplace_back(std::move(name), std::move(value));
  }
}

std::string DecodeFormEscapes(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      std::string_view code = text.substr(i + 1, 2);
      if (code == "22") {
        out.push_back('"');
        i += 2;
        continue;
      }
      if (code == "0D" || code == "0d") {
        out.push_back('\r');
        i += 2;
        continue;
      }
      if (code == "0A" || code == "0a") {
        out.push_back('\n');
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

const std::string* FindParameter(const Parameters& parameters, std::string_view name) {
  for (const auto& [key, value] : parameters) {
    if (key == name) return &value;
  }
  return nullptr;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// An RFC 8187 ext-value, charset'language'percent-encoded, as UTF-8.
Result<std::string> DecodeExtendedValue(std::string_view value) {
  size_t first_quote = value.find('\'');
  size_t second_quote =
      first_quote == std::string_view::npos ? first_quote : value.find('\'', first_quote + 1);
  if (second_quote == std::string_view::npos) {
    return Status::InvalidArgument("filename* is not charset'language'value: " + Quote(value));
  }
  std::string charset = Lower(value.substr(0, first_quote));
  if (charset != "utf-8" && charset != "iso-8859-1") {
    return Status::InvalidArgument("filename* is in charset " + Quote(charset) +
                                   "; only UTF-8 and ISO-8859-1 are supported");
  }
  std::string bytes;
  std::string_view encoded = value.substr(second_quote + 1);
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      bytes.push_back(encoded[i]);
      continue;
    }
    int high = i + 2 < encoded.size() ? HexValue(encoded[i + 1]) : -1;
    int low = high >= 0 ? HexValue(encoded[i + 2]) : -1;
    if (low < 0) {
      return Status::InvalidArgument("filename* has a malformed percent escape: " +
                                     Quote(encoded.substr(i, 3)));
    }
    bytes.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  if (charset == "utf-8") return bytes;
  std::string utf8;  // ISO-8859-1 is the first 256 code points.
  for (char c : bytes) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      utf8.push_back(c);
    } else {
      utf8.push_back(static_cast<char>(0xc0 | (byte >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (byte & 0x3f)));
    }
  }
  return utf8;
}

// "form-data; name=...; filename=..." into `headers`.
Status ParseContentDisposition(std::string_view value, PartHeaders* headers) {
  size_t semicolon = value.find(';');
  std::string_view type = TrimSpace(value.substr(0, semicolon));
  if (Lower(type) != "form-data") {
    return Status::InvalidArgument("a part's Content-Disposition is " + Quote(type) +
                                   ", not form-data");
  }
  Parameters parameters;
  if (semicolon != std::string_view::npos) {
    Status status = ParseParameters(value.substr(semicolon), &parameters);
    if (!status.ok()) return status.WithContext("a part's Content-Disposition");
  }
  const std::string* name = FindParameter(parameters, "name");
  if (name == nullptr) {
    return Status::InvalidArgument("a part's Content-Disposition has no name parameter");
  }
  headers->name = *name;
  if (const std::string* extended = FindParameter(parameters, "filename*")) {
    ASSIGN_OR_RETURN(headers->filename, DecodeExtendedValue(*extended));
    headers->has_filename = true;
  } else if (const std::string* filename = FindParameter(parameters, "filename")) {
    // Browsers and curl (the WHATWG form encoding) send '"', CR and LF in a filename as %22,
    // %0D and %0A; anything else is taken as written.
    headers->filename = DecodeFormEscapes(*filename);
    headers->has_filename = true;
  }
  if (!IsValidUtf8(headers->name)) {
    return Status::InvalidArgument("a part's name is not valid UTF-8: " + Quote(headers->name));
  }
  if (!IsValidUtf8(headers->filename)) {
    return Status::InvalidArgument("a part's filename is not valid UTF-8: " +
                                   Quote(headers->filename));
  }
  // filename* can smuggle in what the header line itself may not hold.
  for (char c : headers->filename) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("a part's filename contains the control character " +
                                     QuoteChar(c));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> MultipartParser::BoundaryFromContentType(std::string_view content_type) {
  size_t semicolon = content_type.find(';');
  std::string_view media_type = TrimSpace(content_type.substr(0, semicolon));
  if (Lower(media_type) != "multipart/form-data") {
    return Status::InvalidArgument("the Content-Type is " + Quote(media_type) +
                                   ", not multipart/form-data");
  }
  Parameters parameters;
  if (semicolon != std::string_view::npos) {
    Status status = ParseParameters(content_type.substr(semicolon), &parameters);
    if (!status.ok()) return status.WithContext("the Content-Type");
  }
  const std::string* boundary = FindParameter(parameters, "boundary");
  if (boundary == nullptr) {
    return Status::InvalidArgument("the multipart/form-data Content-Type has no boundary");
  }
  if (boundary->empty() || boundary->size() > kMaxBoundary) {
    return Status::InvalidArgument("the boundary is " + std::to_string(boundary->size()) +
                                   " characters long; RFC 2046 allows 1 to 70");
  }
  for (char c : *boundary) {
    if (kBoundaryChars.find(c) == std::string_view::npos) {
      return Status::InvalidArgument("the boundary contains " + QuoteChar(c) +
                                     ", which RFC 2046 does not allow in a boundary");
    }
  }
  if (boundary->back() == ' ') {
    return Status::InvalidArgument("the boundary ends with a space, which RFC 2046 forbids");
  }
  return *boundary;
}

MultipartParser::MultipartParser(std::string boundary, MultipartCallbacks callbacks,
                                 MultipartLimits limits)
    : delimiter_("\r\n--" + boundary), callbacks_(std::move(callbacks)), limits_(limits) {
  // The scan below relies on a CR appearing only at the delimiter's start; a boundary from
  // BoundaryFromContentType never holds one.
  CHECK(!boundary.empty() && boundary.find_first_of("\r\n") == std::string::npos);
}

Status MultipartParser::Feed(std::string_view chunk) {
  while (!chunk.empty()) {
    size_t used = chunk.size();
    Status status;
    switch (state_) {
      case State::kPreamble:
      case State::kBody:
        status = ScanForDelimiter(chunk, &used);
        break;
      case State::kBoundaryTail:
      case State::kCloseDash:
      case State::kPadding:
      case State::kBoundaryLineFeed:
        status = ConsumeBoundaryLine(chunk, &used);
        break;
      case State::kHeaders:
        status = ConsumeHeaders(chunk, &used);
        break;
      case State::kEpilogue:
        break;  // Ignored, as RFC 2046 says.
      case State::kFailed:
        return failure_;
    }
    if (!status.ok()) return Fail(std::move(status));
    chunk.remove_prefix(used);
  }
  return state_ == State::kFailed ? failure_ : Status::Ok();
}

Status MultipartParser::Finish() {
  switch (state_) {
    case State::kEpilogue:
      return Status::Ok();
    case State::kFailed:
      return failure_;
    case State::kPreamble:
      return Fail(Status::InvalidArgument(
          "the multipart body ended before its closing boundary (no boundary line was found; "
          "does the body use the boundary its Content-Type names?)"));
    default:
      return Fail(Status::InvalidArgument("the multipart body ended before its closing boundary"));
  }
}

// The delimiter is "\r\n--boundary", and the boundary holds no CR, so after a mismatch the only
// place a new match can start is a CR: no backtracking table is needed, and a byte is looked at
// once. Part data is passed on in the caller's own buffer, one piece per chunk; the bytes of a
// partial match are not copied either, because they are delimiter_'s own prefix, so a match
// that fails across chunks is delivered from delimiter_.
Status MultipartParser::ScanForDelimiter(std::string_view data, size_t* used) {
  const bool deliver = state_ == State::kBody;
  // Matched bytes that came before `data` and are still part of the current match.
  size_t carried = matched_;
  // data[0, i - matched bytes in data) is part data (it is delivered when the chunk or the part
  // ends, in one piece).
  size_t i = 0;
  while (i < data.size()) {
    if (matched_ == 0) {
      const void* cr = std::memchr(data.data() + i, '\r', data.size() - i);
      if (cr == nullptr) {
        i = data.size();
        break;
      }
      i = static_cast<size_t>(static_cast<const char*>(cr) - data.data()) + 1;
      matched_ = 1;
      continue;
    }
    if (data[i] == delimiter_[matched_]) {
      ++i;
      if (++matched_ < delimiter_.size()) continue;
      size_t match_start = i - (matched_ - carried);
      if (deliver) RETURN_IF_ERROR(Deliver(data.substr(0, match_start)));
      matched_ = 0;
      *used = i;
      if (state_ == State::kBody && callbacks_.on_part_end) {
        RETURN_IF_ERROR(callbacks_.on_part_end());
      }
      state_ = State::kBoundaryTail;
      return Status::Ok();
    }
    // Not a delimiter after all: what matched is data. Bytes that came before this chunk go out
    // first; the ones in this chunk simply stay in the run.
    if (carried > 0 && deliver) {
      RETURN_IF_ERROR(Deliver(std::string_view(delimiter_).substr(0, carried)));
    }
    carried = 0;
    matched_ = 0;  // data[i] is looked at again: it may be the CR of a new match.
  }
  if (deliver) RETURN_IF_ERROR(Deliver(data.substr(0, data.size() - (matched_ - carried))));
  *used = data.size();
  return Status::Ok();
}

Status MultipartParser::ConsumeBoundaryLine(std::string_view data, size_t* used) {
  size_t i = 0;
  while (i < data.size()) {
    char c = data[i++];
    switch (state_) {
      case State::kBoundaryTail:
        if (c == '-') {
          state_ = State::kCloseDash;
        } else if (IsSpace(c)) {
          state_ = State::kPadding;
        } else if (c == '\r') {
          state_ = State::kBoundaryLineFeed;
        } else {
          return Status::InvalidArgument("a boundary is followed by " + QuoteChar(c) +
                                         " instead of a line break or \"--\" (is the boundary "
                                         "also in the content?)");
        }
        break;
      case State::kCloseDash:
        if (c != '-') {
          return Status::InvalidArgument("a boundary is followed by \"-\" and " + QuoteChar(c) +
                                         " instead of \"--\"");
        }
        state_ = State::kEpilogue;
        *used = i;
        return Status::Ok();
      case State::kPadding:
        if (c == '\r') {
          state_ = State::kBoundaryLineFeed;
        } else if (!IsSpace(c)) {
          return Status::InvalidArgument("a boundary line has " + QuoteChar(c) +
                                         " after the boundary");
        }
        break;
      case State::kBoundaryLineFeed:
        if (c != '\n') {
          return Status::InvalidArgument("a boundary line ends with a CR not followed by LF");
        }
        *used = i;
        return StartPart();
      default:
        CHECK(false);
    }
  }
  *used = i;
  return Status::Ok();
}

Status MultipartParser::StartPart() {
  if (parts_ == limits_.max_parts) {
    return Status::ResourceExhausted("the multipart body has more than " +
                                     std::to_string(limits_.max_parts) + " parts");
  }
  ++parts_;
  // The boundary line's CRLF starts the block, so that a part without headers ends it at once.
  headers_ = "\r\n";
  header_scan_ = 0;
  state_ = State::kHeaders;
  return Status::Ok();
}

Status MultipartParser::ConsumeHeaders(std::string_view data, size_t* used) {
  // headers_ is the leading CRLF, the header lines, and the empty line's CRLF; it never grows
  // past that, so an empty line found in it is always within the limit.
  const size_t most = limits_.max_header_bytes + 4;
  const size_t old_size = headers_.size();
  headers_.append(data.substr(0, most - old_size));
  size_t end = headers_.find("\r\n\r\n", header_scan_);
  size_t checked_end = end == std::string::npos ? headers_.size() : end + 4;
  for (size_t k = std::max<size_t>(old_size, 2); k < checked_end; ++k) {
    // Caught here, a client that ends lines with LF alone gets a message that says so rather
    // than one about the size limit.
    if (headers_[k] == '\n' && headers_[k - 1] != '\r') {
      return Status::InvalidArgument("a part's header lines end with a bare LF instead of CRLF");
    }
  }
  if (end == std::string::npos) {
    if (headers_.size() == most) {
      return Status::ResourceExhausted("a part's headers are larger than the limit of " +
                                       std::to_string(limits_.max_header_bytes) + " bytes");
    }
    header_scan_ = headers_.size() - 3;
    *used = data.size();
    return Status::Ok();
  }
  *used = end + 4 - old_size;
  std::string block = end == 0 ? std::string() : headers_.substr(2, end - 2);
  headers_.clear();
  headers_.shrink_to_fit();
  RETURN_IF_ERROR(ParseHeaders(block));
  state_ = State::kBody;
  matched_ = 0;
  return Status::Ok();
}

Status MultipartParser::ParseHeaders(std::string_view block) {
  // Lines, with obsolete folding (a line starting with a space continues the one before).
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= block.size() && !block.empty()) {
    size_t end = block.find("\r\n", start);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(start, end - start);
    for (char c : line) {
      auto byte = static_cast<unsigned char>(c);
      if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
        return Status::InvalidArgument("a part's headers contain the control character " +
                                       QuoteChar(c));
      }
    }
    if (!line.empty() && IsSpace(line.front())) {
      if (lines.empty()) {
        return Status::InvalidArgument("a part's first header line starts with a space");
      }
      lines.back() += ' ';
      lines.back() += TrimSpace(line);
    } else {
      lines.emplace_back(line);
    }
    start = end + 2;
  }

  PartHeaders headers;
  bool has_disposition = false;
  bool has_type = false;
  for (const std::string& line : lines) {
    size_t colon = line.find(':');
    std::string_view name = std::string_view(line).substr(0, colon);
    if (colon == std::string::npos || name.empty() ||
        !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return Status::InvalidArgument("a part's header line is not \"Name: value\": " + Quote(line));
    }
    std::string_view value = TrimSpace(std::string_view(line).substr(colon + 1));
    std::string lower_name = Lower(name);
    if (lower_name == "content-disposition") {
      if (has_disposition) {
        return Status::InvalidArgument("a part has two Content-Disposition headers");
      }
      has_disposition = true;
      RETURN_IF_ERROR(ParseContentDisposition(value, &headers));
    } else if (lower_name == "content-type") {
      if (has_type) return Status::InvalidArgument("a part has two Content-Type headers");
      has_type = true;
      headers.content_type = value;
    }
  }
  if (!has_disposition) {
    return Status::InvalidArgument("a part has no Content-Disposition header");
  }
  if (callbacks_.on_part_begin) return callbacks_.on_part_begin(headers);
  return Status::Ok();
}

Status MultipartParser::Deliver(std::string_view data) {
  if (data.empty() || !callbacks_.on_part_data) return Status::Ok();
  return callbacks_.on_part_data(data);
}

Status MultipartParser::Fail(Status status) {
  state_ = State::kFailed;
  failure_ = std::move(status);
  return failure_;
}

}  // namespace pycell::files
