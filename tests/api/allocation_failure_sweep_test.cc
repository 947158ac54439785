// Out-of-memory sweeps of the atlas (support/allocation_failure_sweep.h): a workload runs with
// allocation 1, 2, 3, ... failing until a run completes without reaching the failing
// allocation. Every form of operator new can fail (support/failing_allocation.h): the atlas
// object, its hints and maps, directories, the all-in-use check's scratch array, a thread's
// hazard record. Each run must
//   - answer every call with a documented result: C++ ok / kResourceExhausted (growth or the
//     all-in-use check could not allocate) / kUnavailable (only when all max_mids MIDs are
//     held) / kInvalidArgument (a MID not in use); C STATUS_SUCCESS /
//     STATUS_INSUFFICIENT_RESOURCES / STATUS_UNSUCCESSFUL / STATUS_INVALID_PARAMETER, a NULL
//     atlas only for a failed create; no exception may escape;
//   - keep every MID mapped to its own context, and the count of MIDs in use exact;
//   - leave an atlas that, with memory back, fills to exactly max_mids, maps every MID,
//     drains to zero and shrinks back to its first maps;
//   - leak nothing: operator new's live blocks are the same before and after the run (and
//     LeakSanitizer checks the process in the asan build).
//
// The workloads: (a) the C++ API and (b) the C API, each creating an atlas of 3000 MIDs in
// 16-slot leaves (188 leaves in three directories), growing it to full, reassociating,
// shrinking it, growing it again and emptying it with IterateAndRemove; (c) a fresh thread's
// first calls beyond the first map, whose own hazard record is among the allocations that
// fail. Each is swept twice: with only allocation N failing (a transient shortage), and with
// N and every later one failing (memory stays exhausted).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capi/handles.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "reclamation/hazard_domain.h"
#include "api/outcome.h"
#include "support/allocation_failure_sweep.h"
#include "support/failing_allocation.h"

namespace midatlas {
namespace {

using internal::HazardDomain;
using testing_support::AfterFailure;
using testing_support::AllocationThreads;
using testing_support::FailingAllocations;
using testing_support::FailurePlan;
using testing_support::InjectionReport;
using testing_support::LeakCheck;
using testing_support::PinEveryFreeRecord;
using testing_support::SweepAllocationFailures;
using testing_support::SweepSummary;
using testing_support::Violations;

// The atlas every workload uses: 16-slot leaves (initial_mids 1 gives the narrowest leaf
// field), 64 leaves a directory, so 3000 MIDs take 188 leaves in three directories.
constexpr std::uint32_t kMaxMids = 3000;
constexpr std::uint32_t kInitialMids = 1;
constexpr std::uint32_t kLeafSlots = 16;
constexpr std::uint32_t kLeaves = (kMaxMids + kLeafSlots - 1) / kLeafSlots;
// Growth stops after this many out-of-memory answers in a row: under exhausted memory every
// later growth fails too, and each failed Associate tries every absent leaf.
constexpr int kOutOfMemoryStreak = 4;
// Contexts a run may hand out: the growth, the reassociations, the regrowth, the refill.
constexpr std::uint32_t kContexts = 4 * kMaxMids;

using testing_support::Outcome;
using testing_support::OutcomeOf;

// Opaque contexts, never dereferenced: context k is the value (k + 1) * 8.
void* ContextFor(std::uint32_t k) noexcept {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(k + 1) * 8);
}
std::uint32_t IndexOf(void* context) noexcept {
  return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(context) / 8 - 1);
}

// What the atlas must hold: each MID's context and each context's MID. Sized up front, so the
// workload never allocates for it.
class AtlasModel {
 public:
  static constexpr std::int64_t kFree = -1;

  AtlasModel()
      : context_at_(kMaxMids, kFree), position_of_(kMaxMids, 0), mid_of_(kContexts, kFree) {
    held_.reserve(kMaxMids);
  }

