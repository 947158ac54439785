// A small hazard-pointer domain: safe memory reclamation for lock-free structures whose
// readers must not touch a node after it is freed.
//
// A reader publishes the node it is about to read in one of its record's slots, then checks
// that the node is still reachable; a writer that unlinks a node retires it to the domain, and
// the domain frees it only once no slot holds it. Reader cost is a load, a store to the reader's
// own cache line, a compiler barrier and a re-load: the matching full barrier is paid by the
// reclaimer (membarrier, see asymmetric_fence.h), which runs once per `reclaim_threshold`
// retirements.
//
// Compared with RCU / epochs: a stalled reader pins at most kHazardSlots nodes, not every node
// retired since it stalled, so memory stays bounded; the price is a validation re-load per
// protected pointer.
//
// Numbered operations (cited by the callers' comments):
//   (H1) acquire load of the source pointer       pairs with the publisher's release CAS/store
//   (H2) store of the hazard                     relaxed; ordered by (F2)/(F3), seq_cst on TSan
//   (H3) validating re-load of the source         seq_cst on TSan
//   (H4) release clear of the hazard              pairs with (R3)
//   (R0) release push of a retired node           pairs with (R1)
//   (R1) acquire take of the retired list         pairs with (R0)
//   (R2) heavy barrier                            pairs with (H2)+(F2): see asymmetric_fence.h
//   (R3) acquire load of every hazard             pairs with (H4)
#ifndef MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_
#define MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_

#include <array>
#include <atomic>
#include <cstddef>

#include "reclamation/asymmetric_fence.h"
#include "instrumentation/sanitizers.h"

namespace midatlas::internal {

// Objects retired to a domain embed this header (no allocation on retire).
struct Retirable {
  Retirable* retired_next = nullptr;
  // Frees the object. Runs on whichever thread reclaims, with no lock held.
  void (*reclaim)(Retirable*) noexcept = nullptr;
  // A hazard on the guard protects this object too (INVARIANT HD1). Set before Retire to
  // the container the object was unlinked from, so that a reader holding the container may
  // read the object through it without a hazard of its own.
  const void* guard = nullptr;
};

inline constexpr int kHazardSlots = 4;

#if defined(MIDATLAS_RECLAIM_THRESHOLD)
inline constexpr std::size_t kDefaultReclaimThreshold = MIDATLAS_RECLAIM_THRESHOLD;
#else
inline constexpr std::size_t kDefaultReclaimThreshold = 16;
#endif

// One thread's hazard slots. Only the owning thread writes the slots; reclaimers read them.
// Cache-line aligned so that a reader's stores never share a line with another reader's.
class alignas(64) HazardRecord {
 public:
  // One attempt to protect the node `source` points to. Returns the node, now safe to read
  // until Clear(slot), or nullptr when `source` is null or changed during the attempt. A
  // nullptr therefore means "at some instant during this call, `source` did not point to the
  // node it held when the call began" - callers use that to stay wait-free.
  template <typename T>
  T* TryProtect(int slot, const std::atomic<T*>& source) noexcept {
    T* node = source.load(std::memory_order_acquire);  // (H1)
    if (node == nullptr) return nullptr;
    Publish(slot, node);                                // (H2)
    if (source.load(kValidateOrder) == node) return node;  // (H3)
    Clear(slot);
    return nullptr;
  }

  // Protects the node `source` points to, retrying until it is stable. Lock-free.
  template <typename T>
  T* Protect(int slot, const std::atomic<T*>& source) noexcept {
    T* node = source.load(std::memory_order_acquire);  // (H1)
    while (true) {
      if (node == nullptr) {
        Clear(slot);
        return nullptr;
      }
      Publish(slot, node);                             // (H2)
      T* again = source.load(kValidateOrder);          // (H3)
      if (again == node) return node;
      node = again;
    }
  }

  // Protects a node that is not yet reachable by anyone else, before the caller publishes
  // it: once published it may be unlinked and retired at any time, and the release
  // publication orders this hazard before any reclaimer's scan.
  void ProtectUnshared(int slot, const void* node) noexcept { Publish(slot, node); }

