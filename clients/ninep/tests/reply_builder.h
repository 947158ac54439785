// Test helper: builds reply frames byte by byte, well-formed or deliberately broken.
#ifndef NINEP_TESTS_REPLY_BUILDER_H_
#define NINEP_TESTS_REPLY_BUILDER_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "ninep/wire.h"

namespace ninep::testing {

class ReplyBuilder {
 public:
  ReplyBuilder(MsgType type, std::uint16_t tag) {
    U32(0);
    U8(static_cast<std::uint8_t>(type));
    U16(tag);
  }
  ReplyBuilder& U8(std::uint8_t v) { return Le(v, 1); }
  ReplyBuilder& U16(std::uint16_t v) { return Le(v, 2); }
  ReplyBuilder& U32(std::uint32_t v) { return Le(v, 4); }
  ReplyBuilder& U64(std::uint64_t v) { return Le(v, 8); }
  ReplyBuilder& Str(std::string_view s) {
    U16(static_cast<std::uint16_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  ReplyBuilder& Qid(std::uint8_t type, std::uint32_t version, std::uint64_t path) {
    return U8(type).U32(version).U64(path);
  }
  ReplyBuilder& Raw(const std::vector<std::uint8_t>& data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
    return *this;
  }
  // The frame with its size field set to its length (or to `size_override`).
  std::vector<std::uint8_t> Build(std::int64_t size_override = -1) const {
    std::vector<std::uint8_t> out = bytes_;
    const auto size = size_override >= 0 ? static_cast<std::uint32_t>(size_override)
                                         : static_cast<std::uint32_t>(out.size());
    for (std::size_t i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(size >> (8 * i));
    return out;
  }

 private:
  ReplyBuilder& Le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  std::vector<std::uint8_t> bytes_;
};

}  // namespace ninep::testing

#endif  // NINEP_TESTS_REPLY_BUILDER_H_
