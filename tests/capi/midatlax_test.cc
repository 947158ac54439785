// What only the RDBSS-compatible C API (include/midatlas/midatlax.h) has, driven from C++: the
// NTSTATUS values, NULL atlases, NULL out-pointers, a NULL iterator or destructor, and USHORT
// arguments and counts. The rules both front ends share are tested once, for both, in
// tests/api/atlas_api_test.cc; midatlax_c11_test.c compiles the header as C11.
#include "midatlas/midatlax.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/failing_allocation.h"

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

// The counts are USHORTs, as in RDBSS.
static_assert(std::is_same_v<decltype(RxGetMaximumNumberOfMids(nullptr)), USHORT>);
static_assert(std::is_same_v<decltype(RxGetNumberOfMidsInUse(nullptr)), USHORT>);

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

void RecordContext(PVOID context) { ++g_received[context]; }

class MidatlaxCallbacks : public testing::Test {
 protected:
  void SetUp() override { g_received.clear(); }
  void TearDown() override { g_received.clear(); }
};

// ------------------------------------------------------------------------------------------
// USHORT arguments and counts.

// A caller that computes a count in a wider type hands the C API only its low 16 bits: a
// maximum of 65536 arrives as 0 (refused), one of 65536 + 50 as 50. The C++ API, which takes
// 32 bits, refuses both (mid_atlas_test.cc).
TEST(MidatlaxCreate, ArgumentsAreUshortsSoAWiderMaximumArrivesTruncated) {
  const std::uint32_t too_wide = 65536;
  EXPECT_EQ(RxCreateMidAtlas(static_cast<USHORT>(too_wide), 1), nullptr);
  Atlas atlas(static_cast<USHORT>(too_wide + 50), 50);
  ASSERT_NE(atlas.get(), nullptr);
  EXPECT_EQ(RxGetMaximumNumberOfMids(atlas.get()), 50);
}

TEST(MidatlaxCounts, TheLargestAtlasCountsEveryMidInAUshortWithoutWrapping) {
  Atlas atlas(65535, 1);
  ASSERT_NE(atlas.get(), nullptr);
  EXPECT_EQ(RxGetMaximumNumberOfMids(atlas.get()), 65535);
  ASSERT_EQ(AssociateN(atlas.get(), 65535).size(), 65535U);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 65535);
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), 0, &context), STATUS_SUCCESS);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 65534);
}

// ------------------------------------------------------------------------------------------
// NTSTATUS values: one per outcome.

TEST(MidatlaxStatus, EachOutcomeHasItsNtstatus) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  USHORT mid = 0;
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxReassociateMid(atlas.get(), mid, FakeContext(2)), STATUS_SUCCESS);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), nullptr, &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReassociateMid(atlas.get(), mid, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReassociateMid(atlas.get(), 9, FakeContext(2)), STATUS_INVALID_PARAMETER);
  PVOID context = nullptr;
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), 9, &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mid, &context), STATUS_SUCCESS);

  ASSERT_EQ(AssociateN(atlas.get(), 16).size(), 16U);  // leaf 0 is full
  {
    FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kEveryOneFromThen);
    EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(3), &mid),
              STATUS_INSUFFICIENT_RESOURCES);
  }

  Atlas full(2, 2);
  ASSERT_NE(full.get(), nullptr);
  ASSERT_EQ(AssociateN(full.get(), 2).size(), 2U);
  EXPECT_EQ(RxAssociateContextWithMid(full.get(), FakeContext(4), &mid), STATUS_UNSUCCESSFUL);
}

// ------------------------------------------------------------------------------------------
// NULL atlas.

