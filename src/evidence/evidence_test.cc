// Evidence bundles: the signing key, the archive, and the offline verification — that a good
// bundle verifies and that each kind of tampering is caught and named.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "audit/audit_event.h"
#include "common/crypto.h"
#include "common/unique_fd.h"
#include "evidence/audit_segment.h"
#include "evidence/bundle.h"
#include "evidence/signing_key.h"
#include "evidence/verify.h"
#include "test_util.h"

namespace pycell::evidence {
namespace {

using Json = nlohmann::json;

using pycell::testing::TempDir;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A chain of `count` events from seq 1; those of project "proj_other" are another project's.
std::vector<audit::AuditEvent> Chain(int count) {
  std::vector<audit::AuditEvent> events;
  std::string prev = audit::kGenesisHash;
  for (int i = 1; i <= count; ++i) {
    audit::AuditEvent e;
    e.seq = i;
    e.id = "evt_" + std::to_string(i);
    e.time_ms = 1700000000000 + i;
    e.principal = i % 3 == 0 ? "bob" : "alice";
    e.project_id = i % 3 == 0 ? "proj_other" : "proj_mine";
    e.action = i % 2 ? "execution.run" : "file.upload";
    e.target = "exec_" + std::to_string(i);
    e.detail_json = Json{{"n", i}}.dump();
    e.prev_hash = prev;
    e.hash = audit::EventHash(e);
    prev = e.hash;
    events.push_back(e);
  }
  return events;
}

Json Segment(const std::vector<audit::AuditEvent>& events) {
  return BuildAuditSegment(events,
                           [](const audit::AuditEvent& e) { return e.project_id == "proj_mine"; });
}

constexpr const char* kFileContent = "region,amount\nnorth,10\nsouth,20\n";

// The members of a small, good bundle (everything but the manifest's three), in order.
std::vector<std::pair<std::string, std::string>> Members(const Json& audit_segment) {
  std::string sha = Sha256Hex(kFileContent);
  std::string code = "open('/mnt/data/out.csv','w').write('x')";
  return {
      {"config.json",
       Json{{"object", "config"}, {"server", {{"listen", "127.0.0.1:8080"}}}}.dump(2)},
      {"audit.json", audit_segment.dump(2)},
      {"executions.json",
       Json{{"sessions", Json::array()},
            {"executions", {{{"id", "exec_1"}, {"code", code}, {"code_sha256", Sha256Hex(code)}}}}}
           .dump(2)},
      {"lineage.json", Json{{"data", Json::array()}}.dump(2)},
      {"files.json",
       Json{{"data", {{{"sha256", sha}, {"filename", "sales.csv"}, {"content_included", true}}}}}
           .dump(2)},
      {"usage.json", Json{{"object", "usage"}, {"data", Json::array()}}.dump(2)},
      {"metrics.txt", "pycell_executions_total{status=\"ok\"} 2\n"},
      {"files/" + sha, kFileContent},
  };
}

Json Metadata() {
  return {{"object", "evidence_manifest"},
          {"created_at", "2024-01-01T00:00:00Z"},
          {"server", {{"version", "test"}}},
          {"exported_by", {{"principal", "admin"}, {"role", "admin"}, {"key_id", "key_x"}}},
          {"scope", {{"session", "sess_1"}}}};
}

// Writes a signed bundle of `members` to `path`.
void WriteSigned(const std::string& path, const SigningKey& key,
                 const std::vector<std::pair<std::string, std::string>>& members) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid());
  auto writer = BundleWriter::Open(fd.get(), 1700000000);
  ASSERT_OK(writer);
  for (const auto& [name, data] : members) ASSERT_OK((*writer)->Add(name, data));
  ASSERT_OK((*writer)->FinishSigned(Metadata(), key));
}

// Writes `members` as they are (no manifest added): for repacking a bundle by hand.
void WriteRaw(const std::string& path,
              const std::vector<std::pair<std::string, std::string>>& members) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid());
  auto writer = BundleWriter::Open(fd.get(), 1700000000);
  ASSERT_OK(writer);
  for (const auto& [name, data] : members) ASSERT_OK((*writer)->Add(name, data));
  ASSERT_OK((*writer)->Close());
}

