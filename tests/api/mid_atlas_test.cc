// What only the C++ API (include/midatlas/mid_atlas.h) has: absl::Status codes and messages,
// the option checks behind them, the layout accessors, the IsAllMidsInUse / IsOutOfMemory
// predicates, the count IterateAndRemove returns, TypedMidAtlas, and moves of the MidAtlas
// handle. The rules both front ends share are tested once, for both, in atlas_api_test.cc.
#include "midatlas/mid_atlas.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "support/failing_allocation.h"

// Allocation failure injection: failing_allocation.cc replaces the nothrow operator new.
using midatlas::testing_support::FailNothrowAllocations;

namespace midatlas {
namespace {

// ------------------------------------------------------------------------------------------
// Helpers.

// An opaque context that is never dereferenced: any non-null value is valid, aligned or not.
void* FakeContext(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

std::optional<MidAtlas> MakeAtlas(std::uint32_t max_mids, std::uint32_t initial_mids,
                                  ContextDestructor destructor = {}) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = max_mids,
                        .initial_mids = initial_mids,
                        .context_destructor = std::move(destructor)});
  EXPECT_TRUE(atlas.ok()) << "Create(" << max_mids << ", " << initial_mids
                          << "): " << atlas.status();
  if (!atlas.ok()) return std::nullopt;
  return *std::move(atlas);
}

// Associates FakeContext(1..n) and returns the MIDs, in order.
std::vector<Mid> AssociateN(MidAtlas& atlas, std::uint32_t n) {
  std::vector<Mid> mids;
  mids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(FakeContext(std::uintptr_t{i} + 1));
    EXPECT_TRUE(mid.ok()) << "association " << i << ": " << mid.status();
    if (!mid.ok()) break;
    mids.push_back(*mid);
  }
  return mids;
}

// ------------------------------------------------------------------------------------------
// Create: the options and the statuses that reject them.

TEST(MidAtlasCreate, InvalidOptionsAreInvalidArgumentWithAMessageNamingTheOption) {
  struct Case {
    std::uint32_t max_mids;
    std::uint32_t initial_mids;
    const char* option;
  };
  for (const Case& c : std::vector<Case>{
           {0, 0, "max_mids"},
           {0, 1, "max_mids"},
           {kMaxMidsLimit + 1, 50, "max_mids"},
           {std::uint32_t{1} << 20, 50, "max_mids"},
           {std::numeric_limits<std::uint32_t>::max(), 50, "max_mids"},
           {50, 0, "initial_mids"},
           {1, 2, "initial_mids"},
           {50, 51, "initial_mids"},
           {65534, 65535, "initial_mids"},
       }) {
    absl::StatusOr<MidAtlas> atlas =
        MidAtlas::Create({.max_mids = c.max_mids, .initial_mids = c.initial_mids});
    EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument)
        << "max " << c.max_mids << " start " << c.initial_mids;
    EXPECT_TRUE(absl::StrContains(atlas.status().message(), c.option))
        << "max " << c.max_mids << " start " << c.initial_mids << ": " << atlas.status();
    EXPECT_FALSE(IsAllMidsInUse(atlas.status()));
    EXPECT_FALSE(IsOutOfMemory(atlas.status()));
  }
}

// The C API takes USHORTs, so only the C++ API can be asked for more than 65535 MIDs.
TEST(MidAtlasCreate, RejectsMaximumAbove65535) {
  for (std::uint32_t max_mids : {kMaxMidsLimit + 1, std::uint32_t{1} << 16, std::uint32_t{1} << 20,
                                 std::numeric_limits<std::uint32_t>::max()}) {
    absl::StatusOr<MidAtlas> atlas = MidAtlas::Create({.max_mids = max_mids, .initial_mids = 50});
    EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument) << max_mids;
  }
}

TEST(MidAtlasCreate, ReportsTheOptionsItWasCreatedWith) {
  for (const auto& [max_mids, initial_mids] :
       std::vector<std::pair<std::uint32_t, std::uint32_t>>{
           {1, 1}, {65535, 1}, {65535, 65535}, {50, 50}, {1000, 17}}) {
    std::optional<MidAtlas> atlas = MakeAtlas(max_mids, initial_mids);
    ASSERT_TRUE(atlas.has_value());
    EXPECT_EQ(atlas->max_mids(), max_mids);
    EXPECT_EQ(atlas->initial_mids(), initial_mids);
  }
}

