// The 9P2000.L codec without a server: builders produce the documented layouts, the reply
// parser accepts well-formed replies and refuses every malformed one with kDataLoss.
#include "ninep/wire.h"

#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "reply_builder.h"

namespace ninep {
namespace {

using testing::ReplyBuilder;

std::vector<std::uint8_t> Bytes(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

TEST(Builders, TversionHasNoTagAndTheVersionString) {
  absl::StatusOr<Request> r = BuildTversion(65536, "9P2000.L");
  ASSERT_TRUE(r.ok());
  const std::vector<std::uint8_t> expected = {21, 0, 0, 0, 100, 0xFF, 0xFF, 0, 0, 1, 0, 8, 0,
                                              '9', 'P', '2', '0', '0', '0', '.', 'L'};
  EXPECT_EQ(r->bytes, expected);
  EXPECT_EQ(TagOf(r->bytes), kNoTag);
}

TEST(Builders, SetTagWritesLittleEndianTagBytes) {
  absl::StatusOr<Request> r = BuildTclunk(7);
  ASSERT_TRUE(r.ok());
  SetTag(*r, 0x1234);
  const std::vector<std::uint8_t> expected = {11, 0, 0, 0, 120, 0x34, 0x12, 7, 0, 0, 0};
  EXPECT_EQ(r->bytes, expected);
  EXPECT_EQ(TagOf(r->bytes), 0x1234);
}

TEST(Builders, TwalkListsItsNamesAndRemembersTheFids) {
  const std::vector<std::string> names = {"a", "bc"};
  absl::StatusOr<Request> r = BuildTwalk(1, 2, names);
  ASSERT_TRUE(r.ok());
  const std::vector<std::uint8_t> expected = {24, 0, 0, 0, 110, 0xFF, 0xFF, 1, 0, 0, 0, 2, 0, 0, 0,
                                              2,  0, 1, 0, 'a', 2, 0, 'b', 'c'};
  EXPECT_EQ(r->bytes, expected);
  EXPECT_EQ(r->fid, 1U);
  EXPECT_EQ(r->newfid, 2U);
  EXPECT_EQ(r->walk_names, 2);
}

TEST(Builders, TwalkOfSeventeenNamesIsRefused) {
  const std::vector<std::string> names(17, "x");
  EXPECT_EQ(BuildTwalk(1, 2, names).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Builders, StringOverSixtyFourKibIsRefused) {
  const std::string huge(65536, 'x');
  EXPECT_EQ(BuildTlcreate(1, huge, 0, 0644, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(BuildTlcreate(1, std::string(65535, 'x'), 0, 0644, 0).ok());
}

TEST(Builders, TwriteCarriesItsData) {
  const std::vector<std::uint8_t> data = {9, 8, 7};
  absl::StatusOr<Request> r = BuildTwrite(5, 0x0102030405060708ULL, data);
  ASSERT_TRUE(r.ok());
  const std::vector<std::uint8_t> expected = {26, 0, 0, 0, 118, 0xFF, 0xFF, 5, 0, 0, 0, 8, 7, 6, 5,
                                              4,  3, 2, 1, 3,   0, 0, 0, 9, 8, 7};
  EXPECT_EQ(r->bytes, expected);
}

TEST(Builders, TflushNamesTheOldTag) {
  absl::StatusOr<Request> r = BuildTflush(0xBEEF);
  ASSERT_TRUE(r.ok());
  const std::vector<std::uint8_t> expected = {9, 0, 0, 0, 108, 0xFF, 0xFF, 0xEF, 0xBE};
  EXPECT_EQ(r->bytes, expected);
  EXPECT_EQ(r->oldtag, 0xBEEF);
}

TEST(Builders, TattachTgetattrTreaddirTlopenLayouts) {
  absl::StatusOr<Request> attach = BuildTattach(1, kNoFid, "root", "/x", 0);
  ASSERT_TRUE(attach.ok());
  EXPECT_EQ(attach->bytes.size(), 7U + 4 + 4 + 6 + 4 + 4);
  absl::StatusOr<Request> getattr = BuildTgetattr(3, kGetattrAll);
  ASSERT_TRUE(getattr.ok());
  EXPECT_EQ(getattr->bytes.size(), 7U + 4 + 8);
  absl::StatusOr<Request> readdir = BuildTreaddir(3, 10, 4096);
  ASSERT_TRUE(readdir.ok());
  EXPECT_EQ(readdir->bytes.size(), 7U + 4 + 8 + 4);
  EXPECT_EQ(readdir->count, 4096U);
  absl::StatusOr<Request> lopen = BuildTlopen(3, 2);
  ASSERT_TRUE(lopen.ok());
  EXPECT_EQ(lopen->bytes.size(), 7U + 4 + 4);
}

TEST(ParseReply, RversionGivesMsizeAndVersion) {
  auto frame = ReplyBuilder(MsgType::kRversion, kNoTag).U32(8192).Str("9P2000.L").Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTversion);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Rversion>(*r).msize, 8192U);
  EXPECT_EQ(std::get<Rversion>(*r).version, "9P2000.L");
}

TEST(ParseReply, RwalkGivesEveryQid) {
  auto frame =
      ReplyBuilder(MsgType::kRwalk, 1).U16(2).Qid(0x80, 1, 10).Qid(0, 2, 20).Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTwalk);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& w = std::get<Rwalk>(*r);
  ASSERT_EQ(w.qids.size(), 2U);
  EXPECT_EQ(w.qids[0], (Qid{0x80, 1, 10}));
  EXPECT_EQ(w.qids[1], (Qid{0, 2, 20}));
}

TEST(ParseReply, RwalkOfSeventeenQidsIsMalformed) {
  ReplyBuilder b(MsgType::kRwalk, 1);
  b.U16(17);
  for (int i = 0; i < 17; ++i) b.Qid(0, 0, 0);
  EXPECT_EQ(ParseReply(b.Build(), MsgType::kTwalk).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ParseReply, RreadGivesItsData) {
  auto frame = ReplyBuilder(MsgType::kRread, 3).U32(3).U8('a').U8('b').U8('c').Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTread);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Rread>(*r).data, (std::vector<std::uint8_t>{'a', 'b', 'c'}));
}

TEST(ParseReply, RreadCountBeyondTheFrameIsMalformed) {
  auto frame = ReplyBuilder(MsgType::kRread, 3).U32(4).U8('a').U8('b').U8('c').Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTread);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("data"), std::string_view::npos) << r.status();
}

