// The sandbox policy as JSON, for the trip from the server to the zygote.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "sandbox/policy.h"

namespace pycell::kernel {

std::string EncodePolicy(const sandbox::Policy& policy);
Result<sandbox::Policy> DecodePolicy(std::string_view json);

}  // namespace pycell::kernel
