// Tests for the CYCLIC and RANDOM index pickers (src/atlas/index_picker.h) and the ChaCha20
// generator behind RANDOM (src/atlas/csprng.h): the RFC 8439 vectors, the unbiased bounded
// draw, per-thread and per-process streams; the exact idr_alloc_cyclic sequence and its
// recurrence distance; excluded indexes; failure exactly at full occupancy; chi-square
// uniformity of RANDOM at several occupancies (and a biased sampler the same test rejects);
// exclusive ownership under concurrent claims and releases.
#include "atlas/index_picker.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "atlas/csprng.h"

namespace midatlas::internal {
namespace {

using Policy = IndexPicker::Policy;
constexpr std::uint32_t kNone = IndexPicker::kNone;

std::unique_ptr<IndexPicker> MakePicker(Policy policy, std::uint32_t space,
                                        const std::vector<std::uint32_t>& excluded = {}) {
  return IndexPicker::Create(policy, space, excluded.data(),
                             static_cast<std::uint32_t>(excluded.size()));
}

std::string PolicyName(Policy policy) {
  return policy == Policy::kCyclic ? "Cyclic" : "Random";
}

// ----------------------------------------------------------------------------------------
// ChaCha20 (RFC 8439) and the generator built on it.

TEST(ChaCha20, QuarterRoundMatchesRfc8439Section211) {
  std::uint32_t a = 0x11111111U;
  std::uint32_t b = 0x01020304U;
  std::uint32_t c = 0x9b8d6f43U;
  std::uint32_t d = 0x01234567U;
  ChaCha20QuarterRound(a, b, c, d);
  EXPECT_EQ(a, 0xea2a92f4U);
  EXPECT_EQ(b, 0xcb1cf8ceU);
  EXPECT_EQ(c, 0x4581472eU);
  EXPECT_EQ(d, 0x5881c4bbU);
}

TEST(ChaCha20, BlockMatchesRfc8439Section232) {
  // Key 00:01:02:...:1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, block count 1.
  const std::array<std::uint32_t, 8> key = {0x03020100U, 0x07060504U, 0x0b0a0908U, 0x0f0e0d0cU,
                                            0x13121110U, 0x17161514U, 0x1b1a1918U, 0x1f1e1d1cU};
  const std::array<std::uint32_t, 3> nonce = {0x09000000U, 0x4a000000U, 0x00000000U};
  const std::array<std::uint32_t, 16> expected = {
      0xe4e7f110U, 0x15593bd1U, 0x1fdd0f50U, 0xc47120a3U, 0xc7f4d1c7U, 0x0368c033U,
      0x9aaa2204U, 0x4e6cd4c3U, 0x466482d2U, 0x09aa9f07U, 0x05d7c214U, 0xa2028bd9U,
      0xd19c12b5U, 0xb94e16deU, 0xe883d0cbU, 0x4e3c50a2U};
  EXPECT_EQ(ChaCha20Block(key, 1, nonce), expected);
}

TEST(ChaCha20, GeneratorReadsTheKeystreamOfRfc8439AppendixA1) {
  // Test vectors #1 and #2 of A.1: the all-zero key and nonce, blocks 0 and 1, as words.
  const std::array<std::uint32_t, 32> expected = {
      0xade0b876U, 0x903df1a0U, 0xe56a5d40U, 0x28bd8653U, 0xb819d2bdU, 0x1aed8da0U,
      0xccef36a8U, 0xc70d778bU, 0x7c5941daU, 0x8d485751U, 0x3fe02477U, 0x374ad8b8U,
      0xf4b8436aU, 0x1ca11815U, 0x69b687c3U, 0x8665eeb2U, 0xbee7079fU, 0x7a385155U,
      0x7c97ba98U, 0x0d082d73U, 0xa0290fcbU, 0x6965e348U, 0x3e53c612U, 0xed7aee32U,
      0x7621b729U, 0x434ee69cU, 0xb03371d5U, 0xd539d874U, 0x281fed31U, 0x45fb0a51U,
      0x1f0ae1acU, 0x6f4d794bU};
  ChaCha20Random random;
  EXPECT_FALSE(random.keyed());
  random.Key({}, {});
  EXPECT_TRUE(random.keyed());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(random.Next32(), expected[i]) << "word " << i;
  }
}

TEST(ChaCha20, SameTestSeedGivesTheSameStreamAndOthersDiffer) {
  ChaCha20Random first;
  ChaCha20Random again;
  ChaCha20Random other;
  first.KeyForTesting(42);
  again.KeyForTesting(42);
  other.KeyForTesting(43);
  std::vector<std::uint32_t> a;
  std::vector<std::uint32_t> b;
  std::vector<std::uint32_t> c;
  for (int i = 0; i < 40; ++i) {
    a.push_back(first.Next32());
    b.push_back(again.Next32());
    c.push_back(other.Next32());
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(ChaCha20, BelowStaysInRangeAndReachesEveryValueOfSmallBounds) {
  ChaCha20Random random;
  random.KeyForTesting(7);
  for (std::uint32_t bound : {1U, 2U, 3U, 7U, 64U, 1000U}) {
    std::vector<bool> seen(bound, false);
    for (std::uint32_t i = 0; i < bound * 40; ++i) {
      const std::uint32_t value = random.Below(bound);
      ASSERT_LT(value, bound);
      seen[value] = true;
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), false), 0) << "bound " << bound;
  }
  for (std::uint32_t bound : {65536U, 0x80000001U, 0xffffffffU}) {
    for (int i = 0; i < 1000; ++i) ASSERT_LT(random.Below(bound), bound);
  }
}

TEST(ChaCha20, BelowHasNoModuloBias) {
  // bound = 3 * 2^30: a plain draw % bound gives results below 2^30 two draws of the 2^32 and
  // the others one, so a third of the range would get half the draws. Unbiased, each third of
  // [0, bound) gets a third.
  ChaCha20Random random;
  random.KeyForTesting(11);
  constexpr std::uint32_t kBound = 3U << 30;
  constexpr int kDraws = 30000;
  std::array<int, 3> thirds{};
  for (int i = 0; i < kDraws; ++i) ++thirds[random.Below(kBound) >> 30];
  for (int third : thirds) {
    // 10000 expected per third, standard deviation about 82: 6 deviations either side.
    EXPECT_NEAR(third, kDraws / 3, 500);
  }
}

TEST(ThreadRandom, EachThreadDrawsItsOwnStream) {
  std::array<std::uint32_t, 8> mine{};
  std::array<std::uint32_t, 8> theirs{};
  for (auto& draw : mine) draw = ThreadRandom().Next32();
  std::thread other([&theirs] {
    for (auto& draw : theirs) draw = ThreadRandom().Next32();
  });
  other.join();
  EXPECT_NE(mine, theirs);  // equal by chance with probability 2^-256
}

TEST(ThreadRandom, AForkedChildDoesNotRepeatItsParentsStream) {
  static_cast<void>(ThreadRandom().Next32());  // this thread's generator is keyed now
  std::array<int, 2> fds{};
  ASSERT_EQ(pipe(fds.data()), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  std::array<std::uint32_t, 8> draws{};
  if (child == 0) {
    // Without the fork handler, the child would continue the parent's stream here.
    for (auto& draw : draws) draw = ThreadRandom().Next32();
    const ssize_t written = write(fds[1], draws.data(), sizeof(draws));
    _exit(written == static_cast<ssize_t>(sizeof(draws)) ? 0 : 1);
  }
  close(fds[1]);
  for (auto& draw : draws) draw = ThreadRandom().Next32();
  std::array<std::uint32_t, 8> child_draws{};
  std::size_t got = 0;
  while (got < sizeof(child_draws)) {
    const ssize_t n = read(fds[0], reinterpret_cast<char*>(child_draws.data()) + got,
                           sizeof(child_draws) - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, sizeof(child_draws));
  EXPECT_NE(draws, child_draws);
}

// ----------------------------------------------------------------------------------------
// Creation.

TEST(IndexPicker, CreateRejectsBadArguments) {
  EXPECT_EQ(MakePicker(Policy::kCyclic, 0), nullptr);
  EXPECT_EQ(MakePicker(Policy::kRandom, 65537), nullptr);
  EXPECT_EQ(MakePicker(Policy::kCyclic, 10, {10}), nullptr);    // outside the space
  EXPECT_EQ(MakePicker(Policy::kCyclic, 10, {4, 2}), nullptr);   // not sorted
  EXPECT_EQ(MakePicker(Policy::kRandom, 10, {2, 2}), nullptr);   // not distinct
  EXPECT_EQ(IndexPicker::Create(Policy::kCyclic, 10, nullptr, 1), nullptr);
  EXPECT_NE(MakePicker(Policy::kCyclic, 1), nullptr);
  EXPECT_NE(MakePicker(Policy::kRandom, 65536, {0, 65535}), nullptr);
}

TEST(IndexPicker, StartsWithEveryIndexFreeButTheExcludedOnes) {
  for (Policy policy : {Policy::kCyclic, Policy::kRandom}) {
    SCOPED_TRACE(PolicyName(policy));
    const std::vector<std::uint32_t> excluded = {0, 63, 64, 129, 199};
    auto picker = MakePicker(policy, 200, excluded);
    ASSERT_NE(picker, nullptr);
    EXPECT_EQ(picker->space(), 200U);
    EXPECT_EQ(picker->capacity(), 195U);
    for (std::uint32_t i = 0; i < 200; ++i) {
      const bool is_excluded = std::find(excluded.begin(), excluded.end(), i) != excluded.end();
      EXPECT_EQ(picker->IsClaimed(i), is_excluded) << "index " << i;
    }
  }
}

TEST(IndexPicker, BytesCountsOneBitPerIndex) {
  auto small = MakePicker(Policy::kCyclic, 64);
  auto full = MakePicker(Policy::kRandom, 65536);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(full, nullptr);
  EXPECT_EQ(full->bytes() - small->bytes(), (65536U - 64U) / 8);
  EXPECT_LE(full->bytes(), 65536U / 8 + 256);
}

// ----------------------------------------------------------------------------------------
// CYCLIC.

TEST(IndexPickerCyclic, HandsOutTheFirstFreeIndexAtOrAfterTheCursorAndWraps) {
  auto picker = MakePicker(Policy::kCyclic, 10, {3});
  ASSERT_NE(picker, nullptr);
  EXPECT_EQ(picker->Claim(), 0U);
  picker->Release(0);
  EXPECT_EQ(picker->Claim(), 1U);  // not the freed 0: the cursor moved past it
  std::vector<std::uint32_t> got;
  for (int i = 0; i < 3; ++i) got.push_back(picker->Claim());
  EXPECT_EQ(got, (std::vector<std::uint32_t>{2, 4, 5}));  // 3 is excluded
  picker->Release(1);
  EXPECT_EQ(picker->Claim(), 6U);
  EXPECT_EQ(picker->Claim(), 7U);
  EXPECT_EQ(picker->Claim(), 8U);
  EXPECT_EQ(picker->Claim(), 9U);
  // Wrapped: 0 and 1 are free again, 0 first.
  EXPECT_EQ(picker->Claim(), 0U);
  picker->Release(8);
  EXPECT_EQ(picker->Claim(), 1U);
  // The cursor is at 2; the next free index is 8, past 2, 4, 5, 6, 7 (held) and 3 (excluded).
  EXPECT_EQ(picker->Claim(), 8U);
  EXPECT_EQ(picker->Claim(), kNone);
  picker->Release(5);
  picker->Release(2);
  EXPECT_EQ(picker->Claim(), 2U);  // from the cursor at 9: 9, 0 and 1 are held, then 2
  EXPECT_EQ(picker->Claim(), 5U);
}

TEST(IndexPickerCyclic, AValueRecursOnlyAfterEveryOtherFreeValueCameBy) {
  // The contract's case: 65536 values, 50 held, the oldest released before each new claim.
  constexpr std::uint32_t kSpace = 65536;
  constexpr std::size_t kHeld = 50;
  auto picker = MakePicker(Policy::kCyclic, kSpace);
  ASSERT_NE(picker, nullptr);
  std::deque<std::uint32_t> held;
  std::vector<std::uint64_t> last_seen(kSpace, ~std::uint64_t{0});
  std::uint64_t min_distance = ~std::uint64_t{0};
  std::uint64_t recurrences = 0;
  for (std::uint64_t claim = 0; claim < 3 * std::uint64_t{kSpace}; ++claim) {
    if (held.size() == kHeld) {
      picker->Release(held.front());
      held.pop_front();
    }
    const std::uint32_t index = picker->Claim();
    ASSERT_NE(index, kNone);
    if (last_seen[index] != ~std::uint64_t{0}) {
      min_distance = std::min(min_distance, claim - last_seen[index]);
      ++recurrences;
    }
    last_seen[index] = claim;
    held.push_back(index);
  }
  EXPECT_GT(recurrences, std::uint64_t{kSpace});
  EXPECT_GE(min_distance, kSpace - kHeld);
}

TEST(IndexPickerCyclic, RecurrenceDistanceHoldsWithRandomReleasesAndExcludedValues) {
  // Released in random order, and with excluded values, a value still comes back only after
  // the cursor went all the way round: at least every other value that was neither held nor
  // excluded came by in between.
  constexpr std::uint32_t kSpace = 4096;
  constexpr std::size_t kHeld = 50;
  const std::vector<std::uint32_t> excluded = {0, 1, 100, 2047, 2048, 4095};
  auto picker = MakePicker(Policy::kCyclic, kSpace, excluded);
  ASSERT_NE(picker, nullptr);
  std::mt19937_64 order(2024);
  std::vector<std::uint32_t> held;
  std::vector<std::uint64_t> last_seen(kSpace, ~std::uint64_t{0});
  std::uint64_t min_distance = ~std::uint64_t{0};
  for (std::uint64_t claim = 0; claim < 10 * std::uint64_t{kSpace}; ++claim) {
    if (held.size() == kHeld) {
      const std::size_t victim = std::uniform_int_distribution<std::size_t>(0, kHeld - 1)(order);
      picker->Release(held[victim]);
      held[victim] = held.back();
      held.pop_back();
    }
    const std::uint32_t index = picker->Claim();
    ASSERT_NE(index, kNone);
    ASSERT_EQ(std::find(excluded.begin(), excluded.end(), index), excluded.end());
    if (last_seen[index] != ~std::uint64_t{0}) {
      min_distance = std::min(min_distance, claim - last_seen[index]);
    }
    last_seen[index] = claim;
    held.push_back(index);
  }
  EXPECT_GE(min_distance, kSpace - excluded.size() - kHeld);
}

// ----------------------------------------------------------------------------------------
// Both policies: excluded values, exhaustion.

class IndexPickerBothPolicies : public testing::TestWithParam<Policy> {};

TEST_P(IndexPickerBothPolicies, NeverHandsOutAnExcludedIndexEvenWhenFull) {
  const std::vector<std::uint32_t> excluded = {0, 5, 63, 64, 65, 127, 128, 300, 4095};
  auto picker = MakePicker(GetParam(), 4096, excluded);
  ASSERT_NE(picker, nullptr);
  picker->SeedForTesting(5);
  std::vector<bool> claimed(4096, false);
  for (std::uint32_t i = 0; i < picker->capacity(); ++i) {
    const std::uint32_t index = picker->Claim();
    ASSERT_LT(index, 4096U);
    ASSERT_FALSE(claimed[index]) << "index " << index << " handed out twice";
    claimed[index] = true;
  }
  for (std::uint32_t e : excluded) EXPECT_FALSE(claimed[e]) << "excluded " << e;
  EXPECT_EQ(picker->Claim(), kNone);
  // Free and claim again at full occupancy, many times: only the freed index comes back.
  std::mt19937_64 order(9);
  for (int round = 0; round < 2000; ++round) {
    std::uint32_t victim = 0;
    do {
      victim = std::uniform_int_distribution<std::uint32_t>(0, 4095)(order);
    } while (!claimed[victim]);
    picker->Release(victim);
    ASSERT_EQ(picker->Claim(), victim);
    ASSERT_EQ(picker->Claim(), kNone);
  }
}

TEST_P(IndexPickerBothPolicies, ClaimFailsExactlyWhenEveryIndexIsClaimed) {
  for (std::uint32_t space : {1U, 2U, 63U, 64U, 65U, 130U, 1000U}) {
    SCOPED_TRACE(testing::Message() << "space " << space);
    auto picker = MakePicker(GetParam(), space);
    ASSERT_NE(picker, nullptr);
    picker->SeedForTesting(space);
    std::vector<bool> claimed(space, false);
    for (std::uint32_t i = 0; i < space; ++i) {
      const std::uint32_t index = picker->Claim();
      ASSERT_LT(index, space) << "failed with " << space - i << " free";
      ASSERT_FALSE(claimed[index]);
      claimed[index] = true;
      EXPECT_TRUE(picker->IsClaimed(index));
    }
    EXPECT_EQ(picker->Claim(), kNone);
    EXPECT_EQ(picker->Claim(), kNone);
    for (std::uint32_t i = 0; i < space; ++i) picker->Release(i);
    for (std::uint32_t i = 0; i < space; ++i) EXPECT_FALSE(picker->IsClaimed(i));
    EXPECT_NE(picker->Claim(), kNone);
  }
}

TEST_P(IndexPickerBothPolicies, AllExcludedButOneLeavesExactlyThatOne) {
  std::vector<std::uint32_t> excluded;
  for (std::uint32_t i = 0; i < 300; ++i) {
    if (i != 217) excluded.push_back(i);
  }
  auto picker = MakePicker(GetParam(), 300, excluded);
  ASSERT_NE(picker, nullptr);
  EXPECT_EQ(picker->capacity(), 1U);
  for (int round = 0; round < 10; ++round) {
    ASSERT_EQ(picker->Claim(), 217U);
    ASSERT_EQ(picker->Claim(), kNone);
    picker->Release(217);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, IndexPickerBothPolicies,
                         testing::Values(Policy::kCyclic, Policy::kRandom),
                         [](const testing::TestParamInfo<Policy>& param_info) {
                           return PolicyName(param_info.param);
                         });

// ----------------------------------------------------------------------------------------
// RANDOM: reproducible for tests, uniform over the free indexes.

TEST(IndexPickerRandom, SeedForTestingMakesTheSequenceReproducible) {
  auto first = MakePicker(Policy::kRandom, 65536);
  auto second = MakePicker(Policy::kRandom, 65536);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  first->SeedForTesting(77);
  second->SeedForTesting(77);
  std::vector<std::uint32_t> a;
  std::vector<std::uint32_t> b;
  for (int i = 0; i < 100; ++i) a.push_back(first->Claim());
  for (int i = 0; i < 100; ++i) b.push_back(second->Claim());
  EXPECT_EQ(a, b);
  // Reseeding restarts the stream (the first 100 are held now, so compare claim by claim
  // after releasing them).
  for (std::uint32_t index : a) first->Release(index);
  first->SeedForTesting(77);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(first->Claim(), a[static_cast<std::size_t>(i)]);
}

TEST(IndexPickerRandom, UnseededPickersDoNotRepeatEachOther) {
  auto first = MakePicker(Policy::kRandom, 65536);
  auto second = MakePicker(Policy::kRandom, 65536);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  std::vector<std::uint32_t> a;
  std::vector<std::uint32_t> b;
  for (int i = 0; i < 16; ++i) a.push_back(first->Claim());
  for (int i = 0; i < 16; ++i) b.push_back(second->Claim());
  EXPECT_NE(a, b);  // one thread's stream goes on: equal with probability 2^-256
}

// The chi-square statistic of `counts` against equal expected counts.
double ChiSquare(const std::vector<std::uint64_t>& counts) {
  double total = 0;
  for (std::uint64_t count : counts) total += static_cast<double>(count);
  const double expected = total / static_cast<double>(counts.size());
  double statistic = 0;
  for (std::uint64_t count : counts) {
    const double deviation = static_cast<double>(count) - expected;
    statistic += deviation * deviation / expected;
  }
  return statistic;
}

// The chi-square value that `degrees` degrees of freedom exceed with probability 1e-4, by the
// Wilson-Hilferty approximation: (X / k)^(1/3) is close to normal with mean 1 - 2 / (9k) and
// variance 2 / (9k).
double ChiSquareCriticalAtOneIn10000(double degrees) {
  constexpr double kZ = 3.7190164854556804;  // the standard normal quantile at 1 - 1e-4
  const double variance = 2.0 / (9.0 * degrees);
  return degrees * std::pow(1.0 - variance + kZ * std::sqrt(variance), 3);
}

TEST(ChiSquareCritical, MatchesTabulatedQuantiles) {
  // Exact quantiles at p = 1e-4 (the regularized upper incomplete gamma function inverted):
  // 40 degrees 82.0623, 100 degrees 161.319, 1000 degrees 1174.933.
  EXPECT_NEAR(ChiSquareCriticalAtOneIn10000(40), 82.0623, 0.3);
  EXPECT_NEAR(ChiSquareCriticalAtOneIn10000(100), 161.319, 0.2);
  EXPECT_NEAR(ChiSquareCriticalAtOneIn10000(1000), 1174.933, 0.1);
}

struct Occupancy {
  std::uint32_t space;
  std::uint32_t percent_held;
  std::uint32_t draws_per_free_index;
};

// A RANDOM picker with a fixed set of held indexes (and the SMB1-style exclusions 0 and
// space - 1), seeded so that each run is the same.
class UniformityTest : public testing::TestWithParam<Occupancy> {
 protected:
  void SetUp() override {
    const Occupancy& occupancy = GetParam();
    picker_ = MakePicker(Policy::kRandom, occupancy.space, {0, occupancy.space - 1});
    ASSERT_NE(picker_, nullptr);
    picker_->SeedForTesting(0x5eed0000U + occupancy.percent_held);
    unavailable_.assign(occupancy.space, false);
    unavailable_[0] = true;
    unavailable_[occupancy.space - 1] = true;
    const std::uint32_t held = picker_->capacity() * occupancy.percent_held / 100;
    for (std::uint32_t i = 0; i < held; ++i) {
      const std::uint32_t index = picker_->Claim();
      ASSERT_LT(index, occupancy.space);
      ASSERT_FALSE(unavailable_[index]);
      unavailable_[index] = true;
    }
    for (std::uint32_t i = 0; i < occupancy.space; ++i) {
      if (!unavailable_[i]) free_.push_back(i);
    }
    draws_ = std::uint64_t{occupancy.draws_per_free_index} * free_.size();
  }

  // Counts per free index (in free_ order) of `sample` called draws_ times.
  template <typename Sample>
  std::vector<std::uint64_t> Count(Sample sample) {
    std::vector<std::uint64_t> by_index(GetParam().space, 0);
    for (std::uint64_t i = 0; i < draws_; ++i) {
      const std::uint32_t index = sample();
      if (index >= GetParam().space || unavailable_[index]) {
        ADD_FAILURE() << "drew " << index << ", which is not free";
        return {};
      }
      ++by_index[index];
    }
    std::vector<std::uint64_t> counts;
    counts.reserve(free_.size());
    for (std::uint32_t index : free_) counts.push_back(by_index[index]);
    return counts;
  }

  std::unique_ptr<IndexPicker> picker_;
  std::vector<bool> unavailable_;  // held or excluded
  std::vector<std::uint32_t> free_;
  std::uint64_t draws_ = 0;
};

TEST_P(UniformityTest, RandomClaimsAreUniformOverTheFreeIndexes) {
  const std::vector<std::uint64_t> counts = Count([this] {
    const std::uint32_t index = picker_->Claim();
    if (index != kNone) picker_->Release(index);
    return index;
  });
  ASSERT_EQ(counts.size(), free_.size());
  const double degrees = static_cast<double>(free_.size() - 1);
  const double statistic = ChiSquare(counts);
  RecordProperty("chi_square", std::to_string(statistic));
  EXPECT_LT(statistic, ChiSquareCriticalAtOneIn10000(degrees))
      << free_.size() << " free indexes, " << draws_ << " draws";
  EXPECT_EQ(std::count(counts.begin(), counts.end(), 0U), 0) << "a free index never came";
}

TEST_P(UniformityTest, TheSameTestRejectsProbingForwardFromARandomStart) {
  // A tempting shortcut: draw a start uniformly and take the first free index at or after it.
  // Indexes right after a run of held ones come more often; the statistic must see it.
  const std::uint32_t space = GetParam().space;
  std::mt19937_64 starts(31);
  const std::vector<std::uint64_t> counts = Count([&] {
    std::uint32_t index = std::uniform_int_distribution<std::uint32_t>(0, space - 1)(starts);
    while (unavailable_[index]) index = index + 1 == space ? 0 : index + 1;
    return index;
  });
  ASSERT_EQ(counts.size(), free_.size());
  const double degrees = static_cast<double>(free_.size() - 1);
  EXPECT_GT(ChiSquare(counts), ChiSquareCriticalAtOneIn10000(degrees));
}

TEST_P(UniformityTest, TheSameTestRejectsASlightPreferenceForLowIndexes) {
  // A subtler bias: one draw in five is the lower of two uniform draws.
  std::mt19937_64 draws(37);
  std::uniform_int_distribution<std::size_t> pick(0, free_.size() - 1);
  std::uniform_int_distribution<int> one_in_five(0, 4);
  const std::vector<std::uint64_t> counts = Count([&] {
    std::size_t rank = pick(draws);
    if (one_in_five(draws) == 0) rank = std::min(rank, pick(draws));
    return free_[rank];
  });
  ASSERT_EQ(counts.size(), free_.size());
  const double degrees = static_cast<double>(free_.size() - 1);
  EXPECT_GT(ChiSquare(counts), ChiSquareCriticalAtOneIn10000(degrees));
}

INSTANTIATE_TEST_SUITE_P(
    Occupancies, UniformityTest,
    testing::Values(Occupancy{4096, 10, 40}, Occupancy{4096, 50, 40}, Occupancy{4096, 90, 100},
                    Occupancy{4096, 99, 400}, Occupancy{200, 50, 200},
                    Occupancy{65536, 90, 20}),
    [](const testing::TestParamInfo<Occupancy>& param_info) {
      return "Space" + std::to_string(param_info.param.space) + "Held" +
             std::to_string(param_info.param.percent_held) + "Percent";
    });

// ----------------------------------------------------------------------------------------
// Concurrency: exclusive ownership.

TEST_P(IndexPickerBothPolicies, ConcurrentClaimsAndReleasesNeverShareAnIndex) {
  // 4 threads, each holding up to 60 of 254 claimable indexes: contention on few words, near
  // full occupancy. An ownership array catches an index handed to two threads at once.
  constexpr std::uint32_t kSpace = 256;
  constexpr int kThreads = 4;
  constexpr std::size_t kHoldMax = 60;
  constexpr int kOperations = 20000;
  auto picker = MakePicker(GetParam(), kSpace, {0, kSpace - 1});
  ASSERT_NE(picker, nullptr);
  std::vector<std::atomic<int>> owner(kSpace);
  std::atomic<int> double_owners{0};
  std::atomic<int> excluded_returned{0};
  std::atomic<std::uint64_t> empty_passes{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 1; t <= kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 coin(static_cast<std::uint32_t>(t));
      std::vector<std::uint32_t> held;
      start.arrive_and_wait();
      for (int op = 0; op < kOperations; ++op) {
        const bool claim = held.empty() || (held.size() < kHoldMax && (coin() & 1U) != 0);
        if (claim) {
          // Fewer than the capacity are held at any time (4 * 60 < 254), so a free index
          // always exists: a kNone is a pass that raced (IP5), and the caller retries.
          std::uint32_t index = picker->Claim();
          while (index == kNone) {
            // relaxed: a statistic, read after the joins.
            empty_passes.fetch_add(1, std::memory_order_relaxed);
            index = picker->Claim();
          }
          if (index == 0 || index == kSpace - 1) {
            // relaxed: a count of failures, read after the joins.
            excluded_returned.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          // relaxed: the exchange's atomicity is what detects two owners.
          if (owner[index].exchange(t, std::memory_order_relaxed) != 0) {
            double_owners.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
          }
          held.push_back(index);
        } else {
          const std::size_t victim = coin() % held.size();
          const std::uint32_t index = held[victim];
          held[victim] = held.back();
          held.pop_back();
          // relaxed: as above; the picker's release (picker:P3) orders it before a reclaim.
          if (owner[index].exchange(0, std::memory_order_relaxed) != t) {
            double_owners.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
          }
          picker->Release(index);
        }
      }
      for (std::uint32_t index : held) {
        owner[index].store(0, std::memory_order_relaxed);  // relaxed: as above
        picker->Release(index);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(double_owners.load(std::memory_order_relaxed), 0) << "an index had two owners";
  EXPECT_EQ(excluded_returned.load(std::memory_order_relaxed), 0);
  for (std::uint32_t i = 1; i + 1 < kSpace; ++i) EXPECT_FALSE(picker->IsClaimed(i)) << i;
  EXPECT_TRUE(picker->IsClaimed(0));
  EXPECT_TRUE(picker->IsClaimed(kSpace - 1));
  RecordProperty("empty_passes", std::to_string(empty_passes.load(std::memory_order_relaxed)));
}

}  // namespace
}  // namespace midatlas::internal
