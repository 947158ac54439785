// Synchronous 9P2000.L operations (ninep/client.h).
#include "ninep/client.h"

#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"

namespace ninep {
namespace {

template <typename T>
absl::StatusOr<T> As(absl::StatusOr<Reply> reply) {
  if (!reply.ok()) return reply.status();
  if (T* r = std::get_if<T>(&*reply)) return std::move(*r);
  return absl::InternalError("reply of an unexpected kind");  // ParseReply checked the type
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(std::string_view host_port,
                                                        ConnectionOptions options) {
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Connect(host_port, options);
  if (!connection.ok()) return connection.status();
  return std::make_unique<Client>(*std::move(connection));
}

Client::Client(std::unique_ptr<Connection> connection) : connection_(std::move(connection)) {}

std::uint32_t Client::NewFid() {
  // (ninep:F1) relaxed: only uniqueness matters; the fid travels in the request it names.
  return next_fid_.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t Client::max_io() const {
  // Twrite's header is size[4] type[1] tag[2] fid[4] offset[8] count[4] = 23 bytes; like
  // Linux (P9_IOHDRSZ) leave 24, which diod also expects of Treaddir (it answers EIO above).
  return connection_->msize() - 24;
}

absl::StatusOr<std::uint32_t> Client::Attach(std::string_view uname, std::string_view aname,
                                             std::uint32_t n_uname) {
  const std::uint32_t fid = NewFid();
  absl::StatusOr<Rattach> r =
      As<Rattach>(connection_->Run(BuildTattach(fid, kNoFid, uname, aname, n_uname)));
  if (!r.ok()) return r.status();
  return fid;
}

absl::StatusOr<std::uint32_t> Client::Walk(std::uint32_t fid, std::span<const std::string> names) {
  const std::uint32_t newfid = NewFid();
  absl::StatusOr<Rwalk> r = As<Rwalk>(connection_->Run(BuildTwalk(fid, newfid, names)));
  if (!r.ok()) return r.status();
  if (r->qids.size() != names.size()) {
    return absl::NotFoundError(absl::StrCat("walk stopped after ", r->qids.size(), " of ",
                                            names.size(), " names"));
  }
  return newfid;
}

absl::StatusOr<Ropen> Client::Lopen(std::uint32_t fid, std::uint32_t flags) {
  return As<Ropen>(connection_->Run(BuildTlopen(fid, flags)));
}

absl::StatusOr<Ropen> Client::Lcreate(std::uint32_t fid, std::string_view name,
                                      std::uint32_t flags, std::uint32_t mode, std::uint32_t gid) {
  return As<Ropen>(connection_->Run(BuildTlcreate(fid, name, flags, mode, gid)));
}

absl::StatusOr<std::vector<std::uint8_t>> Client::Read(std::uint32_t fid, std::uint64_t offset,
                                                       std::uint32_t count) {
  absl::StatusOr<Rread> r = As<Rread>(connection_->Run(BuildTread(fid, offset, count)));
  if (!r.ok()) return r.status();
  return std::move(r->data);
}

absl::StatusOr<std::uint32_t> Client::Write(std::uint32_t fid, std::uint64_t offset,
                                            std::span<const std::uint8_t> data) {
  absl::StatusOr<Rwrite> r = As<Rwrite>(connection_->Run(BuildTwrite(fid, offset, data)));
  if (!r.ok()) return r.status();
  return r->count;
}

absl::StatusOr<std::vector<DirEntry>> Client::Readdir(std::uint32_t fid, std::uint64_t offset,
                                                      std::uint32_t count) {
  absl::StatusOr<Rreaddir> r = As<Rreaddir>(connection_->Run(BuildTreaddir(fid, offset, count)));
  if (!r.ok()) return r.status();
  return std::move(r->entries);
}

absl::StatusOr<std::vector<DirEntry>> Client::ReaddirAll(std::uint32_t fid) {
  std::vector<DirEntry> all;
  std::uint64_t offset = 0;
  for (;;) {
    absl::StatusOr<std::vector<DirEntry>> some = Readdir(fid, offset, max_io());
    if (!some.ok()) return some.status();
    if (some->empty()) return all;
    offset = some->back().offset;
    for (DirEntry& e : *some) all.push_back(std::move(e));
  }
}

absl::StatusOr<Attr> Client::Getattr(std::uint32_t fid, std::uint64_t mask) {
  absl::StatusOr<Rgetattr> r = As<Rgetattr>(connection_->Run(BuildTgetattr(fid, mask)));
  if (!r.ok()) return r.status();
  return r->attr;
}

absl::Status Client::Clunk(std::uint32_t fid) {
  return As<Rempty>(connection_->Run(BuildTclunk(fid))).status();
}

}  // namespace ninep
