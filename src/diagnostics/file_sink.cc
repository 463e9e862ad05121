// The file sink: JSON lines, rotated by renaming. Before a line would take the file past
// max_bytes, path.(keep-1) is renamed path.keep (replacing it), …, path.1 path.2, path path.1,
// and a new path is started. Each step is a rename, so every event is in exactly one file at every
// moment, and a reader that opened the old file still reads it to its end. A line is never split:
// a write that fails midway is cut back to the last whole line and retried from there.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "diagnostics/sink_writer.h"

namespace pycell::diagnostics {
namespace {

class FileWriter : public SinkWriter {
 public:
  static Result<std::unique_ptr<SinkWriter>> Open(const DiagnosticSetting& setting) {
    std::unique_ptr<FileWriter> writer(new FileWriter(setting));
    size_t slash = setting.path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      RETURN_IF_ERROR(MakeDirs(setting.path.substr(0, slash), 0750));
    }
    RETURN_IF_ERROR(writer->OpenFile());
    return std::unique_ptr<SinkWriter>(std::move(writer));
  }

  Status Write(std::span<const std::string_view> events, size_t* delivered) override {
    *delivered = 0;
    if (!fd_.valid()) RETURN_IF_ERROR(OpenFile());
    std::string buffer;
    size_t in_buffer = 0;
    for (std::string_view event : events) {
      uint64_t line_bytes = event.size() + 1;
      if (size_ + buffer.size() + line_bytes > max_bytes_ && size_ + buffer.size() > 0) {
        RETURN_IF_ERROR(Append(buffer, in_buffer, delivered));
        buffer.clear();
        in_buffer = 0;
        RETURN_IF_ERROR(Rotate());
      }
      buffer.append(event);
      buffer.push_back('\n');
      ++in_buffer;
    }
    return Append(buffer, in_buffer, delivered);
  }

 private:
  explicit FileWriter(const DiagnosticSetting& setting)
      : path_(setting.path), max_bytes_(setting.max_bytes), keep_(setting.keep) {}

  Status OpenFile() {
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return Status::FromErrno("open " + path_);
    fd_ = UniqueFd(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return Status::FromErrno("fstat " + path_);
    size_ = static_cast<uint64_t>(st.st_size);
    return Status::Ok();
  }

  // Appends `lines` (`count` whole lines); on failure cuts the file back to where it was.
  Status Append(const std::string& lines, size_t count, size_t* delivered) {
    size_t written = 0;
    while (written < lines.size()) {
      ssize_t n = ::write(fd_.get(), lines.data() + written, lines.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status failed = Status::FromErrno("write " + path_, n == 0 ? ENOSPC : errno);
        if (written > 0 && ::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
          // The half line stays; start a new file rather than append to it.
          fd_.Reset();
        }
        return failed;
      }
      written += static_cast<size_t>(n);
    }
    size_ += lines.size();
    *delivered += count;
    return Status::Ok();
  }

  Status Rotate() {
    fd_.Reset();
    if (keep_ == 0) {
      if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
        return Status::FromErrno("unlink " + path_);
      }
    } else {
      for (uint32_t i = keep_ - 1; i >= 1; --i) {
        std::string from = path_ + "." + std::to_string(i);
        std::string to = path_ + "." + std::to_string(i + 1);
        if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
          return Status::FromErrno("rename " + from + " to " + to);
        }
      }
      std::string first = path_ + ".1";
      if (::rename(path_.c_str(), first.c_str()) != 0 && errno != ENOENT) {
        return Status::FromErrno("rename " + path_ + " to " + first);
      }
    }
    return OpenFile();
  }

  const std::string path_;
  const uint64_t max_bytes_;
  const uint32_t keep_;
  UniqueFd fd_;        // Invalid after a failed open or rotation: opened again at the next Write.
  uint64_t size_ = 0;  // Of the open file.
};

}  // namespace

Result<std::unique_ptr<SinkWriter>> OpenFileWriter(const DiagnosticSetting& setting) {
  return FileWriter::Open(setting);
}

}  // namespace pycell::diagnostics
