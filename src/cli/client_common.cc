#include "cli/client_common.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"

namespace pycell::cli {
namespace {

// Ctrl-C: the first stops the transfer in flight (the command then cleans up), the second quits.
volatile std::sig_atomic_t g_interrupts = 0;
void OnInterrupt(int) {
  if (g_interrupts) _exit(kExitInterrupted);
  g_interrupts = 1;
  HttpClient::CancelTransfers();
}

Result<std::string> Sha256OfFd(int fd) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return Status::Internal("OpenSSL: cannot start SHA-256");
  }
  std::vector<char> buffer(1 << 20);
  for (off_t offset = 0;;) {
    ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("reading back what was written");
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n));
    offset += n;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

// The first line of `path` without surrounding white space; "" when it cannot be read.
std::string ReadKeyFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "re");
  if (!file) return "";
  char buffer[512];
  size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, file);
  std::fclose(file);
  std::string text(buffer, n);
  text = text.substr(0, text.find('\n'));
  auto blank = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!text.empty() && blank(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && blank(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

}  // namespace

void AddClientFlags(CLI::App* command, ClientFlags* flags) {
  command->add_option(
      "--url", flags->url,
      std::string("the server's URL (default: $PYCELL_URL, else ") + kDefaultUrl + ")");
  command->add_option("--key", flags->key,
                      "the API key (default: $PYCELL_KEY, else the admin.key of the data dir)");
  command->add_flag("--json", flags->json, "print the server's JSON objects, one per line");
}

CLI::App* Subcommands::Add(CLI::App* parent, const char* name, const char* help,
                           std::function<int()> run) {
  CLI::App* command = parent->add_subcommand(name, help);
  AddClientFlags(command, flags_);
  commands_.emplace_back(command, std::move(run));
  return command;
}

int Subcommands::Run() const {
  for (const auto& [command, run] : commands_) {
    if (command->parsed()) return run();
  }
  return -1;
}

// --- the API key ------------------------------------------------------------------------------

ResolvedKey ResolveKey(const ClientFlags& flags) {
  if (!flags.key.empty()) return {flags.key, "--key"};
  const char* env = std::getenv("PYCELL_KEY");
  if (env && *env) return {env, "PYCELL_KEY"};
  std::vector<std::string> dirs;
  if (!flags.data_dir.empty()) dirs.push_back(flags.data_dir);
  const char* env_dir = std::getenv("PYCELL_DATA_DIR");
  if (env_dir && *env_dir) dirs.push_back(env_dir);
  dirs.push_back("./var");
  dirs.push_back("/var/lib/pycell");
  std::string tried;
  for (std::string dir : dirs) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string path = dir + "/admin.key";
    std::string token = ReadKeyFile(path);
    if (!token.empty()) return {token, path};
    tried += (tried.empty() ? "" : " or ") + path;
  }
  return {"", "no --key, no PYCELL_KEY, no readable " + tried};
}

// --- talking to the server --------------------------------------------------------------------

Result<std::unique_ptr<HttpClient>> Connect(const ClientFlags& flags) {
  std::string url = flags.url;
  if (url.empty() && std::getenv("PYCELL_URL")) url = std::getenv("PYCELL_URL");
  if (url.empty()) url = kDefaultUrl;
  if (url.find("://") == std::string::npos) url = "http://" + url;
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(url));
  ResolvedKey key = ResolveKey(flags);
  for (unsigned char c : key.token) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("the key from " + key.source +
                                     " holds a control character; a key reads pyc_…");
    }
  }
  client->SetBearerToken(std::move(key.token), std::move(key.source));
  return client;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Percent-encodes one path segment or query value.
std::string Escape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// "?a=1&b=2" from the pairs whose value is not empty.
std::string Query(std::initializer_list<std::pair<const char*, std::string>> pairs) {
  std::string q;
  for (const auto& [key, value] : pairs) {
    if (value.empty()) continue;
    q += (q.empty() ? "?" : "&") + std::string(key) + "=" + Escape(value);
  }
  return q;
}

// A failed call worded for the person at the terminal: an unreachable server says where it was
// looked for and how to start one; an error answer says "<message> (<code>, HTTP <status>)".
Status Explain(const Status& failure, const HttpClient& client) {
  if (failure.reason() == "unreachable") {
    return Status::Unavailable("cannot reach a pycell server at " + client.base_url() + " (" +
                               failure.message() +
                               "). Is it running? Start one with `pycell serve`, or point --url "
                               "(or PYCELL_URL) at it.")
        .WithReason("unreachable");
  }
  return failure;
}

Status HttpError(const HttpResponse& response, const HttpClient& client) {
  Json body = Json::parse(response.body, nullptr, false);
  std::string status = "HTTP " + std::to_string(response.status);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const Json& error = body["error"];
    std::string message = error.value("message", std::string("(no message)")) + " (" +
                          error.value("code", std::string("unknown")) + ", " + status + ")";
    if (response.status == 401) {
      message += client.has_token() ? "; the key sent came from " + client.token_source()
                                    : "; no key was sent (" + client.token_source() +
                                          "): pass --key KEY or set PYCELL_KEY";
    }
    return Status::Unavailable(message);
  }
  std::string text = response.body.substr(0, 200);
  return Status::Unavailable(status + (text.empty() ? "" : ": " + text) +
                             " (is this a pycell server?)");
}

