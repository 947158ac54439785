// Connection IDs and the provider rules (RDBSS MRxGetConnectionId), and the naming rules.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "midatlas/net_name_table.h"
#include "netname/connection_id.h"
#include "netname/net_name_key.h"

namespace midatlas {

ConnectionIdProvider::~ConnectionIdProvider() = default;

ConnectionId ConnectionIdFromSession(std::uint32_t session) noexcept {
  ConnectionId id;
  for (std::size_t i = 0; i < sizeof(session); ++i) {
    id.bytes[i] = static_cast<std::uint8_t>(session >> (8 * i));
  }
  return id;
}

namespace internal {

absl::StatusOr<ConnectionId> ResolveConnectionId(ConnectionIdProvider* provider,
                                                 void* request_context) {
  if (provider == nullptr) return ConnectionId{};
  absl::StatusOr<ConnectionId> id = provider->GetConnectionId(request_context);
  // STATUS_NOT_IMPLEMENTED: the mini-redirector has no connection IDs, which is the same as
  // the all-zero ID. Any other failure goes back to the caller unchanged.
  if (absl::IsUnimplemented(id.status())) return ConnectionId{};
  return id;
}

namespace {

// The slow path of ParseNetPath: the same rules, walked again to say what is wrong.
absl::Status DiagnoseNetPath(std::string_view path, bool allow_stream, ParsedPath* parsed) {
  if (path.size() > kMaxNetNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("net name is ", path.size(), " bytes; the limit is ", kMaxNetNameBytes));
  }
  if (path.size() < 2 || path[0] != '\\' || path[1] != '\\') {
    return absl::InvalidArgumentError("net name must start with \\\\");
  }
  std::size_t segment_length = 0;
  bool in_stream = false;
  // Ends the segment that runs up to index `at` (exclusive); empty segments are refused.
  auto end_segment = [&](std::size_t at) -> absl::Status {
    if (segment_length == 0) {
      return absl::InvalidArgumentError(absl::StrCat("empty component at byte ", at));
    }
    if (segment_length > kMaxNetNameComponentBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "component ending at byte ", at, " is longer than ", kMaxNetNameComponentBytes));
    }
    if (!in_stream) ++parsed->components;
    segment_length = 0;
    return absl::OkStatus();
  };
  for (std::size_t i = 2; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '\0') {
      return absl::InvalidArgumentError(absl::StrCat("embedded NUL at byte ", i));
    }
    if (c == '\\') {
      if (in_stream) {
        return absl::InvalidArgumentError(absl::StrCat("'\\' inside the stream part at byte ", i));
      }
      if (absl::Status s = end_segment(i); !s.ok()) return s;
    } else if (c == ':') {
      if (!allow_stream) {
        return absl::InvalidArgumentError(absl::StrCat("':' in an entry name at byte ", i));
      }
      if (absl::Status s = end_segment(i); !s.ok()) return s;
      if (!in_stream) {
        in_stream = true;
        parsed->has_stream = true;
        parsed->stream_begin = i;
      }
    } else {
      ++segment_length;
    }
  }
  if (absl::Status s = end_segment(path.size()); !s.ok()) return s;
  return absl::InvalidArgumentError("invalid net name");  // not reached: the rules agree
}

}  // namespace

absl::Status ParseNetPath(std::string_view path, bool allow_stream, ParsedPath* parsed) noexcept {
  *parsed = ParsedPath{};
  const std::size_t n = path.size();
  if (n >= 3 && n <= kMaxNetNameBytes && path[0] == '\\' && path[1] == '\\') {
    std::size_t segment = 0;
    bool in_stream = false;
    bool ok = true;
    for (std::size_t i = 2; i < n; ++i) {
      if (n - i >= 8) {
        // Eight ordinary bytes (no '\\', ':' or NUL) at once.
        std::uint64_t word = 0;
        std::memcpy(&word, path.data() + i, 8);
        const std::uint64_t special = ZeroBytes(word) | ZeroBytes(word ^ 0x5c5c5c5c5c5c5c5cULL) |
                                      ZeroBytes(word ^ 0x3a3a3a3a3a3a3a3aULL);
        if (special == 0) {
          segment += 8;
          i += 7;
          continue;
        }
      }
      const char c = path[i];
      if (c == '\\' || c == ':') {
        if (segment == 0 || segment > kMaxNetNameComponentBytes || (c == '\\' && in_stream) ||
            (c == ':' && !allow_stream)) {
          ok = false;
          break;
        }
        if (!in_stream) ++parsed->components;
        if (c == ':' && !in_stream) {
          in_stream = true;
          parsed->has_stream = true;
          parsed->stream_begin = i;
        }
        segment = 0;
      } else if (c == '\0') {
        ok = false;
        break;
      } else {
        ++segment;
      }
    }
    if (ok && segment != 0 && segment <= kMaxNetNameComponentBytes) {
      if (!in_stream) ++parsed->components;
      return absl::OkStatus();
    }
  }
  *parsed = ParsedPath{};
  // The diagnosis builds a message; without the memory for it the answer is the same code
  // (ErrorStatus).
  try {
    return DiagnoseNetPath(path, allow_stream, parsed);
  } catch (const std::bad_alloc&) {
    return {absl::StatusCode::kInvalidArgument, {}};
  }
}

}  // namespace internal
}  // namespace midatlas
