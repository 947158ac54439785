// ninep/wire.h: the 9P2000.L messages this client speaks, as bytes.
//
// Builders turn a request into its wire form with the tag left blank (the connection fills it
// in once the tag table hands one out); the reply parser turns a received frame back into a
// typed reply. The parser trusts nothing: every length is checked against the bytes that are
// really there, a reply must consume its frame exactly, and a reply of the wrong type for its
// request is an error. It never reads out of bounds, never allocates more than the frame's
// size, and never aborts: bad input is a kDataLoss status that names what was wrong.
//
// All integers are little-endian; a string is a 2-byte length and that many bytes (not
// NUL-terminated); a qid is type[1] version[4] path[8]. Every message starts with
//   size[4] type[1] tag[2]
// where size counts the whole message, itself included.
#ifndef NINEP_WIRE_H_
#define NINEP_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ninep {

// The tag of Tversion; never handed to any other request (an excluded value of the tag table).
inline constexpr std::uint16_t kNoTag = 0xFFFF;
// "No fid" (Tattach's afid when there is no authentication).
inline constexpr std::uint32_t kNoFid = 0xFFFFFFFF;
inline constexpr std::size_t kHeaderSize = 7;  // size[4] type[1] tag[2]
inline constexpr std::string_view kProtocolVersion = "9P2000.L";
// Twalk carries at most this many names (MAXWELEM).
inline constexpr std::size_t kMaxWalkNames = 16;

// The message types used here. A reply's type is its request's type plus one.
enum class MsgType : std::uint8_t {
  kRlerror = 7,
  kTlopen = 12,
  kRlopen = 13,
  kTlcreate = 14,
  kRlcreate = 15,
  kTgetattr = 24,
  kRgetattr = 25,
  kTreaddir = 40,
  kRreaddir = 41,
  kTversion = 100,
  kRversion = 101,
  kTattach = 104,
  kRattach = 105,
  kTflush = 108,
  kRflush = 109,
  kTwalk = 110,
  kRwalk = 111,
  kTread = 116,
  kRread = 117,
  kTwrite = 118,
  kRwrite = 119,
  kTclunk = 120,
  kRclunk = 121,
};

// A short name ("Tlopen", "Rread", "type 200") for messages and logs.
std::string MsgTypeName(std::uint8_t type);

struct Qid {
  std::uint8_t type = 0;
  std::uint32_t version = 0;
  std::uint64_t path = 0;
  friend bool operator==(const Qid&, const Qid&) = default;
};

// Tgetattr's request_mask bits (P9_GETATTR_*).
inline constexpr std::uint64_t kGetattrBasic = 0x000007ffULL;  // mode .. blocks
inline constexpr std::uint64_t kGetattrAll = 0x00003fffULL;

struct Attr {
  std::uint64_t valid = 0;
  Qid qid;
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t nlink = 0;
  std::uint64_t rdev = 0;
  std::uint64_t size = 0;
  std::uint64_t blksize = 0;
  std::uint64_t blocks = 0;
  std::uint64_t atime_sec = 0, atime_nsec = 0;
  std::uint64_t mtime_sec = 0, mtime_nsec = 0;
  std::uint64_t ctime_sec = 0, ctime_nsec = 0;
  std::uint64_t btime_sec = 0, btime_nsec = 0;
  std::uint64_t gen = 0;
  std::uint64_t data_version = 0;
};

struct DirEntry {
  Qid qid;
  std::uint64_t offset = 0;  // pass to the next Treaddir to continue after this entry
  std::uint8_t type = 0;     // DT_* of the entry
  std::string name;
};

// ---- Requests ----------------------------------------------------------------------------

// A request in wire form. `bytes` is the whole message; its tag field is NOTAG until SetTag.
// The remaining fields describe the request for the connection: which reply to expect, and
// which fids a reply changes on the server (needed when the caller has gone away, flush(5)).
struct Request {
  MsgType type = MsgType::kTversion;
  std::vector<std::uint8_t> bytes;
  std::uint32_t fid = kNoFid;     // the fid the request acts on
  std::uint32_t newfid = kNoFid;  // Twalk: the fid a complete walk creates
  std::uint16_t walk_names = 0;   // Twalk: names asked for (a complete walk answers this many)
  std::uint16_t oldtag = kNoTag;  // Tflush: the tag flushed
  std::uint32_t count = 0;        // Tread, Treaddir: the most bytes the reply may carry
};

