// ninep/client.h: the 9P2000.L operations as synchronous calls on one connection.
//
// Each method is one request (Run = Start + Wait on the connection); for many requests in
// flight at once, use connection().Start with the builders of ninep/wire.h. Fids are numbers
// this client hands out (NewFid); a fid exists on the server from the Tattach, Twalk or
// Tlcreate that creates it until Clunk.
//
//   auto client = ninep::Client::Connect("127.0.0.1:5640");
//   auto root = client->Attach("root", "/srv/export", 0);
//   auto file = client->Walk(*root, {"dir", "file.txt"});
//   auto opened = client->Lopen(*file, O_RDONLY);
//   auto bytes = client->Read(*file, 0, opened->iounit);
//   client->Clunk(*file);
#ifndef NINEP_CLIENT_H_
#define NINEP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ninep/connection.h"
#include "ninep/wire.h"

namespace ninep {

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(std::string_view host_port,
                                                         ConnectionOptions options = {});
  explicit Client(std::unique_ptr<Connection> connection);

  Connection& connection() { return *connection_; }
  // A fid number no other call of this client has handed out.
  std::uint32_t NewFid();

  // Tattach: a new fid for the root of `aname` (diod: the export path).
  absl::StatusOr<std::uint32_t> Attach(std::string_view uname, std::string_view aname,
                                       std::uint32_t n_uname);
  // Twalk from `fid` through `names` (at most 16; none clones the fid). NotFound when the walk
  // stops early; no new fid exists then.
  absl::StatusOr<std::uint32_t> Walk(std::uint32_t fid, std::span<const std::string> names);
  absl::StatusOr<Ropen> Lopen(std::uint32_t fid, std::uint32_t flags);
  // Tlcreate: creates `name` in the directory `fid`, which becomes the new file, open.
  absl::StatusOr<Ropen> Lcreate(std::uint32_t fid, std::string_view name, std::uint32_t flags,
                                std::uint32_t mode, std::uint32_t gid);
  absl::StatusOr<std::vector<std::uint8_t>> Read(std::uint32_t fid, std::uint64_t offset,
                                                 std::uint32_t count);
  absl::StatusOr<std::uint32_t> Write(std::uint32_t fid, std::uint64_t offset,
                                      std::span<const std::uint8_t> data);
  absl::StatusOr<std::vector<DirEntry>> Readdir(std::uint32_t fid, std::uint64_t offset,
                                                std::uint32_t count);
  // Every entry of the open directory `fid`, reading until an empty Rreaddir.
  absl::StatusOr<std::vector<DirEntry>> ReaddirAll(std::uint32_t fid);
  absl::StatusOr<Attr> Getattr(std::uint32_t fid, std::uint64_t mask = kGetattrBasic);
  absl::Status Clunk(std::uint32_t fid);

  // The most data one Tread or Twrite carries: msize less the Rread/Twrite header.
  [[nodiscard]] std::uint32_t max_io() const;

 private:
  std::unique_ptr<Connection> connection_;
  std::atomic<std::uint32_t> next_fid_{1};
};

}  // namespace ninep

#endif  // NINEP_CLIENT_H_
