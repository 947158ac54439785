// Quarantine (midatlax_ex.h): RxDiscardMid, RxReleaseDiscardedMid, RxGetNumberOfDiscardedMids,
// STATUS_CANCELLED with the late context, and what iterate, destroy, the limits and the
// generations make of discarded MIDs - single-threaded first, then the races the contract
// names (exactly one winner among discard and map-and-dissociate, among releases, and the
// late context out exactly once).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "midatlas/midatlax_ex.h"
#include "support/ex_atlas.h"

namespace {

using midatlas::testing::AtlasPtr;
using midatlas::testing::Ctx;

AtlasPtr Make(USHORT max, USHORT start, UCHAR gen_bits = 0, USHORT reserved = 0) {
  return midatlas::testing::MakeExAtlas(max, start, gen_bits, reserved);
}

USHORT Associate(PRX_MID_ATLAS atlas, void* context) {
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas, context, 0, &mid), STATUS_SUCCESS);
  return mid;
}

class DiscardTest : public ::testing::TestWithParam<UCHAR> {};

TEST_P(DiscardTest, DiscardedMidIsHeldMapsNullAndAnswersCancelledWithTheLateContextOnce) {
  AtlasPtr atlas = Make(100, 16, GetParam());
  ASSERT_NE(atlas, nullptr);
  const USHORT mid = Associate(atlas.get(), Ctx(0x100));
  PVOID context = Ctx(1);
  ASSERT_EQ(RxDiscardMid(atlas.get(), mid, Ctx(0x200), &context), STATUS_SUCCESS);
  EXPECT_EQ(context, Ctx(0x100));
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 1);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 1);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), nullptr);
  EXPECT_EQ(RxReassociateMid(atlas.get(), mid, Ctx(0x300)), STATUS_INVALID_PARAMETER);
  // Discarding again: not in use.
  context = Ctx(1);
  EXPECT_EQ(RxDiscardMid(atlas.get(), mid, Ctx(0x400), &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(context, nullptr);
  // The late response: the late context once, then NULL, and the MID stays discarded.
  context = nullptr;
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_CANCELLED);
  EXPECT_EQ(context, Ctx(0x200));
  context = Ctx(1);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_CANCELLED);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 1);
  // The release: the late context went out already.
  PVOID late = Ctx(1);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), mid, &late), STATUS_SUCCESS);
  EXPECT_EQ(late, nullptr);
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  late = Ctx(1);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), mid, &late), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(late, nullptr);
  context = Ctx(1);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(context, nullptr);
}

TEST_P(DiscardTest, ReleaseHandsOutTheLateContextNobodyTook) {
  AtlasPtr atlas = Make(100, 16, GetParam());
  const USHORT mid = Associate(atlas.get(), Ctx(0x100));
  PVOID context = nullptr;
  ASSERT_EQ(RxDiscardMid(atlas.get(), mid, Ctx(0x200), &context), STATUS_SUCCESS);
  PVOID late = nullptr;
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), mid, &late), STATUS_SUCCESS);
  EXPECT_EQ(late, Ctx(0x200));
  // A NULL out-pointer is allowed for the release.
  const USHORT again = Associate(atlas.get(), Ctx(0x500));
  ASSERT_EQ(RxDiscardMid(atlas.get(), again, nullptr, &context), STATUS_SUCCESS);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), again, nullptr), STATUS_SUCCESS);
}

TEST_P(DiscardTest, NotInUseValuesChangeNothing) {
  AtlasPtr atlas = Make(100, 16, GetParam());
  PVOID context = Ctx(1);
  EXPECT_EQ(RxDiscardMid(atlas.get(), 5, Ctx(2), &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(RxDiscardMid(atlas.get(), 0xFFFF, Ctx(2), &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxDiscardMid(nullptr, 0, Ctx(2), &context), STATUS_INVALID_PARAMETER);
  const USHORT mid = Associate(atlas.get(), Ctx(0x100));
  EXPECT_EQ(RxDiscardMid(atlas.get(), mid, Ctx(2), nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(0x100));
  PVOID late = Ctx(1);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), mid, &late), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(late, nullptr);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(0x100));
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfDiscardedMids(nullptr), 0);
}

TEST_P(DiscardTest, DiscardedMidsCountAgainstTheLimits) {
  AtlasPtr atlas = Make(8, 4, GetParam(), /*reserved=*/2);
  std::vector<USHORT> mids;
  for (int i = 0; i < 6; ++i) mids.push_back(Associate(atlas.get(), Ctx(0x100 + i)));
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), 0, &mid), STATUS_UNSUCCESSFUL);
  PVOID context = nullptr;
  ASSERT_EQ(RxDiscardMid(atlas.get(), mids[0], nullptr, &context), STATUS_SUCCESS);
  // Still 6 held: the unreserved capacity stays taken.
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), 0, &mid), STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
  ASSERT_EQ(RxDiscardMid(atlas.get(), mid, nullptr, &context), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
            STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 8);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), mids[0], nullptr), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
}

