#include "server/upload_body.h"

#include <memory>
#include <vector>

#include "files/multipart.h"
#include "server/overlapped_writer.h"

namespace pycell::server {
namespace {

// Reads the whole body, two buffers in turn, handing each piece to `feed`, whose writes go
// through `writer`: the next piece is read from the network while the last one is hashed and
// written.
Status PumpBody(BodyReader* reader, OverlappedWriter& writer,
                const std::function<Status(std::string_view)>& feed) {
  std::vector<char> buffers[2] = {std::vector<char>(1 << 20), std::vector<char>(1 << 20)};
  Status status = [&]() -> Status {
    for (int current = 0;; current ^= 1) {
      ASSIGN_OR_RETURN(size_t n, reader->Read(buffers[current].data(), buffers[current].size()));
      // The other buffer's writes must be done before it is read into, next turn.
      RETURN_IF_ERROR(writer.Drain());
      if (n == 0) return Status::Ok();
      RETURN_IF_ERROR(feed(std::string_view(buffers[current].data(), n)));
    }
  }();
  // Whatever ended the loop, no queued write may outlive the buffers it points into.
  // (Regression: a refused multipart body returned here with writes still queued; ASan caught
  // the writer's thread reading freed memory.)
  Status drained = writer.Drain();
  return status.ok() ? drained : status;
}

Result<ReceivedUpload> Receive(service::Service& service, Request& request,
                               const UploadRules& rules) {
  const auth::Caller& caller = request.caller;
  auto name_of = [&](const std::string& sent) -> Result<std::string> {
    return rules.name_of ? rules.name_of(sent) : Result<std::string>(sent);
  };
  const std::string& content_type = request.Header("content-type");
  std::unique_ptr<service::Upload> upload;
  ReceivedUpload received;
  OverlappedWriter writer([&upload](std::string_view data) { return upload->Write(data); });
  if (content_type.rfind("multipart/", 0) == 0) {
    ASSIGN_OR_RETURN(std::string boundary,
                     files::MultipartParser::BoundaryFromContentType(content_type));
    bool in_file = false;
    files::MultipartCallbacks callbacks;
    callbacks.on_part_begin = [&](const files::PartHeaders& part) -> Status {
      in_file = part.name == "file";
      if (!in_file) return Status::Ok();
      if (upload) return Status::InvalidArgument("send one part named \"file\" per upload");
      if (!part.has_filename || part.filename.empty()) {
        return Status::InvalidArgument(
            "the \"file\" part needs a filename in its Content-Disposition");
      }
      ASSIGN_OR_RETURN(received.name, name_of(part.filename));
      ASSIGN_OR_RETURN(upload, service.BeginUpload(caller, received.name));
      return Status::Ok();
    };
    callbacks.on_part_data = [&](std::string_view data) -> Status {
      if (in_file) writer.Write(data);
      return Status::Ok();
    };
    callbacks.on_part_end = [&]() -> Status {
      in_file = false;
      return Status::Ok();
    };
    files::MultipartParser parser(boundary, std::move(callbacks));
    RETURN_IF_ERROR(PumpBody(request.body_reader, writer,
                             [&](std::string_view piece) { return parser.Feed(piece); }));
    RETURN_IF_ERROR(parser.Finish());
    if (!upload) {
      return Status::InvalidArgument(
          "the multipart body has no part named \"file\"; send the file as the form field "
          "\"file\"");
    }
    ASSIGN_OR_RETURN(received.file, upload->Finish());
    return received;
  }
  const std::string& filename = request.Query("filename");
  if (!rules.allow_raw) {
    return Status::InvalidArgument("send the file as multipart/form-data in the field \"file\"");
  }
  if (filename.empty()) {
    return Status::InvalidArgument(
        "send the file as multipart/form-data (field \"file\") or as the raw body with "
        "?filename=NAME");
  }
  ASSIGN_OR_RETURN(received.name, name_of(filename));
  ASSIGN_OR_RETURN(upload, service.BeginUpload(caller, received.name));
  RETURN_IF_ERROR(PumpBody(request.body_reader, writer, [&](std::string_view piece) {
    writer.Write(piece);
    return Status::Ok();
  }));
  ASSIGN_OR_RETURN(received.file, upload->Finish());
  return received;
}

}  // namespace

Result<ReceivedUpload> ReceiveUpload(service::Service& service, Request& request,
                                     const UploadRules& rules) {
  auto received = Receive(service, request, rules);
  Status s = received.status();
  if (s.IsResourceExhausted() && s.reason().empty()) return s.WithReason("payload_too_large");
  return received;
}

}  // namespace pycell::server
