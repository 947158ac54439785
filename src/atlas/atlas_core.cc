#include "atlas/atlas_core.h"

#include <algorithm>
#include <new>
#include <utility>

#include "instrumentation/chaos.h"

namespace midatlas::internal {

AtlasCore::AtlasCore(std::uint32_t max_mids, std::uint32_t initial_mids, MidLayout layout,
                     ContextDestructor destructor) noexcept
    : max_mids_(max_mids),
      leaf_shift_(static_cast<std::uint32_t>(layout.leaf_bits)),
      slot_mask_((1U << layout.leaf_bits) - 1),
      dir_shift_(static_cast<std::uint32_t>(layout.dir_bits)),
      entry_mask_((1U << layout.dir_bits) - 1),
      leaf_count_((max_mids + (1U << layout.leaf_bits) - 1) >> layout.leaf_bits),
      leaf_capacity_(1U << layout.leaf_bits),
      dir_entries_(1U << layout.dir_bits),
      initial_mids_(initial_mids),
      layout_(layout),
      domain_(HazardDomain::Default()),
      destructor_(std::move(destructor)) {
  dir_count_ = (leaf_count_ + dir_entries_ - 1) >> dir_shift_;
}

AtlasCore* AtlasCore::New(std::uint32_t max_mids, std::uint32_t initial_mids,
                          ContextDestructor destructor) noexcept {
  const MidLayout layout = LayoutForInitialMids(initial_mids);
  const std::uint32_t dir_entries = 1U << layout.dir_bits;
  static_assert(sizeof(AtlasCore) % alignof(DirectoryMap) == 0, "directory 0 follows the atlas");
  static_assert(alignof(AtlasCore) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "plain new suffices");
  void* memory = ::operator new(sizeof(AtlasCore) + DirectoryMap::AllocationSize(dir_entries),
                                std::nothrow);
  if (memory == nullptr) return nullptr;
  auto* core = new (memory) AtlasCore(max_mids, initial_mids, layout, std::move(destructor));
  DirectoryMap::CreateAt(core + 1, 0, dir_entries);
  if (!core->AllocateInitialMaps()) {
    delete core;
    return nullptr;
  }
  return core;
}

bool AtlasCore::AllocateInitialMaps() noexcept {
  if (!hints_.Init(leaf_count_)) return false;
  root_[0].store(dir0(), std::memory_order_relaxed);  // unshared until Create returns
  leaf0_ = LeafMap::Create(0, leaf_capacity_, ValidSlots(0), nullptr);
  if (leaf0_ == nullptr) return false;
  // AC2: leaf 0 and directory 0 are counted in for good, so neither is ever frozen.
  dir0()->TryCountLeafIn();
  dir0()->leaf(0).store(leaf0_, std::memory_order_relaxed);  // unshared until Create returns
  return true;
}

AtlasCore::~AtlasCore() {
  // Single-threaded by contract, so relaxed loads throughout. First hand out every context,
  // so that a destructor callback that still maps a MID sees a consistent (empty) atlas.
  for (std::uint32_t d = 0; d < dir_count_; ++d) {
    DirectoryMap* dir = root_[d].load(std::memory_order_relaxed);
    if (dir == nullptr) continue;
    for (std::uint32_t entry = 0; entry < dir_entries_; ++entry) {
      LeafMap* leaf = dir->leaf(entry).load(std::memory_order_relaxed);
      if (leaf == nullptr) continue;
      for (std::uint32_t slot = 0; slot < leaf->valid_slots(); ++slot) {
        void* context = leaf->context(slot).exchange(nullptr, std::memory_order_relaxed);
        if (context != nullptr && destructor_) destructor_(context);
      }
    }
  }
  for (std::uint32_t d = 0; d < dir_count_; ++d) {
    DirectoryMap* dir = root_[d].load(std::memory_order_relaxed);
    if (dir == nullptr) continue;
    for (std::uint32_t entry = 0; entry < dir_entries_; ++entry) {
      LeafMap* leaf = dir->leaf(entry).load(std::memory_order_relaxed);
      if (leaf != nullptr) LeafMap::Destroy(leaf);
    }
    if (d != 0) DirectoryMap::Destroy(dir);  // directory 0 is part of this allocation
  }
}

std::uint32_t AtlasCore::ValidSlots(std::uint32_t leaf) const noexcept {
  return std::min(leaf_capacity_, max_mids_ - (leaf << leaf_shift_));
}

// ----------------------------------------------------------------------------------------
// Associate: lock-free. Linearization point: the release store of the context (A2), or the
// release CAS that installs a new leaf already holding it (A3).

void* AtlasCore::MapMidFirstCall(Mid mid) const noexcept {
  static_cast<void>(ThisThreadRecord());  // acquires this thread's record
  return MapMid(mid);
}

AtlasResult AtlasCore::AssociateBeyondLeafZero(void* context, Mid* mid_out) noexcept {
  if (leaf_count_ == 1) return AtlasResult::kAllInUse;
  HazardRecord& record = ThisThreadRecord();
  // Leaves below `from` could not be grown for lack of memory; later candidates may still
  // have free slots, so out-of-memory is reported only when none of them does.
  std::uint32_t from = 0;
  bool out_of_memory = false;
  while (true) {
    const std::uint32_t candidate = hints_.FindFirst(from);
    if (candidate == LeafHints::kNoLeaf) {
      // No hinted leaf; leaf 0 may have had a MID released while we looked elsewhere.
      if (TakeFromLeaf(*leaf0_, context, mid_out)) return AtlasResult::kOk;
      if (out_of_memory) return AtlasResult::kOutOfMemory;
      // A hint can be briefly clear while its leaf has room (between (L1) and (L2) of a
      // popper), so the hints alone do not prove the atlas full: confirm it (AC6).
      const bool full = ConfirmAllInUse(record);
      ClearHazards(record);
      if (full) return AtlasResult::kAllInUse;
      from = 0;
      continue;
    }
    const TakeResult result = TakeFromSubordinate(record, candidate, context, mid_out);
    ClearHazards(record);
    if (result == TakeResult::kTaken) return AtlasResult::kOk;
    if (result == TakeResult::kOutOfMemory) {
      out_of_memory = true;
      from = candidate + 1;
    }
    MIDATLAS_CHAOS_POINT();
  }
}

// AC6: a double collect of every leaf's (pointer, head word). Head words carry a tag that
// changes on every CAS (FS2), so two equal collects mean no leaf changed in between: at any
// instant between them every leaf was attached and showed no free slot, i.e. every MID was
// held in the sense of DESIGN.md 8.1. A leaf that is absent, frozen or has room gets its hint
// set again (so the retry finds it) and the answer is false.
bool AtlasCore::ConfirmAllInUse(HazardRecord& record) noexcept {
  struct LeafState {
    const LeafMap* leaf;
    std::uint64_t head;
  };
  const std::unique_ptr<LeafState[]> seen(new (std::nothrow) LeafState[leaf_count_]);
  // Out of memory for the check itself: the hints and leaf 0 already showed no room.
  if (!seen) return true;
  // Visits every leaf; returns false as soon as one has room (after re-hinting it).
  auto collect = [&](auto&& on_leaf) {
    for (std::uint32_t d = 0; d < dir_count_; ++d) {
      DirectoryMap* dir = d == 0 ? dir0() : record.Protect(kDirHazard, root_[d]);
      for (std::uint32_t entry = 0; entry < dir_entries_; ++entry) {
        const std::uint32_t leaf_index = (d << dir_shift_) + entry;
        if (leaf_index >= leaf_count_) break;
        const LeafMap* leaf =
            dir == nullptr ? nullptr : record.Protect(kLeafHazard, dir->leaf(entry));
        const FreeStack::Head head = leaf == nullptr ? FreeStack::Head{} : leaf->stack().Load();
        if (leaf == nullptr || head.free > 0 || head.frozen()) {
          if (leaf_index != 0) hints_.SetIfClear(leaf_index);
          return false;
        }
        if (!on_leaf(leaf_index, LeafState{leaf, head.Pack()})) return false;
      }
    }
    return true;
  };
  bool first = true;
  while (true) {
    bool changed = false;
    const bool full = collect([&](std::uint32_t leaf_index, LeafState state) {
      if (first) {
        seen[leaf_index] = state;
      } else if (seen[leaf_index].leaf != state.leaf || seen[leaf_index].head != state.head) {
        seen[leaf_index] = state;
        changed = true;
      }
      return true;
    });
    if (!full) return false;
    if (!first && !changed) return true;
    first = false;
    MIDATLAS_CHAOS_POINT();
  }
}

void AtlasCore::ClearHintIfFull(LeafMap& leaf) noexcept {
  hints_.Clear(leaf.index());                    // (L1)
  MIDATLAS_CHAOS_POINT();
  const FreeStack::Head head = leaf.stack().Load();  // (L2)
  if (head.free > 0 || head.frozen()) hints_.SetIfClear(leaf.index());
}

AtlasCore::TakeResult AtlasCore::TakeFromSubordinate(HazardRecord& record,
                                                     std::uint32_t leaf_index, void* context,
                                                     Mid* mid_out) noexcept {
  const std::uint32_t dir_index = leaf_index >> dir_shift_;
  DirectoryMap* dir = dir_index == 0 ? dir0() : ProtectOrGrowDirectory(record, dir_index);
  if (dir == nullptr) return TakeResult::kOutOfMemory;
  LeafMap* leaf = record.Protect(kLeafHazard, dir->leaf(leaf_index & entry_mask_));
  if (leaf == nullptr) return GrowLeaf(record, *dir, leaf_index, context, mid_out);
  if (TakeFromLeaf(*leaf, context, mid_out)) return TakeResult::kTaken;
  // A detacher froze this leaf but has not unlinked it yet: finish its work rather than wait
  // for it, which keeps Associate lock-free.
  if (leaf->stack().Load().frozen()) UnlinkFrozenLeaf(*dir, *leaf);
  return TakeResult::kRetry;
}

DirectoryMap* AtlasCore::ProtectOrGrowDirectory(HazardRecord& record,
                                                std::uint32_t dir_index) noexcept {
  while (true) {
    DirectoryMap* dir = record.Protect(kDirHazard, root_[dir_index]);  // (H1)-(H3)
    if (dir != nullptr) {
      if (!dir->frozen()) return dir;
      UnlinkFrozenDirectory(*dir);  // help a stalled detacher (DM2)
      continue;
    }
    DirectoryMap* fresh = DirectoryMap::Create(dir_index, dir_entries_);
    if (fresh == nullptr) return nullptr;
    DirectoryMap* expected = nullptr;
    // (A3) release: publishes the directory's initialized entries; pairs with (H1).
    if (!root_[dir_index].compare_exchange_strong(expected, fresh, std::memory_order_release,
                                                  std::memory_order_relaxed)) {
      DirectoryMap::Destroy(fresh);  // another grower won; nobody saw ours
    }
    MIDATLAS_CHAOS_POINT();
  }
}

AtlasCore::TakeResult AtlasCore::GrowLeaf(HazardRecord& record, DirectoryMap& dir,
                                          std::uint32_t leaf_index, void* context,
                                          Mid* mid_out) noexcept {
  if (!dir.TryCountLeafIn()) {  // (DS1)
    UnlinkFrozenDirectory(dir);  // frozen under us: help, then retry from the root
    return TakeResult::kRetry;
  }
  LeafMap* fresh = LeafMap::Create(leaf_index, leaf_capacity_, ValidSlots(leaf_index), context);
  if (fresh == nullptr) {
    CountLeafOut(dir);
    return TakeResult::kOutOfMemory;
  }
  // The new leaf already holds our context in slot 0, and our MID keeps it from being frozen
  // (FS3) - but a racing dissociate of that MID could drain and retire it as soon as it is
  // visible, so protect it before it is.
  record.ProtectUnshared(kLeafHazard, fresh);
  LeafMap* expected = nullptr;
  MIDATLAS_CHAOS_POINT();
  // (A3) release: publishes the leaf's header, free stack and our context; pairs with (H1).
  if (dir.leaf(leaf_index & entry_mask_)
          .compare_exchange_strong(expected, fresh, std::memory_order_release,
                                   std::memory_order_relaxed)) {
    *mid_out = MidOf(leaf_index, 0);
    if (fresh->valid_slots() == 1) ClearHintIfFull(*fresh);
    return TakeResult::kTaken;
  }
  record.Clear(kLeafHazard);
  LeafMap::Destroy(fresh);  // another grower won; nobody saw ours
  CountLeafOut(dir);
  return TakeResult::kRetry;
}

// ----------------------------------------------------------------------------------------
// Dissociate: lock-free. Linearization point: the exchange that takes the context (D1), or
// the load / failed protection that shows the MID free.

AtlasResult AtlasCore::DissociateBeyondLeafZero(Mid mid, void** context_out) noexcept {
  const std::uint32_t leaf_index = std::uint32_t{mid} >> leaf_shift_;
  const std::uint32_t slot = mid & slot_mask_;
  HazardRecord& record = ThisThreadRecord();
  DirectoryMap* dir = nullptr;
  LeafMap* leaf = ProtectLeafOnce(record, leaf_index, &dir);
  void* context = leaf == nullptr ? nullptr : TakeContext(*leaf, slot);
  if (context == nullptr) {
    ClearHazards(record);
    return AtlasResult::kInvalidArgument;
  }
  MIDATLAS_CHAOS_POINT();
  const std::uint32_t free_after = leaf->stack().Push(leaf->links(), slot);  // (S2)
  if (free_after == 1) hints_.SetIfClear(leaf_index);                       // (L3)
  if (free_after == leaf->valid_slots()) OnLeafDrained(record, *dir, *leaf);
  ClearHazards(record);
  *context_out = context;
  return AtlasResult::kOk;
}

// Shrink policy: the lowest drained subordinate leaf stays attached as a spare, so a workload
// that hovers around a leaf boundary does not allocate and free a map on every crossing; any
// other leaf that drains is detached at once. So after a burst, memory returns to the first
// maps plus at most one spare leaf (and its directory).
void AtlasCore::OnLeafDrained(HazardRecord& record, DirectoryMap& dir, LeafMap& leaf) noexcept {
  const std::uint32_t drained = leaf.index();
  // relaxed throughout: spare_leaf_ is only a policy hint. Safety never depends on it: a leaf
  // is detached only by the freeze CAS (S4), which fails unless every slot is free.
  std::uint32_t spare = spare_leaf_.load(std::memory_order_relaxed);
  while (true) {
    if (spare == drained) return;
    if (spare != 0 && spare < drained) {
      if (leaf.stack().TryFreeze(leaf.valid_slots())) UnlinkFrozenLeaf(dir, leaf);
      return;
    }
    if (spare_leaf_.compare_exchange_weak(spare, drained, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
      break;
    }
  }
  if (spare == 0) return;
  // `drained` replaced a higher spare: detach that one if it is still drained.
  ClearHazards(record);
  DirectoryMap* old_dir = nullptr;
  LeafMap* old_leaf = ProtectLeafOnce(record, spare, &old_dir);
  if (old_leaf != nullptr && old_leaf->stack().TryFreeze(old_leaf->valid_slots())) {
    UnlinkFrozenLeaf(*old_dir, *old_leaf);
  }
}

void AtlasCore::UnlinkFrozenLeaf(DirectoryMap& dir, LeafMap& leaf) noexcept {
  LeafMap* expected = &leaf;
  // (U1) acq_rel CAS. The caller protects `leaf`, so it cannot have been freed and reused at
  // the same address (no ABA). Exactly one unlinker wins, and only it retires the leaf.
  if (dir.leaf(leaf.index() & entry_mask_)
          .compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                   std::memory_order_relaxed)) {
    MIDATLAS_CHAOS_POINT();
    // HD1: readers that hold `dir` read its entries without protecting the leaf (AC5).
    leaf.guard = &dir;
    domain_.Retire(&leaf);
    CountLeafOut(dir);
  }
}

void AtlasCore::CountLeafOut(DirectoryMap& dir) noexcept {
  // Directory 0 holds leaf 0 for good (AC2), so its count never reaches 0.
  if (dir.CountLeafOut() && dir.TryFreezeEmpty()) UnlinkFrozenDirectory(dir);  // (DS2)/(DS3)
}

void AtlasCore::UnlinkFrozenDirectory(DirectoryMap& dir) noexcept {
  DirectoryMap* expected = &dir;
  // (U1) acq_rel CAS, as for leaves: the caller protects `dir`.
  if (root_[dir.index()].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                                 std::memory_order_relaxed)) {
    domain_.Retire(&dir);
  }
}

