// The two kinds of subordinate MID_MAP: leaf maps (the free stack of a range of slots) and
// directory maps (pointers to leaf maps). Both are allocated as one block, header then
// arrays, and are retired to the hazard domain when detached.
//
// Leaf map, `capacity` = 2^leaf_bits slots, 64-byte aligned:
//
//   +----------------------------------------------+  offset 0
//   | Retirable (24) | serial | index | valid       |  read-only while attached
//   | contexts (pointer into the ContextRegion)    |
//   +----------------------------------------------+  offset 64
//   | FreeStack head (8) ........................ |  its own line: every associate and
//   +----------------------------------------------+  dissociate CASes it  offset 128
//   | Atomic<uint32_t> links[capacity]             |  free-stack links (free_stack.h)
//   +----------------------------------------------+
//
// The contexts of a leaf's slots are not in the leaf: they are the leaf's range of the
// atlas's flat ContextRegion (context_region.h), which Map reads without going through any
// map. A slot's context is null while the slot is free (or popped and not yet published).
// The free-stack head has a line to itself: it is the one word every associate and
// dissociate writes, and sharing it with the header made every other core miss on it.
//
// Directory map, 2^dir_bits entries:
//
//   +-----------------------------+  offset 0
//   | Retirable (24) | state | idx|  32-byte header
//   +-----------------------------+
//   | Atomic<LeafMap*> leaves[entries]             |
//   +----------------------------------------------+
//
//   state = number of non-null leaf entries (and leaves being installed), or kFrozen.
//
// Every atomic of a map is reached through one accessor below, which fixes its memory order
// and carries its label: (atlas:A2) (atlas:M1) (atlas:D0) (atlas:D1) (atlas:R1) (atlas:R2) for
// a slot's context, (atlas:W1) (atlas:A3) (atlas:U1) for a directory entry, (dir:DS1)-(dir:DS4)
// for a directory's state.
//   INVARIANT DM1: state >= number of non-null entries, because a grower counts itself in
//   before installing and counts out only after its entry is null again.
//   INVARIANT DM2: a frozen directory has no leaf entries and never gets one (freeze is a CAS
//   from 0, and counting in is a CAS that refuses kFrozen).
#ifndef MIDATLAS_SRC_ATLAS_MAP_NODES_H_
#define MIDATLAS_SRC_ATLAS_MAP_NODES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "atlas/free_stack.h"
#include "instrumentation/atomic.h"
#include "instrumentation/chaos.h"
#include "instrumentation/fault_injection.h"
#include "instrumentation/invariants.h"
#include "reclamation/hazard_domain.h"

namespace midatlas::internal {

class alignas(64) LeafMap : public Retirable {
 public:
  // Allocates a leaf whose slots [0, valid_slots) exist, their contexts being
  // contexts[0, valid_slots) (the leaf's range of the ContextRegion, all null). The slots s
  // with s + excluded_base in [excluded, excluded_end) (sorted, distinct: the excluded MIDs
  // of the leaf, excluded_base being its first MID) are never on the free stack (EX1). With
  // `first_slot_held`, the lowest slot that is not excluded is handed to the caller already
  // held (first_usable_slot()) and the other usable slots are on the free stack; else every
  // usable slot is. Returns nullptr when memory is short.
  // `serial` names this leaf object among every leaf its atlas ever creates (AC6's key).
  static LeafMap* Create(std::uint32_t index, std::uint32_t capacity, std::uint32_t valid_slots,
                         std::uint64_t serial, Atomic<void*>* contexts, bool first_slot_held,
                         const std::uint32_t* excluded = nullptr,
                         const std::uint32_t* excluded_end = nullptr,
                         std::uint32_t excluded_base = 0) noexcept;
  static void Destroy(LeafMap* leaf) noexcept;
  [[nodiscard]] static std::size_t AllocationSize(std::uint32_t capacity) noexcept {
    return sizeof(LeafMap) + capacity * sizeof(Atomic<std::uint32_t>);
  }

  // --- A slot's context: null = free (or popped and not yet published). ---

  // Publishes the context of a slot this thread just popped (AC1: it holds null until now).
  void PublishContext(std::uint32_t slot, void* context) noexcept {
    PublishCell(contexts()[slot], context);
  }
  // The same three operations on a cell of the context region, for the reuse policies that
  // hand out indexes without a leaf's free stack (index_picker.h).
  static void PublishCell(Atomic<void*>& cell, void* context) noexcept {
    MIDATLAS_INVARIANT(cell.load(std::memory_order_relaxed) == nullptr, "AC1",
                       "a slot taken from the free stack already held a context");
    // (atlas:A2) release: pairs with (atlas:M1), (atlas:D1), (atlas:R1).
    cell.store(context, std::memory_order_release);
  }

