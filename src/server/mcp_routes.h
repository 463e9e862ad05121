// The Model Context Protocol's Streamable HTTP transport at /mcp (docs/mcp.md): POST carries one
// JSON-RPC message and is answered with JSON, or — for tools/call when the client accepts it —
// with Server-Sent Events that carry progress notifications before the result; DELETE ends the
// MCP session named by Mcp-Session-Id; GET is not offered (405, as the transport allows). The
// Bearer key is checked as for /v1 (any valid key reaches the endpoint); each tool then checks
// the permission of the REST route it stands for. The protocol itself is src/mcp's.
#pragma once

#include "server/router.h"
#include "service/service.h"

namespace pycell::server {

void AddMcpRoutes(Router* router, service::Service* service);

}  // namespace pycell::server
