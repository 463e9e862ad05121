// REST API v1 (docs/openapi.json): registers its routes — every one in the table in rest_v1.cc —
// on a Router, translating HTTP to the Service's domain calls and back.
#pragma once

#include <string>

#include "server/router.h"
#include "service/service.h"

namespace pycell::server {

void AddRestV1Routes(Router* router, service::Service* service, const std::string* openapi_json);
// GET /metrics (Prometheus text). On the main router it needs metrics.read (AddRestV1Routes adds
// it); on the scrape-only listener (server.metrics_listen, loopback) it is public.
void AddMetricsRoute(Router* router, service::Service* service, auth::Permission permission);

}  // namespace pycell::server