std::vector<std::pair<std::string, std::string>> ReadAll(const std::string& path) {
  auto bundle = ReadBundle(path);
  EXPECT_OK(bundle);
  std::vector<std::pair<std::string, std::string>> members;
  if (!bundle.ok()) return members;
  EXPECT_FALSE(bundle->refused);
  for (const BundleMember& m : bundle->members) {
    EXPECT_TRUE(m.content.has_value());
    members.emplace_back(m.digest.name, m.content.value_or(""));
  }
  return members;
}

std::string Describe(const Verification& v) { return v.ToJson().dump(2); }

// Whether some problem names `member` (as its member, or in its message).
bool Names(const Verification& v, const std::string& member) {
  for (const Problem& p : v.problems) {
    if (p.member == member || p.message.find(member) != std::string::npos) return true;
  }
  return false;
}

bool NamesSeq(const Verification& v, int64_t seq) {
  for (const Problem& p : v.problems) {
    if (p.member == "audit.json" && p.seq == seq) return true;
  }
  return false;
}

class EvidenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = SigningKey::Generate();
    ASSERT_OK(key);
    key_.emplace(std::move(*key));
    good_ = dir_ / "good.tar.gz";
    WriteSigned(good_, *key_, Members(Segment(Chain(9))));
  }

  Verification Verify(const std::string& path, std::optional<std::string> pubkey = {}) {
    VerifyOptions options;
    options.expected_public_key_pem = std::move(pubkey);
    auto v = VerifyBundle(path, options);
    EXPECT_OK(v);
    return v.ok() ? *v : Verification{};
  }

  TempDir dir_;
  std::optional<SigningKey> key_;
  std::string good_;
};

// --- the key ----------------------------------------------------------------------------------

TEST(SigningKeyTest, SignsAndVerifiesARoundTrip) {
  auto key = SigningKey::Generate();
  ASSERT_OK(key);
  auto signature = key->Sign("the manifest");
  ASSERT_OK(signature);
  EXPECT_EQ(signature->size(), 64u);
  EXPECT_OK(VerifySignature(key->public_pem(), "the manifest", *signature));
  EXPECT_TRUE(VerifySignature(key->public_pem(), "the manifesT", *signature).IsPermissionDenied());
  std::string flipped = *signature;
  flipped[10] ^= 1;
  EXPECT_TRUE(VerifySignature(key->public_pem(), "the manifest", flipped).IsPermissionDenied());
  auto other = SigningKey::Generate();
  ASSERT_OK(other);
  EXPECT_TRUE(
      VerifySignature(other->public_pem(), "the manifest", *signature).IsPermissionDenied());
  EXPECT_NE(key->fingerprint(), other->fingerprint());
  auto fingerprint = PublicKeyFingerprint(key->public_pem());
  ASSERT_OK(fingerprint);
  EXPECT_EQ(*fingerprint, key->fingerprint());
  EXPECT_EQ(key->public_pem().rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  EXPECT_TRUE(PublicKeyFingerprint("not a key").status().IsInvalidArgument());
}

TEST(SigningKeyTest, Base64IsStrict) {
  for (std::string data : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                           std::string("abcd"), std::string("\0\xff\x10", 3)}) {
    auto back = Base64Decode(Base64Encode(data));
    ASSERT_OK(back);
    EXPECT_EQ(*back, data);
  }
  EXPECT_EQ(Base64Encode("abcd"), "YWJjZA==");
  for (const char* bad : {"YWJjZA=", "YWJjZA", "YW JjZA==", "YWJjZB==", "=YWJjZA=", "YWJj\nZA=="}) {
    EXPECT_FALSE(Base64Decode(bad).ok()) << bad;
  }
}

