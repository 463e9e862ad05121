// The Azure Container Apps dynamic sessions data plane (Python code interpreter), as pycell speaks
// it: request parsing and response shaping, pure functions from request JSON and pycell's typed
// records (the execution record, the session row) to Azure's JSON. The HTTP binding
// (server/aca_routes.cc) calls these and the Service; nothing here knows HTTP or holds state.
//
// Where each shape comes from (docs/aca.md has the full table):
//  - Legacy contract (api-version 2024-02-02-preview, 2024-08-02-preview): the bodies the
//    framework clients send and the fields they read — langchain-ai/langchain
//    libs/partners/azure-dynamic-sessions/langchain_azure_dynamic_sessions/tools/sessions.py,
//    microsoft/semantic-kernel python/semantic_kernel/core_plugins/sessions_python_tool/
//    sessions_python_plugin.py (+ sessions_python_settings.py, sessions_remote_file_metadata.py),
//    microsoft/autogen python/packages/autogen-ext/src/autogen_ext/code_executors/azure/
//    _azure_container_code_executor.py, run-llama/llama_index llama-index-integrations/tools/
//    llama-index-tools-azure-code-interpreter/.../base.py — and Microsoft's dynamic-sessions
//    samples README ("API version 2024-08-02-preview and before": `$id`, `executionResult`,
//    the `value[].properties` file list with `filename`, `size`, `lastModifiedTime`).
//  - Current contract (2024-10-02-preview and later): the same README ("API version
//    2024-10-02-preview and onwards": executions with `id`, `identifier`, `sessionId`,
//    `executionType`, `status`, `result{stdout, stderr, executionResult,
//    executionTimeInMilliseconds}`; files as `name`, `sizeInBytes`, `lastModifiedAt`,
//    `contentType`, `type: "File"`), and Microsoft Learn's session management endpoints
//    (`/session`, `/listSessions` answering `value[]` of `identifier`, `createdAt`,
//    `lastAccessedAt`, `expireAt`).
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "service/results.h"

namespace pycell::aca {

using Json = nlohmann::json;

// The two request/response contracts, chosen by ?api-version=.
enum class Contract { kLegacy, kCurrent };

// The api-versions pycell answers, oldest first.
const std::vector<std::string>& SupportedApiVersions();
// The contract of `api_version`; InvalidArgument naming the supported versions when it is
// missing or unknown (Azure refuses an unsupported api-version with 400 too).
Result<Contract> ParseApiVersion(const std::string& api_version);

// OK when `identifier` is 4–128 characters, each a letter, a digit or one of |-&^%$#(){}[];<>
// (the characters Microsoft Learn's "Session identifiers" allows); else InvalidArgument saying so.
Status CheckIdentifier(const std::string& identifier);

// One cell to run, from either contract's body.
struct ExecuteRequest {
  std::string code;
  std::optional<std::chrono::seconds> timeout;        // timeoutInSeconds
  std::optional<uint64_t> output_streams_max_length;  // outputStreamsMaxLength (current)
  bool asynchronous = false;  // executionType "asynchronous": run to completion all the same.
};

// Legacy: {"properties": {"codeInputType": "inline", "executionType": "synchronous", "code",
// "timeoutInSeconds"?, "identifier"?}}. Current: the same fields at the top level, plus
// "outputStreamsMaxLength". Field names as the clients send them; values of codeInputType and
// executionType compared without case ("Synchronous" in Microsoft's samples). Unknown fields
// are ignored, as Azure does. InvalidArgument for anything malformed.
Result<ExecuteRequest> ParseLegacyExecute(std::string_view body);
Result<ExecuteRequest> ParseExecution(std::string_view body);

// What the cell gave back, as Azure puts it in `result` / `executionResult`: a PNG (the last
// image of the cell: a matplotlib figure or a displayed image) as {"type": "image", "format":
// "png", "base64_data"}; else the last expression's value — application/json as JSON, a plain
// number literal as a number, other text/plain as a string; "" when there was none.
Json ResultOf(const session::ExecutionRecord& execution);
// stderr with the error (ename: evalue and the traceback) appended, as Azure reports a failure.
std::string StderrOf(const session::ExecutionRecord& execution);

// Legacy answer: {"properties": {"$id", "status": "Success"|"Failure", "stdout", "stderr",
// "result", "executionResult", "executionTimeInMilliseconds"}}.
Json LegacyExecuteResponse(const session::ExecutionRecord& execution);
// Current answer: {id, identifier, sessionId, executionType, status: "Succeeded"|"Failed"|
// "Cancelled", result: {stdout, stderr, executionResult, executionTimeInMilliseconds}}, stdout
// and stderr cut to `max_length` characters when given.
Json ExecutionResponse(const session::ExecutionRecord& execution, const std::string& identifier,
                       bool asynchronous, std::optional<uint64_t> max_length = std::nullopt);

// A file in /mnt/data named relative to it: "/mnt/data/x.csv" and "x.csv" both give "x.csv".
// InvalidArgument for an empty name, "..", "." or empty segments, NUL, or (with `top_level`) a
// name inside a folder — uploads land at the top of /mnt/data.
Result<std::string> SessionFileName(const std::string& raw, bool top_level);

// One file of a session's /mnt/data in each contract's shape: legacy {"$id", "properties":
// {"$id", "filename", "size", "lastModifiedTime", "type"}}; current {"name", "sizeInBytes",
// "lastModifiedAt", "contentType", "type": "File"}.
Json LegacyFileEntry(const service::SessionFile& file);
Json CurrentFileEntry(const service::SessionFile& file);
// The whole listing as {"value": [...]} of entries.
Json FileList(const std::vector<service::SessionFile>& files, Contract contract);
// The file of `name` (relative to /mnt/data) in the listing, or NotFound.
Result<service::SessionFile> FindFile(const std::vector<service::SessionFile>& files,
                                      const std::string& name);

// A session's record as Azure's session object: {identifier, sessionId, createdAt,
// lastAccessedAt, expireAt, expiresAt, status}.
Json SessionResponse(const store::SessionRow& session, const std::string& identifier);
// {"value": [...], "nextLink": null}
Json SessionList(const std::vector<Json>& sessions);

}  // namespace pycell::aca
