// The connection against a scripted server on the other end of a socketpair: the test reads
// each request and writes whatever reply it wants - well-formed, malformed, truncated, for a
// tag never issued - and checks what the client makes of it. Runs on both tag tables.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ninep/connection.h"
#include "reply_builder.h"

namespace ninep {
namespace {

using testing::ReplyBuilder;

struct Received {
  std::uint8_t type = 0;
  std::uint16_t tag = 0;
  std::vector<std::uint8_t> bytes;
  [[nodiscard]] std::uint32_t U32At(std::size_t at) const {
    std::uint32_t v = 0;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  }
};

class ScriptedServerTest : public ::testing::TestWithParam<TagTableKind> {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server_ = fds[1];
    // The Rversion waits in the socket before the client asks.
    Send(ReplyBuilder(MsgType::kRversion, kNoTag).U32(8192).Str("9P2000.L").Build());
    absl::StatusOr<std::unique_ptr<Connection>> c =
        Connection::FromSocket(fds[0], {.msize = 8192, .max_in_flight = 64,
                                        .tag_table = GetParam()});
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = *std::move(c);
    EXPECT_EQ(Read().type, static_cast<std::uint8_t>(MsgType::kTversion));
  }
  void TearDown() override {
    conn_.reset();
    if (server_ >= 0) ::close(server_);
  }

