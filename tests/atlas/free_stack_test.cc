// Tests for the tagged free stack of one leaf map (src/free_stack.h): the packed head word,
// LIFO order and free counts, freezing (FS1, FS3), the ABA tag (FS2), and exclusive slot
// ownership under concurrent pops and pushes.
#include "atlas/free_stack.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

namespace midatlas::internal {
namespace {

using Head = FreeStack::Head;

constexpr std::uint32_t kTagMask = (1U << FreeStack::kTagBits) - 1;
constexpr std::uint32_t kFreeMax = (1U << FreeStack::kFreeBits) - 1;

// The links a leaf map would provide, one per slot.
class Links {
 public:
  explicit Links(std::uint32_t slots) : links_(slots) {}
  std::atomic<std::uint32_t>* get() noexcept { return links_.data(); }

 private:
  std::vector<std::atomic<std::uint32_t>> links_;
};

void ExpectSameHead(const Head& actual, const Head& expected) {
  EXPECT_EQ(actual.top, expected.top);
  EXPECT_EQ(actual.free, expected.free);
  EXPECT_EQ(actual.tag, expected.tag);
}

// ----------------------------------------------------------------------------------------
// The packed head word.

TEST(FreeStackHead, PackUnpackRoundTripsExtremeValues) {
  const std::uint32_t tops[] = {0, 1, 65535, 65536, FreeStack::kFrozen, FreeStack::kNone};
  const std::uint32_t frees[] = {0, 1, 65535, 65536, kFreeMax};
  const std::uint32_t tags[] = {0, 1, 12345, kTagMask - 1, kTagMask};
  for (std::uint32_t top : tops) {
    for (std::uint32_t free : frees) {
      for (std::uint32_t tag : tags) {
        const Head head{top, free, tag};
        SCOPED_TRACE(testing::Message() << "top=" << top << " free=" << free << " tag=" << tag);
        ExpectSameHead(Head::Unpack(head.Pack()), head);
      }
    }
  }
}

TEST(FreeStackHead, FieldsFillTheWordWithoutOverlapping) {
  EXPECT_EQ((Head{FreeStack::kNone, kFreeMax, kTagMask}.Pack()), ~std::uint64_t{0});
  EXPECT_EQ((Head{0, 0, 0}.Pack()), 0U);
  EXPECT_EQ((Head{FreeStack::kNone, 0, 0}.Pack()), (std::uint64_t{1} << FreeStack::kTopBits) - 1);
  EXPECT_EQ((Head{0, 1, 0}.Pack()), std::uint64_t{1} << FreeStack::kTopBits);
  EXPECT_EQ((Head{0, 0, 1}.Pack()),
            std::uint64_t{1} << (FreeStack::kTopBits + FreeStack::kFreeBits));
  ExpectSameHead(Head::Unpack(~std::uint64_t{0}), Head{FreeStack::kNone, kFreeMax, kTagMask});
}

TEST(FreeStackHead, TagWrapsToZeroWithoutDisturbingTopOrFree) {
  const Head before{7, 65536, kTagMask};
  const Head after{before.top, before.free, before.tag + 1};  // one past the widest tag
  ExpectSameHead(Head::Unpack(after.Pack()), Head{7, 65536, 0});
  EXPECT_NE(before.Pack(), after.Pack()) << "a wrapped tag still changes the word";
}

TEST(FreeStackHead, SentinelsAreNotSlotIndices) {
  EXPECT_TRUE((Head{FreeStack::kNone, 0, 0}.empty()));
  EXPECT_FALSE((Head{FreeStack::kNone, 0, 0}.frozen()));
  EXPECT_TRUE((Head{FreeStack::kFrozen, 0, 0}.empty()));
  EXPECT_TRUE((Head{FreeStack::kFrozen, 0, 0}.frozen()));
  EXPECT_FALSE((Head{65535, 1, 0}.empty()));
  EXPECT_FALSE((Head{0, 1, 0}.frozen()));
}

// ----------------------------------------------------------------------------------------
// One thread.

TEST(FreeStack, DefaultStackIsEmptyAndPopsNothing) {
  FreeStack stack;
  Links links(1);
  ExpectSameHead(stack.Load(), Head{FreeStack::kNone, 0, 0});
  EXPECT_EQ(stack.Pop(links.get()).index, FreeStack::kNone);
  EXPECT_EQ(stack.Load().tag, 0U) << "a pop that finds nothing does not CAS";
}

TEST(FreeStack, PopsHandOutTheLowestIndexFirstThenFollowLifoOrder) {
  constexpr std::uint32_t kSlots = 5;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  ExpectSameHead(stack.Load(), Head{0, kSlots, 0});

  for (std::uint32_t expected = 0; expected < kSlots; ++expected) {
    const FreeStack::PopResult popped = stack.Pop(links.get());
    EXPECT_EQ(popped.index, expected);
    EXPECT_EQ(popped.free_after, kSlots - expected - 1);
  }
  const FreeStack::PopResult none = stack.Pop(links.get());
  EXPECT_EQ(none.index, FreeStack::kNone);
  EXPECT_TRUE(stack.Load().empty());
  EXPECT_EQ(stack.Load().free, 0U);

  EXPECT_EQ(stack.Push(links.get(), 3), 1U);
  EXPECT_EQ(stack.Push(links.get(), 1), 2U);
  EXPECT_EQ(stack.Push(links.get(), 4), 3U);
  EXPECT_EQ(stack.Pop(links.get()).index, 4U);
  EXPECT_EQ(stack.Pop(links.get()).index, 1U);
  const FreeStack::PopResult last = stack.Pop(links.get());
  EXPECT_EQ(last.index, 3U);
  EXPECT_EQ(last.free_after, 0U);
}

TEST(FreeStack, InitUnsharedCanLeaveTheFirstSlotTaken) {
  // A new leaf hands slot 0 to its grower and stacks the rest.
  constexpr std::uint32_t kSlots = 4;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 1, kSlots);
  ExpectSameHead(stack.Load(), Head{1, kSlots - 1, 0});
  EXPECT_FALSE(stack.TryFreeze(kSlots)) << "slot 0 is held";
  EXPECT_EQ(stack.Push(links.get(), 0), kSlots);
  EXPECT_TRUE(stack.TryFreeze(kSlots));
}

TEST(FreeStack, InitUnsharedWithNoSlotsIsEmpty) {
  FreeStack stack;
  Links links(1);
  stack.InitUnshared(links.get(), 1, 1);  // a one-slot leaf whose slot 0 is taken
  ExpectSameHead(stack.Load(), Head{FreeStack::kNone, 0, 0});
  EXPECT_EQ(stack.Pop(links.get()).index, FreeStack::kNone);
}

TEST(FreeStack, LargestLeafCountsEverySlot) {
  constexpr std::uint32_t kSlots = 65536;  // a 16-bit leaf field
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  EXPECT_EQ(stack.Load().free, kSlots);
  const FreeStack::PopResult first = stack.Pop(links.get());
  EXPECT_EQ(first.index, 0U);
  EXPECT_EQ(first.free_after, kSlots - 1);
  EXPECT_FALSE(stack.TryFreeze(kSlots));
  EXPECT_EQ(stack.Push(links.get(), 0), kSlots);
  EXPECT_TRUE(stack.TryFreeze(kSlots));
}

TEST(FreeStack, FreezesOnlyWhenEverySlotIsFree) {
  constexpr std::uint32_t kSlots = 4;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  const std::uint32_t held = stack.Pop(links.get()).index;
  const std::uint32_t tag_before = stack.Load().tag;
  EXPECT_FALSE(stack.TryFreeze(kSlots)) << "one slot is still held";
  EXPECT_EQ(stack.Load().tag, tag_before) << "a refused freeze does not CAS";
  EXPECT_FALSE(stack.TryFreeze(kSlots + 1)) << "the count must match exactly";
  stack.Push(links.get(), held);
  EXPECT_TRUE(stack.TryFreeze(kSlots));
  const Head frozen = stack.Load();
  EXPECT_TRUE(frozen.frozen());
  EXPECT_TRUE(frozen.empty());
  EXPECT_EQ(frozen.free, 0U) << "a frozen leaf counts no free slot";
}

TEST(FreeStack, FrozenStackPopsNothingAndNeverChangesAgain) {
  constexpr std::uint32_t kSlots = 3;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  ASSERT_TRUE(stack.TryFreeze(kSlots));
  const Head frozen = stack.Load();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(stack.Pop(links.get()).index, FreeStack::kNone);
    EXPECT_FALSE(stack.TryFreeze(kSlots)) << "a second freeze must fail";
    EXPECT_FALSE(stack.TryFreeze(0));
  }
  ExpectSameHead(stack.Load(), frozen);  // FS1
}

