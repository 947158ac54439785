// The extension C API (include/midatlas/midatlax_ex.h): creation parameters and every way they
// can be wrong, excluded values (never handed out by any call, whatever the leaf shape), and
// reserved capacity (never exceeded, also under races). midatlax_ex_c11_test.c compiles the
// header as C11.
#include "midatlas/midatlax_ex.h"
#include "support/ex_atlas.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

static_assert(std::is_same_v<UCHAR, std::uint8_t>);
static_assert(std::is_same_v<ULONG, std::uint32_t>);
static_assert(std::is_same_v<BOOLEAN, std::uint8_t>);
static_assert(TRUE == 1 && FALSE == 0);
static_assert(static_cast<std::uint32_t>(STATUS_TIMEOUT) == 0x00000102U);
static_assert(static_cast<std::uint32_t>(STATUS_PENDING) == 0x00000103U);
static_assert(static_cast<std::uint32_t>(STATUS_CANCELLED) == 0xC0000120U);
static_assert(std::is_same_v<decltype(STATUS_CANCELLED), NTSTATUS>);
static_assert(RX_MID_REUSE_COMPACT == 0 && RX_MID_REUSE_CYCLIC == 1 && RX_MID_REUSE_RANDOM == 2);
static_assert(RX_MID_USE_RESERVE == 0x1);

using midatlas::testing::AtlasPtr;
using midatlas::testing::Ctx;

RX_MID_ATLAS_PARAMETERS Params(USHORT max, USHORT start) {
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = max;
  p.MidsAllocatedAtStart = start;
  return p;
}

AtlasPtr Create(const RX_MID_ATLAS_PARAMETERS& p) { return AtlasPtr(RxCreateMidAtlasEx(&p)); }

// ------------------------------------------------------------------------------------------
// Creation.

TEST(CreateEx, NullParametersAndTheRxCreateMidAtlasErrorsGiveNull) {
  EXPECT_EQ(RxCreateMidAtlasEx(nullptr), nullptr);
  EXPECT_EQ(Create(Params(0, 1)), nullptr);
  EXPECT_EQ(Create(Params(10, 0)), nullptr);
  EXPECT_EQ(Create(Params(10, 11)), nullptr);
  EXPECT_NE(Create(Params(10, 10)), nullptr);
  EXPECT_NE(Create(Params(65535, 65535)), nullptr);
}

TEST(CreateEx, OnlyTheThreeKnownPoliciesAreAccepted) {
  for (int policy = 0; policy <= 255; ++policy) {
    RX_MID_ATLAS_PARAMETERS p = Params(100, 50);
    p.ReusePolicy = static_cast<UCHAR>(policy);
    if (policy <= RX_MID_REUSE_RANDOM) {
      EXPECT_NE(Create(p), nullptr) << policy;
    } else {
      EXPECT_EQ(Create(p), nullptr) << policy;
    }
  }
}

TEST(CreateEx, GenerationBitsAbove15OrAMaximumBeyondTheIndexSpaceGiveNull) {
  for (int bits = 0; bits <= 255; ++bits) {
    RX_MID_ATLAS_PARAMETERS p = Params(100, 50);
    p.GenerationBits = static_cast<UCHAR>(bits);
    // 100 MIDs need 7 index bits: G <= 9.
    if (bits <= 9) {
      EXPECT_NE(Create(p), nullptr) << bits;
    } else {
      EXPECT_EQ(Create(p), nullptr) << bits;
    }
  }
}

TEST(CreateEx, ReserveMustBeBelowTheMaximum) {
  RX_MID_ATLAS_PARAMETERS p = Params(10, 5);
  p.MidsReserved = 10;
  EXPECT_EQ(Create(p), nullptr);
  p.MidsReserved = 11;
  EXPECT_EQ(Create(p), nullptr);
  p.MidsReserved = 0xFFFF;
  EXPECT_EQ(Create(p), nullptr);
  p.MidsReserved = 9;
  EXPECT_NE(Create(p), nullptr);
}

