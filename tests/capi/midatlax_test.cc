// Tests for the RDBSS-compatible C API (include/midatlas/midatlax.h), driven from C++: every
// documented rule, bad input and NULL atlases included. midatlax_c11_test.c compiles the same
// header as C11; mid_atlas_test.cc tests the same rules through the C++ API.
#include "midatlas/midatlax.h"

#include <gtest/gtest.h>

#include "support/failing_allocation.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// ------------------------------------------------------------------------------------------
// The STATUS_* names are macros with the NT values, as in ntstatus.h.

#if !defined(STATUS_SUCCESS) || !defined(STATUS_UNSUCCESSFUL) ||                  \
    !defined(STATUS_NOT_IMPLEMENTED) || !defined(STATUS_INVALID_PARAMETER) || \
    !defined(STATUS_INSUFFICIENT_RESOURCES)
#error "midatlax.h must define the STATUS_* values as macros"
#endif

static_assert(std::is_same_v<NTSTATUS, std::int32_t>);
static_assert(std::is_same_v<USHORT, unsigned short> && sizeof(USHORT) == 2);
static_assert(std::is_same_v<PVOID, void*>);
static_assert(std::is_same_v<decltype(STATUS_SUCCESS), NTSTATUS>);
static_assert(std::is_same_v<decltype(STATUS_INVALID_PARAMETER), NTSTATUS>);
static_assert(STATUS_SUCCESS == 0);
static_assert(static_cast<std::uint32_t>(STATUS_UNSUCCESSFUL) == 0xC0000001U);
static_assert(static_cast<std::uint32_t>(STATUS_NOT_IMPLEMENTED) == 0xC0000002U);
static_assert(static_cast<std::uint32_t>(STATUS_INVALID_PARAMETER) == 0xC000000DU);
static_assert(static_cast<std::uint32_t>(STATUS_INSUFFICIENT_RESOURCES) == 0xC000009AU);
// Error severity: NT_SUCCESS(status) is status >= 0.
static_assert(STATUS_UNSUCCESSFUL < 0 && STATUS_NOT_IMPLEMENTED < 0 &&
              STATUS_INVALID_PARAMETER < 0 && STATUS_INSUFFICIENT_RESOURCES < 0);

// Allocation failure injection: failing_allocation.cc replaces the nothrow operator new.
using midatlas::testing_support::FailNothrowAllocations;

namespace {

// ------------------------------------------------------------------------------------------
// Helpers.

void* FakeContext(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

// Owns an atlas for one test; destroys it without a destructor unless the test did.
class Atlas {
 public:
  Atlas(USHORT max_mids, USHORT initial_mids)
      : atlas_(RxCreateMidAtlas(max_mids, initial_mids)) {}
  Atlas(const Atlas&) = delete;
  Atlas& operator=(const Atlas&) = delete;
  ~Atlas() { Destroy(nullptr); }

  PRX_MID_ATLAS get() const { return atlas_; }
  void Destroy(PCONTEXT_DESTRUCTOR destructor) {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, destructor);
    atlas_ = nullptr;
  }

 private:
  PRX_MID_ATLAS atlas_;
};

// Associates FakeContext(1..n) and returns the MIDs, in order.
std::vector<USHORT> AssociateN(PRX_MID_ATLAS atlas, std::uint32_t n) {
  std::vector<USHORT> mids;
  mids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    USHORT mid = 0;
    const NTSTATUS status =
        RxAssociateContextWithMid(atlas, FakeContext(std::uintptr_t{i} + 1), &mid);
    EXPECT_EQ(status, STATUS_SUCCESS) << "association " << i;
    if (status != STATUS_SUCCESS) break;
    mids.push_back(mid);
  }
  return mids;
}

// What the plain-function callbacks saw. Tests run one at a time, so one log is enough.
std::map<void*, int> g_received;
PRX_MID_ATLAS g_callback_atlas = nullptr;

void RecordContext(PVOID context) { ++g_received[context]; }

class MidatlaxCallbacks : public testing::Test {
 protected:
  void SetUp() override {
    g_received.clear();
    g_callback_atlas = nullptr;
  }
  void TearDown() override {
    g_received.clear();
    g_callback_atlas = nullptr;
  }
};

// ------------------------------------------------------------------------------------------
// Create.

