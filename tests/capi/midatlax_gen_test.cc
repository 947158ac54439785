// Generation bits through the extension C API (include/midatlas/midatlax_ex.h): the MID layout
// gen << (16 - G) | index, the generation advancing on every reuse of an index (skipping
// excluded values), stale values behaving as MIDs not in use for every operation, recurrence
// after 2^G reuses, and a multi-threaded stale-response race.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "midatlas/midatlax_ex.h"
#include "support/ex_atlas.h"

namespace {

using midatlas::testing::AtlasPtr;
using midatlas::testing::Ctx;

AtlasPtr Create(USHORT max, USHORT start, int bits, const std::vector<USHORT>& excluded = {}) {
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = max;
  p.MidsAllocatedAtStart = start;
  p.GenerationBits = static_cast<UCHAR>(bits);
  p.NumberOfExcludedMids = static_cast<USHORT>(excluded.size());
  p.ExcludedMids = excluded.data();
  return AtlasPtr(RxCreateMidAtlasEx(&p));
}

USHORT Associate(PRX_MID_ATLAS atlas, void* context) {
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas, context, 0, &mid), STATUS_SUCCESS);
  return mid;
}

void Dissociate(PRX_MID_ATLAS atlas, USHORT mid, void* expected) {
  void* out = nullptr;
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas, mid, &out), STATUS_SUCCESS) << mid;
  EXPECT_EQ(out, expected);
}

TEST(Generations, MaximumAtMostTheIndexSpace) {
  for (int bits = 1; bits <= 15; ++bits) {
    const std::uint32_t space = 1U << (16 - bits);
    const auto max = static_cast<USHORT>(space > 65535 ? 65535 : space);
    EXPECT_NE(Create(max, 1, bits), nullptr) << bits;
    if (space < 65535) {
      EXPECT_EQ(Create(static_cast<USHORT>(space + 1), 1, bits), nullptr);
    }
  }
  EXPECT_EQ(Create(1, 1, 16), nullptr);
  EXPECT_EQ(Create(1, 1, 255), nullptr);
}

TEST(Generations, AnIndexWhoseEveryGenerationIsExcludedIsNeverUsed) {
  // G = 1: index 0 is 0x0000 (generation 0) and 0x8000 (generation 1).
  EXPECT_EQ(Create(32768, 1, 1, {0x0000, 0x8000}), nullptr);  // 32767 indexes remain
  AtlasPtr atlas = Create(32767, 1, 1, {0x0000, 0x8000});
  ASSERT_NE(atlas, nullptr);
  const USHORT first = Associate(atlas.get(), Ctx(1));
  EXPECT_EQ(first, 1);
  // Only one generation excluded: the index is used, that value skipped.
  AtlasPtr half = Create(4, 4, 1, {0x0000});
  ASSERT_NE(half, nullptr);
  const USHORT a = Associate(half.get(), Ctx(1));
  EXPECT_EQ(a, 0x8000);  // index 0, generation 1: generation 0 is excluded
  Dissociate(half.get(), a, Ctx(1));
  const USHORT b = Associate(half.get(), Ctx(2));
  EXPECT_EQ(b, 0x8000);  // generation 0 skipped again: the value recurs at once
}

TEST(Generations, LayoutAndAdvance) {
  AtlasPtr atlas = Create(16, 16, 4);
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> values;
  for (int round = 0; round < 17; ++round) {
    const USHORT mid = Associate(atlas.get(), Ctx(round + 1));
    values.push_back(mid);
    EXPECT_EQ(mid & 0x0FFF, 0) << "index 0, most recently freed, is reused";
    EXPECT_EQ(mid >> 12, round % 16) << "generation advances on every reuse";
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(round + 1));
    Dissociate(atlas.get(), mid, Ctx(round + 1));
  }
  EXPECT_EQ(values[16], values[0]) << "recurs after 2^G reuses";
}