// The JSON object of a 2xx answer; anything else as an explained failure.
Result<Json> JsonAnswer(const Result<HttpResponse>& response, const HttpClient& client) {
  if (!response.ok()) return Explain(response.status(), client);
  if (!response->ok()) return HttpError(response.value(), client);
  Json j = Json::parse(response->body, nullptr, false);
  if (!j.is_object()) {
    return Status::Unavailable("the server at " + client.base_url() +
                               " did not answer a JSON object; is it a pycell server?");
  }
  return j;
}

int Fail(const Status& status) {
  std::cerr << "pycell: " << status.message() << "\n";
  return status.reason() == "interrupted" ? kExitInterrupted : 1;
}

int UsageError(const Status& status) {
  std::cerr << "pycell: " << status.message() << "\n";
  return kExitUsage;
}

// --- showing objects --------------------------------------------------------------------------

std::string Field(const Json& object, const char* key) {
  if (!object.contains(key) || object[key].is_null()) return "-";
  const Json& v = object[key];
  return v.is_string() ? v.get<std::string>() : Dump(v);
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  auto print = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c) {
      std::cout << row[c];
      if (c + 1 < row.size()) std::cout << std::string(width[c] - row[c].size() + 2, ' ');
    }
    std::cout << "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
}

void PrintFields(const Json& object, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (object.contains(key)) std::cout << key << ": " << Field(object, key) << "\n";
  }
}

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), enabled_(isatty(2)) {}

ProgressFn ProgressBar::Callback() {
  if (!enabled_) return nullptr;
  return [this](uint64_t done, uint64_t total) { Draw(done, total); };
}

void ProgressBar::Finish() {
  if (drawn_) std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

void ProgressBar::Draw(uint64_t done, uint64_t total) {
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  std::string line = "\r" + label_ + "  ";
  if (total > 0) {
    int percent = static_cast<int>(100 * std::min(done, total) / total);
    int filled = percent * 30 / 100;
    line += "[" + std::string(static_cast<size_t>(filled), '#') +
            std::string(static_cast<size_t>(30 - filled), '.') + "] " + std::to_string(percent) +
            "%  " + HumanBytes(done) + " / " + HumanBytes(total);
  } else {
    line += HumanBytes(done);
  }
  std::cerr << line << "\033[K" << std::flush;
}

// --- files on disk ----------------------------------------------------------------------------

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// A regular file this process can read; for checking paths before any request is sent.
Status CheckReadableFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(path);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  if (::access(path.c_str(), R_OK) != 0) return Status::FromErrno(path);
  return Status::Ok();
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Creates the folders of `relative` (a path below `root`, already checked to stay there) and opens
// the file for writing. No link is followed below `root`: a link in the way is refused.
Result<UniqueFd> OpenBelow(const std::string& root, const std::string& relative) {
  std::string path = root;
  size_t start = 0;
  for (size_t slash; (slash = relative.find('/', start)) != std::string::npos; start = slash + 1) {
    path += "/" + relative.substr(start, slash - start);
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(path);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno(path);
    if (!S_ISDIR(st.st_mode)) return Status::PermissionDenied(path + " is not a folder");
  }
  path += "/" + relative.substr(start);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(path);
  return fd;
}

// A /mnt/data path as a path relative to an output folder, or an error when it would leave it.
Result<std::string> RelativeArtifactPath(const std::string& path) {
  const std::string prefix = "/mnt/data/";
  if (path.rfind(prefix, 0) != 0) return Status::PermissionDenied(path + " is outside /mnt/data");
  std::string relative = path.substr(prefix.size());
  size_t start = 0;
  for (;;) {
    size_t slash = relative.find('/', start);
    std::string part = relative.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return Status::PermissionDenied(path + " would be written outside the output folder");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return relative;
}

std::string Base64Decode(const std::string& in) {
  std::string out(3 * (in.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return "";
  size_t padding = 0;
  for (size_t i = in.size(); i > 0 && in[i - 1] == '=' && padding < 2; --i) ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// --- transfers --------------------------------------------------------------------------------

Result<Json> UploadFile(HttpClient& client, const std::string& path, const std::string& route) {
  std::string name = BaseName(path);
  ProgressBar bar("upload " + name);
  auto response = client.PostFile(route + "?filename=" + Escape(name), path, bar.Callback());
  bar.Finish();
  auto file = JsonAnswer(response, client);
  if (!file.ok() && file.status().reason() != "unreachable") {
    return file.status().WithContext(path);
  }
  return file;
}

// Streams the content of file `id` into `fd` (at its start), then reads back what was written and
// checks its SHA-256 against `expected_sha256`.
Status DownloadVerified(HttpClient& client, const std::string& id, int fd,
                        const std::string& expected_sha256, const std::string& label) {
  ProgressBar bar(label);
  auto response = client.Download(
      "/v1/files/" + Escape(id) + "/content",
      [fd](std::string_view chunk) { return WriteAll(fd, chunk); }, bar.Callback());
  bar.Finish();
  if (!response.ok()) return Explain(response.status(), client);
  if (!response->ok()) return HttpError(*response, client);
  ASSIGN_OR_RETURN(std::string actual, Sha256OfFd(fd));
  if (actual != expected_sha256) {
    return Status::Internal("SHA-256 MISMATCH for " + id + ": the server says " + expected_sha256 +
                            ", the bytes received hash to " + actual);
  }
  return Status::Ok();
}

}  // namespace pycell::cli
