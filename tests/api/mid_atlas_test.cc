// Tests for the C++ API (include/midatlas/mid_atlas.h): every documented rule, bad input
// included. The same rules are tested through the RDBSS C API in midatlax_test.cc.
#include "midatlas/mid_atlas.h"

#include <gtest/gtest.h>

#include "support/failing_allocation.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Allocation failure injection: failing_allocation.cc replaces the nothrow operator new.
using midatlas::testing_support::FailNothrowAllocations;

namespace midatlas {
namespace {

// ------------------------------------------------------------------------------------------
// Helpers.

// An opaque context that is never dereferenced: any non-null value is valid, aligned or not.
void* FakeContext(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

std::uint32_t CeilDiv(std::uint32_t a, std::uint32_t b) { return (a + b - 1) / b; }

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
// Create.

TEST(MidAtlasCreate, RejectsZeroMaximum) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 0, .initial_mids = 0});
  EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MidAtlasCreate, RejectsZeroInitialMids) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 50, .initial_mids = 0});
  EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MidAtlasCreate, RejectsInitialMidsAboveMaximum) {
  for (const auto& [max_mids, initial_mids] :
       std::vector<std::pair<std::uint32_t, std::uint32_t>>{{1, 2}, {50, 51}, {65534, 65535}}) {
    absl::StatusOr<MidAtlas> atlas =
        MidAtlas::Create({.max_mids = max_mids, .initial_mids = initial_mids});
    EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument)
        << "max " << max_mids << " start " << initial_mids;
  }
}

TEST(MidAtlasCreate, RejectsMaximumAbove65535) {
  for (std::uint32_t max_mids : {kMaxMidsLimit + 1, std::uint32_t{1} << 16, std::uint32_t{1} << 20,
                                 std::numeric_limits<std::uint32_t>::max()}) {
    absl::StatusOr<MidAtlas> atlas =
        MidAtlas::Create({.max_mids = max_mids, .initial_mids = 50});
    EXPECT_EQ(atlas.status().code(), absl::StatusCode::kInvalidArgument) << max_mids;
  }
}

TEST(MidAtlasCreate, AcceptsTheBoundaryValues) {
  for (const auto& [max_mids, initial_mids] :
       std::vector<std::pair<std::uint32_t, std::uint32_t>>{
           {1, 1}, {65535, 1}, {65535, 65535}, {50, 50}}) {
    std::optional<MidAtlas> atlas = MakeAtlas(max_mids, initial_mids);
    ASSERT_TRUE(atlas.has_value());
    EXPECT_EQ(atlas->max_mids(), max_mids);
    EXPECT_EQ(atlas->initial_mids(), initial_mids);
    EXPECT_EQ(atlas->mids_in_use(), 0U);
  }
}

TEST(MidAtlasCreate, DefaultOptionsAreTheRdbssDefaults) {
  absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(AtlasOptions{});
  ASSERT_TRUE(atlas.ok()) << atlas.status();
  EXPECT_EQ(atlas->max_mids(), 65535U);
  EXPECT_EQ(atlas->initial_mids(), 50U);
}

TEST(MidAtlasCreate, MemoryIsProportionalToInitialMidsNotMaximum) {
  std::optional<MidAtlas> small = MakeAtlas(65535, 50);
  ASSERT_TRUE(small.has_value());
  const AtlasStats stats = small->stats();
  EXPECT_LT(stats.bytes_attached, 4096U);
  EXPECT_EQ(stats.leaf_maps, 1U);
  EXPECT_EQ(stats.directory_maps, 1U);
  EXPECT_EQ(stats.mids_in_use, 0U);

  // A first map of 65535 slots holds at least a pointer per slot.
  std::optional<MidAtlas> large = MakeAtlas(65535, 65535);
  ASSERT_TRUE(large.has_value());
  EXPECT_GE(large->stats().bytes_attached, std::size_t{65535} * sizeof(void*));
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
// Associate.

TEST(MidAtlasAssociate, RejectsNullContext) {
  std::optional<MidAtlas> atlas = MakeAtlas(50, 50);
  ASSERT_TRUE(atlas.has_value());
  absl::StatusOr<Mid> mid = atlas->Associate(nullptr);
  EXPECT_EQ(mid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsAllMidsInUse(mid.status()));
  EXPECT_EQ(atlas->mids_in_use(), 0U);
}

TEST(MidAtlasAssociate, HandsOutDistinctMidsThatMapBack) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 1000);
  ASSERT_EQ(mids.size(), 1000U);
  std::vector<bool> seen(65536, false);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    EXPECT_FALSE(seen[mids[i]]) << "MID " << mids[i] << " handed out twice";
    seen[mids[i]] = true;
    EXPECT_EQ(atlas->Map(mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(atlas->mids_in_use(), 1000U);
}

TEST(MidAtlasAssociate, AcceptsUnalignedAndExtremeContexts) {
  std::map<void*, int> destroyed;
  const std::vector<void*> contexts = {
      FakeContext(1), FakeContext(2), FakeContext(3), FakeContext(0x12345),
      FakeContext(std::numeric_limits<std::uintptr_t>::max()),
      FakeContext(std::numeric_limits<std::uintptr_t>::max() - 6),
      FakeContext(std::uintptr_t{1} << (sizeof(std::uintptr_t) * 8 - 1))};
  {
    std::optional<MidAtlas> atlas =
        MakeAtlas(65535, 1, [&destroyed](void* context) { ++destroyed[context]; });
    ASSERT_TRUE(atlas.has_value());
    std::vector<Mid> mids;
    for (void* context : contexts) {
      absl::StatusOr<Mid> mid = atlas->Associate(context);
      ASSERT_TRUE(mid.ok()) << mid.status();
      mids.push_back(*mid);
    }
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      EXPECT_EQ(atlas->Map(mids[i]), contexts[i]);
    }
    // Round-trip each through MapAndDissociate and Reassociate as well.
    absl::StatusOr<void*> first = atlas->MapAndDissociate(mids[0]);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(*first, contexts[0]);
    EXPECT_TRUE(atlas->Reassociate(mids[1], contexts[0]).ok());
    EXPECT_EQ(atlas->Map(mids[1]), contexts[0]);
    EXPECT_TRUE(atlas->Reassociate(mids[1], contexts[1]).ok());
  }
  // Everything but contexts[0] was still associated at destruction.
  for (std::size_t i = 1; i < contexts.size(); ++i) EXPECT_EQ(destroyed[contexts[i]], 1) << i;
  EXPECT_EQ(destroyed.count(contexts[0]), 0U);
}

