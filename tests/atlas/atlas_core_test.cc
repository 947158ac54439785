// Internal behaviour of the atlas core: the leaf-hint bitmap, allocation order, the shrink
// policy and the memory it promises. The public rules are tested in mid_atlas_test.cc and
// midatlax_test.cc.
#include "atlas/atlas_core.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "reclamation/hazard_domain.h"
#include "atlas/leaf_hints.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::internal {
namespace {

void* ContextFor(std::uint32_t n) {
  // Any non-null value is a valid context; odd values prove nothing is dereferenced.
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(n) * 2 + 1);
}

std::optional<MidAtlas> MakeAtlas(std::uint32_t max_mids, std::uint32_t initial_mids) {
  auto atlas = MidAtlas::Create({.max_mids = max_mids, .initial_mids = initial_mids});
  EXPECT_TRUE(atlas.ok()) << atlas.status();
  if (!atlas.ok()) return std::nullopt;
  return *std::move(atlas);
}

std::vector<Mid> TakeMany(MidAtlas& atlas, std::uint32_t count) {
  std::vector<Mid> mids;
  mids.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(ContextFor(i));
    EXPECT_TRUE(mid.ok()) << "associate #" << i << ": " << mid.status();
    if (!mid.ok()) break;
    mids.push_back(*mid);
  }
  return mids;
}

void FreeAll(MidAtlas& atlas, const std::vector<Mid>& mids) {
  for (Mid mid : mids) EXPECT_TRUE(atlas.MapAndDissociate(mid).ok()) << "MID " << mid;
}

TEST(LeafHints, StartWithEverySubordinateLeafHintedAndLeafZeroNot) {
  LeafHints hints;
  ASSERT_TRUE(hints.Init(130));
  EXPECT_FALSE(hints.Test(0));
  for (std::uint32_t leaf = 1; leaf < 130; ++leaf) EXPECT_TRUE(hints.Test(leaf)) << leaf;
  EXPECT_EQ(hints.FindFirst(), 1U);
  EXPECT_EQ(hints.FindFirst(64), 64U);
  EXPECT_EQ(hints.FindFirst(129), 129U);
  EXPECT_EQ(hints.FindFirst(130), LeafHints::kNoLeaf);
}

TEST(LeafHints, ClearedLeavesAreSkippedAndSetAgainOnce) {
  LeafHints hints;
  ASSERT_TRUE(hints.Init(70));
  for (std::uint32_t leaf = 1; leaf < 70; ++leaf) hints.Clear(leaf);
  EXPECT_EQ(hints.FindFirst(), LeafHints::kNoLeaf);
  hints.SetIfClear(66);
  hints.SetIfClear(66);
  EXPECT_EQ(hints.FindFirst(), 66U);
  EXPECT_EQ(hints.FindFirst(67), LeafHints::kNoLeaf);
  hints.Clear(66);
  EXPECT_EQ(hints.FindFirst(), LeafHints::kNoLeaf);
}

TEST(LeafHints, SingleLeafAtlasHasNoHints) {
  LeafHints hints;
  ASSERT_TRUE(hints.Init(1));
  EXPECT_EQ(hints.FindFirst(), LeafHints::kNoLeaf);
}

TEST(AtlasCore, HandsOutTheLowestMidsFirstAndReusesFreedOnes) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = TakeMany(*atlas, 200);
  for (std::uint32_t i = 0; i < mids.size(); ++i) EXPECT_EQ(mids[i], i);
  ASSERT_TRUE(atlas->MapAndDissociate(130).ok());
  absl::StatusOr<Mid> again = atlas->Associate(ContextFor(7));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 130);
}

TEST(AtlasCore, CreatingTheLargestAtlasFromFiftyAllocatesUnderFourKilobytes) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats stats = atlas->stats();
  EXPECT_LT(stats.bytes_attached, 4096U);
  EXPECT_EQ(stats.leaf_maps, 1U);
  EXPECT_EQ(stats.directory_maps, 1U);
}

TEST(AtlasCore, MemoryPerSlotStaysUnderSixteenBytesAtSixtyThousandInUse) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::vector<Mid> mids = TakeMany(*atlas, 60000);
  const AtlasStats full = atlas->stats();
  EXPECT_EQ(full.mids_in_use, 60000U);
  const std::size_t slots = std::size_t{full.leaf_maps} * 64;
  EXPECT_LE(full.bytes_attached - fresh, slots * 16) << full.bytes_attached << " bytes";
  FreeAll(*atlas, mids);
}

TEST(AtlasCore, DrainingSixtyThousandReturnsWithinTwiceTheFreshSize) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats fresh = atlas->stats();
  const std::vector<Mid> mids = TakeMany(*atlas, 60000);
  EXPECT_GT(atlas->stats().leaf_maps, 900U);
  FreeAll(*atlas, mids);
  const AtlasStats drained = atlas->stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1) << "more than one spare leaf kept";
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
  EXPECT_LE(drained.bytes_attached, 2 * fresh.bytes_attached);
}

TEST(AtlasCore, DrainingInReverseOrderAlsoKeepsOnlyOneSpare) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats fresh = atlas->stats();
  std::vector<Mid> mids = TakeMany(*atlas, 5000);
  std::vector<Mid> reversed(mids.rbegin(), mids.rend());
  FreeAll(*atlas, reversed);
  const AtlasStats drained = atlas->stats();
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1);
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
}

TEST(AtlasCore, SpareLeafIsReusedWithoutGrowing) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  std::vector<Mid> first = TakeMany(*atlas, 100);  // leaf 0 and leaf 1
  ASSERT_EQ(atlas->stats().leaf_maps, 2U);
  // Free leaf 1 completely: it becomes the spare and stays attached.
  std::vector<Mid> high(first.begin() + 64, first.end());
  FreeAll(*atlas, high);
  EXPECT_EQ(atlas->stats().leaf_maps, 2U);
  std::vector<Mid> again = TakeMany(*atlas, 36);
  std::set<Mid> distinct(again.begin(), again.end());
  EXPECT_EQ(distinct.size(), 36U);
  for (Mid mid : again) EXPECT_GE(mid, 64);
  EXPECT_EQ(atlas->stats().leaf_maps, 2U);
}

TEST(AtlasCore, DetachedMapsAreReclaimedOnceNoHazardHoldsThem) {
  auto atlas = MakeAtlas(65535, 16);
  ASSERT_TRUE(atlas.has_value());
  HazardDomain& domain = HazardDomain::Default();
  const std::vector<Mid> mids = TakeMany(*atlas, 4000);
  FreeAll(*atlas, mids);
  domain.Reclaim();
  // Nothing protects the detached maps any more, so a scan frees every one of them.
  EXPECT_EQ(domain.retired_count(), 0U);
}

TEST(AtlasCore, MapOfEveryMidInAGrownAtlasFindsItsContext) {
  auto atlas = MakeAtlas(65535, 1);
  ASSERT_TRUE(atlas.has_value());
  const std::vector<Mid> mids = TakeMany(*atlas, 65535);
  ASSERT_EQ(mids.size(), 65535U);
  for (std::uint32_t i = 0; i < mids.size(); ++i) {
    ASSERT_EQ(atlas->Map(mids[i]), ContextFor(i)) << "MID " << mids[i];
  }
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(ContextFor(0)).status()));
  FreeAll(*atlas, mids);
  EXPECT_EQ(atlas->mids_in_use(), 0U);
}

}  // namespace
}  // namespace midatlas::internal
