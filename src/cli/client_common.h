// What the client commands (client_commands.cc: files and sessions; client_exec.cc: exec) share:
// connecting to the server, turning its answers into JSON or into a message for a person, tables,
// a progress bar, and writing downloads to disk safely.
//
// Messages go to stderr as "pycell: …"; a server's error answer reads
// "<error.message> (<error.code>, HTTP <status>)". Single-threaded, like the commands.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace CLI {
class App;
}

namespace pycell::cli {

using Json = nlohmann::json;

inline constexpr const char* kDefaultUrl = "http://127.0.0.1:8080";
inline constexpr int kExitInterrupted = 130;  // Ctrl-C, as a shell reports it.

// The flags every client command has.
struct ClientFlags {
  std::string url;  // --url; empty: $PYCELL_URL, else http://127.0.0.1:8080.
  std::string key;  // --key; empty: see ResolveKey.
  // --data-dir, for the commands that have it: where to look for admin.key first (and, for
  // keys, projects and audit, the data dir to work on directly instead of the API).
  std::string data_dir;
  bool json = false;  // --json: print each object the server returned as one line of JSON.
};

// Registers --url, --key and --json on `command`, bound to `flags`. Every command has its own,
// bound to one shared ClientFlags: only the parsed command's options are set. (So PYCELL_URL and
// PYCELL_KEY are read when connecting, not through CLI11's envname, which would fill the options
// of every command.)
void AddClientFlags(CLI::App* command, ClientFlags* flags);

// The subcommands of a client command ("files upload", "keys create", …) and what each runs:
// Add registers one with the client flags; Run runs the one the command line chose (-1: none).
class Subcommands {
 public:
  explicit Subcommands(ClientFlags* flags) : flags_(flags) {}
  CLI::App* Add(CLI::App* parent, const char* name, const char* help, std::function<int()> run);
  int Run() const;

 private:
  ClientFlags* flags_;
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

// --- the API key ---

// Where the key comes from, first found wins: --key, $PYCELL_KEY, then the first readable,
// non-empty admin.key in --data-dir (when the command has it), $PYCELL_DATA_DIR, ./var and
// /var/lib/pycell (docs/access.md, "Bootstrap").
struct ResolvedKey {
  std::string token;  // "" when none was found: requests go without one (and get 401).
  // "--key", "PYCELL_KEY" or the admin.key path; when no key was found, what was tried.
  std::string source;
};
ResolvedKey ResolveKey(const ClientFlags& flags);

// --- talking to the server ---

// A client of the server the flags name, sending the key ResolveKey finds. Also installs the
// SIGINT handler: the first Ctrl-C stops the transfer in flight (HttpClient::CancelTransfers),
// the second quits at once.
Result<std::unique_ptr<HttpClient>> Connect(const ClientFlags& flags);

// Percent-encodes one path segment or query value.
std::string Escape(const std::string& s);
// "?a=1&b=2" from the pairs whose value is not empty.
std::string Query(std::initializer_list<std::pair<const char*, std::string>> pairs);

// A failed call worded for a person: an unreachable server says where it was looked for and how
// to start one. Other failures are returned as they are.
Status Explain(const Status& failure, const HttpClient& client);
// An error answer (4xx, 5xx) as "<message> (<code>, HTTP <status>)"; a 401 also says where the
// key sent came from, or that none was sent, where one was looked for and how to give one.
Status HttpError(const HttpResponse& response, const HttpClient& client);
// The JSON object of a 2xx answer; anything else as a failure worded for a person.
Result<Json> JsonAnswer(const Result<HttpResponse>& response, const HttpClient& client);

// Prints "pycell: <message>" to stderr; returns the exit code it deserves (1, or 130 after
// Ctrl-C). UsageError prints the same and returns kExitUsage.
int Fail(const Status& status);
int UsageError(const Status& status);

// Uploads `path` under its base name to `route` (/v1/files, or a session's files) as a raw body,
// with a progress bar on a terminal. Returns the server's object.
Result<Json> UploadFile(HttpClient& client, const std::string& path, const std::string& route);

// Streams the content of file `id` into `fd` (at its start), then reads back what was written and
// checks its SHA-256 against `expected_sha256` (a mismatch fails with "SHA-256 MISMATCH").
Status DownloadVerified(HttpClient& client, const std::string& id, int fd,
                        const std::string& expected_sha256, const std::string& label);

// --- showing objects ---

std::string Dump(const Json& j);  // One line, invalid UTF-8 replaced.
// The field as text: strings as they are, null or missing as "-", anything else as JSON.
std::string Field(const Json& object, const char* key);
std::string HumanBytes(uint64_t bytes);  // "12 B", "1.5 MiB".
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);
// "key: value" lines, for the keys the object has.
void PrintFields(const Json& object, std::initializer_list<const char*> keys);

// A one-line progress bar on stderr, drawn only when stderr is a terminal, at most 10 times a
// second. Callback() is what to hand to HttpClient (nullptr when not drawn); it must not outlive
// the bar.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar() { Finish(); }
  ProgressFn Callback();
  void Finish();  // Clears the line.

 private:
  void Draw(uint64_t done, uint64_t total);

  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

// --- files on disk ---

std::string BaseName(const std::string& path);
// OK when `path` is a regular file this process can read; for checking paths before any request.
Status CheckReadableFile(const std::string& path);
Status WriteAll(int fd, std::string_view data);
// Creates the folders of `relative` (a path below `root`, already checked to stay there) and
// opens the file for reading and writing, truncated. No link is followed below `root`: a link in
// the way is refused.
Result<UniqueFd> OpenBelow(const std::string& root, const std::string& relative);
// A /mnt/data path as a path relative to an output folder; PermissionDenied when it would leave
// it ("..", "." or empty parts, or not under /mnt/data).
Result<std::string> RelativeArtifactPath(const std::string& path);
std::string Base64Decode(const std::string& in);  // Python's base64 (no line breaks).

// --- pycell exec (client_exec.cc) ---

struct ExecFlags {
  std::string session_id;  // Empty: a new session, ended afterwards unless `keep`.
  std::string code_file = "-";
  int timeout_s = 0;  // 0: the session's default.
  std::string out_dir;
  bool keep = false;
  std::vector<std::string> files;  // Host paths to upload into /mnt/data.
};

int Exec(const ClientFlags& flags, const ExecFlags& exec);

}  // namespace pycell::cli
