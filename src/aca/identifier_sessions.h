// IdentifierSessions: which pycell session an Azure-style `identifier` names for a caller.
//
// An identifier is owned by the caller's principal within its project: (project, principal,
// identifier) → session id, so the same identifier from another principal is another session.
// The session is made on first use and made again when the one it named has ended (expired,
// idle, deleted). The map is in memory, on purpose: pycell ends every session when the server
// stops (end reason server_restart), so an identifier could never outlive a restart anyway —
// a persisted map would only ever point at ended sessions. Each session also carries the
// metadata {"aca_identifier": …}, so /v1 and the audit log show which identifier made it.
//
// Ownership: held by the ACA route binding for the server's lifetime. Create and IsLive are
// the Service's calls (injected so tests need no server).
//
// Thread-safety: every method may be called from any thread. Two first uses of one identifier
// at once make one session: the second waits on that identifier's entry while the first
// creates it; other identifiers are not held up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "auth/caller.h"
#include "common/mutex.h"
#include "common/status.h"

namespace pycell::aca {

class IdentifierSessions {
 public:
  // Makes a session for `identifier`; returns its id.
  using Create = std::function<Result<std::string>(const auth::Caller&, const std::string&)>;
  // OK while the session runs and the caller may use it.
  using IsLive = std::function<Status(const auth::Caller&, const std::string&)>;

  IdentifierSessions(Create create, IsLive is_live)
      : create_(std::move(create)), is_live_(std::move(is_live)) {}

  // The live session `identifier` names for `caller`. With `create`, one is made when there is
  // none (or it ended); without, NotFound.
  Result<std::string> Resolve(const auth::Caller& caller, const std::string& identifier,
                              bool create);
  // Forgets `identifier` (after its session was deleted).
  void Forget(const auth::Caller& caller, const std::string& identifier);
  // Forgets the identifier that names `session_id`, which has ended (however it ended: deleted,
  // expired, killed), so that the map holds only identifiers with live sessions. A no-op for a
  // session no identifier names.
  void Prune(const std::string& session_id);
  // Identifiers held (live sessions, and first uses being made).
  size_t size();
  // The caller's identifiers with live sessions, as (identifier, session id), sorted.
  std::vector<std::pair<std::string, std::string>> List(const auth::Caller& caller);

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // project, principal, id
  struct Entry {
    explicit Entry(uint64_t n) : serial(n) {}
    const uint64_t serial;                  // Unique for the map's life (an address may be reused).
    Mutex mu;                               // Held while the session is checked or made.
    std::string session_id GUARDED_BY(mu);  // "" until made.
  };
  static Key KeyOf(const auth::Caller& caller, const std::string& identifier) {
    return {caller.project_id, caller.principal, identifier};
  }

  // Which entry made a session: Prune erases the entry only if it is still the key's (the
  // identifier may have been forgotten and made again since).
  struct Made {
    Key key;
    uint64_t serial = 0;  // The Entry's.
  };

  const Create create_;
  const IsLive is_live_;
  Mutex mu_;  // Taken after an Entry's mu, never before it.
  std::map<Key, std::shared_ptr<Entry>> entries_ GUARDED_BY(mu_);
  std::map<std::string, Made> made_ GUARDED_BY(mu_);  // By session id.
  uint64_t serials_ GUARDED_BY(mu_) = 0;
};

}  // namespace pycell::aca