TEST(SigningKeyTest, KeyFileIsCreated0600AndReloadedIdentical) {
  TempDir dir;
  std::string path = dir / "evidence.key";
  auto created = SigningKey::LoadOrCreate(path);
  ASSERT_OK(created);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadText(path).rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);  // PKCS#8.
  // Nothing but the key is left in the folder (the temporary file was renamed).
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);

  std::string before = ReadText(path);
  auto reloaded = SigningKey::LoadOrCreate(path);
  ASSERT_OK(reloaded);
  EXPECT_EQ(reloaded->fingerprint(), created->fingerprint());
  EXPECT_EQ(reloaded->public_pem(), created->public_pem());
  EXPECT_EQ(ReadText(path), before);  // Never rewritten.
  auto signature = reloaded->Sign("x");
  ASSERT_OK(signature);
  EXPECT_OK(VerifySignature(created->public_pem(), "x", *signature));

  // A key others may read is refused, with the fix.
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loose = SigningKey::LoadOrCreate(path);
  EXPECT_TRUE(loose.status().IsPermissionDenied()) << loose.status().ToString();
  EXPECT_NE(loose.status().message().find("chmod 600"), std::string::npos);
  // A file that is not a key is not replaced by a new one.
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  { std::ofstream(path, std::ios::trunc) << "garbage\n"; }
  EXPECT_TRUE(SigningKey::LoadOrCreate(path).status().IsInvalidArgument());
  EXPECT_EQ(ReadText(path), "garbage\n");
}

// --- a good bundle ----------------------------------------------------------------------------

TEST_F(EvidenceTest, AGoodBundleVerifies) {
  Verification v = Verify(good_);
  EXPECT_TRUE(v.valid()) << Describe(v);
  EXPECT_EQ(v.fingerprint, key_->fingerprint());
  EXPECT_FALSE(v.key_expected);
  std::string ok = Describe(v);
  EXPECT_NE(ok.find("signature:"), std::string::npos) << ok;
  EXPECT_NE(ok.find("self-asserted"), std::string::npos) << ok;
  EXPECT_NE(ok.find("audit: events 1-9"), std::string::npos) << ok;
  EXPECT_NE(ok.find("3 redacted"), std::string::npos) << ok;
  EXPECT_NE(ok.find("files: 1 file contents"), std::string::npos) << ok;

  Verification pinned = Verify(good_, key_->public_pem());
  EXPECT_TRUE(pinned.valid()) << Describe(pinned);
  EXPECT_TRUE(pinned.key_expected);
  EXPECT_NE(Describe(pinned).find("is the expected key"), std::string::npos);
}

TEST_F(EvidenceTest, TheManifestListsEveryMemberAndItsSigner) {
  auto members = ReadAll(good_);
  std::vector<std::string> names;
  for (const auto& [name, data] : members) names.push_back(name);
  ASSERT_GE(names.size(), 3u);
  EXPECT_EQ(names[names.size() - 3], kPublicKeyMember);
  EXPECT_EQ(names[names.size() - 2], kManifestMember);
  EXPECT_EQ(names[names.size() - 1], kSignatureMember);
  Json manifest = Json::parse(members[members.size() - 2].second);
  EXPECT_EQ(manifest["signer"]["public_key_sha256"], key_->fingerprint());
  EXPECT_EQ(manifest["members"].size(), members.size() - 2);
  for (const Json& m : manifest["members"]) {
    for (const auto& [name, data] : members) {
      if (name == m["name"]) {
        EXPECT_EQ(m["sha256"], Sha256Hex(data));
        EXPECT_EQ(m["bytes"], data.size());
      }
    }
  }
}

// --- tampering --------------------------------------------------------------------------------

TEST_F(EvidenceTest, OneByteChangedInAnyMemberFailsNamingIt) {
  auto members = ReadAll(good_);
  ASSERT_EQ(members.size(), 11u);
  for (size_t i = 0; i < members.size(); ++i) {
    auto changed = members;
    std::string& data = changed[i].second;
    ASSERT_FALSE(data.empty());
    data[data.size() / 2] ^= 0x01;
    std::string path = dir_ / ("changed-" + std::to_string(i) + ".tar.gz");
    WriteRaw(path, changed);
    Verification v = Verify(path);
    EXPECT_FALSE(v.valid()) << "changing " << changed[i].first << " went unnoticed";
    EXPECT_TRUE(Names(v, changed[i].first))
        << "changing " << changed[i].first << ": " << Describe(v);
  }
}