TEST(MidAtlasAssociate, SameContextMayHoldSeveralMids) {
  std::optional<MidAtlas> atlas = MakeAtlas(50, 50);
  ASSERT_TRUE(atlas.has_value());
  int request = 0;
  absl::StatusOr<Mid> a = atlas->Associate(&request);
  absl::StatusOr<Mid> b = atlas->Associate(&request);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(atlas->Map(*a), &request);
  EXPECT_EQ(atlas->Map(*b), &request);
  EXPECT_EQ(atlas->mids_in_use(), 2U);
}

// (max_mids, initial_mids): taking exactly max succeeds, the next fails with kUnavailable,
// freeing one lets exactly one more in, and that one gets the freed MID.
std::string PairName(
    const testing::TestParamInfo<std::pair<std::uint32_t, std::uint32_t>>& param_info) {
  return "Max" + std::to_string(param_info.param.first) + "Start" +
         std::to_string(param_info.param.second);
}

class MidAtlasAllInUse
    : public testing::TestWithParam<std::pair<std::uint32_t, std::uint32_t>> {};

TEST_P(MidAtlasAllInUse, FailsExactlyWhenMaxMidsAreInUse) {
  const auto [max_mids, initial_mids] = GetParam();
  std::optional<MidAtlas> atlas = MakeAtlas(max_mids, initial_mids);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, max_mids);
  ASSERT_EQ(mids.size(), max_mids);
  for (Mid mid : mids) ASSERT_LT(mid, max_mids);
  EXPECT_EQ(atlas->mids_in_use(), max_mids);

  absl::StatusOr<Mid> over = atlas->Associate(FakeContext(0xABC));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsAllMidsInUse(over.status()));
  EXPECT_FALSE(IsOutOfMemory(over.status()));
  EXPECT_EQ(atlas->mids_in_use(), max_mids);

  const Mid freed = mids[mids.size() / 2];
  absl::StatusOr<void*> context = atlas->MapAndDissociate(freed);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_EQ(atlas->mids_in_use(), max_mids - 1);

  absl::StatusOr<Mid> again = atlas->Associate(FakeContext(0xDEF));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, freed) << "the only free MID";
  EXPECT_EQ(atlas->Map(freed), FakeContext(0xDEF));
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(FakeContext(0x123)).status()));
}

TEST_P(MidAtlasAllInUse, ReportsArgumentErrorsBeforeAllInUse) {
  const auto [max_mids, initial_mids] = GetParam();
  std::optional<MidAtlas> atlas = MakeAtlas(max_mids, initial_mids);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, max_mids).size(), max_mids);
  EXPECT_EQ(atlas->Associate(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(atlas->mids_in_use(), max_mids);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MidAtlasAllInUse,
    testing::Values(std::pair<std::uint32_t, std::uint32_t>{1, 1}, std::pair{2u, 1u},
                    std::pair{2u, 2u}, std::pair{50u, 1u}, std::pair{50u, 50u},
                    std::pair{65535u, 1u}, std::pair{65535u, 50u}, std::pair{65535u, 65535u}),
    PairName);

TEST(MidAtlasStatus, PredicatesMatchTheDocumentedCodes) {
  EXPECT_TRUE(IsAllMidsInUse(absl::UnavailableError("full")));
  EXPECT_FALSE(IsAllMidsInUse(absl::ResourceExhaustedError("oom")));
  EXPECT_FALSE(IsAllMidsInUse(absl::InvalidArgumentError("bad")));
  EXPECT_FALSE(IsAllMidsInUse(absl::OkStatus()));
  EXPECT_TRUE(IsOutOfMemory(absl::ResourceExhaustedError("oom")));
  EXPECT_FALSE(IsOutOfMemory(absl::UnavailableError("full")));
  EXPECT_FALSE(IsOutOfMemory(absl::OkStatus()));
}

// ------------------------------------------------------------------------------------------
// Map.

TEST(MidAtlasMap, ReturnsNullForMidsNeverHandedOut) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  for (std::uint32_t mid = 0; mid <= 0xFFFF; ++mid) {
    ASSERT_EQ(atlas->Map(static_cast<Mid>(mid)), nullptr) << mid;
  }
  const std::vector<Mid> mids = AssociateN(*atlas, 3);
  ASSERT_EQ(mids.size(), 3U);
  std::vector<bool> held(65536, false);
  for (Mid mid : mids) held[mid] = true;
  for (std::uint32_t mid = 0; mid <= 0xFFFF; ++mid) {
    if (!held[mid]) {
      ASSERT_EQ(atlas->Map(static_cast<Mid>(mid)), nullptr) << mid;
    }
  }
}

