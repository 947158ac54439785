// The reference atlases are only worth benchmarking against if they are correct: these tests
// hold them to the same rules midatlas follows (distinct MIDs below the maximum, exhaustion at
// exactly the maximum, every MID reusable), plus the classic atlas's growth at level
// boundaries.
#include <cstdint>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "reference/classic_mid_atlas.h"
#include "reference/flat_atomic_atlas.h"

namespace midatlas::reference {
namespace {

constexpr std::uint32_t kAllMids = 65535;

// Distinct, 8-byte aligned contexts (the classic atlas needs the two low bits free).
void* Context(std::size_t i) {
  static std::vector<std::uint64_t> objects(std::size_t{65536} * 2);
  return &objects[i];
}

// ---------------------------------------------------------------------------------------
// FlatAtomicAtlas

TEST(FlatAtomicAtlasTest, AssociatedContextMapsBack) {
  FlatAtomicAtlas atlas(kAllMids);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(1), &mid));
  EXPECT_EQ(atlas.Map(mid), Context(1));
}

TEST(FlatAtomicAtlasTest, MidsAreHandedOutLowestFirst) {
  FlatAtomicAtlas atlas(kAllMids);
  for (std::uint16_t expected = 0; expected < 10; ++expected) {
    std::uint16_t mid = 0xFFFF;
    ASSERT_TRUE(atlas.Associate(Context(expected), &mid));
    EXPECT_EQ(mid, expected);
  }
}

TEST(FlatAtomicAtlasTest, NullContextIsRejected) {
  FlatAtomicAtlas atlas(kAllMids);
  std::uint16_t mid = 0;
  EXPECT_FALSE(atlas.Associate(nullptr, &mid));
  EXPECT_TRUE(atlas.Associate(Context(0), &mid));
  EXPECT_EQ(mid, 0) << "the rejected call must not have taken a MID";
}

TEST(FlatAtomicAtlasTest, MapOfFreeMidReturnsNull) {
  FlatAtomicAtlas atlas(kAllMids);
  EXPECT_EQ(atlas.Map(0), nullptr);
  EXPECT_EQ(atlas.Map(65535), nullptr);
}

TEST(FlatAtomicAtlasTest, DissociateReturnsContextAndFreesMid) {
  FlatAtomicAtlas atlas(kAllMids);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(7), &mid));
  EXPECT_EQ(atlas.MapAndDissociate(mid), Context(7));
  EXPECT_EQ(atlas.Map(mid), nullptr);
}

TEST(FlatAtomicAtlasTest, DissociateOfFreeMidReturnsNull) {
  FlatAtomicAtlas atlas(kAllMids);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(7), &mid));
  ASSERT_EQ(atlas.MapAndDissociate(mid), Context(7));
  EXPECT_EQ(atlas.MapAndDissociate(mid), nullptr);
  EXPECT_EQ(atlas.MapAndDissociate(1234), nullptr);
}

TEST(FlatAtomicAtlasTest, DoubleDissociateDoesNotPushTheMidTwice) {
  FlatAtomicAtlas atlas(2);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(0), &mid));
  ASSERT_NE(atlas.MapAndDissociate(mid), nullptr);
  ASSERT_EQ(atlas.MapAndDissociate(mid), nullptr);
  std::uint16_t first = 0;
  std::uint16_t second = 0;
  ASSERT_TRUE(atlas.Associate(Context(1), &first));
  ASSERT_TRUE(atlas.Associate(Context(2), &second));
  EXPECT_NE(first, second);
  std::uint16_t third = 0;
  EXPECT_FALSE(atlas.Associate(Context(3), &third));
}

TEST(FlatAtomicAtlasTest, ReassociateReplacesTheContext) {
  FlatAtomicAtlas atlas(kAllMids);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(1), &mid));
  EXPECT_TRUE(atlas.Reassociate(mid, Context(2)));
  EXPECT_EQ(atlas.Map(mid), Context(2));
  EXPECT_EQ(atlas.MapAndDissociate(mid), Context(2));
}

