// The rules both public front ends share, tested once and run against each: the C++ API
// (include/midatlas/mid_atlas.h) and the RDBSS C API (include/midatlas/midatlax.h). Each
// front end is reached through an adapter that speaks one vocabulary (create, associate, map,
// map-and-dissociate, reassociate, iterate-and-remove, counts, destroy), so a rule written
// here holds for both or fails naming the front end (AtlasAssociate/Cpp, AtlasAssociate/C).
//
// What only one front end has stays with it: absl::Status codes and messages, TypedMidAtlas
// and handle moves in mid_atlas_test.cc; NTSTATUS values, NULL atlases and out-pointers and
// USHORT arguments in midatlax_test.cc.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capi/handles.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "api/outcome.h"
#include "support/failing_allocation.h"

namespace midatlas {
namespace {

using testing_support::FailNothrowAllocations;

// ------------------------------------------------------------------------------------------
// The common vocabulary.

// How a call ended, in the terms both front ends document.
using testing_support::Outcome;
using testing_support::OutcomeOf;

// How many times each context was handed to a destructor or an iterator.
using ContextLog = std::map<void*, int>;

// An opaque context that is never dereferenced: any non-null value is valid, aligned or not.
void* FakeContext(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

std::uint32_t CeilDiv(std::uint32_t a, std::uint32_t b) { return (a + b - 1) / b; }

// The C++ front end: a MidAtlas handle.
class CppFrontEnd {
 public:
  static constexpr const char* kName = "Cpp";

  CppFrontEnd() = default;
  CppFrontEnd(const CppFrontEnd&) = delete;
  CppFrontEnd& operator=(const CppFrontEnd&) = delete;
  ~CppFrontEnd() { Destroy(); }

  // Creates the atlas; every context still associated at destruction is counted in
  // `destroyed` when given. False when creation fails.
  bool Create(std::uint32_t max_mids, std::uint32_t initial_mids,
              ContextLog* destroyed = nullptr) {
    AtlasOptions options{.max_mids = max_mids, .initial_mids = initial_mids};
    if (destroyed != nullptr) {
      options.context_destructor = [destroyed](void* context) { ++(*destroyed)[context]; };
    }
    absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(std::move(options));
    if (!atlas.ok()) return false;
    atlas_.emplace(*std::move(atlas));
    return true;
  }

  Outcome Associate(void* context, Mid* mid) {
    absl::StatusOr<Mid> result = atlas_->Associate(context);
    if (result.ok()) *mid = *result;
    return OutcomeOf(result.status());
  }
  [[nodiscard]] void* Map(Mid mid) const { return atlas_->Map(mid); }
  // A failed call hands out no context: *context is null.
  Outcome MapAndDissociate(Mid mid, void** context) {
    absl::StatusOr<void*> result = atlas_->MapAndDissociate(mid);
    *context = result.ok() ? *result : nullptr;
    return OutcomeOf(result.status());
  }
  Outcome Reassociate(Mid mid, void* new_context) {
    return OutcomeOf(atlas_->Reassociate(mid, new_context));
  }
  void IterateAndRemove(absl::FunctionRef<void(void*)> fn) { atlas_->IterateAndRemove(fn); }
  [[nodiscard]] std::uint32_t MidsInUse() const { return atlas_->mids_in_use(); }
  [[nodiscard]] std::uint32_t MaxMids() const { return atlas_->max_mids(); }
  [[nodiscard]] AtlasStats Stats() const { return atlas_->stats(); }
  // Destroys the atlas now, handing what is left to the destructor given at creation.
  void Destroy() { atlas_.reset(); }

 private:

  std::optional<MidAtlas> atlas_;
};

// The C front end: a PRX_MID_ATLAS and plain-function callbacks.
class CFrontEnd {
 public:
  static constexpr const char* kName = "C";

  CFrontEnd() = default;
  CFrontEnd(const CFrontEnd&) = delete;
  CFrontEnd& operator=(const CFrontEnd&) = delete;
  ~CFrontEnd() { Destroy(); }

  // The C API passes the destructor to RxDestroyMidAtlas; the adapter keeps it until then.
  bool Create(std::uint32_t max_mids, std::uint32_t initial_mids,
              ContextLog* destroyed = nullptr) {
    // USHORT arguments: wider values are a C++-only case (midatlax_test.cc covers truncation).
    EXPECT_LE(max_mids, 0xFFFFU);
    EXPECT_LE(initial_mids, 0xFFFFU);
    atlas_ = RxCreateMidAtlas(static_cast<USHORT>(max_mids), static_cast<USHORT>(initial_mids));
    destroyed_ = destroyed;
    return atlas_ != nullptr;
  }

  Outcome Associate(void* context, Mid* mid) {
    USHORT new_mid = 0;
    const NTSTATUS status = RxAssociateContextWithMid(atlas_, context, &new_mid);
    if (status == STATUS_SUCCESS) *mid = new_mid;
    return OutcomeOf(status);
  }
  [[nodiscard]] void* Map(Mid mid) const { return RxMapMidToContext(atlas_, mid); }
  Outcome MapAndDissociate(Mid mid, void** context) {
    // Not null beforehand, so that a failure must write the null the C API promises.
    PVOID out = FakeContext(0x5EED);
    const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas_, mid, &out);
    *context = out;
    return OutcomeOf(status);
  }
  Outcome Reassociate(Mid mid, void* new_context) {
    return OutcomeOf(RxReassociateMid(atlas_, mid, new_context));
  }
  void IterateAndRemove(absl::FunctionRef<void(void*)> fn) {
    // PCONTEXT_ITERATOR is a plain function: it reaches `fn` through a thread-local that
    // is saved and restored, so that an iterator may iterate another atlas.
    const absl::FunctionRef<void(void*)>* const outer = current_iterator_;
    current_iterator_ = &fn;
    RxIterateMidAtlasAndRemove(atlas_, &DeliverToIterator);
    current_iterator_ = outer;
  }
  [[nodiscard]] std::uint32_t MidsInUse() const { return RxGetNumberOfMidsInUse(atlas_); }
  [[nodiscard]] std::uint32_t MaxMids() const { return RxGetMaximumNumberOfMids(atlas_); }
  // The C API has no stats call; its handle is the core itself (src/capi/handles.h), so the
  // test reads the same numbers MidAtlas::stats() reports.
  [[nodiscard]] AtlasStats Stats() const { return internal::CoreOf(atlas_)->stats(); }
  void Destroy() {
    if (atlas_ == nullptr) return;
    destroy_log_ = destroyed_;
    RxDestroyMidAtlas(atlas_, destroyed_ != nullptr ? &CountDestroyed : nullptr);
    destroy_log_ = nullptr;
    atlas_ = nullptr;
  }

 private:
  static void DeliverToIterator(PVOID context) { (*current_iterator_)(context); }
  static void CountDestroyed(PVOID context) { ++(*destroy_log_)[context]; }

  static thread_local const absl::FunctionRef<void(void*)>* current_iterator_;
  static thread_local ContextLog* destroy_log_;

  PRX_MID_ATLAS atlas_ = nullptr;
  ContextLog* destroyed_ = nullptr;
};

thread_local const absl::FunctionRef<void(void*)>* CFrontEnd::current_iterator_ = nullptr;
thread_local ContextLog* CFrontEnd::destroy_log_ = nullptr;

using FrontEnds = testing::Types<CppFrontEnd, CFrontEnd>;

struct FrontEndName {
  template <typename FrontEnd>
  static std::string GetName(int /*index*/) {
    return FrontEnd::kName;
  }
};

// Associates FakeContext(1..n) and returns the MIDs, in order.
template <typename FrontEnd>
std::vector<Mid> AssociateN(FrontEnd& atlas, std::uint32_t n) {
  std::vector<Mid> mids;
  mids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    Mid mid = 0;
    const Outcome outcome = atlas.Associate(FakeContext(std::uintptr_t{i} + 1), &mid);
    EXPECT_EQ(outcome, Outcome::kOk) << "association " << i;
    if (outcome != Outcome::kOk) break;
    mids.push_back(mid);
  }
  return mids;
}

template <typename FrontEnd>
Outcome AssociateOne(FrontEnd& atlas, void* context, Mid* mid = nullptr) {
  Mid ignored = 0;
  return atlas.Associate(context, mid != nullptr ? mid : &ignored);
}

template <typename FrontEnd>
Outcome Dissociate(FrontEnd& atlas, Mid mid, void** context = nullptr) {
  void* ignored = nullptr;
  return atlas.MapAndDissociate(mid, context != nullptr ? context : &ignored);
}

// (max_mids, initial_mids) at the level boundaries: one leaf, several leaves, several
// directories, and a first map that holds every MID.
struct Shape {
  std::uint32_t max_mids;
  std::uint32_t initial_mids;
};

std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  return out << "max " << shape.max_mids << " start " << shape.initial_mids;
}

