// The cases the deterministic scheduler explores: the small races of docs/DESIGN.md, each on
// the real code (AtlasCore, FreeStack, HazardDomain of the dsched build of the library), each
// from a fixed state built by the main thread before every execution.
//
//   FreeStackAbaCase             push/pop races on one free stack: pop, pop, push back (ABA,
//                                FS2); no slot is held twice, the stack ends whole
//   HintWindowCase               the last slot of leaf 1 popped (hints:L1)/(hints:L2) while a
//                                dissociate frees one (hints:L3): LH1 holds afterwards
//   AllInUseCase                 the same plus a third associate, which may report "all in
//                                use" only as DESIGN.md 8.1 allows (AC6's double collect)
//   FreezeVsPopCase              a drained leaf being frozen (stack:S4) while an associate
//                                pops its slot (FS3)
//   GrowVsUnlinkCase             a grower counting into and installing a leaf in directory 1
//                                while the dissociate that drained it unlinks the directory
//                                (DM1/DM2)
//   HazardProtectVsReclaimCase   two readers protecting a node (TryProtect, Protect) while a
//                                writer unlinks, retires and scans, in the fenced form
//   DissociateReassociateIterateCase  MapAndDissociate, Reassociate and IterateAndRemove on
//                                one MID: every context reaches exactly one owner
//   GuardedMapVsRetireCase       two guarded maps (ContextHazard) of one MID while a writer
//                                replaces its context, retires the old one and so scans:
//                                no reader reads a destroyed context (RC1)
//
// Atlas cases record a history (invocation and response tickets) that lin::Checker checks,
// and then, quiescent: no MID held twice, never more than max, every held MID maps to its
// context and no free one maps to anything, mids_in_use, and LH1 for every leaf.
#ifndef MIDATLAS_TESTS_DSCHED_CASES_H_
#define MIDATLAS_TESTS_DSCHED_CASES_H_

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "atlas/atlas_core.h"
#include "atlas/context_region.h"
#include "atlas/free_stack.h"
#include "atlas/map_nodes.h"
#include "dsched/explorer.h"
#include "instrumentation/atomic.h"
#include "lin/checker.h"
#include "reclamation/context_hazard.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"

namespace midatlas::internal {

// AtlasCore's friend (atlas_core.h), for the quiescent checks: the hint bits and the leaves.
// Used by the main thread only, after every logical thread returned: relaxed loads.
class AtlasCoreTestPeer {
 public:
  static std::uint32_t LeafCount(const AtlasCore& core) noexcept { return core.leaf_count_; }
  static bool Hinted(const AtlasCore& core, std::uint32_t leaf) noexcept {
    return core.hints_.Test(leaf);
  }
  // The attached leaf `leaf_index`, or nullptr.
  static const LeafMap* Leaf(const AtlasCore& core, std::uint32_t leaf_index) noexcept {
    if (leaf_index == 0) return core.leaf0_;
    const DirectoryMap* dir =
        core.root_[leaf_index >> core.dir_shift_].load(std::memory_order_relaxed);
    return dir == nullptr ? nullptr : dir->LoadLeafQuiescent(leaf_index & core.entry_mask_);
  }
};

}  // namespace midatlas::internal

namespace midatlas::dsched {

using internal::AtlasCore;
using internal::AtlasCoreTestPeer;
using internal::AtlasResult;
using internal::FreeStack;
using lin::Code;
using lin::Ctx;
using lin::Kind;
using lin::Op;

inline void* AsPointer(Ctx ctx) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ctx)); }
inline Ctx AsCtx(void* pointer) { return static_cast<Ctx>(reinterpret_cast<std::uintptr_t>(pointer)); }

inline Code CodeOf(AtlasResult result) {
  switch (result) {
    case AtlasResult::kOk:
      return Code::kOk;
    case AtlasResult::kAllInUse:
      return Code::kUnavailable;
    case AtlasResult::kInvalidArgument:
      return Code::kInvalid;
    case AtlasResult::kCancelled:
      return Code::kCancelled;
    case AtlasResult::kOutOfMemory:
    case AtlasResult::kTimeout:
    case AtlasResult::kPending:
      return Code::kOther;
  }
  return Code::kOther;
}

// --- free stack ---------------------------------------------------------------------------

class FreeStackAbaCase final : public Case {
 public:
  static constexpr std::uint32_t kSlots = 3;
  [[nodiscard]] const char* name() const override { return "free_stack_aba"; }
  [[nodiscard]] int threads() const override { return 3; }

  void Setup() override {
    stack_.InitUnshared(links_.data(), 0, kSlots);
    holder_.fill(-1);
  }

