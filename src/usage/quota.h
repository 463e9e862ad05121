// Quotas per project (docs/access.md): concurrent sessions, sessions per day, CPU hours per day,
// storage bytes. Each check answers ResourceExhausted with reason "quota_exceeded", a message that
// names the quota, its limit and when it resets, and Retry-After for the daily ones. Days are UTC.
//
// The checks read counts and then the caller acts: two requests racing past the last unit can
// both pass. Service serialises session creation per project to close that for sessions.
//
// Thread-safety: functions over a thread-safe store.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::usage {

// The quota a quota_exceeded Status names ("sessions_per_day", …), or "" for another Status.
std::string QuotaOf(const Status& status);

// Midnight UTC at or before `now_ms`.
int64_t DayStartMs(int64_t now_ms);

// Before a session is created: concurrent sessions, sessions today, CPU today. `pending`:
// sessions of the project that passed this check and are being made, not yet on record.
Status CheckSessionQuotas(store::MetadataStore& store, const store::ProjectRow& project,
                          int64_t now_ms, int64_t pending = 0);
// Before a cell runs: CPU today.
Status CheckCpuQuota(store::MetadataStore& store, const store::ProjectRow& project, int64_t now_ms);
// Before `adding_bytes` more are stored.
Status CheckStorageQuota(store::MetadataStore& store, const store::ProjectRow& project,
                         int64_t adding_bytes);

}  // namespace pycell::usage