// Writes `tag` into a built request.
void SetTag(Request& request, std::uint16_t tag) noexcept;
std::uint16_t TagOf(std::span<const std::uint8_t> message) noexcept;

// Builders answer InvalidArgument when a field cannot be encoded (a string over 65,535 bytes,
// more than 16 walk names, data over 4 GiB); the connection also refuses a request larger than
// the negotiated msize.
absl::StatusOr<Request> BuildTversion(std::uint32_t msize, std::string_view version);
absl::StatusOr<Request> BuildTattach(std::uint32_t fid, std::uint32_t afid, std::string_view uname,
                                     std::string_view aname, std::uint32_t n_uname);
absl::StatusOr<Request> BuildTwalk(std::uint32_t fid, std::uint32_t newfid,
                                   std::span<const std::string> names);
absl::StatusOr<Request> BuildTlopen(std::uint32_t fid, std::uint32_t flags);
absl::StatusOr<Request> BuildTlcreate(std::uint32_t fid, std::string_view name,
                                      std::uint32_t flags, std::uint32_t mode, std::uint32_t gid);
absl::StatusOr<Request> BuildTread(std::uint32_t fid, std::uint64_t offset, std::uint32_t count);
absl::StatusOr<Request> BuildTwrite(std::uint32_t fid, std::uint64_t offset,
                                    std::span<const std::uint8_t> data);
absl::StatusOr<Request> BuildTreaddir(std::uint32_t fid, std::uint64_t offset,
                                      std::uint32_t count);
absl::StatusOr<Request> BuildTgetattr(std::uint32_t fid, std::uint64_t request_mask);
absl::StatusOr<Request> BuildTclunk(std::uint32_t fid);
absl::StatusOr<Request> BuildTflush(std::uint16_t oldtag);

// ---- Replies -----------------------------------------------------------------------------

struct Rversion {
  std::uint32_t msize = 0;
  std::string version;
};
struct Rattach {
  Qid qid;
};
struct Rwalk {
  std::vector<Qid> qids;  // one per name walked; fewer than asked: the walk stopped early
};
struct Ropen {  // Rlopen and Rlcreate
  Qid qid;
  std::uint32_t iounit = 0;
};
struct Rread {
  std::vector<std::uint8_t> data;
};
struct Rwrite {
  std::uint32_t count = 0;
};
struct Rreaddir {
  std::vector<DirEntry> entries;
};
struct Rgetattr {
  Attr attr;
};
struct Rempty {};  // Rclunk, Rflush

using Reply = std::variant<Rversion, Rattach, Rwalk, Ropen, Rread, Rwrite, Rreaddir, Rgetattr,
                           Rempty>;

struct FrameHeader {
  std::uint32_t size = 0;
  std::uint8_t type = 0;
  std::uint16_t tag = 0;
};

// The header of a frame that starts `bytes` (which may hold more, or only the header).
// DataLoss when fewer than 7 bytes are given or size is below 7 or above `max_size`.
absl::StatusOr<FrameHeader> ParseFrameHeader(std::span<const std::uint8_t> bytes,
                                             std::uint32_t max_size);

// Parses `frame` (exactly one whole message) as the reply to a request of type
// `request_type`. Answers the reply, or:
//   - an Rlerror as a status whose code follows the errno (ENOENT -> NotFound, ...) and whose
//     message names it; LerrorErrno(status) gives the errno back;
//   - DataLoss for anything malformed: a size field that disagrees with the frame, a field
//     that runs past the end, bytes left over, a reply type that does not answer the request.
//     (An Rread or Rreaddir longer than its request's count is refused by the connection,
//     which knows the count.)
absl::StatusOr<Reply> ParseReply(std::span<const std::uint8_t> frame, MsgType request_type);

// The errno an Rlerror carried, when `status` came from one.
std::optional<std::uint32_t> LerrorErrno(const absl::Status& status);

// The status an Rlerror with this errno maps to.
absl::Status LerrorStatus(std::uint32_t ecode);

// Parses the data of an Rreaddir (a sequence of qid[13] offset[8] type[1] name[s]).
absl::StatusOr<std::vector<DirEntry>> ParseDirEntries(std::span<const std::uint8_t> data);

}  // namespace ninep

#endif  // NINEP_WIRE_H_
