// Roles and permissions: what each of the four roles may do, in one table (roles.cc). Every
// route declares the one permission it needs (server/rest_v1.cc); the server checks it before the
// handler runs. Which objects a caller may see (its project, its sessions) is the other half of
// the check, in caller.h.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pycell::auth {

enum class Role { kAdmin, kOperator, kUser, kAuditor };

enum class Permission {
  kPublic,        // No key needed (health, readiness, the API description).
  kWhoAmI,        // Any valid key.
  kFilesWrite,    // Upload, delete.
  kFilesRead,     // File records (metadata).
  kFilesContent,  // File bytes.
  kLineageRead,
  kSessionsCreate,
  kSessionsRead,
  kSessionsEnd,
  kSessionsFiles,  // Place files into /mnt/data, list it.
  kExecutionsRun,
  kExecutionsRead,  // Execution records: code, outputs, timings.
  kAuditRead,
  kEvidenceExport,  // Signed evidence bundles (GET /v1/evidence).
  kUsageRead,
  kPoolsRead,
  kConfigRead,
  kMetricsRead,  // GET /metrics.
  kProjectsRead,
  kProjectsManage,
  kKeysManage,
};

const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);
// "files.write", … as docs/access.md names them.
const char* PermissionName(Permission permission);

// Whether `role` holds `permission` (the table in docs/access.md).
bool RoleAllows(Role role, Permission permission);

}  // namespace pycell::auth
