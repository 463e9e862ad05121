// An audit segment: the contiguous run of the global audit chain (audit/audit_event.h) that an
// evidence bundle carries as audit.json, and its offline check.
//
//   {"object": "audit_segment", "first_seq": 12, "last_seq": 40,
//    "prev_hash": <hash of event 11, or the genesis hash>, "last_hash": <hash of event 40>,
//    "redacted": <how many stubs>, "events": [<event>…]}
//
// Every seq from first_seq to last_seq is present, so the verifier can recompute the run: an
// event the exporter may see is whole (as the API shows it) and its hash is recomputed; one it
// may not see (another project's) is a link-only stub {seq, hash, prev_hash, redacted: true},
// whose hash is taken on trust but must link to its neighbours. An empty range has no events and
// null seqs and hashes.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "audit/audit_event.h"

namespace pycell::evidence {

// `events` in seq order without gaps; `whole(event)` says which the exporter may show.
nlohmann::json BuildAuditSegment(const std::vector<audit::AuditEvent>& events,
                                 const std::function<bool(const audit::AuditEvent&)>& whole);

struct SegmentProblem {
  int64_t seq = 0;  // The event it concerns; 0 for the segment as a whole.
  std::string message;
};

// What is wrong with `segment` (empty when it links and every whole event recomputes).
// `summary` (when not null) is set to a one-line description of what was checked.
std::vector<SegmentProblem> CheckAuditSegment(const nlohmann::json& segment,
                                              std::string* summary = nullptr);

}  // namespace pycell::evidence