const std::vector<Shape>& AllInUseShapes() {
  static const std::vector<Shape> kShapes = {{1, 1},        {2, 1},      {2, 2},
                                             {50, 1},       {50, 50},    {65535, 1},
                                             {65535, 50},   {65535, 65535}};
  return kShapes;
}

const std::vector<Shape>& LevelBoundaryShapes() {
  static const std::vector<Shape> kShapes = {{1, 1},      {50, 1},     {65535, 1},  {50, 50},
                                             {65535, 50}, {65535, 64}, {65535, 65535}};
  return kShapes;
}

// One typed suite per operation, so that a failure names the operation and the front end.
template <typename FrontEnd>
class AtlasCreate : public testing::Test {};
template <typename FrontEnd>
class AtlasAssociate : public testing::Test {};
template <typename FrontEnd>
class AtlasMap : public testing::Test {};
template <typename FrontEnd>
class AtlasDissociate : public testing::Test {};
template <typename FrontEnd>
class AtlasReassociate : public testing::Test {};
template <typename FrontEnd>
class AtlasIterateAndRemove : public testing::Test {};
template <typename FrontEnd>
class AtlasDestroy : public testing::Test {};
template <typename FrontEnd>
class AtlasLevels : public testing::Test {};
template <typename FrontEnd>
class AtlasOutOfMemory : public testing::Test {};
template <typename FrontEnd>
class AtlasOrdering : public testing::Test {};
template <typename FrontEnd>
class AtlasConcurrency : public testing::Test {};

TYPED_TEST_SUITE(AtlasCreate, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasAssociate, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasMap, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasDissociate, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasReassociate, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasIterateAndRemove, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasDestroy, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasLevels, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasOutOfMemory, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasOrdering, FrontEnds, FrontEndName);
TYPED_TEST_SUITE(AtlasConcurrency, FrontEnds, FrontEndName);

// ------------------------------------------------------------------------------------------
// Create.

TYPED_TEST(AtlasCreate, RejectsZeroMaximum) {
  for (std::uint32_t initial_mids : {0U, 1U, 50U}) {
    TypeParam atlas;
    EXPECT_FALSE(atlas.Create(0, initial_mids)) << "start " << initial_mids;
  }
}

TYPED_TEST(AtlasCreate, RejectsZeroInitialMids) {
  for (std::uint32_t max_mids : {1U, 50U, 65535U}) {
    TypeParam atlas;
    EXPECT_FALSE(atlas.Create(max_mids, 0)) << "max " << max_mids;
  }
}

TYPED_TEST(AtlasCreate, RejectsInitialMidsAboveMaximum) {
  for (const Shape& shape : std::vector<Shape>{{1, 2}, {50, 51}, {65534, 65535}}) {
    TypeParam atlas;
    EXPECT_FALSE(atlas.Create(shape.max_mids, shape.initial_mids)) << shape;
  }
}

TYPED_TEST(AtlasCreate, AcceptsTheBoundaryValuesAndReportsTheMaximum) {
  for (const Shape& shape :
       std::vector<Shape>{{1, 1}, {50, 50}, {65535, 1}, {65535, 50}, {65535, 65535}}) {
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(shape.max_mids, shape.initial_mids)) << shape;
    EXPECT_EQ(atlas.MaxMids(), shape.max_mids) << shape;
    EXPECT_EQ(atlas.MidsInUse(), 0U) << shape;
  }
}

TYPED_TEST(AtlasCreate, MemoryIsProportionalToInitialMidsNotMaximum) {
  TypeParam small;
  ASSERT_TRUE(small.Create(65535, 50));
  const AtlasStats stats = small.Stats();
  // The maps, and one page of the context region for the first leaf's contexts.
  EXPECT_LT(stats.bytes_attached - stats.context_bytes, 4096U);
  EXPECT_EQ(stats.context_bytes, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(stats.leaf_maps, 1U);
  EXPECT_EQ(stats.directory_maps, 1U);
  EXPECT_EQ(stats.mids_in_use, 0U);

  // A first map of 65535 slots holds at least a pointer per slot.
  TypeParam large;
  ASSERT_TRUE(large.Create(65535, 65535));
  EXPECT_GE(large.Stats().bytes_attached, std::size_t{65535} * sizeof(void*));
}

// ------------------------------------------------------------------------------------------
// Associate.

TYPED_TEST(AtlasAssociate, RejectsANullContextAndLeaksNoMid) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(50, 50));
  Mid mid = 0;
  EXPECT_EQ(atlas.Associate(nullptr, &mid), Outcome::kInvalid);
  EXPECT_EQ(atlas.MidsInUse(), 0U);
  // No MID leaked: all 50 can still be taken.
  EXPECT_EQ(AssociateN(atlas, 50).size(), 50U);
}