TEST(FreeStack, TagAdvancesOnEverySuccessfulCas) {
  constexpr std::uint32_t kSlots = 2;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  std::uint32_t tag = stack.Load().tag;
  const std::uint32_t a = stack.Pop(links.get()).index;
  EXPECT_EQ(stack.Load().tag, ++tag);
  const std::uint32_t b = stack.Pop(links.get()).index;
  EXPECT_EQ(stack.Load().tag, ++tag);
  stack.Pop(links.get());  // empty: no CAS
  EXPECT_EQ(stack.Load().tag, tag);
  stack.Push(links.get(), a);
  EXPECT_EQ(stack.Load().tag, ++tag);
  stack.Push(links.get(), b);
  EXPECT_EQ(stack.Load().tag, ++tag);
  ASSERT_TRUE(stack.TryFreeze(kSlots));
  EXPECT_EQ(stack.Load().tag, ++tag);
}

TEST(FreeStack, PopAndRepushOfTheSameTopChangesTheHeadWord) {
  // FS2: the ABA case a tag exists for. A CAS prepared against `before` must fail afterwards,
  // although top and free are the same again.
  constexpr std::uint32_t kSlots = 3;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  const Head before = stack.Load();
  const std::uint32_t index = stack.Pop(links.get()).index;
  stack.Push(links.get(), index);
  const Head after = stack.Load();
  EXPECT_EQ(after.top, before.top);
  EXPECT_EQ(after.free, before.free);
  EXPECT_NE(after.Pack(), before.Pack());
  EXPECT_EQ(after.tag, before.tag + 2);
}