  [[nodiscard]] bool Held(Mid mid) const noexcept { return context_at_[mid] != kFree; }
  [[nodiscard]] void* ContextAt(Mid mid) const noexcept {
    return Held(mid) ? ContextFor(static_cast<std::uint32_t>(context_at_[mid])) : nullptr;
  }
  [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }
  [[nodiscard]] Mid newest() const noexcept { return held_.back(); }
  [[nodiscard]] Mid held_at(std::size_t i) const noexcept { return held_[i]; }
  [[nodiscard]] bool contexts_left() const noexcept { return next_context_ < kContexts; }
  std::uint32_t NewContext() noexcept { return next_context_++; }

  void Associated(Mid mid, std::uint32_t context) noexcept {
    context_at_[mid] = context;
    mid_of_[context] = mid;
    position_of_[mid] = held_.size();
    held_.push_back(mid);  // reserved: never allocates
  }
  void Reassociated(Mid mid, std::uint32_t context) noexcept {
    mid_of_[static_cast<std::size_t>(context_at_[mid])] = kFree;
    context_at_[mid] = context;
    mid_of_[context] = mid;
  }
  void Dissociated(Mid mid) noexcept {
    mid_of_[static_cast<std::size_t>(context_at_[mid])] = kFree;
    context_at_[mid] = kFree;
    const std::size_t at = position_of_[mid];
    held_[at] = held_.back();
    position_of_[held_[at]] = at;
    held_.pop_back();
  }
  // The MID `context` is held under, or kFree when it is not held (or is no context of ours).
  [[nodiscard]] std::int64_t MidOf(void* context) const noexcept {
    const std::uint32_t k = IndexOf(context);
    return k < kContexts && ContextFor(k) == context ? mid_of_[k] : kFree;
  }

  // A context handed to an iterator or destructor: it must be held, and now it is not.
  void HandedOut(void* context) noexcept {
    const std::int64_t mid = MidOf(context);
    violations.Expect(mid != kFree, "a context that was not held was handed out");
    if (mid != kFree) Dissociated(static_cast<Mid>(mid));
    ++handed_out;
  }

  Violations violations;
  long handed_out = 0;

 private:
  std::vector<std::int64_t> context_at_;
  std::vector<std::size_t> position_of_;
  std::vector<std::int64_t> mid_of_;
  std::vector<Mid> held_;
  std::uint32_t next_context_ = 0;
};

// The model that iterators and destructors report to (plain functions, for the C API).
AtlasModel* g_sink = nullptr;
void HandOut(void* context) { g_sink->HandedOut(context); }

// ------------------------------------------------------------------------------------------
// The two front ends behind one vocabulary. No call lets an exception out: one that escapes
// is an answer of its own (kThrew), which no rule accepts.

class CppFrontEnd {
 public:
  static constexpr const char* kName = "Cpp";