  // t0: pop, push it back. t1: pop a, pop b, push a (the ABA: the head's top is a again, with
  // another link), push b. t2: pop, pop, push both back.
  void Run(int thread) override {
    std::vector<std::uint32_t> mine;
    const int pops = thread == 0 ? 1 : 2;
    for (int i = 0; i < pops; ++i) {
      const std::uint32_t slot = Pop(thread);
      if (slot != FreeStack::kNone) mine.push_back(slot);
    }
    for (const std::uint32_t slot : mine) Push(thread, slot);
  }

  void Check() override {
    const FreeStack::Head head = stack_.Load();
    std::vector<std::uint32_t> seen;
    for (std::uint32_t slot = head.top; slot != FreeStack::kNone && seen.size() <= kSlots;
         slot = links_[slot].load(std::memory_order_relaxed)) {
      if (slot >= kSlots) {
        Fail("the stack links to slot " + std::to_string(slot) + ", which does not exist");
        return;
      }
      seen.push_back(slot);
    }
    std::sort(seen.begin(), seen.end());
    if (seen != std::vector<std::uint32_t>{0, 1, 2} || head.free != kSlots) {
      Fail("the stack ends with " + std::to_string(seen.size()) + " linked slots and a free "
           "count of " + std::to_string(head.free) + " (want slots 0, 1, 2 once each, count 3)");
    }
  }
  void Teardown() override {}

 private:
  std::uint32_t Pop(int thread) {
    const FreeStack::PopResult popped = stack_.Pop(links_.data());
    if (popped.index == FreeStack::kNone) return FreeStack::kNone;
    if (popped.index >= kSlots) {
      Fail("pop returned slot " + std::to_string(popped.index));
      return FreeStack::kNone;
    }
    int& holder = holder_[popped.index];
    if (holder >= 0) {
      Fail("slot " + std::to_string(popped.index) + " popped by thread " + std::to_string(thread) +
           " while thread " + std::to_string(holder) + " holds it (FS2)");
      return FreeStack::kNone;
    }
    holder = thread;
    return popped.index;
  }
  void Push(int thread, std::uint32_t slot) {
    static_cast<void>(thread);
    holder_[slot] = -1;  // before the push: once it is on the stack another thread may pop it
    stack_.Push(links_.data(), slot);
  }

  FreeStack stack_;
  std::array<internal::Atomic<std::uint32_t>, kSlots> links_{};
  std::array<int, kSlots> holder_{};
};

// --- the atlas ----------------------------------------------------------------------------

class AtlasCase : public Case {
 public:
  void Check() override {
    CheckHistory();
    CheckQuiescent();
  }
  void Teardown() override {
    AtlasCore::Destroy(core_);
    core_ = nullptr;
  }

 protected:
  static constexpr Mid kNoMid = 0xFFFF;