TEST(CreateEx, ExclusionsWithoutAnArrayGiveNull) {
  RX_MID_ATLAS_PARAMETERS p = Params(10, 5);
  p.NumberOfExcludedMids = 1;
  p.ExcludedMids = nullptr;
  EXPECT_EQ(Create(p), nullptr);
  // No exclusions and no array is the zeroed tail.
  p.NumberOfExcludedMids = 0;
  EXPECT_NE(Create(p), nullptr);
}

TEST(CreateEx, AMaximumTheExclusionsLeaveNoRoomForGivesNull) {
  const std::vector<USHORT> smb1 = {0, 0xFFFF};
  RX_MID_ATLAS_PARAMETERS p = Params(65535, 50);
  p.NumberOfExcludedMids = 2;
  p.ExcludedMids = smb1.data();
  EXPECT_EQ(Create(p), nullptr);  // 65536 - 2 = 65534 values at most
  p.MaximumNumberOfMids = 65534;
  EXPECT_NE(Create(p), nullptr);
  // Duplicates count once.
  const std::vector<USHORT> repeated = {0xFFFF, 0, 0, 0xFFFF, 0};
  p.NumberOfExcludedMids = static_cast<USHORT>(repeated.size());
  p.ExcludedMids = repeated.data();
  EXPECT_NE(Create(p), nullptr);
  p.MaximumNumberOfMids = 65535;
  EXPECT_EQ(Create(p), nullptr);
  const std::vector<USHORT> one = {7, 7};
  p.NumberOfExcludedMids = 2;
  p.ExcludedMids = one.data();
  EXPECT_NE(Create(p), nullptr);
}

TEST(CreateEx, AZeroedTailBehavesAsRxCreateMidAtlas) {
  for (const auto& [max, start] : {std::pair<USHORT, USHORT>{40, 1}, {300, 50}, {17, 17}}) {
    AtlasPtr plain(RxCreateMidAtlas(max, start));
    AtlasPtr ex = Create(Params(max, start));
    ASSERT_NE(plain, nullptr);
    ASSERT_NE(ex, nullptr);
    EXPECT_EQ(RxGetMaximumNumberOfMids(ex.get()), max);
    for (int i = 0; i <= max; ++i) {
      USHORT a = 0;
      USHORT b = 0;
      const NTSTATUS sa = RxAssociateContextWithMid(plain.get(), Ctx(i + 1), &a);
      const NTSTATUS sb = RxAssociateContextWithMidEx(ex.get(), Ctx(i + 1), 0, &b);
      ASSERT_EQ(sa, sb);
      if (sa == STATUS_SUCCESS) {
        EXPECT_EQ(a, b);
      }
    }
    EXPECT_EQ(RxGetNumberOfMidsInUse(ex.get()), max);
  }
}

TEST(CreateEx, ParametersAreReadOnlyDuringTheCall) {
  std::vector<USHORT> excluded = {0, 1, 2};
  RX_MID_ATLAS_PARAMETERS p = Params(5, 5);
  p.NumberOfExcludedMids = 3;
  p.ExcludedMids = excluded.data();
  AtlasPtr atlas = Create(p);
  ASSERT_NE(atlas, nullptr);
  excluded.assign(3, 100);  // changing the caller's array afterwards changes nothing
  std::set<USHORT> got;
  for (int i = 0; i < 5; ++i) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
    got.insert(mid);
  }
  EXPECT_EQ(got, (std::set<USHORT>{3, 4, 5, 6, 7}));
}

// ------------------------------------------------------------------------------------------
// Associate with flags: argument errors.

TEST(AssociateEx, BadArguments) {
  AtlasPtr atlas = Create(Params(10, 5));
  USHORT mid = 0xABCD;
  EXPECT_EQ(RxAssociateContextWithMidEx(nullptr, Ctx(1), 0, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), nullptr, 0, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, nullptr),
            STATUS_INVALID_PARAMETER);
  for (const ULONG flags : {0x2U, 0x4U, 0x3U, 0x80000000U, 0xFFFFFFFFU}) {
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), flags, &mid),
              STATUS_INVALID_PARAMETER)
        << flags;
  }
  EXPECT_EQ(mid, 0xABCD);  // untouched
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  // Argument errors come before "all in use".
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0x2, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), nullptr, 0, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, &mid), STATUS_UNSUCCESSFUL);
}