TEST(MidatlaxCreate, ReturnsNullForZeroMaximum) {
  EXPECT_EQ(RxCreateMidAtlas(0, 0), nullptr);
  EXPECT_EQ(RxCreateMidAtlas(0, 1), nullptr);
}

TEST(MidatlaxCreate, ReturnsNullForZeroInitialMids) {
  EXPECT_EQ(RxCreateMidAtlas(50, 0), nullptr);
  EXPECT_EQ(RxCreateMidAtlas(65535, 0), nullptr);
}

TEST(MidatlaxCreate, ReturnsNullForInitialMidsAboveMaximum) {
  EXPECT_EQ(RxCreateMidAtlas(1, 2), nullptr);
  EXPECT_EQ(RxCreateMidAtlas(50, 51), nullptr);
  EXPECT_EQ(RxCreateMidAtlas(65534, 65535), nullptr);
}

TEST(MidatlaxCreate, AcceptsTheBoundaryValuesAndReportsTheMaximum) {
  for (const auto& [max_mids, initial_mids] : std::vector<std::pair<USHORT, USHORT>>{
           {1, 1}, {50, 50}, {65535, 1}, {65535, 50}, {65535, 65535}}) {
    Atlas atlas(max_mids, initial_mids);
    ASSERT_NE(atlas.get(), nullptr) << max_mids << " " << initial_mids;
    EXPECT_EQ(RxGetMaximumNumberOfMids(atlas.get()), max_mids);
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  }
}

// ------------------------------------------------------------------------------------------
// NULL atlas.

TEST(MidatlaxNullAtlas, EveryRoutineRejectsOrIgnoresANullAtlas) {
  USHORT mid = 7;
  EXPECT_EQ(RxAssociateContextWithMid(nullptr, FakeContext(1), &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapMidToContext(nullptr, 0), nullptr);
  EXPECT_EQ(RxMapMidToContext(nullptr, 65535), nullptr);
  PVOID context = FakeContext(3);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(nullptr, 0, &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(nullptr, 0, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReassociateMid(nullptr, 0, FakeContext(1)), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetMaximumNumberOfMids(nullptr), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(nullptr), 0);
}

TEST_F(MidatlaxCallbacks, IterateOnANullAtlasIsANoOp) {
  RxIterateMidAtlasAndRemove(nullptr, &RecordContext);
  RxIterateMidAtlasAndRemove(nullptr, nullptr);
  EXPECT_TRUE(g_received.empty());
}

// ------------------------------------------------------------------------------------------
// Associate.

TEST(MidatlaxAssociate, RejectsNullContextAndNullNewMid) {
  Atlas atlas(50, 50);
  ASSERT_NE(atlas.get(), nullptr);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), nullptr, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), nullptr),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), nullptr, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  // No MID leaked: all 50 can still be taken.
  EXPECT_EQ(AssociateN(atlas.get(), 50).size(), 50U);
}

TEST(MidatlaxAssociate, HandsOutDistinctMidsThatMapBack) {
  Atlas atlas(65535, 50);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 1000);
  ASSERT_EQ(mids.size(), 1000U);
  std::vector<bool> seen(65536, false);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    EXPECT_FALSE(seen[mids[i]]) << "MID " << mids[i] << " handed out twice";
    seen[mids[i]] = true;
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 1000);
}

TEST_F(MidatlaxCallbacks, AcceptsUnalignedAndExtremeContexts) {
  const std::vector<void*> contexts = {
      FakeContext(1), FakeContext(3), FakeContext(0x12345),
      FakeContext(std::numeric_limits<std::uintptr_t>::max()),
      FakeContext(std::uintptr_t{1} << (sizeof(std::uintptr_t) * 8 - 1))};
  Atlas atlas(65535, 1);
  ASSERT_NE(atlas.get(), nullptr);
  std::vector<USHORT> mids;
  for (void* context : contexts) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), context, &mid), STATUS_SUCCESS);
    mids.push_back(mid);
  }
  for (std::size_t i = 0; i < contexts.size(); ++i) {
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), contexts[i]);
  }
  PVOID taken = nullptr;
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &taken), STATUS_SUCCESS);
  EXPECT_EQ(taken, contexts[0]);
  EXPECT_EQ(RxReassociateMid(atlas.get(), mids[1], contexts[0]), STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[1]), contexts[0]);
  EXPECT_EQ(RxReassociateMid(atlas.get(), mids[1], contexts[1]), STATUS_SUCCESS);
  atlas.Destroy(&RecordContext);
  std::map<void*, int> expected;
  for (std::size_t i = 1; i < contexts.size(); ++i) expected[contexts[i]] = 1;
  EXPECT_EQ(g_received, expected);
}

