// Guarded lookups and deferred destruction through the extension C API (midatlax_ex.h):
// RxMapMidToContextGuarded, RxReleaseMidGuard, RxRetireContext, RxFlushRetiredContexts.
// The guarantees are pinned here and in tests/api/context_guard_test.cc (the C++ API); this
// suite adds what only the C guard has: its unset state, NULL arguments, and the debug
// checks of a guard released twice or never set.
#include <gtest/gtest.h>

#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "instrumentation/invariants.h"
#include "midatlas/midatlax_ex.h"

namespace {

struct Request {
  static constexpr std::uint64_t kAlive = 0xA11CE'5AFE;
  static constexpr std::uint64_t kPoisoned = 0xDEAD'DEAD;
  std::uint64_t canary = kAlive;
  int destroyed = 0;
};

void DestroyRequest(PVOID context) {
  auto* request = static_cast<Request*>(context);
  ++request->destroyed;
  request->canary = Request::kPoisoned;
}

bool IsUnset(const RX_MID_GUARD& guard) {
  for (const PVOID word : guard.Reserved) {
    if (word != nullptr) return false;
  }
  return true;
}

// A guard whose words hold garbage, as caller storage does before a map sets it.
RX_MID_GUARD DirtyGuard() {
  RX_MID_GUARD guard;
  for (PVOID& word : guard.Reserved) word = reinterpret_cast<PVOID>(std::uintptr_t{0x5A5A5A5A});
  return guard;
}

class MidAtlaxGuard : public testing::Test {
 protected:
  void SetUp() override {
    atlas_ = RxCreateMidAtlas(1024, 16);
    ASSERT_NE(atlas_, nullptr);
  }
  void TearDown() override {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, nullptr);
  }

  USHORT Associate(Request* request) {
    USHORT mid = 0;
    EXPECT_EQ(RxAssociateContextWithMid(atlas_, request, &mid), STATUS_SUCCESS);
    return mid;
  }
  void Dissociate(USHORT mid) {
    PVOID context = nullptr;
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas_, mid, &context), STATUS_SUCCESS);
  }

  PRX_MID_ATLAS atlas_ = nullptr;
};

TEST_F(MidAtlaxGuard, AGuardedMapReturnsTheContextAndSetsTheGuard) {
  Request request;
  const USHORT mid = Associate(&request);
  RX_MID_GUARD guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, mid, &guard), &request);
  EXPECT_FALSE(IsUnset(guard));
  RxReleaseMidGuard(&guard);
  // The guard can be used again once released.
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, mid, &guard), &request);
  RxReleaseMidGuard(&guard);
}

TEST_F(MidAtlaxGuard, AGuardedMapOfAFreeMidReturnsNullAndLeavesTheGuardUnset) {
  Request request;
  const USHORT mid = Associate(&request);
  RX_MID_GUARD guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, static_cast<USHORT>(mid + 1), &guard), nullptr);
  EXPECT_TRUE(IsUnset(guard));
  guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, 1024, &guard), nullptr);  // beyond the maximum
  EXPECT_TRUE(IsUnset(guard));
  Dissociate(mid);
  guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, mid, &guard), nullptr);
  EXPECT_TRUE(IsUnset(guard));
  RxReleaseMidGuard(&guard);  // an unset guard: nothing happens
  EXPECT_TRUE(IsUnset(guard));
}

TEST_F(MidAtlaxGuard, AGuardedMapOfAStaleGenerationReturnsNullAndLeavesTheGuardUnset) {
  RX_MID_ATLAS_PARAMETERS parameters = {};
  parameters.MaximumNumberOfMids = 1;
  parameters.MidsAllocatedAtStart = 1;
  parameters.GenerationBits = 3;
  PRX_MID_ATLAS atlas = RxCreateMidAtlasEx(&parameters);
  ASSERT_NE(atlas, nullptr);
  Request first;
  Request second;
  USHORT old_mid = 0;
  USHORT new_mid = 0;
  PVOID context = nullptr;
  ASSERT_EQ(RxAssociateContextWithMid(atlas, &first, &old_mid), STATUS_SUCCESS);
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas, old_mid, &context), STATUS_SUCCESS);
  ASSERT_EQ(RxAssociateContextWithMid(atlas, &second, &new_mid), STATUS_SUCCESS);
  ASSERT_NE(old_mid, new_mid);  // the same index, the next generation
  RX_MID_GUARD guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(atlas, old_mid, &guard), nullptr);
  EXPECT_TRUE(IsUnset(guard));
  EXPECT_EQ(RxMapMidToContextGuarded(atlas, new_mid, &guard), &second);
  RxReleaseMidGuard(&guard);
  RxDestroyMidAtlas(atlas, nullptr);
}

