// Waiting for a free MID (midatlax_ex.h): RxAssociateContextWithMidWait,
// RxAssociateContextWithMidAsync, RxCancelMidWait, RxGetNumberOfWaiters. FIFO hand-off on the
// freeing thread, no barging, every freeing path (map-and-dissociate, release of a discarded
// MID, iterate-and-remove) reaching a waiter, destruction cancelling, bad input; then races of
// hand-offs against timeouts and cancels.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
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

std::vector<USHORT> Fill(PRX_MID_ATLAS atlas, int count, std::uintptr_t base = 0x100) {
  std::vector<USHORT> mids;
  for (std::uintptr_t i = 0; i < static_cast<std::uintptr_t>(count); ++i) {
    USHORT mid = 0;
    EXPECT_EQ(RxAssociateContextWithMidEx(atlas, Ctx(base + i), 0, &mid), STATUS_SUCCESS);
    mids.push_back(mid);
  }
  return mids;
}

// What each routine call saw, in order, with the thread it ran on.
struct Call {
  PRX_MID_WAIT_BLOCK block;
  PVOID context;
  NTSTATUS status;
  USHORT mid;
  std::thread::id thread;
  PVOID mapped;  // RxMapMidToContext(mid) inside the routine
};
struct Journal {
  std::mutex mutex;
  std::vector<Call> calls;
};
Journal* g_journal = nullptr;
PRX_MID_ATLAS g_atlas = nullptr;

VOID Note(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  PVOID mapped = status == STATUS_SUCCESS ? RxMapMidToContext(g_atlas, mid) : nullptr;
  const std::lock_guard<std::mutex> lock(g_journal->mutex);
  g_journal->calls.push_back({block, context, status, mid, std::this_thread::get_id(), mapped});
}

class WaitTest : public ::testing::TestWithParam<UCHAR> {
 protected:
  void SetUp() override { g_journal = &journal_; }
  void TearDown() override {
    g_journal = nullptr;
    g_atlas = nullptr;
  }
  Journal journal_;
};

TEST_P(WaitTest, TimeoutZeroIsOneTry) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  USHORT mid = 0;
  ASSERT_EQ(RxAssociateContextWithMidWait(atlas.get(), Ctx(1), 0, 0, &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(1));
  Fill(atlas.get(), 3);
  EXPECT_EQ(RxAssociateContextWithMidWait(atlas.get(), Ctx(2), 0, 0, &mid), STATUS_TIMEOUT);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
}

TEST_P(WaitTest, ABlockingWaitTimesOutAndLeavesTheQueue) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  Fill(atlas.get(), 4);
  USHORT mid = 0;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RxAssociateContextWithMidWait(atlas.get(), Ctx(2), 0, 30, &mid), STATUS_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 4);
}

TEST_P(WaitTest, ABlockingWaitIsServedByTheNextFree) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  const std::vector<USHORT> mids = Fill(atlas.get(), 4);
  USHORT got = 0;
  NTSTATUS status = 0;
  std::thread waiter([&] {
    status = RxAssociateContextWithMidWait(atlas.get(), Ctx(0x99), 0, 0xFFFFFFFF, &got);
  });
  while (RxGetNumberOfWaiters(atlas.get()) == 0) std::this_thread::yield();
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[2], &context), STATUS_SUCCESS);
  waiter.join();
  EXPECT_EQ(status, STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), got), Ctx(0x99));
  // The freed index, under its next generation.
  EXPECT_EQ(got & ((1U << (16 - GetParam())) - 1), mids[2] & ((1U << (16 - GetParam())) - 1));
  if (GetParam() != 0) {
    EXPECT_NE(got, mids[2]);
  }
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
}