TEST(MidAtlasMap, ReturnsNullForFreedMids) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  // 100 MIDs span leaf 0 and several subordinate leaves.
  const std::vector<Mid> mids = AssociateN(*atlas, 100);
  ASSERT_EQ(mids.size(), 100U);
  for (Mid mid : mids) ASSERT_TRUE(atlas->MapAndDissociate(mid).ok());
  for (Mid mid : mids) EXPECT_EQ(atlas->Map(mid), nullptr) << mid;
}

TEST(MidAtlasMap, ReturnsNullAtAndAboveMaximumEvenWhenFull) {
  for (std::uint32_t max_mids : {1U, 50U, 100U, 65534U}) {
    std::optional<MidAtlas> atlas = MakeAtlas(max_mids, std::min(max_mids, 16U));
    ASSERT_TRUE(atlas.has_value());
    ASSERT_EQ(AssociateN(*atlas, max_mids).size(), max_mids);
    for (std::uint32_t mid = max_mids; mid <= 0xFFFF; ++mid) {
      ASSERT_EQ(atlas->Map(static_cast<Mid>(mid)), nullptr) << "max " << max_mids << " mid " << mid;
    }
  }
}

TEST(MidAtlasMap, Mid65535IsNeverInUse) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 65535);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 65535).size(), 65535U);
  EXPECT_EQ(atlas->Map(65535), nullptr);
  EXPECT_EQ(atlas->MapAndDissociate(65535).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(atlas->Reassociate(65535, FakeContext(1)).code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------------------------------
// MapAndDissociate.

TEST(MidAtlasDissociate, ReturnsTheContextAndFreesTheMid) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 40);
  ASSERT_EQ(mids.size(), 40U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    absl::StatusOr<void*> context = atlas->MapAndDissociate(mids[i]);
    ASSERT_TRUE(context.ok()) << context.status();
    EXPECT_EQ(*context, FakeContext(i + 1));
    EXPECT_EQ(atlas->Map(mids[i]), nullptr);
    EXPECT_EQ(atlas->mids_in_use(), 40U - i - 1);
  }
}

TEST(MidAtlasDissociate, DissociateOfFreeMidChangesNothing) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 20);  // leaf 0 and leaf 1
  ASSERT_EQ(mids.size(), 20U);
  ASSERT_TRUE(atlas->MapAndDissociate(mids[3]).ok());
  ASSERT_TRUE(atlas->MapAndDissociate(mids[18]).ok());
  const AtlasStats before = atlas->stats();
  // Freed in leaf 0, freed in a subordinate leaf, never handed out in an attached leaf, in an
  // absent leaf, and out of range.
  for (Mid free_mid : {mids[3], mids[18], Mid{31}, Mid{5000}, Mid{65535}}) {
    absl::StatusOr<void*> context = atlas->MapAndDissociate(free_mid);
    EXPECT_EQ(context.status().code(), absl::StatusCode::kInvalidArgument) << free_mid;
  }
  const AtlasStats after = atlas->stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  EXPECT_EQ(atlas->mids_in_use(), 18U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i == 3 || i == 18) continue;
    EXPECT_EQ(atlas->Map(mids[i]), FakeContext(i + 1)) << i;
  }
}

TEST(MidAtlasDissociate, SecondDissociateOfTheSameMidFails) {
  std::optional<MidAtlas> atlas = MakeAtlas(50, 50);
  ASSERT_TRUE(atlas.has_value());
  absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(7));
  ASSERT_TRUE(mid.ok());
  ASSERT_TRUE(atlas->MapAndDissociate(*mid).ok());
  EXPECT_EQ(atlas->MapAndDissociate(*mid).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(atlas->mids_in_use(), 0U);
}

// The RDBSS original decremented its in-use count before checking that the MID was in use, so
// a late duplicate response let the atlas hand out more than MaximumNumberOfMids MIDs.
TEST(MidAtlasDissociate, RdbssCountCorruptionDissociatingAFreeMidKeepsTheCount) {
  std::optional<MidAtlas> atlas = MakeAtlas(4, 4);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 3);
  ASSERT_EQ(mids.size(), 3U);
  ASSERT_TRUE(atlas->MapAndDissociate(mids[0]).ok());
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(atlas->MapAndDissociate(mids[0]).ok());
    EXPECT_FALSE(atlas->MapAndDissociate(3).ok());
  }
  EXPECT_EQ(atlas->mids_in_use(), 2U);
  EXPECT_EQ(atlas->stats().mids_in_use, 2U);
  // Exactly two more fit, not twenty-two.
  EXPECT_TRUE(atlas->Associate(FakeContext(100)).ok());
  EXPECT_TRUE(atlas->Associate(FakeContext(101)).ok());
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(FakeContext(102)).status()));
  EXPECT_EQ(atlas->mids_in_use(), 4U);
}

// ------------------------------------------------------------------------------------------
// Reassociate.

TEST(MidAtlasReassociate, ReplacesTheContextOfAMidInUse) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 20);  // leaf 0 and leaf 1
  ASSERT_EQ(mids.size(), 20U);
  for (Mid mid : {mids[0], mids[19]}) {
    EXPECT_TRUE(atlas->Reassociate(mid, FakeContext(0x1001)).ok());
    EXPECT_EQ(atlas->Map(mid), FakeContext(0x1001));
    absl::StatusOr<void*> context = atlas->MapAndDissociate(mid);
    ASSERT_TRUE(context.ok());
    EXPECT_EQ(*context, FakeContext(0x1001));
  }
  EXPECT_EQ(atlas->mids_in_use(), 18U);
}

