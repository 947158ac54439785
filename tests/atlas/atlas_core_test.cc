// Internal behaviour of the atlas core: the leaf-hint bitmap, allocation order, the shrink
// policy and the memory it promises, interleavings rebuilt step by step through
// AtlasCoreTestPeer, and the debug checks of the core's invariants. The public rules are
// tested in tests/api/atlas_api_test.cc.
#include "atlas/atlas_core.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "atlas/free_stack.h"
#include "atlas/leaf_hints.h"
#include "atlas/map_nodes.h"
#include "capi/handles.h"
#include "instrumentation/invariants.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "reclamation/hazard_domain.h"

namespace midatlas::internal {

// AtlasCore's friend (atlas_core.h): reaches the private state a test needs to stand in for
// a thread stalled between two steps of an algorithm. Tests use it single-threaded, on an
// atlas no other thread touches, so its loads are relaxed.
class AtlasCoreTestPeer {
 public:
  static LeafHints& Hints(AtlasCore& core) noexcept { return core.hints_; }

  static std::uint32_t LeafIndexOf(const AtlasCore& core, Mid mid) noexcept {
    return std::uint32_t{mid} >> core.leaf_shift_;
  }

  // The head of an attached leaf's free stack (a default Head when the leaf is absent).
  static FreeStack::Head LeafHead(const AtlasCore& core, std::uint32_t leaf_index) noexcept {
    if (leaf_index == 0) return core.leaf0_->stack().Load();
    // relaxed: single-threaded, see above.
    const DirectoryMap* dir =
        core.root_[leaf_index >> core.dir_shift_].load(std::memory_order_relaxed);
    if (dir == nullptr) return FreeStack::Head{};
    const LeafMap* leaf = dir->LoadLeafQuiescent(leaf_index & core.entry_mask_);
    return leaf == nullptr ? FreeStack::Head{} : leaf->stack().Load();
  }
};

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

// LH2: the summary word must follow every word that empties and fills again, whichever bit
// of the word does it, so that a search finds a candidate in any word past full ones.
TEST(LeafHints, SearchFindsCandidatesPastFullWordsThroughTheSummary) {
  LeafHints hints;
  ASSERT_TRUE(hints.Init(4096));
  for (std::uint32_t leaf = 1; leaf < 4096; ++leaf) {
    if (leaf != 4000) hints.Clear(leaf);
  }
  EXPECT_EQ(hints.FindFirst(), 4000U);
  EXPECT_EQ(hints.FindFirst(4001), LeafHints::kNoLeaf);
  hints.SetIfClear(130);  // word 2, empty until now
  hints.SetIfClear(131);
  EXPECT_EQ(hints.FindFirst(), 130U);
  hints.Clear(130);  // the word keeps 131
  EXPECT_EQ(hints.FindFirst(), 131U);
  EXPECT_EQ(hints.FindFirst(132), 4000U);
  hints.Clear(131);  // the word empties: the search skips it
  hints.Clear(4000);
  EXPECT_EQ(hints.FindFirst(), LeafHints::kNoLeaf);
  hints.SetIfClear(4095);  // the last word fills again
  EXPECT_EQ(hints.FindFirst(), 4095U);
  EXPECT_EQ(hints.FindFirst(4095), 4095U);
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

// The maps take under 4 KiB; the contexts of the first leaf's MIDs take one page of the
// context region (backed once the first context is written).
TEST(AtlasCore, CreatingTheLargestAtlasFromFiftyAllocatesUnderFourKilobytesAndOneContextPage) {
  auto atlas = MakeAtlas(65535, 50);
  ASSERT_TRUE(atlas.has_value());
  const AtlasStats stats = atlas->stats();
  EXPECT_LT(stats.bytes_attached - stats.context_bytes, 4096U);
  EXPECT_EQ(stats.context_bytes, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
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


// ----------------------------------------------------------------------------------------
// Regression: "all in use" while a subordinate leaf had a free slot.
//
// Associate once reported "all in use" with a MID free. Three threads on a full atlas:
//   P  pops the last free slot of leaf k; before P's (hints:L1) clears bit k ...
//   D  dissociates a MID of leaf k: its push makes the leaf non-empty (free 0 -> 1), and its
//      (hints:L3) sees bit k still set, so it does not set it;
//   P  runs (hints:L1), clearing bit k, and stalls before its re-check (hints:L2);
//   T  associates: leaf 0 is full and no bit is set, so T reported "all in use" although
//      D's MID was free the whole time.
// AC6 (AtlasCore::ConfirmAllInUse, a double collect of every leaf's head) makes T look at the
// leaves themselves before answering. The test replays the interleaving in one thread, using
// the C API as the three threads would and AtlasCoreTestPeer for the hint bit P and D touch.
void ReplayPopperStalledBetweenHintClearAndRecheck(std::uint32_t max_mids,
                                                   std::uint32_t initial_mids) {
  PRX_MID_ATLAS handle =
      RxCreateMidAtlas(static_cast<USHORT>(max_mids), static_cast<USHORT>(initial_mids));
  ASSERT_NE(handle, nullptr);
  // The C API's handle is the core itself (src/capi/handles.h).
  AtlasCore& core = *CoreOf(handle);
  LeafHints& hints = AtlasCoreTestPeer::Hints(core);
  const Mid last = static_cast<Mid>(max_mids - 1);
  const std::uint32_t k = AtlasCoreTestPeer::LeafIndexOf(core, last);
  ASSERT_GT(k, 0U) << "the hidden slot must be in a subordinate leaf";
  const Mid victim = static_cast<Mid>(k << core.layout().leaf_bits);  // D's MID, in leaf k
  ASSERT_LT(victim, last);

  // Every MID but the last in use: leaf k has one free slot, and its hint says so.
  for (std::uint32_t i = 0; i + 1 < max_mids; ++i) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(i), &mid), STATUS_SUCCESS) << i;
    ASSERT_EQ(mid, i) << "MIDs are handed out lowest first";
  }
  ASSERT_TRUE(hints.Test(k));

  // P pops the last free slot. Its whole call runs here, (hints:L1) and (hints:L2) included,
  // so put bit k back: P stands between its pop and its (hints:L1).
  USHORT popped = 0;
  ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(max_mids), &popped), STATUS_SUCCESS);
  ASSERT_EQ(popped, last);
  ASSERT_EQ(AtlasCoreTestPeer::LeafHead(core, k).free, 0U);
  hints.SetIfClear(k);

  // D dissociates a MID of leaf k: free 0 -> 1, and its (hints:L3) finds bit k set.
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(handle, victim, &context), STATUS_SUCCESS);
  ASSERT_EQ(context, ContextFor(victim));
  ASSERT_EQ(AtlasCoreTestPeer::LeafHead(core, k).free, 1U);
  ASSERT_TRUE(hints.Test(k));

  // P's (hints:L1); P stalls before (hints:L2). No hint points at the free slot now.
  hints.Clear(k);
  ASSERT_EQ(hints.FindFirst(), LeafHints::kNoLeaf);
  ASSERT_EQ(RxGetNumberOfMidsInUse(handle), max_mids - 1);

  // T: the free MID must be found, and it is the only one.
  USHORT taken = 0;
  EXPECT_EQ(RxAssociateContextWithMid(handle, ContextFor(0xABC), &taken), STATUS_SUCCESS)
      << "\"all in use\" reported while MID " << victim << " was free";
  EXPECT_EQ(taken, victim);
  EXPECT_EQ(RxMapMidToContext(handle, victim), ContextFor(0xABC));
  // Now the atlas is full, and the same check must say so.
  EXPECT_EQ(RxAssociateContextWithMid(handle, ContextFor(0xDEF), &taken), STATUS_UNSUCCESSFUL);
  RxDestroyMidAtlas(handle, nullptr);
}