TEST_P(WaitTest, AsyncWaitersAreServedInArrivalOrderOnTheFreeingThread) {
  AtlasPtr atlas = Make(8, 8, GetParam());
  g_atlas = atlas.get();
  const std::vector<USHORT> mids = Fill(atlas.get(), 8);
  RX_MID_WAIT_BLOCK blocks[3];
  for (int i = 0; i < 3; ++i) {
    USHORT mid = 0xABCD;
    ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(0x500 + i), 0, &blocks[i], &Note,
                                             &mid),
              STATUS_PENDING);
  }
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 3);
  EXPECT_TRUE(journal_.calls.empty());
  // A new caller does not overtake them.
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(0x600), 0, &mid), STATUS_UNSUCCESSFUL);
  for (std::size_t i = 0; i < 3; ++i) {
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[5 - i], &context),
              STATUS_SUCCESS);
    ASSERT_EQ(journal_.calls.size(), i + 1);
    const Call& call = journal_.calls.back();
    EXPECT_EQ(call.block, &blocks[i]);
    EXPECT_EQ(call.context, Ctx(0x500 + i));
    EXPECT_EQ(call.status, STATUS_SUCCESS);
    EXPECT_EQ(call.thread, std::this_thread::get_id());
    EXPECT_EQ(call.mapped, Ctx(0x500 + i));  // associated before the routine runs
    EXPECT_EQ(RxCancelMidWait(atlas.get(), &blocks[i]), FALSE);
  }
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 8);
}

TEST_P(WaitTest, AnAsyncWaitThatFindsAMidNeverCallsItsRoutine) {
  AtlasPtr atlas = Make(8, 8, GetParam());
  RX_MID_WAIT_BLOCK block;
  USHORT mid = 0xFFFF;
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(7), 0, &block, &Note, &mid),
            STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), Ctx(7));
  EXPECT_TRUE(journal_.calls.empty());
  EXPECT_EQ(RxCancelMidWait(atlas.get(), &block), FALSE);
}

TEST_P(WaitTest, CancelRunsTheRoutineWithCancelledBeforeItReturns) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  Fill(atlas.get(), 4);
  RX_MID_WAIT_BLOCK a;
  RX_MID_WAIT_BLOCK b;
  USHORT mid = 0;
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0, &a, &Note, &mid),
            STATUS_PENDING);
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(2), 0, &b, &Note, &mid),
            STATUS_PENDING);
  EXPECT_EQ(RxCancelMidWait(atlas.get(), &a), TRUE);
  ASSERT_EQ(journal_.calls.size(), 1U);
  EXPECT_EQ(journal_.calls[0].block, &a);
  EXPECT_EQ(journal_.calls[0].status, STATUS_CANCELLED);
  EXPECT_EQ(journal_.calls[0].mid, 0);
  EXPECT_EQ(RxCancelMidWait(atlas.get(), &a), FALSE);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 1);
  // The block may be queued again once its routine ran.
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(3), 0, &a, &Note, &mid),
            STATUS_PENDING);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 2);
}

TEST_P(WaitTest, DestructionCancelsEveryQueuedWaiterOnce) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  Fill(atlas.get(), 4);
  RX_MID_WAIT_BLOCK blocks[5];
  USHORT mid = 0;
  for (auto& block : blocks) {
    ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0, &block, &Note, &mid),
              STATUS_PENDING);
  }
  atlas.reset();
  ASSERT_EQ(journal_.calls.size(), 5U);
  std::set<PRX_MID_WAIT_BLOCK> seen;
  for (const Call& call : journal_.calls) {
    EXPECT_EQ(call.status, STATUS_CANCELLED);
    seen.insert(call.block);
  }
  EXPECT_EQ(seen.size(), 5U);
}

TEST_P(WaitTest, ReleaseOfADiscardedMidAndIterateAndRemoveServeWaiters) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  g_atlas = atlas.get();
  const std::vector<USHORT> mids = Fill(atlas.get(), 4);
  PVOID context = nullptr;
  ASSERT_EQ(RxDiscardMid(atlas.get(), mids[1], nullptr, &context), STATUS_SUCCESS);
  RX_MID_WAIT_BLOCK blocks[4];
  USHORT mid = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(0x700 + i), 0, &blocks[i], &Note,
                                             &mid),
              STATUS_PENDING);
  }
  ASSERT_EQ(RxReleaseDiscardedMid(atlas.get(), mids[1], nullptr), STATUS_SUCCESS);
  ASSERT_EQ(journal_.calls.size(), 1U);
  EXPECT_EQ(journal_.calls[0].block, &blocks[0]);
  EXPECT_EQ(journal_.calls[0].mapped, Ctx(0x700));
  // Iterate-and-remove frees all four; the three waiters left take three of them.
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) {});
  ASSERT_EQ(journal_.calls.size(), 4U);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(journal_.calls[i].block, &blocks[i]);
    EXPECT_EQ(journal_.calls[i].status, STATUS_SUCCESS);
  }
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
}