// ----------------------------------------------------------------------------------------
// Reassociate: lock-free. Linearization point: the successful CAS (R2), or the load that
// shows the MID free.

AtlasResult AtlasCore::ReassociateContext(Mid mid, void* new_context) noexcept {
  if (new_context == nullptr || mid >= max_mids_) return AtlasResult::kInvalidArgument;
  const std::uint32_t leaf_index = std::uint32_t{mid} >> leaf_shift_;
  const std::uint32_t slot = mid & slot_mask_;
  HazardRecord* record = nullptr;
  LeafMap* leaf = leaf0_;
  if (leaf_index != 0) {
    record = &ThisThreadRecord();
    DirectoryMap* dir = nullptr;
    leaf = ProtectLeafOnce(*record, leaf_index, &dir);
  }
  AtlasResult result = AtlasResult::kInvalidArgument;
  if (leaf != nullptr) {
    std::atomic<void*>& cell = leaf->context(slot);
    // (R1) relaxed: the CAS below validates the value; we never read through it.
    void* current = cell.load(std::memory_order_relaxed);
    while (current != nullptr) {
      MIDATLAS_CHAOS_POINT();
      // (R2) release: publishes the new context; pairs with (M1)/(D1).
      if (cell.compare_exchange_weak(current, new_context, std::memory_order_release,
                                     std::memory_order_relaxed)) {
        result = AtlasResult::kOk;
        break;
      }
    }
  }
  if (record != nullptr) ClearHazards(*record);
  return result;
}