  // --- main thread, before the logical threads run ---
  void CreateAtlas(std::uint32_t max_mids, std::uint32_t initial_mids,
                   std::uint32_t generation_bits = 0) {
    core_ = AtlasCore::New({.max_mids = max_mids, .initial_mids = initial_mids,
                            .generation_bits = generation_bits},
                           {});
    if (core_ == nullptr) std::abort();
    generation_bits_ = generation_bits;
    initial_.assign(max_mids, 0);
    ops_.clear();
    clock_ = 1;
  }
  // Associates `count` prefill contexts (1000, 1001, ...) in order.
  void Prefill(std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) SetupAssociate(kPrefillContext + i);
  }
  Mid SetupAssociate(Ctx ctx) {
    Mid mid = 0;
    if (core_->Associate(AsPointer(ctx), &mid) != AtlasResult::kOk || mid >= initial_.size() ||
        initial_[mid] != 0) {
      Fail("set-up: associate failed");
      return kNoMid;
    }
    initial_[mid] = ctx;
    return mid;
  }
  void SetupDissociate(Mid mid) {
    void* context = nullptr;
    if (core_->MapAndDissociate(mid, &context) != AtlasResult::kOk) Fail("set-up: dissociate failed");
    initial_[mid] = 0;
  }

  // --- logical threads: each call recorded for the checker ---
  Mid Associate(int thread, Ctx ctx) {
    const std::size_t i = Begin(thread, Kind::kAssociate);
    ops_[i].arg = ctx;
    Mid mid = 0;
    const AtlasResult result = core_->Associate(AsPointer(ctx), &mid);
    End(i, result);
    if (result != AtlasResult::kOk) return kNoMid;
    ops_[i].mid = mid;
    return mid;
  }
  Ctx Dissociate(int thread, Mid mid) {
    const std::size_t i = Begin(thread, Kind::kDissociate);
    ops_[i].mid = mid;
    void* context = nullptr;
    const AtlasResult result = core_->MapAndDissociate(mid, &context);
    End(i, result);
    ops_[i].result = AsCtx(context);
    return AsCtx(context);
  }
  Ctx MapMid(int thread, Mid mid) {
    const std::size_t i = Begin(thread, Kind::kMap);
    ops_[i].mid = mid;
    void* context = core_->Map(mid);
    End(i, AtlasResult::kOk);
    ops_[i].result = AsCtx(context);
    return AsCtx(context);
  }
  Ctx Discard(int thread, Mid mid, Ctx late) {
    const std::size_t i = Begin(thread, Kind::kDiscard);
    ops_[i].mid = mid;
    ops_[i].arg = late;
    void* context = nullptr;
    const AtlasResult result = core_->Discard(mid, AsPointer(late), &context);
    End(i, result);
    ops_[i].result = AsCtx(context);
    return AsCtx(context);
  }
  bool ReleaseDiscarded(int thread, Mid mid, Ctx* late_out) {
    const std::size_t i = Begin(thread, Kind::kRelease);
    ops_[i].mid = mid;
    void* late = nullptr;
    const AtlasResult result = core_->ReleaseDiscarded(mid, &late);
    End(i, result);
    ops_[i].result = AsCtx(late);
    *late_out = AsCtx(late);
    return result == AtlasResult::kOk;
  }
  bool Reassociate(int thread, Mid mid, Ctx ctx) {
    const std::size_t i = Begin(thread, Kind::kReassociate);
    ops_[i].mid = mid;
    ops_[i].arg = ctx;
    const AtlasResult result = core_->Reassociate(mid, AsPointer(ctx));
    End(i, result);
    return result == AtlasResult::kOk;
  }

  // --- main thread, after the logical threads ---
  void CheckHistory() {
    lin::Checker checker(initial_, ops_, /*check_unavailable=*/true, generation_bits_);
    if (checker.Linearizable()) return;
    std::vector<Op> sorted = ops_;
    std::sort(sorted.begin(), sorted.end(),
              [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
    std::string report = "history not linearizable; " + checker.frontier() + "  history:";
    for (const Op& op : sorted) report += "\n    " + lin::Describe(op);
    Fail(report);
  }

  // Quiescent: every MID held per the history maps to a context, no free one does, no MID was
  // handed out twice, never more than max, mids_in_use agrees, and LH1 holds for every leaf.
  void CheckQuiescent() {
    const auto max = static_cast<std::uint32_t>(initial_.size());
    const std::uint32_t index_mask = (1U << (16 - generation_bits_)) - 1;
    std::vector<int> held(max, 0);
    std::vector<int> discarded(max, 0);
    std::vector<Mid> value(max, 0);  // the value each index was last handed out as
    for (std::uint32_t m = 0; m < max; ++m) {
      held[m] = initial_[m] != 0 ? 1 : 0;
      value[m] = static_cast<Mid>(m);
    }
    for (const Op& op : ops_) {
      const std::uint32_t index = op.mid & index_mask;
      if (op.code != Code::kOk || index >= max) continue;
      if (op.kind == Kind::kAssociate) {
        ++held[index];
        value[index] = static_cast<Mid>(op.mid);
      }
      if (op.kind == Kind::kDissociate || op.kind == Kind::kRelease) --held[index];
      if (op.kind == Kind::kDiscard) ++discarded[index];
      if (op.kind == Kind::kRelease) --discarded[index];
    }
    std::uint32_t total = 0;
    for (std::uint32_t m = 0; m < max; ++m) {
      const Mid mid = value[m];
      if (held[m] > 1 || held[m] < 0) {
        Fail("MID " + std::to_string(m) + " was handed out " + std::to_string(held[m]) +
             " times more than it was given back (no MID twice)");
        return;
      }
      total += static_cast<std::uint32_t>(held[m]);
      const bool mapped = core_->Map(mid) != nullptr;
      if (mapped != (held[m] == 1 && discarded[m] == 0)) {
        Fail("MID " + std::to_string(m) + (held[m] == 1 ? " is held but maps to nothing"
                                                        : " is free but maps to a context"));
        return;
      }
    }
    if (total > max) Fail("more than max MIDs held");
    if (core_->mids_in_use() != total) {
      Fail("mids_in_use() is " + std::to_string(core_->mids_in_use()) + ", " +
           std::to_string(total) + " MIDs are held");
    }
    CheckHints();
  }

  // LH1 (leaf_hints.h), with no operation in progress: a leaf that is absent, frozen or has a
  // free slot has its hint bit set.
  void CheckHints() {
    for (std::uint32_t k = 1; k < AtlasCoreTestPeer::LeafCount(*core_); ++k) {
      const internal::LeafMap* leaf = AtlasCoreTestPeer::Leaf(*core_, k);
      const FreeStack::Head head = leaf == nullptr ? FreeStack::Head{} : leaf->stack().Load();
      const bool room = leaf == nullptr || head.frozen() || head.free > 0;
      if (room && !AtlasCoreTestPeer::Hinted(*core_, k)) {
        Fail("LH1: leaf " + std::to_string(k) + " is " +
             (leaf == nullptr ? std::string("absent")
                              : std::to_string(head.free) + " slots free") +
             " but its hint bit is clear");
        return;
      }
    }
  }

  static constexpr Ctx kPrefillContext = 1000;
  AtlasCore* core_ = nullptr;
  std::uint32_t generation_bits_ = 0;
  std::vector<Ctx> initial_;
  std::vector<Op> ops_;

 private:
  std::size_t Begin(int thread, Kind kind) {
    Op op;
    op.thread = thread;
    op.kind = kind;
    op.invoke = clock_++;  // one thread runs at a time: a plain counter is a global clock
    ops_.push_back(op);
    return ops_.size() - 1;
  }
  void End(std::size_t i, AtlasResult result) {
    ops_[i].response = clock_++;
    ops_[i].code = CodeOf(result);
  }

  std::uint64_t clock_ = 1;
};

// Leaf 0 full (MIDs 0..15) and leaf 1 holding 16..30 of its 16 slots: t0 takes the last slot
// of leaf 1 (clears the hint (hints:L1), re-checks (hints:L2)) while t1 frees MID 16 (sets the
// hint if it made the leaf non-empty (hints:L3)). With `third_associate`, t2 associates too:
// it may find no room only as DESIGN.md 8.1 allows (AC6).
class HintWindowCase : public AtlasCase {
 public:
  explicit HintWindowCase(bool third_associate = false) : third_(third_associate) {}
  [[nodiscard]] const char* name() const override {
    return third_ ? "all_in_use_ac6" : "hint_window_lh1";
  }
  [[nodiscard]] int threads() const override { return third_ ? 3 : 2; }
  void Setup() override {
    CreateAtlas(32, 1);
    Prefill(31);
  }
  void Run(int thread) override {
    if (thread == 0) Associate(0, 1);
    if (thread == 1) Dissociate(1, 16);
    if (thread == 2) Associate(2, 2);
  }

 private:
  bool third_;
};

// Leaves 0 and 1 full, leaf 2 of one slot (MID 32) held, and leaf 1 the spare (it drained and
// was refilled; the spare is only a policy hint). t0 frees MID 32, which drains leaf 2: being
// above the spare, it is frozen (stack:S4) and unlinked. t1 associates, and may pop that slot
// between the push and the freeze: then the freeze must fail (FS3).
class FreezeVsPopCase final : public AtlasCase {
 public:
  [[nodiscard]] const char* name() const override { return "freeze_vs_pop_fs3"; }
  [[nodiscard]] int threads() const override { return 2; }
  void Setup() override {
    CreateAtlas(33, 1);
    Prefill(33);
    for (Mid m = 16; m < 32; ++m) SetupDissociate(m);  // leaf 1 drains: the spare
    for (Ctx c = 0; c < 16; ++c) SetupAssociate(2000 + c);  // and is refilled
  }
  void Run(int thread) override {
    if (thread == 0) Dissociate(0, 32);
    if (thread == 1) Associate(1, 1);
  }
};

// Directory 0 full (leaves 0..63), leaf 1 the spare, and MID 1024 held in leaf 64, the only
// leaf (one slot) of directory 1. t0 frees MID 1024: leaf 64 drains and is unlinked, directory
// 1's count drops to 0, it is frozen (dir:DS3) and unlinked from the root. t1 associates:
// it may find directory 1 still attached with no leaf 64 and grow one, counting itself in
// (dir:DS1) - which must fail once the directory is frozen (DM1/DM2).
class GrowVsUnlinkCase final : public AtlasCase {
 public:
  [[nodiscard]] const char* name() const override { return "grow_vs_unlink_dm"; }
  [[nodiscard]] int threads() const override { return 2; }
  void Setup() override {
    CreateAtlas(1025, 1);
    Prefill(1024);
    for (Mid m = 16; m < 32; ++m) SetupDissociate(m);
    for (Ctx c = 0; c < 16; ++c) SetupAssociate(3000 + c);
    SetupAssociate(4000);  // MID 1024: grows directory 1 and leaf 64
    if (initial_[1024] == 0) Fail("set-up: MID 1024 was not the one taken");
  }
  void Run(int thread) override {
    if (thread == 0) Dissociate(0, 1024);
    if (thread == 1) Associate(1, 1);
  }
};

// One MID (in leaf 0, or in leaf 1 of one slot with `subordinate`) holding context 1, and MID
// `other` holding 2. t0 map-and-dissociates the MID, t1 reassociates it with context 3, t2
// iterates and removes every MID. Every context ends with exactly one owner: a dissociate that
// returned it, the iterator's callback, or - for the context a successful Reassociate
// replaced - that reassociating thread.
class DissociateReassociateIterateCase final : public AtlasCase {
 public:
  explicit DissociateReassociateIterateCase(bool subordinate) : subordinate_(subordinate) {}
  [[nodiscard]] const char* name() const override {
    return subordinate_ ? "dissociate_reassociate_iterate_leaf1"
                        : "dissociate_reassociate_iterate_leaf0";
  }
  [[nodiscard]] int threads() const override { return 3; }
  void Setup() override {
    CreateAtlas(subordinate_ ? 17 : 2, 1);
    if (subordinate_) Prefill(16);  // leaf 0 full
    mid_ = SetupAssociate(1);
    other_ = subordinate_ ? Mid{0} : SetupAssociate(2);
    if (subordinate_) {  // MID 0 holds 2 instead of a prefill context
      SetupDissociate(0);
      other_ = SetupAssociate(2);
    }
    received_.assign(4, 0);
    replaced_ = false;
  }
  void Run(int thread) override {
    if (thread == 0) {
      void* context = nullptr;
      if (core_->MapAndDissociate(mid_, &context) == AtlasResult::kOk) Receive(AsCtx(context));
    } else if (thread == 1) {
      replaced_ = core_->Reassociate(mid_, AsPointer(3)) == AtlasResult::kOk;
    } else {
      core_->IterateAndRemove([this](void* context) { Receive(AsCtx(context)); });
    }
  }
  void Check() override {
    // Context 1: one owner, counting the reassociating thread when it replaced it. Context 3:
    // one owner iff it was ever associated. Context 2 (the other MID): the iterator's.
    const int want1 = 1 - (replaced_ ? 1 : 0);
    const int want3 = replaced_ ? 1 : 0;
    if (received_[1] != want1 || received_[3] != want3 || received_[2] != 1) {
      Fail("contexts received: ctx1 x" + std::to_string(received_[1]) + " (want " +
           std::to_string(want1) + "), ctx2 x" + std::to_string(received_[2]) +
           " (want 1), ctx3 x" + std::to_string(received_[3]) + " (want " +
           std::to_string(want3) + "); every context exactly once");
    }
    const auto max = static_cast<std::uint32_t>(initial_.size());
    for (std::uint32_t m = 0; m < max; ++m) {
      if (core_->Map(static_cast<Mid>(m)) != nullptr) {
        Fail("MID " + std::to_string(m) + " still maps to a context after IterateAndRemove");
        return;
      }
    }
    if (core_->mids_in_use() != 0) Fail("mids_in_use() is not 0 after IterateAndRemove");
    CheckHints();
  }

 private:
  void Receive(Ctx ctx) {
    if (ctx < received_.size()) ++received_[ctx];  // prefill contexts (1000+) are not tracked
  }
  bool subordinate_;
  Mid mid_ = 0;
  Mid other_ = 0;
  std::vector<int> received_;
  bool replaced_ = false;
};

// One MID holding context 1 (in leaf 0, or with `generation_bits` 4, a reused index whose
// value carries generation 1). t0 discards it with late context 5, t1 map-and-dissociates it,
// t2 releases it (after a discard, or finding nothing to release). QD1-QD4: exactly one of t0
// and t1 takes context 1; the late context goes out at most once - to t1 or to the release -
// and exactly once when a discard and a release both succeed; the history is linearizable
// against the model with the quarantine.
class DiscardVsDissociateCase final : public AtlasCase {
 public:
  explicit DiscardVsDissociateCase(std::uint32_t generation_bits)
      : generation_bits_arg_(generation_bits) {}
  [[nodiscard]] const char* name() const override {
    return generation_bits_arg_ == 0 ? "discard_vs_dissociate_vs_release"
                                     : "discard_vs_dissociate_vs_release_gen4";
  }
  [[nodiscard]] int threads() const override { return 3; }
  void Setup() override {
    CreateAtlas(2, 1, generation_bits_arg_);
    if (generation_bits_arg_ != 0) {
      // Generation 0 of index 0 comes and goes, so the MID under test is a reused index.
      SetupDissociate(SetupAssociate(9));
      Mid mid = 0;
      if (core_->Associate(AsPointer(1), &mid) != AtlasResult::kOk) Fail("set-up: associate");
      // The checker starts from a fresh index; record the reuse as history instead.
      ops_.clear();
      initial_.assign(2, 0);
      RecordSetup(mid, 1);
      mid_ = mid;
    } else {
      mid_ = SetupAssociate(1);
    }
    late_seen_ = 0;
    taken_ = 0;
    released_ = false;
  }
  void Run(int thread) override {
    if (thread == 0) {
      if (Discard(0, mid_, 5) == 1) ++taken_;
    } else if (thread == 1) {
      const Ctx got = Dissociate(1, mid_);
      if (got == 1) ++taken_;
      if (got == 5) ++late_seen_;
    } else {
      Ctx late = 0;
      released_ = ReleaseDiscarded(2, mid_, &late);
      if (late == 5) ++late_seen_;
    }
  }
  void Check() override {
    AtlasCase::Check();
    if (taken_ != 1) Fail("context 1 was taken " + std::to_string(taken_) + " times");
    if (late_seen_ > 1) Fail("the late context went out twice");
    const bool discarded = ops_[DiscardOp()].code == Code::kOk;
    if (discarded && released_ && late_seen_ != 1) Fail("the late context was lost");
    if (core_->discarded_mids() != (discarded && !released_ ? 1U : 0U)) {
      Fail("discarded_mids() is " + std::to_string(core_->discarded_mids()));
    }
  }

 private:
  // Records the set-up's reuse of index 0 as generation 1, before the threads' calls.
  void RecordSetup(Mid mid, Ctx ctx) {
    Op dissociated;
    dissociated.thread = 3;
    dissociated.kind = Kind::kAssociate;
    dissociated.arg = 9;
    dissociated.mid = 0;
    dissociated.invoke = 0;
    dissociated.response = 0;
    ops_.push_back(dissociated);
    Op freed;
    freed.thread = 3;
    freed.kind = Kind::kDissociate;
    freed.mid = 0;
    freed.result = 9;
    freed.invoke = 0;
    freed.response = 0;
    ops_.push_back(freed);
    Op reused;
    reused.thread = 3;
    reused.kind = Kind::kAssociate;
    reused.arg = ctx;
    reused.mid = mid;
    reused.invoke = 0;
    reused.response = 0;
    ops_.push_back(reused);
  }
  [[nodiscard]] std::size_t DiscardOp() const {
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].kind == Kind::kDiscard) return i;
    }
    return 0;
  }
  std::uint32_t generation_bits_arg_;
  Mid mid_ = 0;
  int late_seen_ = 0;
  int taken_ = 0;
  bool released_ = false;
};

