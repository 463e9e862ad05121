#include "service/session_records.h"

namespace pycell::service {

void SessionRecords::Add(const store::SessionRow& row) {
  MutexLock lock(mu_);
  active_[row.id] = row;
}

std::optional<store::SessionRow> SessionRecords::Find(const std::string& id) const {
  MutexLock lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return std::nullopt;
  return it->second;
}

std::optional<store::SessionRow> SessionRecords::Update(
    const std::string& id, const std::function<void(store::SessionRow*)>& change) {
  MutexLock lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return std::nullopt;
  change(&it->second);
  store::SessionRow row = it->second;
  if (row.status == "ended") active_.erase(it);
  return row;
}

void SessionRecords::Remove(const std::string& id) {
  MutexLock lock(mu_);
  active_.erase(id);
}

void SessionRecords::SetEndedBy(const std::string& id, const auth::Caller& caller) {
  MutexLock lock(mu_);
  ended_by_[id] = caller;
}

void SessionRecords::ClearEndedBy(const std::string& id) {
  MutexLock lock(mu_);
  ended_by_.erase(id);
}

SessionRecords::Ended SessionRecords::TakeEnded(const std::string& id) {
  Ended ended;
  MutexLock lock(mu_);
  if (auto active = active_.find(id); active != active_.end()) {
    ended.row = std::move(active->second);
    active_.erase(active);
  }
  flagged_long_.erase(id);
  if (auto by = ended_by_.find(id); by != ended_by_.end()) {
    ended.by = std::move(by->second);
    ended_by_.erase(by);
  }
  return ended;
}

void SessionRecords::KeepUnrecorded(UnrecordedEnd end) {
  MutexLock lock(mu_);
  std::string id = end.row.id;
  unrecorded_[id] = std::move(end);
}

std::map<std::string, SessionRecords::UnrecordedEnd> SessionRecords::Unrecorded() const {
  MutexLock lock(mu_);
  return unrecorded_;
}

void SessionRecords::Recorded(const std::string& id) {
  MutexLock lock(mu_);
  unrecorded_.erase(id);
}

void SessionRecords::OverlayUnrecorded(store::SessionRow* row) const {
  MutexLock lock(mu_);
  auto it = unrecorded_.find(row->id);
  if (it != unrecorded_.end()) *row = it->second.row;
}

SessionRecords::LongRunning SessionRecords::FlagLongRunning(int64_t now_ms, int64_t expected_ms) {
  LongRunning result;
  MutexLock lock(mu_);
  for (const auto& [id, row] : active_) {
    if (now_ms - row.created_at_ms <= expected_ms) continue;
    ++result.count;
    if (flagged_long_.insert(id).second) result.newly_flagged.push_back(row);
  }
  return result;
}

size_t SessionRecords::FlaggedLongRunning() const {
  MutexLock lock(mu_);
  return flagged_long_.size();
}

void SessionReservations::Reservation::Release() {
  if (owner_ == nullptr) return;
  owner_->Release(project_id_);
  owner_ = nullptr;
}

Result<SessionReservations::Reservation> SessionReservations::Reserve(
    const std::string& project_id, const std::function<Status(int64_t reserved)>& check) {
  MutexLock lock(mu_);
  int64_t reserved = 0;
  if (auto it = reserved_.find(project_id); it != reserved_.end()) reserved = it->second;
  RETURN_IF_ERROR(check(reserved));
  ++reserved_[project_id];
  return Reservation(this, project_id);
}

void SessionReservations::Release(const std::string& project_id) {
  MutexLock lock(mu_);
  if (--reserved_[project_id] == 0) reserved_.erase(project_id);
}

}  // namespace pycell::service
