#include "common/ip_address.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstring>

namespace pycell {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// inet_pton wants a NUL-terminated string; addresses are short.
std::optional<IpAddress> ParseBare(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN + 1] = {};
  std::memcpy(buffer, text.data(), text.size());
  in_addr v4{};
  if (::inet_pton(AF_INET, buffer, &v4) == 1) return IpAddress::FromV4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (::inet_pton(AF_INET6, buffer, &v6) == 1) return IpAddress::FromV6(v6.s6_addr);
  return std::nullopt;
}

bool AllDigits(std::string_view text) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool InAny(const IpAddress& address, const std::vector<IpRange>& ranges) {
  for (const IpRange& range : ranges) {
    if (range.Contains(address)) return true;
  }
  return false;
}

}  // namespace

IpAddress IpAddress::FromV4(uint32_t host_order) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), kMappedPrefix, sizeof kMappedPrefix);
  a.bytes_[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[15] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::FromV6(const uint8_t bytes[16]) {
  IpAddress a;
  std::memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text, bool allow_port) {
  if (!allow_port) return ParseBare(text);
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && AllDigits(rest.substr(1)))) return std::nullopt;
    auto address = ParseBare(text.substr(1, close - 1));
    if (!address || address->is_v4()) return std::nullopt;  // "[10.0.0.1]" is no address.
    return address;
  }
  size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    // One colon: IPv4 with a port (an IPv6 address has at least two).
    if (!AllDigits(text.substr(colon + 1))) return std::nullopt;
    auto address = ParseBare(text.substr(0, colon));
    if (!address || !address->is_v4()) return std::nullopt;
    return address;
  }
  return ParseBare(text);
}

bool IpAddress::is_v4() const {
  return std::memcmp(bytes_.data(), kMappedPrefix, sizeof kMappedPrefix) == 0;
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    ::inet_ntop(AF_INET, bytes_.data() + 12, text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, bytes_.data(), text, sizeof text);
  }
  return text;
}

std::string IpAddress::ConnectionKey() const {
  if (is_v4()) return ToString();
  IpAddress network = *this;
  std::memset(network.bytes_.data() + 8, 0, 8);
  return network.ToString() + "/64";
}

Result<IpRange> IpRange::Parse(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  size_t slash = text.find('/');
  auto address = ParseBare(text.substr(0, slash));
  if (!address) {
    return Status::InvalidArgument(quoted +
                                   " is not an IP address or range (e.g. \"10.0.0.0/8\", "
                                   "\"192.168.1.7\", \"2001:db8::/32\")");
  }
  int max = address->is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (!AllDigits(digits) || digits.size() > 3) {
      return Status::InvalidArgument(quoted + ": the prefix length after '/' must be a number");
    }
    prefix = std::stoi(std::string(digits));
    if (prefix > max) {
      return Status::InvalidArgument(quoted + ": the prefix length must be at most " +
                                     std::to_string(max));
    }
  }
  IpRange range;
  range.base_ = *address;
  range.prefix_ = prefix + (address->is_v4() ? 96 : 0);
  // Host bits set ("10.0.0.1/8") are more likely a typo than a wish: refuse them.
  for (int bit = range.prefix_; bit < 128; ++bit) {
    if (address->bytes()[bit / 8] & (0x80 >> (bit % 8))) {
      return Status::InvalidArgument(
          quoted + ": host bits are set after the prefix (did you mean " + "the network address?)");
    }
  }
  return range;
}

bool IpRange::Contains(const IpAddress& address) const {
  const auto& a = address.bytes();
  const auto& b = base_.bytes();
  int full = prefix_ / 8;
  if (std::memcmp(a.data(), b.data(), static_cast<size_t>(full)) != 0) return false;
  int rest = prefix_ % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[static_cast<size_t>(full)] & mask) == (b[static_cast<size_t>(full)] & mask);
}

std::string IpRange::ToString() const {
  return base_.ToString() + "/" + std::to_string(base_.is_v4() ? prefix_ - 96 : prefix_);
}

Result<std::vector<IpRange>> ParseIpRanges(const std::vector<std::string>& texts,
                                           std::string_view what) {
  std::vector<IpRange> ranges;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto range = IpRange::Parse(texts[i]);
    if (!range.ok()) {
      return Status::InvalidArgument(std::string(what) + "[" + std::to_string(i) +
                                     "]: " + range.status().message());
    }
    ranges.push_back(*range);
  }
  return ranges;
}

IpAddress ClientAddress(const IpAddress& peer, std::string_view forwarded_for,
                        const std::vector<IpRange>& trusted) {
  if (!InAny(peer, trusted)) return peer;
  IpAddress client = peer;
  // Right to left; at most 64 hops (the head is bounded anyway; this bounds the work).
  std::string_view rest = forwarded_for;
  for (int hops = 0; hops < 64 && !rest.empty(); ++hops) {
    size_t comma = rest.rfind(',');
    std::string_view entry = Trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (entry.empty()) continue;  // "a, , b" and a trailing comma: no entry.
    auto address = IpAddress::Parse(entry, /*allow_port=*/true);
    if (!address) break;  // Not an address: nothing further left can be believed.
    client = *address;
    if (!InAny(client, trusted)) break;
  }
  return client;
}

}  // namespace pycell