TEST(MidAtlasCreate, DefaultOptionsAreTheRdbssDefaults) {
  absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(AtlasOptions{});
  ASSERT_TRUE(atlas.ok()) << atlas.status();
  EXPECT_EQ(atlas->max_mids(), 65535U);
  EXPECT_EQ(atlas->initial_mids(), 50U);
}

TEST(MidAtlasCreate, OutOfMemoryIsResourceExhausted) {
  absl::StatusOr<MidAtlas> atlas;
  {
    FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kOnlyTheNext);
    atlas = MidAtlas::Create({.max_mids = 65535, .initial_mids = 50});
    ASSERT_EQ(FailNothrowAllocations::failures(), 1);
  }
  EXPECT_EQ(atlas.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(IsOutOfMemory(atlas.status()));
  EXPECT_FALSE(IsAllMidsInUse(atlas.status()));
  EXPECT_TRUE(atlas.status().message().empty()) << "no message is built while out of memory";
}

// ------------------------------------------------------------------------------------------
// Layout.

TEST(MidAtlasLayout, MatchesTheRdbssSplitForTheDocumentedStarts) {
  struct Case {
    std::uint32_t initial_mids;
    MidLayout expected;
  };
  for (const Case& c : std::vector<Case>{
           {50, {.leaf_bits = 6, .dir_bits = 5, .root_bits = 5}},
           {64, {.leaf_bits = 6, .dir_bits = 5, .root_bits = 5}},
           {65, {.leaf_bits = 7, .dir_bits = 5, .root_bits = 4}},
           {1, {.leaf_bits = 4, .dir_bits = 6, .root_bits = 6}},
           {16, {.leaf_bits = 4, .dir_bits = 6, .root_bits = 6}},
           {17, {.leaf_bits = 5, .dir_bits = 6, .root_bits = 5}},
           {65535, {.leaf_bits = 16, .dir_bits = 0, .root_bits = 0}},
       }) {
    std::optional<MidAtlas> atlas = MakeAtlas(65535, c.initial_mids);
    ASSERT_TRUE(atlas.has_value());
    const MidLayout layout = atlas->layout();
    EXPECT_EQ(layout, c.expected) << "initial_mids " << c.initial_mids << ": got "
                                  << layout.leaf_bits << "/" << layout.dir_bits << "/"
                                  << layout.root_bits;
    EXPECT_EQ(LayoutForInitialMids(c.initial_mids), c.expected) << c.initial_mids;
  }
}

TEST(MidAtlasLayout, EveryStartGetsTheNarrowestLeafFieldThatHoldsIt) {
  for (std::uint32_t initial_mids = 1; initial_mids <= kMaxMidsLimit; ++initial_mids) {
    const MidLayout layout = LayoutForInitialMids(initial_mids);
    ASSERT_EQ(layout.leaf_bits + layout.dir_bits + layout.root_bits, 16) << initial_mids;
    ASSERT_GE(layout.leaf_bits, kMinLeafBits) << initial_mids;
    ASSERT_GE(std::uint32_t{1} << layout.leaf_bits, initial_mids) << initial_mids;
    if (layout.leaf_bits > kMinLeafBits) {
      ASSERT_LT(std::uint32_t{1} << (layout.leaf_bits - 1), initial_mids) << initial_mids;
    }
    // The directory field takes the larger half of what remains.
    ASSERT_EQ(layout.dir_bits - layout.root_bits, (16 - layout.leaf_bits) % 2) << initial_mids;
  }
}

// ------------------------------------------------------------------------------------------
// Statuses: one code per failure, a message that says what happened, and no allocation on
// the hot paths.

TEST(MidAtlasStatus, PredicatesMatchTheDocumentedCodes) {
  EXPECT_TRUE(IsAllMidsInUse(absl::UnavailableError("full")));
  EXPECT_FALSE(IsAllMidsInUse(absl::ResourceExhaustedError("oom")));
  EXPECT_FALSE(IsAllMidsInUse(absl::InvalidArgumentError("bad")));
  EXPECT_FALSE(IsAllMidsInUse(absl::OkStatus()));
  EXPECT_TRUE(IsOutOfMemory(absl::ResourceExhaustedError("oom")));
  EXPECT_FALSE(IsOutOfMemory(absl::UnavailableError("full")));
  EXPECT_FALSE(IsOutOfMemory(absl::InvalidArgumentError("bad")));
  EXPECT_FALSE(IsOutOfMemory(absl::OkStatus()));
}

