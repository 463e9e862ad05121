// pycell exec [--session ID] [FILE | -] [--timeout S] [--out DIR] [--keep] [--file PATH]...:
// runs a cell on the server, printing its output as Server-Sent Events bring it; without
// --session in a session of its own, ended afterwards (unless --keep).
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>

#include "cli/client_common.h"
#include "cli/commands.h"

namespace pycell::cli {
namespace {

// How a streamed display or result reads in a terminal: its text, or "[type, N bytes]".
std::string DescribeOutput(const Json& output) {
  const Json& data = output.contains("data") ? output["data"] : Json::object();
  for (const char* image : {"image/png", "image/jpeg", "image/gif"}) {
    if (data.contains(image) && data[image].is_string()) {
      return "[" + std::string(image) + ", " +
             std::to_string(Base64Decode(data[image].get<std::string>()).size()) + " bytes]";
    }
  }
  if (data.contains("image/svg+xml") && data["image/svg+xml"].is_string()) {
    return "[image/svg+xml, " + std::to_string(data["image/svg+xml"].get<std::string>().size()) +
           " bytes]";
  }
  if (data.contains("text/plain") && data["text/plain"].is_string()) {
    return data["text/plain"].get<std::string>();
  }
  if (data.empty() || !data.is_object()) return "[empty output]";
  const Json& value = data.begin().value();
  return "[" + data.begin().key() + ", " +
         std::to_string(value.is_string() ? value.get<std::string>().size() : Dump(value).size()) +
         " bytes]";
}

// Writes the record's images as output-<count>-<n>.png/.svg (as `pycell run --out` names them)
// and downloads each artifact into out_dir under its path below /mnt/data. Prints a line per
// file; returns false if any could not be saved.
bool SaveOutputs(HttpClient& client, const Json& record, const std::string& out_dir) {
  bool all_saved = true;
  auto fail = [&](const std::string& what, const Status& s) {
    std::cerr << "pycell: not saved: " << what << ": " << s.message() << "\n";
    all_saved = false;
  };
  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    fail(out_dir, Status::FromErrno(out_dir));
    return false;
  }
  std::string count = std::to_string(record.value("execution_count", 0));
  int n = 0;
  for (const Json& output : record.value("outputs", Json::array())) {
    const Json& data = output.contains("data") ? output["data"] : Json::object();
    bool png = data.contains("image/png") && data["image/png"].is_string();
    bool svg = data.contains("image/svg+xml") && data["image/svg+xml"].is_string();
    if (!png && !svg) continue;
    std::string name = "output-" + count + "-" + std::to_string(++n) + (png ? ".png" : ".svg");
    std::string bytes = png ? Base64Decode(data["image/png"].get<std::string>())
                            : data["image/svg+xml"].get<std::string>();
    auto fd = OpenBelow(out_dir, name);
    Status s = fd.ok() ? WriteAll(fd->get(), bytes) : fd.status();
    if (!s.ok()) {
      fail(name, s);
      continue;
    }
    std::cerr << "saved " << out_dir << "/" << name << "\n";
  }
  for (const Json& artifact : record.value("artifacts", Json::array())) {
    std::string path = Field(artifact, "path");
    auto relative = RelativeArtifactPath(path);
    if (!relative.ok()) {
      fail(path, relative.status());
      continue;
    }
    auto fd = OpenBelow(out_dir, *relative);
    Status s = fd.ok() ? DownloadVerified(client, Field(artifact, "id"), fd->get(),
                                          Field(artifact, "sha256"), "download " + *relative)
                       : fd.status();
    if (s.reason() == "interrupted") return false;
    if (!s.ok()) {
      fail(path, s);
      continue;
    }
    std::cerr << "saved " << out_dir << "/" << *relative << "\n";
  }
  for (const Json& skipped : record.value("artifacts_skipped", Json::array())) {
    fail(Field(skipped, "path"),
         Status::Unavailable("the server kept no copy (" + Field(skipped, "reason") + ")"));
  }
  return all_saved;
}

int ExitCodeFor(const Json& record) {
  std::string status = record.value("status", std::string());
  if (status == "ok") return 0;
  if (status == "error") return kExitCellError;
  if (status == "timeout") return kExitTimeout;
  return kExitSessionEnded;
}

// Prints the end of a record (its output was streamed already): the error, a timeout, the end of
// the session.
void PrintRecordEnd(const Json& record) {
  if (record.contains("error") && record["error"].is_object()) {
    const Json& error = record["error"];
    Json traceback = error.value("traceback", Json::array());
    for (const Json& line : traceback) {
      std::cerr << (line.is_string() ? line.get<std::string>() : Dump(line)) << "\n";
    }
    if (traceback.empty()) {
      std::cerr << Field(error, "ename") << ": " << Field(error, "evalue") << "\n";
    }
  }
  std::string status = record.value("status", std::string());
  if (status == "timeout") {
    std::cerr << "pycell: the cell timed out and was " << Field(record, "timeout_action") << "\n";
  }
  if (record.contains("session_end_reason")) {
    std::cerr << "pycell: the session ended (" << Field(record, "session_end_reason") << ")\n";
  }
}

// Runs `code` in session `id`, printing output as it streams. Returns the exit code.
int ExecuteStreaming(HttpClient& client, const ClientFlags& flags, const ExecFlags& exec,
                     const std::string& id, const std::string& code) {
  Json body = {{"code", code}};
  if (exec.timeout_s > 0) body["timeout_s"] = exec.timeout_s;
  std::optional<Json> record;
  std::optional<Json> stream_error;
  auto on_event = [&](const ServerSentEvent& event) {
    Json data = Json::parse(event.data, nullptr, false);
    if (data.is_discarded()) return;
    if (event.event == "execution") {
      record = std::move(data);
    } else if (event.event == "error") {
      stream_error = data.contains("error") ? data["error"] : data;
    } else if (flags.json) {
      return;  // Only the record is printed.
    } else if (event.event == "stdout") {
      std::cout << data.value("text", std::string()) << std::flush;
    } else if (event.event == "stderr") {
      std::cerr << data.value("text", std::string()) << std::flush;
    } else if (event.event == "display" || event.event == "result") {
      std::cout << DescribeOutput(data) << "\n" << std::flush;
    }
  };
  auto response =
      client.PostJsonForEvents("/v1/sessions/" + Escape(id) + "/executions", Dump(body), on_event);
  if (!response.ok()) return Fail(Explain(response.status(), client));
  if (!response->ok()) return Fail(HttpError(*response, client));
  if (!response->body.empty() && !record) {  // A server that answered JSON instead of events.
    Json j = Json::parse(response->body, nullptr, false);
    if (j.is_object() && j.contains("status")) record = std::move(j);
  }
  if (stream_error) {
    std::string error_code = Field(*stream_error, "code");
    std::cerr << "pycell: " << Field(*stream_error, "message") << " (" << error_code << ")\n";
    return error_code.rfind("session_", 0) == 0 ? kExitSessionEnded : 1;
  }
  if (!record) {
    std::cerr << "pycell: the server closed the stream before the execution's record came\n";
    return 1;
  }
  if (flags.json) {
    std::cout << Dump(*record) << "\n" << std::flush;
  } else {
    PrintRecordEnd(*record);
  }
  int exit_code = ExitCodeFor(*record);
  if (!exec.out_dir.empty() && !SaveOutputs(client, *record, exec.out_dir) && exit_code == 0) {
    exit_code = HttpClient::cancelled() ? kExitInterrupted : 1;
  }
  return exit_code;
}

Result<std::string> ReadCode(const std::string& code_file) {
  std::string code;
  if (code_file == "-") {
    code.assign(std::istreambuf_iterator<char>(std::cin), {});
    return code;
  }
  std::ifstream in(code_file, std::ios::binary);
  if (!in) return Status::FromErrno("cannot read " + code_file);
  code.assign(std::istreambuf_iterator<char>(in), {});
  return code;
}

}  // namespace

