// The runner's frames as the server takes them during a cell (kernel/cell_protocol.h): what
// sandboxed code can write on a session's control socket, frame after frame.
//
// Input: one frame per line (the payloads; a line may be any bytes but a newline), plain text so
// that seeds read as the runner's own output. The execute in flight has id 424242 and the last
// count 3. A line starting with '@' is sent "with descriptors" (the rest of it is the payload).
// Checked, beyond ASan and UBSan (an exception escaping is a crash):
//  - a violation ends the cell: nothing after it is fed;
//  - after the completion, any further frame is a violation;
//  - the kept outputs never pass the limit, and a completed cell's count follows the last one.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kernel/cell_protocol.h"

namespace pycell::fuzz {
namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "cell_protocol_fuzz: %s\n", what);
  std::abort();
}

}  // namespace
}  // namespace pycell::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pycell::kernel;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ExecuteOptions options;
  options.max_outputs = 8;
  options.max_frames = 64;
  KernelRun run;
  CellProtocol protocol(424242, 3, options);
  bool was_done = false;
  while (!input.empty()) {
    size_t end = input.find('\n');
    std::string_view line = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
    size_t fds = 0;
    if (!line.empty() && line[0] == '@') {
      fds = 1;
      line.remove_prefix(1);
    }
    pycell::Status s = protocol.OnFrame(line, fds, 1000, &run, {});
    if (was_done && s.ok()) pycell::fuzz::Fail("a frame after the completion was taken");
    if (fds > 0 && s.ok()) pycell::fuzz::Fail("descriptors were taken");
    if (!s.ok()) {
      if (!IsProtocolViolation(s)) pycell::fuzz::Fail("a failure that is not a violation");
      break;
    }
    if (run.outputs.size() > options.max_outputs) pycell::fuzz::Fail("outputs past the limit");
    was_done = protocol.done();
    if (was_done && run.execution_count != 3 && run.execution_count != 4) {
      pycell::fuzz::Fail("a completion whose count does not follow the last one");
    }
  }
  return 0;
}