// The hot-path errors carry their code alone (mid_atlas.h): the code says which failure it is.
TEST(MidAtlasStatus, EachHotPathFailureHasItsOwnCode) {
  std::optional<MidAtlas> atlas = MakeAtlas(16, 16);
  ASSERT_TRUE(atlas.has_value());

  const absl::Status null_context = atlas->Associate(nullptr).status();
  EXPECT_EQ(null_context.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsAllMidsInUse(null_context));
  EXPECT_FALSE(IsOutOfMemory(null_context));

  const absl::Status free_mid = atlas->MapAndDissociate(3).status();
  EXPECT_EQ(free_mid.code(), absl::StatusCode::kInvalidArgument);

  const absl::Status reassociate_free = atlas->Reassociate(3, FakeContext(1));
  EXPECT_EQ(reassociate_free.code(), absl::StatusCode::kInvalidArgument);

  ASSERT_EQ(AssociateN(*atlas, 16).size(), 16U);
  const absl::Status reassociate_null = atlas->Reassociate(3, nullptr);
  EXPECT_EQ(reassociate_null.code(), absl::StatusCode::kInvalidArgument);

  const absl::Status full = atlas->Associate(FakeContext(99)).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsAllMidsInUse(full));
  EXPECT_FALSE(IsOutOfMemory(full));
}

TEST(MidAtlasStatus, AssociateOutOfMemoryIsResourceExhausted) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 16).size(), 16U);  // leaf 0 is full
  FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kEveryOneFromThen);
  const absl::Status status = atlas->Associate(FakeContext(99)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(IsOutOfMemory(status));
  EXPECT_FALSE(IsAllMidsInUse(status));
}

// A full atlas or a late duplicate response must not allocate (a heap-allocated message would,
// inside a noexcept function): the statuses carry no message, and an absl::Status without a
// message is a single word with no heap part.
TEST(MidAtlasStatus, HotPathErrorsCarryNoMessageSoAFullAtlasOrALateResponseNeverAllocates) {
  std::optional<MidAtlas> atlas = MakeAtlas(1, 1);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 1).size(), 1U);
  const absl::Status full = atlas->Associate(FakeContext(2)).status();
  ASSERT_TRUE(IsAllMidsInUse(full));
  EXPECT_TRUE(full.message().empty()) << full;

  ASSERT_TRUE(atlas->MapAndDissociate(0).ok());
  const absl::Status late = atlas->MapAndDissociate(0).status();
  ASSERT_EQ(late.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(late.message().empty()) << late;
  const absl::Status null_context = atlas->Associate(nullptr).status();
  EXPECT_TRUE(null_context.message().empty()) << null_context;
}

// Bad options are not a hot path: Create says what was wrong.
TEST(MidAtlasStatus, CreateSaysWhichOptionIsWrong) {
  const absl::Status max = MidAtlas::Create({.max_mids = 0, .initial_mids = 0}).status();
  EXPECT_TRUE(absl::StrContains(max.message(), "max_mids")) << max;
  const absl::Status initial = MidAtlas::Create({.max_mids = 5, .initial_mids = 6}).status();
  EXPECT_TRUE(absl::StrContains(initial.message(), "initial_mids")) << initial;
}

// ------------------------------------------------------------------------------------------
// IterateAndRemove's count.

TEST(MidAtlasIterateAndRemove, ReturnsHowManyContextsItHandedOut) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 300);
  ASSERT_EQ(mids.size(), 300U);
  for (std::size_t i = 0; i < mids.size(); i += 3) ASSERT_TRUE(atlas->MapAndDissociate(mids[i]).ok());
  std::size_t calls = 0;
  EXPECT_EQ(atlas->IterateAndRemove([&calls](void*) { ++calls; }), 200U);
  EXPECT_EQ(calls, 200U);
  EXPECT_EQ(atlas->IterateAndRemove([](void*) { ADD_FAILURE() << "atlas is empty"; }), 0U);
}

// ------------------------------------------------------------------------------------------
// Moves of the handle: one owner at a time, and every context destroyed exactly once.

TEST(MidAtlasMove, MoveConstructionHandsTheContextsToTheNewHandleAndDestroysThemOnce) {
  std::map<void*, int> destroyed;
  std::vector<Mid> mids;
  {
    std::optional<MidAtlas> source =
        MakeAtlas(65535, 16, [&destroyed](void* context) { ++destroyed[context]; });
    ASSERT_TRUE(source.has_value());
    mids = AssociateN(*source, 40);  // leaf 0 and subordinate leaves
    ASSERT_EQ(mids.size(), 40U);
    MidAtlas moved(std::move(*source));
    source.reset();  // the moved-from handle owns nothing: destroys nothing
    EXPECT_TRUE(destroyed.empty());
    for (std::size_t i = 0; i < mids.size(); ++i) EXPECT_EQ(moved.Map(mids[i]), FakeContext(i + 1));
    EXPECT_EQ(moved.mids_in_use(), 40U);
    ASSERT_TRUE(moved.MapAndDissociate(mids[0]).ok());
  }
  std::map<void*, int> expected;
  for (std::size_t i = 1; i < mids.size(); ++i) expected[FakeContext(i + 1)] = 1;
  EXPECT_EQ(destroyed, expected);
}

