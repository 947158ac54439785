// Guarded lookups and deferred destruction through the C++ API: MidAtlas::MapGuarded,
// ContextGuard, MidAtlas::Retire and FlushRetired (docs/DESIGN.md 10.7). The C API's suite
// (tests/capi/midatlax_guard_test.cc) pins the C guard's own states; this one the guarantees:
// a retired context's destructor runs exactly once, never while a guard that returned it is
// held (on this thread or another), by a flush once unguarded, and at the latest at
// destruction.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "instrumentation/invariants.h"
#include "midatlas/mid_atlas.h"
#include "support/failing_allocation.h"

namespace midatlas {
namespace {

// A context that counts how often it was destroyed, and poisons itself when it is.
struct Tracked {
  static constexpr std::uint64_t kAlive = 0xA11CE'5AFE;
  static constexpr std::uint64_t kPoisoned = 0xDEAD'DEAD;
  std::uint64_t canary = kAlive;
  int destroyed = 0;
};

void DestroyTracked(void* context) {
  auto* tracked = static_cast<Tracked*>(context);
  ++tracked->destroyed;
  tracked->canary = Tracked::kPoisoned;
}

MidAtlas NewAtlas(AtlasOptions options = {.max_mids = 1024, .initial_mids = 16}) {
  absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(std::move(options));
  EXPECT_TRUE(atlas.ok()) << atlas.status();
  return *std::move(atlas);
}

Mid AssociateOrDie(MidAtlas& atlas, void* context) {
  absl::StatusOr<Mid> mid = atlas.Associate(context);
  EXPECT_TRUE(mid.ok()) << mid.status();
  return mid.value_or(0);
}

void DissociateOrDie(MidAtlas& atlas, Mid mid) {
  absl::StatusOr<void*> context = atlas.MapAndDissociate(mid);
  EXPECT_TRUE(context.ok()) << context.status();
}

TEST(ContextGuard, MapGuardedReturnsTheContextAndReleaseEmptiesTheGuard) {
  MidAtlas atlas = NewAtlas();
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  ContextGuard guard = atlas.MapGuarded(mid);
  ASSERT_TRUE(guard);
  EXPECT_EQ(guard.get(), &request);
  guard.Release();
  EXPECT_FALSE(guard);
  EXPECT_EQ(guard.get(), nullptr);
  guard.Release();  // an empty guard: nothing happens
  EXPECT_FALSE(guard);
}

TEST(ContextGuard, MapGuardedOfAMidNotInUseIsEmpty) {
  MidAtlas atlas = NewAtlas({.max_mids = 100, .initial_mids = 16});
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  EXPECT_FALSE(atlas.MapGuarded(static_cast<Mid>(mid + 1)));  // never handed out
  EXPECT_FALSE(atlas.MapGuarded(100));                        // beyond max_mids
  EXPECT_FALSE(atlas.MapGuarded(0xFFFF));
  DissociateOrDie(atlas, mid);
  const ContextGuard guard = atlas.MapGuarded(mid);  // freed
  EXPECT_FALSE(guard);
  EXPECT_EQ(guard.get(), nullptr);
}

TEST(ContextGuard, MapGuardedOfAStaleGenerationIsEmpty) {
  MidAtlas atlas = NewAtlas({.max_mids = 1, .initial_mids = 1, .generation_bits = 4});
  Tracked first;
  Tracked second;
  const Mid old_mid = AssociateOrDie(atlas, &first);
  DissociateOrDie(atlas, old_mid);
  const Mid new_mid = AssociateOrDie(atlas, &second);  // the same index, the next generation
  ASSERT_NE(new_mid, old_mid);
  EXPECT_FALSE(atlas.MapGuarded(old_mid));
  const ContextGuard guard = atlas.MapGuarded(new_mid);
  EXPECT_EQ(guard.get(), &second);
}

TEST(ContextGuard, AMovedGuardKeepsTheProtectionAndTheSourceIsEmpty) {
  MidAtlas atlas = NewAtlas();
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  ContextGuard first = atlas.MapGuarded(mid);
  ContextGuard second = std::move(first);
  EXPECT_FALSE(first);  // NOLINT(bugprone-use-after-move): a moved-from guard is empty
  EXPECT_EQ(second.get(), &request);
  DissociateOrDie(atlas, mid);
  atlas.Retire(&request, DestroyTracked);
  atlas.FlushRetired();
  EXPECT_EQ(request.destroyed, 0) << "the moved guard no longer protected the context";
  ContextGuard third;
  third = std::move(second);
  atlas.FlushRetired();
  EXPECT_EQ(request.destroyed, 0);
  third = ContextGuard();  // move-assigning releases what the target held
  atlas.FlushRetired();
  EXPECT_EQ(request.destroyed, 1);
}

TEST(ContextGuard, RetireWhileAGuardIsHeldOnAnotherThreadWaitsForItsRelease) {
  MidAtlas atlas = NewAtlas();
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  std::latch mapped(1);
  std::latch retired(1);
  std::latch released(1);
  std::uint64_t canary_seen = 0;
  std::thread reader([&] {
    ContextGuard guard = atlas.MapGuarded(mid);
    mapped.count_down();
    retired.wait();
    // The context was dissociated, retired and flushed meanwhile: still intact.
    canary_seen = static_cast<Tracked*>(guard.get())->canary;
    guard.Release();
    released.count_down();
  });
  mapped.wait();
  DissociateOrDie(atlas, mid);
  atlas.Retire(&request, DestroyTracked);
  atlas.FlushRetired();
  EXPECT_EQ(request.destroyed, 0) << "destroyed while another thread held a guard";
  retired.count_down();
  released.wait();
  atlas.FlushRetired();
  EXPECT_EQ(request.destroyed, 1);
  reader.join();
  EXPECT_EQ(canary_seen, Tracked::kAlive);
}

TEST(ContextGuard, FlushRunsEveryUnguardedDestructorAndKeepsTheGuardedOnes) {
  MidAtlas atlas = NewAtlas();
  constexpr std::size_t kContexts = 50;
  std::vector<Tracked> requests(kContexts);
  std::vector<Mid> mids;
  for (Tracked& request : requests) mids.push_back(AssociateOrDie(atlas, &request));
  std::vector<ContextGuard> guards;
  for (std::size_t i = 0; i < kContexts; i += 5) guards.push_back(atlas.MapGuarded(mids[i]));
  for (std::size_t i = 0; i < kContexts; ++i) {
    DissociateOrDie(atlas, mids[i]);
    atlas.Retire(&requests[i], DestroyTracked);
  }
  atlas.FlushRetired();
  for (std::size_t i = 0; i < kContexts; ++i) {
    EXPECT_EQ(requests[i].destroyed, i % 5 == 0 ? 0 : 1) << "context " << i;
  }
  guards.clear();
  atlas.FlushRetired();
  for (std::size_t i = 0; i < kContexts; ++i) {
    EXPECT_EQ(requests[i].destroyed, 1) << "context " << i;
  }
}

// A scan holds the nodes it took privately while it runs their destructors: a flush on
// another thread must wait for it, or it could return before an unguarded context retired
// earlier was destroyed. Thread A's scan is held inside a destructor while B flushes; the
// interleaving where B's flush starts first is likely in each round, not certain, so the
// test runs several.
TEST(ContextGuard, FlushWaitsForAScanInProgressOnAnotherThread) {
  for (int round = 0; round < 20; ++round) {
    MidAtlas atlas = NewAtlas();
    Tracked earlier;
    const Mid mid = AssociateOrDie(atlas, &earlier);
    ContextGuard guard = atlas.MapGuarded(mid);  // keeps `earlier` pending until A's scan
    DissociateOrDie(atlas, mid);
    atlas.Retire(&earlier, DestroyTracked);
    std::latch in_destructor(1);
    std::latch go(1);
    std::latch flushing(1);
    int blocker = 0;
    std::thread a([&] {
      atlas.Retire(&blocker, [&](void*) {
        in_destructor.count_down();
        go.wait();
      });
      atlas.FlushRetired();
    });
    in_destructor.wait();  // A's scan has taken [blocker, earlier] and waits in the first
    guard.Release();       // `earlier` is unguarded before A's scan reaches it
    std::atomic<int> destroyed_at_return{-1};
    std::thread b([&] {
      flushing.count_down();
      atlas.FlushRetired();
      // relaxed: read after the join
      destroyed_at_return.store(earlier.destroyed, std::memory_order_relaxed);
    });
    flushing.wait();
    go.count_down();
    a.join();
    b.join();
    ASSERT_EQ(destroyed_at_return.load(std::memory_order_relaxed), 1) << "round " << round;
  }
}

TEST(ContextGuard, DestructionRunsTheDestructorsStillPending) {
  std::vector<Tracked> requests(20);
  {
    MidAtlas atlas = NewAtlas();
    std::vector<ContextGuard> guards;
    for (Tracked& request : requests) {
      const Mid mid = AssociateOrDie(atlas, &request);
      guards.push_back(atlas.MapGuarded(mid));
      DissociateOrDie(atlas, mid);
      atlas.Retire(&request, DestroyTracked);
    }
    for (const Tracked& request : requests) EXPECT_EQ(request.destroyed, 0);
    guards.clear();  // unguarded now, but nothing flushes before the atlas goes
  }
  for (const Tracked& request : requests) EXPECT_EQ(request.destroyed, 1);
}

TEST(ContextGuard, AThreadMayHoldManyMoreGuardsThanOneHazardRecordHasSlots) {
  MidAtlas atlas = NewAtlas();
  constexpr int kGuards = 40;  // five records' worth of slots: the records chain
  std::vector<Tracked> requests(kGuards);
  std::vector<ContextGuard> guards;
  for (Tracked& request : requests) {
    const Mid mid = AssociateOrDie(atlas, &request);
    guards.push_back(atlas.MapGuarded(mid));
    ASSERT_EQ(guards.back().get(), &request);
    DissociateOrDie(atlas, mid);
    atlas.Retire(&request, DestroyTracked);
  }
  atlas.FlushRetired();
  for (const Tracked& request : requests) EXPECT_EQ(request.destroyed, 0);
  // Released in a scrambled order, each destructor runs at the first flush after its release.
  std::vector<int> order(kGuards);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  int released = 0;
  for (const int i : order) {
    guards[static_cast<std::size_t>(i)].Release();
    ++released;
    atlas.FlushRetired();
    int destroyed = 0;
    for (const Tracked& request : requests) destroyed += request.destroyed;
    EXPECT_EQ(requests[static_cast<std::size_t>(i)].destroyed, 1) << "context " << i;
    EXPECT_EQ(destroyed, released);
  }
}

TEST(ContextGuard, AReassociatedContextIsRetiredAndItsGuardStillProtectsIt) {
  MidAtlas atlas = NewAtlas();
  Tracked first;
  Tracked second;
  const Mid mid = AssociateOrDie(atlas, &first);
  ContextGuard guard = atlas.MapGuarded(mid);
  ASSERT_TRUE(atlas.Reassociate(mid, &second).ok());
  atlas.Retire(&first, DestroyTracked);
  atlas.FlushRetired();
  EXPECT_EQ(first.destroyed, 0);
  EXPECT_EQ(atlas.MapGuarded(mid).get(), &second);
  guard.Release();
  atlas.FlushRetired();
  EXPECT_EQ(first.destroyed, 1);
  EXPECT_EQ(second.destroyed, 0);
}

TEST(ContextGuard, RetiringANullContextOrWithoutADestructorDoesNothing) {
  MidAtlas atlas = NewAtlas();
  int runs = 0;
  atlas.Retire(nullptr, [&runs](void*) { ++runs; });
  Tracked request;
  atlas.Retire(&request, ContextDestructor());
  atlas.FlushRetired();
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(request.destroyed, 0);
}

TEST(ContextGuard, DestructorsMayRetireAndFlushOnTheirOwnAtlas) {
  MidAtlas atlas = NewAtlas();
  Tracked inner;
  int outer_runs = 0;
  int dummy = 0;
  atlas.Retire(&dummy, [&](void*) {
    ++outer_runs;
    atlas.Retire(&inner, DestroyTracked);
    atlas.FlushRetired();  // from inside a scan of this very list: must not wait for itself
  });
  atlas.FlushRetired();
  atlas.FlushRetired();
  EXPECT_EQ(outer_runs, 1);
  EXPECT_EQ(inner.destroyed, 1);
}

TEST(ContextGuard, DestructorsMayFlushAnotherAtlas) {
  MidAtlas first = NewAtlas();
  MidAtlas second = NewAtlas();
  Tracked request;
  int dummy = 0;
  second.Retire(&request, DestroyTracked);
  first.Retire(&dummy, [&](void*) { second.FlushRetired(); });
  first.FlushRetired();
  second.FlushRetired();
  EXPECT_EQ(request.destroyed, 1);
}

TEST(ContextGuard, WithoutMemoryForTheRetirementAnUnguardedContextIsDestroyedAtOnce) {
  MidAtlas atlas = NewAtlas();
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  DissociateOrDie(atlas, mid);
  {
    testing_support::FailingAllocations injection(
        {.fail_at = 1, .after = testing_support::AfterFailure::kFail,
         .forms = testing_support::AllocationForms::kNothrowOnly});
    atlas.Retire(&request, DestroyTracked);
    injection.Disarm();
    EXPECT_GE(injection.failures(), 1);
  }
  EXPECT_EQ(request.destroyed, 1);
}

TEST(ContextGuard, WithoutMemoryForTheRetirementAGuardedContextWaitsForTheRelease) {
  MidAtlas atlas = NewAtlas();
  Tracked request;
  const Mid mid = AssociateOrDie(atlas, &request);
  std::latch mapped(1);
  std::latch retiring(1);
  std::atomic<int> destroyed_before_release{-1};
  std::thread reader([&] {
    ContextGuard guard = atlas.MapGuarded(mid);
    mapped.count_down();
    retiring.wait();
    // The retiring thread may now be waiting for us; it must not have destroyed anything.
    destroyed_before_release.store(request.destroyed, std::memory_order_relaxed);
    guard.Release();
  });
  mapped.wait();
  DissociateOrDie(atlas, mid);
  {
    testing_support::FailingAllocations injection(
        {.fail_at = 1, .after = testing_support::AfterFailure::kFail,
         .forms = testing_support::AllocationForms::kNothrowOnly});
    retiring.count_down();
    atlas.Retire(&request, DestroyTracked);  // waits for the reader's release
    injection.Disarm();
  }
  reader.join();
  // relaxed: the join orders the reader's store before this load.
  EXPECT_EQ(destroyed_before_release.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(request.destroyed, 1);
}

// Readers map one MID guarded while a writer keeps replacing its context and retiring the
// old one, whose destructor poisons it: no reader may ever see a poisoned context, and every
// retired context is destroyed exactly once.
TEST(ContextGuard, GuardedReadersNeverSeeADestroyedContextWhileAWriterRetires) {
  MidAtlas atlas = NewAtlas();
  constexpr int kReplacements = 3000;
  constexpr int kReaders = 2;
  auto* current = new Tracked;
  const Mid mid = AssociateOrDie(atlas, current);
  std::atomic<bool> done{false};
  std::atomic<int> destroyed{0};
  std::atomic<int> poisoned_seen{0};
  std::latch start(kReaders + 1);
  auto destroy = [&destroyed](void* context) {
    DestroyTracked(context);
    destroyed.fetch_add(1, std::memory_order_relaxed);  // read after the joins
    delete static_cast<Tracked*>(context);
  };
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&] {
      start.arrive_and_wait();
      // acquire: pairs with the writer's release store of `done`; nothing else rides on it.
      while (!done.load(std::memory_order_acquire)) {
        ContextGuard guard = atlas.MapGuarded(mid);
        if (!guard) continue;
        if (static_cast<Tracked*>(guard.get())->canary != Tracked::kAlive) {
          poisoned_seen.fetch_add(1, std::memory_order_relaxed);  // read after the joins
        }
      }
    });
  }
  start.arrive_and_wait();
  for (int i = 0; i < kReplacements; ++i) {
    auto* next = new Tracked;
    ASSERT_TRUE(atlas.Reassociate(mid, next).ok());
    atlas.Retire(std::exchange(current, next), destroy);
  }
  done.store(true, std::memory_order_release);  // pairs with the readers' acquire loads
  for (std::thread& reader : readers) reader.join();
  atlas.FlushRetired();
  EXPECT_EQ(poisoned_seen.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(destroyed.load(std::memory_order_relaxed), kReplacements);
  DissociateOrDie(atlas, mid);
  delete current;
}

// ----------------------------------------------------------------------------------------
// Debug builds catch the misuses and name the broken invariant.

#if MIDATLAS_CHECK_INVARIANTS
class ContextGuardDeathTest : public testing::Test {
 protected:
  // The threadsafe style re-runs the test binary for each death test instead of forking a
  // process that other tests may have left with threads.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(ContextGuardDeathTest, RetiringAContextTwiceAbortsNamingRC3) {
  EXPECT_DEATH(
      {
        MidAtlas atlas = NewAtlas();
        Tracked request;
        const Mid mid = AssociateOrDie(atlas, &request);
        const ContextGuard guard = atlas.MapGuarded(mid);  // keeps the first retirement pending
        DissociateOrDie(atlas, mid);
        atlas.Retire(&request, DestroyTracked);
        atlas.Retire(&request, DestroyTracked);
      },
      "invariant RC3 broken: a context was retired twice");
}

TEST_F(ContextGuardDeathTest, DestroyingTheAtlasWhileAGuardHoldsARetiredContextAbortsNamingRC5) {
  EXPECT_DEATH(
      {
        std::optional<MidAtlas> atlas(NewAtlas());
        Tracked request;
        const Mid mid = AssociateOrDie(*atlas, &request);
        ContextGuard guard = atlas->MapGuarded(mid);
        DissociateOrDie(*atlas, mid);
        atlas->Retire(&request, DestroyTracked);
        atlas.reset();
      },
      "invariant RC5 broken");
}

TEST_F(ContextGuardDeathTest, ReleasingAGuardOnAnotherThreadAbortsNamingRC4) {
  EXPECT_DEATH(
      {
        MidAtlas atlas = NewAtlas();
        Tracked request;
        const Mid mid = AssociateOrDie(atlas, &request);
        ContextGuard guard = atlas.MapGuarded(mid);
        std::thread([&guard] { guard.Release(); }).join();
      },
      "invariant RC4 broken: a context guard was released by a thread other than");
}
#endif  // MIDATLAS_CHECK_INVARIANTS

}  // namespace
}  // namespace midatlas
