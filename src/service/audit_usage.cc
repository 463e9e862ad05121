// The audit log and usage, within the caller's scope (service.h).
#include "service/service.h"

namespace pycell::service {

Result<Listing<audit::AuditEvent>> Service::ListAudit(const auth::Caller& caller,
                                                      store::AuditFilter filter,
                                                      const std::string& project) {
  ASSIGN_OR_RETURN(filter.project_id, identity_->QueryScope(caller, project));
  const int limit = filter.limit;
  filter.limit = limit + 1;  // One more tells whether another page follows.
  Listing<audit::AuditEvent> page;
  ASSIGN_OR_RETURN(page.data, store_->ListAudit(filter));
  page.has_more = page.data.size() > static_cast<size_t>(limit);
  if (page.has_more) page.data.resize(static_cast<size_t>(limit));
  return page;
}

Result<usage::Report> Service::Usage(const auth::Caller& caller, const std::string& group_by,
                                     int64_t from_ms, int64_t to_ms, const std::string& project) {
  usage::UsageQuery query;
  query.group_by = group_by;
  query.from_ms = from_ms;
  query.to_ms = to_ms;
  ASSIGN_OR_RETURN(query.project_id, identity_->QueryScope(caller, project));
  return usage::MakeReport(*store_, LiveConfig()->prices, query, NowMs());
}

}  // namespace pycell::service
