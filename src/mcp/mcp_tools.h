// pycell's MCP tools (docs/mcp.md): execute_python, upload_file, list_files, download_file,
// create_session, end_session — each a translation of its arguments into the Service calls the
// equivalent REST /v1 routes make, checking first (ToolContext::Require) the permission those
// routes need, and of the Service's objects into MCP content (text, image, resource_link,
// embedded resource) and structuredContent. No logic of their own.
//
// Thread-safety: the tools may run concurrently; the Service must outlive them.
#pragma once

#include <vector>

#include "mcp/mcp_server.h"

namespace pycell::service {
class Service;
}

namespace pycell::mcp {

// Files larger than this are not embedded by download_file (the tool says to use REST instead).
inline constexpr uint64_t kMaxEmbeddedBytes = 16ull << 20;

std::vector<Tool> PycellTools(service::Service* service);

// pycell's resources (read through download_file): pycell://files/{file_id} (a stored file, as
// the artifact links of execute_python name them) and pycell://sessions/{session_id}/files/{path}
// (a file in a session's /mnt/data).
Result<ResourceCall> PycellResource(const std::string& uri);
Json PycellResourceTemplates();

}  // namespace pycell::mcp
