// Authenticator: turns an Authorization header into a Caller, or refuses it. Keys are read from
// the store on every request (a revoked key fails at its next use); the secret is compared in
// constant time, against a dummy hash when the key id is unknown, so timing does not tell a wrong
// id from a wrong secret. Every refusal is an "auth.denied" audit event.
//
// The failed-key lockout refuses failures, never a valid key: once a source address has
// kMaxFailures failures inside kFailureWindow, its further *failed* attempts are answered 429
// too_many_failures (with Retry-After) instead of 401 and are no longer audited one by one (so
// guessing cannot flood the audit log), until the window passes. A request with a valid key is
// always checked and accepted, from any address: behind a reverse proxy, or a NAT, one client
// that sends wrong keys must not lock out everyone who shares its address. (Guessing a key is
// hopeless anyway: 160 random bits.) Which address a request comes from is the HTTP server's to
// say (server.trusted_proxies decides when X-Forwarded-For names it).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "auth/caller.h"
#include "auth/roles.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "metrics/metrics.h"
#include "store/metadata_store.h"

namespace pycell::auth {

class Authenticator {
 public:
  static constexpr int kMaxFailures = 20;
  static constexpr std::chrono::seconds kFailureWindow{60};

  // `metrics` (may be null) counts every refusal by reason.
  Authenticator(store::MetadataStore* store, Clock* clock, metrics::Metrics* metrics = nullptr)
      : store_(store), clock_(clock), metrics_(metrics) {}

  // The caller of a request with header `authorization` ("" when absent) from `peer`
  // ("10.0.0.1:5000", "[2001:db8::1]:5000", or a bare address). Unauthenticated (401) for a
  // missing, malformed, unknown, wrong or revoked key — ResourceExhausted with reason
  // "too_many_failures" instead while the address is locked out; Internal when the denial cannot
  // be audited. A valid key is accepted whatever the address's failures.
  Result<Caller> Authenticate(const std::string& authorization, const std::string& peer,
                              const std::string& request_id);

  // The PermissionDenied (403) for a valid caller without `permission`, after auditing it.
  Status Deny(const Caller& caller, Permission permission, const std::string& route);

 private:
  // Records the failure and audits it, returning `answer` (the 401); past the limit returns the
  // 429 instead, unaudited.
  Status Fail(const std::string& address, const std::string& request_id, const std::string& key_id,
              const std::string& reason, Status answer) EXCLUDES(mu_);
  // Drops windows that have passed.
  void Prune(std::chrono::steady_clock::time_point now) REQUIRES(mu_);

  store::MetadataStore* const store_;
  Clock* const clock_;
  metrics::Metrics* const metrics_;
  void Count(const std::string& reason) {
    if (metrics_) metrics_->AuthFailure(reason);
  }
  mutable Mutex mu_;
  struct Window {
    std::chrono::steady_clock::time_point start;
    int failures = 0;
  };
  // By source address (an IPv6 address by its /64).
  std::map<std::string, Window> windows_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_prune_ GUARDED_BY(mu_);
};

}  // namespace pycell::auth
