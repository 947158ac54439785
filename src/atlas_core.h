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
#ifndef MIDATLAS_SRC_ATLAS_CORE_H_
#define MIDATLAS_SRC_ATLAS_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "hazard_domain.h"
#include "leaf_hints.h"
#include "map_nodes.h"
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

  bool TakeFromLeaf(LeafMap& leaf, void* context, Mid* mid_out) noexcept;
  TakeResult TakeFromSubordinate(HazardRecord& record, std::uint32_t leaf_index, void* context,
                                 Mid* mid_out) noexcept;
  DirectoryMap* ProtectOrGrowDirectory(HazardRecord& record, std::uint32_t dir_index) noexcept;
  TakeResult GrowLeaf(HazardRecord& record, DirectoryMap& dir, std::uint32_t leaf_index,
                      void* context, Mid* mid_out) noexcept;
  void ClearHintIfFull(LeafMap& leaf) noexcept;

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
  DirectoryMap* dir0_ = nullptr;  // permanent: root_[0] always holds it
  std::unique_ptr<std::atomic<DirectoryMap*>[]> root_;
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
  alignas(64) std::atomic<std::uint32_t> spare_leaf_{0};
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_CORE_H_