// ------------------------------------------------------------------------------------------
// Excluded values.

struct ExclusionCase {
  USHORT max;
  USHORT start;
  std::vector<USHORT> excluded;
};

// Fills the atlas to its maximum, frees a random part, fills again, several rounds, and checks
// every MID handed out: never excluded, never two alike, exactly max at once, then "all in
// use"; excluded values map to nothing and cannot be dissociated or reassociated.
void FillRepeatedly(const ExclusionCase& c, std::uint32_t seed) {
  RX_MID_ATLAS_PARAMETERS p = Params(c.max, c.start);
  p.NumberOfExcludedMids = static_cast<USHORT>(c.excluded.size());
  p.ExcludedMids = c.excluded.data();
  AtlasPtr atlas = Create(p);
  ASSERT_NE(atlas, nullptr);
  const std::set<USHORT> excluded(c.excluded.begin(), c.excluded.end());
  std::mt19937 rng(seed);
  std::set<USHORT> held;
  std::uintptr_t next = 1;
  for (int round = 0; round < 4; ++round) {
    while (held.size() < c.max) {
      USHORT mid = 0;
      ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(next++), 0, &mid), STATUS_SUCCESS)
          << "held " << held.size();
      ASSERT_EQ(excluded.count(mid), 0U) << "excluded value " << mid << " handed out";
      ASSERT_TRUE(held.insert(mid).second) << "MID " << mid << " handed out twice";
    }
    USHORT mid = 0;
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(next), RX_MID_USE_RESERVE, &mid),
              STATUS_UNSUCCESSFUL);
    EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), Ctx(next), &mid), STATUS_UNSUCCESSFUL);
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), c.max);
    for (const USHORT value : excluded) {
      EXPECT_EQ(RxMapMidToContext(atlas.get(), value), nullptr);
      void* out = Ctx(1);
      EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), value, &out),
                STATUS_INVALID_PARAMETER);
      EXPECT_EQ(out, nullptr);
      EXPECT_EQ(RxReassociateMid(atlas.get(), value, Ctx(1)), STATUS_INVALID_PARAMETER);
    }
    // Free a random part (all of it in the last rounds, so that leaves drain and detach).
    std::vector<USHORT> order(held.begin(), held.end());
    std::shuffle(order.begin(), order.end(), rng);
    const std::size_t to_free = round >= 2 ? order.size() : order.size() / 2 + 1;
    for (std::size_t i = 0; i < to_free; ++i) {
      void* out = nullptr;
      ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), order[i], &out), STATUS_SUCCESS);
      held.erase(order[i]);
    }
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), held.size());
  }
  // Iterate-and-remove hands out exactly the held ones.
  static std::size_t iterated;
  iterated = 0;
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) { ++iterated; });
  EXPECT_EQ(iterated, held.size());
}

TEST(Exclusions, NeverHandedOutWhateverTheLeafShape) {
  std::vector<ExclusionCase> cases = {
      {65534, 50, {0, 0xFFFF}},       // SMB1
      {65535, 1, {0xFFFF}},           // 9P NOTAG, 16-slot leaves
      {100, 1, {0}},                  // slot 0 of leaf 0
      {100, 1, {16}},                 // slot 0 of a grown leaf: the grower's own slot
      {100, 1, {}},                   // none
      {60, 16, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},  // all of leaf 0
      {60, 1, {16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}},  // leaf 1
      {40, 1, {17, 3, 3, 40, 41, 100, 65535, 63}},  // unsorted, duplicates, beyond the end
      {1, 1, {0, 1, 2}},              // the one MID is 3
  };
  // Every 7th value, in an atlas of 16-slot leaves.
  ExclusionCase sparse{2000, 1, {}};
  for (USHORT v = 0; v < 2400; v += 7) sparse.excluded.push_back(v);
  cases.push_back(sparse);
  // 64-slot leaves with whole leaves excluded here and there.
  ExclusionCase holes{500, 50, {}};
  for (USHORT v = 64; v < 128; ++v) holes.excluded.push_back(v);
  for (USHORT v = 300; v < 448; ++v) holes.excluded.push_back(v);
  cases.push_back(holes);
  std::uint32_t seed = 1;
  for (const ExclusionCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "max " << c.max << " start " << c.start << " excluded "
                                    << c.excluded.size());
    FillRepeatedly(c, seed++);
  }
}

