// main() of every GoogleTest binary: the binary is also the zygote of the sessions its tests
// start (the engine re-executes /proc/self/exe).
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/logging.h"
#include "kernel/zygote_main.h"
#include "sandbox/mount_ns.h"

int main(int argc, char** argv) {
  if (int code; pycell::kernel::MaybeRunZygote(argc, argv, &code)) return code;
  pycell::SetLogLevel("warn");
  // Sessions' mounts stay in this process's own mount namespace (as in `pycell run`). Must
  // happen while the process has one thread.
  if (::geteuid() == 0) {
    pycell::Status s = pycell::sandbox::mount_ns::PrivatizeHostMounts();
    if (!s.ok()) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
