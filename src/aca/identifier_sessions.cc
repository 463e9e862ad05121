#include "aca/identifier_sessions.h"

namespace pycell::aca {

Result<std::string> IdentifierSessions::Resolve(const auth::Caller& caller,
                                                const std::string& identifier, bool create) {
  std::shared_ptr<Entry> entry;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(KeyOf(caller, identifier));
    if (it != entries_.end()) {
      entry = it->second;
    } else if (create) {
      entry = std::make_shared<Entry>(++serials_);
      entries_.emplace(KeyOf(caller, identifier), entry);
    }
  }
  auto not_found = [&] {
    return Status::NotFound("no session has identifier " + identifier +
                            "; running code with it (POST code/execute or executions) makes one");
  };
  if (!entry) return not_found();
  MutexLock lock(entry->mu);
  if (!entry->session_id.empty() && is_live_(caller, entry->session_id).ok()) {
    return entry->session_id;
  }
  if (!create) return not_found();
  ASSIGN_OR_RETURN(std::string made, create_(caller, identifier));
  {
    MutexLock map_lock(mu_);
    if (!entry->session_id.empty()) made_.erase(entry->session_id);
    made_[made] = Made{KeyOf(caller, identifier), entry->serial};
    // Pruned meanwhile (its last session ended while this one was made): back in the map.
    entries_.try_emplace(KeyOf(caller, identifier), entry);
  }
  entry->session_id = std::move(made);
  return entry->session_id;
}

void IdentifierSessions::Prune(const std::string& session_id) {
  MutexLock lock(mu_);
  auto made = made_.find(session_id);
  if (made == made_.end()) return;
  auto entry = entries_.find(made->second.key);
  if (entry != entries_.end() && entry->second->serial == made->second.serial) {
    entries_.erase(entry);
  }
  made_.erase(made);
}

size_t IdentifierSessions::size() {
  MutexLock lock(mu_);
  return entries_.size();
}

void IdentifierSessions::Forget(const auth::Caller& caller, const std::string& identifier) {
  MutexLock lock(mu_);
  entries_.erase(KeyOf(caller, identifier));
}

std::vector<std::pair<std::string, std::string>> IdentifierSessions::List(
    const auth::Caller& caller) {
  std::vector<std::pair<std::string, std::shared_ptr<Entry>>> mine;
  {
    MutexLock lock(mu_);
    for (const auto& [key, entry] : entries_) {
      if (std::get<0>(key) == caller.project_id && std::get<1>(key) == caller.principal) {
        mine.emplace_back(std::get<2>(key), entry);
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> live;
  for (const auto& [identifier, entry] : mine) {
    MutexLock lock(entry->mu);
    if (!entry->session_id.empty() && is_live_(caller, entry->session_id).ok()) {
      live.emplace_back(identifier, entry->session_id);
    }
  }
  return live;
}

}  // namespace pycell::aca
