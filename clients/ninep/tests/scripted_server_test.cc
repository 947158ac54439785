// The connection against a scripted server on the other end of a socketpair: the test reads
// each request and writes whatever reply it wants - well-formed, malformed, truncated, for a
// tag never issued - and checks what the client makes of it. Runs on both tag tables.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "diod_env.h"
#include "gtest/gtest.h"
#include "ninep/connection.h"
#include "reply_builder.h"

namespace ninep {
namespace {

using testing::Eventually;
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
  void SetUp() override { Connect(64); }
  void TearDown() override {
    conn_.reset();
    if (server_ >= 0) ::close(server_);
  }

  // A fresh connection (and server end) allowing `max_in_flight` requests.
  void Connect(std::uint32_t max_in_flight) {
    TearDown();
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server_ = fds[1];
    // The Rversion waits in the socket before the client asks.
    Send(ReplyBuilder(MsgType::kRversion, kNoTag).U32(8192).Str("9P2000.L").Build());
    absl::StatusOr<std::unique_ptr<Connection>> c =
        Connection::FromSocket(fds[0], {.msize = 8192, .max_in_flight = max_in_flight,
                                        .tag_table = GetParam()});
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = *std::move(c);
    EXPECT_EQ(Read().type, static_cast<std::uint8_t>(MsgType::kTversion));
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
  // Counted before the next request: the mutex table, without generations, could hand that
  // request the freed tag, and the duplicate would then answer it.
  ASSERT_TRUE(Eventually([&] { return conn_->stats().unknown_tags == 3; }));
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

TEST_P(ScriptedServerTest, ReplyUnderAnOldGenerationOfAReusedTagIsCountedAndDropped) {
  if (GetParam() != TagTableKind::kAtlas) GTEST_SKIP() << "the mutex table has no generations";
  Connect(1);  // one slot: every request reuses it, under the next generation
  EXPECT_EQ(conn_->stats().generation_bits, 15);
  Call first = conn_->Start(BuildTclunk(1));
  const Received r1 = Read();
  Send(Rclunk(r1.tag));
  ASSERT_TRUE(first.Wait().ok());
  Call second = conn_->Start(BuildTclunk(2));
  const Received r2 = Read();
  EXPECT_EQ(r2.tag & 1U, r1.tag & 1U);  // the same slot
  ASSERT_NE(r2.tag, r1.tag);            // another generation
  Send(Rclunk(r1.tag));                 // a late duplicate of the first reply
  ASSERT_TRUE(Eventually([&] { return conn_->stats().unknown_tags == 1; }));
  EXPECT_FALSE(second.done());  // never delivered to the request that reuses the slot
  Send(Rclunk(r2.tag));
  EXPECT_TRUE(second.Wait().ok());
  EXPECT_EQ(conn_->stats().replies, 2U);
}

TEST_P(ScriptedServerTest, QuarantinedTagIsReusedOnlyAfterTheRflush) {
  Connect(2);
  Call open = conn_->Start(BuildTlopen(1, 0));
  const Received tlopen = Read();
  ASSERT_TRUE(open.Cancel());
  EXPECT_EQ(open.Wait().status().code(), absl::StatusCode::kCancelled);
  const Received tflush = Read();
  ASSERT_EQ(tflush.type, static_cast<std::uint8_t>(MsgType::kTflush));
  EXPECT_EQ(conn_->stats().tags_in_use, 2U);  // the quarantined tag and the Tflush's
  // Both tags are held: a new request waits.
  Call next;
  std::thread starter([&] { next = conn_->Start(BuildTclunk(9)); });
  ASSERT_TRUE(Eventually([&] { return conn_->stats().tags_waiting == 1; }));
  // The open completes before the flush: honoured through the late context, and its tag
  // stays quarantined - the waiter still waits.
  Send(ReplyBuilder(MsgType::kRlopen, tlopen.tag).Qid(0, 0, 5).U32(0).Build());
  ASSERT_TRUE(Eventually([&] { return open.late_reply().has_value(); }));
  ASSERT_TRUE(open.late_reply()->ok());
  EXPECT_TRUE(std::holds_alternative<Ropen>(**open.late_reply()));
  EXPECT_EQ(conn_->stats().tags_in_use, 2U);
  EXPECT_EQ(conn_->stats().tags_waiting, 1U);
  // The Rflush frees both tags; the waiter's request goes out.
  Send(ReplyBuilder(MsgType::kRflush, tflush.tag).Build());
  const Received tclunk = Read();
  starter.join();
  ASSERT_EQ(tclunk.type, static_cast<std::uint8_t>(MsgType::kTclunk));
  EXPECT_EQ(tclunk.U32At(7), 9U);
  Send(Rclunk(tclunk.tag));
  EXPECT_TRUE(next.Wait().ok());
  const ConnectionStats s = conn_->stats();
  EXPECT_EQ(s.late_replies, 1U);
  EXPECT_EQ(s.rflushes, 1U);
  EXPECT_EQ(s.unknown_tags, 0U);
  EXPECT_EQ(s.tag_waits, 1U);
  EXPECT_EQ(s.tags_in_use, 0U);
}

TEST_P(ScriptedServerTest, HangUpAfterALateReplyBeforeTheRflushFailsTheTflush) {
  // The late reply takes the late context out of the table; the Tflush still in flight is
  // drained when the server hangs up, and with it the last reference cycle goes (the leak
  // checker of the ASan build sees to that).
  Call open = conn_->Start(BuildTlopen(1, 0));
  const Received tlopen = Read();
  ASSERT_TRUE(open.Cancel());
  const Received tflush = Read();
  ASSERT_EQ(tflush.type, static_cast<std::uint8_t>(MsgType::kTflush));
  Send(ReplyBuilder(MsgType::kRlopen, tlopen.tag).Qid(0, 0, 5).U32(0).Build());
  ASSERT_TRUE(Eventually([&] { return open.late_reply().has_value(); }));
  ::close(server_);
  server_ = -1;
  ASSERT_TRUE(Eventually([&] { return conn_->closed() && conn_->stats().tags_in_use == 0; }));
  EXPECT_EQ(open.Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(open.Cancel());  // nothing left to flush
  EXPECT_EQ(conn_->stats().late_replies, 1U);
  EXPECT_EQ(conn_->stats().rflushes, 0U);
}

TEST_P(ScriptedServerTest, OnlyTheLastOfRepeatedTflushesIsAnsweredAndItFreesThemAll) {
  Call call = conn_->Start(BuildTgetattr(1, kGetattrBasic));
  const Received tgetattr = Read();
  ASSERT_TRUE(call.Cancel());
  const Received first_flush = Read();
  ASSERT_TRUE(call.Cancel());
  const Received last_flush = Read();
  EXPECT_EQ(last_flush.bytes[7] | (last_flush.bytes[8] << 8), tgetattr.tag);
  EXPECT_EQ(conn_->stats().tags_in_use, 3U);
  // diod's way (flush(5)): only the last Tflush is answered.
  Send(ReplyBuilder(MsgType::kRflush, last_flush.tag).Build());
  ASSERT_TRUE(Eventually([&] { return conn_->stats().tags_in_use == 0; }));
  // An Rflush for the earlier one now finds nothing, as does a reply for the flushed request.
  // (Waited for before the next request: the mutex table, without generations, would hand
  // that request a tag these replies still carry.)
  Send(ReplyBuilder(MsgType::kRflush, first_flush.tag).Build());
  Send(ReplyBuilder(MsgType::kRgetattr, tgetattr.tag).Build());
  ASSERT_TRUE(Eventually([&] { return conn_->stats().unknown_tags == 2; }));
  ExpectUsable();
  const ConnectionStats s = conn_->stats();
  EXPECT_EQ(s.rflushes, 1U);
  EXPECT_EQ(s.unknown_tags, 2U);
  EXPECT_EQ(s.late_replies, 0U);
  EXPECT_FALSE(call.late_reply().has_value());
}

TEST_P(ScriptedServerTest, RequestsWaitingForATagGoOutInArrivalOrder) {
  constexpr std::uint32_t kWaiters = 6;
  Connect(2);
  Call a = conn_->Start(BuildTclunk(1));
  Call b = conn_->Start(BuildTclunk(2));
  std::vector<Received> held = {Read(), Read()};
  std::vector<Call> calls(kWaiters);
  std::vector<std::thread> starters;
  for (std::uint32_t i = 0; i < kWaiters; ++i) {
    starters.emplace_back([&, i] { calls[i] = conn_->Start(BuildTclunk(100 + i)); });
    ASSERT_TRUE(Eventually([&] { return conn_->stats().tags_waiting == i + 1; }));
  }
  // Answer one request at a time: each reply frees the tag the next waiter in line takes.
  for (std::uint32_t i = 0; i < kWaiters; ++i) {
    Send(Rclunk(held[i].tag));
    held.push_back(Read());
    EXPECT_EQ(held.back().U32At(7), 100 + i) << "the tag freed " << i << "th went elsewhere";
  }
  for (std::thread& t : starters) t.join();
  for (std::size_t i = kWaiters; i < held.size(); ++i) Send(Rclunk(held[i].tag));
  EXPECT_TRUE(a.Wait().ok());
  EXPECT_TRUE(b.Wait().ok());
  for (Call& c : calls) EXPECT_TRUE(c.Wait().ok());
  EXPECT_EQ(conn_->stats().tag_waits, kWaiters);
  EXPECT_EQ(conn_->stats().tags_in_use, 0U);
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