TEST(MidAtlasReassociate, RejectsAFreeMidAndChangesNothing) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 20);
  ASSERT_EQ(mids.size(), 20U);
  ASSERT_TRUE(atlas->MapAndDissociate(mids[2]).ok());
  ASSERT_TRUE(atlas->MapAndDissociate(mids[17]).ok());
  for (Mid free_mid : {mids[2], mids[17], Mid{25}, Mid{4000}, Mid{65535}}) {
    EXPECT_EQ(atlas->Reassociate(free_mid, FakeContext(0x77)).code(),
              absl::StatusCode::kInvalidArgument)
        << free_mid;
    EXPECT_EQ(atlas->Map(free_mid), nullptr) << free_mid;
  }
  EXPECT_EQ(atlas->mids_in_use(), 18U);
  // A freed MID rejected by Reassociate is still free: the next associations can take it.
  std::vector<Mid> again = AssociateN(*atlas, 2);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (std::vector<Mid>{mids[2], mids[17]}));
}

TEST(MidAtlasReassociate, RejectsANullContextAndChangesNothing) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = AssociateN(*atlas, 20);
  ASSERT_EQ(mids.size(), 20U);
  for (std::size_t i : {std::size_t{0}, std::size_t{19}}) {
    EXPECT_EQ(atlas->Reassociate(mids[i], nullptr).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(atlas->Map(mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(atlas->mids_in_use(), 20U);
}

// ------------------------------------------------------------------------------------------
// IterateAndRemove.

TEST(MidAtlasIterateAndRemove, HandsEachContextOutOnceAndFreesEveryMid) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  // 3000 MIDs: leaf 0, many subordinate leaves, three directories. Free some to leave holes.
  std::vector<Mid> mids = AssociateN(*atlas, 3000);
  ASSERT_EQ(mids.size(), 3000U);
  std::map<void*, int> expected;
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i % 7 == 3) {
      ASSERT_TRUE(atlas->MapAndDissociate(mids[i]).ok());
    } else {
      expected[FakeContext(i + 1)] = 1;
    }
  }
  std::map<void*, int> received;
  const std::size_t handed = atlas->IterateAndRemove([&](void* context) { ++received[context]; });
  EXPECT_EQ(handed, expected.size());
  EXPECT_EQ(received, expected);
  EXPECT_EQ(atlas->mids_in_use(), 0U);
  for (Mid mid : mids) ASSERT_EQ(atlas->Map(mid), nullptr) << mid;
  EXPECT_EQ(atlas->IterateAndRemove([](void*) { ADD_FAILURE() << "atlas is empty"; }), 0U);
  // Every MID can be taken again.
  EXPECT_EQ(AssociateN(*atlas, 65535).size(), 65535U);
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(FakeContext(1)).status()));
}

TEST(MidAtlasIterateAndRemove, CallbackMayCallAtlasOperations) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  struct Item {
    Mid mid = 0;
    bool marker = false;
  };
  std::vector<Item> originals(100);
  for (Item& item : originals) {
    absl::StatusOr<Mid> mid = atlas->Associate(&item);
    ASSERT_TRUE(mid.ok());
    item.mid = *mid;
  }
  std::vector<Item> markers(originals.size(), Item{.mid = 0, .marker = true});
  std::size_t markers_used = 0;
  std::map<const Item*, int> delivered;
  const std::size_t handed = atlas->IterateAndRemove([&](void* context) {
    auto* item = static_cast<Item*>(context);
    ++delivered[item];
    if (item->marker) return;
    EXPECT_EQ(atlas->Map(item->mid), nullptr) << "MID " << item->mid << " freed before fn runs";
    EXPECT_FALSE(atlas->MapAndDissociate(item->mid).ok());
    EXPECT_FALSE(atlas->Reassociate(item->mid, item).ok());
    Item& marker = markers[markers_used++];
    absl::StatusOr<Mid> mid = atlas->Associate(&marker);
    ASSERT_TRUE(mid.ok()) << mid.status();
    marker.mid = *mid;
    EXPECT_EQ(atlas->Map(*mid), &marker);
  });
  ASSERT_EQ(markers_used, originals.size());
  for (const Item& item : originals) EXPECT_EQ(delivered[&item], 1) << item.mid;
  std::size_t markers_delivered = 0;
  std::uint32_t markers_held = 0;
  for (const Item& marker : markers) {
    const int times = delivered[&marker];
    const bool held = atlas->Map(marker.mid) == &marker;
    EXPECT_EQ(times + (held ? 1 : 0), 1) << "marker at MID " << marker.mid;
    markers_delivered += static_cast<std::size_t>(times);
    markers_held += held ? 1U : 0U;
  }
  EXPECT_EQ(handed, originals.size() + markers_delivered);
  EXPECT_EQ(atlas->mids_in_use(), markers_held);
}

TEST(MidAtlasIterateAndRemove, DrainedAtlasShrinksBackToItsFirstMaps) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats fresh = atlas->stats();
  ASSERT_EQ(AssociateN(*atlas, 5000).size(), 5000U);
  EXPECT_GT(atlas->stats().leaf_maps, 300U);
  EXPECT_EQ(atlas->IterateAndRemove([](void*) {}), 5000U);
  const AtlasStats drained = atlas->stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1);
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
  EXPECT_LE(drained.bytes_attached, 2 * fresh.bytes_attached);
}

