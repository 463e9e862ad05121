#include "auth/roles.h"

namespace pycell::auth {
namespace {

struct Grant {
  Permission permission;
  const char* name;
  bool admin, operator_, user, auditor;
};

// The one table. docs/access.md shows the same, with the routes each permission covers.
constexpr Grant kGrants[] = {
    //  permission                    name                 admin  oper   user   auditor
    {Permission::kPublic, "public", true, true, true, true},
    {Permission::kWhoAmI, "whoami", true, true, true, true},
    {Permission::kFilesWrite, "files.write", true, false, true, false},
    {Permission::kFilesRead, "files.read", true, false, true, true},
    {Permission::kFilesContent, "files.content", true, false, true, false},
    {Permission::kLineageRead, "lineage.read", true, false, true, true},
    {Permission::kSessionsCreate, "sessions.create", true, false, true, false},
    {Permission::kSessionsRead, "sessions.read", true, true, true, true},
    {Permission::kSessionsEnd, "sessions.end", true, true, true, false},
    {Permission::kSessionsFiles, "sessions.files", true, false, true, false},
    {Permission::kExecutionsRun, "executions.run", true, false, true, false},
    {Permission::kExecutionsRead, "executions.read", true, false, true, true},
    {Permission::kAuditRead, "audit.read", true, false, false, true},
    {Permission::kEvidenceExport, "evidence.export", true, false, false, true},
    {Permission::kUsageRead, "usage.read", true, false, false, true},
    {Permission::kPoolsRead, "pools.read", true, true, false, false},
    {Permission::kConfigRead, "config.read", true, true, false, false},
    {Permission::kMetricsRead, "metrics.read", true, true, false, true},
    {Permission::kProjectsRead, "projects.read", true, true, true, true},
    {Permission::kProjectsManage, "projects.manage", true, false, false, false},
    {Permission::kKeysManage, "keys.manage", true, false, false, false},
};

const Grant& GrantFor(Permission permission) {
  for (const Grant& grant : kGrants) {
    if (grant.permission == permission) return grant;
  }
  __builtin_unreachable();  // Every enumerator has a row (checked by roles_test).
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kUser:
      return "user";
    case Role::kAuditor:
      return "auditor";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kAdmin, Role::kOperator, Role::kUser, Role::kAuditor}) {
    if (name == RoleName(role)) return role;
  }
  return std::nullopt;
}

const char* PermissionName(Permission permission) { return GrantFor(permission).name; }

bool RoleAllows(Role role, Permission permission) {
  const Grant& grant = GrantFor(permission);
  switch (role) {
    case Role::kAdmin:
      return grant.admin;
    case Role::kOperator:
      return grant.operator_;
    case Role::kUser:
      return grant.user;
    case Role::kAuditor:
      return grant.auditor;
  }
  return false;
}

}  // namespace pycell::auth