TYPED_TEST(AtlasAssociate, HandsOutDistinctMidsThatMapBack) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 50));
  const std::vector<Mid> mids = AssociateN(atlas, 1000);
  ASSERT_EQ(mids.size(), 1000U);
  std::vector<bool> seen(65536, false);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    EXPECT_FALSE(seen[mids[i]]) << "MID " << mids[i] << " handed out twice";
    seen[mids[i]] = true;
    EXPECT_EQ(atlas.Map(mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(atlas.MidsInUse(), 1000U);
}

TYPED_TEST(AtlasAssociate, AcceptsUnalignedAndExtremeContexts) {
  ContextLog destroyed;
  const std::vector<void*> contexts = {
      FakeContext(1), FakeContext(2), FakeContext(3), FakeContext(0x12345),
      FakeContext(std::numeric_limits<std::uintptr_t>::max()),
      FakeContext(std::numeric_limits<std::uintptr_t>::max() - 6),
      FakeContext(std::uintptr_t{1} << (sizeof(std::uintptr_t) * 8 - 1))};
  {
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(65535, 1, &destroyed));
    std::vector<Mid> mids;
    for (void* context : contexts) {
      Mid mid = 0;
      ASSERT_EQ(atlas.Associate(context, &mid), Outcome::kOk);
      mids.push_back(mid);
    }
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      EXPECT_EQ(atlas.Map(mids[i]), contexts[i]);
    }
    // Round-trip each through MapAndDissociate and Reassociate as well.
    void* first = nullptr;
    ASSERT_EQ(atlas.MapAndDissociate(mids[0], &first), Outcome::kOk);
    EXPECT_EQ(first, contexts[0]);
    EXPECT_EQ(atlas.Reassociate(mids[1], contexts[0]), Outcome::kOk);
    EXPECT_EQ(atlas.Map(mids[1]), contexts[0]);
    EXPECT_EQ(atlas.Reassociate(mids[1], contexts[1]), Outcome::kOk);
  }
  // Everything but contexts[0] was still associated at destruction.
  ContextLog expected;
  for (std::size_t i = 1; i < contexts.size(); ++i) expected[contexts[i]] = 1;
  EXPECT_EQ(destroyed, expected);
}

TYPED_TEST(AtlasAssociate, SameContextMayHoldSeveralMids) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(50, 50));
  int request = 0;
  Mid a = 0;
  Mid b = 0;
  ASSERT_EQ(atlas.Associate(&request, &a), Outcome::kOk);
  ASSERT_EQ(atlas.Associate(&request, &b), Outcome::kOk);
  EXPECT_NE(a, b);
  EXPECT_EQ(atlas.Map(a), &request);
  EXPECT_EQ(atlas.Map(b), &request);
  EXPECT_EQ(atlas.MidsInUse(), 2U);
}

// Taking exactly max succeeds, the next fails with "all in use", freeing one lets exactly one
// more in, and that one gets the freed MID.
TYPED_TEST(AtlasAssociate, FailsWithAllInUseExactlyWhenMaxMidsAreInUse) {
  for (const Shape& shape : AllInUseShapes()) {
    SCOPED_TRACE(testing::Message() << shape);
    const std::uint32_t max_mids = shape.max_mids;
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(max_mids, shape.initial_mids));
    const std::vector<Mid> mids = AssociateN(atlas, max_mids);
    ASSERT_EQ(mids.size(), max_mids);
    for (Mid mid : mids) ASSERT_LT(mid, max_mids);
    EXPECT_EQ(atlas.MidsInUse(), max_mids);

    EXPECT_EQ(AssociateOne(atlas, FakeContext(0xABC)), Outcome::kAllInUse);
    EXPECT_EQ(atlas.MidsInUse(), max_mids);

    const Mid freed = mids[mids.size() / 2];
    ASSERT_EQ(Dissociate(atlas, freed), Outcome::kOk);
    EXPECT_EQ(atlas.MidsInUse(), max_mids - 1);

    Mid again = 0;
    ASSERT_EQ(atlas.Associate(FakeContext(0xDEF), &again), Outcome::kOk);
    EXPECT_EQ(again, freed) << "the only free MID";
    EXPECT_EQ(atlas.Map(freed), FakeContext(0xDEF));
    EXPECT_EQ(AssociateOne(atlas, FakeContext(0x123)), Outcome::kAllInUse);
  }
}

TYPED_TEST(AtlasAssociate, ReportsArgumentErrorsBeforeAllInUse) {
  for (const Shape& shape : AllInUseShapes()) {
    SCOPED_TRACE(testing::Message() << shape);
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(shape.max_mids, shape.initial_mids));
    ASSERT_EQ(AssociateN(atlas, shape.max_mids).size(), shape.max_mids);
    EXPECT_EQ(AssociateOne(atlas, nullptr), Outcome::kInvalid);
    EXPECT_EQ(atlas.MidsInUse(), shape.max_mids);
  }
}

// ------------------------------------------------------------------------------------------
// Map.

TYPED_TEST(AtlasMap, ReturnsNullForMidsNeverHandedOut) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 50));
  for (std::uint32_t mid = 0; mid <= 0xFFFF; ++mid) {
    ASSERT_EQ(atlas.Map(static_cast<Mid>(mid)), nullptr) << mid;
  }
  const std::vector<Mid> mids = AssociateN(atlas, 3);
  ASSERT_EQ(mids.size(), 3U);
  std::vector<bool> held(65536, false);
  for (Mid mid : mids) held[mid] = true;
  for (std::uint32_t mid = 0; mid <= 0xFFFF; ++mid) {
    if (!held[mid]) {
      ASSERT_EQ(atlas.Map(static_cast<Mid>(mid)), nullptr) << mid;
    }
  }
}

TYPED_TEST(AtlasMap, ReturnsNullForFreedMids) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  // 100 MIDs span leaf 0 and several subordinate leaves.
  const std::vector<Mid> mids = AssociateN(atlas, 100);
  ASSERT_EQ(mids.size(), 100U);
  for (Mid mid : mids) ASSERT_EQ(Dissociate(atlas, mid), Outcome::kOk);
  for (Mid mid : mids) EXPECT_EQ(atlas.Map(mid), nullptr) << mid;
}

TYPED_TEST(AtlasMap, ReturnsNullAtAndAboveMaximumEvenWhenFull) {
  for (std::uint32_t max_mids : {1U, 50U, 100U, 65534U}) {
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(max_mids, std::min(max_mids, 16U)));
    ASSERT_EQ(AssociateN(atlas, max_mids).size(), max_mids);
    for (std::uint32_t mid = max_mids; mid <= 0xFFFF; ++mid) {
      ASSERT_EQ(atlas.Map(static_cast<Mid>(mid)), nullptr) << "max " << max_mids << " mid " << mid;
    }
  }
}