TEST_P(WaitTest, ReserveWaitersMayPassUnreservedOnesOnlyForTheReserve) {
  AtlasPtr atlas = Make(4, 4, GetParam(), /*reserved=*/1);
  g_atlas = atlas.get();
  const std::vector<USHORT> mids = Fill(atlas.get(), 3);  // the unreserved capacity
  RX_MID_WAIT_BLOCK normal;
  RX_MID_WAIT_BLOCK reserve;
  USHORT mid = 0;
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(0x800), 0, &normal, &Note, &mid),
            STATUS_PENDING);
  // The reserve is free, and the queued waiter may not take it: a reserve caller may.
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(0x801), RX_MID_USE_RESERVE, &reserve,
                                           &Note, &mid),
            STATUS_SUCCESS);
  EXPECT_TRUE(journal_.calls.empty());
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_SUCCESS);
  // Freeing the reserve MID leaves 3 held: still no room for the unreserved waiter.
  EXPECT_TRUE(journal_.calls.empty());
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &context), STATUS_SUCCESS);
  ASSERT_EQ(journal_.calls.size(), 1U);
  EXPECT_EQ(journal_.calls[0].block, &normal);
  EXPECT_EQ(journal_.calls[0].status, STATUS_SUCCESS);
}

VOID DissociateInRoutine(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  Note(block, context, status, mid);
  if (status == STATUS_SUCCESS) {
    PVOID taken = nullptr;
    EXPECT_EQ(RxMapAndDissociateMidFromContext(g_atlas, mid, &taken), STATUS_SUCCESS);
    EXPECT_EQ(taken, context);
  }
}

TEST_P(WaitTest, RoutinesMayCallTheAtlas) {
  AtlasPtr atlas = Make(40, 16, GetParam());
  g_atlas = atlas.get();
  const std::vector<USHORT> mids = Fill(atlas.get(), 40);
  std::vector<RX_MID_WAIT_BLOCK> blocks(10);
  USHORT mid = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(0x900 + i), 0, &blocks[i],
                                             &DissociateInRoutine, &mid),
              STATUS_PENDING);
  }
  // One free serves the first waiter, whose routine frees it again for the next: a chain.
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[30], &context), STATUS_SUCCESS);
  EXPECT_EQ(journal_.calls.size(), 10U);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 39);
}

TEST_P(WaitTest, BadInputChangesNothing) {
  AtlasPtr atlas = Make(4, 4, GetParam());
  Fill(atlas.get(), 4);
  RX_MID_WAIT_BLOCK block;
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0x2, &block, &Note, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0, nullptr, &Note, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0, &block, nullptr, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidAsync(atlas.get(), nullptr, 0, &block, &Note, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidAsync(nullptr, Ctx(1), 0, &block, &Note, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidWait(atlas.get(), Ctx(1), 0x10, 0, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMidWait(atlas.get(), nullptr, 0, 0, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  ASSERT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(1), 0, &block, &Note, &mid),
            STATUS_PENDING);
  // Queued twice.
  EXPECT_EQ(RxAssociateContextWithMidAsync(atlas.get(), Ctx(2), 0, &block, &Note, &mid),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 1);
  EXPECT_EQ(RxCancelMidWait(atlas.get(), nullptr), FALSE);
  EXPECT_EQ(RxCancelMidWait(nullptr, &block), FALSE);
  EXPECT_EQ(RxGetNumberOfWaiters(nullptr), 0);
  EXPECT_EQ(RxCancelMidWait(atlas.get(), &block), TRUE);
  ASSERT_EQ(journal_.calls.size(), 1U);
  EXPECT_EQ(journal_.calls[0].context, Ctx(1));
}

INSTANTIATE_TEST_SUITE_P(Generations, WaitTest, ::testing::Values(UCHAR{0}, UCHAR{4}));

// --- Races ------------------------------------------------------------------------------

// Many blocking threads on a small atlas, each taking a MID (waiting as long as needed),
// holding it briefly and freeing it, with short timeouts racing hand-offs. At the end nothing
// is held, nobody waits, and every MID can be taken again exactly Max times.
TEST_P(WaitTest, BlockingWaitersWithTimeoutsRacingHandOffs) {
  constexpr USHORT kMax = 8;
  AtlasPtr atlas = Make(kMax, kMax, GetParam());
  constexpr int kThreads = 16;
  constexpr int kRounds = 150;
  std::atomic<int> served{0};
  std::atomic<int> timeouts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        void* context = Ctx(((t + 1) << 16) | (round + 1));
        USHORT mid = 0;
        const ULONG timeout = (round % 4 == 0) ? 1 : 0xFFFFFFFF;
        const NTSTATUS status =
            RxAssociateContextWithMidWait(atlas.get(), context, 0, timeout, &mid);
        if (status == STATUS_TIMEOUT) {
          timeouts.fetch_add(1);
          continue;
        }
        ASSERT_EQ(status, STATUS_SUCCESS);
        served.fetch_add(1);
        ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), context);
        if (round % 8 == 3) std::this_thread::yield();
        PVOID taken = nullptr;
        ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &taken), STATUS_SUCCESS);
        ASSERT_EQ(taken, context);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(served.load() + timeouts.load(), kThreads * kRounds);
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  Fill(atlas.get(), kMax);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMidEx(atlas.get(), Ctx(1), 0, &mid), STATUS_UNSUCCESSFUL);
}

