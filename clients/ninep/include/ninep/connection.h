// ninep/connection.h: one 9P2000.L connection - any number of threads issuing requests at
// once, one receive thread matching replies to them by tag.
//
// WHAT IT DOES
//   Connect() negotiates the version ("9P2000.L") and msize, then starts the receive thread.
//   Start() sends a request and returns at once with a Call; Wait() blocks for its reply, or
//   a callback runs on the receive thread when it arrives. Run() is Start + Wait. Each request
//   gets a tag from the connection's tag table (at most max_in_flight at once; beyond that,
//   Start waits, first come first served, for a tag to come free).
//
// CANCELLING (flush(5))
//   Call::Cancel() answers the caller at once with kCancelled and sends a Tflush. The tag of
//   the cancelled request stays quarantined until the Rflush arrives and is reused only then.
//   A reply that still arrives before the Rflush is honoured: a Twalk or Tattach that
//   succeeded created a fid nobody holds, so the connection clunks it; a Tlopen or Tlcreate
//   that succeeded opened its fid, which Call::late_reply() then shows (the fid's owner still
//   clunks it as usual). Cancelling again sends another Tflush; a server answers only the last
//   (flush(5)), and the Rflush frees the tags of the earlier ones too.
//
// BAD INPUT
//   A reply whose tag maps to no request (never issued, already answered, an old generation)
//   is counted (stats().unknown_tags) and dropped. A reply that is malformed or of the wrong
//   type fails its request with kDataLoss; the connection stays usable. A frame whose size
//   field is impossible (below 7, above msize) leaves no way to find the next frame: the
//   connection closes, and every request in flight fails with kUnavailable.
//
// THREADS
//   Every member may be called from any thread, except that the destructor must not race
//   other calls. Callbacks run on the receive thread (or, for a request that fails before it
//   is sent or is cancelled, on the thread that started or cancelled it); a callback must not
//   block on a reply, nor Start a request when every tag may be in use (the receive thread
//   would wait for a tag only it can free). Cancel sends its Tflush under a tag of its own
//   and waits for one like any request: with max_in_flight = 1 it waits until the connection
//   closes.
#ifndef NINEP_CONNECTION_H_
#define NINEP_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ninep/wire.h"

namespace ninep {

namespace internal {
class CallState;
class ConnectionCore;
}  // namespace internal

// Which tag table a connection uses: the midatlas MID atlas (the default), or one array under
// one mutex, as Linux's 9p client does (the benchmark's baseline).
enum class TagTableKind : std::uint8_t { kAtlas, kMutex };

struct ConnectionOptions {
  // Largest message either side may send; the server may lower it (diod caps it at 65,536).
  std::uint32_t msize = 65536;
  // Most requests in flight at once, 1..65535 (Tflush requests included).
  std::uint32_t max_in_flight = 1024;
  TagTableKind tag_table = TagTableKind::kAtlas;
};

struct ConnectionStats {
  std::uint64_t requests_sent = 0;
  std::uint64_t replies = 0;            // replies matched to a live request
  std::uint64_t unknown_tags = 0;       // replies dropped: no request had that tag
  std::uint64_t malformed_replies = 0;  // replies that failed to parse (their request failed)
  std::uint64_t flushes_sent = 0;
  std::uint64_t rflushes = 0;           // Rflush replies received
  std::uint64_t late_replies = 0;       // replies that beat the Rflush of their cancelled request
  std::uint64_t late_clunks = 0;        // fids clunked because a late reply created them
  std::uint64_t tag_waits = 0;          // Start calls that waited for a free tag
  std::uint32_t tags_in_use = 0;
  std::uint32_t tags_waiting = 0;       // Start calls waiting for a tag now
  int generation_bits = 0;
};

using Callback = std::function<void(const absl::StatusOr<Reply>&)>;

// One request in flight, shared by the caller and the connection.
class Call {
 public:
  Call() = default;
  explicit Call(std::shared_ptr<internal::CallState> state) : state_(std::move(state)) {}

  // Blocks until the request completes: its reply, an Rlerror status, kCancelled after
  // Cancel(), kDataLoss for a malformed reply, kUnavailable when the connection closed.
  [[nodiscard]] absl::StatusOr<Reply> Wait() const;
  [[nodiscard]] bool done() const;
  // Cancels the request (see CANCELLING above). True when a Tflush was sent; false when the
  // request had already completed, or its connection has closed.
  bool Cancel() const;
  // The tag the request was sent under (NOTAG before it was sent).
  [[nodiscard]] std::uint16_t tag() const;
  // The order in which the tag table admitted this request (first come, first served).
  [[nodiscard]] std::uint64_t admission() const;
  // After a cancellation: the reply that still arrived before the Rflush, once it has.
  [[nodiscard]] std::optional<absl::StatusOr<Reply>> late_reply() const;

 private:
  std::shared_ptr<internal::CallState> state_;
};

class Connection {
 public:
  // Connects to "host:port" (IPv4 or a name), then negotiates version and msize.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(std::string_view host_port,
                                                             ConnectionOptions options = {});
  // Takes `fd`, a connected stream socket (closed in every case), and negotiates over it.
  static absl::StatusOr<std::unique_ptr<Connection>> FromSocket(int fd,
                                                                ConnectionOptions options = {});

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Closes the connection: every request still in flight fails with kUnavailable.
  ~Connection();

  // Sends `request`, waiting first come first served while every tag is in use. `done`, if
  // given, runs once with the result. InvalidArgument (in the Call) for a request larger than
  // msize; Unavailable once the connection is closed.
  Call Start(absl::StatusOr<Request> request, Callback done = {});
  // Start + Wait.
  absl::StatusOr<Reply> Run(absl::StatusOr<Request> request);

  // Shuts the socket: the receive thread fails what is in flight and stops. Idempotent.
  void Close();
  [[nodiscard]] bool closed() const;
  [[nodiscard]] std::uint32_t msize() const;
  [[nodiscard]] ConnectionStats stats() const;

 private:
  explicit Connection(std::shared_ptr<internal::ConnectionCore> core);
  std::shared_ptr<internal::ConnectionCore> core_;
};

}  // namespace ninep

#endif  // NINEP_CONNECTION_H_