TEST(Exclusions, TheLowestValuesNotExcludedAreHandedOutInOrder) {
  const std::vector<USHORT> excluded = {0, 2, 4};
  RX_MID_ATLAS_PARAMETERS p = Params(5, 5);
  p.NumberOfExcludedMids = 3;
  p.ExcludedMids = excluded.data();
  AtlasPtr atlas = Create(p);
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> got;
  for (int i = 0; i < 5; ++i) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), Ctx(i + 1), &mid), STATUS_SUCCESS);
    got.push_back(mid);
  }
  EXPECT_EQ(got, (std::vector<USHORT>{1, 3, 5, 6, 7}));
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), Ctx(9), &mid), STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), 8), nullptr);
}

// ------------------------------------------------------------------------------------------
// Reserved capacity.

TEST(Reserve, WithoutTheFlagMaxLessReservedWithItMax) {
  RX_MID_ATLAS_PARAMETERS p = Params(10, 1);
  p.MidsReserved = 3;
  AtlasPtr atlas = Create(p);
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> mids;
  USHORT mid = 0;
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
    mids.push_back(mid);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(8), 0, &mid), STATUS_UNSUCCESSFUL);
  // The RDBSS call is an associate without the flag.
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), Ctx(8), &mid), STATUS_UNSUCCESSFUL);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(20 + i), RX_MID_USE_RESERVE, &mid),
              STATUS_SUCCESS);
    mids.push_back(mid);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(30), RX_MID_USE_RESERVE, &mid),
            STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 10);
  // Reserved MIDs count as held: freeing one ordinary MID leaves 9 held, above the limit.
  void* out = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &out), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(40), 0, &mid), STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(40), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
  mids[0] = mid;
  // Down to 6 held: one ordinary associate fits again, a second does not.
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &out), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), Ctx(50), &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(51), 0, &mid), STATUS_UNSUCCESSFUL);
  // Iterate-and-remove and destruction release the admissions too.
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) {});
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(8), 0, &mid), STATUS_UNSUCCESSFUL);
}

TEST(Reserve, AFailedTakeGivesItsAdmissionBack) {
  // Everything held through the reserve: ordinary associates fail at the admission, flagged
  // ones at the take; neither may leak an admission.
  RX_MID_ATLAS_PARAMETERS p = Params(4, 1);
  p.MidsReserved = 2;
  AtlasPtr atlas = Create(p);
  std::vector<USHORT> mids;
  USHORT mid = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), RX_MID_USE_RESERVE, &mid),
              STATUS_SUCCESS);
    mids.push_back(mid);
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
              STATUS_UNSUCCESSFUL);
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), 0, &mid), STATUS_UNSUCCESSFUL);
  }
  void* out = nullptr;
  for (const USHORT m : mids) {
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), m, &out), STATUS_SUCCESS);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(3), 0, &mid), STATUS_UNSUCCESSFUL);
}

