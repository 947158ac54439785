// The 9P2000.L codec: builders and the strict reply parser (ninep/wire.h).
#include "ninep/wire.h"

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace ninep {
namespace {

constexpr char kErrnoPayloadUrl[] = "ninep/lerror-errno";

// Appends little-endian fields to a message under construction; the size field is written by
// Finish once the length is known.
class Writer {
 public:
  Writer(MsgType type, std::uint16_t tag) {
    bytes_.reserve(64);
    U32(0);
    U8(static_cast<std::uint8_t>(type));
    U16(tag);
  }
  void U8(std::uint8_t v) { bytes_.push_back(v); }
  void U16(std::uint16_t v) { Le(v, 2); }
  void U32(std::uint32_t v) { Le(v, 4); }
  void U64(std::uint64_t v) { Le(v, 8); }
  void Str(std::string_view s) {
    U16(static_cast<std::uint16_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void Raw(std::span<const std::uint8_t> data) {
    bytes_.insert(bytes_.end(), data.begin(), data.end());
  }
  std::vector<std::uint8_t> Finish() && {
    const auto size = static_cast<std::uint32_t>(bytes_.size());
    for (int i = 0; i < 4; ++i) bytes_[static_cast<std::size_t>(i)] = ByteOf(size, i);
    return std::move(bytes_);
  }

 private:
  static std::uint8_t ByteOf(std::uint64_t v, int i) {
    return static_cast<std::uint8_t>((v >> (8 * i)) & 0xFF);
  }
  void Le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(ByteOf(v, i));
  }
  std::vector<std::uint8_t> bytes_;
};

absl::Status CheckString(std::string_view s, std::string_view what) {
  if (s.size() > std::numeric_limits<std::uint16_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is ", s.size(), " bytes; a 9P string holds at most 65535"));
  }
  return absl::OkStatus();
}

// Reads little-endian fields from a received frame. Every read checks the bytes left; the
// first failure sticks (later reads answer zeros) and names the field, so a parser reads its
// whole layout and checks once.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  std::uint8_t U8(const char* field) { return static_cast<std::uint8_t>(Le(1, field)); }
  std::uint16_t U16(const char* field) { return static_cast<std::uint16_t>(Le(2, field)); }
  std::uint32_t U32(const char* field) { return static_cast<std::uint32_t>(Le(4, field)); }
  std::uint64_t U64(const char* field) { return Le(8, field); }
  std::span<const std::uint8_t> Bytes(std::size_t n, const char* field) {
    if (!Have(n, field)) return {};
    std::span<const std::uint8_t> out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  std::string Str(const char* field) {
    const std::uint16_t n = U16(field);
    std::span<const std::uint8_t> b = Bytes(n, field);
    return {b.begin(), b.end()};
  }
  Qid ReadQid(const char* field) {
    Qid q;
    q.type = U8(field);
    q.version = U32(field);
    q.path = U64(field);
    return q;
  }
  [[nodiscard]] std::size_t remaining() const { return failed_ ? 0 : bytes_.size() - pos_; }
  [[nodiscard]] bool failed() const { return failed_; }

  // OK when every read fit and nothing is left over.
  absl::Status Finish(std::string_view what) const {
    if (failed_) {
      return absl::DataLossError(absl::StrCat("malformed ", std::string(what), ": ", failed_field_,
                                              " runs past the end of the message"));
    }
    if (pos_ != bytes_.size()) {
      return absl::DataLossError(absl::StrCat("malformed ", std::string(what), ": ", bytes_.size() - pos_,
                                              " unexpected bytes after the last field"));
    }
    return absl::OkStatus();
  }

 private:
  bool Have(std::size_t n, const char* field) {
    if (failed_) return false;
    if (bytes_.size() - pos_ < n) {
      failed_ = true;
      failed_field_ = field;
      return false;
    }
    return true;
  }
  std::uint64_t Le(std::size_t n, const char* field) {
    if (!Have(n, field)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }

  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  const char* failed_field_ = "";
};

absl::StatusCode CodeForErrno(std::uint32_t ecode) {
  switch (ecode) {
    case ENOENT:
      return absl::StatusCode::kNotFound;
    case EEXIST:
    case ENOTEMPTY:
      return absl::StatusCode::kAlreadyExists;
    case EPERM:
    case EACCES:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case EBADF:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
      return absl::StatusCode::kInvalidArgument;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EINTR:
    case ECANCELED:
      return absl::StatusCode::kCancelled;
    case EAGAIN:
    case EBUSY:
      return absl::StatusCode::kUnavailable;
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// The reply type that answers `request`, or 0 for a request type this client never sends.
std::uint8_t ReplyTypeFor(MsgType request) {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(request) + 1);
}

absl::StatusOr<Reply> ParseBody(MsgType request_type, Reader& r) {
  switch (request_type) {
    case MsgType::kTversion: {
      Rversion v;
      v.msize = r.U32("msize");
      v.version = r.Str("version");
      return v;
    }
    case MsgType::kTattach:
      return Rattach{r.ReadQid("qid")};
    case MsgType::kTwalk: {
      const std::uint16_t n = r.U16("nwqid");
      if (n > kMaxWalkNames) {
        return absl::DataLossError(
            absl::StrCat("malformed Rwalk: nwqid ", n, " is above the limit of 16"));
      }
      Rwalk w;
      w.qids.reserve(n);
      for (std::uint16_t i = 0; i < n && !r.failed(); ++i) w.qids.push_back(r.ReadQid("wqid"));
      return w;
    }
    case MsgType::kTlopen:
    case MsgType::kTlcreate: {
      Ropen o;
      o.qid = r.ReadQid("qid");
      o.iounit = r.U32("iounit");
      return o;
    }
    case MsgType::kTread: {
      const std::uint32_t count = r.U32("count");
      std::span<const std::uint8_t> data = r.Bytes(count, "data");
      return Rread{{data.begin(), data.end()}};
    }
    case MsgType::kTwrite:
      return Rwrite{r.U32("count")};
    case MsgType::kTreaddir: {
      const std::uint32_t count = r.U32("count");
      std::span<const std::uint8_t> data = r.Bytes(count, "data");
      if (r.failed()) return Rreaddir{};
      absl::StatusOr<std::vector<DirEntry>> entries = ParseDirEntries(data);
      if (!entries.ok()) return entries.status();
      return Rreaddir{*std::move(entries)};
    }
    case MsgType::kTgetattr: {
      Attr a;
      a.valid = r.U64("valid");
      a.qid = r.ReadQid("qid");
      a.mode = r.U32("mode");
      a.uid = r.U32("uid");
      a.gid = r.U32("gid");
      a.nlink = r.U64("nlink");
      a.rdev = r.U64("rdev");
      a.size = r.U64("size");
      a.blksize = r.U64("blksize");
      a.blocks = r.U64("blocks");
      a.atime_sec = r.U64("atime_sec");
      a.atime_nsec = r.U64("atime_nsec");
      a.mtime_sec = r.U64("mtime_sec");
      a.mtime_nsec = r.U64("mtime_nsec");
      a.ctime_sec = r.U64("ctime_sec");
      a.ctime_nsec = r.U64("ctime_nsec");
      a.btime_sec = r.U64("btime_sec");
      a.btime_nsec = r.U64("btime_nsec");
      a.gen = r.U64("gen");
      a.data_version = r.U64("data_version");
      return Rgetattr{a};
    }
    case MsgType::kTclunk:
    case MsgType::kTflush:
      return Rempty{};
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "no reply parser for request type ", MsgTypeName(static_cast<std::uint8_t>(request_type))));
  }
}

}  // namespace

std::string MsgTypeName(std::uint8_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::kRlerror: return "Rlerror";
    case MsgType::kTlopen: return "Tlopen";
    case MsgType::kRlopen: return "Rlopen";
    case MsgType::kTlcreate: return "Tlcreate";
    case MsgType::kRlcreate: return "Rlcreate";
    case MsgType::kTgetattr: return "Tgetattr";
    case MsgType::kRgetattr: return "Rgetattr";
    case MsgType::kTreaddir: return "Treaddir";
    case MsgType::kRreaddir: return "Rreaddir";
    case MsgType::kTversion: return "Tversion";
    case MsgType::kRversion: return "Rversion";
    case MsgType::kTattach: return "Tattach";
    case MsgType::kRattach: return "Rattach";
    case MsgType::kTflush: return "Tflush";
    case MsgType::kRflush: return "Rflush";
    case MsgType::kTwalk: return "Twalk";
    case MsgType::kRwalk: return "Rwalk";
    case MsgType::kTread: return "Tread";
    case MsgType::kRread: return "Rread";
    case MsgType::kTwrite: return "Twrite";
    case MsgType::kRwrite: return "Rwrite";
    case MsgType::kTclunk: return "Tclunk";
    case MsgType::kRclunk: return "Rclunk";
  }
  return absl::StrCat("type ", type);
}

void SetTag(Request& request, std::uint16_t tag) noexcept {
  if (request.bytes.size() < kHeaderSize) return;
  request.bytes[5] = static_cast<std::uint8_t>(tag & 0xFF);
  request.bytes[6] = static_cast<std::uint8_t>(tag >> 8);
}

std::uint16_t TagOf(std::span<const std::uint8_t> message) noexcept {
  if (message.size() < kHeaderSize) return kNoTag;
  return static_cast<std::uint16_t>(message[5] | (message[6] << 8));
}

absl::StatusOr<Request> BuildTversion(std::uint32_t msize, std::string_view version) {
  if (absl::Status s = CheckString(version, "version"); !s.ok()) return s;
  Writer w(MsgType::kTversion, kNoTag);
  w.U32(msize);
  w.Str(version);
  return Request{.type = MsgType::kTversion, .bytes = std::move(w).Finish()};
}

absl::StatusOr<Request> BuildTattach(std::uint32_t fid, std::uint32_t afid, std::string_view uname,
                                     std::string_view aname, std::uint32_t n_uname) {
  if (absl::Status s = CheckString(uname, "uname"); !s.ok()) return s;
  if (absl::Status s = CheckString(aname, "aname"); !s.ok()) return s;
  Writer w(MsgType::kTattach, kNoTag);
  w.U32(fid);
  w.U32(afid);
  w.Str(uname);
  w.Str(aname);
  w.U32(n_uname);
  return Request{.type = MsgType::kTattach, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTwalk(std::uint32_t fid, std::uint32_t newfid,
                                   std::span<const std::string> names) {
  if (names.size() > kMaxWalkNames) {
    return absl::InvalidArgumentError(
        absl::StrCat("Twalk of ", names.size(), " names; at most 16 fit in one message"));
  }
  for (const std::string& name : names) {
    if (absl::Status s = CheckString(name, "a walk name"); !s.ok()) return s;
  }
  Writer w(MsgType::kTwalk, kNoTag);
  w.U32(fid);
  w.U32(newfid);
  w.U16(static_cast<std::uint16_t>(names.size()));
  for (const std::string& name : names) w.Str(name);
  return Request{.type = MsgType::kTwalk,
                 .bytes = std::move(w).Finish(),
                 .fid = fid,
                 .newfid = newfid,
                 .walk_names = static_cast<std::uint16_t>(names.size())};
}

absl::StatusOr<Request> BuildTlopen(std::uint32_t fid, std::uint32_t flags) {
  Writer w(MsgType::kTlopen, kNoTag);
  w.U32(fid);
  w.U32(flags);
  return Request{.type = MsgType::kTlopen, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTlcreate(std::uint32_t fid, std::string_view name,
                                      std::uint32_t flags, std::uint32_t mode, std::uint32_t gid) {
  if (absl::Status s = CheckString(name, "name"); !s.ok()) return s;
  Writer w(MsgType::kTlcreate, kNoTag);
  w.U32(fid);
  w.Str(name);
  w.U32(flags);
  w.U32(mode);
  w.U32(gid);
  return Request{.type = MsgType::kTlcreate, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTread(std::uint32_t fid, std::uint64_t offset, std::uint32_t count) {
  Writer w(MsgType::kTread, kNoTag);
  w.U32(fid);
  w.U64(offset);
  w.U32(count);
  return Request{
      .type = MsgType::kTread, .bytes = std::move(w).Finish(), .fid = fid, .count = count};
}

absl::StatusOr<Request> BuildTwrite(std::uint32_t fid, std::uint64_t offset,
                                    std::span<const std::uint8_t> data) {
  if (data.size() > std::numeric_limits<std::uint32_t>::max() - 64) {
    return absl::InvalidArgumentError("Twrite data over 4 GiB");
  }
  Writer w(MsgType::kTwrite, kNoTag);
  w.U32(fid);
  w.U64(offset);
  w.U32(static_cast<std::uint32_t>(data.size()));
  w.Raw(data);
  return Request{.type = MsgType::kTwrite, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTreaddir(std::uint32_t fid, std::uint64_t offset,
                                      std::uint32_t count) {
  Writer w(MsgType::kTreaddir, kNoTag);
  w.U32(fid);
  w.U64(offset);
  w.U32(count);
  return Request{
      .type = MsgType::kTreaddir, .bytes = std::move(w).Finish(), .fid = fid, .count = count};
}

absl::StatusOr<Request> BuildTgetattr(std::uint32_t fid, std::uint64_t request_mask) {
  Writer w(MsgType::kTgetattr, kNoTag);
  w.U32(fid);
  w.U64(request_mask);
  return Request{.type = MsgType::kTgetattr, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTclunk(std::uint32_t fid) {
  Writer w(MsgType::kTclunk, kNoTag);
  w.U32(fid);
  return Request{.type = MsgType::kTclunk, .bytes = std::move(w).Finish(), .fid = fid};
}

absl::StatusOr<Request> BuildTflush(std::uint16_t oldtag) {
  Writer w(MsgType::kTflush, kNoTag);
  w.U16(oldtag);
  return Request{.type = MsgType::kTflush, .bytes = std::move(w).Finish(), .oldtag = oldtag};
}

absl::StatusOr<FrameHeader> ParseFrameHeader(std::span<const std::uint8_t> bytes,
                                             std::uint32_t max_size) {
  if (bytes.size() < kHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("truncated message: ", bytes.size(), " bytes, a header needs 7"));
  }
  Reader r(bytes.first(kHeaderSize));
  FrameHeader h;
  h.size = r.U32("size");
  h.type = r.U8("type");
  h.tag = r.U16("tag");
  if (h.size < kHeaderSize || h.size > max_size) {
    return absl::DataLossError(absl::StrCat("bad message size ", h.size, " (",
                                            MsgTypeName(h.type), ", tag ", h.tag,
                                            "); it must be 7..", max_size));
  }
  return h;
}

absl::StatusOr<Reply> ParseReply(std::span<const std::uint8_t> frame, MsgType request_type) {
  absl::StatusOr<FrameHeader> header =
      ParseFrameHeader(frame, std::numeric_limits<std::uint32_t>::max());
  if (!header.ok()) return header.status();
  if (header->size != frame.size()) {
    return absl::DataLossError(absl::StrCat("malformed ", MsgTypeName(header->type),
                                            ": size field says ", header->size, ", frame has ",
                                            frame.size(), " bytes"));
  }
  Reader r(frame.subspan(kHeaderSize));
  if (header->type == static_cast<std::uint8_t>(MsgType::kRlerror)) {
    const std::uint32_t ecode = r.U32("ecode");
    if (absl::Status s = r.Finish("Rlerror"); !s.ok()) return s;
    return LerrorStatus(ecode);
  }
  const std::uint8_t expected = ReplyTypeFor(request_type);
  if (header->type != expected) {
    return absl::DataLossError(absl::StrCat("unexpected ", MsgTypeName(header->type),
                                            " in reply to ",
                                            MsgTypeName(static_cast<std::uint8_t>(request_type)),
                                            " (tag ", header->tag, ")"));
  }
  absl::StatusOr<Reply> reply = ParseBody(request_type, r);
  if (!reply.ok()) return reply.status();
  if (absl::Status s = r.Finish(MsgTypeName(expected)); !s.ok()) return s;
  return reply;
}

absl::StatusOr<std::vector<DirEntry>> ParseDirEntries(std::span<const std::uint8_t> data) {
  std::vector<DirEntry> entries;
  Reader r(data);
  while (r.remaining() > 0) {
    DirEntry e;
    e.qid = r.ReadQid("entry qid");
    e.offset = r.U64("entry offset");
    e.type = r.U8("entry type");
    e.name = r.Str("entry name");
    if (r.failed()) break;
    entries.push_back(std::move(e));
  }
  if (absl::Status s = r.Finish("Rreaddir entries"); !s.ok()) return s;
  return entries;
}

absl::Status LerrorStatus(std::uint32_t ecode) {
  // strerrordesc_np, unlike strerror, is thread-safe (the receive thread and callers share it).
  const char* text = ecode <= 4095 ? strerrordesc_np(static_cast<int>(ecode)) : nullptr;
  if (text == nullptr) text = "unknown error";
  absl::Status status(CodeForErrno(ecode),
                      absl::StrCat("Rlerror: ", text, " (errno ", ecode, ")"));
  status.SetPayload(kErrnoPayloadUrl, absl::Cord(absl::StrCat(ecode)));
  return status;
}

std::optional<std::uint32_t> LerrorErrno(const absl::Status& status) {
  auto payload = status.GetPayload(kErrnoPayloadUrl);  // absl::optional in this Abseil
  if (!payload) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : std::string(*payload)) v = v * 10 + static_cast<std::uint32_t>(c - '0');
  return v;
}

}  // namespace ninep