using ShapePair = std::pair<USHORT, USHORT>;

std::string PairName(const testing::TestParamInfo<ShapePair>& param_info) {
  return "Max" + std::to_string(param_info.param.first) + "Start" +
         std::to_string(param_info.param.second);
}

class MidatlaxAllInUse : public testing::TestWithParam<ShapePair> {};

TEST_P(MidatlaxAllInUse, FailsExactlyWhenMaxMidsAreInUse) {
  const auto [max_mids, initial_mids] = GetParam();
  Atlas atlas(max_mids, initial_mids);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), max_mids);
  ASSERT_EQ(mids.size(), max_mids);
  for (USHORT mid : mids) ASSERT_LT(mid, max_mids);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), max_mids);

  USHORT over = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(0xABC), &over),
            STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), max_mids);

  const USHORT freed = mids[mids.size() / 2];
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), freed, &context), STATUS_SUCCESS);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), max_mids - 1);

  USHORT again = 0;
  ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(0xDEF), &again), STATUS_SUCCESS);
  EXPECT_EQ(again, freed) << "the only free MID";
  EXPECT_EQ(RxMapMidToContext(atlas.get(), freed), FakeContext(0xDEF));
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(0x123), &over),
            STATUS_UNSUCCESSFUL);
}

TEST_P(MidatlaxAllInUse, ReportsArgumentErrorsBeforeAllInUse) {
  const auto [max_mids, initial_mids] = GetParam();
  Atlas atlas(max_mids, initial_mids);
  ASSERT_NE(atlas.get(), nullptr);
  ASSERT_EQ(AssociateN(atlas.get(), max_mids).size(), max_mids);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), nullptr, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), nullptr),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), max_mids);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MidatlaxAllInUse,
                         testing::Values(ShapePair{1, 1}, ShapePair{2, 1}, ShapePair{2, 2},
                                         ShapePair{50, 1}, ShapePair{50, 50},
                                         ShapePair{65535, 1}, ShapePair{65535, 50},
                                         ShapePair{65535, 65535}),
                         PairName);

// ------------------------------------------------------------------------------------------
// Map.

TEST(MidatlaxMap, ReturnsNullForMidsNeverHandedOutOrFreed) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  for (std::uint32_t mid = 0; mid <= 0xFFFF; ++mid) {
    ASSERT_EQ(RxMapMidToContext(atlas.get(), static_cast<USHORT>(mid)), nullptr) << mid;
  }
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 100);  // several leaves
  ASSERT_EQ(mids.size(), 100U);
  for (USHORT mid : mids) {
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_SUCCESS);
  }
  for (USHORT mid : mids) EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), nullptr) << mid;
}

TEST(MidatlaxMap, ReturnsNullAtAndAboveMaximumEvenWhenFull) {
  for (USHORT max_mids : {USHORT{1}, USHORT{50}, USHORT{65534}}) {
    Atlas atlas(max_mids, std::min<USHORT>(max_mids, 16));
    ASSERT_NE(atlas.get(), nullptr);
    ASSERT_EQ(AssociateN(atlas.get(), max_mids).size(), max_mids);
    for (std::uint32_t mid = max_mids; mid <= 0xFFFF; ++mid) {
      ASSERT_EQ(RxMapMidToContext(atlas.get(), static_cast<USHORT>(mid)), nullptr)
          << "max " << max_mids << " mid " << mid;
    }
  }
}

TEST(MidatlaxMap, Mid65535IsNeverInUse) {
  Atlas atlas(65535, 65535);
  ASSERT_NE(atlas.get(), nullptr);
  ASSERT_EQ(AssociateN(atlas.get(), 65535).size(), 65535U);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 65535);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), 65535), nullptr);
  PVOID context = FakeContext(5);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), 65535, &context),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(RxReassociateMid(atlas.get(), 65535, FakeContext(1)), STATUS_INVALID_PARAMETER);
}

