// pycell evidence export|verify (docs/evidence.md): signed evidence bundles.
//
//   pycell evidence export (--session ID | --from T --to T) [--with-files] --out FILE
//       GET /v1/evidence (an admin or auditor key) into a hidden file beside FILE, which takes
//       FILE's name once whole; then verifies it as `verify` does and says whose key signed it.
//   pycell evidence verify FILE [--pubkey PEM] [--json]
//       Offline: the signature, every member's size and SHA-256 against the manifest, file
//       contents against their names, and the audit chain segment. With --pubkey, that the bundle
//       is signed by that key; without, the key is only self-asserted and its fingerprint is
//       printed. Exit 0 valid, 1 invalid, 2 usage error or unreadable bundle.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/client_common.h"
#include "cli/commands.h"
#include "evidence/verify.h"

namespace pycell::cli {
namespace {

struct EvidenceFlags {
  std::string session;
  std::string from;
  std::string to;
  bool with_files = false;
  std::string out;
  std::string bundle;  // verify: the bundle's path.
  std::string pubkey;  // verify: the expected key's PEM file.
};

void PrintVerification(const std::string& path, const evidence::Verification& v) {
  if (!v.created_at.empty()) {
    std::cout << path << ": created " << v.created_at << " by " << v.exported_by << " on pycell "
              << v.server_version << "; scope " << v.scope << "\n";
  }
  for (const std::string& line : v.ok) std::cout << "OK    " << line << "\n";
  for (const evidence::Problem& p : v.problems) {
    std::cout << "FAIL  " << (p.member.empty() ? std::string("(archive)") : p.member);
    if (p.seq > 0) std::cout << " (event " << p.seq << ")";
    std::cout << ": " << p.message << "\n";
  }
  if (v.valid()) {
    std::cout << "VALID: " << path << " (signed by key sha256 " << v.fingerprint
              << (v.key_expected ? ", the expected key" : ", self-asserted") << ")\n";
  } else {
    std::cout << "INVALID: " << path << ": " << v.problems.size() << " problem"
              << (v.problems.size() == 1 ? "" : "s") << "\n";
  }
}

int Verify(const ClientFlags& flags, const EvidenceFlags& e) {
  evidence::VerifyOptions options;
  if (!e.pubkey.empty()) {
    std::ifstream in(e.pubkey, std::ios::binary);
    if (!in) return UsageError(Status::InvalidArgument("cannot read --pubkey " + e.pubkey));
    std::stringstream text;
    text << in.rdbuf();
    options.expected_public_key_pem = text.str();
  }
  auto verification = evidence::VerifyBundle(e.bundle, options);
  if (!verification.ok()) {
    const Status& s = verification.status();
    return UsageError(Status::InvalidArgument(
        (options.expected_public_key_pem && s.message().rfind("the expected key", 0) == 0
             ? "--pubkey " + e.pubkey + ": "
             : "cannot read the bundle: ") +
        s.message()));
  }
  if (flags.json) {
    std::cout << Dump(verification->ToJson()) << "\n";
  } else {
    PrintVerification(e.bundle, *verification);
  }
  return verification->valid() ? 0 : 1;
}

int Export(const ClientFlags& flags, const EvidenceFlags& e) {
  bool period = !e.from.empty() || !e.to.empty();
  if (e.session.empty() == !period || (period && (e.from.empty() || e.to.empty()))) {
    return UsageError(Status::InvalidArgument("give --session ID, or --from T and --to T"));
  }
  if (e.out.empty()) return UsageError(Status::InvalidArgument("--out FILE is required"));
  auto client = Connect(flags);
  if (!client.ok()) return Fail(client.status());
  std::string query = Query({{"session", e.session},
                             {"from", e.from},
                             {"to", e.to},
                             {"with_files", e.with_files ? "true" : ""}});
  // Into a hidden file beside --out that takes its name once complete: a failed export leaves
  // no partial file that looks whole.
  size_t slash = e.out.rfind('/');
  std::string temp = (slash == std::string::npos ? std::string() : e.out.substr(0, slash + 1)) +
                     ".pycell-evidence-XXXXXX";
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.valid()) return Fail(Status::FromErrno("creating a file beside " + e.out));
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd.get(), 0666 & ~mask);
  auto discard = [&](const Status& s) {
    ::unlink(temp.c_str());
    return Fail(s);
  };
  ProgressBar bar("evidence");
  auto response = (*client)->Download(
      "/v1/evidence" + query, [&](std::string_view chunk) { return WriteAll(fd.get(), chunk); },
      bar.Callback());
  bar.Finish();
  if (!response.ok()) return discard(Explain(response.status(), **client));
  if (!response->ok()) return discard(HttpError(*response, **client));
  if (::fsync(fd.get()) != 0) return discard(Status::FromErrno("writing " + temp));
  fd.Reset();
  if (::rename(temp.c_str(), e.out.c_str()) != 0) {
    return discard(Status::FromErrno("renaming " + temp + " to " + e.out));
  }
  struct stat st {};
  ::stat(e.out.c_str(), &st);
  // What arrived is checked at once (self-asserted: the key it carries).
  auto verification = evidence::VerifyBundle(e.out);
  if (!verification.ok()) return Fail(verification.status().WithContext("reading " + e.out));
  if (flags.json) {
    std::cout << Dump({{"object", "evidence_export"},
                       {"path", e.out},
                       {"bytes", st.st_size},
                       {"fingerprint", verification->fingerprint},
                       {"valid", verification->valid()},
                       {"problems", verification->ToJson()["problems"]}})
              << "\n";
  } else if (verification->valid()) {
    std::cout << "wrote " << e.out << " (" << HumanBytes(static_cast<uint64_t>(st.st_size))
              << "), signed by key sha256 " << verification->fingerprint
              << "; check it with `pycell evidence verify " << e.out
              << " --pubkey <the server's key>`\n";
  } else {
    PrintVerification(e.out, *verification);
  }
  return verification->valid() ? 0 : 1;
}

}  // namespace