// The waiter queue's hand-off races (WQ1-WQ4), on an atlas of one MID held with context 1.
// `kLostWakeUp`: t0 frees the MID while t1 associates asynchronously (one try, then queued):
// t1 must end with the MID, at once or handed over - a waiter left queued with the MID free
// is a lost wake-up. `kCancel`: a waiter queued at set-up; t0 frees the MID, t1 cancels the
// waiter, t2 associates (a new caller, who must not take the MID while the waiter is queued):
// the completion runs exactly once, a cancel that succeeded saw it cancelled, and the MID
// ends with exactly one of them or free.
class HandOffCase final : public AtlasCase {
 public:
  enum class Race : std::uint8_t { kLostWakeUp, kCancel };
  explicit HandOffCase(Race race) : race_(race) {}
  [[nodiscard]] const char* name() const override {
    return race_ == Race::kLostWakeUp ? "handoff_vs_enqueue" : "handoff_vs_cancel_vs_new_caller";
  }
  [[nodiscard]] int threads() const override { return race_ == Race::kLostWakeUp ? 2 : 3; }
  void Setup() override {
    CreateAtlas(1, 1);
    mid_ = SetupAssociate(1);
    completions_ = 0;
    completed_with_ = AtlasResult::kPending;
    handed_mid_ = kNoMid;
    cancelled_ = false;
    new_caller_ = kNoMid;
    queued_result_ = AtlasResult::kPending;
    waiter_ = internal::Waiter{};
    if (race_ == Race::kCancel) {
      Mid got = 0;
      queued_result_ = core_->AssociateAsync(Request(), &waiter_, &got);
      if (queued_result_ != AtlasResult::kPending) Fail("set-up: the waiter was not queued");
    }
  }
  void Run(int thread) override {
    if (thread == 0) {
      void* context = nullptr;
      if (core_->MapAndDissociate(mid_, &context) != AtlasResult::kOk) {
        Fail("the held MID could not be freed");
      }
    } else if (thread == 1 && race_ == Race::kLostWakeUp) {
      Mid got = kNoMid;
      queued_result_ = core_->AssociateAsync(Request(), &waiter_, &got);
      if (queued_result_ == AtlasResult::kOk) handed_mid_ = got;
    } else if (thread == 1) {
      cancelled_ = core_->CancelWait(&waiter_);
    } else {
      Mid got = kNoMid;
      if (core_->Associate(AsPointer(8), &got) == AtlasResult::kOk) new_caller_ = got;
    }
  }
  void Check() override {
    const bool queued = queued_result_ == AtlasResult::kPending;
    if (queued && completions_ != 1) {
      Fail("the waiter's completion ran " + std::to_string(completions_) + " times");
      return;
    }
    if (!queued && completions_ != 0) Fail("a waiter served at once was also completed");
    if (core_->waiters() != 0) Fail("a waiter is still queued");
    if (race_ == Race::kLostWakeUp) {
      if (handed_mid_ == kNoMid || completed_with_ == AtlasResult::kCancelled) {
        Fail("lost wake-up: the MID was freed and the waiter never got it");
      } else if (core_->Map(handed_mid_) != AsPointer(7)) {
        Fail("the waiter's MID does not map to its context");
      }
      return;
    }
    const bool waiter_has_it = completed_with_ == AtlasResult::kOk;
    if (cancelled_ == waiter_has_it) Fail("cancel and hand-off both (or neither) won");
    if (waiter_has_it && new_caller_ != kNoMid) Fail("the MID was handed to two callers");
    if (waiter_has_it && core_->Map(handed_mid_) != AsPointer(7)) Fail("waiter's MID lost");
    if (new_caller_ != kNoMid && core_->Map(new_caller_) != AsPointer(8)) Fail("MID lost");
    const std::uint32_t held = (waiter_has_it ? 1U : 0U) + (new_caller_ != kNoMid ? 1U : 0U);
    if (core_->mids_in_use() != held) Fail("mids_in_use() disagrees");
  }

