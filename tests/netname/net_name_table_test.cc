// The NetName table's C++ API: every rule of include/midatlas/net_name_table.h.
#include "midatlas/net_name_table.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "midatlas/mid_atlas.h"
#include "netname/connection_id.h"
#include "netname/net_name_key.h"

namespace midatlas {
namespace {

using namespace std::string_view_literals;

// Returns the session number stored in the request context as the connection ID, or fails
// with the status it was given.
class SessionProvider : public ConnectionIdProvider {
 public:
  explicit SessionProvider(absl::Status failure = absl::OkStatus())
      : failure_(std::move(failure)) {}
  absl::StatusOr<ConnectionId> GetConnectionId(void* request_context) override {
    calls.fetch_add(1);
    if (!failure_.ok()) return failure_;
    const auto* session = static_cast<const std::uint32_t*>(request_context);
    return ConnectionIdFromSession(session == nullptr ? 0 : *session);
  }
  std::atomic<int> calls{0};

 private:
  absl::Status failure_;
};

std::unique_ptr<NetNameTable> MakeTable(NetNameTable::Options options = {}) {
  absl::StatusOr<std::unique_ptr<NetNameTable>> table = NetNameTable::Create(std::move(options));
  EXPECT_TRUE(table.ok()) << table.status();
  return *std::move(table);
}

NetNameRef MustCreate(NetNameTable& table, std::string_view name, NetNameKind kind,
                      const ConnectionId& id = {}) {
  absl::StatusOr<NetNameRef> ref = table.FindOrCreateWithId(name, kind, id);
  EXPECT_TRUE(ref.ok()) << ref.status() << " for " << name;
  return ref.ok() ? *std::move(ref) : NetNameRef();
}

// Whether Lookup(path, id) finds `entry`, with `remaining` the rest of the path.
::testing::AssertionResult Finds(const NetNameTable& table, std::string_view path,
                                 const NetNameRef& entry, std::string_view remaining,
                                 const ConnectionId& id = {}) {
  absl::StatusOr<NetNameMatch> match = table.Lookup(path, id);
  if (!match.ok()) return ::testing::AssertionFailure() << path << ": " << match.status();
  if (!(match->entry == entry)) {
    return ::testing::AssertionFailure()
           << path << ": found " << match->entry.name() << ", not " << entry.name();
  }
  if (match->remaining != remaining) {
    return ::testing::AssertionFailure()
           << path << ": the rest is \"" << match->remaining << "\", not \"" << remaining << "\"";
  }
  return ::testing::AssertionSuccess();
}

ConnectionId IdWithLastByte(std::uint8_t last) {
  ConnectionId id;
  id.bytes.back() = last;
  return id;
}

TEST(NetNameTableTest, BadNamesAreInvalidArgumentsAndInsertNothing) {
  auto table = MakeTable();
  const std::string too_long = "\\\\server\\" + std::string(kMaxNetNameBytes, 'a');
  const std::string long_component =
      "\\\\server\\" + std::string(kMaxNetNameComponentBytes + 1, 'a');
  const std::string with_nul("\\\\server\\sh\0re", 14);
  for (std::string_view bad : {"server\\share"sv, "\\server\\share"sv, "\\\\"sv, ""sv,
                               "\\\\server\\\\share"sv, "\\\\server\\share\\"sv,
                               std::string_view(too_long),
                               std::string_view(long_component), std::string_view(with_nul)}) {
    absl::StatusOr<NetNameRef> ref = table->FindOrCreateWithId(bad, NetNameKind::kNetRoot, {});
    EXPECT_TRUE(absl::IsInvalidArgument(ref.status())) << bad << ": " << ref.status();
    EXPECT_TRUE(absl::IsInvalidArgument(table->Lookup(bad, {}).status())) << bad;
  }
  // A stream part is part of a path, never of an entry name.
  EXPECT_TRUE(absl::IsInvalidArgument(
      table->FindOrCreateWithId("\\\\server\\share:stream", NetNameKind::kNetRoot, {}).status()));
  EXPECT_EQ(table->size(), 0U);
}

TEST(NetNameTableTest, LookupPathsMayEndInAStreamButNotInABadOne) {
  auto table = MakeTable();
  NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\f.txt:s:$DATA", root, "\\f.txt:s:$DATA"));
  for (std::string_view bad : {"\\\\server\\share\\f:"sv, "\\\\server\\share\\f::s"sv,
                               "\\\\server\\share\\f:s\\x"sv}) {
    EXPECT_TRUE(absl::IsInvalidArgument(table->Lookup(bad, {}).status())) << bad;
  }
}

TEST(NetNameTableTest, KindMustFitTheNumberOfComponents) {
  auto table = MakeTable();
  EXPECT_TRUE(absl::IsInvalidArgument(
      table->FindOrCreateWithId("\\\\server\\share", NetNameKind::kServerCall, {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      table->FindOrCreateWithId("\\\\server", NetNameKind::kNetRoot, {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      table->FindOrCreateWithId("\\\\server", NetNameKind::kVNetRoot, {}).status()));
  EXPECT_EQ(table->size(), 0U);
}

TEST(NetNameTableTest, FindOrCreateOfAnExistingKeyReturnsTheSameEntry) {
  auto table = MakeTable();
  NetNameRef first = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  NetNameRef second = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  EXPECT_TRUE(first == second);
  EXPECT_EQ(table->size(), 2U);  // the net root and the server call it created
  EXPECT_EQ(first.server_call().name(), "\\\\server");
  EXPECT_EQ(first.server_call().kind(), NetNameKind::kServerCall);
}

TEST(NetNameTableTest, NamesCompareCaseInsensitivelyByDefault) {
  auto table = MakeTable();
  NetNameRef lower = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  NetNameRef upper = MustCreate(*table, "\\\\SERVER\\Share", NetNameKind::kNetRoot);
  EXPECT_TRUE(lower == upper);
  EXPECT_EQ(upper.name(), "\\\\server\\share");  // the name as first created
  EXPECT_TRUE(Finds(*table, "\\\\SeRvEr\\SHARE\\Dir", lower, "\\Dir"));
}

TEST(NetNameTableTest, CaseSensitiveTableTellsCaseApart) {
  auto table = MakeTable({.case_sensitive = true});
  EXPECT_TRUE(table->case_sensitive());
  NetNameRef lower = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  NetNameRef upper = MustCreate(*table, "\\\\server\\SHARE", NetNameKind::kNetRoot);
  EXPECT_FALSE(lower == upper);
  EXPECT_TRUE(lower.server_call() == upper.server_call());
  // Only the server call matches.
  EXPECT_TRUE(Finds(*table, "\\\\server\\Share\\x", lower.server_call(), "\\Share\\x"));
}

TEST(NetNameTableTest, TwoSessionsToOneShareWithDifferentIdsGetDifferentEntriesAndAtlases) {
  auto provider = std::make_shared<SessionProvider>();
  auto table = MakeTable({.provider = provider});
  std::uint32_t session1 = 1;
  std::uint32_t session2 = 2;
  absl::StatusOr<NetNameRef> a =
      table->FindOrCreate("\\\\server\\share", NetNameKind::kVNetRoot, &session1);
  absl::StatusOr<NetNameRef> b =
      table->FindOrCreate("\\\\server\\share", NetNameKind::kVNetRoot, &session2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(provider->calls.load(), 2);
  EXPECT_FALSE(*a == *b);
  EXPECT_FALSE(a->server_call() == b->server_call());
  ASSERT_NE(a->atlas(), nullptr);
  ASSERT_NE(b->atlas(), nullptr);
  EXPECT_NE(a->atlas(), b->atlas());
  EXPECT_EQ(a->connection_id(), ConnectionIdFromSession(1));

  // The same MID names different requests on the two connections.
  int request_a = 0;
  int request_b = 0;
  absl::StatusOr<Mid> mid_a = a->atlas()->Associate(&request_a);
  absl::StatusOr<Mid> mid_b = b->atlas()->Associate(&request_b);
  ASSERT_TRUE(mid_a.ok() && mid_b.ok());
  EXPECT_EQ(*mid_a, *mid_b);
  EXPECT_EQ(a->atlas()->Map(*mid_a), &request_a);
  EXPECT_EQ(b->atlas()->Map(*mid_b), &request_b);
  ASSERT_TRUE(a->atlas()->MapAndDissociate(*mid_a).ok());
  ASSERT_TRUE(b->atlas()->MapAndDissociate(*mid_b).ok());

  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\file", *a, "\\file", ConnectionIdFromSession(1)));
  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\file", *b, "\\file", ConnectionIdFromSession(2)));
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\server\\share\\file", {}).status()));
}

TEST(NetNameTableTest, NotImplementedProviderEqualsTheAllZeroId) {
  auto provider = std::make_shared<SessionProvider>(absl::UnimplementedError("no IDs"));
  auto table = MakeTable({.provider = provider});
  absl::StatusOr<NetNameRef> via_provider =
      table->FindOrCreate("\\\\server\\share", NetNameKind::kNetRoot, nullptr);
  ASSERT_TRUE(via_provider.ok()) << via_provider.status();
  EXPECT_TRUE(via_provider->connection_id().is_zero());
  NetNameRef zero = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot, ConnectionId{});
  EXPECT_TRUE(*via_provider == zero);
  EXPECT_EQ(internal::ResolveConnectionId(nullptr, nullptr).value(), ConnectionId{});
}

TEST(NetNameTableTest, ProviderErrorIsReturnedUnchangedAndCreatesNothing) {
  const absl::Status failure = absl::PermissionDeniedError("logon session gone");
  auto provider = std::make_shared<SessionProvider>(failure);
  auto table = MakeTable({.provider = provider});
  absl::StatusOr<NetNameRef> ref =
      table->FindOrCreate("\\\\server\\share", NetNameKind::kNetRoot, nullptr);
  EXPECT_EQ(ref.status(), failure);
  EXPECT_EQ(table->size(), 0U);
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\server", {}).status()));
}

TEST(NetNameTableTest, ConnectionIdsCompareEveryByte) {
  auto table = MakeTable();
  NetNameRef a = MustCreate(*table, "\\\\server", NetNameKind::kServerCall, IdWithLastByte(1));
  NetNameRef b = MustCreate(*table, "\\\\server", NetNameKind::kServerCall, IdWithLastByte(2));
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\server", IdWithLastByte(3)).status()));
  EXPECT_TRUE(Finds(*table, "\\\\server", b, "", IdWithLastByte(2)));
}

TEST(NetNameTableTest, LookupReturnsTheLongestMatchAndTheRemainingName) {
  auto table = MakeTable();
  NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  NetNameRef server = root.server_call();

  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\dir\\file.txt", root, "\\dir\\file.txt"));
  EXPECT_TRUE(Finds(*table, "\\\\server\\share", root, ""));
  EXPECT_TRUE(Finds(*table, "\\\\server\\share:alt", root, ":alt"));
  // Only the server call matches another share: it is the longest match.
  EXPECT_TRUE(Finds(*table, "\\\\server\\other\\x", server, "\\other\\x"));
  // A prefix must end at a boundary: "\\server\shareX" is not under "\\server\share".
  EXPECT_TRUE(Finds(*table, "\\\\server\\shareX", server, "\\shareX"));
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\serverX\\share", {}).status()));
}

TEST(NetNameTableTest, ANetRootMatchEndsTheSearchAsInRdbss) {
  auto table = MakeTable();
  NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  NetNameRef deeper = MustCreate(*table, "\\\\server\\share\\dir", NetNameKind::kVNetRoot);
  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\dir\\file", root, "\\dir\\file"));
  // Without the net root, the virtual net root is the first (and longest) match.
  ASSERT_TRUE(table->Remove(root));
  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\dir\\file", deeper, "\\file"));
}

TEST(NetNameTableTest, AKeyThatExistsAsAnotherKindIsAFailedPrecondition) {
  auto table = MakeTable();
  NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  absl::StatusOr<NetNameRef> vroot =
      table->FindOrCreateWithId("\\\\server\\share", NetNameKind::kVNetRoot, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(vroot.status())) << vroot.status();
  EXPECT_EQ(root.use_count(), 1U);  // the failed call kept no reference
}

TEST(NetNameTableTest, TheLastReferenceTakesTheEntryOutOfTheTable) {
  auto table = MakeTable();
  {
    NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
    NetNameRef copy = root;
    EXPECT_EQ(root.use_count(), 2U);
    EXPECT_EQ(table->size(), 2U);
  }
  EXPECT_EQ(table->size(), 0U);
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\server\\share\\x", {}).status()));
}

TEST(NetNameTableTest, RemoveHidesTheEntryButReferencesStayValid) {
  auto table = MakeTable();
  NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  EXPECT_TRUE(root.in_table());
  EXPECT_TRUE(table->Remove(root));
  EXPECT_FALSE(table->Remove(root));
  EXPECT_FALSE(root.in_table());
  EXPECT_EQ(root.name(), "\\\\server\\share");
  ASSERT_NE(root.atlas(), nullptr);
  EXPECT_TRUE(Finds(*table, "\\\\server\\share\\x", root.server_call(), "\\share\\x"));
  NetNameRef again = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
  EXPECT_FALSE(again == root);
  EXPECT_TRUE(again.server_call() == root.server_call());  // same connection
}

TEST(NetNameTableTest, ServerCallTeardownHandsEachOutstandingContextToTheCallbackOnce) {
  std::vector<void*> handed;
  std::string server_seen;
  auto table = MakeTable({.outstanding_context = [&](std::string_view server, const ConnectionId&,
                                                     void* context) {
    server_seen = std::string(server);
    handed.push_back(context);
  }});
  std::vector<int> requests(20);
  {
    NetNameRef root = MustCreate(*table, "\\\\server\\share", NetNameKind::kNetRoot);
    for (int& request : requests) ASSERT_TRUE(root.atlas()->Associate(&request).ok());
    absl::StatusOr<Mid> done = root.atlas()->Associate(&requests[0]);
    ASSERT_TRUE(done.ok());
    ASSERT_TRUE(root.atlas()->MapAndDissociate(*done).ok());  // no longer outstanding
    EXPECT_TRUE(handed.empty());
  }
  EXPECT_EQ(server_seen, "\\\\server");
  std::set<void*> distinct(handed.begin(), handed.end());
  EXPECT_EQ(handed.size(), requests.size());
  EXPECT_EQ(distinct.size(), requests.size());
  for (int& request : requests) EXPECT_EQ(distinct.count(&request), 1U);
}

TEST(NetNameTableTest, AtlasOptionsComeFromTheTableOrFromTheServer) {
  auto table = MakeTable({.atlas = {.max_mids = 3, .initial_mids = 1}});
  NetNameRef small = MustCreate(*table, "\\\\small", NetNameKind::kServerCall);
  EXPECT_EQ(small.atlas()->max_mids(), 3U);
  absl::StatusOr<NetNameRef> big = table->FindOrCreateWithId(
      "\\\\big\\share", NetNameKind::kNetRoot, {},
      AtlasOptions{.max_mids = 1000, .initial_mids = 100});
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->atlas()->max_mids(), 1000U);
  EXPECT_EQ(big->atlas(), big->server_call().atlas());
  absl::StatusOr<NetNameRef> bad = table->FindOrCreateWithId(
      "\\\\bad\\share", NetNameKind::kNetRoot, {}, AtlasOptions{.max_mids = 0});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_TRUE(absl::IsNotFound(table->Lookup("\\\\bad", {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      NetNameTable::Create({.atlas = {.max_mids = 10, .initial_mids = 11}}).status()));
}

TEST(NetNameTableTest, TheTableGrowsAndStillFindsEveryEntry) {
  auto table = MakeTable({.initial_buckets = 2});
  std::vector<NetNameRef> roots;
  for (int i = 0; i < 2000; ++i) {
    const std::string name =
        "\\\\server" + std::to_string(i % 7) + "\\share" + std::to_string(i);
    roots.push_back(MustCreate(*table, name, NetNameKind::kNetRoot,
                               IdWithLastByte(static_cast<std::uint8_t>(i % 3))));
    if (i % 3 == 0) roots.pop_back();  // the last reference goes at once
  }
  EXPECT_GT(table->bucket_count(), 1000U);
  for (const NetNameRef& root : roots) {
    const std::string path = std::string(root.name()) + "\\file";
    EXPECT_TRUE(Finds(*table, path, root, "\\file", root.connection_id()));
  }
  roots.clear();
  EXPECT_EQ(table->size(), 0U);
}

TEST(NetNameTableTest, RacingCreatorsOfOneKeyAllGetTheSameEntry) {
  auto table = MakeTable();
  constexpr int kThreads = 8;
  std::vector<NetNameRef> got(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      absl::StatusOr<NetNameRef> ref =
          table->FindOrCreateWithId("\\\\server\\share", NetNameKind::kNetRoot, {});
      if (ref.ok()) got[static_cast<std::size_t>(t)] = *std::move(ref);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const NetNameRef& ref : got) {
    ASSERT_TRUE(ref);
    EXPECT_TRUE(ref == got[0]);
  }
  EXPECT_EQ(got[0].use_count(), static_cast<std::uint32_t>(kThreads));
  EXPECT_EQ(table->size(), 2U);
}

TEST(NetNameKeyTest, FoldWordFoldsExactlyTheAsciiCapitalsInEveryByte) {
  for (int value = 0; value < 256; ++value) {
    const auto byte = static_cast<std::uint8_t>(value);
    for (int position = 0; position < 8; ++position) {
      // The byte among neighbours that are capitals, non-ASCII and punctuation.
      std::uint64_t word = 0x5a41c1dbe0402f5bULL;
      word &= ~(std::uint64_t{0xff} << (8 * position));
      word |= std::uint64_t{byte} << (8 * position);
      const std::uint64_t folded = internal::FoldWord(word);
      for (int i = 0; i < 8; ++i) {
        const auto in = static_cast<char>((word >> (8 * i)) & 0xff);
        const auto out = static_cast<char>((folded >> (8 * i)) & 0xff);
        ASSERT_EQ(out, internal::FoldAscii(in)) << "byte " << value << " at " << position;
      }
    }
  }
}

TEST(NetNameTableTest, NamesOfEveryLengthAreFoundInAnyCase) {
  auto table = MakeTable();
  std::vector<NetNameRef> roots;
  for (std::size_t server = 1; server <= 20; ++server) {
    for (std::size_t share = 1; share <= 18; share += 1) {
      const std::string name = "\\\\" + std::string(server, 's') + "\\" + std::string(share, 'x');
      roots.push_back(MustCreate(*table, name, NetNameKind::kNetRoot));
    }
  }
  for (const NetNameRef& root : roots) {
    std::string upper(root.name());
    for (char& c : upper) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    EXPECT_TRUE(Finds(*table, upper + "\\file", root, "\\file"));
  }
}

}  // namespace
}  // namespace midatlas
