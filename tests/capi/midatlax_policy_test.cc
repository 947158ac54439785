// The CYCLIC and RANDOM reuse policies through the atlas (midatlax_ex.h): the whole index
// space is used and Max only limits how many are held; cyclic's recurrence distance; random
// spread and uniformity over the free values at the atlas level; excluded values and
// generations under both; the limits, discards and waiters on a picker's indexes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "midatlas/midatlax_ex.h"
#include "support/ex_atlas.h"

namespace {

using midatlas::testing::AtlasPtr;
using midatlas::testing::Ctx;

AtlasPtr Make(UCHAR policy, USHORT max, UCHAR gen_bits = 0, USHORT reserved = 0,
              std::vector<USHORT> excluded = {}) {
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = max;
  p.MidsAllocatedAtStart = max < 16 ? max : 16;
  p.GenerationBits = gen_bits;
  p.ReusePolicy = policy;
  p.MidsReserved = reserved;
  p.NumberOfExcludedMids = static_cast<USHORT>(excluded.size());
  p.ExcludedMids = excluded.empty() ? nullptr : excluded.data();
  return AtlasPtr(RxCreateMidAtlasEx(&p));
}

USHORT Take(PRX_MID_ATLAS atlas, void* context) {
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas, context, 0, &mid), STATUS_SUCCESS);
  return mid;
}

void Free(PRX_MID_ATLAS atlas, USHORT mid) {
  PVOID context = nullptr;
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas, mid, &context), STATUS_SUCCESS) << mid;
}

TEST(CyclicPolicy, AValueRecursOnlyAfterTheWholeIndexSpaceCameBy) {
  AtlasPtr atlas = Make(RX_MID_REUSE_CYCLIC, 50);
  ASSERT_NE(atlas, nullptr);
  std::deque<USHORT> held;
  std::map<USHORT, std::uint64_t> last_seen;
  std::uint64_t min_distance = ~std::uint64_t{0};
  constexpr std::uint64_t kClaims = 3 * 65536;
  for (std::uint64_t n = 0; n < kClaims; ++n) {
    if (held.size() == 50) {
      Free(atlas.get(), held.front());
      held.pop_front();
    }
    const USHORT mid = Take(atlas.get(), Ctx(n + 1));
    ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(n + 1));
    if (auto it = last_seen.find(mid); it != last_seen.end()) {
      min_distance = std::min(min_distance, n - it->second);
    }
    last_seen[mid] = n;
    held.push_back(mid);
  }
  EXPECT_EQ(last_seen.size(), 65536U);  // every value of the index space came by
  EXPECT_GE(min_distance, 65536U - 50U);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 50);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, &mid), STATUS_UNSUCCESSFUL);
}

TEST(RandomPolicy, ValuesSpreadOverTheIndexSpaceAndMaxLimitsTheHeld) {
  AtlasPtr atlas = Make(RX_MID_REUSE_RANDOM, 64);
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> order;
  for (int i = 0; i < 64; ++i) order.push_back(Take(atlas.get(), Ctx(i + 1)));
  const std::set<USHORT> held(order.begin(), order.end());
  EXPECT_EQ(held.size(), 64U);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(99), 0, &mid), STATUS_UNSUCCESSFUL);
  // 64 uniform draws from 65536 values: all below 4096 has probability 16^-64.
  EXPECT_GT(*held.rbegin(), 4096);
  for (std::size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(RxMapMidToContext(atlas.get(), order[i]), Ctx(i + 1));
  }
}

// Chi-square over 16 buckets of the free values' draws at the atlas level (the picker's own
// uniformity tests are in tests/atlas/index_picker_test.cc): the index space of G = 8 is 256
// values; 128 are held (50%), and each draw is freed again at once.
TEST(RandomPolicy, DrawsAreUniformOverTheFreeValues) {
  AtlasPtr atlas = Make(RX_MID_REUSE_RANDOM, 200, /*gen_bits=*/8);
  ASSERT_NE(atlas, nullptr);
  std::set<USHORT> held_index;
  std::vector<USHORT> held;
  while (held.size() < 128) {
    const USHORT mid = Take(atlas.get(), Ctx(held.size() + 1));
    held.push_back(mid);
    held_index.insert(mid & 0xFF);
  }
  std::vector<int> free_values;
  for (int v = 0; v < 256; ++v) {
    if (held_index.count(static_cast<USHORT>(v)) == 0) free_values.push_back(v);
  }
  ASSERT_EQ(free_values.size(), 128U);
  std::map<int, int> rank;
  for (std::size_t r = 0; r < free_values.size(); ++r) rank[free_values[r]] = static_cast<int>(r);
  constexpr int kDraws = 64000;
  std::vector<double> buckets(16, 0.0);
  for (int n = 0; n < kDraws; ++n) {
    const USHORT mid = Take(atlas.get(), Ctx(1000 + n));
    const auto it = rank.find(mid & 0xFF);
    ASSERT_NE(it, rank.end()) << "a held index was handed out again";
    buckets[static_cast<std::size_t>(it->second / 8)] += 1;
    Free(atlas.get(), mid);
  }
  double chi2 = 0;
  const double expected = kDraws / 16.0;
  for (double b : buckets) chi2 += (b - expected) * (b - expected) / expected;
  // 15 degrees of freedom: p = 1e-6 at about 49.
  EXPECT_LT(chi2, 49.0);
}