TEST(ParseReply, TrailingBytesAreMalformed) {
  auto frame = ReplyBuilder(MsgType::kRclunk, 3).U8(0).Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTclunk);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("unexpected bytes"), std::string_view::npos) << r.status();
}

TEST(ParseReply, SizeFieldThatDisagreesWithTheFrameIsMalformed) {
  auto frame = ReplyBuilder(MsgType::kRclunk, 3).Build(8);
  EXPECT_EQ(ParseReply(frame, MsgType::kTclunk).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ParseReply, EveryTruncationOfAnRgetattrIsMalformed) {
  ReplyBuilder b(MsgType::kRgetattr, 9);
  b.U64(kGetattrBasic).Qid(0, 1, 2).U32(0100644).U32(0).U32(0);
  for (int i = 0; i < 15; ++i) b.U64(static_cast<std::uint64_t>(i));
  const std::vector<std::uint8_t> whole = b.Build();
  absl::StatusOr<Reply> r = ParseReply(whole, MsgType::kTgetattr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Rgetattr>(*r).attr.mode, 0100644U);
  EXPECT_EQ(std::get<Rgetattr>(*r).attr.size, 2U);  // the third u64 after nlink, rdev
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    std::vector<std::uint8_t> truncated(whole.begin(), whole.begin() + static_cast<long>(cut));
    if (truncated.size() >= 4) {  // keep the size field honest about the shorter frame
      truncated[0] = static_cast<std::uint8_t>(cut);
      truncated[1] = static_cast<std::uint8_t>(cut >> 8);
    }
    EXPECT_EQ(ParseReply(truncated, MsgType::kTgetattr).status().code(),
              absl::StatusCode::kDataLoss)
        << "cut at " << cut;
  }
}

TEST(ParseReply, RlerrorBecomesAStatusWithItsErrno) {
  auto frame = ReplyBuilder(MsgType::kRlerror, 4).U32(ENOENT).Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTwalk);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LerrorErrno(r.status()), std::optional<std::uint32_t>(ENOENT));
  EXPECT_NE(r.status().message().find("errno 2"), std::string_view::npos) << r.status();
}

TEST(ParseReply, RlerrorWithAHugeErrnoStillParses) {
  auto frame = ReplyBuilder(MsgType::kRlerror, 4).U32(0xFFFFFFFF).Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTread);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(LerrorErrno(r.status()), std::optional<std::uint32_t>(0xFFFFFFFF));
}

TEST(ParseReply, ReplyOfTheWrongTypeIsMalformed) {
  auto frame = ReplyBuilder(MsgType::kRwrite, 4).U32(1).Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTread);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("Rwrite in reply to Tread"), std::string_view::npos)
      << r.status();
}

TEST(ParseReply, RreaddirEntriesAreParsed) {
  std::vector<std::uint8_t> data;
  auto add = [&](std::string_view name, std::uint64_t offset) {
    ReplyBuilder e(MsgType::kRreaddir, 0);
    e.Qid(0, 0, offset).U64(offset).U8(8).Str(name);
    std::vector<std::uint8_t> b = e.Build();
    data.insert(data.end(), b.begin() + kHeaderSize, b.end());
  };
  add("one", 1);
  add("two", 2);
  auto frame = ReplyBuilder(MsgType::kRreaddir, 5)
                   .U32(static_cast<std::uint32_t>(data.size()))
                   .Raw(data)
                   .Build();
  absl::StatusOr<Reply> r = ParseReply(frame, MsgType::kTreaddir);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& list = std::get<Rreaddir>(*r).entries;
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].name, "one");
  EXPECT_EQ(list[1].name, "two");
  EXPECT_EQ(list[1].offset, 2U);
  // An entry cut short inside the data is malformed even though the frame adds up.
  data.pop_back();
  auto cut = ReplyBuilder(MsgType::kRreaddir, 5)
                 .U32(static_cast<std::uint32_t>(data.size()))
                 .Raw(data)
                 .Build();
  EXPECT_EQ(ParseReply(cut, MsgType::kTreaddir).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ParseFrameHeader, SizesOutsideSevenToMsizeAreRefused) {
  EXPECT_EQ(ParseFrameHeader(Bytes({6, 0, 0, 0, 121, 0, 0}), 8192).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseFrameHeader(Bytes({1, 32, 0, 0, 121, 0, 0}), 8192).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseFrameHeader(Bytes({7, 0, 0}), 8192).status().code(),
            absl::StatusCode::kDataLoss);
  absl::StatusOr<FrameHeader> ok = ParseFrameHeader(Bytes({7, 0, 0, 0, 121, 2, 1}), 8192);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->tag, 0x0102);
  EXPECT_EQ(ok->type, 121);
}

}  // namespace
}  // namespace ninep
