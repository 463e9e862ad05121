#include "kernel/packages.h"

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "kernel/packages_json.h"

namespace pycell::kernel {
namespace {

std::string Text(const nlohmann::json& entry, const char* key) {
  auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<Package> Parse() {
  // The repository's own file, compiled in: a broken one is a bug the tests catch.
  nlohmann::json file = nlohmann::json::parse(kPackagesJson, nullptr, /*allow_exceptions=*/false);
  CHECK(file.is_object() && file.contains("packages") && file["packages"].is_array());
  std::vector<Package> packages;
  for (const nlohmann::json& entry : file["packages"]) {
    CHECK(entry.is_object());
    packages.push_back({Text(entry, "import"), Text(entry, "distribution"), Text(entry, "debian"),
                        Text(entry, "purpose")});
  }
  return packages;
}

}  // namespace

const std::vector<Package>& DefaultPackages() {
  static const std::vector<Package> packages = Parse();
  return packages;
}

std::string DefaultPackageNames() {
  std::string names;
  for (const Package& p : DefaultPackages()) names += (names.empty() ? "" : ", ") + p.import_name;
  return names;
}

}  // namespace pycell::kernel