TEST(Generations, ExcludedGenerationsAreSkipped) {
  // G = 2, index 0: generations 0, 1, 3 (2 = 0x8000 is excluded), then 0 again.
  AtlasPtr atlas = Create(4, 4, 2, {0x8000});
  ASSERT_NE(atlas, nullptr);
  std::vector<USHORT> values;
  for (int round = 0; round < 4; ++round) {
    const USHORT mid = Associate(atlas.get(), Ctx(round + 1));
    values.push_back(mid);
    Dissociate(atlas.get(), mid, Ctx(round + 1));
  }
  EXPECT_EQ(values, (std::vector<USHORT>{0x0000, 0x4000, 0xC000, 0x0000}));
}

TEST(Generations, AStaleValueIsNotInUseForEveryOperation) {
  AtlasPtr atlas = Create(64, 8, 3);
  ASSERT_NE(atlas, nullptr);
  const USHORT old = Associate(atlas.get(), Ctx(1));
  Dissociate(atlas.get(), old, Ctx(1));
  const USHORT live = Associate(atlas.get(), Ctx(2));
  ASSERT_NE(live, old);
  ASSERT_EQ(live & 0x1FFF, old & 0x1FFF) << "the same index, another generation";
  EXPECT_EQ(RxMapMidToContext(atlas.get(), old), nullptr);
  void* out = Ctx(7);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), old, &out), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(RxReassociateMid(atlas.get(), old, Ctx(3)), STATUS_INVALID_PARAMETER);
  // Nothing changed for the live one.
  EXPECT_EQ(RxMapMidToContext(atlas.get(), live), Ctx(2));
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 1);
  // A generation never handed out yet is not in use either.
  const auto future = static_cast<USHORT>(live + 0x2000);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), future), nullptr);
  EXPECT_EQ(RxReassociateMid(atlas.get(), future, Ctx(3)), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), future, &out),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReassociateMid(atlas.get(), live, Ctx(4)), STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), live), Ctx(4));
  Dissociate(atlas.get(), live, Ctx(4));
  EXPECT_EQ(RxMapMidToContext(atlas.get(), live), nullptr);
}

TEST(Generations, ExcludedValuesNeverHandedOutWhenFilledRepeatedly) {
  // G = 3: 13-bit indexes, 16-slot leaves; exclusions of whole indexes and of single
  // generations, in leaf 0 and beyond.
  std::vector<USHORT> excluded;
  for (USHORT gen = 0; gen < 8; ++gen) excluded.push_back(static_cast<USHORT>(gen << 13 | 5));
  for (USHORT v = 0; v < 200; v += 3) excluded.push_back(static_cast<USHORT>(2U << 13 | v));
  excluded.push_back(0);
  excluded.push_back(static_cast<USHORT>(7U << 13 | 40));
  const std::set<USHORT> never(excluded.begin(), excluded.end());
  AtlasPtr atlas = Create(100, 1, 3, excluded);
  ASSERT_NE(atlas, nullptr);
  std::mt19937 rng(5);
  std::vector<std::pair<USHORT, std::uintptr_t>> held;
  std::uintptr_t next = 1;
  for (int round = 0; round < 40; ++round) {
    while (held.size() < 100) {
      USHORT mid = 0;
      ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(next), 0, &mid), STATUS_SUCCESS);
      ASSERT_EQ(never.count(mid), 0U) << "excluded value " << mid << " handed out";
      ASSERT_NE(mid & 0x1FFF, 5) << "an index whose every generation is excluded";
      held.emplace_back(mid, next++);
    }
    USHORT mid = 0;
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(next), RX_MID_USE_RESERVE, &mid),
              STATUS_UNSUCCESSFUL);
    std::set<USHORT> indexes;
    for (const auto& [value, context] : held) {
      EXPECT_TRUE(indexes.insert(static_cast<USHORT>(value & 0x1FFF)).second);
      EXPECT_EQ(RxMapMidToContext(atlas.get(), value), Ctx(context));
    }
    std::shuffle(held.begin(), held.end(), rng);
    const std::size_t keep = round % 4 == 3 ? 0 : rng() % 60;
    while (held.size() > keep) {
      Dissociate(atlas.get(), held.back().first, Ctx(held.back().second));
      held.pop_back();
    }
  }
}