// Threads associate and dissociate without the flag, each wanting more than its share, and a
// model counts the MIDs they hold: incremented after an associate succeeds, decremented before
// the dissociate, so the model never counts more than the atlas holds. Its peak must reach the
// limit (the test exercises it) and never pass it.
void RaceAgainstTheLimit(bool with_reserve) {
  constexpr USHORT kMax = 40;
  constexpr USHORT kReserved = 8;
  constexpr int kThreads = 4;
  RX_MID_ATLAS_PARAMETERS p = Params(kMax, 1);  // 16-slot leaves: growth and shrink race too
  p.MidsReserved = kReserved;
  AtlasPtr atlas = Create(p);
  ASSERT_NE(atlas, nullptr);
  std::atomic<int> model{0};
  std::atomic<int> peak{0};
  std::atomic<int> reserve_held{0};
  std::atomic<int> reserve_peak{0};
  std::atomic<int> total{0};
  std::atomic<int> total_peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<std::uint32_t>(t + 1));
      std::vector<USHORT> mine;
      std::vector<USHORT> reserved_mine;
      for (int i = 0; i < 20000; ++i) {
        const bool reserve_thread = with_reserve && t == 0 && rng() % 8 == 0;
        USHORT mid = 0;
        if (rng() % 3 != 0 || mine.empty()) {
          const ULONG flags = reserve_thread ? RX_MID_USE_RESERVE : 0;
          const NTSTATUS s = RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), flags, &mid);
          if (s == STATUS_SUCCESS) {
            // (test) seq_cst: one counter of every MID held, whatever its kind, so that its
            // value never exceeds what the atlas holds at that instant.
            const int all = total.fetch_add(1) + 1;
            int top = total_peak.load();
            while (all > top && !total_peak.compare_exchange_weak(top, all)) {
            }
            if (reserve_thread) {
              // (test) relaxed: the reserve model only needs its own total.
              const int now = reserve_held.fetch_add(1, std::memory_order_relaxed) + 1;
              int seen = reserve_peak.load(std::memory_order_relaxed);
              while (now > seen && !reserve_peak.compare_exchange_weak(seen, now)) {
              }
              reserved_mine.push_back(mid);
            } else {
              // (test) seq_cst: the model's count and peak, in one order with the others.
              const int now = model.fetch_add(1) + 1;
              int seen = peak.load();
              while (now > seen && !peak.compare_exchange_weak(seen, now)) {
              }

              mine.push_back(mid);
            }
          } else {
            ASSERT_EQ(s, STATUS_UNSUCCESSFUL);
          }
        } else {
          std::vector<USHORT>& from = !reserved_mine.empty() && rng() % 2 ? reserved_mine : mine;
          const std::size_t k = rng() % from.size();
          mid = from[k];
          from[k] = from.back();
          from.pop_back();
          total.fetch_sub(1);  // (test) seq_cst, before the dissociate
          if (&from == &mine) {
            model.fetch_sub(1);  // (test) seq_cst, before the dissociate
          } else {
            reserve_held.fetch_sub(1, std::memory_order_relaxed);
          }
          void* out = nullptr;
          ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &out), STATUS_SUCCESS);
        }
      }
      void* out = nullptr;
      for (const USHORT m : mine) {
        model.fetch_sub(1);
        total.fetch_sub(1);
        ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), m, &out), STATUS_SUCCESS);
      }
      for (const USHORT m : reserved_mine) {
        total.fetch_sub(1);
        ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), m, &out), STATUS_SUCCESS);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  // The non-reserve associates never held more than max - reserved, and everything together
  // never more than max.
  EXPECT_LE(peak.load(), kMax - kReserved);
  EXPECT_LE(total_peak.load(), kMax);
  EXPECT_EQ(total.load(), 0);
  if (with_reserve) {
    EXPECT_GT(reserve_peak.load(), 0);
  } else {
    EXPECT_EQ(peak.load(), kMax - kReserved) << "the race never reached the limit";
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  // The admissions all came back: the limit is reachable again, exactly.
  USHORT mid = 0;
  for (int i = 0; i < kMax - kReserved; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(99), 0, &mid), STATUS_UNSUCCESSFUL);
}

TEST(Reserve, NeverExceededUnderRaces) { RaceAgainstTheLimit(false); }
TEST(Reserve, NeverExceededUnderRacesWithReserveTakers) { RaceAgainstTheLimit(true); }

}  // namespace
