#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace pycell {
void SetLogLevel(const char* level) {
  static auto logger = [] {
    auto l = spdlog::stderr_color_mt("pycell");
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(l);
    return l;
  }();
  spdlog::set_level(spdlog::level::from_str(level));
}
}  // namespace pycell
