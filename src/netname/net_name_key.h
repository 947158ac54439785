// NetName keys: name validation, ASCII case folding and the prefix hash.
//
// A key is (canonical name, connection ID). The hash is computed left to right, one
// backslash-separated segment at a time over the folded bytes, so that a lookup walking the
// prefixes of one path hashes each byte once; at every prefix boundary the running value is
// finished with the connection ID's hash. Equal keys give equal hashes; the table compares
// the full key on a hash match.
#ifndef MIDATLAS_SRC_NETNAME_NET_NAME_KEY_H_
#define MIDATLAS_SRC_NETNAME_NET_NAME_KEY_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "absl/status/status.h"
#include "midatlas/net_name_table.h"

namespace midatlas::internal {

// ASCII 'A'..'Z' to 'a'..'z' in all eight bytes of `w` at once; other bytes unchanged.
inline std::uint64_t FoldWord(std::uint64_t w) noexcept {
  constexpr std::uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const std::uint64_t heptets = w & kLow7;
  const std::uint64_t above_z = heptets + 0x2525252525252525ULL;  // 0x80 set where > 'Z'
  const std::uint64_t from_a = heptets + 0x3f3f3f3f3f3f3f3fULL;   // 0x80 set where >= 'A'
  const std::uint64_t upper = ~w & kHigh & (from_a ^ above_z);
  return w | (upper >> 2);  // 0x80 >> 2 == 0x20, the case bit
}

inline char FoldAscii(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::uint64_t ConnectionIdHash(const ConnectionId& id) noexcept {
  std::uint64_t word = 0;
  static_assert(sizeof(word) == kConnectionIdBytes, "the ID hash reads the ID as one word");
  std::memcpy(&word, id.bytes.data(), sizeof(word));
  return word * 0x9e3779b97f4a7c15ULL;
}

// The running hash of a name, fed one segment at a time: the first segment is "\\server",
// each later one "\\component" (its leading backslash included). Eight bytes per step, case
// folded eight at a time, so walking every prefix of a path costs about one multiply per
// eight bytes.
class PrefixHasher {
 public:
  explicit PrefixHasher(bool case_sensitive) noexcept : case_sensitive_(case_sensitive) {}

  void AddSegment(const char* bytes, std::size_t length) noexcept {
    while (length >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, bytes, 8);
      Step(word);
      bytes += 8;
      length -= 8;
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, bytes, length);
    // The length sits in the top byte, which a tail of at most 7 bytes never uses.
    Step(tail | (static_cast<std::uint64_t>(length) << 56));
  }

  // The key's hash: the name so far, finished with the connection ID's hash.
  [[nodiscard]] std::uint64_t Finish(std::uint64_t id_hash) const noexcept {
    std::uint64_t h = state_ ^ id_hash;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
  }

 private:
  void Step(std::uint64_t word) noexcept {
    if (!case_sensitive_) word = FoldWord(word);
    state_ = (state_ ^ word) * 0x9e3779b97f4a7c15ULL;
    state_ ^= state_ >> 32;
  }

  bool case_sensitive_;
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
};

// The hash of a whole entry name (no stream part), as a lookup computes it for that prefix.
inline std::uint64_t KeyHash(std::string_view name, const ConnectionId& id,
                             bool case_sensitive) noexcept {
  PrefixHasher hasher(case_sensitive);
  std::size_t start = 0;
  for (std::size_t i = 2; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '\\') {
      hasher.AddSegment(name.data() + start, i - start);
      start = i;
    }
  }
  return hasher.Finish(ConnectionIdHash(id));
}

// 0x80 in every byte of `w` that is zero, 0 elsewhere (exact, no false positives).
inline std::uint64_t ZeroBytes(std::uint64_t w) noexcept {
  constexpr std::uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  return ~(((w & kLow7) + kLow7) | w | kLow7);
}

// Names compare eight bytes at a time, folded with FoldWord unless case-sensitive.
inline bool NamesEqual(std::string_view a, std::string_view b, bool case_sensitive) noexcept {
  if (a.size() != b.size()) return false;
  if (case_sensitive) return a == b;
  std::size_t i = 0;
  for (; i < a.size(); i += 8) {
    const std::size_t n = a.size() - i < 8 ? a.size() - i : 8;
    std::uint64_t wa = 0;
    std::uint64_t wb = 0;
    std::memcpy(&wa, a.data() + i, n);
    std::memcpy(&wb, b.data() + i, n);
    if (FoldWord(wa) != FoldWord(wb)) return false;
  }
  return true;
}

// What a valid path consists of.
struct ParsedPath {
  int components = 0;          // backslash-separated components before any stream part
  bool has_stream = false;     // a ':' stream part follows the last component
  std::size_t stream_begin = 0;  // index of the first ':' when has_stream
};

// Checks the naming rules of net_name_table.h (NAMES). `allow_stream` is false for entry names.
// Never throws: under memory exhaustion an error carries its code alone (see ErrorStatus).
absl::Status ParseNetPath(std::string_view path, bool allow_stream, ParsedPath* parsed) noexcept;

// An error with the message `build_message()` returns - or, when memory is too short to build
// it, the same code with no message: the answer stays the documented one, and a status without
// a message never allocates.
template <typename BuildMessage>
absl::Status ErrorStatus(absl::StatusCode code, BuildMessage&& build_message) noexcept {
  try {
    return absl::Status(code, build_message());
  } catch (const std::bad_alloc&) {
    return {code, {}};
  }
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_NETNAME_NET_NAME_KEY_H_
