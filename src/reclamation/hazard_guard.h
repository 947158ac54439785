// HazardGuard: one hazard slot, held for the guard's lifetime (RAII), as folly's
// hazptr_holder and xenium's guard_ptr hold theirs. LeafHazardGuard is the same for the
// atlas's one-leaf paths, on a slot reserved for them.
//
// A guard takes a free slot of a thread's hazard record when it is built and clears and gives
// the slot back when it is destroyed, so no algorithm names a slot number or clears one by
// hand, and two components (the atlas walk, the NetName buckets, guarded lookups) can never
// write the same slot. Guards may be built, moved and destroyed in any order.
//
//   const RecordLease lease;                     // the thread's record (or the emergency one)
//   HazardGuard guard(lease.record());
//   const Node* node = guard.TryProtect(head);   // null: changed (or null) during the call
//   if (node != nullptr) Read(*node);             // safe until guard.Reset() or destruction
//
// Protecting a node reachable from `source`:
//   (hp:H1) node = source.load(acquire)       pairs with the publisher's release store/CAS
//   (hp:H2) slot = node                       relaxed; ordered by (fence:F2) and (fence:F3)
//   (fence:F2) compiler barrier
//   (hp:H3) source.load(acquire) == node ?    else the node may already be unlinked
// and a guard's release of its slot is (hp:H4), a release store of null that pairs with the
// reclaimer's acquire load (hp:R3): every read made through the guard happens-before the free.
//
// Under ThreadSanitizer (kIsTsan), which models no asymmetric fence, (hp:H2) and (hp:H3) are
// seq_cst instead: the same store->load guarantee, in a form TSan checks.
#ifndef MIDATLAS_SRC_RECLAMATION_HAZARD_GUARD_H_
#define MIDATLAS_SRC_RECLAMATION_HAZARD_GUARD_H_

#include <atomic>
#include <cstdint>

#include "instrumentation/atomic.h"
#include "instrumentation/fault_injection.h"
#include "instrumentation/invariants.h"
#include "instrumentation/sanitizers.h"
#include "reclamation/asymmetric_fence.h"
#include "reclamation/hazard_domain.h"

namespace midatlas::internal {

// The protocol on one hazard slot; the guards below own the slot.
class HazardSlot {
 public:
  // One attempt to protect the node `source` points to. Returns the node, now safe to read
  // until Reset or the guard's end, or nullptr when `source` is null (the slot keeps what it
  // held) or changed during the attempt (the slot is cleared). A nullptr therefore means "at some instant during this call,
  // `source` did not point to the node it held when the call began": callers use that to
  // stay wait-free.
  template <typename T>
  T* TryProtect(const Atomic<T*>& source) noexcept {
    T* node = LoadSource(source);
    if (node == nullptr) return nullptr;
    Publish(node);
    if (kFaultHazardNoValidate) return node;  // planted fault (fault_injection.h)
    if (ReloadSource(source) == node) [[likely]] return node;
    Reset();
    return nullptr;
  }

  // Protects the node `source` points to, retrying until it is stable. Lock-free.
  template <typename T>
  T* Protect(const Atomic<T*>& source) noexcept {
    T* node = LoadSource(source);
    while (node != nullptr) {
      Publish(node);
      T* again = ReloadSource(source);
      if (again == node) return node;
      node = again;
    }
    Reset();
    return nullptr;
  }

  // Protects a node that nobody else can reach yet, before the caller publishes it: once
  // published it may be unlinked and retired at any time, and the release publication orders
  // this hazard before any reclaimer's scan.
  void ProtectUnshared(const void* node) noexcept { Publish(node); }

  // Ends protection, keeping the slot for the next Protect.
  void Reset() noexcept {
    // (hp:H4) release: everything read through the guard happens-before the reclaimer that
    // observes the clear slot at (hp:R3).
    slot_->store(nullptr, std::memory_order_release);
  }