// ------------------------------------------------------------------------------------------
// Destruction.

TEST(MidAtlasDestroy, DestructorGetsEveryStillAssociatedContextOncePerAssociation) {
  std::map<void*, int> destroyed;
  std::map<void*, int> expected;
  int shared = 0;
  {
    std::optional<MidAtlas> atlas =
        MakeAtlas(65535, 16, [&destroyed](void* context) { ++destroyed[context]; });
    ASSERT_TRUE(atlas.has_value());
    const std::vector<Mid> mids = AssociateN(*atlas, 300);  // several leaves
    ASSERT_EQ(mids.size(), 300U);
    for (std::size_t i = 0; i < mids.size(); ++i) {
      if (i % 3 == 0) {
        ASSERT_TRUE(atlas->MapAndDissociate(mids[i]).ok());
      } else {
        expected[FakeContext(i + 1)] = 1;
      }
    }
    // One context held by three MIDs, one of them then reassociated away.
    std::vector<Mid> shared_mids;
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<Mid> mid = atlas->Associate(&shared);
      ASSERT_TRUE(mid.ok());
      shared_mids.push_back(*mid);
    }
    ASSERT_TRUE(atlas->Reassociate(shared_mids[0], FakeContext(0x5005)).ok());
    expected[&shared] = 3;
    expected[FakeContext(0x5005)] = 1;
  }
  EXPECT_EQ(destroyed, expected);
}

TEST(MidAtlasDestroy, EmptyDestructorIsAllowedWithContextsStillAssociated) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 2000).size(), 2000U);
  EXPECT_EQ(atlas->mids_in_use(), 2000U);
  atlas.reset();  // must neither crash nor leak (the sanitizer builds check both)
}

TEST(MidAtlasDestroy, DestructorIsNotCalledForContextsAlreadyRemoved) {
  int destructor_calls = 0;
  {
    std::optional<MidAtlas> atlas =
        MakeAtlas(65535, 50, [&destructor_calls](void*) { ++destructor_calls; });
    ASSERT_TRUE(atlas.has_value());
    const std::vector<Mid> mids = AssociateN(*atlas, 200);
    ASSERT_EQ(mids.size(), 200U);
    ASSERT_TRUE(atlas->MapAndDissociate(mids[0]).ok());
    EXPECT_EQ(atlas->IterateAndRemove([](void*) {}), 199U);
    ASSERT_TRUE(atlas->Associate(FakeContext(9)).ok());
  }
  EXPECT_EQ(destructor_calls, 1);
}

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

// ------------------------------------------------------------------------------------------
// Growth and shrink at the level boundaries.

struct Shape {
  std::uint32_t max_mids;
  std::uint32_t initial_mids;
};

std::string ShapeName(const testing::TestParamInfo<Shape>& param_info) {
  return "Max" + std::to_string(param_info.param.max_mids) + "Start" +
         std::to_string(param_info.param.initial_mids);
}

enum class DrainOrder { kForward, kReverse, kInterleaved };