TYPED_TEST(AtlasMap, Mid65535IsNeverInUse) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 65535));
  ASSERT_EQ(AssociateN(atlas, 65535).size(), 65535U);
  EXPECT_EQ(atlas.MidsInUse(), 65535U);
  EXPECT_EQ(atlas.Map(65535), nullptr);
  void* context = FakeContext(5);
  EXPECT_EQ(atlas.MapAndDissociate(65535, &context), Outcome::kInvalid);
  EXPECT_EQ(context, nullptr);
  EXPECT_EQ(atlas.Reassociate(65535, FakeContext(1)), Outcome::kInvalid);
}

// ------------------------------------------------------------------------------------------
// MapAndDissociate.

TYPED_TEST(AtlasDissociate, ReturnsTheContextAndFreesTheMid) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const std::vector<Mid> mids = AssociateN(atlas, 40);
  ASSERT_EQ(mids.size(), 40U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    void* context = nullptr;
    ASSERT_EQ(atlas.MapAndDissociate(mids[i], &context), Outcome::kOk);
    EXPECT_EQ(context, FakeContext(i + 1));
    EXPECT_EQ(atlas.Map(mids[i]), nullptr);
    EXPECT_EQ(atlas.MidsInUse(), 40U - i - 1);
  }
}

TYPED_TEST(AtlasDissociate, DissociateOfFreeMidChangesNothing) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const std::vector<Mid> mids = AssociateN(atlas, 20);  // leaf 0 and leaf 1
  ASSERT_EQ(mids.size(), 20U);
  ASSERT_EQ(Dissociate(atlas, mids[3]), Outcome::kOk);
  ASSERT_EQ(Dissociate(atlas, mids[18]), Outcome::kOk);
  const AtlasStats before = atlas.Stats();
  // Freed in leaf 0, freed in a subordinate leaf, never handed out in an attached leaf, in an
  // absent leaf, and out of range.
  for (Mid free_mid : {mids[3], mids[18], Mid{31}, Mid{5000}, Mid{65535}}) {
    void* context = nullptr;
    EXPECT_EQ(atlas.MapAndDissociate(free_mid, &context), Outcome::kInvalid) << free_mid;
    EXPECT_EQ(context, nullptr) << "a failed call hands out no context: " << free_mid;
  }
  const AtlasStats after = atlas.Stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  EXPECT_EQ(atlas.MidsInUse(), 18U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i == 3 || i == 18) continue;
    EXPECT_EQ(atlas.Map(mids[i]), FakeContext(i + 1)) << i;
  }
}

TYPED_TEST(AtlasDissociate, SecondDissociateOfTheSameMidFails) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(50, 50));
  Mid mid = 0;
  ASSERT_EQ(atlas.Associate(FakeContext(7), &mid), Outcome::kOk);
  ASSERT_EQ(Dissociate(atlas, mid), Outcome::kOk);
  EXPECT_EQ(Dissociate(atlas, mid), Outcome::kInvalid);
  EXPECT_EQ(atlas.MidsInUse(), 0U);
}

// The RDBSS original decremented its in-use count before checking that the MID was in use, so
// a late duplicate response let the atlas hand out more than MaximumNumberOfMids MIDs.
TYPED_TEST(AtlasDissociate, RdbssCountCorruptionDissociatingAFreeMidKeepsTheCount) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(4, 4));
  const std::vector<Mid> mids = AssociateN(atlas, 3);
  ASSERT_EQ(mids.size(), 3U);
  ASSERT_EQ(Dissociate(atlas, mids[0]), Outcome::kOk);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Dissociate(atlas, mids[0]), Outcome::kInvalid);
    EXPECT_EQ(Dissociate(atlas, 3), Outcome::kInvalid);
  }
  EXPECT_EQ(atlas.MidsInUse(), 2U);
  EXPECT_EQ(atlas.Stats().mids_in_use, 2U);
  // Exactly two more fit, not twenty-two.
  EXPECT_EQ(AssociateOne(atlas, FakeContext(100)), Outcome::kOk);
  EXPECT_EQ(AssociateOne(atlas, FakeContext(101)), Outcome::kOk);
  EXPECT_EQ(AssociateOne(atlas, FakeContext(102)), Outcome::kAllInUse);
  EXPECT_EQ(atlas.MidsInUse(), 4U);
}

// ------------------------------------------------------------------------------------------
// Reassociate.

TYPED_TEST(AtlasReassociate, ReplacesTheContextOfAMidInUse) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const std::vector<Mid> mids = AssociateN(atlas, 20);  // leaf 0 and leaf 1
  ASSERT_EQ(mids.size(), 20U);
  for (Mid mid : {mids[0], mids[19]}) {
    EXPECT_EQ(atlas.Reassociate(mid, FakeContext(0x1001)), Outcome::kOk);
    EXPECT_EQ(atlas.Map(mid), FakeContext(0x1001));
    void* context = nullptr;
    ASSERT_EQ(atlas.MapAndDissociate(mid, &context), Outcome::kOk);
    EXPECT_EQ(context, FakeContext(0x1001));
  }
  EXPECT_EQ(atlas.MidsInUse(), 18U);
}

TYPED_TEST(AtlasReassociate, RejectsAFreeMidAndChangesNothing) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const std::vector<Mid> mids = AssociateN(atlas, 20);
  ASSERT_EQ(mids.size(), 20U);
  ASSERT_EQ(Dissociate(atlas, mids[2]), Outcome::kOk);
  ASSERT_EQ(Dissociate(atlas, mids[17]), Outcome::kOk);
  for (Mid free_mid : {mids[2], mids[17], Mid{25}, Mid{4000}, Mid{65535}}) {
    EXPECT_EQ(atlas.Reassociate(free_mid, FakeContext(0x77)), Outcome::kInvalid) << free_mid;
    EXPECT_EQ(atlas.Map(free_mid), nullptr) << free_mid;
  }
  EXPECT_EQ(atlas.MidsInUse(), 18U);
  // A freed MID rejected by Reassociate is still free: the next associations can take it.
  std::vector<Mid> again = AssociateN(atlas, 2);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (std::vector<Mid>{mids[2], mids[17]}));
}

TYPED_TEST(AtlasReassociate, RejectsANullContextAndChangesNothing) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const std::vector<Mid> mids = AssociateN(atlas, 20);
  ASSERT_EQ(mids.size(), 20U);
  for (std::size_t i : {std::size_t{0}, std::size_t{19}}) {
    EXPECT_EQ(atlas.Reassociate(mids[i], nullptr), Outcome::kInvalid);
    EXPECT_EQ(atlas.Map(mids[i]), FakeContext(i + 1));
  }
  EXPECT_EQ(atlas.MidsInUse(), 20U);
}

// ------------------------------------------------------------------------------------------
// IterateAndRemove.