// Async waiters whose routines free their MID again, cancels racing the hand-offs: every
// routine runs exactly once, and a cancel that answers TRUE saw its routine cancelled.
struct RaceBlock {
  RX_MID_WAIT_BLOCK block;
  std::atomic<int> calls{0};
  std::atomic<int> successes{0};
};
PRX_MID_ATLAS g_race_atlas = nullptr;

VOID FreeAgain(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  auto* race = reinterpret_cast<RaceBlock*>(block);
  if (status == STATUS_SUCCESS) {
    race->successes.fetch_add(1);
    PVOID taken = nullptr;
    EXPECT_EQ(RxMapAndDissociateMidFromContext(g_race_atlas, mid, &taken), STATUS_SUCCESS);
    EXPECT_EQ(taken, context);
  } else {
    EXPECT_EQ(status, STATUS_CANCELLED);
  }
  race->calls.fetch_add(1);
}

TEST_P(WaitTest, CancelsRacingHandOffs) {
  constexpr USHORT kMax = 4;
  AtlasPtr atlas = Make(kMax, kMax, GetParam());
  g_race_atlas = atlas.get();
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kPerThread = 300;
  std::vector<std::thread> threads;
  std::atomic<int> immediate{0};
  std::atomic<int> cancelled{0};
  std::vector<std::unique_ptr<RaceBlock[]>> blocks(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t) {
    blocks[t] = std::make_unique<RaceBlock[]>(kPerThread);
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < kPerThread; ++i) {
        RaceBlock& race = blocks[t][i];
        USHORT mid = 0;
        const NTSTATUS status = RxAssociateContextWithMidAsync(
            atlas.get(), Ctx(((t + 1) << 16) | (i + 1)), 0, &race.block, &FreeAgain, &mid);
        if (status == STATUS_SUCCESS) {
          immediate.fetch_add(1);
          race.calls.fetch_add(1);  // counted as its one completion
          if (i % 2 == 0) std::this_thread::yield();
          PVOID taken = nullptr;
          ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &taken), STATUS_SUCCESS);
          continue;
        }
        ASSERT_EQ(status, STATUS_PENDING);
        if (i % 3 == 0) {
          if (RxCancelMidWait(atlas.get(), &race.block) == TRUE) {
            cancelled.fetch_add(1);
            EXPECT_EQ(race.calls.load(), 1);
            EXPECT_EQ(race.successes.load(), 0);
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // Whatever is still queued is served as the MIDs held now are freed: none are held (every
  // routine frees its MID), so the queue must be empty already.
  EXPECT_EQ(RxGetNumberOfWaiters(atlas.get()), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  int successes = 0;
  for (std::size_t t = 0; t < kThreads; ++t) {
    for (std::size_t i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(blocks[t][i].calls.load(), 1) << t << "/" << i;
      successes += blocks[t][i].successes.load();
    }
  }
  EXPECT_EQ(static_cast<std::size_t>(successes + immediate.load() + cancelled.load()),
            kThreads * kPerThread);
  g_race_atlas = nullptr;
}

}  // namespace