TEST_F(EvidenceTest, ASignatureByAnotherKeyFails) {
  auto other = SigningKey::Generate();
  ASSERT_OK(other);
  auto members = ReadAll(good_);
  // The same manifest, signed by another key (the bundle still carries the first key).
  auto resigned = members;
  auto signature = other->Sign(resigned[resigned.size() - 2].second);
  ASSERT_OK(signature);
  resigned.back().second = Base64Encode(*signature) + "\n";
  WriteRaw(dir_ / "resigned.tar.gz", resigned);
  Verification v = Verify(dir_ / "resigned.tar.gz");
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(Names(v, kSignatureMember)) << Describe(v);

  // The other key's public key put in as well: the manifest names another signer, and the
  // member's hash is not the manifest's.
  resigned[resigned.size() - 3].second = other->public_pem();
  WriteRaw(dir_ / "resigned2.tar.gz", resigned);
  v = Verify(dir_ / "resigned2.tar.gz");
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(Names(v, kPublicKeyMember)) << Describe(v);
}

TEST_F(EvidenceTest, AWholeBundleByAnotherKeyIsSelfConsistentButNotTheExpectedKey) {
  auto other = SigningKey::Generate();
  ASSERT_OK(other);
  std::string forged = dir_ / "forged.tar.gz";
  WriteSigned(forged, *other, Members(Segment(Chain(9))));
  Verification self = Verify(forged);
  EXPECT_TRUE(self.valid()) << Describe(self);  // Self-asserted: it says whose key it is.
  EXPECT_EQ(self.fingerprint, other->fingerprint());
  Verification pinned = Verify(forged, key_->public_pem());
  EXPECT_FALSE(pinned.valid());
  EXPECT_TRUE(Names(pinned, kPublicKeyMember)) << Describe(pinned);
  EXPECT_NE(Describe(pinned).find(key_->fingerprint()), std::string::npos);
  // An expected key that is not a key at all is a usage error, not a verdict.
  VerifyOptions options;
  options.expected_public_key_pem = "not a key";
  EXPECT_TRUE(VerifyBundle(good_, options).status().IsInvalidArgument());
}

TEST_F(EvidenceTest, AnEditedAuditEventIsNamedBySeq) {
  auto events = Chain(9);
  events[4].action = "file.delete";  // Seq 5 edited; its stored hash kept.
  std::string path = dir_ / "edited.tar.gz";
  WriteSigned(path, *key_, Members(Segment(events)));
  Verification v = Verify(path);
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(NamesSeq(v, 5)) << Describe(v);
  EXPECT_EQ(v.problems.size(), 1u) << Describe(v);

  // Edited with its hash recomputed: the next event no longer links to it.
  events[4].hash = audit::EventHash(events[4]);
  WriteSigned(path, *key_, Members(Segment(events)));
  v = Verify(path);
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(NamesSeq(v, 6)) << Describe(v);
}

TEST_F(EvidenceTest, ABrokenLinkOrAGapIsNamedBySeq) {
  // Event 4 left out: 5's prev_hash does not link, and a seq is missing.
  auto events = Chain(9);
  auto gap = events;
  gap.erase(gap.begin() + 3);
  std::string path = dir_ / "gap.tar.gz";
  WriteSigned(path, *key_, Members(Segment(gap)));
  Verification v = Verify(path);
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(NamesSeq(v, 5)) << Describe(v);

  // A redacted stub (seq 3 is another project's) whose prev_hash was changed.
  Json segment = Segment(events);
  ASSERT_TRUE(segment["events"][2].value("redacted", false));
  segment["events"][2]["prev_hash"] = std::string(64, 'a');
  auto members = Members(segment);
  WriteSigned(path, *key_, members);
  v = Verify(path);
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(NamesSeq(v, 3)) << Describe(v);

  // The segment's claimed start hash is not what the first event links to.
  segment = Segment(events);
  segment["prev_hash"] = std::string(64, 'b');
  WriteSigned(path, *key_, Members(segment));
  v = Verify(path);
  EXPECT_TRUE(NamesSeq(v, 1)) << Describe(v);
}