TYPED_TEST(AtlasIterateAndRemove, HandsEachContextOutOnceAndFreesEveryMid) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  // 3000 MIDs: leaf 0, many subordinate leaves, three directories. Free some to leave holes.
  const std::vector<Mid> mids = AssociateN(atlas, 3000);
  ASSERT_EQ(mids.size(), 3000U);
  ContextLog expected;
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i % 7 == 3) {
      ASSERT_EQ(Dissociate(atlas, mids[i]), Outcome::kOk);
    } else {
      expected[FakeContext(i + 1)] = 1;
    }
  }
  ContextLog received;
  atlas.IterateAndRemove([&received](void* context) { ++received[context]; });
  EXPECT_EQ(received, expected);
  EXPECT_EQ(atlas.MidsInUse(), 0U);
  for (Mid mid : mids) ASSERT_EQ(atlas.Map(mid), nullptr) << mid;
  atlas.IterateAndRemove([](void*) { ADD_FAILURE() << "atlas is empty"; });
  // Every MID can be taken again.
  EXPECT_EQ(AssociateN(atlas, 65535).size(), 65535U);
  EXPECT_EQ(AssociateOne(atlas, FakeContext(1)), Outcome::kAllInUse);
}

TYPED_TEST(AtlasIterateAndRemove, CallbackMayCallAtlasOperations) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  struct Item {
    Mid mid = 0;
    bool marker = false;
  };
  std::vector<Item> originals(100);
  for (Item& item : originals) ASSERT_EQ(atlas.Associate(&item, &item.mid), Outcome::kOk);
  std::vector<Item> markers(originals.size(), Item{.mid = 0, .marker = true});
  std::size_t markers_used = 0;
  std::map<const Item*, int> delivered;
  atlas.IterateAndRemove([&](void* context) {
    auto* item = static_cast<Item*>(context);
    ++delivered[item];
    if (item->marker) return;
    EXPECT_EQ(atlas.Map(item->mid), nullptr) << "MID " << item->mid << " freed before fn runs";
    EXPECT_EQ(Dissociate(atlas, item->mid), Outcome::kInvalid);
    EXPECT_EQ(atlas.Reassociate(item->mid, item), Outcome::kInvalid);
    ASSERT_LT(markers_used, markers.size());
    Item& marker = markers[markers_used++];
    ASSERT_EQ(atlas.Associate(&marker, &marker.mid), Outcome::kOk);
    EXPECT_EQ(atlas.Map(marker.mid), &marker);
  });
  ASSERT_EQ(markers_used, originals.size());
  for (const Item& item : originals) EXPECT_EQ(delivered[&item], 1) << item.mid;
  std::uint32_t markers_held = 0;
  for (const Item& marker : markers) {
    const int times = delivered[&marker];
    const bool held = atlas.Map(marker.mid) == &marker;
    EXPECT_EQ(times + (held ? 1 : 0), 1) << "marker at MID " << marker.mid;
    markers_held += held ? 1U : 0U;
  }
  EXPECT_EQ(atlas.MidsInUse(), markers_held);
}

TYPED_TEST(AtlasIterateAndRemove, DrainedAtlasShrinksBackToItsFirstMaps) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const AtlasStats fresh = atlas.Stats();
  ASSERT_EQ(AssociateN(atlas, 5000).size(), 5000U);
  EXPECT_GT(atlas.Stats().leaf_maps, 300U);
  std::size_t handed = 0;
  atlas.IterateAndRemove([&handed](void*) { ++handed; });
  EXPECT_EQ(handed, 5000U);
  const AtlasStats drained = atlas.Stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1);
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
  EXPECT_LE(drained.bytes_attached, 2 * fresh.bytes_attached);
}

// ------------------------------------------------------------------------------------------
// Destruction.

TYPED_TEST(AtlasDestroy, DestructorGetsEveryStillAssociatedContextOncePerAssociation) {
  ContextLog destroyed;
  ContextLog expected;
  int shared = 0;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16, &destroyed));
  const std::vector<Mid> mids = AssociateN(atlas, 300);  // several leaves
  ASSERT_EQ(mids.size(), 300U);
  for (std::size_t i = 0; i < mids.size(); ++i) {
    if (i % 3 == 0) {
      ASSERT_EQ(Dissociate(atlas, mids[i]), Outcome::kOk);
    } else {
      expected[FakeContext(i + 1)] = 1;
    }
  }
  // One context held by four MIDs, one of them then reassociated away.
  std::vector<Mid> shared_mids(4);
  for (Mid& mid : shared_mids) ASSERT_EQ(atlas.Associate(&shared, &mid), Outcome::kOk);
  ASSERT_EQ(atlas.Reassociate(shared_mids[0], FakeContext(0x5005)), Outcome::kOk);
  expected[&shared] = 3;
  expected[FakeContext(0x5005)] = 1;
  EXPECT_TRUE(destroyed.empty()) << "nothing is destroyed before the atlas is";
  atlas.Destroy();
  EXPECT_EQ(destroyed, expected);
}

TYPED_TEST(AtlasDestroy, DestroyingWithoutADestructorIsAllowedWithContextsStillAssociated) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  ASSERT_EQ(AssociateN(atlas, 2000).size(), 2000U);
  EXPECT_EQ(atlas.MidsInUse(), 2000U);
  atlas.Destroy();  // must neither crash nor leak (the sanitizer builds check both)
}

TYPED_TEST(AtlasDestroy, DestructorIsNotCalledForContextsAlreadyRemoved) {
  ContextLog destroyed;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 50, &destroyed));
  const std::vector<Mid> mids = AssociateN(atlas, 200);
  ASSERT_EQ(mids.size(), 200U);
  ASSERT_EQ(Dissociate(atlas, mids[0]), Outcome::kOk);
  std::size_t handed = 0;
  atlas.IterateAndRemove([&handed](void*) { ++handed; });
  EXPECT_EQ(handed, 199U);
  ASSERT_EQ(AssociateOne(atlas, FakeContext(9)), Outcome::kOk);
  atlas.Destroy();
  EXPECT_EQ(destroyed, (ContextLog{{FakeContext(9), 1}}));
}

// ------------------------------------------------------------------------------------------
// Growth and shrink at the level boundaries.

enum class DrainOrder { kForward, kReverse, kInterleaved };

// Fills an atlas of one shape to its maximum and drains it, checking the maps it attaches.
template <typename FrontEnd>
class LevelRun {
 public:
  LevelRun(FrontEnd& atlas, Shape shape) : atlas_(atlas), shape_(shape) {
    const MidLayout layout = LayoutForInitialMids(shape.initial_mids);
    leaf_capacity_ = std::uint32_t{1} << layout.leaf_bits;
    dir_entries_ = std::uint32_t{1} << layout.dir_bits;
    fresh_ = atlas.Stats();
  }

  [[nodiscard]] const AtlasStats& fresh() const { return fresh_; }
  [[nodiscard]] std::uint32_t leaf_capacity() const { return leaf_capacity_; }

