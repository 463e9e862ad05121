#include "audit/audit_event.h"

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/json_reader.h"

namespace pycell::audit {

using Json = nlohmann::json;

const char* const kGenesisHash = "0000000000000000000000000000000000000000000000000000000000000000";

namespace {

// detail as canonical JSON (nlohmann sorts object keys), or the text itself when it does not
// parse: a tampered detail must still hash, to something else.
Json CanonicalDetail(const std::string& detail_json) {
  Json detail = Json::parse(detail_json, nullptr, false);
  if (detail.is_discarded()) return Json(detail_json);
  return detail;
}

}  // namespace

std::string EventHash(const AuditEvent& e) {
  Json fields = Json::array({e.seq, e.id, e.time_ms, e.principal, e.project_id, e.key_id, e.action,
                             e.target, e.outcome, e.request_id, e.code_sha256,
                             CanonicalDetail(e.detail_json), e.prev_hash});
  return Sha256Hex(fields.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::optional<ChainBreak> VerifyChain(const std::vector<AuditEvent>& events,
                                      const std::string& start_prev_hash, int64_t start_seq) {
  std::string prev_hash = start_prev_hash;
  int64_t expected_seq = start_seq;
  for (const AuditEvent& e : events) {
    if (e.seq != expected_seq) {
      if (e.seq > expected_seq) {
        return ChainBreak{expected_seq, e.id,
                          "event " + std::to_string(expected_seq) +
                              " is missing (the next stored event is " + std::to_string(e.seq) +
                              ")"};
      }
      return ChainBreak{e.seq, e.id,
                        "event " + std::to_string(e.seq) + " is out of order (expected " +
                            std::to_string(expected_seq) + ")"};
    }
    if (EventHash(e) != e.hash) {
      return ChainBreak{e.seq, e.id, "its hash does not match its contents (edited)"};
    }
    if (e.prev_hash != prev_hash) {
      return ChainBreak{e.seq, e.id,
                        "its prev_hash does not match the hash of the event before it "
                        "(an event before it was removed, replaced or reordered)"};
    }
    prev_hash = e.hash;
    ++expected_seq;
  }
  return std::nullopt;
}

Json EventToJson(const AuditEvent& e) {
  Json detail = Json::parse(e.detail_json, nullptr, false);
  if (detail.is_discarded()) detail = Json(e.detail_json);
  auto or_null = [](const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); };
  return {{"seq", e.seq},
          {"id", e.id},
          {"object", "audit_event"},
          {"time", FormatRfc3339Ms(e.time_ms)},
          {"time_ms", e.time_ms},
          {"principal", e.principal},
          {"project_id", or_null(e.project_id)},
          {"key_id", or_null(e.key_id)},
          {"action", e.action},
          {"target", or_null(e.target)},
          {"outcome", e.outcome},
          {"request_id", or_null(e.request_id)},
          {"code_sha256", or_null(e.code_sha256)},
          {"detail", detail},
          {"prev_hash", e.prev_hash},
          {"hash", e.hash}};
}

Result<AuditEvent> EventFromJson(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("an audit event must be a JSON object");
  AuditEvent e;
  auto text = [&](const char* key, std::string* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return Status::Ok();
    if (!it->is_string())
      return Status::InvalidArgument(std::string("audit event: ") + key + " must be a string");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  auto number = [&](const char* key, int64_t* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
      return Status::InvalidArgument(std::string("audit event: ") + key + " must be an integer");
    }
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  RETURN_IF_ERROR(number("seq", &e.seq));
  RETURN_IF_ERROR(number("time_ms", &e.time_ms));
  for (auto [key, field] : {std::pair{"id", &e.id},
                            {"principal", &e.principal},
                            {"project_id", &e.project_id},
                            {"key_id", &e.key_id},
                            {"action", &e.action},
                            {"target", &e.target},
                            {"outcome", &e.outcome},
                            {"request_id", &e.request_id},
                            {"code_sha256", &e.code_sha256},
                            {"prev_hash", &e.prev_hash},
                            {"hash", &e.hash}}) {
    RETURN_IF_ERROR(text(key, field));
  }
  auto detail = j.find("detail");
  if (detail == j.end() || detail->is_null()) {
    e.detail_json = "{}";
  } else if (detail->is_string()) {
    e.detail_json = detail->get<std::string>();  // Stored text that was not JSON.
  } else {
    e.detail_json = DumpJson(*detail);
  }
  return e;
}

}  // namespace pycell::audit
