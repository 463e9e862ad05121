// The offline verification of an evidence bundle (`pycell evidence verify`, docs/evidence.md):
// no server, only the bundle and, optionally, the public key the verifier trusts.
//
// It checks, and reports each failure as a Problem naming the member (and the audit event's seq
// where one is concerned):
//   - manifest.sig is an Ed25519 signature of manifest.json's exact bytes by public_key.pem, and
//     the manifest names that key as its signer;
//   - with an expected key, that public_key.pem IS that key (without one, the key is only
//     self-asserted: the verification says so and prints its fingerprint);
//   - every member the manifest lists is present with its size and SHA-256; none is missing and
//     none is extra; the members every bundle has are there;
//   - files/<sha256> contents hash to their names;
//   - audit.json's segment links and every whole event's hash recomputes (audit_segment.h);
//   - each execution's code hashes to its code_sha256.
// A hostile archive (unsafe names, links, sizes past the limits) is refused at the first such
// entry, which the problem names; nothing is ever extracted.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "evidence/bundle.h"

namespace pycell::evidence {

// The members every bundle has besides files/<sha256> and the three of bundle.h (manifest.json,
// manifest.sig, public_key.pem).
extern const char* const kRequiredMembers[7];

struct Problem {
  std::string member;  // "audit.json", "files/<sha>", "manifest.sig", …; "" for the archive.
  int64_t seq = 0;     // The audit event concerned, or 0.
  std::string message;
};

struct VerifyOptions {
  std::optional<std::string> expected_public_key_pem;  // --pubkey's contents.
  ReadLimits limits;
};

struct Verification {
  std::vector<std::string> ok;    // What passed, one line each ("signature: …").
  std::vector<Problem> problems;  // Empty when the bundle is valid.
  std::string fingerprint;        // Of public_key.pem; "" when it has none or it is unreadable.
  bool key_expected = false;      // An expected key was given (and matched, when valid).
  std::string created_at, server_version, exported_by, scope;  // From the manifest, for people.

  bool valid() const { return problems.empty(); }
  // {"object": "evidence_verification", "valid", "fingerprint", "key": "expected"|"self_asserted",
  //  "ok": [...], "problems": [{member, seq, message}]}
  nlohmann::json ToJson() const;
};

// Verifies the bundle at `path`. Errors (not a verdict on the bundle — the CLI exits 2): NotFound
// or Internal when it cannot be opened; InvalidArgument when it is not a gzip'd tar at all, or the
// expected key is not an Ed25519 PEM public key.
Result<Verification> VerifyBundle(const std::string& path, const VerifyOptions& options = {});

}  // namespace pycell::evidence
