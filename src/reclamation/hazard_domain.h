// A small hazard-pointer domain: safe memory reclamation for lock-free structures whose
// readers must not touch a node after it is freed.
//
// A reader publishes the node it is about to read in a hazard slot, then checks that the node
// is still reachable; a writer that unlinks a node retires it to the domain, and the domain
// frees it only once no slot holds it. Reader cost is a load, a store to the reader's own
// cache line, a compiler barrier and a re-load: the matching full barrier is paid by the
// reclaimer (membarrier, see asymmetric_fence.h), which runs once per `reclaim_threshold`
// retirements.
//
// Algorithms never name a slot: a HazardGuard (hazard_guard.h) takes a free slot of the
// calling thread's record when it is built and gives it back when it is destroyed, so two
// components can never write the same slot, and a thread may hold any number of guards (a
// record that runs out of slots chains another record of the same thread). HazardRecord is
// the one place that assigns slots; it reserves one for leaf functions (LeafHazardGuard).
//
// Compared with RCU / epochs: a stalled reader pins only the nodes its live guards hold, not
// every node retired since it stalled, so memory stays bounded; the price is a validation
// re-load per protected pointer.
//
// Numbered operations (docs/DESIGN.md, "Memory orders in one place", lists them all):
//   hazard_guard.h    (hp:H1) source load, (hp:H2) hazard store, (hp:H3) validating re-load,
//                     (hp:H4) hazard clear
//   this file / .cc   (hp:P1)-(hp:P4) the record list, (hp:R0)-(hp:R3) retire and reclaim
#ifndef MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_
#define MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "instrumentation/atomic.h"
#include "instrumentation/invariants.h"
#include "instrumentation/sanitizers.h"
#include "reclamation/asymmetric_fence.h"

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
#if MIDATLAS_CHECK_INVARIANTS
  // Debug builds catch an object retired twice (it would be freed twice).
  bool retired = false;
#endif
};

#if defined(MIDATLAS_RECLAIM_THRESHOLD)
inline constexpr std::size_t kDefaultReclaimThreshold = MIDATLAS_RECLAIM_THRESHOLD;
#else
inline constexpr std::size_t kDefaultReclaimThreshold = 16;
#endif

class HazardDomain;

// A group of hazard slots owned by one thread at a time. Only the owner writes the slots and
// the free-slot mask; reclaimers only read the slots. The slots fill one cache line of their
// own, so a reader's hazard stores never share a line with another thread's.
class alignas(64) HazardRecord {
 public:
  // The slot assignment of every user, in one place:
  //   slot 0        reserved for leaf guards (LeafHazardGuard): the atlas's one-leaf paths
  //                 (dissociate and reassociate beyond the first leaf), which never take a
  //                 second leaf guard while they hold one, so it can never be held twice
  //   slots 1..7    lent to HazardGuards (the atlas walks, the NetName buckets, guarded
  //                 lookups), lowest free first; beyond them, slots of a chained record
  static constexpr unsigned kSlots = 8;
  static constexpr unsigned kLeafSlot = 0;
  static constexpr unsigned kLendableSlots = kSlots - 1;  // TakeSlot's, before chaining

  // A free slot of this record or of a record chained to it, taken for the caller until
  // GiveBack. Owner thread only. Allocates a chained record only when all kSlots slots of
  // every record of the chain are taken (a thread holding more than kSlots guards at once).
  // nullptr only when every slot is taken and the chained record cannot be allocated.
  [[nodiscard]] Atomic<const void*>* TakeSlot() noexcept {
    if (free_mask_ == 0) [[unlikely]] return TakeSlotFromChain();
    const auto index = static_cast<unsigned>(std::countr_zero(free_mask_));
    free_mask_ &= free_mask_ - 1;
    return &slots_[index];
  }

  // The slot of leaf guards (LeafHazardGuard): reserved, never handed out by TakeSlot.
  [[nodiscard]] Atomic<const void*>& leaf_slot() noexcept { return slots_[kLeafSlot]; }

  // Gives back a slot TakeSlot returned; the slot must already be clear (hp:H4).
  void GiveBack(Atomic<const void*>* slot) noexcept {
    const auto index = static_cast<std::size_t>(slot - slots_.data());
    if (index >= kSlots) [[unlikely]] {
      GiveBackToChain(slot);
      return;
    }
    MIDATLAS_INVARIANT((free_mask_ & (1U << index)) == 0 && index != kLeafSlot, "HG1",
                       "a hazard slot was given back twice (a guard released twice)");
    free_mask_ |= 1U << index;
  }

  // Slots this record and its chain hand out right now (tests and diagnostics).
  [[nodiscard]] unsigned TakenSlots() const noexcept;

 private:
  friend class HazardDomain;
  static constexpr std::uint32_t kAllFree = ((1U << kSlots) - 1) & ~(1U << kLeafSlot);