 private:
  AtlasCore::WaitRequest Request() {
    return {.context = AsPointer(7), .complete = &HandOffCase::Completed, .user = this};
  }
  static void Completed(internal::Waiter* waiter, AtlasResult result, Mid mid) {
    auto* self = static_cast<HandOffCase*>(waiter->user);
    ++self->completions_;
    self->completed_with_ = result;
    if (result == AtlasResult::kOk) self->handed_mid_ = mid;
  }
  Race race_;
  Mid mid_ = 0;
  internal::Waiter waiter_{};
  AtlasResult queued_result_ = AtlasResult::kPending;
  int completions_ = 0;
  AtlasResult completed_with_ = AtlasResult::kPending;
  Mid handed_mid_ = kNoMid;
  bool cancelled_ = false;
  Mid new_caller_ = kNoMid;
};

// --- hazard pointers ----------------------------------------------------------------------

// A private domain (threshold 1: every retirement scans) in the fenced form, which the dsched
// build always uses: the readers' (fence:F2) and the reclaimer's (fence:F1) are scheduling
// points. Node A is reachable from `source`. t0 protects it with TryProtect, t1 with Protect,
// and each reads it; t2 replaces it by node B (a release store, as the atlas's unlinks are),
// retires it and so scans. A reclaimed node is poisoned, not freed: a reader that sees the
// poison read a node after its reclamation.
class HazardProtectVsReclaimCase final : public Case {
 public:
  [[nodiscard]] const char* name() const override { return "hazard_protect_vs_reclaim"; }
  [[nodiscard]] int threads() const override { return 3; }

