// The lock-free MID atlas that both public APIs forward to. docs/DESIGN.md describes the
// algorithms, their invariants (cited here as AC1.., FS1.., DM1.., LH1..) and linearization
// points; the numbered atomic operations below are cited by the comments that pair with them.
//
//   (A1) pop of a free slot            free_stack.h (S3)
//   (A2) release store of the context  pairs with (M1), (D1), (R1)
//   (A3) release CAS installing a map  pairs with (H1) in every walker
//   (M1) acquire load of a context     pairs with (A2), (R2)
//   (D1) acquire exchange to null      pairs with (A2), (R2); one winner per association
//   (R1) acquire load before reassociating, (R2) release CAS of the new context
//   (U1) acq_rel CAS unlinking a frozen map (before it is retired)
#ifndef MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_
#define MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "instrumentation/chaos.h"
#include "instrumentation/fault_injection.h"
#include "reclamation/hazard_domain.h"
#include "atlas/leaf_hints.h"
#include "atlas/map_nodes.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::internal {

enum class AtlasResult : std::uint8_t {
  kOk,
  kAllInUse,
  kOutOfMemory,
  kInvalidArgument,
};

class AtlasCore final : public MidAtlas {
 public:
  // Arguments must already be valid (1 <= initial_mids <= max_mids <= 65535). Returns nullptr
  // when memory is short.
  static AtlasCore* New(std::uint32_t max_mids, std::uint32_t initial_mids,
                        ContextDestructor destructor) noexcept;
  // Hands every remaining context to the destructor given at creation, then frees all maps.
  ~AtlasCore() override;
  // The atlas and directory 0 are one allocation (see New).
  static void operator delete(void* memory) noexcept { ::operator delete(memory); }

  // The leaf-0 paths of these three are inline (below), so that each public entry point is a
  // single call; everything beyond leaf 0 is out of line in atlas_core.cc.
  AtlasResult AssociateContext(void* context, Mid* mid_out) noexcept;
  [[nodiscard]] void* MapMid(Mid mid) const noexcept;
  AtlasResult DissociateMid(Mid mid, void** context_out) noexcept;
  AtlasResult ReassociateContext(Mid mid, void* new_context) noexcept;
  std::size_t RemoveAll(absl::FunctionRef<void(void*)> fn);
  // Replaces the destructor that destruction will use (the C API passes it only then).
  void set_context_destructor(ContextDestructor destructor) noexcept {
    destructor_ = std::move(destructor);
  }

  [[nodiscard]] std::uint32_t max_mid_count() const noexcept { return max_mids_; }
  [[nodiscard]] std::uint32_t initial_mid_count() const noexcept { return initial_mids_; }
  [[nodiscard]] MidLayout mid_layout() const noexcept { return layout_; }
  [[nodiscard]] std::uint32_t HeldMids() const noexcept;
  [[nodiscard]] AtlasStats Snapshot() const noexcept;

 private:
  static constexpr int kDirHazard = 0;
  static constexpr int kLeafHazard = 1;

  enum class TakeResult : std::uint8_t { kTaken, kRetry, kOutOfMemory };

  AtlasCore(std::uint32_t max_mids, std::uint32_t initial_mids, MidLayout layout,
            ContextDestructor destructor) noexcept;
  bool AllocateInitialMaps() noexcept;

  [[nodiscard]] Mid MidOf(std::uint32_t leaf, std::uint32_t slot) const noexcept {
    return static_cast<Mid>((leaf << leaf_shift_) | slot);
  }
  [[nodiscard]] std::uint32_t ValidSlots(std::uint32_t leaf) const noexcept;

  // Finds the attached leaf for `leaf_index` with one protection attempt per level; nullptr
  // means that at some instant during the call the leaf was absent or frozen (AC4).
  LeafMap* ProtectLeafOnce(HazardRecord& record, std::uint32_t leaf_index,
                           DirectoryMap** dir_out) const noexcept;
  static void ClearHazards(HazardRecord& record) noexcept;

  [[nodiscard]] void* MapMidFirstCall(Mid mid) const noexcept;
  AtlasResult AssociateBeyondLeafZero(void* context, Mid* mid_out) noexcept;
  AtlasResult DissociateBeyondLeafZero(Mid mid, void** context_out) noexcept;
  bool TakeFromLeaf(LeafMap& leaf, void* context, Mid* mid_out) noexcept;
  static void* TakeContext(LeafMap& leaf, std::uint32_t slot) noexcept;
  TakeResult TakeFromSubordinate(HazardRecord& record, std::uint32_t leaf_index, void* context,
                                 Mid* mid_out) noexcept;
  DirectoryMap* ProtectOrGrowDirectory(HazardRecord& record, std::uint32_t dir_index) noexcept;
  TakeResult GrowLeaf(HazardRecord& record, DirectoryMap& dir, std::uint32_t leaf_index,
                      void* context, Mid* mid_out) noexcept;
  void ClearHintIfFull(LeafMap& leaf) noexcept;
  bool ConfirmAllInUse(HazardRecord& record) noexcept;