TEST(MidAtlasMove, MoveAssignmentDestroysTheTargetsOwnContextsOnceAndTakesOverTheSources) {
  std::map<void*, int> destroyed_by_target;
  std::map<void*, int> destroyed_by_source;
  int target_context = 0;
  int source_context = 0;
  {
    std::optional<MidAtlas> target = MakeAtlas(
        50, 50, [&destroyed_by_target](void* context) { ++destroyed_by_target[context]; });
    std::optional<MidAtlas> source = MakeAtlas(
        50, 50, [&destroyed_by_source](void* context) { ++destroyed_by_source[context]; });
    ASSERT_TRUE(target.has_value() && source.has_value());
    ASSERT_TRUE(target->Associate(&target_context).ok());
    ASSERT_TRUE(target->Associate(&target_context).ok());
    absl::StatusOr<Mid> mid = source->Associate(&source_context);
    ASSERT_TRUE(mid.ok());

    *target = std::move(*source);
    // The target's old atlas is gone, with its contexts handed to its destructor once each.
    EXPECT_EQ(destroyed_by_target, (std::map<void*, int>{{&target_context, 2}}));
    EXPECT_TRUE(destroyed_by_source.empty());
    EXPECT_EQ(target->Map(*mid), &source_context);
    EXPECT_EQ(target->mids_in_use(), 1U);
    source.reset();  // moved from: destroys nothing
    EXPECT_TRUE(destroyed_by_source.empty());
  }
  EXPECT_EQ(destroyed_by_target, (std::map<void*, int>{{&target_context, 2}}));
  EXPECT_EQ(destroyed_by_source, (std::map<void*, int>{{&source_context, 1}}));
}

TEST(MidAtlasMove, SelfMoveAssignmentKeepsTheAtlas) {
  int destructor_calls = 0;
  {
    std::optional<MidAtlas> atlas =
        MakeAtlas(50, 50, [&destructor_calls](void*) { ++destructor_calls; });
    ASSERT_TRUE(atlas.has_value());
    absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(7));
    ASSERT_TRUE(mid.ok());
    MidAtlas& alias = *atlas;  // through a reference: the compiler cannot see the self-move
    *atlas = std::move(alias);
    EXPECT_EQ(destructor_calls, 0);
    EXPECT_EQ(atlas->Map(*mid), FakeContext(7));
  }
  EXPECT_EQ(destructor_calls, 1);
}

TEST(MidAtlasMove, AMovedFromHandleCanBeGivenANewAtlas) {
  int first_destroyed = 0;
  int second_destroyed = 0;
  {
    std::optional<MidAtlas> atlas =
        MakeAtlas(50, 50, [&first_destroyed](void*) { ++first_destroyed; });
    ASSERT_TRUE(atlas.has_value());
    ASSERT_TRUE(atlas->Associate(FakeContext(1)).ok());
    MidAtlas keeper(std::move(*atlas));
    std::optional<MidAtlas> fresh =
        MakeAtlas(50, 50, [&second_destroyed](void*) { ++second_destroyed; });
    ASSERT_TRUE(fresh.has_value());
    *atlas = std::move(*fresh);  // assigning to a moved-from handle destroys nothing
    EXPECT_EQ(first_destroyed, 0);
    absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(2));
    ASSERT_TRUE(mid.ok());
    EXPECT_EQ(atlas->Map(*mid), FakeContext(2));
  }
  EXPECT_EQ(first_destroyed, 1);
  EXPECT_EQ(second_destroyed, 1);
}

static_assert(!std::is_copy_constructible_v<MidAtlas> && !std::is_copy_assignable_v<MidAtlas>,
              "a MidAtlas has one owner");
static_assert(std::is_nothrow_move_constructible_v<MidAtlas> &&
              std::is_nothrow_move_assignable_v<MidAtlas>);

// ------------------------------------------------------------------------------------------
// TypedMidAtlas.

struct Request {
  int id = 0;
};