TEST_P(DiscardTest, SubordinateLeavesDrainOnlyAfterTheirDiscardedMidsAreReleased) {
  AtlasPtr atlas = Make(1000, 16, GetParam());
  std::vector<USHORT> mids;
  for (int i = 0; i < 200; ++i) mids.push_back(Associate(atlas.get(), Ctx(0x1000 + i)));
  std::vector<USHORT> discarded;
  for (std::size_t i = 0; i < 200; ++i) {
    PVOID context = nullptr;
    if (i % 3 == 0) {
      ASSERT_EQ(RxDiscardMid(atlas.get(), mids[i], Ctx(0x9000 + i), &context), STATUS_SUCCESS);
      discarded.push_back(mids[i]);
    } else {
      ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &context),
                STATUS_SUCCESS);
    }
    EXPECT_EQ(context, Ctx(0x1000 + i));
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), discarded.size());
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), discarded.size());
  // New associations never get a discarded value.
  std::set<USHORT> quarantined(discarded.begin(), discarded.end());
  std::vector<USHORT> fresh;
  for (int i = 0; i < 300; ++i) {
    fresh.push_back(Associate(atlas.get(), Ctx(0x5000 + i)));
    EXPECT_EQ(quarantined.count(fresh.back()), 0U) << fresh.back();
  }
  for (USHORT mid : fresh) {
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_SUCCESS);
  }
  for (std::size_t i = 0; i < discarded.size(); ++i) {
    PVOID late = nullptr;
    ASSERT_EQ(RxReleaseDiscardedMid(atlas.get(), discarded[i], &late), STATUS_SUCCESS);
    EXPECT_NE(late, nullptr);
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  // Every MID can be taken again: the maximum, exactly.
  for (int i = 0; i < 1000; ++i) Associate(atlas.get(), Ctx(0x20000 + i));
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, &mid), STATUS_UNSUCCESSFUL);
}

std::vector<std::uintptr_t>* g_seen = nullptr;
void Record(PVOID context) { g_seen->push_back(reinterpret_cast<std::uintptr_t>(context)); }

TEST_P(DiscardTest, IterateAndDestroyHandOutLateContextsNotTaken) {
  std::vector<std::uintptr_t> seen;
  g_seen = &seen;
  {
    AtlasPtr atlas = Make(100, 16, GetParam());
    const USHORT a = Associate(atlas.get(), Ctx(0x100));
    const USHORT b = Associate(atlas.get(), Ctx(0x101));
    const USHORT c = Associate(atlas.get(), Ctx(0x102));
    Associate(atlas.get(), Ctx(0x103));
    PVOID context = nullptr;
    ASSERT_EQ(RxDiscardMid(atlas.get(), a, Ctx(0x200), &context), STATUS_SUCCESS);
    ASSERT_EQ(RxDiscardMid(atlas.get(), b, Ctx(0x201), &context), STATUS_SUCCESS);
    ASSERT_EQ(RxDiscardMid(atlas.get(), c, nullptr, &context), STATUS_SUCCESS);
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), b, &context), STATUS_CANCELLED);
    RxIterateMidAtlasAndRemove(atlas.get(), &Record);
    EXPECT_EQ(std::multiset<std::uintptr_t>(seen.begin(), seen.end()),
              (std::multiset<std::uintptr_t>{0x103, 0x200}));
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
    EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 0);
  }
  seen.clear();
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = 100;
  p.MidsAllocatedAtStart = 16;
  p.GenerationBits = GetParam();
  PRX_MID_ATLAS atlas = RxCreateMidAtlasEx(&p);
  const USHORT a = Associate(atlas, Ctx(0x100));
  const USHORT b = Associate(atlas, Ctx(0x101));
  Associate(atlas, Ctx(0x102));
  PVOID context = nullptr;
  ASSERT_EQ(RxDiscardMid(atlas, a, Ctx(0x200), &context), STATUS_SUCCESS);
  ASSERT_EQ(RxDiscardMid(atlas, b, Ctx(0x201), &context), STATUS_SUCCESS);
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas, a, &context), STATUS_CANCELLED);
  RxDestroyMidAtlas(atlas, &Record);
  EXPECT_EQ(std::multiset<std::uintptr_t>(seen.begin(), seen.end()),
            (std::multiset<std::uintptr_t>{0x102, 0x201}));
  g_seen = nullptr;
}

