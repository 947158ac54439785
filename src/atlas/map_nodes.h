// The two kinds of subordinate MID_MAP: leaf maps (slots holding contexts) and directory
// maps (pointers to leaf maps). Both are allocated as one block, header then arrays, and are
// retired to the hazard domain when detached.
//
// Leaf map, `capacity` = 2^leaf_bits slots (structure of arrays, 12 bytes per slot), 64-byte
// aligned:
//
//   +----------------------------------------------+  offset 0
//   | Retirable (24) | index | valid | capacity     |  read-only while attached
//   +----------------------------------------------+  offset 64
//   | FreeStack head (8) ........................ |  its own line: every associate and
//   +----------------------------------------------+  dissociate CASes it  offset 128
//   | std::atomic<void*> contexts[capacity]        |  null = free (or being associated)
//   +----------------------------------------------+
//   | std::atomic<uint32_t> next_free[capacity]    |  free-stack links
//   +----------------------------------------------+
//
// Contexts are kept dense, 8 per cache line, because Map reads nothing else. The free-stack
// head has a line to itself: it is the one word every associate and dissociate writes, and
// sharing it with the header or the first contexts made every other core miss on them.
//
// Directory map, 2^dir_bits entries:
//
//   +-----------------------------+  offset 0
//   | Retirable (24) | state | idx|  32-byte header
//   +-----------------------------+
//   | std::atomic<LeafMap*> leaves[entries]        |
//   +----------------------------------------------+
//
//   state = number of non-null leaf entries (and leaves being installed), or kFrozen.
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
#include "reclamation/hazard_domain.h"

namespace midatlas::internal {

class alignas(64) LeafMap : public Retirable {
 public:
  // Allocates a leaf whose slots [0, valid_slots) exist; slot `taken` (if < valid_slots) is
  // handed to the caller already holding `context`, the others are on the free stack.
  // Returns nullptr when memory is short.
  static LeafMap* Create(std::uint32_t index, std::uint32_t capacity, std::uint32_t valid_slots,
                         void* context_for_first_slot) noexcept;
  static void Destroy(LeafMap* leaf) noexcept;
  [[nodiscard]] static std::size_t AllocationSize(std::uint32_t capacity) noexcept {
    return sizeof(LeafMap) + capacity * (sizeof(std::atomic<void*>) + sizeof(std::atomic<std::uint32_t>));
  }

  [[nodiscard]] std::atomic<void*>& context(std::uint32_t slot) noexcept { return contexts()[slot]; }
  [[nodiscard]] const std::atomic<void*>& context(std::uint32_t slot) const noexcept {
    return contexts()[slot];
  }
  [[nodiscard]] std::atomic<std::uint32_t>* links() noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(contexts() + capacity_);
  }

  [[nodiscard]] FreeStack& stack() noexcept { return stack_; }
  [[nodiscard]] const FreeStack& stack() const noexcept { return stack_; }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  [[nodiscard]] std::uint32_t valid_slots() const noexcept { return valid_slots_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

  // Slots held (popped and not pushed back); 0 for a frozen leaf.
  [[nodiscard]] std::uint32_t HeldSlots() const noexcept {
    const FreeStack::Head head = stack_.Load();
    return head.frozen() ? 0 : valid_slots_ - head.free;
  }

 private:
  LeafMap(std::uint32_t index, std::uint32_t capacity, std::uint32_t valid_slots) noexcept
      : index_(index), valid_slots_(valid_slots), capacity_(capacity) {}

  [[nodiscard]] std::atomic<void*>* contexts() noexcept {
    return reinterpret_cast<std::atomic<void*>*>(this + 1);
  }
  [[nodiscard]] const std::atomic<void*>* contexts() const noexcept {
    return reinterpret_cast<const std::atomic<void*>*>(this + 1);
  }

  static void Reclaim(Retirable* self) noexcept { Destroy(static_cast<LeafMap*>(self)); }

  std::uint32_t index_;
  std::uint32_t valid_slots_;
  std::uint32_t capacity_;
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
    return sizeof(DirectoryMap) + entries * sizeof(std::atomic<LeafMap*>);
  }

  [[nodiscard]] std::atomic<LeafMap*>& leaf(std::uint32_t entry) noexcept { return leaves()[entry]; }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  [[nodiscard]] std::uint32_t entries() const noexcept { return entries_; }

  // Counts a grower in before it installs a leaf (DM1). False if the directory is frozen.
  bool TryCountLeafIn() noexcept {
    std::uint32_t state = state_.load(std::memory_order_relaxed);  // validated by the CAS
    while ((state & kFrozen) == 0) {
      // (DS1) acq_rel CAS: acquire pairs with (DS3) so we never count into a directory whose
      // freeze we have not seen; release orders our count before our install.
      if (state_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Counts a leaf out after its entry became null again. Returns true if the count is now 0.
  bool CountLeafOut() noexcept {
    // (DS2) acq_rel: release orders our entry's unlink before a freezer's (DS3).
    return state_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  // Freezes the directory if it has no leaves (DM2). True if this call froze it.
  bool TryFreezeEmpty() noexcept {
    std::uint32_t expected = 0;
    // (DS3) acq_rel CAS: pairs with (DS1)/(DS2).
    return state_.compare_exchange_strong(expected, kFrozen, std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
  }

  [[nodiscard]] bool frozen() const noexcept {
    // acquire: pairs with (DS3), so a reader that sees the freeze also sees the empty entries.
    return (state_.load(std::memory_order_acquire) & kFrozen) != 0;
  }

 private:
  DirectoryMap(std::uint32_t index, std::uint32_t entries) noexcept
      : index_(index), entries_(entries) {}

  [[nodiscard]] std::atomic<LeafMap*>* leaves() noexcept {
    return reinterpret_cast<std::atomic<LeafMap*>*>(this + 1);
  }

  static void Reclaim(Retirable* self) noexcept { Destroy(static_cast<DirectoryMap*>(self)); }

  std::atomic<std::uint32_t> state_{0};
  std::uint32_t index_;
  std::uint32_t entries_;
};

static_assert(sizeof(LeafMap) % alignof(std::atomic<void*>) == 0,
              "contexts must start aligned right after the header");
static_assert(sizeof(LeafMap) == 128, "leaf header: one read-mostly line, one line for the head");
static_assert(sizeof(DirectoryMap) % alignof(std::atomic<LeafMap*>) == 0,
              "leaf pointers must start aligned right after the header");
static_assert(sizeof(std::atomic<void*>) == sizeof(void*) &&
                  std::atomic<void*>::is_always_lock_free,
              "slots are plain lock-free words");

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_MAP_NODES_H_