  // Takes every MID, checking that each is new and below max_mids and that maps grow only on
  // demand: after `taken` associations from a fresh atlas exactly ceil(taken / leaf capacity)
  // leaves are attached (a spare kept from an earlier drain may add one).
  std::vector<Mid> FillToMax(bool from_fresh) {
    const std::uint32_t max_mids = shape_.max_mids;
    std::vector<Mid> mids;
    mids.reserve(max_mids);
    std::vector<bool> seen(65536, false);
    for (std::uint32_t i = 0; i < max_mids; ++i) {
      Mid mid = 0;
      const Outcome outcome = atlas_.Associate(FakeContext(std::uintptr_t{i} + 1), &mid);
      EXPECT_EQ(outcome, Outcome::kOk) << "association " << i;
      if (outcome != Outcome::kOk) return mids;
      EXPECT_LT(mid, max_mids);
      EXPECT_FALSE(seen[mid]) << "MID " << mid << " handed out twice";
      seen[mid] = true;
      mids.push_back(mid);
      const std::uint32_t taken = i + 1;
      if (!AtCheckpoint(taken)) continue;
      const AtlasStats stats = atlas_.Stats();
      const std::uint32_t leaves = CeilDiv(taken, leaf_capacity_);
      EXPECT_EQ(stats.mids_in_use, taken);
      if (from_fresh) {
        EXPECT_EQ(stats.leaf_maps, leaves) << "after " << taken << " associations";
        EXPECT_EQ(stats.directory_maps, CeilDiv(leaves, dir_entries_))
            << "after " << taken << " associations";
      } else {
        EXPECT_GE(stats.leaf_maps, leaves) << "after " << taken << " associations";
        EXPECT_LE(stats.leaf_maps, leaves + 1) << "after " << taken << " associations";
      }
    }
    const std::uint32_t all_leaves = CeilDiv(max_mids, leaf_capacity_);
    const AtlasStats full = atlas_.Stats();
    EXPECT_EQ(full.leaf_maps, all_leaves);
    EXPECT_EQ(full.directory_maps, CeilDiv(all_leaves, dir_entries_));
    EXPECT_EQ(atlas_.MidsInUse(), max_mids);
    EXPECT_EQ(AssociateOne(atlas_, FakeContext(0xFFFFF)), Outcome::kAllInUse);
    for (std::uint32_t i = 0; i < mids.size(); ++i) {
      EXPECT_EQ(atlas_.Map(mids[i]), FakeContext(std::uintptr_t{i} + 1)) << "MID " << mids[i];
    }
    return mids;
  }

  void Drain(const std::vector<Mid>& mids, DrainOrder order) {
    std::vector<std::size_t> indices(mids.size());
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
    if (order == DrainOrder::kReverse) std::reverse(indices.begin(), indices.end());
    if (order == DrainOrder::kInterleaved) {
      std::stable_partition(indices.begin(), indices.end(),
                            [](std::size_t i) { return i % 2 == 0; });
    }
    for (std::size_t i : indices) {
      void* context = nullptr;
      ASSERT_EQ(atlas_.MapAndDissociate(mids[i], &context), Outcome::kOk) << "MID " << mids[i];
      ASSERT_EQ(context, FakeContext(i + 1));
    }
    const AtlasStats drained = atlas_.Stats();
    EXPECT_EQ(drained.mids_in_use, 0U);
    EXPECT_EQ(atlas_.MidsInUse(), 0U);
    EXPECT_EQ(atlas_.MaxMids(), shape_.max_mids);
    // The first maps, plus at most one spare leaf and the directory holding it.
    EXPECT_GE(drained.leaf_maps, fresh_.leaf_maps);
    EXPECT_LE(drained.leaf_maps, fresh_.leaf_maps + 1);
    EXPECT_GE(drained.directory_maps, fresh_.directory_maps);
    EXPECT_LE(drained.directory_maps, fresh_.directory_maps + 1);
    EXPECT_LE(drained.bytes_attached, 2 * fresh_.bytes_attached);
    for (Mid mid : mids) ASSERT_EQ(atlas_.Map(mid), nullptr) << mid;
  }

 private:
  // Whether to look at Stats() after `taken` associations: at the first leaf boundaries, at
  // every directory boundary and at the end (every boundary would be quadratic).
  [[nodiscard]] bool AtCheckpoint(std::uint32_t taken) const {
    if (taken == shape_.max_mids) return true;
    const std::uint32_t into_leaf = taken % leaf_capacity_;
    if (into_leaf != 0 && into_leaf != 1) return false;
    const std::uint32_t leaf = (taken - 1) / leaf_capacity_;
    return leaf < 3 || leaf % dir_entries_ <= 1 || leaf % dir_entries_ == dir_entries_ - 1;
  }

  FrontEnd& atlas_;
  Shape shape_;
  std::uint32_t leaf_capacity_ = 0;
  std::uint32_t dir_entries_ = 0;
  AtlasStats fresh_;
};

TYPED_TEST(AtlasLevels, FreshAtlasHasOnlyItsFirstMaps) {
  for (const Shape& shape : LevelBoundaryShapes()) {
    SCOPED_TRACE(testing::Message() << shape);
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(shape.max_mids, shape.initial_mids));
    LevelRun<TypeParam> run(atlas, shape);
    EXPECT_EQ(run.fresh().leaf_maps, 1U);
    EXPECT_EQ(run.fresh().directory_maps, 1U);
    EXPECT_EQ(run.fresh().mids_in_use, 0U);
    EXPECT_GE(run.leaf_capacity(), shape.initial_mids);
  }
}

TYPED_TEST(AtlasLevels, GrowsToMaxAndShrinksBackInEveryDrainOrder) {
  for (const Shape& shape : LevelBoundaryShapes()) {
    SCOPED_TRACE(testing::Message() << shape);
    TypeParam atlas;
    ASSERT_TRUE(atlas.Create(shape.max_mids, shape.initial_mids));
    LevelRun<TypeParam> run(atlas, shape);
    bool from_fresh = true;
    for (DrainOrder order :
         {DrainOrder::kForward, DrainOrder::kReverse, DrainOrder::kInterleaved}) {
      const std::vector<Mid> mids = run.FillToMax(from_fresh);
      ASSERT_EQ(mids.size(), shape.max_mids);
      run.Drain(mids, order);
      if (testing::Test::HasFatalFailure()) return;
      from_fresh = false;
    }
    // And all max_mids can be taken once more.
    EXPECT_EQ(run.FillToMax(false).size(), shape.max_mids);
  }
}

// ------------------------------------------------------------------------------------------
// Out of memory (failing_allocation.h makes the library's nothrow allocations fail).

