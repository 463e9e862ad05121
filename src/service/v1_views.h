// The REST /v1 shapes of the Service's typed results (docs/openapi.json), built here and nowhere
// else: the REST routes send them, MCP's tools embed the session object, evidence bundles and the
// lineage report hold the file and session objects.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "audit/audit_event.h"
#include "diagnostics/diagnostics.h"
#include "service/results.h"

namespace pycell::service {

// {"id", "object": "file", "filename", "bytes", "sha256", "media_type", "purpose", "created_at",
// "expires_at"}, and for an output {"session_id", "execution_id", "path"} (null for an outputs
// file, which was never in the session).
nlohmann::json FileView(const FileInfo& file);

// {"id", "object": "session", "pool", "project_id", "principal", "status", "end_reason",
// "created_at", "last_active_at", "expires_at", "ended_at", "execution_count", "cpu_seconds",
// "peak_memory_bytes", "over_expected_duration", "limits", "metadata", "forked_from"}.
nlohmann::json SessionView(const SessionInfo& session);
// The new session's object with {"restored_from", "restored_cells", "restore_differences"}.
nlohmann::json RestoredSessionView(const RestoredSession& restored);

// {"object": "list", "data": [{"file_id", "path": "/mnt/data/…", "bytes"}...]}.
nlohmann::json PlacedFilesView(const std::vector<PlacedFile>& placed);
// {"path": "/mnt/data/…", "bytes", "modified_at"}, and the listing of them as {"object": "list",
// "data": [...]}.
nlohmann::json SessionFileView(const SessionFile& file);
nlohmann::json SessionFilesView(const std::vector<SessionFile>& files);
// {"object": "session.file", "path": "/mnt/data/…", "deleted": true}.
nlohmann::json RemovedSessionFileView(const std::string& path);

// The execution object: the stored record, parsed (null if the store holds something else).
nlohmann::json ExecutionView(const ExecutionInfo& execution);

// The session's free-form metadata as an object ({} when the record holds none).
nlohmann::json MetadataView(const store::SessionRow& row);

// RFC 3339 (UTC, milliseconds) of a time in ms since the epoch; null for 0 ("never").
nlohmann::json TimeOrNull(int64_t ms);

// {"object": "list", "data": [view(item)...], "has_more", "last_id"}.
inline const std::string& IdOf(const FileInfo& file) { return file.id; }
inline const std::string& IdOf(const SessionInfo& session) { return session.row.id; }
inline const std::string& IdOf(const ExecutionInfo& execution) { return execution.record.id; }
template <typename T, typename View>
nlohmann::json ListView(const Listing<T>& list, View view) {
  nlohmann::json data = nlohmann::json::array();
  for (const T& item : list.data) data.push_back(view(item));
  return {{"object", "list"},
          {"data", std::move(data)},
          {"has_more", list.has_more},
          {"last_id",
           list.data.empty() ? nlohmann::json(nullptr) : nlohmann::json(IdOf(list.data.back()))}};
}

// {"object": "lineage", "file", "produced_by": origin or null, "used_by": [{"session_id",
// "placed_at", "executions": [{"id", "status", "code_sha256", "started_at"}...]}...]}, where an
// origin is {"execution": {"id", "status", "code", "code_sha256", "started_at", "duration_ms",
// "reported_fields": ["status"]}, "session": {"id", "pool", "project_id", "principal",
// "created_at", "limits", "metadata", "agent_id", "thread_id", "run_id"} or null, "inputs":
// [{"file_id", "filename", "sha256", "via", "exists", "produced_by"?: origin}...]}.
nlohmann::json LineageView(const FileLineage& lineage);

// {"object": "replay", "original_session_id", "replay_session_id", "kept", "all_equal",
// "cells": [{"index", "original_execution_id", "replay_execution_id" (null when not run),
// "equal", "differences": [{"what", "original", "replay"}...], "notes": [...]}...],
// "pixel_check_execution_id" (null when none ran)}.
nlohmann::json ReplayView(const ReplayReport& report);

// Operations. {"object": "list", "data": [{"name", "object": "pool", "ready", "target_ready",
// "active", "executing", "preload", "limits"}...], "has_more": false}.
nlohmann::json PoolsView(const std::vector<PoolInfo>& pools);
// The configuration in force as the configuration file's keys (nothing secret is in it), with
// "object": "config".
nlohmann::json ConfigView(const ServiceConfig& config);
// {"applied": [{"key", "from", "to"}...], "needs_restart": [...]}.
nlohmann::json ReloadView(const ReloadOutcome& outcome);
// {"object": "evidence_public_key", "algorithm": "Ed25519", "pem", "sha256"}.
nlohmann::json EvidenceKeyView(const EvidenceKeyInfo& key);
// {"object": "service", "version", "build", "started_at", "uptime_s", "listen", "metrics_listen",
// "data_dir", "store", "host_protections", "pools", "keys_by_role", "evidence_public_key",
// "config"}: what `pycell show` prints.
nlohmann::json ServiceStatusView(const ServiceStatus& status);
// {"object": "list", "data": [{"name", "sink", "categories", "sent", "failed", "dropped",
// "queued", "last_error"}...]}.
nlohmann::json DiagnosticSettingsView(
    const std::vector<diagnostics::Diagnostics::SinkState>& settings);

// {"object": "list", "data": [event...], "has_more", "last_seq"}: the audit log's page (the
// events as audit::EventToJson writes them).
nlohmann::json AuditListView(const Listing<audit::AuditEvent>& events);

}  // namespace pycell::service