class MidAtlasShape : public testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    atlas_ = MakeAtlas(GetParam().max_mids, GetParam().initial_mids);
    ASSERT_TRUE(atlas_.has_value());
    const MidLayout layout = atlas_->layout();
    leaf_capacity_ = std::uint32_t{1} << layout.leaf_bits;
    dir_entries_ = std::uint32_t{1} << layout.dir_bits;
    fresh_ = atlas_->stats();
  }

  // Whether to look at stats() after `taken` associations: at the first leaf boundaries, at
  // every directory boundary and at the end (every boundary would be quadratic).
  bool AtCheckpoint(std::uint32_t taken) const {
    if (taken == GetParam().max_mids) return true;
    const std::uint32_t into_leaf = taken % leaf_capacity_;
    if (into_leaf != 0 && into_leaf != 1) return false;
    const std::uint32_t leaf = (taken - 1) / leaf_capacity_;
    return leaf < 3 || leaf % dir_entries_ <= 1 || leaf % dir_entries_ == dir_entries_ - 1;
  }

  // Takes every MID, checking that each is new and below max_mids and that maps grow only on
  // demand: after `taken` associations from a fresh atlas exactly ceil(taken / leaf capacity)
  // leaves are attached (a spare kept from an earlier drain may add one).
  std::vector<Mid> FillToMax(bool from_fresh) {
    const std::uint32_t max_mids = GetParam().max_mids;
    std::vector<Mid> mids;
    mids.reserve(max_mids);
    std::vector<bool> seen(65536, false);
    for (std::uint32_t i = 0; i < max_mids; ++i) {
      absl::StatusOr<Mid> mid = atlas_->Associate(FakeContext(std::uintptr_t{i} + 1));
      EXPECT_TRUE(mid.ok()) << "association " << i << ": " << mid.status();
      if (!mid.ok()) return mids;
      EXPECT_LT(*mid, max_mids);
      EXPECT_FALSE(seen[*mid]) << "MID " << *mid << " handed out twice";
      seen[*mid] = true;
      mids.push_back(*mid);
      const std::uint32_t taken = i + 1;
      if (!AtCheckpoint(taken)) continue;
      const AtlasStats stats = atlas_->stats();
      const std::uint32_t leaves = CeilDiv(taken, leaf_capacity_);
      EXPECT_EQ(stats.mids_in_use, taken);
      if (from_fresh) {
        EXPECT_EQ(stats.leaf_maps, leaves) << "after " << taken << " associations";
        EXPECT_EQ(stats.directory_maps, CeilDiv(leaves, dir_entries_))
            << "after " << taken << " associations";
      } else {
        EXPECT_GE(stats.leaf_maps, leaves) << "after " << taken << " associations";
        EXPECT_LE(stats.leaf_maps, leaves + 1) << "after " << taken << " associations";
      }
    }
    const std::uint32_t all_leaves = CeilDiv(max_mids, leaf_capacity_);
    const AtlasStats full = atlas_->stats();
    EXPECT_EQ(full.leaf_maps, all_leaves);
    EXPECT_EQ(full.directory_maps, CeilDiv(all_leaves, dir_entries_));
    EXPECT_EQ(atlas_->mids_in_use(), max_mids);
    EXPECT_TRUE(IsAllMidsInUse(atlas_->Associate(FakeContext(0xFFFFF)).status()));
    for (std::uint32_t i = 0; i < mids.size(); ++i) {
      EXPECT_EQ(atlas_->Map(mids[i]), FakeContext(std::uintptr_t{i} + 1)) << "MID " << mids[i];
    }
    return mids;
  }

  void Drain(const std::vector<Mid>& mids, DrainOrder order) {
    std::vector<std::size_t> indices(mids.size());
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
    if (order == DrainOrder::kReverse) std::reverse(indices.begin(), indices.end());
    if (order == DrainOrder::kInterleaved) {
      std::stable_partition(indices.begin(), indices.end(),
                            [](std::size_t i) { return i % 2 == 0; });
    }
    for (std::size_t i : indices) {
      absl::StatusOr<void*> context = atlas_->MapAndDissociate(mids[i]);
      ASSERT_TRUE(context.ok()) << "MID " << mids[i] << ": " << context.status();
      ASSERT_EQ(*context, FakeContext(i + 1));
    }
    const AtlasStats drained = atlas_->stats();
    EXPECT_EQ(drained.mids_in_use, 0U);
    EXPECT_EQ(atlas_->mids_in_use(), 0U);
    // The first maps, plus at most one spare leaf and the directory holding it.
    EXPECT_GE(drained.leaf_maps, fresh_.leaf_maps);
    EXPECT_LE(drained.leaf_maps, fresh_.leaf_maps + 1);
    EXPECT_GE(drained.directory_maps, fresh_.directory_maps);
    EXPECT_LE(drained.directory_maps, fresh_.directory_maps + 1);
    EXPECT_LE(drained.bytes_attached, 2 * fresh_.bytes_attached);
    for (Mid mid : mids) ASSERT_EQ(atlas_->Map(mid), nullptr) << mid;
  }

  std::optional<MidAtlas> atlas_;
  std::uint32_t leaf_capacity_ = 0;
  std::uint32_t dir_entries_ = 0;
  AtlasStats fresh_;
};

TEST_P(MidAtlasShape, FreshAtlasHasOnlyItsFirstMaps) {
  EXPECT_EQ(fresh_.leaf_maps, 1U);
  EXPECT_EQ(fresh_.directory_maps, 1U);
  EXPECT_EQ(fresh_.mids_in_use, 0U);
  EXPECT_GE(leaf_capacity_, GetParam().initial_mids);
}

TEST_P(MidAtlasShape, GrowsToMaxAndShrinksBackInEveryDrainOrder) {
  bool from_fresh = true;
  for (DrainOrder order : {DrainOrder::kForward, DrainOrder::kReverse, DrainOrder::kInterleaved}) {
    const std::vector<Mid> mids = FillToMax(from_fresh);
    ASSERT_EQ(mids.size(), GetParam().max_mids);
    Drain(mids, order);
    from_fresh = false;
  }
  // And all max_mids can be taken once more.
  EXPECT_EQ(FillToMax(false).size(), GetParam().max_mids);
}

INSTANTIATE_TEST_SUITE_P(LevelBoundaries, MidAtlasShape,
                         testing::Values(Shape{1, 1}, Shape{50, 1}, Shape{65535, 1},
                                         Shape{50, 50}, Shape{65535, 50}, Shape{65535, 64},
                                         Shape{65535, 65535}),
                         ShapeName);

// ------------------------------------------------------------------------------------------
// Out of memory.

TEST(MidAtlasOutOfMemory, CreateReportsResourceExhaustedAtEveryAllocation) {
  int failures = 0;
  for (long n = 0; n < 32; ++n) {
    absl::StatusOr<MidAtlas> atlas;
    bool fired = false;
    {
      FailNothrowAllocations fail(n, FailNothrowAllocations::Mode::kOnlyTheNext);
      atlas = MidAtlas::Create({.max_mids = 65535, .initial_mids = 50});
      fired = FailNothrowAllocations::failures() > 0;
    }
    if (!fired) {
      ASSERT_TRUE(atlas.ok()) << atlas.status();
      break;
    }
    EXPECT_EQ(atlas.status().code(), absl::StatusCode::kResourceExhausted) << "allocation " << n;
    EXPECT_TRUE(IsOutOfMemory(atlas.status()));
    ++failures;
  }
  // The atlas object, the root, the hints, the first directory and the first leaf.
  EXPECT_GE(failures, 3);
}

TEST(MidAtlasOutOfMemory, AssociateReportsResourceExhaustedWhenALeafCannotGrow) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 16).size(), 16U);  // leaf 0 is full
  const AtlasStats before = atlas->stats();
  {
    FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kEveryOneFromThen);
    absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(99));
    EXPECT_EQ(mid.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_TRUE(IsOutOfMemory(mid.status()));
    EXPECT_GT(FailNothrowAllocations::failures(), 0);
  }
  const AtlasStats after = atlas->stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(99));
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_EQ(atlas->Map(*mid), FakeContext(99));
}