  void Setup() override {
    domain_.emplace(internal::HazardDomain::Options{.reclaim_threshold = 1});
    for (auto& record : records_) record = domain_->AcquireRecord();
    for (Node& node : nodes_) {
      node.retired_next = nullptr;
      node.reclaim = &Node::Reclaim;
      node.guard = nullptr;
#if MIDATLAS_CHECK_INVARIANTS
      node.retired = false;
#endif
      node.state.store(kLive, std::memory_order_relaxed);  // unshared
    }
    source_.store(&nodes_[0], std::memory_order_relaxed);  // unshared
  }

  void Run(int thread) override {
    if (thread < 2) {
      internal::HazardGuard guard(*records_[static_cast<std::size_t>(thread)]);
      Node* node = thread == 0 ? guard.TryProtect(source_) : guard.Protect(source_);
      if (node == nullptr) return;
      // The read the hazard protects. relaxed: the node's own word; the hazard decides
      // whether it may be read at all.
      if (node->state.load(std::memory_order_relaxed) != kLive) {
        Fail(std::string("thread ") + std::to_string(thread) + " (" +
             (thread == 0 ? "TryProtect" : "Protect") +
             ") read a node after the domain reclaimed it");
      }
      return;
    }
    // release: the atlas's unlinks are release (or acq_rel) CASes; the reclaimer orders them
    // before its scan with (hp:R0)/(hp:R1) and the heavy barrier.
    source_.store(&nodes_[1], std::memory_order_release);
    domain_->Retire(&nodes_[0]);
  }