TEST(FlatAtomicAtlasTest, ReassociateOfFreeMidOrNullContextChangesNothing) {
  FlatAtomicAtlas atlas(kAllMids);
  EXPECT_FALSE(atlas.Reassociate(3, Context(1)));
  EXPECT_EQ(atlas.Map(3), nullptr);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(1), &mid));
  EXPECT_FALSE(atlas.Reassociate(mid, nullptr));
  EXPECT_EQ(atlas.Map(mid), Context(1));
}

class FlatAtomicAtlasMaxTest : public testing::TestWithParam<std::uint32_t> {};

TEST_P(FlatAtomicAtlasMaxTest, ExhaustsAtExactlyMaxWithDistinctMidsBelowIt) {
  const std::uint32_t max = GetParam();
  FlatAtomicAtlas atlas(max);
  std::set<std::uint16_t> taken;
  for (std::uint32_t i = 0; i < max; ++i) {
    std::uint16_t mid = 0;
    ASSERT_TRUE(atlas.Associate(Context(i), &mid)) << "association " << i << " of " << max;
    ASSERT_LT(mid, max);
    ASSERT_TRUE(taken.insert(mid).second) << "MID " << mid << " handed out twice";
  }
  std::uint16_t mid = 0;
  EXPECT_FALSE(atlas.Associate(Context(max), &mid));
}

TEST_P(FlatAtomicAtlasMaxTest, AllMidsCanBeTakenAgainAfterFreeing) {
  const std::uint32_t max = GetParam();
  FlatAtomicAtlas atlas(max);
  std::vector<std::uint16_t> mids(max);
  for (std::uint32_t i = 0; i < max; ++i) ASSERT_TRUE(atlas.Associate(Context(i), &mids[i]));
  for (std::uint32_t i = 0; i < max; ++i) ASSERT_EQ(atlas.MapAndDissociate(mids[i]), Context(i));
  std::set<std::uint16_t> taken;
  for (std::uint32_t i = 0; i < max; ++i) {
    std::uint16_t mid = 0;
    ASSERT_TRUE(atlas.Associate(Context(i), &mid)) << "association " << i << " of " << max;
    ASSERT_TRUE(taken.insert(mid).second) << "MID " << mid << " handed out twice";
    ASSERT_EQ(atlas.Map(mid), Context(i));
  }
  std::uint16_t mid = 0;
  EXPECT_FALSE(atlas.Associate(Context(max), &mid));
}

INSTANTIATE_TEST_SUITE_P(Maxima, FlatAtomicAtlasMaxTest, testing::Values(1U, 50U, 65535U, 65536U));

TEST(FlatAtomicAtlasTest, ConcurrentThreadsNeverShareAMid) {
  constexpr std::size_t kThreads = 4;
  constexpr int kRounds = 20000;
  constexpr std::size_t kInFlight = 8;
  FlatAtomicAtlas atlas(kThreads * kInFlight);  // every MID is contended
  std::latch start(kThreads);
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint16_t mids[kInFlight];
      int& my_errors = errors[t];
      for (int round = 0; round < kRounds; ++round) {
        for (std::size_t k = 0; k < kInFlight; ++k) {
          if (!atlas.Associate(Context(t * kInFlight + k), &mids[k])) ++my_errors;
        }
        for (std::size_t k = 0; k < kInFlight; ++k) {
          void* mine = Context(t * kInFlight + k);
          if (atlas.Map(mids[k]) != mine) ++my_errors;
          if (atlas.MapAndDissociate(mids[k]) != mine) ++my_errors;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], 0) << "thread " << t;
}