TYPED_TEST(AtlasOutOfMemory, CreateFailsAtEveryAllocation) {
  for (FailNothrowAllocations::Mode mode : {FailNothrowAllocations::Mode::kOnlyTheNext,
                                            FailNothrowAllocations::Mode::kEveryOneFromThen}) {
    int failures = 0;
    for (long n = 0; n < 32; ++n) {
      TypeParam atlas;
      bool created = false;
      long delivered = 0;
      {
        FailNothrowAllocations fail(n, mode);
        created = atlas.Create(65535, 50);
        delivered = FailNothrowAllocations::failures();
      }
      if (delivered == 0) {
        ASSERT_TRUE(created) << "allocation " << n;
        break;
      }
      EXPECT_FALSE(created) << "allocation " << n;
      ++failures;
    }
    // The atlas object, the hints, the first leaf, ...
    EXPECT_GE(failures, 3);
  }
}

TYPED_TEST(AtlasOutOfMemory, AssociateReportsOutOfMemoryWhenALeafCannotGrowAndChangesNothing) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  ASSERT_EQ(AssociateN(atlas, 16).size(), 16U);  // leaf 0 is full
  const AtlasStats before = atlas.Stats();
  {
    FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kEveryOneFromThen);
    EXPECT_EQ(AssociateOne(atlas, FakeContext(99)), Outcome::kOutOfMemory);
    EXPECT_GT(FailNothrowAllocations::failures(), 0);
  }
  const AtlasStats after = atlas.Stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  EXPECT_EQ(atlas.MidsInUse(), 16U);
  Mid mid = 0;
  ASSERT_EQ(atlas.Associate(FakeContext(99), &mid), Outcome::kOk);
  EXPECT_EQ(atlas.Map(mid), FakeContext(99));
}

// One leaf that cannot be grown does not fail the call while another leaf still can be.
TYPED_TEST(AtlasOutOfMemory, AssociateLooksPastALeafItCannotGrow) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  ASSERT_EQ(AssociateN(atlas, 16).size(), 16U);  // leaf 0 is full
  FailNothrowAllocations fail(0, FailNothrowAllocations::Mode::kOnlyTheNext);
  Mid mid = 0;
  const Outcome outcome = atlas.Associate(FakeContext(99), &mid);
  EXPECT_EQ(FailNothrowAllocations::failures(), 1);
  ASSERT_EQ(outcome, Outcome::kOk);
  EXPECT_GE(mid, 16);
  EXPECT_EQ(atlas.Map(mid), FakeContext(99));
  EXPECT_EQ(atlas.MidsInUse(), 17U);
}

TYPED_TEST(AtlasOutOfMemory, AssociateReportsOutOfMemoryWhenADirectoryCannotGrow) {
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const MidLayout layout = LayoutForInitialMids(16);
  const std::uint32_t first_directory_mids = std::uint32_t{1}
                                             << (layout.leaf_bits + layout.dir_bits);
  ASSERT_EQ(AssociateN(atlas, first_directory_mids).size(), first_directory_mids);
  const AtlasStats before = atlas.Stats();
  ASSERT_EQ(before.directory_maps, 1U);
  // Fail the directory, then (on a second try) the leaf inside the new directory, and every
  // allocation after either.
  for (long n : {0L, 1L}) {
    FailNothrowAllocations fail(n, FailNothrowAllocations::Mode::kEveryOneFromThen);
    EXPECT_EQ(AssociateOne(atlas, FakeContext(99)), Outcome::kOutOfMemory) << n;
    EXPECT_GT(FailNothrowAllocations::failures(), 0) << n;
  }
  const AtlasStats after = atlas.Stats();
  EXPECT_EQ(after.mids_in_use, before.mids_in_use);
  EXPECT_EQ(after.leaf_maps, before.leaf_maps);
  EXPECT_EQ(after.directory_maps, before.directory_maps);
  Mid mid = 0;
  ASSERT_EQ(atlas.Associate(FakeContext(99), &mid), Outcome::kOk);
  EXPECT_GE(mid, first_directory_mids);
  EXPECT_EQ(atlas.Stats().directory_maps, 2U);
}

// ------------------------------------------------------------------------------------------
// Memory ordering: whatever a thread wrote into a context before associating it is visible to
// the thread that obtains the context. On x86 these mostly cannot fail; the TSan build checks
// the happens-before edges.

struct Payload {
  std::uint64_t words[8] = {};  // plain, non-atomic data
};

void Fill(Payload& payload, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < 8; ++i) payload.words[i] = seed * 8 + i;
}

bool Holds(const Payload& payload, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < 8; ++i) {
    if (payload.words[i] != seed * 8 + i) return false;
  }
  return true;
}

