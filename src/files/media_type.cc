#include "files/media_type.h"

#include <magic.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "common/logging.h"

namespace pycell::files {
namespace {

// What a file's bytes must look like for its extension.
enum class Content {
  kText,  // Any text encoding libmagic recognises, no NUL bytes (UTF-16/32 with a BOM aside).
  kZip,   // A ZIP container: zip itself and the OOXML formats.
  kOle,   // An OLE2 compound file: the old Office formats.
  kPdf,
  kPng,
  kJpeg,
  kGif,
  kTar,
  kParquet,
  kPickle,
  kAnything,  // Output formats the name alone decides (never accepted as uploads).
};

struct FileType {
  std::string_view extension;  // Lower case, no dot.
  std::string_view media_type;
  Content content;
  bool upload;  // In the accepted list (Foundry's code interpreter types, plus xls and parquet).
};

// clang-format off
constexpr FileType kFileTypes[] = {
    {"c", "text/x-c", Content::kText, true},
    {"cc", "text/x-c++", Content::kText, true},
    {"cpp", "text/x-c++", Content::kText, true},
    {"cs", "text/x-csharp", Content::kText, true},
    {"css", "text/css", Content::kText, true},
    {"csv", "text/csv", Content::kText, true},
    {"doc", "application/msword", Content::kOle, true},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     Content::kZip, true},
    {"gif", "image/gif", Content::kGif, true},
    {"go", "text/x-go", Content::kText, true},
    {"h", "text/x-c", Content::kText, true},
    {"hpp", "text/x-c++", Content::kText, true},
    {"htm", "text/html", Content::kText, true},
    {"html", "text/html", Content::kText, true},
    {"ipynb", "application/x-ipynb+json", Content::kText, true},
    {"java", "text/x-java", Content::kText, true},
    {"jpeg", "image/jpeg", Content::kJpeg, true},
    {"jpg", "image/jpeg", Content::kJpeg, true},
    {"js", "text/javascript", Content::kText, true},
    {"json", "application/json", Content::kText, true},
    {"jsonl", "application/jsonl", Content::kText, true},
    {"log", "text/plain", Content::kText, true},
    {"md", "text/markdown", Content::kText, true},
    {"parquet", "application/vnd.apache.parquet", Content::kParquet, true},
    {"pdf", "application/pdf", Content::kPdf, true},
    {"php", "text/x-php", Content::kText, true},
    {"pkl", "application/octet-stream", Content::kPickle, true},
    {"png", "image/png", Content::kPng, true},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     Content::kZip, true},
    {"py", "text/x-python", Content::kText, true},
    {"r", "text/x-r", Content::kText, true},
    {"rb", "text/x-ruby", Content::kText, true},
    {"sh", "application/x-sh", Content::kText, true},
    {"sql", "application/sql", Content::kText, true},
    {"tar", "application/x-tar", Content::kTar, true},
    {"tex", "text/x-tex", Content::kText, true},
    {"toml", "application/toml", Content::kText, true},
    {"ts", "application/typescript", Content::kText, true},
    {"tsv", "text/tab-separated-values", Content::kText, true},
    {"txt", "text/plain", Content::kText, true},
    {"xls", "application/vnd.ms-excel", Content::kOle, true},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Content::kZip,
     true},
    {"xml", "application/xml", Content::kText, true},
    {"yaml", "application/yaml", Content::kText, true},
    {"yml", "application/yaml", Content::kText, true},
    {"zip", "application/zip", Content::kZip, true},
    // Outputs only: what cells commonly write besides the above.
    {"7z", "application/x-7z-compressed", Content::kAnything, false},
    {"arrow", "application/vnd.apache.arrow.file", Content::kAnything, false},
    {"bmp", "image/bmp", Content::kAnything, false},
    {"bz2", "application/x-bzip2", Content::kAnything, false},
    {"feather", "application/vnd.apache.arrow.file", Content::kAnything, false},
    {"gz", "application/gzip", Content::kAnything, false},
    {"h5", "application/x-hdf5", Content::kAnything, false},
    {"mp3", "audio/mpeg", Content::kAnything, false},
    {"mp4", "video/mp4", Content::kAnything, false},
    {"npz", "application/zip", Content::kZip, false},
    {"pickle", "application/octet-stream", Content::kPickle, false},
    {"ppt", "application/vnd.ms-powerpoint", Content::kOle, false},
    {"svg", "image/svg+xml", Content::kText, false},
    {"tif", "image/tiff", Content::kAnything, false},
    {"tiff", "image/tiff", Content::kAnything, false},
    {"wav", "audio/wav", Content::kAnything, false},
    {"webp", "image/webp", Content::kAnything, false},
    {"xz", "application/x-xz", Content::kAnything, false},
};
// clang-format on