// ------------------------------------------------------------------------------------------
// MapAndDissociate.

TEST(MidatlaxDissociate, ReturnsTheContextAndFreesTheMid) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 40);
  ASSERT_EQ(mids.size(), 40U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &context), STATUS_SUCCESS);
    EXPECT_EQ(context, FakeContext(i + 1));
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), nullptr);
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), static_cast<USHORT>(40 - i - 1));
  }
}

TEST(MidatlaxDissociate, DissociateOfFreeMidChangesNothing) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);  // leaf 0 and leaf 1
  ASSERT_EQ(mids.size(), 20U);
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[3], &context), STATUS_SUCCESS);
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[18], &context), STATUS_SUCCESS);
  for (USHORT free_mid : {mids[3], mids[18], USHORT{31}, USHORT{5000}, USHORT{65535}}) {
    context = FakeContext(0x5EED);  // must be overwritten with NULL
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), free_mid, &context),
              STATUS_INVALID_PARAMETER)
        << free_mid;
    EXPECT_EQ(context, nullptr) << free_mid;
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 18);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i == 3 || i == 18) continue;
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1)) << i;
  }
}

TEST(MidatlaxDissociate, RejectsNullContextPointerAndKeepsTheMid) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);
  ASSERT_EQ(mids.size(), 20U);
  for (std::size_t i : {std::size_t{0}, std::size_t{19}}) {
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], nullptr),
              STATUS_INVALID_PARAMETER);
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), 5000, nullptr),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 20);
}

// The RDBSS original decremented its in-use count before checking that the MID was in use, so
// a late duplicate response let the atlas hand out more than MaximumNumberOfMids MIDs.
TEST(MidatlaxDissociate, RdbssCountCorruptionDissociatingAFreeMidKeepsTheCount) {
  Atlas atlas(4, 4);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 3);
  ASSERT_EQ(mids.size(), 3U);
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &context), STATUS_SUCCESS);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[0], &context),
              STATUS_INVALID_PARAMETER);
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), 3, &context),
              STATUS_INVALID_PARAMETER);
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 2);
  // Exactly two more fit, not twenty-two.
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(100), &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(101), &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(102), &mid), STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 4);
}

// ------------------------------------------------------------------------------------------
// Reassociate.

TEST(MidatlaxReassociate, ReplacesTheContextOfAMidInUse) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);
  ASSERT_EQ(mids.size(), 20U);
  for (USHORT mid : {mids[0], mids[19]}) {
    EXPECT_EQ(RxReassociateMid(atlas.get(), mid, FakeContext(0x1001)), STATUS_SUCCESS);
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), FakeContext(0x1001));
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_SUCCESS);
    EXPECT_EQ(context, FakeContext(0x1001));
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 18);
}

TEST(MidatlaxReassociate, RejectsAFreeMidAndChangesNothing) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);
  ASSERT_EQ(mids.size(), 20U);
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[2], &context), STATUS_SUCCESS);
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[17], &context), STATUS_SUCCESS);
  for (USHORT free_mid : {mids[2], mids[17], USHORT{25}, USHORT{4000}, USHORT{65535}}) {
    EXPECT_EQ(RxReassociateMid(atlas.get(), free_mid, FakeContext(0x77)),
              STATUS_INVALID_PARAMETER)
        << free_mid;
    EXPECT_EQ(RxMapMidToContext(atlas.get(), free_mid), nullptr) << free_mid;
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 18);
  std::vector<USHORT> again = AssociateN(atlas.get(), 2);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (std::vector<USHORT>{mids[2], mids[17]}));
}

TEST(MidatlaxReassociate, RejectsANullContextAndChangesNothing) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);
  ASSERT_EQ(mids.size(), 20U);
  for (std::size_t i : {std::size_t{0}, std::size_t{19}}) {
    EXPECT_EQ(RxReassociateMid(atlas.get(), mids[i], nullptr), STATUS_INVALID_PARAMETER);
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 20);
}

// ------------------------------------------------------------------------------------------
// Iterate-and-remove.