TEST(AtlasCore, AllInUseIsNotReportedWhileAPopperBetweenHintClearAndRecheckHidesAFreeSlot) {
  // Three 16-slot leaves in directory 0; the hidden slot is in leaf 2.
  ReplayPopperStalledBetweenHintClearAndRecheck(48, 16);
}

TEST(AtlasCore, AllInUseIsNotReportedWhileAPopperHidesAFreeSlotInALaterDirectory) {
  // 64 leaves per directory with 16-slot leaves: the hidden slot is in leaf 64, directory 1,
  // which the double collect reaches through a hazard on the directory.
  ReplayPopperStalledBetweenHintClearAndRecheck(64 * 16 + 16, 16);
}

// ----------------------------------------------------------------------------------------
// Debug builds check the core's invariants and name the broken one.

#if MIDATLAS_CHECK_INVARIANTS
using FourLinks = std::array<std::atomic<std::uint32_t>, 4>;

class AtlasInvariantsDeathTest : public testing::Test {
 protected:
  // The threadsafe style re-runs the test binary for each death test instead of forking a
  // process that other tests may have left with threads.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(AtlasInvariantsDeathTest, PushingOntoAFrozenFreeStackAbortsNamingFS1) {
  EXPECT_DEATH(
      {
        FourLinks links{};
        FreeStack stack;
        stack.InitUnshared(links.data(), 0, 4);
        if (!stack.TryFreeze(4)) std::abort();  // must freeze: every slot is on the stack
        stack.Push(links.data(), 2);
      },
      "invariant FS1 broken");
}

