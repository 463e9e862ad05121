// Picking a MetadataStore backend by the form of its location.
#include "store/metadata_store.h"

namespace pycell::store {

bool IsPostgresUrl(std::string_view url_or_path) {
  return url_or_path.starts_with("postgresql://") || url_or_path.starts_with("postgres://");
}

Result<std::unique_ptr<MetadataStore>> OpenMetadataStore(const std::string& url_or_path) {
  if (IsPostgresUrl(url_or_path)) return OpenPostgresStore(url_or_path);
  return OpenSqliteStore(url_or_path);
}

}  // namespace pycell::store