const std::string& AcceptedList() {
  static const std::string* list = [] {
    auto* joined = new std::string;
    for (const FileType& type : kFileTypes) {
      if (!type.upload) continue;
      if (!joined->empty()) *joined += ", ";
      *joined += type.extension;
    }
    return joined;
  }();
  return *list;
}

const FileType* FindType(std::string_view extension) {
  for (const FileType& type : kFileTypes) {
    if (type.extension == extension) return &type;
  }
  return nullptr;
}

// The lower-cased extension of the name's last component; "" for "README" or ".bashrc".
std::string Extension(std::string_view filename) {
  size_t slash = filename.find_last_of("/\\");
  if (slash != std::string_view::npos) filename.remove_prefix(slash + 1);
  size_t dot = filename.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "";
  std::string extension(filename.substr(dot + 1));
  for (char& c : extension) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return extension;
}

// A client's file name for a message: control characters, quotes and backslashes escaped, cut
// short on a character boundary.
std::string QuoteName(std::string_view name) {
  constexpr size_t kMaxBytes = 100;
  std::string quoted = "\"";
  size_t end = name.size();
  if (end > kMaxBytes) {
    end = kMaxBytes;
    while (end > 0 && (static_cast<unsigned char>(name[end]) & 0xc0) == 0x80) --end;
  }
  for (char c : name.substr(0, end)) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '"' || c == '\\') {
      static constexpr char kDigits[] = "0123456789abcdef";
      quoted += "\\x";
      quoted.push_back(kDigits[byte >> 4]);
      quoted.push_back(kDigits[byte & 0xf]);
    } else {
      quoted.push_back(c);
    }
  }
  if (end < name.size()) quoted += "...";
  return quoted + "\"";
}

// libmagic's view of some bytes; both fields empty when libmagic is unusable.
struct Sniffed {
  std::string media_type;  // "text/plain", "application/zip", …
  std::string charset;     // "us-ascii", "utf-8", …, or "binary".
};

// One libmagic handle per thread: a magic_t may not be shared between threads, and loading the
// database once per thread is cheaper than a lock on every upload.
class MagicHandle {
 public:
  MagicHandle() : cookie_(magic_open(MAGIC_MIME_TYPE | MAGIC_MIME_ENCODING)) {
    if (cookie_ != nullptr && magic_load(cookie_, nullptr) != 0) {
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) {
        const char* error = magic_error(cookie_);
        LOG_WARN(
            "libmagic cannot load its database ({}); media types are judged by signatures "
            "and file names only",
            error != nullptr ? error : "no reason given");
      }
      magic_close(cookie_);
      cookie_ = nullptr;
    }
  }
  ~MagicHandle() {
    if (cookie_ != nullptr) magic_close(cookie_);
  }
  MagicHandle(const MagicHandle&) = delete;
  MagicHandle& operator=(const MagicHandle&) = delete;

  Sniffed Sniff(std::string_view bytes) {
    Sniffed sniffed;
    if (cookie_ == nullptr) return sniffed;
    const char* answer = magic_buffer(cookie_, bytes.data(), bytes.size());
    if (answer == nullptr) return sniffed;
    // "text/plain; charset=us-ascii"
    std::string_view text = answer;
    size_t semicolon = text.find(';');
    sniffed.media_type = text.substr(0, semicolon);
    size_t charset = text.find("charset=");
    if (charset != std::string_view::npos) sniffed.charset = text.substr(charset + 8);
    return sniffed;
  }

 private:
  magic_t cookie_;
};