TEST_F(MidatlaxCallbacks, IterateHandsEachContextOutOnceAndFreesEveryMid) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 3000);  // three directories
  ASSERT_EQ(mids.size(), 3000U);
  std::map<void*, int> expected;
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i % 7 == 3) {
      PVOID context = nullptr;
      ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &context),
                STATUS_SUCCESS);
    } else {
      expected[FakeContext(i + 1)] = 1;
    }
  }
  RxIterateMidAtlasAndRemove(atlas.get(), &RecordContext);
  EXPECT_EQ(g_received, expected);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  for (USHORT mid : mids) ASSERT_EQ(RxMapMidToContext(atlas.get(), mid), nullptr) << mid;
  g_received.clear();
  RxIterateMidAtlasAndRemove(atlas.get(), &RecordContext);
  EXPECT_TRUE(g_received.empty());
  // Every MID can be taken again.
  EXPECT_EQ(AssociateN(atlas.get(), 65535).size(), 65535U);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), &mid), STATUS_UNSUCCESSFUL);
}

TEST_F(MidatlaxCallbacks, IterateWithNullIteratorIsANoOp) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 40);
  ASSERT_EQ(mids.size(), 40U);
  RxIterateMidAtlasAndRemove(atlas.get(), nullptr);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 40);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    EXPECT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1));
  }
}

// Contexts the reentrant iterator works with.
struct Item {
  USHORT mid = 0;
  bool marker = false;
};
std::vector<Item>* g_markers = nullptr;
std::size_t g_markers_used = 0;
int g_callback_errors = 0;

void ReentrantIterator(PVOID context) {
  auto* item = static_cast<Item*>(context);
  ++g_received[item];
  if (item->marker) return;
  PVOID taken = FakeContext(1);
  if (RxMapMidToContext(g_callback_atlas, item->mid) != nullptr) ++g_callback_errors;
  if (RxMapAndDissociateMidFromContext(g_callback_atlas, item->mid, &taken) !=
      STATUS_INVALID_PARAMETER) {
    ++g_callback_errors;
  }
  if (RxReassociateMid(g_callback_atlas, item->mid, item) != STATUS_INVALID_PARAMETER) {
    ++g_callback_errors;
  }
  Item& marker = (*g_markers)[g_markers_used++];
  if (RxAssociateContextWithMid(g_callback_atlas, &marker, &marker.mid) != STATUS_SUCCESS ||
      RxMapMidToContext(g_callback_atlas, marker.mid) != &marker) {
    ++g_callback_errors;
  }
}

TEST_F(MidatlaxCallbacks, IteratorMayCallAtlasRoutines) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  std::vector<Item> originals(100);
  for (Item& item : originals) {
    ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), &item, &item.mid), STATUS_SUCCESS);
  }
  std::vector<Item> markers(originals.size(), Item{.mid = 0, .marker = true});
  g_markers = &markers;
  g_markers_used = 0;
  g_callback_errors = 0;
  g_callback_atlas = atlas.get();
  RxIterateMidAtlasAndRemove(atlas.get(), &ReentrantIterator);
  g_markers = nullptr;
  EXPECT_EQ(g_callback_errors, 0);
  ASSERT_EQ(g_markers_used, originals.size());
  for (Item& item : originals) EXPECT_EQ(g_received[&item], 1) << item.mid;
  int markers_held = 0;
  for (Item& marker : markers) {
    const int times = g_received[&marker];
    const bool held = RxMapMidToContext(atlas.get(), marker.mid) == &marker;
    EXPECT_EQ(times + (held ? 1 : 0), 1) << "marker at MID " << marker.mid;
    markers_held += held ? 1 : 0;
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), markers_held);
}

// ------------------------------------------------------------------------------------------
// Destroy.

TEST_F(MidatlaxCallbacks, DestructorGetsEveryStillAssociatedContextOncePerAssociation) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 300);  // several leaves
  ASSERT_EQ(mids.size(), 300U);
  std::map<void*, int> expected;
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i % 3 == 0) {
      PVOID context = nullptr;
      ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &context),
                STATUS_SUCCESS);
    } else {
      expected[FakeContext(i + 1)] = 1;
    }
  }
  int shared = 0;
  std::vector<USHORT> shared_mids(4);
  for (USHORT& mid : shared_mids) {
    ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), &shared, &mid), STATUS_SUCCESS);
  }
  ASSERT_EQ(RxReassociateMid(atlas.get(), shared_mids[0], FakeContext(0x5005)), STATUS_SUCCESS);
  expected[&shared] = 3;
  expected[FakeContext(0x5005)] = 1;
  atlas.Destroy(&RecordContext);
  EXPECT_EQ(g_received, expected);
}