std::function<int()> RegisterEvidenceCommand(CLI::App& app) {
  struct State {
    ClientFlags client;
    EvidenceFlags evidence;
    Subcommands subcommands{&client};
    CLI::App* verify = nullptr;
  };
  auto state = std::make_shared<State>();
  State& s = *state;
  CLI::App* evidence = app.add_subcommand(
      "evidence", "signed evidence bundles: export from a server, verify offline");
  evidence->require_subcommand(1);
  CLI::App* exp = s.subcommands.Add(evidence, "export",
                                    "write a signed evidence bundle of a session or a period",
                                    [&s] { return Export(s.client, s.evidence); });
  exp->add_option("--session", s.evidence.session, "the session (from its creation to its end)");
  exp->add_option("--from", s.evidence.from,
                  "the period's start (RFC 3339, or a date: 2026-01-31)");
  exp->add_option("--to", s.evidence.to, "the period's end, exclusive");
  exp->add_flag("--with-files", s.evidence.with_files, "include file contents as files/<sha256>");
  exp->add_option("--out", s.evidence.out, "the bundle to write (.tar.gz)")->required();
  // verify is offline: no server flags.
  s.verify = evidence->add_subcommand(
      "verify",
      "verify a bundle offline: signature, hashes, audit chain segment; exit 0 valid, "
      "1 invalid, 2 unreadable");
  s.verify->add_option("bundle", s.evidence.bundle, "the bundle (.tar.gz)")->required();
  s.verify->add_option("--pubkey", s.evidence.pubkey,
                       "the server's public key (PEM) the bundle must be signed with");
  s.verify->add_flag("--json", s.client.json, "print the result as one JSON object");
  return [state] {
    if (state->verify->parsed()) return Verify(state->client, state->evidence);
    return state->subcommands.Run();
  };
}

}  // namespace pycell::cli
