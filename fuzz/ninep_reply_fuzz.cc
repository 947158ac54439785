// Fuzz target for the 9P2000.L client's reply path (clients/ninep): whatever a server sends,
// the client must not crash, read out of bounds, leak, or deliver a reply to the wrong request.
//
//   input = mode byte, then bytes
//   mode even: the bytes are one reply frame, parsed as the reply to the request type the mode
//              picks (ParseReply, ParseFrameHeader, ParseDirEntries). A reply that parses must
//              be of the kind that answers that request.
//   mode odd:  the bytes are a byte stream from a server: a connection (over a socketpair, on
//              the tag table the mode picks) with a few requests in flight, one of them
//              cancelled, reads them to the end. Every request must complete (reply, error or
//              kUnavailable when the stream ends), and nothing may leak (LSan).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ninep/connection.h"
#include "ninep/wire.h"

namespace {

using ninep::MsgType;

constexpr MsgType kRequests[] = {
    MsgType::kTversion, MsgType::kTattach, MsgType::kTwalk,   MsgType::kTlopen,
    MsgType::kTlcreate, MsgType::kTread,   MsgType::kTwrite,  MsgType::kTreaddir,
    MsgType::kTgetattr, MsgType::kTclunk,  MsgType::kTflush,
};

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "ninep_reply_fuzz: %s\n", what);
    std::abort();
  }
}

// The variant alternative that answers `request`.
std::size_t ExpectedIndex(MsgType request) {
  switch (request) {
    case MsgType::kTversion: return 0;
    case MsgType::kTattach: return 1;
    case MsgType::kTwalk: return 2;
    case MsgType::kTlopen:
    case MsgType::kTlcreate: return 3;
    case MsgType::kTread: return 4;
    case MsgType::kTwrite: return 5;
    case MsgType::kTreaddir: return 6;
    case MsgType::kTgetattr: return 7;
    default: return 8;
  }
}

void ParseOne(std::uint8_t mode, std::span<const std::uint8_t> frame) {
  const MsgType request = kRequests[(mode >> 1) % std::size(kRequests)];
  absl::StatusOr<ninep::Reply> reply = ninep::ParseReply(frame, request);
  if (reply.ok()) {
    Check(reply->index() == ExpectedIndex(request), "reply of the wrong kind accepted");
    if (const auto* w = std::get_if<ninep::Rwalk>(&*reply)) {
      Check(w->qids.size() <= ninep::kMaxWalkNames, "Rwalk of more than 16 qids accepted");
    }
    if (const auto* r = std::get_if<ninep::Rread>(&*reply)) {
      Check(r->data.size() + 11 == frame.size(), "Rread data does not fill its frame");
    }
  } else {
    Check(!reply.status().message().empty(), "error without a message");
  }
  (void)ninep::ParseFrameHeader(frame, 8192);
  (void)ninep::ParseDirEntries(frame);
}

void Stream(std::uint8_t mode, std::span<const std::uint8_t> bytes) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
  // A well-formed Rversion first, so that the fuzzer spends its bytes on the replies.
  const std::uint8_t rversion[] = {21, 0, 0, 0, 101, 0xFF, 0xFF, 0x00, 0x20, 0, 0,
                                   8,  0, '9', 'P', '2', '0', '0', '0', '.', 'L'};
  (void)::send(fds[1], rversion, sizeof rversion, MSG_NOSIGNAL);
  const auto kind = (mode & 2) != 0 ? ninep::TagTableKind::kMutex : ninep::TagTableKind::kAtlas;
  absl::StatusOr<std::unique_ptr<ninep::Connection>> conn =
      ninep::Connection::FromSocket(fds[0], {.msize = 8192, .max_in_flight = 8, .tag_table = kind});
  if (!conn.ok()) {
    ::close(fds[1]);
    return;
  }
  const std::vector<std::string> names = {"a", "b"};
  std::vector<ninep::Call> calls;
  calls.push_back((*conn)->Start(ninep::BuildTwalk(1, 2, names)));
  calls.push_back((*conn)->Start(ninep::BuildTread(2, 0, 64)));
  calls.push_back((*conn)->Start(ninep::BuildTreaddir(2, 0, 256)));
  calls.push_back((*conn)->Start(ninep::BuildTgetattr(2, ninep::kGetattrAll)));
  calls.push_back((*conn)->Start(ninep::BuildTlopen(2, 0)));
  calls[0].Cancel();  // a quarantined tag and a Tflush in flight
  // The server's bytes, then its hang-up. (The socket buffer holds this much: max_len 4096.)
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fds[1], bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);
  for (const ninep::Call& call : calls) {
    (void)call.Wait();
    Check(call.done(), "a request never completed");
  }
  conn->reset();
  ::close(fds[1]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  std::span<const std::uint8_t> rest(data + 1, size - 1);
  if ((mode & 1) == 0) {
    ParseOne(mode, rest);
  } else {
    Stream(mode, rest);
  }
  return 0;
}