  void Check() override {
    // With every guard gone, one more scan frees what was retired.
    domain_->Reclaim();
    if (nodes_[0].state.load(std::memory_order_relaxed) != kReclaimed) {
      Fail("the retired node was never reclaimed");
    }
    if (nodes_[1].state.load(std::memory_order_relaxed) != kLive) {
      Fail("a node still reachable was reclaimed");
    }
  }
  void Teardown() override {
    for (auto& record : records_) domain_->ReleaseRecord(record);
    domain_.reset();
  }

 private:
  static constexpr std::uint32_t kLive = 1;
  static constexpr std::uint32_t kReclaimed = 2;
  struct Node : internal::Retirable {
    internal::Atomic<std::uint32_t> state{kLive};
    static void Reclaim(internal::Retirable* self) noexcept {
      // relaxed: the poison only has to be seen by a reader that (wrongly) reads later.
      static_cast<Node*>(self)->state.store(kReclaimed, std::memory_order_relaxed);
    }
  };

  std::optional<internal::HazardDomain> domain_;
  std::array<internal::HazardRecord*, 2> records_{};
  std::array<Node, 2> nodes_{};
  internal::Atomic<Node*> source_{nullptr};
};

// --- guarded lookups (docs/DESIGN.md 10.7) -------------------------------------------------