  // The node the slot holds now (tests and diagnostics; the owner's own slot).
  [[nodiscard]] const void* protected_node() const noexcept {
    return slot_->load(std::memory_order_relaxed);  // relaxed: the owner reads its own store
  }

 protected:
  explicit HazardSlot(Atomic<const void*>* slot) noexcept : slot_(slot) {}
  HazardSlot(const HazardSlot&) = default;
  HazardSlot& operator=(const HazardSlot&) = default;
  ~HazardSlot() = default;

  Atomic<const void*>* slot_;

 private:
  // Under TSan both the hazard store and the validating re-load are seq_cst: TSan cannot see
  // the asymmetric fence pair, and the seq_cst store->load order is the same guarantee.
  static constexpr std::memory_order kPublishOrder =
      kIsTsan ? std::memory_order_seq_cst : std::memory_order_relaxed;
  static constexpr std::memory_order kValidateOrder =
      kIsTsan ? std::memory_order_seq_cst : std::memory_order_acquire;

  template <typename T>
  static T* LoadSource(const Atomic<T*>& source) noexcept {
    // (hp:H1) acquire: pairs with the release store or CAS that published the node (for the
    // atlas (atlas:A3)/(atlas:A4), for the NetName table (nn:N8)), so its initialized
    // contents are visible.
    return source.load(std::memory_order_acquire);
  }

  template <typename T>
  static T* ReloadSource(const Atomic<T*>& source) noexcept {
    // (hp:H3) acquire (seq_cst on TSan): with (fence:F2) before it and the reclaimer's
    // (fence:F3), either this load sees the unlink of the node we published, or the
    // reclaimer's scan (hp:R3) sees our hazard (hp:H2).
    return source.load(kValidateOrder);
  }

  void Publish(const void* node) noexcept {
    // (hp:H2) relaxed is enough: (fence:F2) keeps it before the re-load (hp:H3) on this
    // thread, and the reclaimer's (fence:F3) makes it visible before its scan (hp:R3).
    slot_->store(node, kPublishOrder);
    if constexpr (!kIsTsan) AsymmetricLightBarrier();  // (fence:F2)
  }
};

// The general guard: any number per thread, in any order, movable.
class HazardGuard : public HazardSlot {
 public:
  // Takes a slot of `record`, which must be the calling thread's.
  explicit HazardGuard(HazardRecord& record) : HazardSlot(record.TakeSlot()), record_(&record) {}

  HazardGuard(HazardGuard&& other) noexcept : HazardSlot(other.slot_), record_(other.record_) {
    other.slot_ = nullptr;
  }
  HazardGuard& operator=(HazardGuard&& other) noexcept {
    if (this != &other) {
      Release();
      slot_ = other.slot_;
      record_ = other.record_;
      other.slot_ = nullptr;
    }
    return *this;
  }
  HazardGuard(const HazardGuard&) = delete;
  HazardGuard& operator=(const HazardGuard&) = delete;
  ~HazardGuard() { Release(); }

 private:
  void Release() noexcept {
    if (slot_ == nullptr) return;  // moved from
    Reset();
    record_->GiveBack(slot_);
    slot_ = nullptr;
  }

  HazardRecord* record_;
};

// The guard of the atlas's one-leaf paths (dissociate and reassociate beyond the first leaf):
// the record's reserved leaf slot (HazardRecord), so taking and giving it back costs nothing.
// Only a path that never takes a second LeafHazardGuard while it holds one may use it.
class LeafHazardGuard : public HazardSlot {
 public:
  explicit LeafHazardGuard(HazardRecord& record) noexcept : HazardSlot(&record.leaf_slot()) {
    MIDATLAS_INVARIANT(slot_->load(std::memory_order_relaxed) == nullptr, "HG3",
                       "a leaf guard was taken while another held the leaf slot");
  }
  LeafHazardGuard(const LeafHazardGuard&) = delete;
  LeafHazardGuard& operator=(const LeafHazardGuard&) = delete;
  ~LeafHazardGuard() { Reset(); }
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_HAZARD_GUARD_H_
