// ProcessMemory: what one host process costs in memory, from /proc/<pid>/smaps_rollup.
//   USS (unique set size) = Private_Clean + Private_Dirty: freed if the process ended.
//   PSS (proportional set size): private pages plus each shared page divided by its sharers, so
//   a zygote's pages shared by K sessions count 1/(K+1) to each.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace pycell::bench {

struct ProcessMemory {
  uint64_t uss_bytes = 0;
  uint64_t pss_bytes = 0;
  uint64_t rss_bytes = 0;

  ProcessMemory& operator+=(const ProcessMemory& other) {
    uss_bytes += other.uss_bytes;
    pss_bytes += other.pss_bytes;
    rss_bytes += other.rss_bytes;
    return *this;
  }
};

// Empty when the process is gone or its smaps_rollup cannot be read.
std::optional<ProcessMemory> ReadProcessMemory(pid_t pid);
// The parent pid as the host sees it, or -1.
pid_t ParentOf(pid_t pid);

}  // namespace pycell::bench