TEST(MidatlaxNullAtlas, EveryRoutineRejectsOrIgnoresANullAtlas) {
  USHORT mid = 7;
  EXPECT_EQ(RxAssociateContextWithMid(nullptr, FakeContext(1), &mid), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(mid, 7) << "a failed association writes no MID";
  EXPECT_EQ(RxMapMidToContext(nullptr, 0), nullptr);
  EXPECT_EQ(RxMapMidToContext(nullptr, 65535), nullptr);
  PVOID context = FakeContext(3);
  EXPECT_EQ(RxMapAndDissociateMidFromContext(nullptr, 0, &context), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(context, nullptr) << "a failed dissociation hands out no context";
  EXPECT_EQ(RxMapAndDissociateMidFromContext(nullptr, 0, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxReassociateMid(nullptr, 0, FakeContext(1)), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetMaximumNumberOfMids(nullptr), 0);
  EXPECT_EQ(RxGetNumberOfMidsInUse(nullptr), 0);
}

TEST_F(MidatlaxCallbacks, IterateAndDestroyOnANullAtlasAreNoOps) {
  RxIterateMidAtlasAndRemove(nullptr, &RecordContext);
  RxIterateMidAtlasAndRemove(nullptr, nullptr);
  RxDestroyMidAtlas(nullptr, &RecordContext);
  RxDestroyMidAtlas(nullptr, nullptr);
  EXPECT_TRUE(g_received.empty());
}

// ------------------------------------------------------------------------------------------
// NULL out-pointers.

TEST(MidatlaxAssociate, RejectsANullNewMidAndLeaksNoMid) {
  Atlas atlas(50, 50);
  ASSERT_NE(atlas.get(), nullptr);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), nullptr),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), nullptr, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), 0);
  // No MID leaked: all 50 can still be taken.
  EXPECT_EQ(AssociateN(atlas.get(), 50).size(), 50U);
}

TEST(MidatlaxAssociate, ReportsANullNewMidBeforeAllInUse) {
  for (const auto& [max_mids, initial_mids] :
       std::vector<std::pair<USHORT, USHORT>>{{1, 1},
                                              {2, 1},
                                              {2, 2},
                                              {50, 1},
                                              {50, 50},
                                              {65535, 1},
                                              {65535, 50},
                                              {65535, 65535}}) {
    Atlas atlas(max_mids, initial_mids);
    ASSERT_NE(atlas.get(), nullptr);
    ASSERT_EQ(AssociateN(atlas.get(), max_mids).size(), max_mids);
    EXPECT_EQ(RxAssociateContextWithMid(atlas.get(), FakeContext(1), nullptr),
              STATUS_INVALID_PARAMETER)
        << max_mids << " " << initial_mids;
    EXPECT_EQ(RxGetNumberOfMidsInUse(atlas.get()), max_mids);
  }
}

TEST(MidatlaxDissociate, RejectsANullContextPointerAndKeepsTheMid) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);  // leaf 0 and leaf 1
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

TEST(MidatlaxDissociate, AFailureWritesNullThroughTheContextPointer) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  const std::vector<USHORT> mids = AssociateN(atlas.get(), 20);
  ASSERT_EQ(mids.size(), 20U);
  PVOID context = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), mids[18], &context), STATUS_SUCCESS);
  for (USHORT free_mid : {mids[18], USHORT{31}, USHORT{5000}, USHORT{65535}}) {
    context = FakeContext(0x5EED);  // must be overwritten with NULL
    EXPECT_EQ(RxMapAndDissociateMidFromContext(atlas.get(), free_mid, &context),
              STATUS_INVALID_PARAMETER)
        << free_mid;
    EXPECT_EQ(context, nullptr) << free_mid;
  }
}

// ------------------------------------------------------------------------------------------
// NULL iterator and destructor.

TEST_F(MidatlaxCallbacks, IterateWithANullIteratorIsANoOp) {
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

TEST_F(MidatlaxCallbacks, DestroyWithANullDestructorIsAllowed) {
  Atlas atlas(65535, 16);
  ASSERT_NE(atlas.get(), nullptr);
  ASSERT_EQ(AssociateN(atlas.get(), 2000).size(), 2000U);
  atlas.Destroy(nullptr);  // must neither crash nor leak (the sanitizer builds check both)
  EXPECT_EQ(atlas.get(), nullptr);
  EXPECT_TRUE(g_received.empty());
}

}  // namespace