TEST_F(AtlasInvariantsDeathTest, CountingOutALeafADirectoryNeverCountedInAbortsNamingDM1) {
  EXPECT_DEATH(
      {
        DirectoryMap* dir = DirectoryMap::Create(1, 8);
        if (dir == nullptr) std::abort();
        dir->CountLeafOut();
      },
      "invariant DM1 broken");
}

// The same checks stay quiet on the legal paths, so the deaths above are the invariants'.
TEST(AtlasInvariants, LegalFreezesAndCountsDoNotTrip) {
  FourLinks links{};
  FreeStack stack;
  stack.InitUnshared(links.data(), 0, 4);
  EXPECT_EQ(stack.Pop(links.data()).index, 0U);
  EXPECT_FALSE(stack.TryFreeze(4)) << "a held slot keeps the stack from freezing (FS3)";
  EXPECT_EQ(stack.Push(links.data(), 0), 4U);
  EXPECT_TRUE(stack.TryFreeze(4));

  DirectoryMap* dir = DirectoryMap::Create(1, 8);
  ASSERT_NE(dir, nullptr);
  ASSERT_TRUE(dir->TryCountLeafIn());
  EXPECT_TRUE(dir->CountLeafOut()) << "the count is back to zero";
  DirectoryMap::Destroy(dir);
}
#endif  // MIDATLAS_CHECK_INVARIANTS

}  // namespace
}  // namespace midatlas::internal

namespace midatlas::internal {
namespace {

// mids_in_use is O(1) (leaf 0's head plus a count of MIDs held beyond it); when no call runs
// it must equal the count the leaf walk of stats() makes, through growth, shrink and reuse.
TEST(AtlasCoreCount, MidsInUseEqualsTheWalkedCountThroughGrowthAndShrink) {
  for (const std::uint32_t initial : {1U, 16U, 50U}) {
    absl::StatusOr<MidAtlas> atlas = MidAtlas::Create({.max_mids = 5000, .initial_mids = initial});
    ASSERT_TRUE(atlas.ok()) << atlas.status();
    std::vector<Mid> held;
    std::uint32_t seed = 12345 + initial;
    for (int step = 0; step < 20000; ++step) {
      seed = seed * 1103515245U + 12345U;
      const bool take = held.empty() || (seed >> 16) % 100 < (step < 10000 ? 70U : 30U);
      if (take) {
        absl::StatusOr<Mid> mid = atlas->Associate(ContextFor(static_cast<std::uint32_t>(step)));
        if (mid.ok()) held.push_back(*mid);
      } else {
        const std::size_t at = (seed >> 8) % held.size();
        ASSERT_TRUE(atlas->MapAndDissociate(held[at]).ok());
        held[at] = held.back();
        held.pop_back();
      }
      if (step % 997 == 0) {
        ASSERT_EQ(atlas->mids_in_use(), held.size()) << "initial " << initial << " step " << step;
        ASSERT_EQ(atlas->stats().mids_in_use, held.size());
      }
    }
    for (Mid mid : held) ASSERT_TRUE(atlas->MapAndDissociate(mid).ok());
    EXPECT_EQ(atlas->mids_in_use(), 0U);
  }
}

}  // namespace
}  // namespace midatlas::internal