TEST_F(MidatlaxCallbacks, DestroyWithNullDestructorIsAllowed) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  ASSERT_EQ(AssociateN(atlas.get(), 2000).size(), 2000U);
  atlas.Destroy(nullptr);  // must neither crash nor leak (the sanitizer builds check both)
  EXPECT_EQ(atlas.get(), nullptr);
}

TEST_F(MidatlaxCallbacks, DestructorIsNotCalledForContextsAlreadyRemoved) {
  Atlas atlas(65535, 50);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 200);
  ASSERT_EQ(mids.size(), 200U);
  RxIterateMidAtlasAndRemove(atlas.get(), [](PVOID) {});
  USHORT mid = 0;
  ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(9), &mid), STATUS_SUCCESS);
  atlas.Destroy(&RecordContext);
  EXPECT_EQ(g_received, (std::map<void*, int>{{FakeContext(9), 1}}));
}

// ------------------------------------------------------------------------------------------
// Fill to max and drain, at the level boundaries.

struct Shape {
  USHORT max_mids;
  USHORT initial_mids;
};

std::string ShapeName(const testing::TestParamInfo<Shape>& param_info) {
  return "Max" + std::to_string(param_info.param.max_mids) + "Start" +
         std::to_string(param_info.param.initial_mids);
}

class MidatlaxShape : public testing::TestWithParam<Shape> {};

TEST_P(MidatlaxShape, FillsToMaxAndDrainsInEveryOrder) {
  const Shape shape = GetParam();
  Atlas atlas(shape.max_mids, shape.initial_mids);
  ASSERT_NE(atlas.get(), nullptr);
  for (int order = 0; order < 4; ++order) {
    std::vector<USHORT> mids = AssociateN(atlas.get(), shape.max_mids);
    ASSERT_EQ(mids.size(), shape.max_mids) << "fill " << order;
    std::vector<bool> seen(65536, false);
    for (std::size_t i = 0; i < mids.size(); ++i) {
      ASSERT_LT(mids[i], shape.max_mids);
      ASSERT_FALSE(seen[mids[i]]) << "MID " << mids[i] << " handed out twice";
      seen[mids[i]] = true;
      ASSERT_EQ(RxMapMidToContext(atlas.get(), mids[i]), FakeContext(i + 1));
    }
    ASSERT_EQ(RxGetNumberOfMidsInUse(atlas.get()), shape.max_mids);
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), &mid), STATUS_UNSUCCESSFUL);
    if (order == 3) break;  // the last fill only proves every MID can be taken again
    std::vector<std::size_t> indices(mids.size());
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
    if (order == 1) std::reverse(indices.begin(), indices.end());
    if (order == 2) {
      std::stable_partition(indices.begin(), indices.end(),
                            [](std::size_t i) { return i % 2 == 1; });
    }
    for (std::size_t i : indices) {
      PVOID context = nullptr;
      ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[i], &context), STATUS_SUCCESS);
      ASSERT_EQ(context, FakeContext(i + 1));
    }
    ASSERT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
    ASSERT_EQ(RxGetMaximumNumberOfMids(atlas.get()), shape.max_mids);
  }
}

INSTANTIATE_TEST_SUITE_P(LevelBoundaries, MidatlaxShape,
                         testing::Values(Shape{1, 1}, Shape{50, 1}, Shape{65535, 1},
                                         Shape{50, 50}, Shape{65535, 50}, Shape{65535, 64},
                                         Shape{65535, 65535}),
                         ShapeName);

// ------------------------------------------------------------------------------------------
// Out of memory.

TEST(MidatlaxOutOfMemory, CreateReturnsNullAtEveryAllocation) {
  int failures = 0;
  for (long n = 0; n < 32; ++n) {
    PRX_MID_ATLAS atlas = nullptr;
    long delivered = 0;
    {
      FailNothrowAllocations fail(n, FailNothrowAllocations::Mode::kEveryOneFromThen);
      atlas = RxCreateMidAtlas(65535, 50);
      delivered = FailNothrowAllocations::failures();
    }
    if (delivered == 0) {
      ASSERT_NE(atlas, nullptr);
      RxDestroyMidAtlas(atlas, nullptr);
      break;
    }
    EXPECT_EQ(atlas, nullptr) << "allocation " << n;
    if (atlas != nullptr) RxDestroyMidAtlas(atlas, nullptr);
    ++failures;
  }
  EXPECT_GE(failures, 3);
}

