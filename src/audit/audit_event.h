// AuditEvent: one entry of the append-only audit log, and the hash chain that makes the log
// tamper-evident. Each event carries the hash of the one before it (`prev_hash`) and its own
// `hash` over every field including `prev_hash`, so editing, deleting or reordering any stored
// event breaks the chain at the first event affected — which VerifyChain names.
//
// The store appends events (assigning seq, prev_hash and hash inside the write transaction of
// the action they record, see store/metadata_store.h); the CLI verifies a chain it read over the
// API or straight from a data dir. Both use this one definition of the hash.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pycell::audit {

struct AuditEvent {
  int64_t seq = 0;  // 1, 2, …: assigned by the store.
  std::string id;   // evt_…
  int64_t time_ms = 0;
  std::string principal;           // Who: a key's principal, "system", "anonymous" (failed auth).
  std::string project_id;          // proj_…, or "" when none applies.
  std::string key_id;              // key_… of the caller, or "".
  std::string action;              // "session.create", "file.download", "auth.denied", …
  std::string target;              // The id acted on (sess_…, file_…, key_…), or "".
  std::string outcome = "ok";      // "ok" | "denied" | "error" | "quota_exceeded"
  std::string request_id;          // req_… (also the X-Request-Id response header), or "".
  std::string code_sha256;         // Executions: SHA-256 of the code.
  std::string detail_json = "{}";  // An object: bytes, peer, reason, …
  std::string prev_hash;           // The previous event's hash; kGenesisHash for seq 1.
  std::string hash;                // EventHash(*this).
};

// prev_hash of the first event: 64 zeros.
extern const char* const kGenesisHash;

// SHA-256 (lower-case hex) of the canonical JSON array
// [seq, id, time_ms, principal, project_id, key_id, action, target, outcome, request_id,
//  code_sha256, detail, prev_hash], where detail is detail_json parsed and dumped again (sorted
// keys, no spaces) — or the text itself when it is not JSON.
std::string EventHash(const AuditEvent& event);

// The first event (in the order given, which must be seq order from 1) whose seq, prev_hash or
// hash is not what an untouched chain would have, with why; nullopt when the chain verifies.
struct ChainBreak {
  int64_t seq = 0;  // The seq stored in the broken event (or expected, when one is missing).
  std::string id;
  std::string reason;  // "hash does not match its contents", "event 7 is missing", …
};
std::optional<ChainBreak> VerifyChain(const std::vector<AuditEvent>& events,
                                      const std::string& start_prev_hash = kGenesisHash,
                                      int64_t start_seq = 1);

// The event as the API shows it (times as RFC 3339, detail as an object), and back.
nlohmann::json EventToJson(const AuditEvent& event);
Result<AuditEvent> EventFromJson(const nlohmann::json& json);

}  // namespace pycell::audit