// One leaf that cannot be grown does not fail the call while another leaf still can be.
TEST(MidAtlasOutOfMemory, AssociateLooksPastALeafItCannotGrow) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  ASSERT_EQ(AssociateN(*atlas, 16).size(), 16U);  // leaf 0 is full
  FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kOnlyTheNext);
  absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(99));
  EXPECT_EQ(FailNothrowAllocations::failures(), 1);
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_GE(*mid, 16);
  EXPECT_EQ(atlas->Map(*mid), FakeContext(99));
  EXPECT_EQ(atlas->mids_in_use(), 17U);
}

TEST(MidAtlasOutOfMemory, AssociateReportsResourceExhaustedWhenADirectoryCannotGrow) {
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const MidLayout layout = atlas->layout();
  const std::uint32_t first_directory_mids = std::uint32_t{1}
                                             << (layout.leaf_bits + layout.dir_bits);
  ASSERT_EQ(AssociateN(*atlas, first_directory_mids).size(), first_directory_mids);
  const AtlasStats before = atlas->stats();
  ASSERT_EQ(before.directory_maps, 1U);
  // Fail the directory, then (on a second try) the leaf inside the new directory, and every
  // allocation after either.
  for (long n : {0L, 1L}) {
    FailNothrowAllocations fail(n, FailNothrowAllocations::Mode::kEveryOneFromThen);
    absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(99));
    EXPECT_EQ(mid.status().code(), absl::StatusCode::kResourceExhausted) << n;
    EXPECT_GT(FailNothrowAllocations::failures(), 0) << n;
  }
  const AtlasStats after = atlas->stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(99));
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_GE(*mid, first_directory_mids);
  EXPECT_EQ(atlas->stats().directory_maps, 2U);
}

// ------------------------------------------------------------------------------------------
// Memory ordering: whatever a thread wrote into a context before associating it is visible to
// the thread that obtains the context. On x86 these mostly cannot fail; the TSan build checks
// the happens-before edges.

struct Payload {
  std::uint64_t words[8] = {};  // plain, non-atomic data
};

void Fill(Payload& payload, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < 8; ++i) payload.words[i] = seed * 8 + i;
}

bool Holds(const Payload& payload, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < 8; ++i) {
    if (payload.words[i] != seed * 8 + i) return false;
  }
  return true;
}