  // Takes the context of a slot, leaving it null; of racing takers exactly one receives it.
  // nullptr when the slot held none.
  [[nodiscard]] void* TakeContext(std::uint32_t slot) noexcept {
    return TakeCell(contexts()[slot]);
  }
  [[nodiscard]] static void* TakeCell(Atomic<void*>& cell) noexcept {
    // (atlas:D0) relaxed pre-check: a MID that is not in use (a late duplicate response) is
    // common bad input, and answering it must not write to the slot's cache line. A null seen
    // here is a valid linearization point by itself; nothing is read through a non-null.
    if (cell.load(std::memory_order_relaxed) == nullptr) return nullptr;
    MIDATLAS_CHAOS_POINT();
    if (kFaultTakeNoExchange) {
      // Planted fault (test builds only, fault_injection.h): a load and a store where
      // (atlas:D1) needs one RMW, so two racing takers can both read the context.
      void* context = cell.load(std::memory_order_acquire);
      MIDATLAS_CHAOS_POINT();
      cell.store(nullptr, std::memory_order_relaxed);
      return context;
    }
    // (atlas:D1) acquire exchange: pairs with (atlas:A2)/(atlas:R2), so the taker sees what
    // the associating thread wrote into the context. No release needed: the push (stack:S2)
    // that frees the slot releases it.
    return cell.exchange(nullptr, std::memory_order_acquire);
  }