// MID m maps to context A. t0 and t1 map m guarded (ContextHazard over AtlasCore::Map, the
// front ends' path) and read the context they got; t2 replaces A by B (Reassociate), retires
// A and so scans (the debug build's threshold is 1). A destroyed context is poisoned, not
// freed: a reader that sees the poison held a guard the scan missed (RC1). Quiescent: a flush
// destroys A, and never B.
class GuardedMapVsRetireCase final : public Case {
 public:
  [[nodiscard]] const char* name() const override { return "guarded_map_vs_retire"; }
  [[nodiscard]] int threads() const override { return 3; }

  void Setup() override {
    core_ = AtlasCore::New(2, 1, {});
    if (core_ == nullptr) std::abort();
    for (Context& context : contexts_) context.state.store(kLive, std::memory_order_relaxed);
    if (core_->Associate(&contexts_[0], &mid_) != AtlasResult::kOk) Fail("set-up: associate");
  }

  void Run(int thread) override {
    if (thread < 2) {
      internal::ContextHazard hazard;
      auto* context = static_cast<Context*>(hazard.Protect([this] { return core_->Map(mid_); }));
      if (context == nullptr) {
        Fail("a guarded map of a MID held throughout returned NULL");
        return;
      }
      // The read the guard protects. relaxed: the context's own word; the guard decides
      // whether it may be read at all.
      if (context->state.load(std::memory_order_relaxed) != kLive) {
        Fail("thread " + std::to_string(thread) + " read a context after its destructor ran");
      }
      hazard.Release();
      return;
    }
    if (core_->Reassociate(mid_, &contexts_[1]) != AtlasResult::kOk) Fail("reassociate failed");
    core_->retired_contexts().Retire(&contexts_[0], [](void* context) {
      // relaxed: the poison only has to be seen by a reader that (wrongly) reads later.
      static_cast<Context*>(context)->state.store(kDestroyed, std::memory_order_relaxed);
    });
  }

  void Check() override {
    // With every guard released, a flush destroys what was retired.
    core_->retired_contexts().Flush();
    if (contexts_[0].state.load(std::memory_order_relaxed) != kDestroyed) {
      Fail("the retired context was never destroyed");
    }
    if (contexts_[1].state.load(std::memory_order_relaxed) != kLive) {
      Fail("the context still associated was destroyed");
    }
  }
  void Teardown() override {
    AtlasCore::Destroy(core_);
    core_ = nullptr;
  }

 private:
  static constexpr std::uint32_t kLive = 1;
  static constexpr std::uint32_t kDestroyed = 2;
  struct Context {
    internal::Atomic<std::uint32_t> state{kLive};
  };

  AtlasCore* core_ = nullptr;
  Mid mid_ = 0;
  std::array<Context, 2> contexts_{};
};

// --- the context region (CR1) ------------------------------------------------------------

// One thread counts the last leaf of a page out (returning the page) while another counts a
// leaf of the same page in and writes a context into it, as a grower does: the context must
// survive whatever the order, because a count-in waits out a return in progress.
class RegionReturnVsCountInCase final : public Case {
 public:
  [[nodiscard]] const char* name() const override { return "region_return_vs_count_in"; }
  [[nodiscard]] int threads() const override { return 2; }

  void Setup() override {
    region_.emplace();
    if (!region_->Init(65535) || !region_->returns_pages()) {
      Fail("the region could not reserve its pages");
      return;
    }
    first_ = static_cast<std::uint32_t>(static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) /
                                        sizeof(void*));  // page 1
    region_->CountLeafIn(first_, first_ + 16);
  }

  void Run(int thread) override {
    if (thread == 0) {
      region_->CountLeafOut(first_, first_ + 16);
      return;
    }
    region_->CountLeafIn(first_ + 16, first_ + 32);
    // release: as (atlas:A2), the holder's publication of its context.
    region_->cells()[first_ + 20].store(&context_, std::memory_order_release);
  }

  void Check() override {
    if (region_->cells()[first_ + 20].load(std::memory_order_acquire) != &context_) {
      Fail("a context written after its leaf counted in was undone by a page return (CR1)");
    }
    if (region_->attached_bytes() != static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
      Fail("the page of the attached leaf is not counted");
    }
  }
  void Teardown() override { region_.reset(); }

 private:
  std::optional<internal::ContextRegion> region_;
  std::uint32_t first_ = 0;
  int context_ = 0;
};

}  // namespace midatlas::dsched

#endif  // MIDATLAS_TESTS_DSCHED_CASES_H_
