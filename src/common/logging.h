// Logging: spdlog behind pycell's own names, so that no header but this one knows spdlog.
// LOG_INFO("started {} sessions", n) — fmt syntax. Thread-safe. Logs go to stderr.
#pragma once

#include <spdlog/spdlog.h>

#define LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)

namespace pycell {
// "debug", "info", "warn", "error" or "off".
void SetLogLevel(const char* level);
}  // namespace pycell
