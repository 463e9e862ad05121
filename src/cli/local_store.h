// What the commands that can work on a data dir directly share (`pycell keys|projects|audit …
// --data-dir DIR`, for when the server is down): opening the data dir's database, and who the
// changes are recorded as in the audit log.
//
// SQLite lets the server and such a command write the same database, so the commands also work
// while the server runs; they bypass its keys and roles, which is why they need the file
// permissions of the data dir (its owner, or root).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "auth/caller.h"
#include "common/status.h"
#include "store/metadata_store.h"

namespace pycell::cli {

// The store of `<data_dir>/pycell.db`. NotFound when there is no such database (a mistyped
// path must not leave a new, empty one behind).
Result<std::unique_ptr<store::MetadataStore>> OpenDataDirStore(const std::string& data_dir);

// The administrator at this terminal: Caller::Local of $SUDO_USER, else $USER, else "root"; its
// audit events name the principal "local:<who>".
auth::Caller LocalCaller();

// Now, in milliseconds since the epoch (the real wall clock).
int64_t WallNowMs();

}  // namespace pycell::cli