  void OnLeafDrained(HazardRecord& record, DirectoryMap& dir, LeafMap& leaf) noexcept;
  void UnlinkFrozenLeaf(DirectoryMap& dir, LeafMap& leaf) noexcept;
  void UnlinkFrozenDirectory(DirectoryMap& dir) noexcept;
  void CountLeafOut(DirectoryMap& dir) noexcept;

  template <typename Visit>
  void ForEachAttachedLeaf(Visit&& visit) const noexcept;

  // --- Immutable after construction; everything Map reads sits in the first cache line. ---
  std::uint32_t max_mids_;
  std::uint32_t leaf_shift_;  // == layout_.leaf_bits
  std::uint32_t slot_mask_;
  std::uint32_t dir_shift_;   // == layout_.dir_bits
  std::uint32_t entry_mask_;
  LeafMap* leaf0_ = nullptr;  // permanent: MIDs below 2^leaf_bits never need a hazard
  // Directory 0 lives right after this object, in the same allocation, so Map reaches its
  // leaf pointers at a fixed offset from `this`: one dependent load fewer than a pointer.
  // Permanent (AC2); root_[0] always holds it.
  [[nodiscard]] DirectoryMap* dir0() const noexcept {
    return reinterpret_cast<DirectoryMap*>(const_cast<AtlasCore*>(this) + 1);
  }
  // The root is embedded for the same reason; only the first dir_count_ entries are used.
  static constexpr std::uint32_t kMaxRootEntries = 1U << ((16 - kMinLeafBits) / 2);
  std::array<std::atomic<DirectoryMap*>, kMaxRootEntries> root_{};
  std::uint32_t leaf_count_;      // leaves needed to cover [0, max_mids)
  std::uint32_t dir_count_ = 0;   // directories needed to cover those leaves
  std::uint32_t leaf_capacity_;
  std::uint32_t dir_entries_;
  std::uint32_t initial_mids_;
  MidLayout layout_;
  HazardDomain& domain_;
  ContextDestructor destructor_;

  // --- Shared, written by associate/dissociate on rare transitions. ---
  LeafHints hints_;
  // The one drained subordinate leaf kept attached as a spare (0 = none): see OnLeafDrained.
  // Written only when a leaf drains, so it may share a line with the read-mostly fields.
  std::atomic<std::uint32_t> spare_leaf_{0};
};

// ----------------------------------------------------------------------------------------
// Hot paths, inline so that MidAtlas::Map and RxMapMidToContext are one call each.

// One hazard per walk (AC5): a leaf of directory 0 is protected itself (directory 0 is
// permanent, AC2); a leaf of any other directory is protected through its directory, whose
// hazard guards every leaf unlinked from it (HD1).
inline LeafMap* AtlasCore::ProtectLeafOnce(HazardRecord& record, std::uint32_t leaf_index,
                                           DirectoryMap** dir_out) const noexcept {
  const std::uint32_t dir_index = leaf_index >> dir_shift_;
  std::atomic<LeafMap*>* entry = nullptr;
  if (dir_index == 0) {
    *dir_out = dir0();
    entry = &dir0()->leaf(leaf_index & entry_mask_);
    return record.TryProtect(kLeafHazard, *entry);  // (H1)-(H3)
  }
  DirectoryMap* dir = record.TryProtect(kDirHazard, root_[dir_index]);  // (H1)-(H3)
  if (dir == nullptr) return nullptr;
  *dir_out = dir;
  // (H1') acquire: pairs with the install (A3). No validation needed: AC5.
  return dir->leaf(leaf_index & entry_mask_).load(std::memory_order_acquire);
}

inline void AtlasCore::ClearHazards(HazardRecord& record) noexcept {
  record.Clear(kDirHazard);   // (H4)
  record.Clear(kLeafHazard);  // (H4)
}