Sniffed Sniff(std::string_view head) {
  // Only the start matters, and a caller that passes a whole file should not make libmagic read
  // all of it.
  constexpr size_t kMaxSniffBytes = 64 * 1024;
  thread_local MagicHandle handle;
  return handle.Sniff(head.substr(0, std::min(head.size(), kMaxSniffBytes)));
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool IsText(std::string_view head, const Sniffed& sniffed) {
  // UTF-16 and UTF-32 text is full of NUL bytes; libmagic recognises it by its BOM.
  bool has_bom = StartsWith(head, "\xff\xfe") || StartsWith(head, "\xfe\xff") ||
                 StartsWith(head, std::string_view("\x00\x00\xfe\xff", 4));
  if (has_bom && (sniffed.charset.empty() || StartsWith(sniffed.charset, "utf-16") ||
                  StartsWith(sniffed.charset, "utf-32"))) {
    return true;
  }
  if (head.find('\0') != std::string_view::npos) return false;
  if (sniffed.media_type.empty()) return true;  // No libmagic: no NUL is the best we can say.
  if (sniffed.media_type == "application/x-empty") return true;
  // libmagic's charset comes from its own text analysis (printable characters in some
  // encoding), whatever type it then guessed: JSON, a shell script and CSV all count.
  return sniffed.charset != "binary";
}

bool Agrees(Content content, std::string_view head, const Sniffed& sniffed) {
  const std::string& type = sniffed.media_type;
  switch (content) {
    case Content::kText:
      return IsText(head, sniffed);
    case Content::kZip:
      return StartsWith(head, "PK\x03\x04") || StartsWith(head, "PK\x05\x06") ||
             StartsWith(head, "PK\x07\x08") || type == "application/zip" ||
             StartsWith(type, "application/vnd.openxmlformats-officedocument.");
    case Content::kOle:
      return StartsWith(head, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") ||
             type == "application/vnd.ms-excel" || type == "application/msword" ||
             type == "application/vnd.ms-powerpoint" || type == "application/vnd.ms-office" ||
             type == "application/CDFV2" || type == "application/x-ole-storage";
    case Content::kPdf:
      return StartsWith(head, "%PDF-") || type == "application/pdf";
    case Content::kPng:
      return StartsWith(head, "\x89PNG\r\n\x1a\n") || type == "image/png";
    case Content::kJpeg:
      return StartsWith(head, "\xff\xd8\xff") || type == "image/jpeg";
    case Content::kGif:
      return StartsWith(head, "GIF87a") || StartsWith(head, "GIF89a") || type == "image/gif";
    case Content::kTar:
      // POSIX and GNU tar headers carry "ustar" at offset 257.
      return type == "application/x-tar" || (head.size() >= 262 && head.substr(257, 5) == "ustar");
    case Content::kParquet:
      return StartsWith(head, "PAR1");
    case Content::kPickle:
      // Protocol 2 and later open with PROTO (0x80) and the protocol number; libmagic has no
      // name for pickles, so any unrecognised binary is let through too.
      return (head.size() >= 2 && head[0] == '\x80' && head[1] >= 2 && head[1] <= 5) ||
             type == "application/octet-stream";
    case Content::kAnything:
      return true;
  }
  return false;
}

std::string DescribeContent(std::string_view head, const Sniffed& sniffed) {
  if (head.empty()) return "empty";
  if (!sniffed.media_type.empty()) return sniffed.media_type;
  return head.find('\0') != std::string_view::npos ? "binary data" : "not recognised";
}

}  // namespace

Result<std::string> CheckUploadType(std::string_view filename, std::string_view head) {
  std::string extension = Extension(filename);
  if (extension.empty()) {
    return Status::InvalidArgument(QuoteName(filename) +
                                   " has no file extension; accepted types: " + AcceptedList());
  }
  const FileType* type = FindType(extension);
  if (type == nullptr || !type->upload) {
    return Status::InvalidArgument("file type " + QuoteName("." + extension) +
                                   " is not accepted; accepted types: " + AcceptedList());
  }
  Sniffed sniffed = Sniff(head);
  if (!Agrees(type->content, head, sniffed)) {
    return Status::InvalidArgument(QuoteName(filename) + " does not look like " + extension +
                                   ": its content is " + DescribeContent(head, sniffed));
  }
  return std::string(type->media_type);
}

std::string GuessMediaType(std::string_view filename, std::string_view head) {
  Sniffed sniffed = Sniff(head);
  const FileType* type = FindType(Extension(filename));
  if (type != nullptr && Agrees(type->content, head, sniffed)) {
    return std::string(type->media_type);
  }
  // A name that lies, or none we know: libmagic's answer, unless it has none worth giving.
  if (!sniffed.media_type.empty() && sniffed.media_type != "application/x-empty") {
    return sniffed.media_type;
  }
  return "application/octet-stream";
}

}  // namespace pycell::files