// ----------------------------------------------------------------------------------------
// Many threads on one stack, ordered with latches (never sleeps).

struct ContentionParams {
  std::uint32_t slots;
  int threads;
  int iterations;
};

// Each thread repeatedly pops up to three slots, claims each with an exchange on a per-slot
// owner flag (two owners at once would see each other), reads and writes the slot's plain
// payload (the stack's release push / acquire pop must order the previous owner's write
// before ours; TSan checks it), releases the flag and pushes the slots back in another order.
void RunPopPushContention(const ContentionParams& params) {
  FreeStack stack;
  Links links(params.slots);
  stack.InitUnshared(links.get(), 0, params.slots);
  std::vector<std::atomic<int>> owner(params.slots);
  std::vector<std::uint64_t> payload(params.slots);
  for (std::uint32_t i = 0; i < params.slots; ++i) payload[i] = i;
  std::atomic<std::uint64_t> double_owners{0};
  std::atomic<std::uint64_t> bad_indices{0};
  std::atomic<std::uint64_t> bad_counts{0};
  std::atomic<std::uint64_t> bad_payloads{0};
  std::atomic<std::uint64_t> successful_cases{0};
  std::latch start(params.threads);

  std::vector<std::thread> threads;
  for (int t = 0; t < params.threads; ++t) {
    threads.emplace_back([&, t] {
      const int me = t + 1;
      std::uint64_t cases = 0;
      std::uint32_t rng = 0x9E3779B9U * static_cast<std::uint32_t>(me);
      start.arrive_and_wait();
      for (int iteration = 0; iteration < params.iterations; ++iteration) {
        rng = rng * 1664525U + 1013904223U;
        const std::uint32_t want = 1 + (rng >> 30) % 3;
        std::uint32_t held[3];
        std::uint32_t count = 0;
        for (; count < want; ++count) {
          const FreeStack::PopResult popped = stack.Pop(links.get());
          if (popped.index == FreeStack::kNone) break;
          ++cases;
          held[count] = popped.index;
          if (popped.index >= params.slots) {
            bad_indices.fetch_add(1, std::memory_order_relaxed);
            return;  // cannot touch per-slot state for a bogus index
          }
          if (popped.free_after >= params.slots) bad_counts.fetch_add(1, std::memory_order_relaxed);
          // relaxed: the flag detects overlap through the exchange's atomicity alone; it must
          // not add the happens-before edge the payload check relies on the stack for.
          if (owner[popped.index].exchange(me, std::memory_order_relaxed) != 0) {
            double_owners.fetch_add(1, std::memory_order_relaxed);
          }
          if (payload[popped.index] % params.slots != popped.index) {
            bad_payloads.fetch_add(1, std::memory_order_relaxed);
          }
          payload[popped.index] += params.slots;
        }
        // Push back in rotated order so the stack order keeps changing.
        for (std::uint32_t k = 0; k < count; ++k) {
          const std::uint32_t index = held[(k + static_cast<std::uint32_t>(iteration)) % count];
          if (owner[index].exchange(0, std::memory_order_relaxed) != me) {
            double_owners.fetch_add(1, std::memory_order_relaxed);
          }
          if (stack.Push(links.get(), index) > params.slots) {
            bad_counts.fetch_add(1, std::memory_order_relaxed);
          }
          ++cases;
        }
      }
      successful_cases.fetch_add(cases, std::memory_order_relaxed);
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(double_owners.load(std::memory_order_relaxed), 0U) << "a slot had two owners";
  ASSERT_EQ(bad_indices.load(std::memory_order_relaxed), 0U);
  EXPECT_EQ(bad_counts.load(std::memory_order_relaxed), 0U);
  EXPECT_EQ(bad_payloads.load(std::memory_order_relaxed), 0U);

  const Head end = stack.Load();
  EXPECT_EQ(end.free, params.slots);
  EXPECT_EQ(end.tag, static_cast<std::uint32_t>(successful_cases.load() & kTagMask))
      << "every successful pop and push advances the tag by exactly one";

  // Every slot is on the stack exactly once.
  std::vector<int> seen(params.slots, 0);
  for (std::uint32_t n = 0; n < params.slots; ++n) {
    const FreeStack::PopResult popped = stack.Pop(links.get());
    ASSERT_LT(popped.index, params.slots) << "stack ended with fewer slots than it started";
    ++seen[popped.index];
  }
  EXPECT_EQ(stack.Pop(links.get()).index, FreeStack::kNone) << "stack holds extra entries";
  for (std::uint32_t i = 0; i < params.slots; ++i) EXPECT_EQ(seen[i], 1) << "slot " << i;
  for (std::uint32_t i = 0; i < params.slots; ++i) stack.Push(links.get(), i);
  EXPECT_TRUE(stack.TryFreeze(params.slots));
}

TEST(FreeStackConcurrent, TwoSlotsSharedByFourThreadsNeverHaveTwoOwners) {
  RunPopPushContention({.slots = 2, .threads = 4, .iterations = 50000});
}

TEST(FreeStackConcurrent, SixtyFourSlotsSharedByFourThreadsNeverHaveTwoOwners) {
  RunPopPushContention({.slots = 64, .threads = 4, .iterations = 50000});
}

TEST(FreeStackConcurrent, FreezeRacingWithPopsSucceedsOnlyWhenNoSlotIsHeld) {
  constexpr std::uint32_t kSlots = 4;
  constexpr int kWorkers = 3;
  constexpr int kIterations = 20000;
  FreeStack stack;
  Links links(kSlots);
  stack.InitUnshared(links.get(), 0, kSlots);
  std::vector<std::atomic<int>> held_by(kSlots);
  std::atomic<int> workers_running{kWorkers};
  std::atomic<std::uint64_t> held_at_freeze{0};
  std::atomic<std::uint64_t> double_owners{0};
  std::latch start(kWorkers + 1);

  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        const FreeStack::PopResult popped = stack.Pop(links.get());
        if (popped.index == FreeStack::kNone) continue;  // empty, or frozen for good
        if (held_by[popped.index].exchange(t + 1, std::memory_order_relaxed) != 0) {
          double_owners.fetch_add(1, std::memory_order_relaxed);
        }
        held_by[popped.index].store(0, std::memory_order_relaxed);
        stack.Push(links.get(), popped.index);  // a held slot keeps the stack unfrozen (FS3)
      }
      workers_running.fetch_sub(1, std::memory_order_release);
    });
  }
  bool froze = false;
  threads.emplace_back([&] {
    start.arrive_and_wait();
    while (!froze && workers_running.load(std::memory_order_acquire) > 0) {
      froze = stack.TryFreeze(kSlots);
    }
    if (!froze) froze = stack.TryFreeze(kSlots);  // everyone is done: must succeed now
    if (froze) {
      for (std::uint32_t i = 0; i < kSlots; ++i) {
        if (held_by[i].load(std::memory_order_relaxed) != 0) {
          held_at_freeze.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
  });
  for (auto& thread : threads) thread.join();

  EXPECT_TRUE(froze);
  EXPECT_EQ(held_at_freeze.load(std::memory_order_relaxed), 0U) << "froze with a slot held";
  EXPECT_EQ(double_owners.load(std::memory_order_relaxed), 0U);
  const Head end = stack.Load();
  EXPECT_TRUE(end.frozen());
  EXPECT_EQ(end.free, 0U);
  EXPECT_EQ(stack.Pop(links.get()).index, FreeStack::kNone);
}

}  // namespace
}  // namespace midatlas::internal