  // Ends protection: everything this thread read from the node happens-before the reclaimer
  // that observes the cleared slot (R3).
  void Clear(int slot) noexcept {
    slots_[Index(slot)].store(nullptr, std::memory_order_release);  // (H4)
  }

  [[nodiscard]] const void* Get(int slot) const noexcept {
    // relaxed: diagnostic read of the owner's own slot.
    return slots_[Index(slot)].load(std::memory_order_relaxed);
  }

 private:
  friend class HazardDomain;

  // Under TSan both the hazard store and the re-load are seq_cst: TSan cannot see the
  // asymmetric fence pair, and the seq_cst store->load order is the same guarantee it gives.
  static constexpr std::memory_order kPublishOrder =
      kIsTsan ? std::memory_order_seq_cst : std::memory_order_relaxed;
  static constexpr std::memory_order kValidateOrder =
      kIsTsan ? std::memory_order_seq_cst : std::memory_order_acquire;

  static std::size_t Index(int slot) noexcept { return static_cast<std::size_t>(slot); }

  void Publish(int slot, const void* node) noexcept {
    // (H2) relaxed is enough: (F2) keeps it before the re-load (H3) on this thread, and the
    // reclaimer's (R2) makes it visible before the reclaimer's scan (R3).
    slots_[Index(slot)].store(node, kPublishOrder);
    if constexpr (!kIsTsan) AsymmetricLightBarrier();  // (F2)
  }

  std::array<std::atomic<const void*>, kHazardSlots> slots_{};
  std::atomic<bool> owned_{false};
  HazardRecord* next_ = nullptr;  // immutable once the record is on the domain's list
};

class HazardDomain {
 public:
  struct Options {
    // Retirements between scans. 1 scans on every retirement (what test builds use).
    std::size_t reclaim_threshold = kDefaultReclaimThreshold;
  };

  HazardDomain() noexcept : HazardDomain(Options{}) {}
  explicit HazardDomain(Options options) noexcept;
  // Frees every retired object. Every record must have been released.
  ~HazardDomain();
  HazardDomain(const HazardDomain&) = delete;
  HazardDomain& operator=(const HazardDomain&) = delete;

  // The process-wide domain every atlas uses. Never destroyed, so that threads exiting after
  // static destruction can still return their records.
  static HazardDomain& Default() noexcept;

  // A record for the calling thread; reuses a released one when it can, else allocates
  // (std::bad_alloc escapes only from here).
  HazardRecord* AcquireRecord();
  void ReleaseRecord(HazardRecord* record) noexcept;

  // Hands `object`, already unreachable for new readers, to the domain; it is freed once no
  // hazard slot holds it. Scans when the retired count reaches the threshold.
  void Retire(Retirable* object) noexcept;

  // Frees every retired object no hazard slot holds. Returns how many it freed.
  std::size_t Reclaim() noexcept;

  [[nodiscard]] std::size_t retired_count() const noexcept;
  [[nodiscard]] std::size_t record_count() const noexcept;

 private:
  bool IsProtected(const Retirable* object) const noexcept;
  void PushRetired(Retirable* first, Retirable* last, std::size_t count) noexcept;

  const std::size_t reclaim_threshold_;
  std::atomic<HazardRecord*> records_{nullptr};
  std::atomic<std::size_t> record_count_{0};
  alignas(64) std::atomic<Retirable*> retired_{nullptr};
  std::atomic<std::size_t> retired_count_{0};
};

// The calling thread's record in HazardDomain::Default(), acquired on its first call and
// returned to the domain when the thread exits. The fast path is one thread-local load.
namespace hazard_detail {
extern constinit thread_local HazardRecord* this_thread_record;
HazardRecord* AcquireThisThreadRecordSlow();
}  // namespace hazard_detail

inline HazardRecord& ThisThreadRecord() {
  HazardRecord* record = hazard_detail::this_thread_record;
  if (record == nullptr) [[unlikely]] record = hazard_detail::AcquireThisThreadRecordSlow();
  return *record;
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_