// Map: wait-free. Linearization point: the acquire load of the context (M1), or, when a
// protection attempt fails, the instant at which the map was absent or frozen (AC4).
inline void* AtlasCore::MapMid(Mid mid) const noexcept {
  if (mid >= max_mids_) return nullptr;
  const std::uint32_t leaf_index = std::uint32_t{mid} >> leaf_shift_;
  const std::uint32_t slot = mid & slot_mask_;
  if (leaf_index == 0) [[likely]] {
    return leaf0_->context(slot).load(std::memory_order_acquire);  // (M1) pairs with (A2)/(R2)
  }
  // Read the thread's record directly and leave its first acquisition to an out-of-line tail
  // call, so that this function stays a leaf with no stack frame.
  HazardRecord* record_ptr = hazard_detail::this_thread_record;
  if (record_ptr == nullptr) [[unlikely]] return MapMidFirstCall(mid);
  HazardRecord& record = *record_ptr;
  const std::uint32_t dir_index = leaf_index >> dir_shift_;
  const std::uint32_t entry = leaf_index & entry_mask_;
  void* context = nullptr;
  if (dir_index == 0) {
    // Directory 0 is permanent (AC2); protect the leaf itself.
    const LeafMap* leaf = record.TryProtect(kLeafHazard, dir0()->leaf(entry));  // (H1)-(H3)
    if (leaf == nullptr) return nullptr;                                         // AC4
    context = leaf->context(slot).load(std::memory_order_acquire);               // (M1)
    record.Clear(kLeafHazard);                                                   // (H4)
    return context;
  }
  // Protect the directory; it guards its leaves (HD1), so one hazard covers the walk (AC5).
  DirectoryMap* dir = record.TryProtect(kDirHazard, root_[dir_index]);  // (H1)-(H3)
  if (dir == nullptr) return nullptr;                                    // AC4
  // (H1') acquire: pairs with the install (A3).
  const LeafMap* leaf = dir->leaf(entry).load(std::memory_order_acquire);
  if (leaf != nullptr) context = leaf->context(slot).load(std::memory_order_acquire);  // (M1)
  record.Clear(kDirHazard);  // (H4)
  return context;
}

// Associate: lock-free. Linearization point: the release store of the context (A2), or the
// release CAS that installs a new leaf already holding it (A3).
inline AtlasResult AtlasCore::AssociateContext(void* context, Mid* mid_out) noexcept {
  if (context == nullptr || mid_out == nullptr) [[unlikely]] {
    return AtlasResult::kInvalidArgument;
  }
  if (TakeFromLeaf(*leaf0_, context, mid_out)) [[likely]] return AtlasResult::kOk;
  return AssociateBeyondLeafZero(context, mid_out);
}

inline bool AtlasCore::TakeFromLeaf(LeafMap& leaf, void* context, Mid* mid_out) noexcept {
  const FreeStack::PopResult popped = leaf.stack().Pop(leaf.links());  // (A1)
  if (popped.index == FreeStack::kNone) [[unlikely]] {
    if (leaf.index() != 0) ClearHintIfFull(leaf);
    return false;
  }
  MIDATLAS_CHAOS_POINT();
  // AC1: a slot on the free stack holds null, so until this store Map returns null for it.
  // (A2) release: pairs with (M1), (D1), (R1): whatever the caller wrote into *context before
  // associating is visible to every thread that maps the MID to it.
  leaf.context(popped.index).store(context, std::memory_order_release);
  *mid_out = MidOf(leaf.index(), popped.index);
  if (popped.free_after == 0 && leaf.index() != 0) [[unlikely]] ClearHintIfFull(leaf);
  return true;
}

// Dissociate: lock-free. Linearization point: the exchange that takes the context (D1), or
// the load / failed protection that shows the MID free.
inline void* AtlasCore::TakeContext(LeafMap& leaf, std::uint32_t slot) noexcept {
  std::atomic<void*>& cell = leaf.context(slot);
  // relaxed pre-check: a MID that is not in use (a late duplicate response) is common bad
  // input; answering it must not write to the slot's cache line. A null seen here is a valid
  // linearization point by itself.
  if (cell.load(std::memory_order_relaxed) == nullptr) return nullptr;
  MIDATLAS_CHAOS_POINT();
  if constexpr (kFaultTakeNoExchange) {
    // Planted fault (test builds only, fault_injection.h): a load and a store where (D1)
    // needs one RMW, so two racing dissociates can both read the context.
    void* context = cell.load(std::memory_order_acquire);
    MIDATLAS_CHAOS_POINT();
    cell.store(nullptr, std::memory_order_relaxed);
    return context;
  }
  // (D1) acquire exchange: pairs with (A2)/(R2), so the caller sees what the associating
  // thread wrote into the context. Of racing exchanges exactly one reads the non-null value.
  return cell.exchange(nullptr, std::memory_order_acquire);
}

inline AtlasResult AtlasCore::DissociateMid(Mid mid, void** context_out) noexcept {
  if (context_out == nullptr) [[unlikely]] return AtlasResult::kInvalidArgument;
  *context_out = nullptr;
  if (mid >= max_mids_) [[unlikely]] return AtlasResult::kInvalidArgument;
  if ((std::uint32_t{mid} >> leaf_shift_) != 0) return DissociateBeyondLeafZero(mid, context_out);
  void* context = TakeContext(*leaf0_, mid);
  if (context == nullptr) return AtlasResult::kInvalidArgument;
  leaf0_->stack().Push(leaf0_->links(), mid);  // (S2) release: free after use
  *context_out = context;
  return AtlasResult::kOk;
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_