TEST(MidatlaxOutOfMemory, AssociateReportsInsufficientResourcesAndChangesNothing) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  ASSERT_EQ(AssociateN(atlas.get(), 16).size(), 16U);  // leaf 0 is full
  USHORT mid = 0xBEEF;
  {
    FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kEveryOneFromThen);
    EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(99), &mid),
              STATUS_INSUFFICIENT_RESOURCES);
    EXPECT_GT(FailNothrowAllocations::failures(), 0);
  }
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 16);
  ASSERT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(99), &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas.get(), mid), FakeContext(99));
}

// ------------------------------------------------------------------------------------------
// Memory ordering (see mid_atlas_test.cc): the TSan build checks the happens-before edges.

TEST(MidatlaxOrdering, WritesBeforeAssociateAreVisibleToTheThreadThatMapsTheMid) {
  constexpr int kRounds = 200;
  Atlas atlas(1, 1);  // only MID 0 exists
  ASSERT_NE(atlas.get(), nullptr);
  struct Payload {
    std::uint64_t words[8] = {};
  };
  std::vector<Payload> payloads(kRounds);
  std::barrier<> round_sync(2);
  std::atomic<bool> writer_failed{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      PVOID context = nullptr;
      while ((context = RxMapMidToContext(atlas.get(), 0)) == nullptr) {
        if (writer_failed.load(std::memory_order_relaxed)) break;
      }
      if (context != nullptr) {
        const auto* payload = static_cast<const Payload*>(context);
        for (std::uint64_t i = 0; i < 8; ++i) {
          if (payload->words[i] != static_cast<std::uint64_t>(round) * 8 + i) {
            bad_reads.fetch_add(1, std::memory_order_relaxed);
          }
        }
        PVOID taken = nullptr;
        if (RxMapAndDissociateMidFromContext(atlas.get(), 0, &taken) != STATUS_SUCCESS ||
            taken != context) {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    round_sync.arrive_and_wait();
    Payload& payload = payloads[static_cast<std::size_t>(round)];
    for (std::uint64_t i = 0; i < 8; ++i) {
      payload.words[i] = static_cast<std::uint64_t>(round) * 8 + i;
    }
    USHORT mid = 0xFFFF;
    if (RxAssociateContextWithMid(atlas.get(), &payload, &mid) != STATUS_SUCCESS || mid != 0) {
      ADD_FAILURE() << "round " << round;
      writer_failed.store(true, std::memory_order_relaxed);
    }
    round_sync.arrive_and_wait();
  }
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

TEST(MidatlaxConcurrency, RacingAssociatesOnABoundedAtlasSucceedExactlyMaxTimes) {
  constexpr int kThreads = 4;
  constexpr USHORT kMax = 50;
  Atlas atlas(kMax, 16);
  ASSERT_NE(atlas.get(), nullptr);
  std::latch start(kThreads);
  std::vector<std::vector<USHORT>> taken(kThreads);
  std::vector<int> other_errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto index = static_cast<std::size_t>(t);
      start.arrive_and_wait();
      for (std::uint32_t i = 0; i < kMax; ++i) {
        USHORT mid = 0;
        const NTSTATUS status = RxAssociateContextWithMid(
            atlas.get(), FakeContext((std::uintptr_t{index} << 16) | (i + 1)), &mid);
        if (status == STATUS_SUCCESS) {
          taken[index].push_back(mid);
        } else if (status != STATUS_UNSUCCESSFUL) {
          ++other_errors[index];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<bool> seen(kMax, false);
  std::size_t total = 0;
  for (std::size_t index = 0; index < taken.size(); ++index) {
    EXPECT_EQ(other_errors[index], 0);
    for (USHORT mid : taken[index]) {
      ASSERT_LT(mid, kMax);
      EXPECT_FALSE(seen[mid]) << "MID " << mid << " handed out twice";
      seen[mid] = true;
      ++total;
    }
  }
  EXPECT_EQ(total, kMax);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), kMax);
}

}  // namespace