TEST_F(MidAtlaxGuard, NullArgumentsReturnNullAndDoNothing) {
  Request request;
  const USHORT mid = Associate(&request);
  RX_MID_GUARD guard = DirtyGuard();
  EXPECT_EQ(RxMapMidToContextGuarded(nullptr, mid, &guard), nullptr);
  EXPECT_TRUE(IsUnset(guard));
  EXPECT_EQ(RxMapMidToContextGuarded(atlas_, mid, nullptr), nullptr);
  RxReleaseMidGuard(nullptr);
  RxRetireContext(nullptr, &request, DestroyRequest);
  RxRetireContext(atlas_, nullptr, DestroyRequest);
  RxRetireContext(atlas_, &request, nullptr);
  RxFlushRetiredContexts(nullptr);
  RxFlushRetiredContexts(atlas_);
  EXPECT_EQ(request.destroyed, 0);
  EXPECT_EQ(RxMapMidToContext(atlas_, mid), &request);
}

TEST_F(MidAtlaxGuard, ARetiredContextWaitsForTheGuardAnotherThreadHolds) {
  Request request;
  const USHORT mid = Associate(&request);
  std::latch mapped(1);
  std::latch retired(1);
  std::latch released(1);
  std::uint64_t canary_seen = 0;
  std::thread reader([&] {
    RX_MID_GUARD guard;
    auto* seen = static_cast<Request*>(RxMapMidToContextGuarded(atlas_, mid, &guard));
    mapped.count_down();
    retired.wait();
    canary_seen = seen == nullptr ? 0 : seen->canary;
    if (seen != nullptr) RxReleaseMidGuard(&guard);
    released.count_down();
  });
  mapped.wait();
  Dissociate(mid);
  RxRetireContext(atlas_, &request, DestroyRequest);
  RxFlushRetiredContexts(atlas_);
  EXPECT_EQ(request.destroyed, 0) << "destroyed while another thread held a guard";
  retired.count_down();
  released.wait();
  RxFlushRetiredContexts(atlas_);
  EXPECT_EQ(request.destroyed, 1);
  reader.join();
  EXPECT_EQ(canary_seen, Request::kAlive);
}

TEST_F(MidAtlaxGuard, FlushRunsTheUnguardedAndDestroyRunsTheRest) {
  constexpr int kRequests = 30;
  std::vector<Request> requests(kRequests);
  std::vector<RX_MID_GUARD> guards(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Request* request = &requests[static_cast<std::size_t>(i)];
    const USHORT mid = Associate(request);
    if (i % 3 == 0) {
      EXPECT_EQ(RxMapMidToContextGuarded(atlas_, mid, &guards[static_cast<std::size_t>(i)]),
                request);
    }
    Dissociate(mid);
    RxRetireContext(atlas_, request, DestroyRequest);
  }
  RxFlushRetiredContexts(atlas_);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(requests[static_cast<std::size_t>(i)].destroyed, i % 3 == 0 ? 0 : 1) << i;
  }
  for (int i = 0; i < kRequests; i += 3) RxReleaseMidGuard(&guards[static_cast<std::size_t>(i)]);
  RxDestroyMidAtlas(atlas_, nullptr);  // no flush since the releases: destroy runs them
  atlas_ = nullptr;
  for (const Request& request : requests) EXPECT_EQ(request.destroyed, 1);
}

TEST_F(MidAtlaxGuard, AThreadMayHoldMoreGuardsThanOneHazardRecordHasSlots) {
  constexpr int kGuards = 20;  // three records' worth: the records chain
  std::vector<Request> requests(kGuards);
  std::vector<RX_MID_GUARD> guards(kGuards);
  for (int i = 0; i < kGuards; ++i) {
    Request* request = &requests[static_cast<std::size_t>(i)];
    const USHORT mid = Associate(request);
    ASSERT_EQ(RxMapMidToContextGuarded(atlas_, mid, &guards[static_cast<std::size_t>(i)]),
              request);
    Dissociate(mid);
    RxRetireContext(atlas_, request, DestroyRequest);
  }
  RxFlushRetiredContexts(atlas_);
  for (const Request& request : requests) EXPECT_EQ(request.destroyed, 0);
  // Last taken first, then the rest from the front: both ends of the chain.
  RxReleaseMidGuard(&guards.back());
  RxFlushRetiredContexts(atlas_);
  EXPECT_EQ(requests.back().destroyed, 1);
  for (int i = 0; i + 1 < kGuards; ++i) {
    EXPECT_EQ(requests[static_cast<std::size_t>(i)].destroyed, 0) << i;
    RxReleaseMidGuard(&guards[static_cast<std::size_t>(i)]);
    RxFlushRetiredContexts(atlas_);
    EXPECT_EQ(requests[static_cast<std::size_t>(i)].destroyed, 1) << i;
  }
}