TEST(DiscardGenerationsTest, AStaleValueOfADiscardedIndexIsNotInUse) {
  AtlasPtr atlas = Make(16, 16, /*gen_bits=*/4);
  const USHORT first = Associate(atlas.get(), Ctx(0x100));
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), first, &context), STATUS_SUCCESS);
  const USHORT second = Associate(atlas.get(), Ctx(0x101));
  ASSERT_EQ(second & 0x0FFF, first & 0x0FFF);
  ASSERT_NE(second, first);
  ASSERT_EQ(RxDiscardMid(atlas.get(), second, Ctx(0x200), &context), STATUS_SUCCESS);
  // The older generation: not in use, not cancelled.
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), first, &context),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReleaseDiscardedMid(atlas.get(), first, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), second, &context), STATUS_CANCELLED);
  EXPECT_EQ(context, Ctx(0x200));
  ASSERT_EQ(RxReleaseDiscardedMid(atlas.get(), second, nullptr), STATUS_SUCCESS);
  // The index comes back under a newer generation, and the discarded value is stale.
  USHORT third = 0;
  for (int i = 0; i < 16; ++i) {
    const USHORT mid = Associate(atlas.get(), Ctx(0x300 + i));
    if ((mid & 0x0FFF) == (first & 0x0FFF)) third = mid;
  }
  EXPECT_NE(third, second);
  EXPECT_NE(third, first);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), second, &context),
            STATUS_INVALID_PARAMETER);
}

INSTANTIATE_TEST_SUITE_P(Generations, DiscardTest, ::testing::Values(UCHAR{0}, UCHAR{4}));

// --- Races ------------------------------------------------------------------------------

class DiscardRaceTest : public ::testing::TestWithParam<UCHAR> {};

TEST_P(DiscardRaceTest, DiscardAndMapAndDissociateHaveExactlyOneWinner) {
  AtlasPtr atlas = Make(64, 16, GetParam());
  constexpr int kRounds = 1000;
  int discards_won = 0;
  int dissociates_won = 0;
  for (int round = 0; round < kRounds; ++round) {
    const USHORT mid = Associate(atlas.get(), Ctx(0x1000 + round));
    std::atomic<int> go{0};
    PVOID by_discard = nullptr;
    PVOID by_dissociate = nullptr;
    NTSTATUS discard_status = 0;
    NTSTATUS dissociate_status = 0;
    std::thread discarder([&] {
      go.fetch_add(1);
      while (go.load() < 2) std::this_thread::yield();
      discard_status = RxDiscardMid(atlas.get(), mid, Ctx(0x77), &by_discard);
    });
    go.fetch_add(1);
    while (go.load() < 2) std::this_thread::yield();
    dissociate_status = RxMapAndDissociateMidFromContext(atlas.get(), mid, &by_dissociate);
    discarder.join();
    if (discard_status == STATUS_SUCCESS) {
      ++discards_won;
      EXPECT_EQ(by_discard, Ctx(0x1000 + round));
      // The dissociate came second: a late response, or (before the discard) nothing.
      EXPECT_TRUE(dissociate_status == STATUS_CANCELLED) << std::hex << dissociate_status;
      EXPECT_EQ(by_dissociate, Ctx(0x77));
      ASSERT_EQ(RxReleaseDiscardedMid(atlas.get(), mid, nullptr), STATUS_SUCCESS);
    } else {
      ++dissociates_won;
      EXPECT_EQ(discard_status, STATUS_INVALID_PARAMETER);
      EXPECT_EQ(by_discard, nullptr);
      EXPECT_EQ(dissociate_status, STATUS_SUCCESS);
      EXPECT_EQ(by_dissociate, Ctx(0x1000 + round));
    }
  }
  EXPECT_EQ(discards_won + dissociates_won, kRounds);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfDiscardedMids(atlas.get()), 0);
}

TEST_P(DiscardRaceTest, RacingReleasesAndLateResponsesHandTheLateContextOutOnce) {
  AtlasPtr atlas = Make(64, 16, GetParam());
  constexpr int kRounds = 300;
  constexpr int kThreads = 3;
  for (int round = 0; round < kRounds; ++round) {
    const USHORT mid = Associate(atlas.get(), Ctx(0x1000 + round));
    PVOID context = nullptr;
    ASSERT_EQ(RxDiscardMid(atlas.get(), mid, Ctx(0x5000 + round), &context), STATUS_SUCCESS);
    std::atomic<int> go{0};
    std::atomic<int> releases{0};
    std::atomic<int> late_out{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        go.fetch_add(1);
        while (go.load() < kThreads) std::this_thread::yield();
        PVOID late = nullptr;
        if (t % 2 == 0) {
          if (RxReleaseDiscardedMid(atlas.get(), mid, &late) == STATUS_SUCCESS) {
            releases.fetch_add(1);
          }
        } else {
          const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas.get(), mid, &late);
          EXPECT_TRUE(status == STATUS_CANCELLED || status == STATUS_INVALID_PARAMETER);
        }
        if (late != nullptr) {
          EXPECT_EQ(late, Ctx(0x5000 + round));
          late_out.fetch_add(1);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(releases.load(), 1);
    EXPECT_EQ(late_out.load(), 1);
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
}

INSTANTIATE_TEST_SUITE_P(Generations, DiscardRaceTest, ::testing::Values(UCHAR{0}, UCHAR{4}));

}  // namespace
