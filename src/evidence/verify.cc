#include "evidence/verify.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/crypto.h"
#include "common/json_reader.h"
#include "evidence/audit_segment.h"
#include "evidence/signing_key.h"

namespace pycell::evidence {

using Json = nlohmann::json;

const char* const kRequiredMembers[7] = {"config.json",  "audit.json", "executions.json",
                                         "lineage.json", "files.json", "usage.json",
                                         "metrics.txt"};

namespace {

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The members whose contents the checks read (everything but file contents, which are only
// hashed as they stream by).
bool KeepForChecks(const std::string& name) { return name.rfind(kFilesPrefix, 0) != 0; }

class Verifier {
 public:
  Verifier(const Bundle& bundle, Verification* out) : bundle_(bundle), out_(out) {}

  void Problem(std::string member, std::string message, int64_t seq = 0) {
    out_->problems.push_back({std::move(member), seq, std::move(message)});
  }
  void Ok(std::string line) { out_->ok.push_back(std::move(line)); }

  // The member's contents, or nullptr (and a problem) when it is missing or was not kept.
  const std::string* Content(const char* name) {
    const BundleMember* m = bundle_.Find(name);
    if (m == nullptr) {
      Problem(name, "missing: every bundle has it");
      return nullptr;
    }
    if (!m->content) {
      Problem(name, "too large to check (" + std::to_string(m->digest.bytes) + " bytes)");
      return nullptr;
    }
    return &*m->content;
  }

  void CheckKeyAndSignature(const std::optional<std::string>& expected_pem,
                            const std::string& expected_fingerprint) {
    const std::string* pem = Content(kPublicKeyMember);
    const std::string* manifest = Content(kManifestMember);
    const std::string* sig_text = Content(kSignatureMember);
    if (pem != nullptr) {
      auto fingerprint = PublicKeyFingerprint(*pem);
      if (!fingerprint.ok()) {
        Problem(kPublicKeyMember,
                "not an Ed25519 PEM public key: " + fingerprint.status().message());
      } else {
        out_->fingerprint = *fingerprint;
      }
    }
    if (expected_pem && !out_->fingerprint.empty()) {
      if (out_->fingerprint == expected_fingerprint) {
        Ok("key: public_key.pem is the expected key (sha256 " + expected_fingerprint + ")");
      } else {
        Problem(kPublicKeyMember, "the bundle is signed by key sha256 " + out_->fingerprint +
                                      ", not by the expected key sha256 " + expected_fingerprint);
      }
    } else if (!out_->fingerprint.empty()) {
      Ok("key: sha256 " + out_->fingerprint +
         " is self-asserted (the bundle carries it); give --pubkey with the server's key to "
         "check who signed");
    }
    if (pem == nullptr || manifest == nullptr || sig_text == nullptr || out_->fingerprint.empty()) {
      return;
    }
    std::string text = *sig_text;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    auto signature = Base64Decode(text);
    if (!signature.ok()) {
      Problem(kSignatureMember, "not a base64 signature");
      return;
    }
    Status verified = VerifySignature(*pem, *manifest, *signature);
    if (!verified.ok()) {
      Problem(kSignatureMember,
              "the signature over manifest.json does not verify with public_key.pem: "
              "manifest.json or manifest.sig was changed after signing, or another key signed it");
      return;
    }
    Ok("signature: manifest.sig is a valid Ed25519 signature of manifest.json by public_key.pem");
  }

  // Parses manifest.json; nullopt (with a problem) when it cannot be used.
  std::optional<Json> Manifest() {
    const BundleMember* m = bundle_.Find(kManifestMember);
    if (m == nullptr || !m->content) return std::nullopt;  // Reported already.
    Json manifest = Json::parse(*m->content, nullptr, false);
    if (manifest.is_discarded() || !manifest.is_object()) {
      Problem(kManifestMember, "not a JSON object");
      return std::nullopt;
    }
    if (!manifest.contains("members") || !manifest["members"].is_array()) {
      Problem(kManifestMember, "has no \"members\" list");
      return std::nullopt;
    }
    auto text = [&](const char* key) {
      auto it = manifest.find(key);
      return it != manifest.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    out_->created_at = text("created_at");
    if (manifest.contains("server") && manifest["server"].is_object()) {
      out_->server_version = manifest["server"].value("version", std::string());
    }
    if (manifest.contains("exported_by") && manifest["exported_by"].is_object()) {
      const Json& by = manifest["exported_by"];
      out_->exported_by = by.value("principal", std::string()) + " (" +
                          by.value("role", std::string()) + ", " +
                          by.value("key_id", std::string()) + ")";
    }
    if (manifest.contains("scope")) out_->scope = DumpJson(manifest["scope"]);
    return manifest;
  }

  void CheckSigner(const Json& manifest) {
    std::string named;
    if (manifest.contains("signer") && manifest["signer"].is_object()) {
      named = manifest["signer"].value("public_key_sha256", std::string());
    }
    if (!out_->fingerprint.empty() && named != out_->fingerprint) {
      Problem(kPublicKeyMember, "the manifest names signer sha256 " +
                                    (named.empty() ? std::string("(none)") : named) +
                                    ", but public_key.pem is sha256 " + out_->fingerprint);
    }
  }

  void CheckMembers(const Json& manifest) {
    std::map<std::string, MemberDigest> listed;
    size_t index = 0;
    for (const Json& entry : manifest["members"]) {
      ++index;
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
          !entry.contains("bytes") || !entry["bytes"].is_number_unsigned() ||
          !entry.contains("sha256") || !entry["sha256"].is_string() ||
          !IsSha256Hex(entry["sha256"].get<std::string>())) {
        Problem(kManifestMember, "member entry " + std::to_string(index) + " is malformed");
        continue;
      }
      MemberDigest d{entry["name"].get<std::string>(), entry["bytes"].get<uint64_t>(),
                     entry["sha256"].get<std::string>()};
      if (d.name == kManifestMember || d.name == kSignatureMember) {
        Problem(kManifestMember, "lists " + d.name + ", which it cannot cover");
        continue;
      }
      if (!listed.emplace(d.name, d).second) {
        Problem(kManifestMember, "lists " + d.name + " twice");
      }
    }
    size_t matched = 0;
    for (const auto& [name, want] : listed) {
      const BundleMember* have = bundle_.Find(name);
      if (have == nullptr) {
        Problem(name, "listed in the manifest but missing from the bundle");
        continue;
      }
      bool good = true;
      if (have->digest.bytes != want.bytes) {
        Problem(name, "holds " + std::to_string(have->digest.bytes) + " bytes; the manifest says " +
                          std::to_string(want.bytes));
        good = false;
      }
      if (have->digest.sha256 != want.sha256) {
        Problem(name, "its SHA-256 " + have->digest.sha256 + " is not the manifest's " +
                          want.sha256 + " (the member was changed)");
        good = false;
      }
      matched += good ? 1 : 0;
    }
    for (const BundleMember& m : bundle_.members) {
      const std::string& name = m.digest.name;
      if (name == kManifestMember || name == kSignatureMember) continue;
      if (!listed.count(name)) Problem(name, "not listed in the manifest (an extra member)");
    }
    for (const char* name : kRequiredMembers) {
      if (!listed.count(name) && !bundle_.Find(name)) {
        Problem(name, "missing: every bundle has it");
      }
    }
    if (matched == listed.size()) {
      Ok("members: all " + std::to_string(matched) +
         " members the manifest lists are present with their size and SHA-256, and no other");
    }
  }

  void CheckFileContents() {
    size_t count = 0, good = 0;
    for (const BundleMember& m : bundle_.members) {
      const std::string& name = m.digest.name;
      if (name.rfind(kFilesPrefix, 0) != 0) continue;
      ++count;
      std::string claimed = name.substr(std::string(kFilesPrefix).size());
      if (!IsSha256Hex(claimed)) {
        Problem(name, "a file member must be named files/<sha256 in lower-case hex>");
      } else if (claimed != m.digest.sha256) {
        Problem(name, "its contents hash to " + m.digest.sha256 + ", not to its name");
      } else {
        ++good;
      }
    }
    if (count > 0 && good == count) {
      Ok("files: " + std::to_string(count) + " file contents hash to their names");
    }
    // What files.json says is included must be there.
    const BundleMember* files = bundle_.Find("files.json");
    if (files == nullptr || !files->content) return;
    Json list = Json::parse(*files->content, nullptr, false);
    if (list.is_discarded() || !list.is_object() || !list.contains("data") ||
        !list["data"].is_array()) {
      Problem("files.json", "not a JSON object with a \"data\" list");
      return;
    }
    for (const Json& f : list["data"]) {
      if (!f.is_object() || !f.value("content_included", false)) continue;
      std::string sha = f.value("sha256", std::string());
      std::string name = std::string(kFilesPrefix) + sha;
      if (!bundle_.Find(name)) {
        Problem(name, "files.json says its contents are included, but the member is missing");
      }
    }
  }

  void CheckAudit() {
    const BundleMember* m = bundle_.Find("audit.json");
    if (m == nullptr || !m->content) return;  // Reported as missing.
    Json segment = Json::parse(*m->content, nullptr, false);
    if (segment.is_discarded()) {
      Problem("audit.json", "not valid JSON");
      return;
    }
    std::string summary;
    auto problems = CheckAuditSegment(segment, &summary);
    for (SegmentProblem& p : problems) Problem("audit.json", std::move(p.message), p.seq);
    if (problems.empty()) Ok("audit: " + summary);
  }

  void CheckExecutions() {
    const BundleMember* m = bundle_.Find("executions.json");
    if (m == nullptr || !m->content) return;
    Json doc = Json::parse(*m->content, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("executions") ||
        !doc["executions"].is_array()) {
      Problem("executions.json", "not a JSON object with an \"executions\" list");
      return;
    }
    size_t checked = 0;
    for (const Json& e : doc["executions"]) {
      if (!e.is_object() || !e.contains("code") || !e["code"].is_string()) continue;
      std::string id = e.value("id", std::string("?"));
      if (Sha256Hex(e["code"].get<std::string>()) != e.value("code_sha256", std::string())) {
        Problem("executions.json",
                "execution " + id + ": its code does not hash to its code_sha256");
      } else {
        ++checked;
      }
    }
    Ok("executions: " + std::to_string(checked) + " executions' code hashes to its code_sha256");
  }

 private:
  const Bundle& bundle_;
  Verification* out_;
};

}  // namespace

Json Verification::ToJson() const {
  Json problems_json = Json::array();
  for (const auto& p : problems) {
    Json j = {{"member", p.member}, {"message", p.message}};
    j["seq"] = p.seq > 0 ? Json(p.seq) : Json(nullptr);
    problems_json.push_back(std::move(j));
  }
  return {{"object", "evidence_verification"},
          {"valid", valid()},
          {"fingerprint", fingerprint.empty() ? Json(nullptr) : Json(fingerprint)},
          {"key", key_expected ? "expected" : "self_asserted"},
          {"created_at", created_at},
          {"server_version", server_version},
          {"exported_by", exported_by},
          {"scope", scope.empty() ? Json(nullptr) : Json::parse(scope, nullptr, false)},
          {"ok", ok},
          {"problems", problems_json}};
}

Result<Verification> VerifyBundle(const std::string& path, const VerifyOptions& options) {
  std::string expected_fingerprint;
  if (options.expected_public_key_pem) {
    auto fingerprint = PublicKeyFingerprint(*options.expected_public_key_pem);
    if (!fingerprint.ok()) {
      return Status::InvalidArgument("the expected key: " + fingerprint.status().message());
    }
    expected_fingerprint = *fingerprint;
  }
  ASSIGN_OR_RETURN(Bundle bundle, ReadBundle(path, options.limits, KeepForChecks));
  Verification out;
  out.key_expected = options.expected_public_key_pem.has_value();
  if (bundle.refused) {
    // Nothing after a hostile entry is read, so nothing else can be trusted or checked.
    out.problems.push_back({bundle.refused->member, 0,
                            "refused (the bundle is not read past it): " + bundle.refused->reason});
    return out;
  }
  Verifier verifier(bundle, &out);
  verifier.CheckKeyAndSignature(options.expected_public_key_pem, expected_fingerprint);
  if (std::optional<Json> manifest = verifier.Manifest()) {
    verifier.CheckSigner(*manifest);
    verifier.CheckMembers(*manifest);
  }
  verifier.CheckFileContents();
  verifier.CheckAudit();
  verifier.CheckExecutions();
  return out;
}

}  // namespace pycell::evidence