int Exec(const ClientFlags& flags, const ExecFlags& exec) {
  auto code = ReadCode(exec.code_file);
  if (!code.ok()) return UsageError(code.status());
  for (const std::string& path : exec.files) {
    if (Status s = CheckReadableFile(path); !s.ok()) return UsageError(s.WithContext("--file"));
  }
  if (exec.timeout_s < 0) return UsageError(Status::InvalidArgument("--timeout must be ≥ 1"));
  auto connected = Connect(flags);
  if (!connected.ok()) return Fail(connected.status());
  HttpClient& client = **connected;

  std::string session_id = exec.session_id;
  std::vector<std::string> uploaded;  // Inputs this command stored for a session it made.
  int exit_code = 0;
  if (!session_id.empty()) {
    for (const std::string& path : exec.files) {
      auto placed = UploadFile(client, path, "/v1/sessions/" + Escape(session_id) + "/files");
      if (!placed.ok()) return Fail(placed.status());
    }
  } else {
    for (const std::string& path : exec.files) {
      auto file = UploadFile(client, path, "/v1/files");
      if (!file.ok()) {
        exit_code = Fail(file.status());
        break;
      }
      uploaded.push_back(Field(*file, "id"));
    }
    if (exit_code == 0) {
      Json body = Json::object();
      if (!uploaded.empty()) body["file_ids"] = uploaded;
      auto session = JsonAnswer(client.PostJson("/v1/sessions", Dump(body)), client);
      if (session.ok()) {
        session_id = Field(*session, "id");
      } else {
        exit_code = Fail(session.status());
      }
    }
  }
  if (exit_code == 0) exit_code = ExecuteStreaming(client, flags, exec, session_id, *code);

  if (exec.session_id.empty()) {
    // Clean up what this command made, even after Ctrl-C (a second one quits at once).
    bool interrupted = HttpClient::cancelled();
    HttpClient::ResumeTransfers();
    if (!session_id.empty() && exec.keep) {
      std::cerr << "pycell: kept session " << session_id << "\n";
    } else if (!session_id.empty()) {
      auto ended = JsonAnswer(client.Delete("/v1/sessions/" + Escape(session_id)), client);
      if (!ended.ok()) {
        std::cerr << "pycell: could not end " << session_id << ": " << ended.status().message()
                  << "\n";
      }
    }
    if (!exec.keep) {
      for (const std::string& id : uploaded) (void)client.Delete("/v1/files/" + Escape(id));
    }
    if (interrupted) return kExitInterrupted;
  } else if (HttpClient::cancelled()) {
    std::cerr << "pycell: interrupted; the cell may still be running in " << session_id << "\n";
  }
  return exit_code;
}

}  // namespace pycell::cli