  Atomic<const void*>* TakeSlotFromChain() noexcept;
  void GiveBackToChain(Atomic<const void*>* slot) noexcept;

  std::array<Atomic<const void*>, kSlots> slots_{};
  // --- The owner's line: never read by reclaimers. ---
  std::uint32_t free_mask_ = kAllFree;
  HazardRecord* chained_ = nullptr;  // the owner's next record, taken when this one is full
  HazardDomain* domain_ = nullptr;
  Atomic<bool> owned_{false};
  HazardRecord* next_ = nullptr;  // immutable once the record is on the domain's list
};

static_assert(sizeof(Atomic<const void*>) * HazardRecord::kSlots == 64,
              "the slots fill exactly one cache line");
static_assert(HazardRecord::kSlots <= 32, "the free-slot mask is one 32-bit word");

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

  // A record for the calling thread; reuses a released one when it can, else allocates.
  // nullptr when memory is short (see RecordLease for what callers do then).
  HazardRecord* AcquireRecord() noexcept;
  // Returns a record (and the records chained to it); no guard on it may be alive.
  void ReleaseRecord(HazardRecord* record) noexcept;

  // Hands `object`, already unreachable for new readers, to the domain; it is freed once no
  // hazard slot holds it. Scans when the retired count reaches the threshold.
  void Retire(Retirable* object) noexcept;

  // Frees every retired object no hazard slot holds. Returns how many it freed.
  std::size_t Reclaim() noexcept;

  // True when a hazard slot of this domain holds `pointer` now: Reclaim's scan (hp:R3), for
  // what the domain does not own itself (retired contexts, retired_contexts.h). As Reclaim,
  // the caller runs AsymmetricHeavyBarrier between the unlink and this scan.
  [[nodiscard]] bool IsHazard(const void* pointer) const noexcept {
    return AnySlotHolds(pointer, pointer);
  }

  [[nodiscard]] std::size_t retired_count() const noexcept;
  [[nodiscard]] std::size_t record_count() const noexcept;

  // Pushes a record that the caller allocated (or owns statically) onto the list, owned.
  void AddRecord(HazardRecord* record) noexcept;

 private:
  bool IsProtected(const Retirable* object) const noexcept;
  bool AnySlotHolds(const void* first, const void* second) const noexcept;
  void PushRetired(Retirable* first, Retirable* last, std::size_t count) noexcept;

  const std::size_t reclaim_threshold_;
  Atomic<HazardRecord*> records_{nullptr};
  Atomic<std::size_t> record_count_{0};
  alignas(64) Atomic<Retirable*> retired_{nullptr};
  Atomic<std::size_t> retired_count_{0};
};

// The calling thread's record in HazardDomain::Default(), acquired on its first call and
// returned to the domain when the thread exits, after the thread's C++ thread_local
// destructors (a pthread key destructor returns it, so a thread_local destructor that still
// uses an atlas finds its record, or takes a new one that the key returns in turn). The fast
// path is one thread-local load.
namespace hazard_detail {
extern constinit thread_local HazardRecord* this_thread_record;
// nullptr when memory is short.
HazardRecord* AcquireThisThreadRecordSlow() noexcept;
}  // namespace hazard_detail

// The calling thread's record, or nullptr when the thread has none and none can be allocated.
inline HazardRecord* TryThisThreadRecord() noexcept {
  HazardRecord* record = hazard_detail::this_thread_record;
  if (record == nullptr) [[unlikely]] record = hazard_detail::AcquireThisThreadRecordSlow();
  return record;
}

// A record for the duration of one operation: the calling thread's own, or - when the thread
// has none and memory is too short to allocate one - the domain's one emergency record, which
// lives in static storage and is lent to one such thread at a time (the others wait). So every
// operation still gives its documented answer under memory exhaustion; only its progress
// guarantee weakens (blocking instead of lock-free) until the thread gets a record of its own.
class RecordLease {
 public:
  RecordLease() noexcept : record_(TryThisThreadRecord()) {
    if (record_ == nullptr) [[unlikely]] record_ = LeaseEmergencyRecord();
  }
  RecordLease(const RecordLease&) = delete;
  RecordLease& operator=(const RecordLease&) = delete;
  ~RecordLease() {
    if (emergency_) [[unlikely]] ReturnEmergencyRecord();
  }
  [[nodiscard]] HazardRecord& record() const noexcept { return *record_; }

 private:
  HazardRecord* LeaseEmergencyRecord() noexcept;
  void ReturnEmergencyRecord() noexcept;

  HazardRecord* record_;
  bool emergency_ = false;
};

// The calling thread's record; for tests and code that can afford to fail hard.
inline HazardRecord& ThisThreadRecord() noexcept {
  HazardRecord* record = TryThisThreadRecord();
  MIDATLAS_INVARIANT(record != nullptr, "HG4", "out of memory for this thread's hazard record");
  return *record;
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_HAZARD_DOMAIN_H_