// ----------------------------------------------------------------------------------------
// Iterate-and-remove, counts, statistics.

template <typename Visit>
void AtlasCore::ForEachAttachedLeaf(Visit&& visit) const noexcept {
  HazardRecord& record = ThisThreadRecord();
  for (std::uint32_t d = 0; d < dir_count_; ++d) {
    DirectoryMap* dir = d == 0 ? dir0() : record.Protect(kDirHazard, root_[d]);
    if (dir == nullptr) continue;
    visit(static_cast<const DirectoryMap*>(dir), static_cast<const LeafMap*>(nullptr));
    for (std::uint32_t entry = 0; entry < dir_entries_; ++entry) {
      if ((d << dir_shift_) + entry >= leaf_count_) break;
      const LeafMap* leaf = record.Protect(kLeafHazard, dir->leaf(entry));
      if (leaf != nullptr) visit(static_cast<const DirectoryMap*>(dir), leaf);
    }
    ClearHazards(record);
  }
}

std::size_t AtlasCore::RemoveAll(absl::FunctionRef<void(void*)> fn) {
  std::size_t removed = 0;
  for (std::uint32_t leaf_index = 0; leaf_index < leaf_count_; ++leaf_index) {
    if (leaf_index != 0) {
      HazardRecord& record = ThisThreadRecord();
      DirectoryMap* dir = nullptr;
      const bool attached = ProtectLeafOnce(record, leaf_index, &dir) != nullptr;
      ClearHazards(record);
      if (!attached) continue;
    }
    const std::uint32_t valid = ValidSlots(leaf_index);
    for (std::uint32_t slot = 0; slot < valid; ++slot) {
      void* context = nullptr;
      // Each MID goes through the ordinary dissociate path, so racing dissociates and the
      // shrink policy see nothing special, and no hazard is held while `fn` runs.
      if (DissociateMid(MidOf(leaf_index, slot), &context) == AtlasResult::kOk) {
        fn(context);
        ++removed;
      }
    }
  }
  return removed;
}

std::uint32_t AtlasCore::HeldMids() const noexcept {
  std::uint32_t held = 0;
  ForEachAttachedLeaf([&held](const DirectoryMap*, const LeafMap* leaf) {
    if (leaf != nullptr) held += leaf->HeldSlots();
  });
  return held;
}

AtlasStats AtlasCore::Snapshot() const noexcept {
  AtlasStats stats;
  // Directory 0 shares the atlas's allocation; the walk below counts it with the others.
  stats.bytes_attached = sizeof(AtlasCore) + hints_.bytes();
  ForEachAttachedLeaf([&](const DirectoryMap*, const LeafMap* leaf) {
    if (leaf == nullptr) {
      ++stats.directory_maps;
      stats.bytes_attached += DirectoryMap::AllocationSize(dir_entries_);
    } else {
      ++stats.leaf_maps;
      stats.mids_in_use += leaf->HeldSlots();
      stats.bytes_attached += LeafMap::AllocationSize(leaf_capacity_);
    }
  });
  return stats;
}

}  // namespace midatlas::internal