class PolicyTest : public ::testing::TestWithParam<std::pair<UCHAR, UCHAR>> {};

TEST_P(PolicyTest, ExcludedValuesAreNeverHandedOut) {
  const auto [policy, gen_bits] = GetParam();
  const USHORT space_mask = static_cast<USHORT>((1U << (16 - gen_bits)) - 1);
  std::vector<USHORT> excluded = {0, 0xFFFF, 7, 100};
  AtlasPtr atlas = Make(policy, 40, gen_bits, 0, excluded);
  ASSERT_NE(atlas, nullptr);
  const std::set<USHORT> never(excluded.begin(), excluded.end());
  std::deque<USHORT> held;
  for (int n = 0; n < 20000; ++n) {
    if (held.size() == 40) {
      Free(atlas.get(), held.front());
      held.pop_front();
    }
    const USHORT mid = Take(atlas.get(), Ctx(n + 1));
    ASSERT_EQ(never.count(mid), 0U) << mid;
    ASSERT_LE(mid & space_mask, space_mask);
    held.push_back(mid);
  }
}

TEST_P(PolicyTest, LimitsDiscardsAndWaitersWorkOnPickedIndexes) {
  const auto [policy, gen_bits] = GetParam();
  AtlasPtr atlas = Make(policy, 8, gen_bits, /*reserved=*/2);
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> mids;
  for (int i = 0; i < 6; ++i) mids.push_back(Take(atlas.get(), Ctx(i + 1)));
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), 0, &mid), STATUS_UNSUCCESSFUL);
  ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
  mids.push_back(mid);
  ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(10), RX_MID_USE_RESERVE, &mid),
            STATUS_SUCCESS);
  mids.push_back(mid);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(11), RX_MID_USE_RESERVE, &mid),
            STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 8);
  // Discard one; the quarantined value is held and answers late.
  PVOID context = nullptr;
  ASSERT_EQ(RxDiscardMid(atlas.get(), mids[0], Ctx(0x50), &context), STATUS_SUCCESS);
  EXPECT_EQ(context, Ctx(1));
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &context), STATUS_CANCELLED);
  EXPECT_EQ(context, Ctx(0x50));
  // A waiter: the next freed index goes to it, that same index under its next generation.
  USHORT waited = 0;
  std::thread waiter([&] {
    EXPECT_EQ(RxAssociateContextWithMidWait(atlas.get(), Ctx(0x60), RX_MID_USE_RESERVE,
                                            0xFFFFFFFF, &waited),
              STATUS_SUCCESS);
  });
  while (RxGetNumberOfWaiters(atlas.get()) == 0) std::this_thread::yield();
  ASSERT_EQ(RxReleaseDiscardedMid(atlas.get(), mids[0], nullptr), STATUS_SUCCESS);
  waiter.join();
  const USHORT space_mask = static_cast<USHORT>((1U << (16 - gen_bits)) - 1);
  EXPECT_EQ(waited & space_mask, mids[0] & space_mask);
  if (gen_bits != 0) {
    EXPECT_NE(waited, mids[0]);
  }
  EXPECT_EQ(RxMapMidToContext(atlas.get(), waited), Ctx(0x60));
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[0]), gen_bits != 0 ? nullptr : Ctx(0x60));
  // Everything back: exactly Max can be held again.
  std::vector<PVOID> seen;
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) {});
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), RX_MID_USE_RESERVE, &mid),
              STATUS_SUCCESS);
  }
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), RX_MID_USE_RESERVE, &mid),
            STATUS_UNSUCCESSFUL);
}

TEST_P(PolicyTest, RacingAssociatesAndDissociatesNeverShareAValue) {
  const auto [policy, gen_bits] = GetParam();
  AtlasPtr atlas = Make(policy, 64, gen_bits);
  ASSERT_NE(atlas, nullptr);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < 3000; ++n) {
        void* context = Ctx(((t + 1) << 20) | (n + 1));
        USHORT mid = 0;
        const NTSTATUS status = RxAssociateContextWithMidEx(atlas.get(), context, 0, &mid);
        if (status != STATUS_SUCCESS) continue;
        ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), context);
        PVOID taken = nullptr;
        ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &taken), STATUS_SUCCESS);
        ASSERT_EQ(taken, context);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, PolicyTest,
    ::testing::Values(std::make_pair(UCHAR{RX_MID_REUSE_CYCLIC}, UCHAR{0}),
                      std::make_pair(UCHAR{RX_MID_REUSE_CYCLIC}, UCHAR{4}),
                      std::make_pair(UCHAR{RX_MID_REUSE_RANDOM}, UCHAR{0}),
                      std::make_pair(UCHAR{RX_MID_REUSE_RANDOM}, UCHAR{4})));

}  // namespace
