// IpAddress and IpRange: IPv4 and IPv6 addresses held as 16 bytes (an IPv4 address as its
// IPv4-mapped IPv6 form, so that "::ffff:10.0.0.1" and "10.0.0.1" are one client), and address
// ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", a bare address being a /32 or /128).
// They decide who the client of a request is: server.trusted_proxies lists the ranges whose
// X-Forwarded-For header is believed (ClientAddress below), and the per-address connection limit
// counts connections by address.
//
// Thread-safety: plain values; every function is pure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace pycell {

class IpAddress {
 public:
  // "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1"; with `allow_port`, also "10.0.0.1:8080",
  // "[2001:db8::1]" and "[2001:db8::1]:8080" (the forms proxies write in X-Forwarded-For).
  // nullopt for anything else: names, "unknown", obfuscated identifiers, zone ids, spaces.
  static std::optional<IpAddress> Parse(std::string_view text, bool allow_port = false);
  static IpAddress FromV4(uint32_t host_order);
  static IpAddress FromV6(const uint8_t bytes[16]);

  bool is_v4() const;  // Held as ::ffff:a.b.c.d.
  // "10.0.0.1" for IPv4 (mapped ones too), RFC 5952 text for IPv6 ("2001:db8::1").
  std::string ToString() const;
  // What connections are counted by for the per-address limit: the address itself for IPv4, its
  // /64 for IPv6 (one host usually holds a whole /64, so counting single IPv6 addresses would
  // limit nothing).
  std::string ConnectionKey() const;
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<uint8_t, 16> bytes_{};
};

class IpRange {
 public:
  // "10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1". InvalidArgument naming `text` for a
  // malformed address, a prefix out of range (IPv4: 0-32, IPv6: 0-128), or host bits set
  // ("10.0.0.1/8": probably a mistake for 10.0.0.0/8).
  static Result<IpRange> Parse(std::string_view text);

  bool Contains(const IpAddress& address) const;
  std::string ToString() const;

 private:
  IpAddress base_;
  int prefix_ = 128;  // Over the 16-byte form: an IPv4 /8 is a /104 here.
};

// Parses every range; the first failure names its position ("server.trusted_proxies[2]: …").
Result<std::vector<IpRange>> ParseIpRanges(const std::vector<std::string>& texts,
                                           std::string_view what);

// The client of a request that arrived from `peer` carrying the X-Forwarded-For value
// `forwarded_for` (every X-Forwarded-For header of the request joined with ", ", in order; ""
// when there was none). Unless `peer` is in `trusted`, that is `peer`: anybody can write the
// header. From a trusted proxy it is the rightmost address of the header that is not itself
// trusted (each proxy appends the address it saw; entries left of the first untrusted one were
// written by the client and prove nothing). When the header is missing, or every entry is
// trusted, the leftmost trusted address seen; a malformed entry ends the walk the same way.
IpAddress ClientAddress(const IpAddress& peer, std::string_view forwarded_for,
                        const std::vector<IpRange>& trusted);

}  // namespace pycell
