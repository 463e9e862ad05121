// The Azure Container Apps dynamic sessions data plane (Python code interpreter) under a prefix
// (server.aca_prefix, default /aca): what LangChain, Semantic Kernel, LlamaIndex and AutoGen call
// when their pool management endpoint is http://host:port/aca. Each route declares the permission
// of its /v1 equivalent and translates into the same Service calls; the shapes live in
// aca/aca_api.h, the identifier → session map in aca/identifier_sessions.h. docs/aca.md.
#pragma once

#include <string>

#include "server/router.h"
#include "service/service.h"

namespace pycell::server {

// `prefix` is "" or starts with "/" and does not end with one ("/aca").
void AddAcaRoutes(Router* router, service::Service* service, const std::string& prefix);

}  // namespace pycell::server