TEST(Generations, IterateAndRemoveAndDestroyFindEveryGeneration) {
  AtlasPtr atlas = Create(50, 1, 5);
  ASSERT_NE(atlas, nullptr);
  for (int i = 0; i < 30; ++i) {
    const USHORT mid = Associate(atlas.get(), Ctx(i + 1));
    if (i % 2 == 0) Dissociate(atlas.get(), mid, Ctx(i + 1));
  }
  static int seen;
  seen = 0;
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) { ++seen; });
  EXPECT_EQ(seen, 15);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  for (int i = 0; i < 7; ++i) Associate(atlas.get(), Ctx(i + 1));
  seen = 0;
  RxDestroyMidAtlas(atlas.release(), [](PVOID) { ++seen; });
  EXPECT_EQ(seen, 7);
}

// Workers run requests (associate, map, reassociate, dissociate) and publish every value they
// freed; a stale-response thread and a duplicate-response thread throw those values back at
// the atlas. With 8,000 associations over 8 indexes of 2^13 generations, no value recurs, so
// every stale call must find the value not in use, while the workers' own calls all succeed
// with their own contexts.
TEST(Generations, StaleResponsesRacingWithReuse) {
  constexpr int kWorkers = 4;
  constexpr int kRequests = 2000;  // 8,000 associations < 2^13
  AtlasPtr atlas = Create(4, 4, 13);
  ASSERT_NE(atlas, nullptr);
  constexpr std::size_t kRing = 64;
  std::vector<std::atomic<std::uint32_t>> ring(kRing);
  for (auto& slot : ring) slot.store(0x10000, std::memory_order_relaxed);  // (test) empty
  std::atomic<std::uint32_t> ring_next{0};
  std::atomic<bool> done{false};
  std::atomic<int> stale_hits{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      for (int r = 0; r < kRequests; ++r) {
        const auto id = static_cast<std::uintptr_t>((w * kRequests + r) * 2 + 2);
        USHORT mid = 0;
        NTSTATUS s;
        while ((s = RxAssociateContextWithMidEx(atlas.get(), Ctx(id), 0, &mid)) ==
               STATUS_UNSUCCESSFUL) {
          std::this_thread::yield();
        }
        ASSERT_EQ(s, STATUS_SUCCESS);
        ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(id));
        ASSERT_EQ(RxReassociateMid(atlas.get(), mid, Ctx(id + 1)), STATUS_SUCCESS);
        ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(id + 1));
        void* out = nullptr;
        ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &out), STATUS_SUCCESS);
        ASSERT_EQ(out, Ctx(id + 1));
        // (test) relaxed: the ring only carries values; nothing is read through them.
        const std::uint32_t at = ring_next.fetch_add(1, std::memory_order_relaxed);
        ring[at % kRing].store(mid, std::memory_order_relaxed);
      }
    });
  }
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&, s] {
      std::mt19937 rng(static_cast<std::uint32_t>(s + 11));
      // (test) relaxed: a stop flag.
      while (!done.load(std::memory_order_relaxed)) {
        const std::uint32_t value = ring[rng() % kRing].load(std::memory_order_relaxed);
        if (value > 0xFFFF) continue;
        const auto mid = static_cast<USHORT>(value);
        void* out = Ctx(1);
        if (RxMapMidToContext(atlas.get(), mid) != nullptr) stale_hits.fetch_add(1);
        if (s == 0) {
          const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas.get(), mid, &out);
          if (status != STATUS_INVALID_PARAMETER || out != nullptr) {
            stale_hits.fetch_add(1);
          }
        } else if (RxReassociateMid(atlas.get(), mid, Ctx(1)) != STATUS_INVALID_PARAMETER) {
          stale_hits.fetch_add(1);
        }
      }
    });
  }
  for (int w = 0; w < kWorkers; ++w) threads[static_cast<std::size_t>(w)].join();
  done.store(true, std::memory_order_relaxed);
  for (std::size_t t = kWorkers; t < threads.size(); ++t) threads[t].join();
  EXPECT_EQ(stale_hits.load(), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
}

