// The all-in-use check's own allocation failure (DESIGN.md 8.1, AC6): an atlas of more than 64
// leaf maps confirms "all in use" with a scratch array; when that array cannot be allocated,
// Associate must answer out of memory, never an unconfirmed "all in use".
#include <gtest/gtest.h>

#include <cstdint>

#include "atlas/atlas_core.h"
#include "capi/handles.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "support/failing_allocation.h"

namespace midatlas::internal {
namespace {

using testing_support::FailNothrowAllocations;

void* ContextFor(std::uint32_t n) {
  // Any non-null value is a valid context; odd values prove nothing is dereferenced.
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(n) * 2 + 1);
}

// More leaves than the check collects on its stack (64), so it needs a scratch array.
constexpr std::uint32_t kManyLeavesMaxMids = 2000;  // start 1: 16-slot leaves, 125 of them

// Regression: when the check's own scratch array could not be allocated, Associate answered
// "all in use" - a claim the check never confirmed. It must answer out of memory.
TEST(AllInUseCheck, AllocationFailureInsideTheCheckIsOutOfMemoryNotAllInUse) {
  PRX_MID_ATLAS handle = RxCreateMidAtlas(static_cast<USHORT>(kManyLeavesMaxMids), 1);
  ASSERT_NE(handle, nullptr);
  ASSERT_EQ(CoreOf(handle)->stats().leaf_maps, 1U);  // grows to 125 leaves below
  USHORT mid = 0;
  for (std::uint32_t i = 0; i < kManyLeavesMaxMids; ++i) {
    ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(i), &mid), STATUS_SUCCESS) << i;
  }
  ASSERT_GT(CoreOf(handle)->stats().leaf_maps, 64U);
  {
    const FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kOnlyTheNext);
    EXPECT_EQ(RxAssociateContextWithMid(handle, ContextFor(0xABC), &mid),
              STATUS_INSUFFICIENT_RESOURCES);
    EXPECT_EQ(FailNothrowAllocations::failures(), 1) << "the check's scratch array was refused";
  }
  EXPECT_EQ(RxAssociateContextWithMid(handle, ContextFor(0xDEF), &mid), STATUS_UNSUCCESSFUL)
      << "with memory back, the check confirms the atlas full";
  EXPECT_EQ(RxGetNumberOfMidsInUse(handle), kManyLeavesMaxMids);
  RxDestroyMidAtlas(handle, nullptr);
}

TEST(AllInUseCheck, AllocationFailureInsideTheCheckIsResourceExhaustedInCpp) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = kManyLeavesMaxMids, .initial_mids = 1});
  ASSERT_TRUE(atlas.ok()) << atlas.status();
  for (std::uint32_t i = 0; i < kManyLeavesMaxMids; ++i) {
    ASSERT_TRUE(atlas->Associate(ContextFor(i)).ok()) << i;
  }
  {
    const FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kOnlyTheNext);
    EXPECT_EQ(atlas->Associate(ContextFor(0xABC)).status().code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(FailNothrowAllocations::failures(), 1);
  }
  EXPECT_EQ(atlas->Associate(ContextFor(0xDEF)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(atlas->mids_in_use(), kManyLeavesMaxMids);
}

}  // namespace
}  // namespace midatlas::internal