TEST(FlatAtomicAtlasTest, BytesDoNotDependOnOccupancy) {
  FlatAtomicAtlas atlas(kAllMids);
  const std::size_t empty = atlas.bytes();
  EXPECT_GE(empty, std::size_t{FlatAtomicAtlas::kSlots} * 12);
  std::uint16_t mid = 0;
  ASSERT_TRUE(atlas.Associate(Context(0), &mid));
  EXPECT_EQ(atlas.bytes(), empty);
}

// ---------------------------------------------------------------------------------------
// ClassicMidAtlas

TEST(ClassicMidAtlasTest, LowFieldFitsTheStartCountAndTheRestIsSplitEvenly) {
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(50), (ClassicLayout{6, 5, 5}));
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(64), (ClassicLayout{6, 5, 5}));
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(65), (ClassicLayout{7, 5, 4}));
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(1), (ClassicLayout{0, 8, 8}));
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(2), (ClassicLayout{1, 8, 7}));
  EXPECT_EQ(ClassicMidAtlas::LayoutFor(65535), (ClassicLayout{16, 0, 0}));
}

TEST(ClassicMidAtlasTest, CreateRejectsZeroSizesAndStartAboveMax) {
  EXPECT_EQ(ClassicMidAtlas::Create(0, 1), nullptr);
  EXPECT_EQ(ClassicMidAtlas::Create(50, 0), nullptr);
  EXPECT_EQ(ClassicMidAtlas::Create(50, 51), nullptr);
  EXPECT_NE(ClassicMidAtlas::Create(50, 50), nullptr);
  EXPECT_EQ(MutexClassicMidAtlas::Create(50, 51), nullptr);
}

TEST(ClassicMidAtlasTest, CreationAllocatesOnlyTheFirstMap) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  ASSERT_NE(atlas, nullptr);
  EXPECT_EQ(atlas->map_count(), 1U);
  EXPECT_EQ(atlas->number_of_levels(), 1);
  EXPECT_LT(atlas->bytes(), 1024U);
}

TEST(ClassicMidAtlasTest, AssociatedContextMapsBack) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0xFFFF;
  ASSERT_EQ(atlas->Associate(Context(1), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(mid, 0);
  EXPECT_EQ(atlas->Map(mid), Context(1));
  EXPECT_EQ(atlas->mids_in_use(), 1);
}

TEST(ClassicMidAtlasTest, BadArgumentsAreRejectedWithoutTakingAMid) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0;
  void* misaligned = static_cast<char*>(Context(0)) + 1;
  EXPECT_EQ(atlas->Associate(nullptr, &mid), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Associate(misaligned, &mid), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Associate(Context(0), nullptr), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->mids_in_use(), 0);
  ASSERT_EQ(atlas->Associate(Context(0), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->MapAndDissociate(mid, nullptr), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Reassociate(mid, misaligned), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Reassociate(mid, nullptr), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Map(mid), Context(0));
}

TEST(ClassicMidAtlasTest, MapOfFreeMidReturnsNull) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  EXPECT_EQ(atlas->Map(0), nullptr);
  EXPECT_EQ(atlas->Map(49), nullptr);
  EXPECT_EQ(atlas->Map(65534), nullptr);
  EXPECT_EQ(atlas->Map(65535), nullptr);
}

TEST(ClassicMidAtlasTest, MidAboveTheRootIsNotAliasedOntoIt) {
  // Before growth the root is the 64-entry first map; MID 64 + 5 shares its low bits with
  // MID 5 and must not be read from MID 5's entry.
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  }
  ASSERT_EQ(mid, 5);
  EXPECT_EQ(atlas->Map(64 + 5), nullptr);
  EXPECT_EQ(atlas->Map(2048 + 5), nullptr);
  void* context = Context(99);
  EXPECT_EQ(atlas->MapAndDissociate(64 + 5, &context), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(atlas->Map(5), Context(5));
}

