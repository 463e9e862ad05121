// SessionRecords: the sessions part's own state, behind one mutex.
//  - The records of the sessions that run, kept in step with the store (which is written first:
//    on create, with every execution and at the end), so that a cell reads no database row.
//  - Who is ending a session through the API, for its session.end event (the end itself is
//    recorded on the pool's thread).
//  - Ends the database refused so far (locked, full): retried by the sweep and before each later
//    end, and shown in place of the stored row meanwhile, so an end is never lost.
//  - The sessions already flagged as running past usage.expected_session.
//
// Owned by the Service. Thread-safety: every method may be called from any thread; the mutex is
// held only inside a method (and across Update's `change`, which must not call back).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "auth/caller.h"
#include "common/mutex.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::service {

class SessionRecords {
 public:
  // A session just made (its record written).
  void Add(const store::SessionRow& row) EXCLUDES(mu_);
  // The live record of `id`; nullopt when it does not run (any more).
  std::optional<store::SessionRow> Find(const std::string& id) const EXCLUDES(mu_);
  // Applies `change` to the live record of `id` and returns it as changed; nullopt when it does
  // not run. A record `change` marks "ended" is no longer live afterwards.
  std::optional<store::SessionRow> Update(const std::string& id,
                                          const std::function<void(store::SessionRow*)>& change)
      EXCLUDES(mu_);
  void Remove(const std::string& id) EXCLUDES(mu_);

  // Who ends `id` through the API: set before the pool is asked to end it, cleared after.
  void SetEndedBy(const std::string& id, const auth::Caller& caller) EXCLUDES(mu_);
  void ClearEndedBy(const std::string& id) EXCLUDES(mu_);

  // At a session's end: its live record and who ended it (each if any), both taken out, and its
  // long-running flag cleared.
  struct Ended {
    std::optional<store::SessionRow> row;
    std::optional<auth::Caller> by;
  };
  Ended TakeEnded(const std::string& id) EXCLUDES(mu_);

  // An end whose write failed, kept until Recorded.
  struct UnrecordedEnd {
    store::SessionRow row;
    store::Trail trail;
  };
  void KeepUnrecorded(UnrecordedEnd end) EXCLUDES(mu_);
  // The ends waiting, by session id (oldest id first).
  std::map<std::string, UnrecordedEnd> Unrecorded() const EXCLUDES(mu_);
  void Recorded(const std::string& id) EXCLUDES(mu_);
  // Replaces `*row` by its waiting end, if one waits.
  void OverlayUnrecorded(store::SessionRow* row) const EXCLUDES(mu_);

  // Flags every live session created more than `expected_ms` before `now_ms`. Returns how many
  // are, and the records of those flagged now for the first time.
  struct LongRunning {
    int count = 0;
    std::vector<store::SessionRow> newly_flagged;
  };
  LongRunning FlagLongRunning(int64_t now_ms, int64_t expected_ms) EXCLUDES(mu_);
  size_t FlaggedLongRunning() const EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::map<std::string, store::SessionRow> active_ GUARDED_BY(mu_);
  std::map<std::string, auth::Caller> ended_by_ GUARDED_BY(mu_);
  std::map<std::string, UnrecordedEnd> unrecorded_ GUARDED_BY(mu_);
  std::set<std::string> flagged_long_ GUARDED_BY(mu_);
};

// Session slots reserved against projects' session quotas, from the quota check until the
// session's record is written (or its creation fails), so that two creations cannot both take
// the last unit. Thread-safety: any thread; the mutex is held across Reserve's `check` (a quota
// read and, on refusal, its audit event), never across a launch or file copies.
class SessionReservations {
 public:
  // Releases its slot when released or destroyed.
  class Reservation {
   public:
    Reservation(Reservation&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), project_id_(std::move(other.project_id_)) {}
    Reservation& operator=(Reservation&&) = delete;
    ~Reservation() { Release(); }
    void Release();

   private:
    friend class SessionReservations;
    Reservation(SessionReservations* owner, std::string project_id)
        : owner_(owner), project_id_(std::move(project_id)) {}
    SessionReservations* owner_;
    std::string project_id_;
  };

  // Calls `check` with the number of slots the project holds reserved now; when it is OK, takes
  // one more. `check`'s refusal is returned as is.
  Result<Reservation> Reserve(const std::string& project_id,
                              const std::function<Status(int64_t reserved)>& check) EXCLUDES(mu_);

 private:
  void Release(const std::string& project_id) EXCLUDES(mu_);
  Mutex mu_;
  std::map<std::string, int64_t> reserved_ GUARDED_BY(mu_);  // By project.
};

}  // namespace pycell::service