TEST_F(MidAtlaxGuard, EachRetiredContextIsDestroyedExactlyOnce) {
  constexpr int kRequests = 200;
  std::vector<Request> requests(kRequests);
  for (Request& request : requests) {
    const USHORT mid = Associate(&request);
    Dissociate(mid);
    RxRetireContext(atlas_, &request, DestroyRequest);
  }
  RxFlushRetiredContexts(atlas_);
  RxFlushRetiredContexts(atlas_);
  RxDestroyMidAtlas(atlas_, nullptr);
  atlas_ = nullptr;
  for (const Request& request : requests) EXPECT_EQ(request.destroyed, 1);
}

// ----------------------------------------------------------------------------------------
// Debug builds catch the misuses and name the broken invariant.

#if MIDATLAS_CHECK_INVARIANTS
class MidAtlaxGuardDeathTest : public MidAtlaxGuard {
 protected:
  // The threadsafe style re-runs the test binary for each death test instead of forking a
  // process that other tests may have left with threads.
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    MidAtlaxGuard::SetUp();
  }
};

TEST_F(MidAtlaxGuardDeathTest, ReleasingAGuardTwiceAbortsNamingRC4) {
  Request request;
  const USHORT mid = Associate(&request);
  EXPECT_DEATH(
      {
        RX_MID_GUARD guard;
        if (RxMapMidToContextGuarded(atlas_, mid, &guard) == nullptr) std::abort();
        RxReleaseMidGuard(&guard);
        RxReleaseMidGuard(&guard);
      },
      "invariant RC4 broken: a guard was released twice");
}

TEST_F(MidAtlaxGuardDeathTest, ReleasingAGuardNoMapSetAbortsNamingRC4) {
  EXPECT_DEATH(
      {
        RX_MID_GUARD guard = DirtyGuard();
        RxReleaseMidGuard(&guard);
      },
      "invariant RC4 broken: a guard that no guarded map set");
}

TEST_F(MidAtlaxGuardDeathTest, RetiringAContextTwiceAbortsNamingRC3) {
  Request request;
  const USHORT mid = Associate(&request);
  EXPECT_DEATH(
      {
        RX_MID_GUARD guard;  // keeps the first retirement pending
        if (RxMapMidToContextGuarded(atlas_, mid, &guard) == nullptr) std::abort();
        Dissociate(mid);
        RxRetireContext(atlas_, &request, DestroyRequest);
        RxRetireContext(atlas_, &request, DestroyRequest);
      },
      "invariant RC3 broken: a context was retired twice");
}

TEST_F(MidAtlaxGuardDeathTest, DestroyingTheAtlasWhileAGuardHoldsARetiredContextAbortsNamingRC5) {
  Request request;
  const USHORT mid = Associate(&request);
  EXPECT_DEATH(
      {
        RX_MID_GUARD guard;
        if (RxMapMidToContextGuarded(atlas_, mid, &guard) == nullptr) std::abort();
        Dissociate(mid);
        RxRetireContext(atlas_, &request, DestroyRequest);
        RxDestroyMidAtlas(atlas_, nullptr);
      },
      "invariant RC5 broken");
}

TEST_F(MidAtlaxGuardDeathTest, ReleasingAGuardOnAnotherThreadAbortsNamingRC4) {
  Request request;
  const USHORT mid = Associate(&request);
  EXPECT_DEATH(
      {
        RX_MID_GUARD guard;
        if (RxMapMidToContextGuarded(atlas_, mid, &guard) == nullptr) std::abort();
        std::thread([&guard] { RxReleaseMidGuard(&guard); }).join();
      },
      "invariant RC4 broken: a context guard was released by a thread other than");
}
#endif  // MIDATLAS_CHECK_INVARIANTS

}  // namespace