  void Send(const std::vector<std::uint8_t>& bytes) {
    ASSERT_EQ(::send(server_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  bool ReadExactly(std::uint8_t* out, std::size_t n) {
    while (n > 0) {
      const ssize_t got = ::recv(server_, out, n, 0);
      if (got <= 0) return false;
      out += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  Received Read() {
    Received r;
    r.bytes.resize(4);
    if (!ReadExactly(r.bytes.data(), 4)) return r;
    const std::uint32_t size = r.U32At(0);
    r.bytes.resize(size);
    if (size < kHeaderSize || !ReadExactly(r.bytes.data() + 4, size - 4)) return r;
    r.type = r.bytes[4];
    r.tag = static_cast<std::uint16_t>(r.bytes[5] | (r.bytes[6] << 8));
    return r;
  }
  std::vector<std::uint8_t> Rclunk(std::uint16_t tag) {
    return ReplyBuilder(MsgType::kRclunk, tag).Build();
  }
  // One clean round trip: the connection is usable.
  void ExpectUsable() {
    Call call = conn_->Start(BuildTclunk(42));
    Received r = Read();
    ASSERT_EQ(r.type, static_cast<std::uint8_t>(MsgType::kTclunk));
    Send(Rclunk(r.tag));
    EXPECT_TRUE(call.Wait().ok()) << call.Wait().status();
  }

  int server_ = -1;
  std::unique_ptr<Connection> conn_;
};

TEST_P(ScriptedServerTest, TruncatedReplyBodyFailsItsRequestWithDataLoss) {
  Call call = conn_->Start(BuildTgetattr(1, kGetattrBasic));
  Received r = Read();
  Send(ReplyBuilder(MsgType::kRgetattr, r.tag).U64(1).U32(5).Build());  // far too short
  absl::StatusOr<Reply> reply = call.Wait();
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDataLoss) << reply.status();
  EXPECT_EQ(conn_->stats().malformed_replies, 1U);
  ExpectUsable();
}

TEST_P(ScriptedServerTest, RlerrorFailsItsRequestWithTheErrno) {
  Call call = conn_->Start(BuildTlopen(1, 0));
  Received r = Read();
  Send(ReplyBuilder(MsgType::kRlerror, r.tag).U32(13).Build());  // EACCES
  EXPECT_EQ(call.Wait().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(LerrorErrno(call.Wait().status()), std::optional<std::uint32_t>(13));
  ExpectUsable();
}

TEST_P(ScriptedServerTest, ReplyOfTheWrongTypeFailsItsRequest) {
  Call call = conn_->Start(BuildTread(1, 0, 16));
  Received r = Read();
  Send(ReplyBuilder(MsgType::kRwrite, r.tag).U32(16).Build());
  EXPECT_EQ(call.Wait().status().code(), absl::StatusCode::kDataLoss);
  ExpectUsable();
}

TEST_P(ScriptedServerTest, RreadLongerThanItsRequestIsRefused) {
  Call call = conn_->Start(BuildTread(1, 0, 2));
  Received r = Read();
  Send(ReplyBuilder(MsgType::kRread, r.tag).U32(3).U8(1).U8(2).U8(3).Build());
  EXPECT_EQ(call.Wait().status().code(), absl::StatusCode::kDataLoss);
  ExpectUsable();
}

TEST_P(ScriptedServerTest, ReplyForATagNeverIssuedIsCountedAndDropped) {
  Call call = conn_->Start(BuildTclunk(7));
  Received r = Read();
  const auto stray = static_cast<std::uint16_t>(r.tag ^ 0x0100);
  Send(Rclunk(stray));
  Send(Rclunk(kNoTag));
  Send(Rclunk(r.tag));
  EXPECT_TRUE(call.Wait().ok());
  Send(Rclunk(r.tag));  // a duplicate: the tag is free now
  ExpectUsable();
  EXPECT_EQ(conn_->stats().unknown_tags, 3U);
  EXPECT_EQ(conn_->stats().replies, 2U);
}

TEST_P(ScriptedServerTest, ImpossibleFrameSizeClosesTheConnectionAndFailsWhatIsInFlight) {
  Call a = conn_->Start(BuildTclunk(1));
  Call b = conn_->Start(BuildTclunk(2));
  Read();
  Read();
  Send({3, 0, 0, 0, 121, 0, 0});  // size 3: no way to find the next frame
  EXPECT_EQ(a.Wait().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b.Wait().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(conn_->closed());
  EXPECT_EQ(conn_->Start(BuildTclunk(3)).Wait().status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(conn_->stats().malformed_replies, 1U);
}

TEST_P(ScriptedServerTest, FrameAboveMsizeClosesTheConnection) {
  Call a = conn_->Start(BuildTclunk(1));
  Read();
  Send(ReplyBuilder(MsgType::kRclunk, 0).Build(8193));
  EXPECT_EQ(a.Wait().status().code(), absl::StatusCode::kUnavailable);
}

TEST_P(ScriptedServerTest, ServerHangingUpMidFrameFailsWhatIsInFlight) {
  Call a = conn_->Start(BuildTread(1, 0, 100));
  Received r = Read();
  std::vector<std::uint8_t> frame =
      ReplyBuilder(MsgType::kRread, r.tag).U32(4).U32(0xAABBCCDD).Build();
  frame.resize(frame.size() - 2);
  Send(frame);
  ::close(server_);
  server_ = -1;
  EXPECT_EQ(a.Wait().status().code(), absl::StatusCode::kUnavailable);
}

TEST_P(ScriptedServerTest, LateRwalkBeforeTheRflushHasItsNewFidClunked) {
  const std::vector<std::string> names = {"a"};
  Call walk = conn_->Start(BuildTwalk(1, 77, names));
  Received twalk = Read();
  ASSERT_TRUE(walk.Cancel());
  EXPECT_EQ(walk.Wait().status().code(), absl::StatusCode::kCancelled);
  Received tflush = Read();
  ASSERT_EQ(tflush.type, static_cast<std::uint8_t>(MsgType::kTflush));
  EXPECT_EQ(tflush.bytes[7] | (tflush.bytes[8] << 8), twalk.tag);
  // The walk completes before the flush: newfid 77 now exists on the server.
  Send(ReplyBuilder(MsgType::kRwalk, twalk.tag).U16(1).Qid(0, 0, 9).Build());
  Received tclunk = Read();
  ASSERT_EQ(tclunk.type, static_cast<std::uint8_t>(MsgType::kTclunk));
  EXPECT_EQ(tclunk.U32At(7), 77U);
  EXPECT_NE(tclunk.tag, twalk.tag);  // the walk's tag is still quarantined
  Send(Rclunk(tclunk.tag));
  Send(ReplyBuilder(MsgType::kRwalk, twalk.tag).U16(1).Qid(0, 0, 9).Build());  // a duplicate
  Send(ReplyBuilder(MsgType::kRflush, tflush.tag).Build());
  ExpectUsable();
  const ConnectionStats s = conn_->stats();
  EXPECT_EQ(s.late_replies, 1U);
  EXPECT_EQ(s.late_clunks, 1U);
  EXPECT_EQ(s.unknown_tags, 1U);
  EXPECT_EQ(s.rflushes, 1U);
  EXPECT_EQ(s.tags_in_use, 0U);
  ASSERT_TRUE(walk.late_reply().has_value());
  EXPECT_TRUE(walk.late_reply()->ok());
}

TEST_P(ScriptedServerTest, RlerrorForATflushKeepsTheOldTagQuarantined) {
  Call call = conn_->Start(BuildTclunk(5));
  Received tclunk = Read();
  ASSERT_TRUE(call.Cancel());
  Received tflush = Read();
  Send(ReplyBuilder(MsgType::kRlerror, tflush.tag).U32(22).Build());
  ExpectUsable();
  EXPECT_EQ(conn_->stats().tags_in_use, 1U);  // the old tag: the server may still answer it
  Send(Rclunk(tclunk.tag));                    // it does: a late reply, honoured
  ExpectUsable();
  EXPECT_EQ(conn_->stats().late_replies, 1U);
}

TEST_P(ScriptedServerTest, RequestLargerThanMsizeIsRefusedBeforeSending) {
  const std::vector<std::uint8_t> data(9000, 1);
  EXPECT_EQ(conn_->Start(BuildTwrite(1, 0, data)).Wait().status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectUsable();
}

INSTANTIATE_TEST_SUITE_P(BothTables, ScriptedServerTest,
                         ::testing::Values(TagTableKind::kAtlas, TagTableKind::kMutex),
                         [](const ::testing::TestParamInfo<TagTableKind>& p) {
                           return p.param == TagTableKind::kAtlas ? "Atlas" : "Mutex";
                         });

// Version negotiation refuses what is not 9P2000.L with a usable msize.
absl::Status ConnectWithRversion(const std::vector<std::uint8_t>& rversion) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::InternalError("socketpair");
  }
  (void)::send(fds[1], rversion.data(), rversion.size(), MSG_NOSIGNAL);
  ::shutdown(fds[1], SHUT_WR);
  absl::Status s = Connection::FromSocket(fds[0], {.msize = 8192}).status();
  ::close(fds[1]);
  return s;
}

TEST(Negotiation, OtherVersionIsRefused) {
  EXPECT_EQ(ConnectWithRversion(
                ReplyBuilder(MsgType::kRversion, kNoTag).U32(8192).Str("9P2000.u").Build())
                .code(),
            absl::StatusCode::kUnimplemented);
}

TEST(Negotiation, MsizeAboveTheOneAskedIsRefused) {
  EXPECT_EQ(ConnectWithRversion(
                ReplyBuilder(MsgType::kRversion, kNoTag).U32(16384).Str("9P2000.L").Build())
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(Negotiation, ServerThatHangsUpIsUnavailable) {
  EXPECT_EQ(ConnectWithRversion({}).code(), absl::StatusCode::kUnavailable);
}

TEST(Negotiation, LowerMsizeIsAccepted) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  const auto rversion =
      ReplyBuilder(MsgType::kRversion, kNoTag).U32(4096).Str("9P2000.L").Build();
  ASSERT_EQ(::send(fds[1], rversion.data(), rversion.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(rversion.size()));
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::FromSocket(fds[0], {.msize = 8192});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->msize(), 4096U);
  c->reset();
  ::close(fds[1]);
}

}  // namespace
}  // namespace ninep