TEST(ClassicMidAtlasTest, DissociateReturnsContextAndFreesMid) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0;
  ASSERT_EQ(atlas->Associate(Context(7), &mid), ClassicStatus::kSuccess);
  void* context = nullptr;
  EXPECT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kSuccess);
  EXPECT_EQ(context, Context(7));
  EXPECT_EQ(atlas->Map(mid), nullptr);
  EXPECT_EQ(atlas->mids_in_use(), 0);
}

TEST(ClassicMidAtlasTest, DissociateOfFreeMidReturnsNull) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0;
  ASSERT_EQ(atlas->Associate(Context(7), &mid), ClassicStatus::kSuccess);
  void* context = nullptr;
  ASSERT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kSuccess);
  context = Context(99);
  EXPECT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(context, nullptr);
  context = Context(99);
  EXPECT_EQ(atlas->MapAndDissociate(40000, &context), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(atlas->mids_in_use(), 0) << "a failed dissociate must not change the count";
}

TEST(ClassicMidAtlasTest, FreedMidIsTheNextOneHandedOut) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  std::uint16_t mid = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  }
  void* context = nullptr;
  ASSERT_EQ(atlas->MapAndDissociate(3, &context), ClassicStatus::kSuccess);
  ASSERT_EQ(atlas->Associate(Context(20), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(mid, 3);
}

TEST(ClassicMidAtlasTest, ReassociateReplacesTheContextOnlyOfAMidInUse) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  EXPECT_EQ(atlas->Reassociate(3, Context(1)), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(atlas->Map(3), nullptr);
  std::uint16_t mid = 0;
  ASSERT_EQ(atlas->Associate(Context(1), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->Reassociate(mid, Context(2)), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->Map(mid), Context(2));
  void* context = nullptr;
  EXPECT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kSuccess);
  EXPECT_EQ(context, Context(2));
}

TEST(ClassicMidAtlasTest, GrowthAddsALevelExactlyAtEachBoundary) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);  // fields 6 / 5 / 5
  std::uint16_t mid = 0;
  std::size_t i = 0;
  for (; i < 64; ++i) ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->number_of_levels(), 1);
  EXPECT_EQ(atlas->map_count(), 1U);
  ASSERT_EQ(atlas->Associate(Context(i++), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(mid, 64);
  EXPECT_EQ(atlas->number_of_levels(), 2);
  EXPECT_EQ(atlas->map_count(), 3U);  // level-2 root and a second level-1 map
  for (; i < 2048; ++i) ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->number_of_levels(), 2);
  EXPECT_EQ(atlas->map_count(), 33U);
  ASSERT_EQ(atlas->Associate(Context(i++), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(mid, 2048);
  EXPECT_EQ(atlas->number_of_levels(), 3);
  EXPECT_EQ(atlas->map_count(), 36U);  // level-3 root, a second level-2 map, a level-1 map
  for (std::size_t k = 0; k < i; ++k) {
    ASSERT_EQ(atlas->Map(static_cast<std::uint16_t>(k)), Context(k)) << "MID " << k;
  }
}

// (MidsAllocatedAtStart, MaximumNumberOfMids)
class ClassicGrowthTest
    : public testing::TestWithParam<std::tuple<std::uint16_t, std::uint16_t>> {};

TEST_P(ClassicGrowthTest, ExhaustsAtExactlyMaxWithDistinctMidsBelowIt) {
  const auto [start, max] = GetParam();
  auto atlas = ClassicMidAtlas::Create(max, start);
  ASSERT_NE(atlas, nullptr);
  std::vector<std::uint16_t> mids(max);
  std::vector<bool> taken(max, false);
  for (std::size_t i = 0; i < max; ++i) {
    ASSERT_EQ(atlas->Associate(Context(i), &mids[i]), ClassicStatus::kSuccess)
        << "association " << i << " of " << max;
    ASSERT_LT(mids[i], max);
    ASSERT_FALSE(taken[mids[i]]) << "MID " << mids[i] << " handed out twice";
    taken[mids[i]] = true;
  }
  std::uint16_t mid = 0;
  EXPECT_EQ(atlas->Associate(Context(max), &mid), ClassicStatus::kUnsuccessful);
  EXPECT_EQ(atlas->mids_in_use(), max);
  for (std::size_t i = 0; i < max; ++i) ASSERT_EQ(atlas->Map(mids[i]), Context(i));
}

TEST_P(ClassicGrowthTest, AllMidsCanBeTakenAgainAfterFreeingWithoutNewMaps) {
  const auto [start, max] = GetParam();
  auto atlas = ClassicMidAtlas::Create(max, start);
  ASSERT_NE(atlas, nullptr);
  std::vector<std::uint16_t> mids(max);
  for (std::size_t i = 0; i < max; ++i) {
    ASSERT_EQ(atlas->Associate(Context(i), &mids[i]), ClassicStatus::kSuccess);
  }
  const std::size_t peak_maps = atlas->map_count();
  const std::size_t peak_bytes = atlas->bytes();
  for (std::size_t i = 0; i < max; ++i) {
    void* context = nullptr;
    ASSERT_EQ(atlas->MapAndDissociate(mids[i], &context), ClassicStatus::kSuccess);
    ASSERT_EQ(context, Context(i));
    ASSERT_EQ(atlas->Map(mids[i]), nullptr);
  }
  EXPECT_EQ(atlas->mids_in_use(), 0);
  EXPECT_EQ(atlas->bytes(), peak_bytes) << "the original never frees a map before destruction";
  std::vector<bool> taken(max, false);
  for (std::size_t i = 0; i < max; ++i) {
    std::uint16_t mid = 0;
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess) << "association " << i;
    ASSERT_LT(mid, max);
    ASSERT_FALSE(taken[mid]) << "MID " << mid << " handed out twice";
    taken[mid] = true;
  }
  std::uint16_t mid = 0;
  EXPECT_EQ(atlas->Associate(Context(max), &mid), ClassicStatus::kUnsuccessful);
  EXPECT_EQ(atlas->map_count(), peak_maps);
}

TEST_P(ClassicGrowthTest, IterateAndRemoveHandsOutEveryContextOnce) {
  const auto [start, max] = GetParam();
  auto atlas = ClassicMidAtlas::Create(max, start);
  ASSERT_NE(atlas, nullptr);
  for (std::size_t i = 0; i < max; ++i) {
    std::uint16_t mid = 0;
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  }
  std::set<void*> seen;
  const std::size_t removed = atlas->IterateAndRemove([&seen](void* context) {
    EXPECT_TRUE(seen.insert(context).second) << "context handed out twice";
  });
  EXPECT_EQ(removed, max);
  EXPECT_EQ(seen.size(), max);
  EXPECT_EQ(atlas->mids_in_use(), 0);
  std::uint16_t mid = 0;
  EXPECT_EQ(atlas->Associate(Context(0), &mid), ClassicStatus::kSuccess);
}

INSTANTIATE_TEST_SUITE_P(
    StartAndMax, ClassicGrowthTest,
    testing::Values(std::make_tuple(std::uint16_t{1}, std::uint16_t{1}),
                    std::make_tuple(std::uint16_t{1}, std::uint16_t{50}),
                    std::make_tuple(std::uint16_t{1}, std::uint16_t{65535}),
                    std::make_tuple(std::uint16_t{50}, std::uint16_t{50}),
                    std::make_tuple(std::uint16_t{50}, std::uint16_t{65535}),
                    std::make_tuple(std::uint16_t{64}, std::uint16_t{65535}),
                    std::make_tuple(std::uint16_t{65}, std::uint16_t{65535}),
                    std::make_tuple(std::uint16_t{50}, std::uint16_t{1000})),
    [](const testing::TestParamInfo<ClassicGrowthTest::ParamType>& param_info) {
      return "start" + std::to_string(std::get<0>(param_info.param)) + "_max" +
             std::to_string(std::get<1>(param_info.param));
    });

TEST(ClassicMidAtlasTest, DestroyHandsEveryContextToTheDestructor) {
  auto atlas = ClassicMidAtlas::Create(kAllMids, 50);
  for (std::size_t i = 0; i < 3000; ++i) {
    std::uint16_t mid = 0;
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  }
  void* context = nullptr;
  ASSERT_EQ(atlas->MapAndDissociate(100, &context), ClassicStatus::kSuccess);
  std::set<void*> destroyed;
  ClassicMidAtlas::Destroy(std::move(atlas), [&](void* c) { destroyed.insert(c); });
  EXPECT_EQ(destroyed.size(), 2999U);
  EXPECT_EQ(destroyed.count(Context(100)), 0U);
}

// ---------------------------------------------------------------------------------------
// MutexClassicMidAtlas

TEST(MutexClassicMidAtlasTest, ForwardsEveryOperation) {
  auto atlas = MutexClassicMidAtlas::Create(kAllMids, 50);
  ASSERT_NE(atlas, nullptr);
  std::uint16_t mid = 0;
  ASSERT_EQ(atlas->Associate(Context(1), &mid), ClassicStatus::kSuccess);
  EXPECT_EQ(atlas->Map(mid), Context(1));
  EXPECT_EQ(atlas->Reassociate(mid, Context(2)), ClassicStatus::kSuccess);
  void* context = nullptr;
  EXPECT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kSuccess);
  EXPECT_EQ(context, Context(2));
  EXPECT_EQ(atlas->MapAndDissociate(mid, &context), ClassicStatus::kInvalidParameter);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(atlas->mids_in_use(), 0);
  EXPECT_GT(atlas->bytes(), 0U);
}

