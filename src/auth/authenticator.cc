#include "auth/authenticator.h"

#include <nlohmann/json.hpp>

#include "auth/api_key.h"
#include "common/ip_address.h"
#include "common/json_reader.h"
#include "common/logging.h"

namespace pycell::auth {
namespace {

// The address part of "10.0.0.1:5000" or "[2001:db8::1]:5000"; a bare address ("10.0.0.1",
// "2001:db8::1": more than one colon and no brackets) is kept whole.
std::string AddressOf(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    size_t close = peer.find(']');
    return close == std::string::npos ? peer : peer.substr(1, close - 1);
  }
  size_t colon = peer.find(':');
  if (colon == std::string::npos || peer.find(':', colon + 1) != std::string::npos) return peer;
  return peer.substr(0, colon);
}

// What failures are counted by: the address, or its /64 for IPv6 (IpAddress::ConnectionKey).
std::string FailureKey(const std::string& address) {
  auto parsed = IpAddress::Parse(address);
  return parsed ? parsed->ConnectionKey() : address;
}

int64_t WallMs(Clock* clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock->WallNow().time_since_epoch())
      .count();
}

// Compared against when the key id is unknown, so that path costs what a wrong secret costs.
constexpr const char* kDummySha256 =
    "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";

}  // namespace

Result<Caller> Authenticator::Authenticate(const std::string& authorization,
                                           const std::string& peer, const std::string& request_id) {
  const std::string address = AddressOf(peer);
  if (authorization.empty()) {
    return Fail(address, request_id, "", "missing",
                Status::Unauthenticated("this route needs an API key: send \"Authorization: "
                                        "Bearer pyc_…\" (see `pycell keys create`)"));
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() ||
      strncasecmp(authorization.c_str(), "bearer ", kBearer.size()) != 0) {
    return Fail(address, request_id, "", "not_bearer",
                Status::Unauthenticated("the Authorization header must be \"Bearer pyc_…\""));
  }
  std::string token = authorization.substr(kBearer.size());
  auto parts = ParseToken(token);
  if (!parts.ok()) return Fail(address, request_id, "", "malformed", parts.status());
  auto key = store_->GetKey(parts->key_id);
  if (!key.ok() && !key.status().IsNotFound()) return key.status();  // The store failed.
  const bool known = key.ok();
  const bool matches = SecretMatches(parts->secret, known ? key->secret_sha256 : kDummySha256);
  const Status wrong = Status::Unauthenticated(
      "the API key is not valid (unknown, wrong or revoked); ask an admin for a key");
  if (!known || !matches) {
    return Fail(address, request_id, known ? parts->key_id : "",
                known ? "wrong_secret" : "unknown_key", wrong);
  }
  if (key->revoked_at_ms != 0) return Fail(address, request_id, key->id, "revoked", wrong);
  auto role = ParseRole(key->role);
  if (!role) return Status::Internal("key " + key->id + " has an unknown role " + key->role);
  Caller caller;
  caller.key_id = key->id;
  caller.principal = key->principal;
  caller.project_id = key->project_id;
  caller.role = *role;
  caller.all_projects = key->all_projects;
  caller.request_id = request_id;
  caller.peer = peer;
  return caller;
}

Status Authenticator::Fail(const std::string& address, const std::string& request_id,
                           const std::string& key_id, const std::string& reason, Status answer) {
  {
    MutexLock lock(mu_);
    auto now = clock_->Now();
    Prune(now);
    Window& window = windows_[FailureKey(address)];
    if (now - window.start >= kFailureWindow) window.failures = 0;  // Passed, not yet pruned.
    if (window.failures == 0) window.start = now;
    if (window.failures >= kMaxFailures) {
      // Locked out: refused as a failure, not audited (the first kMaxFailures were).
      auto left =
          std::chrono::duration_cast<std::chrono::seconds>(window.start + kFailureWindow - now)
              .count() +
          1;
      Count("too_many_failures");
      return Status::ResourceExhausted("too many failed authentications from " + address +
                                       "; try again in " + std::to_string(left) +
                                       " s, with a valid key (a valid key is always accepted)")
          .WithReason("too_many_failures")
          .WithRetryAfter(left);
    }
    ++window.failures;
  }
  Count(reason);
  store::Trail trail;
  trail.audit.emplace();
  audit::AuditEvent& event = *trail.audit;
  event.time_ms = WallMs(clock_);
  event.principal = "anonymous";
  event.key_id = key_id;
  event.action = "auth.denied";
  event.outcome = "denied";
  event.request_id = request_id;
  event.detail_json =
      DumpJson(nlohmann::json{{"status", 401}, {"reason", reason}, {"peer", address}});
  Status recorded = store_->Record(trail);
  if (!recorded.ok()) {
    LOG_ERROR("auditing a failed authentication: {}", recorded.ToString());
    return recorded;
  }
  return answer;
}

Status Authenticator::Deny(const Caller& caller, Permission permission, const std::string& route) {
  Count("permission");
  store::Trail trail = AuditTrail(caller, "auth.denied", "", WallMs(clock_),
                                  nlohmann::json{{"status", 403},
                                                 {"reason", "permission"},
                                                 {"permission", PermissionName(permission)},
                                                 {"role", RoleName(caller.role)},
                                                 {"route", route},
                                                 {"peer", AddressOf(caller.peer)}});
  trail.audit->outcome = "denied";
  RETURN_IF_ERROR(store_->Record(trail));
  return Status::PermissionDenied(std::string("the role ") + RoleName(caller.role) +
                                  " may not do this (it needs " + PermissionName(permission) +
                                  "); see docs/access.md for what each role may do");
}

void Authenticator::Prune(std::chrono::steady_clock::time_point now) {
  // At most once a second: the walk is over every address that failed lately.
  if (now - last_prune_ < std::chrono::seconds(1) && now >= last_prune_) return;
  last_prune_ = now;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.start >= kFailureWindow) {
      it = windows_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pycell::auth