// A final response (MapAndDissociate) racing with a Reassociate of the same live MID, round
// after round on one index. Exactly one outcome each time: the reassociate succeeded exactly
// when the dissociate returned its new context (it can only have replaced it before the take,
// GN2), and the index is always pushed back exactly once, by whichever finished last.
TEST(Generations, DissociateRacingWithReassociateOfTheSameMid) {
  constexpr int kRounds = 3000;
  AtlasPtr atlas = Create(2, 2, 8);
  ASSERT_NE(atlas, nullptr);
  std::atomic<int> round{0};        // (test) seq_cst: the round the helpers may play
  std::atomic<int> finished{0};     // (test) seq_cst: helpers done with the current round
  std::atomic<std::uint32_t> current{0};
  std::atomic<NTSTATUS> dissociated{0};
  std::atomic<void*> taken{nullptr};
  std::atomic<NTSTATUS> reassociated{0};
  auto wait_for = [&](int r) {
    while (round.load() < r) std::this_thread::yield();
  };
  std::thread dissociator([&] {
    for (int r = 1; r <= kRounds; ++r) {
      wait_for(r);
      void* out = nullptr;
      dissociated.store(RxMapAndDissociateMidFromContext(
          atlas.get(), static_cast<USHORT>(current.load()), &out));
      taken.store(out);
      finished.fetch_add(1);
    }
  });
  std::thread reassociator([&] {
    for (int r = 1; r <= kRounds; ++r) {
      wait_for(r);
      reassociated.store(
          RxReassociateMid(atlas.get(), static_cast<USHORT>(current.load()), Ctx(2 * r + 1)));
      finished.fetch_add(1);
    }
  });
  int replaced = 0;
  for (int r = 1; r <= kRounds; ++r) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(2 * r), 0, &mid), STATUS_SUCCESS);
    current.store(mid);
    finished.store(0);
    round.store(r);
    while (finished.load() < 2) std::this_thread::yield();
    ASSERT_EQ(dissociated.load(), STATUS_SUCCESS);
    if (reassociated.load() == STATUS_SUCCESS) {
      ++replaced;
      ASSERT_EQ(taken.load(), Ctx(2 * r + 1)) << r;
    } else {
      ASSERT_EQ(reassociated.load(), STATUS_INVALID_PARAMETER);
      ASSERT_EQ(taken.load(), Ctx(2 * r)) << r;
    }
    ASSERT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0) << "the index went back exactly once";
  }
  dissociator.join();
  reassociator.join();
  // Both MIDs can still be taken, and no more: nothing was pushed twice or lost.
  USHORT a = 0;
  USHORT b = 0;
  USHORT c = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, &a), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(3), 0, &b), STATUS_SUCCESS);
  EXPECT_NE(a & 0xFF, b & 0xFF);
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(5), 0, &c), STATUS_UNSUCCESSFUL);
  RecordProperty("replaced", replaced);
}

// The reserve with generations: the generational dissociate (and iterate-and-remove) give
// their admissions back like the others, round after round.
TEST(Generations, TheReserveHoldsWithGenerations) {
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = 8;
  p.MidsAllocatedAtStart = 1;
  p.GenerationBits = 4;
  p.MidsReserved = 2;
  AtlasPtr atlas(RxCreateMidAtlasEx(&p));
  ASSERT_NE(atlas, nullptr);
  for (int round = 0; round < 40; ++round) {
    std::vector<USHORT> held;
    USHORT mid = 0;
    for (int i = 0; i < 6; ++i) {
      ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(i + 1), 0, &mid), STATUS_SUCCESS);
      held.push_back(mid);
    }
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), 0, &mid), STATUS_UNSUCCESSFUL);
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(7 + i), RX_MID_USE_RESERVE, &mid),
                STATUS_SUCCESS);
      held.push_back(mid);
    }
    ASSERT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(9), RX_MID_USE_RESERVE, &mid),
              STATUS_UNSUCCESSFUL);
    if (round % 2 == 0) {
      RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) {});
    } else {
      for (std::size_t i = 0; i < held.size(); ++i) {
        Dissociate(atlas.get(), held[i], Ctx(i + 1));
      }
    }
    ASSERT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  }
}

}  // namespace