TEST(MidAtlasOrdering, WritesBeforeAssociateAreVisibleToTheThreadThatMapsTheMid) {
  constexpr int kRounds = 200;
  std::optional<MidAtlas> atlas = MakeAtlas(1, 1);  // only MID 0 exists
  ASSERT_TRUE(atlas.has_value());
  std::vector<Payload> payloads(kRounds);
  std::barrier<> round_sync(2);
  std::atomic<bool> writer_failed{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      void* context = nullptr;
      while ((context = atlas->Map(0)) == nullptr) {
        if (writer_failed.load(std::memory_order_relaxed)) break;
      }
      if (context != nullptr) {
        if (!Holds(*static_cast<Payload*>(context), static_cast<std::uint64_t>(round))) {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
        absl::StatusOr<void*> taken = atlas->MapAndDissociate(0);
        if (!taken.ok() || *taken != context) bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    round_sync.arrive_and_wait();
    Payload& payload = payloads[static_cast<std::size_t>(round)];
    Fill(payload, static_cast<std::uint64_t>(round));
    absl::StatusOr<Mid> mid = atlas->Associate(&payload);
    if (!mid.ok() || *mid != 0) {
      ADD_FAILURE() << "round " << round << ": " << mid.status();
      writer_failed.store(true, std::memory_order_relaxed);
    }
    round_sync.arrive_and_wait();
  }
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

TEST(MidAtlasOrdering, WritesBeforeReassociateAreVisibleToTheThreadThatDissociates) {
  constexpr int kRounds = 200;
  std::optional<MidAtlas> atlas = MakeAtlas(1, 1);
  ASSERT_TRUE(atlas.has_value());
  Payload placeholder;
  std::vector<Payload> payloads(kRounds);
  std::barrier<> round_sync(2);
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      Payload* const wanted = &payloads[static_cast<std::size_t>(round)];
      // Spin until the reassociation lands, then take the context with MapAndDissociate.
      while (atlas->Map(0) != wanted) {
      }
      absl::StatusOr<void*> taken = atlas->MapAndDissociate(0);
      if (!taken.ok() || *taken != wanted ||
          !Holds(*static_cast<Payload*>(*taken), static_cast<std::uint64_t>(round))) {
        bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<Mid> mid = atlas->Associate(&placeholder);
    ASSERT_TRUE(mid.ok() && *mid == 0) << mid.status();  // the reader is parked at the barrier
    round_sync.arrive_and_wait();
    Payload& payload = payloads[static_cast<std::size_t>(round)];
    Fill(payload, static_cast<std::uint64_t>(round));
    EXPECT_TRUE(atlas->Reassociate(0, &payload).ok());
    round_sync.arrive_and_wait();
  }
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

TEST(MidAtlasOrdering, PreviousOwnersWritesAreVisibleToTheNextOwnerOfTheMid) {
  // A per-MID buffer outside the atlas: the old owner writes it and frees the MID, the new
  // owner takes the MID and reads the buffer. Free is release, allocate is acquire.
  constexpr int kRounds = 200;
  std::optional<MidAtlas> atlas = MakeAtlas(1, 1);
  ASSERT_TRUE(atlas.has_value());
  Payload per_mid_buffer;
  int owner_a = 0;
  int owner_b = 0;
  std::barrier<> round_sync(2);
  std::atomic<int> bad_reads{0};
  std::thread next_owner([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      absl::StatusOr<Mid> mid = atlas->Associate(&owner_b);
      while (!mid.ok() && IsAllMidsInUse(mid.status())) mid = atlas->Associate(&owner_b);
      if (!mid.ok() || *mid != 0 || !Holds(per_mid_buffer, static_cast<std::uint64_t>(round))) {
        bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      if (mid.ok()) Fill(per_mid_buffer, 0);  // the new owner uses the buffer too
      if (mid.ok() && !atlas->MapAndDissociate(*mid).ok()) {
        bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<Mid> mid = atlas->Associate(&owner_a);
    ASSERT_TRUE(mid.ok()) << mid.status();
    round_sync.arrive_and_wait();
    Fill(per_mid_buffer, static_cast<std::uint64_t>(round));
    EXPECT_TRUE(atlas->MapAndDissociate(*mid).ok());
    round_sync.arrive_and_wait();
  }
  next_owner.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

// ------------------------------------------------------------------------------------------
// Small concurrent checks (the stress tests go further).

TEST(MidAtlasConcurrency, RacingAssociatesOnABoundedAtlasSucceedExactlyMaxTimes) {
  constexpr int kThreads = 4;
  constexpr std::uint32_t kMax = 50;  // four 16-slot leaves, grown under the race
  std::optional<MidAtlas> atlas = MakeAtlas(kMax, 16);
  ASSERT_TRUE(atlas.has_value());
  std::latch start(kThreads);
  std::vector<std::vector<Mid>> taken(kThreads);
  std::vector<int> other_errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto index = static_cast<std::size_t>(t);
      start.arrive_and_wait();
      for (std::uint32_t i = 0; i < kMax; ++i) {
        absl::StatusOr<Mid> mid =
            atlas->Associate(FakeContext((std::uintptr_t{index} << 16) | (i + 1)));
        if (mid.ok()) {
          taken[index].push_back(*mid);
        } else if (!IsAllMidsInUse(mid.status())) {
          ++other_errors[index];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<bool> seen(kMax, false);
  std::size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    const auto index = static_cast<std::size_t>(t);
    EXPECT_EQ(other_errors[index], 0);
    for (std::size_t i = 0; i < taken[index].size(); ++i) {
      const Mid mid = taken[index][i];
      ASSERT_LT(mid, kMax);
      EXPECT_FALSE(seen[mid]) << "MID " << mid << " handed out twice";
      seen[mid] = true;
      ++total;
    }
  }
  EXPECT_EQ(total, kMax);
  EXPECT_EQ(atlas->mids_in_use(), kMax);
}

TEST(MidAtlasConcurrency, ThreadsChurningAcrossLeafBoundariesKeepTheirOwnContexts) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 150;
  constexpr std::uint32_t kBatch = 24;  // 4 x 24 MIDs cross several 16-slot leaves
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats fresh = atlas->stats();
  std::latch start(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::vector<Mid> mids;
      for (int round = 0; round < kRounds; ++round) {
        mids.clear();
        for (std::uint32_t i = 0; i < kBatch; ++i) {
          void* context = FakeContext((static_cast<std::uintptr_t>(t + 1) << 24) | (i + 1));
          absl::StatusOr<Mid> mid = atlas->Associate(context);
          if (!mid.ok()) {
            errors.fetch_add(1);
            continue;
          }
          if (atlas->Map(*mid) != context) errors.fetch_add(1);
          mids.push_back(*mid);
        }
        for (std::size_t i = 0; i < mids.size(); ++i) {
          void* context = FakeContext((static_cast<std::uintptr_t>(t + 1) << 24) | (i + 1));
          absl::StatusOr<void*> back = atlas->MapAndDissociate(mids[i]);
          if (!back.ok() || *back != context) errors.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  const AtlasStats drained = atlas->stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1);
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
}

TEST(MidAtlasConcurrency, OfTwoRacingDissociatesExactlyOneGetsTheContext) {
  constexpr int kRounds = 300;
  std::optional<MidAtlas> atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  // Fill leaf 0 so each round's MID lives in a subordinate leaf that drains as it is freed.
  ASSERT_EQ(AssociateN(*atlas, 16).size(), 16U);
  std::barrier<> round_sync(3);
  Mid round_mid = 0;
  std::atomic<int> winners{0};
  std::atomic<int> wrong{0};
  auto racer = [&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      absl::StatusOr<void*> context = atlas->MapAndDissociate(round_mid);
      if (context.ok()) {
        winners.fetch_add(1);
        if (*context != FakeContext(0x4000)) wrong.fetch_add(1);
      } else if (context.status().code() != absl::StatusCode::kInvalidArgument) {
        wrong.fetch_add(1);
      }
      round_sync.arrive_and_wait();
    }
  };
  std::thread a(racer);
  std::thread b(racer);
  int expected_winners = 0;
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<Mid> mid = atlas->Associate(FakeContext(0x4000));
    if (mid.ok()) {
      round_mid = *mid;
      ++expected_winners;
    } else {
      ADD_FAILURE() << mid.status();
    }
    round_sync.arrive_and_wait();
    round_sync.arrive_and_wait();
    EXPECT_EQ(winners.load(), expected_winners) << "round " << round;
  }
  a.join();
  b.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(atlas->mids_in_use(), 16U);
}

}  // namespace
}  // namespace midatlas