  Outcome Create() {
    try {
      // A function pointer fits std::function's own storage: building the options allocates
      // nothing.
      absl::StatusOr<MidAtlas> created = MidAtlas::Create(
          {.max_mids = kMaxMids, .initial_mids = kInitialMids, .context_destructor = &HandOut});
      if (!created.ok()) return OutcomeOf(created.status(), /*hot_path=*/false);
      atlas_.emplace(*std::move(created));
      return Outcome::kOk;
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  [[nodiscard]] bool created() const { return atlas_.has_value(); }
  Outcome Associate(void* context, Mid* mid) noexcept {
    absl::StatusOr<Mid> result = atlas_->Associate(context);
    if (result.ok()) *mid = *result;
    return OutcomeOf(result.status(), /*hot_path=*/true);
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return atlas_->Map(mid); }
  Outcome MapAndDissociate(Mid mid, void** context) noexcept {
    absl::StatusOr<void*> result = atlas_->MapAndDissociate(mid);
    *context = result.ok() ? *result : nullptr;
    return OutcomeOf(result.status(), /*hot_path=*/true);
  }
  Outcome Reassociate(Mid mid, void* context) noexcept {
    return OutcomeOf(atlas_->Reassociate(mid, context), /*hot_path=*/true);
  }
  Outcome IterateAndRemove() noexcept {
    try {
      atlas_->IterateAndRemove(&HandOut);
      return Outcome::kOk;
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  [[nodiscard]] std::uint32_t MidsInUse() const noexcept { return atlas_->mids_in_use(); }
  [[nodiscard]] AtlasStats Stats() const noexcept { return atlas_->stats(); }
  void Destroy() noexcept { atlas_.reset(); }

 private:

  std::optional<MidAtlas> atlas_;
};

class CFrontEnd {
 public:
  static constexpr const char* kName = "C";

  Outcome Create() {
    try {
      atlas_ = RxCreateMidAtlas(kMaxMids, kInitialMids);
      // With valid sizes, NULL means that memory was short.
      return atlas_ != nullptr ? Outcome::kOk : Outcome::kOutOfMemory;
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  [[nodiscard]] bool created() const { return atlas_ != nullptr; }
  Outcome Associate(void* context, Mid* mid) noexcept {
    try {
      USHORT new_mid = 0;
      const NTSTATUS status = RxAssociateContextWithMid(atlas_, context, &new_mid);
      if (status == STATUS_SUCCESS) *mid = new_mid;
      return OutcomeOf(status);
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return RxMapMidToContext(atlas_, mid); }
  Outcome MapAndDissociate(Mid mid, void** context) noexcept {
    try {
      PVOID out = ContextFor(kContexts);  // not null: a failure must write the promised NULL
      const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas_, mid, &out);
      *context = out;
      if (status != STATUS_SUCCESS && out != nullptr) return Outcome::kUnexpected;
      return OutcomeOf(status);
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  Outcome Reassociate(Mid mid, void* context) noexcept {
    try {
      return OutcomeOf(RxReassociateMid(atlas_, mid, context));
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  Outcome IterateAndRemove() noexcept {
    try {
      RxIterateMidAtlasAndRemove(atlas_, &HandOut);
      return Outcome::kOk;
    } catch (...) {
      return Outcome::kThrew;
    }
  }
  [[nodiscard]] std::uint32_t MidsInUse() const noexcept { return RxGetNumberOfMidsInUse(atlas_); }
  // The C API has no stats call; its handle is the core itself (src/capi/handles.h).
  [[nodiscard]] AtlasStats Stats() const noexcept { return internal::CoreOf(atlas_)->stats(); }
  void Destroy() noexcept {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, &HandOut);
    atlas_ = nullptr;
  }

 private:

  PRX_MID_ATLAS atlas_ = nullptr;
};

// ------------------------------------------------------------------------------------------
// The workload's steps. None allocates, or asserts: they record into the model's Violations.

// One Associate of a new context, checked against the model.
template <typename Atlas>
Outcome AssociateOne(Atlas& atlas, AtlasModel& model) noexcept {
  Violations& v = model.violations;
  v.Expect(model.contexts_left(), "the workload ran out of contexts");
  if (!model.contexts_left()) return Outcome::kUnexpected;
  const std::uint32_t k = model.NewContext();
  Mid mid = 0;
  const Outcome outcome = atlas.Associate(ContextFor(k), &mid);
  switch (outcome) {
    case Outcome::kOk:
      v.Expect(mid < kMaxMids && !model.Held(mid), "Associate handed out a MID in use", mid);
      if (mid < kMaxMids && !model.Held(mid)) model.Associated(mid, k);
      v.Expect(atlas.Map(mid) == ContextFor(k), "Map after Associate", mid);
      break;
    case Outcome::kOutOfMemory:
      break;  // growth (or the all-in-use check) could not allocate
    case Outcome::kAllInUse:
      v.Expect(model.held() == kMaxMids, "Associate answered all-in-use with MIDs free",
               static_cast<long>(model.held()));
      break;
    default:
      v.Expect(false, "Associate gave an undocumented answer", static_cast<long>(outcome));
  }
  return outcome;
}

// Associates until the atlas is full, `limit` calls were made, or memory looks gone for good.
template <typename Atlas>
void Grow(Atlas& atlas, AtlasModel& model, std::size_t limit) noexcept {
  int out_of_memory_streak = 0;
  for (std::size_t i = 0; i < limit && out_of_memory_streak < kOutOfMemoryStreak; ++i) {
    const Outcome outcome = AssociateOne(atlas, model);
    if (outcome == Outcome::kAllInUse) return;
    out_of_memory_streak = outcome == Outcome::kOutOfMemory ? out_of_memory_streak + 1 : 0;
  }
}

// Every MID maps to its own context (free ones to null), and the count is exact.
template <typename Atlas>
void CheckEveryMid(const Atlas& atlas, AtlasModel& model) noexcept {
  for (std::uint32_t mid = 0; mid < kMaxMids; ++mid) {
    const auto m = static_cast<Mid>(mid);
    model.violations.Expect(atlas.Map(m) == model.ContextAt(m),
                            "Map does not give the MID's context", mid);
  }
  model.violations.Expect(atlas.MidsInUse() == model.held(), "mids_in_use is not exact",
                          static_cast<long>(atlas.MidsInUse()));
}

template <typename Atlas>
void DissociateOne(Atlas& atlas, AtlasModel& model, Mid mid) noexcept {
  void* context = nullptr;
  void* const expected = model.ContextAt(mid);
  const Outcome outcome = atlas.MapAndDissociate(mid, &context);
  model.violations.Expect(outcome == Outcome::kOk && context == expected,
                          "MapAndDissociate of a MID in use", mid);
  if (outcome == Outcome::kOk) model.Dissociated(mid);
}

// The workload (a) / (b): create, grow across leaves and directories to full, reassociate,
// shrink, grow again, empty with IterateAndRemove.
template <typename Atlas>
void AtlasWorkload(Atlas& atlas, AtlasModel& model) noexcept {
  Violations& v = model.violations;
  const Outcome created = atlas.Create();
  v.Expect(created == Outcome::kOk || created == Outcome::kOutOfMemory,
           "create gave an undocumented answer", static_cast<long>(created));
  if (created != Outcome::kOk) return;

  Grow(atlas, model, kMaxMids + 8);  // to full, and then some: the all-in-use check
  CheckEveryMid(atlas, model);

  // Reassociate every fifth MID held; a free MID refuses both calls and changes nothing.
  for (std::size_t i = 0; i < model.held(); i += 5) {
    const Mid mid = model.held_at(i);
    const std::uint32_t k = model.NewContext();
    const Outcome outcome = atlas.Reassociate(mid, ContextFor(k));
    v.Expect(outcome == Outcome::kOk, "Reassociate of a MID in use", mid);
    if (outcome == Outcome::kOk) model.Reassociated(mid, k);
    v.Expect(atlas.Map(mid) == model.ContextAt(mid), "Map after Reassociate", mid);
  }
  for (std::uint32_t mid = 0; mid < kMaxMids; mid += 97) {
    if (model.Held(static_cast<Mid>(mid))) continue;
    void* context = nullptr;
    v.Expect(atlas.Reassociate(static_cast<Mid>(mid), ContextFor(0)) == Outcome::kInvalid,
             "Reassociate of a free MID", mid);
    v.Expect(atlas.MapAndDissociate(static_cast<Mid>(mid), &context) == Outcome::kInvalid &&
                 context == nullptr,
             "MapAndDissociate of a free MID", mid);
  }

  // Shrink: the newest three quarters go, so the high leaves and directories drain and detach;
  // a second dissociate of a MID just freed refuses.
  const std::size_t keep = model.held() / 4;
  while (model.held() > keep) {
    const Mid mid = model.newest();
    DissociateOne(atlas, model, mid);
    if (mid % 16 == 0) {
      void* context = nullptr;
      v.Expect(atlas.MapAndDissociate(mid, &context) == Outcome::kInvalid,
               "a second MapAndDissociate", mid);
    }
  }
  CheckEveryMid(atlas, model);

  // Grow again, into leaves that were detached (and so are allocated anew).
  Grow(atlas, model, kMaxMids / 4);
  CheckEveryMid(atlas, model);

  // Empty it: every context held is handed out once, and nothing else.
  const std::size_t held = model.held();
  const long handed_before = model.handed_out;
  v.Expect(atlas.IterateAndRemove() == Outcome::kOk, "IterateAndRemove threw");
  v.Expect(model.handed_out - handed_before == static_cast<long>(held),
           "IterateAndRemove handed out a wrong number of contexts", model.handed_out);
  CheckEveryMid(atlas, model);
}

// With memory back: the atlas fills to exactly max_mids, maps every MID, drains to zero and
// shrinks back to its first maps; destruction hands out what is left, once each.
template <typename Atlas>
void ExpectFullyUsable(Atlas& atlas, AtlasModel& model) {
  ASSERT_EQ(atlas.MidsInUse(), model.held());
  // Drained: leaf 0 and directory 0, plus at most one spare leaf and its directory.
  const AtlasStats drained = atlas.Stats();
  EXPECT_EQ(drained.mids_in_use, 0U);
  EXPECT_LE(drained.leaf_maps, 2U);
  EXPECT_LE(drained.directory_maps, 2U);

  std::uint32_t associated = 0;
  while (true) {
    const Outcome outcome = AssociateOne(atlas, model);
    if (outcome == Outcome::kAllInUse) break;
    ASSERT_EQ(outcome, Outcome::kOk) << "after " << associated << " MIDs, with memory back";
    ++associated;
  }
  EXPECT_EQ(associated, kMaxMids);
  EXPECT_EQ(atlas.Stats().leaf_maps, kLeaves);
  CheckEveryMid(atlas, model);

  // Everything goes back, lowest MID first: leaf 1 becomes the spare, and every other leaf and
  // directory is detached (a directory that miscounted its leaves would stay).
  for (std::uint32_t mid = 0; mid < kMaxMids; ++mid) {
    DissociateOne(atlas, model, static_cast<Mid>(mid));
  }
  CheckEveryMid(atlas, model);
  const AtlasStats empty = atlas.Stats();
  EXPECT_EQ(empty.mids_in_use, 0U);
  EXPECT_EQ(empty.leaf_maps, 2U);
  EXPECT_EQ(empty.directory_maps, 1U);
  // A few again, for destruction to hand out.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(AssociateOne(atlas, model), Outcome::kOk);
  EXPECT_EQ(model.violations.count(), 0) << model.violations.Describe();
}

// One run of workload (a) or (b) under `plan`.
template <typename Atlas>
InjectionReport AtlasRun(const FailurePlan& plan) {
  AtlasModel model;
  g_sink = &model;
  const LeakCheck leak_check;
  InjectionReport report;
  {
    Atlas atlas;
    {
      FailingAllocations injection(plan);
      AtlasWorkload(atlas, model);
      injection.Disarm();
      report = injection.report();
    }
    EXPECT_EQ(model.violations.count(), 0) << model.violations.Describe();
    if (atlas.created()) {
      ExpectFullyUsable(atlas, model);
      const long handed_before = model.handed_out;
      const std::size_t left = model.held();
      atlas.Destroy();
      EXPECT_EQ(model.handed_out - handed_before, static_cast<long>(left))
          << "destruction hands every context left to the destructor, once";
    }
  }
  leak_check.ExpectNothingLeaked();
  g_sink = nullptr;
  return report;
}

// ------------------------------------------------------------------------------------------
// (a) and (b): both front ends, transient and persistent failure.

template <typename Atlas>
class AtlasAllocationFailureSweep : public ::testing::Test {};

using FrontEnds = ::testing::Types<CppFrontEnd, CFrontEnd>;
struct FrontEndNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(AtlasAllocationFailureSweep, FrontEnds, FrontEndNames);

// Each allocation the workload makes is failed once: every leaf and directory of the growth,
// the atlas's own three, the all-in-use check's scratch array, the regrowth after shrinking.
TYPED_TEST(AtlasAllocationFailureSweep,
           EveryCallAnswersAndTheAtlasRecoversWhicheverAllocationFails) {
  const SweepSummary summary = SweepAllocationFailures(
      "atlas, one allocation fails", {.after = AfterFailure::kSucceed}, 2000,
      [](const FailurePlan& plan) { return AtlasRun<TypeParam>(plan); });
  // At least the atlas, its hints, leaf 0, every other leaf and two directories.
  EXPECT_GE(summary.runs, 3 + (kLeaves - 1) + 2);
}

// From allocation N on, every allocation fails: the workload goes on with whatever it has.
TYPED_TEST(AtlasAllocationFailureSweep, EveryCallAnswersAndTheAtlasRecoversWhenMemoryRunsOut) {
  const SweepSummary summary = SweepAllocationFailures(
      "atlas, memory runs out", {.after = AfterFailure::kFail}, 2000,
      [](const FailurePlan& plan) { return AtlasRun<TypeParam>(plan); });
  EXPECT_GE(summary.runs, 3 + (kLeaves - 1) + 2);
}

// ------------------------------------------------------------------------------------------
// (c) A fresh thread's first calls beyond the first map. Its hazard record is allocated on its
// first such call; when that allocation fails the thread borrows the domain's emergency record
// (RecordLease) and must still answer every call.

// MIDs the fresh thread works on: leaves 0..12 full beforehand (208 MIDs).
constexpr std::uint32_t kPrefilled = 13 * kLeafSlots;
constexpr Mid kInLeaf5 = 5 * kLeafSlots + 3;
constexpr Mid kInLeaf7 = 7 * kLeafSlots + 9;
constexpr Mid kFirstOfLeaf12 = 12 * kLeafSlots;

// What the fresh thread saw.
struct FreshThreadResult {
  InjectionReport report;
  Outcome growth = Outcome::kUnexpected;  // its Associate that needed a new leaf
  std::size_t records_pinned = 0;         // hazard records in the domain before it ran
  std::size_t records_after = 0;          // and after
};

// The fresh thread's calls, in the order a thread new to the atlas might make them. Only
// the growth may answer out of memory; everything else needs no allocation and must succeed.
void FreshThreadWorkload(CppFrontEnd& atlas, AtlasModel& model, FreshThreadResult& result) {
  Violations& v = model.violations;
  // Map beyond the first map: the thread's first call that needs a hazard record.
  v.Expect(atlas.Map(kInLeaf5) == model.ContextAt(kInLeaf5), "first Map beyond the first map");
  v.Expect(atlas.Map(3) == model.ContextAt(3), "Map in the first map");
  // Every attached leaf is full: this Associate must grow a leaf.
  result.growth = AssociateOne(atlas, model);
  v.Expect(result.growth == Outcome::kOk || result.growth == Outcome::kOutOfMemory,
           "Associate that grows", static_cast<long>(result.growth));
  const std::uint32_t k = model.NewContext();
  v.Expect(atlas.Reassociate(kInLeaf7, ContextFor(k)) == Outcome::kOk, "Reassociate");
  model.Reassociated(kInLeaf7, k);
  v.Expect(atlas.Map(kInLeaf7) == ContextFor(k), "Map after Reassociate");
  DissociateOne(atlas, model, kInLeaf7);
  void* context = nullptr;
  v.Expect(atlas.MapAndDissociate(kInLeaf7, &context) == Outcome::kInvalid,
           "a second MapAndDissociate");
  // Leaf 7 has a free slot now: no allocation is needed, so none may be reported.
  v.Expect(AssociateOne(atlas, model) == Outcome::kOk, "Associate into a free slot");
  v.Expect(atlas.MidsInUse() == model.held(), "mids_in_use",
           static_cast<long>(atlas.MidsInUse()));
  // Leaf 12 drains: it becomes the spare, or is detached and retired.
  for (std::uint32_t slot = 0; slot < kLeafSlots; ++slot) {
    DissociateOne(atlas, model, static_cast<Mid>(kFirstOfLeaf12 + slot));
  }
  const std::size_t held = model.held();
  const long handed_before = model.handed_out;
  v.Expect(atlas.IterateAndRemove() == Outcome::kOk, "IterateAndRemove threw");
  v.Expect(model.handed_out - handed_before == static_cast<long>(held),
           "IterateAndRemove handed out a wrong number of contexts", model.handed_out);
  v.Expect(atlas.MidsInUse() == 0, "mids_in_use after IterateAndRemove",
           static_cast<long>(atlas.MidsInUse()));
  v.Expect(atlas.Map(kInLeaf5) == nullptr, "Map after IterateAndRemove");
}

// One run of workload (c): the atlas is set up by this thread, the fresh thread arms its own
// injection (kArmingThread) as its first act.
FreshThreadResult FreshThreadRun(const FailurePlan& plan) {
  AtlasModel model;
  g_sink = &model;
  FreshThreadResult result;
  HazardDomain& domain = HazardDomain::Default();
  const LeakCheck leak_check;
  {
    CppFrontEnd atlas;
    [&] {
      ASSERT_EQ(atlas.Create(), Outcome::kOk);
      for (std::uint32_t i = 0; i < kPrefilled; ++i) {
        ASSERT_EQ(AssociateOne(atlas, model), Outcome::kOk);
      }
      ASSERT_EQ(atlas.Stats().leaf_maps, kPrefilled / kLeafSlots);
      const PinEveryFreeRecord pin;
      result.records_pinned = domain.record_count();
      std::thread fresh([&] {
        FailurePlan own = plan;
        own.threads = AllocationThreads::kArmingThread;
        FailingAllocations injection(own);
        FreshThreadWorkload(atlas, model, result);
        injection.Disarm();
        result.report = injection.report();
      });
      fresh.join();
      result.records_after = domain.record_count();
    }();
    EXPECT_EQ(model.violations.count(), 0) << model.violations.Describe();
    // The thread allocated one record at most (none when its allocation failed for good).
    EXPECT_LE(result.records_after, result.records_pinned + 1);
    if (atlas.created()) {
      ExpectFullyUsable(atlas, model);
      atlas.Destroy();
    }
  }
  leak_check.ExpectNothingLeaked();
  g_sink = nullptr;
  return result;
}

TEST(FreshThreadAllocationFailureSweep, AFreshThreadAnswersEveryCallWhicheverAllocationFails) {
  const SweepSummary summary = SweepAllocationFailures(
      "fresh thread, one allocation fails", {.after = AfterFailure::kSucceed}, 200,
      [](const FailurePlan& plan) { return FreshThreadRun(plan).report; });
  EXPECT_GE(summary.runs, 2) << "the thread's hazard record and the leaf it grows";
}

TEST(FreshThreadAllocationFailureSweep, AFreshThreadAnswersEveryCallWhenMemoryRunsOut) {
  const SweepSummary summary = SweepAllocationFailures(
      "fresh thread, memory runs out", {.after = AfterFailure::kFail}, 200,
      [](const FailurePlan& plan) { return FreshThreadRun(plan).report; });
  EXPECT_GE(summary.runs, 2) << "the thread's hazard record and the leaf it grows";
}

// Regression: a thread whose first call beyond the first map could not allocate its hazard
// record terminated the process (a throwing new inside noexcept functions). Now every call
// answers through the emergency record, and only the growth reports out of memory.
TEST(FreshThreadAllocationFailureSweep,
     OutOfMemoryOnAThreadsFirstCallBeyondTheFirstMapDoesNotTerminate) {
  const FreshThreadResult result = FreshThreadRun({.fail_at = 1, .after = AfterFailure::kFail});
  EXPECT_TRUE(result.report.reached);
  EXPECT_GE(result.report.failures, 2) << "the record, then the leaf, could not be allocated";
  EXPECT_EQ(result.growth, Outcome::kOutOfMemory);
  // The thread never got a record of its own: every call went through the emergency record.
  EXPECT_EQ(result.records_after, result.records_pinned);
}

}  // namespace
}  // namespace midatlas