TEST(MutexClassicMidAtlasTest, IterateAndRemoveCallbackMayUseTheAtlas) {
  auto atlas = MutexClassicMidAtlas::Create(kAllMids, 50);
  for (std::size_t i = 0; i < 100; ++i) {
    std::uint16_t mid = 0;
    ASSERT_EQ(atlas->Associate(Context(i), &mid), ClassicStatus::kSuccess);
  }
  std::size_t reassociated = 0;
  const std::size_t removed = atlas->IterateAndRemove([&](void* context) {
    std::uint16_t mid = 0;
    if (atlas->Associate(context, &mid) == ClassicStatus::kSuccess) ++reassociated;
  });
  EXPECT_EQ(removed, 100U);
  EXPECT_EQ(reassociated, 100U);
  EXPECT_EQ(atlas->mids_in_use(), 100);
}

TEST(MutexClassicMidAtlasTest, ConcurrentThreadsNeverShareAMid) {
  constexpr std::size_t kThreads = 4;
  constexpr int kRounds = 2000;
  constexpr std::size_t kInFlight = 40;  // 160 in flight: the atlas grows past its first map
  auto atlas = MutexClassicMidAtlas::Create(kAllMids, 50);
  std::latch start(kThreads);
  std::vector<int> errors(kThreads, 0);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::uint16_t mids[kInFlight];
      int& my_errors = errors[t];
      for (int round = 0; round < kRounds; ++round) {
        for (std::size_t k = 0; k < kInFlight; ++k) {
          if (atlas->Associate(Context(t * kInFlight + k), &mids[k]) != ClassicStatus::kSuccess) {
            ++my_errors;
          }
        }
        for (std::size_t k = 0; k < kInFlight; ++k) {
          void* mine = Context(t * kInFlight + k);
          void* context = nullptr;
          if (atlas->Map(mids[k]) != mine) ++my_errors;
          if (atlas->MapAndDissociate(mids[k], &context) != ClassicStatus::kSuccess ||
              context != mine) {
            ++my_errors;
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], 0) << "thread " << t;
  EXPECT_EQ(atlas->mids_in_use(), 0);
}

}  // namespace
}  // namespace midatlas::reference
