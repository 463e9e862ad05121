#include "process_memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace pycell::bench {

std::optional<ProcessMemory> ReadProcessMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  ProcessMemory memory;
  bool any = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    uint64_t kb = 0;
    if (!(fields >> key >> kb)) continue;
    if (key == "Rss:") {
      memory.rss_bytes += kb * 1024;
      any = true;
    } else if (key == "Pss:") {
      memory.pss_bytes += kb * 1024;
    } else if (key == "Private_Clean:" || key == "Private_Dirty:") {
      memory.uss_bytes += kb * 1024;
    }
  }
  if (!any) return std::nullopt;
  return memory;
}

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so start after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace pycell::bench