  // Replaces the context of a slot in use. False (and no change) when the slot is free.
  bool ReplaceContext(std::uint32_t slot, void* new_context) noexcept {
    return ReplaceCell(contexts()[slot], new_context);
  }
  static bool ReplaceCell(Atomic<void*>& cell, void* new_context) noexcept {
    // (atlas:R1) relaxed: the CAS below validates the value; nothing is read through it.
    void* current = cell.load(std::memory_order_relaxed);
    while (current != nullptr) {
      MIDATLAS_CHAOS_POINT();
      // (atlas:R2) release CAS: publishes the new context; pairs with (atlas:M1)/(atlas:D1).
      if (cell.compare_exchange_weak(current, new_context, std::memory_order_release,
                                     std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Takes every context, for destruction (single-threaded by contract: relaxed).
  template <typename Fn>
  void DrainQuiescent(Fn&& fn) noexcept(noexcept(fn(nullptr))) {
    for (std::uint32_t slot = 0; slot < valid_slots_; ++slot) {
      void* context = contexts()[slot].exchange(nullptr, std::memory_order_relaxed);
      if (context != nullptr) fn(context);
    }
  }

  [[nodiscard]] Atomic<std::uint32_t>* links() noexcept {
    return reinterpret_cast<Atomic<std::uint32_t>*>(this + 1);
  }

  [[nodiscard]] FreeStack& stack() noexcept { return stack_; }
  [[nodiscard]] const FreeStack& stack() const noexcept { return stack_; }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  [[nodiscard]] std::uint32_t valid_slots() const noexcept { return valid_slots_; }
  // The valid slots less the excluded ones: the slots that can ever be held. The free count
  // of a drained leaf, and the one a freeze requires (FS3).
  [[nodiscard]] std::uint32_t usable_slots() const noexcept { return usable_slots_; }
  // The lowest usable slot: the one a grower holds from the start.
  [[nodiscard]] std::uint32_t first_usable_slot() const noexcept { return first_usable_; }
  [[nodiscard]] std::uint64_t serial() const noexcept { return serial_; }

  // Slots held (popped and not pushed back); 0 for a frozen leaf.
  [[nodiscard]] std::uint32_t HeldSlots() const noexcept {
    const FreeStack::Head head = stack_.Load();
    return head.frozen() ? 0 : usable_slots_ - head.free;
  }

 private:
  LeafMap(std::uint32_t index, std::uint32_t valid_slots, std::uint64_t serial,
          Atomic<void*>* contexts) noexcept
      : serial_(serial),
        index_(index),
        valid_slots_(valid_slots),
        usable_slots_(valid_slots),
        contexts_(contexts) {}

  [[nodiscard]] Atomic<void*>* contexts() const noexcept { return contexts_; }

  static void Reclaim(Retirable* self) noexcept { Destroy(static_cast<LeafMap*>(self)); }

  std::uint64_t serial_;
  std::uint32_t index_;
  std::uint32_t valid_slots_;
  std::uint32_t usable_slots_;
  std::uint32_t first_usable_ = 0;
  Atomic<void*>* contexts_;  // this leaf's range of the ContextRegion
  alignas(64) FreeStack stack_;
};

class DirectoryMap : public Retirable {
 public:
  static constexpr std::uint32_t kFrozen = 0x80000000U;

  static DirectoryMap* Create(std::uint32_t index, std::uint32_t entries) noexcept;
  // Constructs a directory in caller-provided storage of AllocationSize(entries) bytes (the
  // atlas embeds directory 0 in its own allocation). Never pass it to Destroy.
  static DirectoryMap* CreateAt(void* storage, std::uint32_t index,
                                std::uint32_t entries) noexcept;
  static void Destroy(DirectoryMap* dir) noexcept;
  [[nodiscard]] static std::size_t AllocationSize(std::uint32_t entries) noexcept {
    return sizeof(DirectoryMap) + entries * sizeof(Atomic<LeafMap*>);
  }

  // The entry itself, for a HazardGuard to protect the leaf it points to ((hp:H1)-(hp:H3)).
  [[nodiscard]] const Atomic<LeafMap*>& leaf(std::uint32_t entry) const noexcept {
    return leaves()[entry];
  }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  [[nodiscard]] std::uint32_t entries() const noexcept { return entries_; }

  // The leaf an entry points to, read under a hazard on this directory (AC5): no hazard on
  // the leaf is needed.
  [[nodiscard]] LeafMap* LoadLeaf(std::uint32_t entry) const noexcept {
    // (atlas:W1) acquire: pairs with the install (atlas:A3), so the leaf's header, free stack
    // and first context are visible.
    return leaves()[entry].load(std::memory_order_acquire);
  }

  // Installs `fresh` in an empty entry. False if another grower installed one first.
  bool InstallLeaf(std::uint32_t entry, LeafMap* fresh) noexcept {
    LeafMap* expected = nullptr;
    // (atlas:A3) release CAS: publishes the leaf's header, free stack and the grower's
    // context; pairs with (hp:H1) and (atlas:W1) in every walker.
    return leaves()[entry].compare_exchange_strong(expected, fresh, std::memory_order_release,
                                                   std::memory_order_relaxed);
  }

  // Unlinks a frozen leaf. The caller protects `leaf`, so it cannot have been freed and
  // reused at the same address (no ABA); exactly one unlinker wins and retires it.
  bool UnlinkLeaf(std::uint32_t entry, LeafMap* leaf) noexcept {
    LeafMap* expected = leaf;
    // (atlas:U1) acq_rel CAS: acquire orders the freeze (stack:S4) we saw before it; release
    // orders it before the retirement (hp:R0) and the reclaimer's scan.
    return leaves()[entry].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                                   std::memory_order_relaxed);
  }

  // Before the directory is shared, or single-threaded (destruction): relaxed.
  void StoreLeafQuiescent(std::uint32_t entry, LeafMap* leaf) noexcept {
    leaves()[entry].store(leaf, std::memory_order_relaxed);
  }
  [[nodiscard]] LeafMap* LoadLeafQuiescent(std::uint32_t entry) const noexcept {
    return leaves()[entry].load(std::memory_order_relaxed);
  }

  // Counts a grower in before it installs a leaf (DM1). False if the directory is frozen.
  bool TryCountLeafIn() noexcept {
    std::uint32_t state = state_.load(std::memory_order_relaxed);  // validated by the CAS
    // (The planted fault DIR_COUNT_IGNORES_FREEZE, fault_injection.h, counts into a frozen one.)
    while ((state & kFrozen) == 0 || kFaultDirCountIgnoresFreeze) {
      // (dir:DS1) acq_rel CAS: acquire pairs with (dir:DS3) so we never count into a
      // directory whose freeze we have not seen; release orders our count before our install.
      if (state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Counts a leaf out after its entry became null again. Returns true if the count is now 0.
  bool CountLeafOut() noexcept {
    // (dir:DS2) acq_rel: release orders our entry's unlink before a freezer's (dir:DS3).
    const std::uint32_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
    MIDATLAS_INVARIANT(before != 0 && (before & kFrozen) == 0, "DM1",
                       "a directory counted out a leaf it never counted in");
    return before == 1;
  }

  // Freezes the directory if it has no leaves (DM2). True if this call froze it.
  bool TryFreezeEmpty() noexcept {
    std::uint32_t expected = 0;
    // (dir:DS3) acq_rel CAS: pairs with (dir:DS1)/(dir:DS2).
    return state_.compare_exchange_strong(expected, kFrozen, std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
  }

  [[nodiscard]] bool frozen() const noexcept {
    // (dir:DS4) acquire: pairs with (dir:DS3), so a reader that sees the freeze also sees the
    // empty entries.
    return (state_.load(std::memory_order_acquire) & kFrozen) != 0;
  }

 private:
  DirectoryMap(std::uint32_t index, std::uint32_t entries) noexcept
      : index_(index), entries_(entries) {}

  [[nodiscard]] Atomic<LeafMap*>* leaves() noexcept {
    return reinterpret_cast<Atomic<LeafMap*>*>(this + 1);
  }
  [[nodiscard]] const Atomic<LeafMap*>* leaves() const noexcept {
    return reinterpret_cast<const Atomic<LeafMap*>*>(this + 1);
  }

  static void Reclaim(Retirable* self) noexcept { Destroy(static_cast<DirectoryMap*>(self)); }

  Atomic<std::uint32_t> state_{0};
  std::uint32_t index_;
  std::uint32_t entries_;
};

static_assert(sizeof(LeafMap) % alignof(Atomic<std::uint32_t>) == 0,
              "links must start aligned right after the header");
static_assert(sizeof(LeafMap) == 128, "leaf header: one read-mostly line, one line for the head");
static_assert(sizeof(DirectoryMap) % alignof(Atomic<LeafMap*>) == 0,
              "leaf pointers must start aligned right after the header");
static_assert(sizeof(Atomic<void*>) == sizeof(void*) &&
                  std::atomic<void*>::is_always_lock_free,
              "slots are plain lock-free words");

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_MAP_NODES_H_