TYPED_TEST(AtlasOrdering, WritesBeforeAssociateAreVisibleToTheThreadThatMapsTheMid) {
  constexpr int kRounds = 200;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(1, 1));  // only MID 0 exists
  std::vector<Payload> payloads(kRounds);
  std::barrier<> round_sync(2);
  std::atomic<bool> writer_failed{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      void* context = nullptr;
      // relaxed: only ends the wait; the barrier orders everything else.
      while ((context = atlas.Map(0)) == nullptr) {
        if (writer_failed.load(std::memory_order_relaxed)) break;
      }
      if (context != nullptr) {
        if (!Holds(*static_cast<Payload*>(context), static_cast<std::uint64_t>(round))) {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
        void* taken = nullptr;
        if (atlas.MapAndDissociate(0, &taken) != Outcome::kOk || taken != context) {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    round_sync.arrive_and_wait();
    Payload& payload = payloads[static_cast<std::size_t>(round)];
    Fill(payload, static_cast<std::uint64_t>(round));
    Mid mid = 0xFFFF;
    const Outcome outcome = atlas.Associate(&payload, &mid);
    if (outcome != Outcome::kOk || mid != 0) {
      ADD_FAILURE() << "round " << round << ": " << outcome;
      writer_failed.store(true, std::memory_order_relaxed);
    }
    round_sync.arrive_and_wait();
  }
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

TYPED_TEST(AtlasOrdering, WritesBeforeReassociateAreVisibleToTheThreadThatDissociates) {
  constexpr int kRounds = 200;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(1, 1));
  Payload placeholder;
  std::vector<Payload> payloads(kRounds);
  std::barrier<> round_sync(2);
  std::atomic<bool> writer_failed{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      Payload* const wanted = &payloads[static_cast<std::size_t>(round)];
      // Spin until the reassociation lands, then take the context with MapAndDissociate.
      bool landed = true;
      while (atlas.Map(0) != wanted) {
        // relaxed: only ends the wait; the barrier orders everything else.
        if (writer_failed.load(std::memory_order_relaxed)) {
          landed = false;
          break;
        }
      }
      if (!landed) {
        round_sync.arrive_and_wait();
        continue;
      }
      void* taken = nullptr;
      if (atlas.MapAndDissociate(0, &taken) != Outcome::kOk || taken != wanted ||
          !Holds(*static_cast<Payload*>(taken), static_cast<std::uint64_t>(round))) {
        bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    Mid mid = 0xFFFF;
    const Outcome outcome = atlas.Associate(&placeholder, &mid);
    // The reader is parked at the barrier, so MID 0 is free. On a failure the reader must
    // not wait for a reassociation that cannot land.
    if (outcome != Outcome::kOk || mid != 0) {
      ADD_FAILURE() << "round " << round << ": " << outcome;
      writer_failed.store(true, std::memory_order_relaxed);
    }
    round_sync.arrive_and_wait();
    Payload& payload = payloads[static_cast<std::size_t>(round)];
    Fill(payload, static_cast<std::uint64_t>(round));
    if (outcome == Outcome::kOk) {
      EXPECT_EQ(atlas.Reassociate(0, &payload), Outcome::kOk);
    }
    round_sync.arrive_and_wait();
  }
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

TYPED_TEST(AtlasOrdering, PreviousOwnersWritesAreVisibleToTheNextOwnerOfTheMid) {
  // A per-MID buffer outside the atlas: the old owner writes it and frees the MID, the new
  // owner takes the MID and reads the buffer. Free is release, allocate is acquire.
  constexpr int kRounds = 200;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(1, 1));
  Payload per_mid_buffer;
  int owner_a = 0;
  int owner_b = 0;
  std::barrier<> round_sync(2);
  std::atomic<int> bad_reads{0};
  std::thread next_owner([&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      Mid mid = 0xFFFF;
      Outcome outcome = atlas.Associate(&owner_b, &mid);
      while (outcome == Outcome::kAllInUse) outcome = atlas.Associate(&owner_b, &mid);
      if (outcome != Outcome::kOk || mid != 0 ||
          !Holds(per_mid_buffer, static_cast<std::uint64_t>(round))) {
        bad_reads.fetch_add(1, std::memory_order_relaxed);
      }
      if (outcome == Outcome::kOk) {
        Fill(per_mid_buffer, 0);  // the new owner uses the buffer too
        if (Dissociate(atlas, mid) != Outcome::kOk) {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
      }
      round_sync.arrive_and_wait();
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    Mid mid = 0xFFFF;
    const Outcome outcome = atlas.Associate(&owner_a, &mid);
    if (outcome != Outcome::kOk) ADD_FAILURE() << "round " << round << ": " << outcome;
    round_sync.arrive_and_wait();
    Fill(per_mid_buffer, static_cast<std::uint64_t>(round));
    if (outcome == Outcome::kOk) {
      EXPECT_EQ(Dissociate(atlas, mid), Outcome::kOk);
    }
    round_sync.arrive_and_wait();
  }
  next_owner.join();
  EXPECT_EQ(bad_reads.load(), 0);
}

// ------------------------------------------------------------------------------------------
// Small concurrent checks (the stress tests go further).

TYPED_TEST(AtlasConcurrency, RacingAssociatesOnABoundedAtlasSucceedExactlyMaxTimes) {
  constexpr int kThreads = 4;
  constexpr std::uint32_t kMax = 50;  // four 16-slot leaves, grown under the race
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(kMax, 16));
  std::latch start(kThreads);
  std::vector<std::vector<Mid>> taken(kThreads);
  std::vector<int> other_errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto index = static_cast<std::size_t>(t);
      start.arrive_and_wait();
      for (std::uint32_t i = 0; i < kMax; ++i) {
        Mid mid = 0;
        const Outcome outcome =
            atlas.Associate(FakeContext((std::uintptr_t{index} << 16) | (i + 1)), &mid);
        if (outcome == Outcome::kOk) {
          taken[index].push_back(mid);
        } else if (outcome != Outcome::kAllInUse) {
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
    for (Mid mid : taken[index]) {
      ASSERT_LT(mid, kMax);
      EXPECT_FALSE(seen[mid]) << "MID " << mid << " handed out twice";
      seen[mid] = true;
      ++total;
    }
  }
  EXPECT_EQ(total, kMax);
  EXPECT_EQ(atlas.MidsInUse(), kMax);
}

TYPED_TEST(AtlasConcurrency, ThreadsChurningAcrossLeafBoundariesKeepTheirOwnContexts) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 150;
  constexpr std::uint32_t kBatch = 24;  // 4 x 24 MIDs cross several 16-slot leaves
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  const AtlasStats fresh = atlas.Stats();
  std::latch start(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::vector<Mid> mids;
      for (int round = 0; round < kRounds; ++round) {
        mids.clear();
        for (std::uint32_t i = 0; i < kBatch; ++i) {
          void* context = FakeContext((static_cast<std::uintptr_t>(t + 1) << 24) | (i + 1));
          Mid mid = 0;
          if (atlas.Associate(context, &mid) != Outcome::kOk) {
            errors.fetch_add(1);
            continue;
          }
          if (atlas.Map(mid) != context) errors.fetch_add(1);
          mids.push_back(mid);
        }
        for (std::size_t i = 0; i < mids.size(); ++i) {
          void* context = FakeContext((static_cast<std::uintptr_t>(t + 1) << 24) | (i + 1));
          void* back = nullptr;
          if (atlas.MapAndDissociate(mids[i], &back) != Outcome::kOk || back != context) {
            errors.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  const AtlasStats drained = atlas.Stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, fresh.leaf_maps + 1);
  EXPECT_LE(drained.directory_maps, fresh.directory_maps + 1);
}

TYPED_TEST(AtlasConcurrency, OfTwoRacingDissociatesExactlyOneGetsTheContext) {
  constexpr int kRounds = 300;
  TypeParam atlas;
  ASSERT_TRUE(atlas.Create(65535, 16));
  // Fill leaf 0 so each round's MID lives in a subordinate leaf that drains as it is freed.
  ASSERT_EQ(AssociateN(atlas, 16).size(), 16U);
  std::barrier<> round_sync(3);
  Mid round_mid = 0;
  std::atomic<int> winners{0};
  std::atomic<int> wrong{0};
  auto racer = [&] {
    for (int round = 0; round < kRounds; ++round) {
      round_sync.arrive_and_wait();
      void* context = nullptr;
      const Outcome outcome = atlas.MapAndDissociate(round_mid, &context);
      if (outcome == Outcome::kOk) {
        winners.fetch_add(1);
        if (context != FakeContext(0x4000)) wrong.fetch_add(1);
      } else if (outcome != Outcome::kInvalid || context != nullptr) {
        wrong.fetch_add(1);
      }
      round_sync.arrive_and_wait();
    }
  };
  std::thread a(racer);
  std::thread b(racer);
  int expected_winners = 0;
  for (int round = 0; round < kRounds; ++round) {
    Mid mid = 0;
    const Outcome outcome = atlas.Associate(FakeContext(0x4000), &mid);
    if (outcome == Outcome::kOk) {
      round_mid = mid;
      ++expected_winners;
    } else {
      ADD_FAILURE() << outcome;
    }
    round_sync.arrive_and_wait();
    round_sync.arrive_and_wait();
    EXPECT_EQ(winners.load(), expected_winners) << "round " << round;
  }
  a.join();
  b.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(atlas.MidsInUse(), 16U);
}

}  // namespace
}  // namespace midatlas