TEST_F(EvidenceTest, AnExtraOrMissingMemberFails) {
  auto members = ReadAll(good_);
  auto extra = members;
  extra.insert(extra.begin() + 2, {"notes.txt", "added later"});
  WriteRaw(dir_ / "extra.tar.gz", extra);
  Verification v = Verify(dir_ / "extra.tar.gz");
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(Names(v, "notes.txt")) << Describe(v);

  for (const char* gone : {"usage.json", "manifest.sig", "public_key.pem"}) {
    auto missing = members;
    std::erase_if(missing, [&](const auto& m) { return m.first == gone; });
    ASSERT_EQ(missing.size(), members.size() - 1);
    WriteRaw(dir_ / "missing.tar.gz", missing);
    v = Verify(dir_ / "missing.tar.gz");
    EXPECT_FALSE(v.valid()) << gone;
    EXPECT_TRUE(Names(v, gone)) << Describe(v);
  }

  // A member missing from both the archive and the manifest (re-signed without it) is still
  // missing: every bundle has usage.json.
  auto all = Members(Segment(Chain(9)));
  std::erase_if(all, [](const auto& m) { return m.first == "usage.json"; });
  WriteSigned(dir_ / "without.tar.gz", *key_, all);
  v = Verify(dir_ / "without.tar.gz");
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(Names(v, "usage.json")) << Describe(v);
}

TEST_F(EvidenceTest, FileContentsMustHashToTheirName) {
  auto all = Members(Segment(Chain(3)));
  all.back().first = "files/" + std::string(64, '0');  // Signed, listed, but misnamed.
  WriteSigned(dir_ / "misnamed.tar.gz", *key_, all);
  Verification v = Verify(dir_ / "misnamed.tar.gz");
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(Names(v, "files/" + std::string(64, '0'))) << Describe(v);
  EXPECT_TRUE(Names(v, "files/" + Sha256Hex(kFileContent))) << Describe(v);  // files.json's.
}

// --- hostile archives -------------------------------------------------------------------------

struct HostileEntry {
  std::string name;
  mode_t type = AE_IFREG;
  std::string data;
  std::string link;  // Symlink target, or hard link source (with type AE_IFREG).
  bool hardlink = false;
};

