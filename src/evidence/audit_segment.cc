#include "evidence/audit_segment.h"

#include <nlohmann/json.hpp>

namespace pycell::evidence {

using Json = nlohmann::json;

namespace {

bool IsHash(const Json& j) {
  if (!j.is_string()) return false;
  const std::string& s = j.get_ref<const std::string&>();
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

Json BuildAuditSegment(const std::vector<audit::AuditEvent>& events,
                       const std::function<bool(const audit::AuditEvent&)>& whole) {
  Json list = Json::array();
  int64_t redacted = 0;
  for (const audit::AuditEvent& e : events) {
    if (whole(e)) {
      list.push_back(audit::EventToJson(e));
    } else {
      list.push_back(
          {{"seq", e.seq}, {"hash", e.hash}, {"prev_hash", e.prev_hash}, {"redacted", true}});
      ++redacted;
    }
  }
  if (events.empty()) {
    return {{"object", "audit_segment"},
            {"first_seq", nullptr},
            {"last_seq", nullptr},
            {"prev_hash", nullptr},
            {"last_hash", nullptr},
            {"redacted", 0},
            {"events", list}};
  }
  return {{"object", "audit_segment"},
          {"first_seq", events.front().seq},
          {"last_seq", events.back().seq},
          {"prev_hash", events.front().prev_hash},
          {"last_hash", events.back().hash},
          {"redacted", redacted},
          {"events", list}};
}

std::vector<SegmentProblem> CheckAuditSegment(const Json& segment, std::string* summary) {
  std::vector<SegmentProblem> problems;
  auto problem = [&](int64_t seq, std::string message) {
    problems.push_back({seq, std::move(message)});
  };
  if (!segment.is_object() || !segment.contains("events") || !segment["events"].is_array()) {
    problem(0, "not an audit segment (no \"events\" list)");
    return problems;
  }
  const Json& events = segment["events"];
  if (events.empty()) {
    if (!segment.value("first_seq", Json()).is_null() ||
        !segment.value("last_seq", Json()).is_null()) {
      problem(0, "the segment names seqs but holds no events");
    }
    if (summary) *summary = "no audit events in the range";
    return problems;
  }
  const Json first_seq = segment.value("first_seq", Json());
  const Json last_seq = segment.value("last_seq", Json());
  if (!first_seq.is_number_integer() || !last_seq.is_number_integer() ||
      !IsHash(segment.value("prev_hash", Json())) || !IsHash(segment.value("last_hash", Json()))) {
    problem(0, "first_seq, last_seq, prev_hash or last_hash is missing or malformed");
    return problems;
  }
  int64_t expected = first_seq.get<int64_t>();
  std::string prev = segment["prev_hash"].get<std::string>();
  int64_t whole = 0, redacted = 0;
  for (const Json& event : events) {
    if (!event.is_object() || !event.contains("seq") || !event["seq"].is_number_integer()) {
      problem(expected, "an event without an integer seq where event " + std::to_string(expected) +
                            " should be");
      return problems;
    }
    int64_t seq = event["seq"].get<int64_t>();
    if (seq != expected) {
      problem(seq, "expected event " + std::to_string(expected) + " here, found event " +
                       std::to_string(seq) + " (an event is missing or out of order)");
    }
    std::string hash;
    std::string prev_hash;
    if (event.value("redacted", false)) {
      if (!IsHash(event.value("hash", Json())) || !IsHash(event.value("prev_hash", Json()))) {
        problem(seq, "a redacted event without a well-formed hash and prev_hash");
        return problems;
      }
      hash = event["hash"].get<std::string>();
      prev_hash = event["prev_hash"].get<std::string>();
      ++redacted;
    } else {
      auto parsed = audit::EventFromJson(event);
      if (!parsed.ok()) {
        problem(seq, "unreadable event: " + parsed.status().message());
        return problems;
      }
      if (audit::EventHash(*parsed) != parsed->hash) {
        problem(seq, "its hash does not match its contents (the event was edited)");
      }
      hash = parsed->hash;
      prev_hash = parsed->prev_hash;
      ++whole;
    }
    if (prev_hash != prev) {
      problem(seq,
              "its prev_hash does not link to the hash of the event before it (an event "
              "was removed, replaced or reordered)");
    }
    prev = hash;
    expected = seq + 1;
  }
  if (expected - 1 != last_seq.get<int64_t>()) {
    problem(0, "the segment says it ends at event " + std::to_string(last_seq.get<int64_t>()) +
                   " but its events end at " + std::to_string(expected - 1));
  }
  if (prev != segment["last_hash"].get<std::string>()) {
    problem(0, "last_hash is not the hash of the last event");
  }
  if (summary) {
    *summary = "events " + std::to_string(first_seq.get<int64_t>()) + "-" +
               std::to_string(last_seq.get<int64_t>()) + " link from prev_hash " +
               segment["prev_hash"].get<std::string>() + " to last_hash " + prev + "; " +
               std::to_string(whole) + " recomputed, " + std::to_string(redacted) +
               " redacted (link only)";
  }
  return problems;
}

}  // namespace pycell::evidence