TEST(TypedMidAtlasTest, StoresAndReturnsTypedPointers) {
  std::vector<Request*> destroyed;
  std::vector<Request> requests(5);
  for (int i = 0; i < 5; ++i) requests[static_cast<std::size_t>(i)].id = i;
  {
    absl::StatusOr<TypedMidAtlas<Request>> atlas = TypedMidAtlas<Request>::Create(
        {.max_mids = 4,
         .initial_mids = 2,
         .context_destructor = [&destroyed](Request* r) { destroyed.push_back(r); }});
    ASSERT_TRUE(atlas.ok()) << atlas.status();
    static_assert(std::is_same_v<decltype(atlas->Map(Mid{0})), Request*>);
    static_assert(std::is_same_v<decltype(atlas->MapAndDissociate(Mid{0})),
                                 absl::StatusOr<Request*>>);
    EXPECT_EQ(atlas->max_mids(), 4U);

    std::vector<Mid> mids;
    for (std::size_t i = 0; i < 4; ++i) {
      absl::StatusOr<Mid> mid = atlas->Associate(&requests[i]);
      ASSERT_TRUE(mid.ok()) << mid.status();
      mids.push_back(*mid);
    }
    EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(&requests[4]).status()));
    EXPECT_EQ(atlas->Associate(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(atlas->mids_in_use(), 4U);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(atlas->Map(mids[i])->id, static_cast<int>(i));

    absl::StatusOr<Request*> done = atlas->MapAndDissociate(mids[0]);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(*done, &requests[0]);
    EXPECT_EQ(atlas->MapAndDissociate(mids[0]).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(atlas->Reassociate(mids[1], &requests[4]).ok());
    EXPECT_EQ(atlas->Map(mids[1]), &requests[4]);
    EXPECT_EQ(atlas->Reassociate(mids[0], &requests[0]).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(atlas->untyped().Map(mids[2]), static_cast<void*>(&requests[2]));

    // IterateAndRemove hands T* to the callback.
    std::vector<int> iterated;
    const std::size_t handed =
        atlas->IterateAndRemove([&iterated](Request* r) { iterated.push_back(r->id); });
    std::sort(iterated.begin(), iterated.end());
    EXPECT_EQ(handed, 3U);
    EXPECT_EQ(iterated, (std::vector<int>{2, 3, 4}));

    ASSERT_TRUE(atlas->Associate(&requests[3]).ok());
    ASSERT_TRUE(atlas->Associate(&requests[3]).ok());
  }
  EXPECT_EQ(destroyed, (std::vector<Request*>{&requests[3], &requests[3]}));
}

TEST(TypedMidAtlasTest, PropagatesInvalidOptions) {
  EXPECT_EQ(TypedMidAtlas<Request>::Create({.max_mids = 0, .initial_mids = 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TypedMidAtlas<Request>::Create({.max_mids = 10, .initial_mids = 11}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      TypedMidAtlas<Request>::Create({.max_mids = 65536, .initial_mids = 1}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(TypedMidAtlasTest, ConstElementTypeNeedsNoCasts) {
  const Request request{.id = 42};
  int destroyed = 0;
  {
    absl::StatusOr<TypedMidAtlas<const Request>> atlas = TypedMidAtlas<const Request>::Create(
        {.max_mids = 16,
         .initial_mids = 16,
         .context_destructor = [&](const Request* r) { destroyed += r->id; }});
    ASSERT_TRUE(atlas.ok()) << atlas.status();
    absl::StatusOr<Mid> mid = atlas->Associate(&request);
    ASSERT_TRUE(mid.ok());
    const Request* mapped = atlas->Map(*mid);
    EXPECT_EQ(mapped, &request);
  }
  EXPECT_EQ(destroyed, 42);
}

TEST(TypedMidAtlasTest, MovingATypedAtlasDestroysItsContextsOnce) {
  std::vector<Request> requests(3);
  int destroyed = 0;
  {
    absl::StatusOr<TypedMidAtlas<Request>> atlas = TypedMidAtlas<Request>::Create(
        {.max_mids = 16, .initial_mids = 16, .context_destructor = [&](Request*) { ++destroyed; }});
    ASSERT_TRUE(atlas.ok()) << atlas.status();
    for (Request& request : requests) ASSERT_TRUE(atlas->Associate(&request).ok());
    TypedMidAtlas<Request> moved(*std::move(atlas));
    EXPECT_EQ(moved.mids_in_use(), 3U);
    EXPECT_EQ(destroyed, 0);
  }
  EXPECT_EQ(destroyed, 3);
}

}  // namespace
}  // namespace midatlas