void WriteHostile(const std::string& path, const std::vector<HostileEntry>& entries) {
  struct archive* a = archive_write_new();
  ASSERT_NE(a, nullptr);
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const HostileEntry& h : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, h.name.c_str());
    archive_entry_set_filetype(e, h.type);
    archive_entry_set_perm(e, 0644);
    if (h.type == AE_IFLNK) archive_entry_set_symlink(e, h.link.c_str());
    if (h.hardlink) archive_entry_set_hardlink(e, h.link.c_str());
    archive_entry_set_size(
        e, h.type == AE_IFREG && !h.hardlink ? static_cast<la_int64_t>(h.data.size()) : 0);
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (h.type == AE_IFREG && !h.hardlink && !h.data.empty()) {
      ASSERT_EQ(archive_write_data(a, h.data.data(), h.data.size()),
                static_cast<la_ssize_t>(h.data.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

TEST_F(EvidenceTest, HostileEntriesAreRefusedNotExtracted) {
  struct Case {
    std::vector<HostileEntry> entries;
    std::string named;  // The entry the refusal must name.
  };
  std::vector<Case> cases = {
      {{{"config.json", AE_IFREG, "{}"}, {"../escaped.txt", AE_IFREG, "x"}}, "../escaped.txt"},
      {{{"files/../../escaped.txt", AE_IFREG, "x"}}, "files/../../escaped.txt"},
      {{{"/tmp/pycell-evidence-absolute.txt", AE_IFREG, "x"}}, "/tmp/pycell-evidence-absolute.txt"},
      {{{"link", AE_IFLNK, "", "/etc/passwd"}}, "link"},
      {{{"config.json", AE_IFREG, "{}"}, {"hard", AE_IFREG, "", "config.json", true}}, "hard"},
      {{{"files", AE_IFDIR}}, "files/"},  // libarchive names a directory with its slash.
      {{{"fifo", AE_IFIFO}}, "fifo"},
      {{{"a.json", AE_IFREG, "1"}, {"a.json", AE_IFREG, "2"}}, "a.json"},
      {{{"./config.json", AE_IFREG, "{}"}}, "./config.json"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string path = dir_ / ("hostile-" + std::to_string(i) + ".tar.gz");
    WriteHostile(path, cases[i].entries);
    Verification v = Verify(path);
    ASSERT_EQ(v.problems.size(), 1u) << cases[i].named << ": " << Describe(v);
    EXPECT_EQ(v.problems[0].member, cases[i].named) << Describe(v);
    EXPECT_NE(v.problems[0].message.find("refused"), std::string::npos) << Describe(v);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/../escaped.txt"));
  EXPECT_FALSE(std::filesystem::exists("/tmp/pycell-evidence-absolute.txt"));
}

TEST_F(EvidenceTest, SizesPastTheLimitsAreRefusedBeforeTheyAreRead) {
  std::string big(3 << 20, 'x');
  std::string path = dir_ / "big.tar.gz";
  WriteHostile(path, {{"config.json", AE_IFREG, "{}"}, {"big.bin", AE_IFREG, big}});
  VerifyOptions options;
  options.limits.max_member_bytes = 1 << 20;
  auto v = VerifyBundle(path, options);
  ASSERT_OK(v);
  ASSERT_EQ(v->problems.size(), 1u) << Describe(*v);
  EXPECT_EQ(v->problems[0].member, "big.bin");
  EXPECT_NE(v->problems[0].message.find("declares 3145728 bytes"), std::string::npos);

  options = {};
  options.limits.max_total_bytes = 2 << 20;
  WriteHostile(path, {{"a.bin", AE_IFREG, std::string(1500000, 'a')},
                      {"b.bin", AE_IFREG, std::string(1500000, 'b')}});
  v = VerifyBundle(path, options);
  ASSERT_OK(v);
  ASSERT_EQ(v->problems.size(), 1u) << Describe(*v);
  EXPECT_EQ(v->problems[0].member, "b.bin");

  options = {};
  options.limits.max_members = 2;
  WriteHostile(path, {{"a", AE_IFREG, "1"}, {"b", AE_IFREG, "2"}, {"c", AE_IFREG, "3"}});
  v = VerifyBundle(path, options);
  ASSERT_OK(v);
  ASSERT_EQ(v->problems.size(), 1u) << Describe(*v);
  EXPECT_EQ(v->problems[0].member, "c");
}

TEST_F(EvidenceTest, WhatIsNotAGzipTarIsUnreadableNotInvalid) {
  std::string path = dir_ / "plain.txt";
  { std::ofstream(path) << "just text, not an archive\n"; }
  EXPECT_TRUE(VerifyBundle(path).status().IsInvalidArgument());
  EXPECT_TRUE(VerifyBundle(dir_ / "absent.tar.gz").status().IsNotFound());
  // Truncated in the middle: readable at first, damaged later: a verdict.
  std::string whole = ReadText(good_);
  std::string cut = dir_ / "cut.tar.gz";
  { std::ofstream(cut, std::ios::binary) << whole.substr(0, whole.size() / 2); }
  auto v = VerifyBundle(cut);
  if (v.ok()) {
    EXPECT_FALSE(v->valid()) << Describe(*v);
  }
}

TEST(BundleWriterTest, RefusesUnsafeAndRepeatedNames) {
  TempDir dir;
  UniqueFd fd(::open((dir / "b.tar.gz").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  auto writer = BundleWriter::Open(fd.get(), 0);
  ASSERT_OK(writer);
  for (const char* bad : {"", "/abs", "../up", "a/../b", "a//b", "a/", ".", "sp ace", "tab\t"}) {
    EXPECT_TRUE((*writer)->Add(bad, "x").IsInvalidArgument()) << bad;
  }
  ASSERT_OK((*writer)->Add("files/abc", "x"));
  EXPECT_TRUE((*writer)->Add("files/abc", "y").IsInvalidArgument());
  ASSERT_OK((*writer)->Close());
}

}  // namespace
}  // namespace pycell::evidence
