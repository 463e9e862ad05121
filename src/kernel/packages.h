// The default environment: the Python packages code in a session of any pool can import, as
// listed in src/kernel/packages.json (compiled in). tests/api/test_packages.py imports every one
// in a real session and docs/packages.md gives their versions; the Azure-compatible metadata
// route and the MCP tool description say what is installed from this list.
//
// Thread-safety: immutable after the first call.
#pragma once

#include <string>
#include <vector>

namespace pycell::kernel {

struct Package {
  std::string import_name;   // "sklearn"
  std::string distribution;  // "scikit-learn"; "" when Debian ships no metadata.
  std::string debian;        // "python3-sklearn"
  std::string purpose;       // One line.
};

// The installed packages, in the file's order.
const std::vector<Package>& DefaultPackages();

// "numpy, pandas, …": the import names, for a description.
std::string DefaultPackageNames();

}  // namespace pycell::kernel
