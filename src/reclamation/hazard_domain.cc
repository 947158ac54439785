#include "reclamation/hazard_domain.h"

#include <bit>
#include <cassert>
#include <new>

namespace midatlas::internal {

HazardDomain::HazardDomain(Options options) noexcept
    : reclaim_threshold_(options.reclaim_threshold == 0 ? 1 : options.reclaim_threshold) {
  // Readers rely on the fence mode being fixed before they first use this domain.
  InitAsymmetricFences();
}

HazardDomain::~HazardDomain() {
  Reclaim();
  // relaxed: destruction is single-threaded by contract.
  assert(retired_.load(std::memory_order_relaxed) == nullptr &&
         "a hazard record still protected a retired object at domain destruction");
  HazardRecord* record = records_.load(std::memory_order_relaxed);
  while (record != nullptr) {
    HazardRecord* next = record->next_;
    assert(!record->owned_.load(std::memory_order_relaxed) &&
           "hazard domain destroyed while a record was still acquired");
    delete record;
    record = next;
  }
}

HazardDomain& HazardDomain::Default() noexcept {
  // Deliberately leaked: threads may exit (and return records) after static destruction.
  // NOLINTNEXTLINE(bugprone-unhandled-exception-at-new): failing here at start-up is fatal anyway.
  static auto* const kDomain = new HazardDomain();
  return *kDomain;
}

HazardRecord* HazardDomain::AcquireRecord() {
  // (hp:P1) acquire: pairs with (hp:P2), so the links and fields of records pushed by others
  // are visible.
  for (HazardRecord* record = records_.load(std::memory_order_acquire); record != nullptr;
       record = record->next_) {
    bool expected = false;
    // (hp:P3) acquire CAS: pairs with (hp:P4), the previous owner's release, so its slot
    // clears are ordered before our use. relaxed on failure: we only move on.
    if (!record->owned_.load(std::memory_order_relaxed) &&
        record->owned_.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
      return record;
    }
  }
  auto* record = new HazardRecord();
  record->domain_ = this;
  record->owned_.store(true, std::memory_order_relaxed);  // not yet shared: relaxed
  HazardRecord* head = records_.load(std::memory_order_relaxed);  // validated by the CAS
  do {
    record->next_ = head;
    // (hp:P2) release CAS: publishes the record's initialized fields together with the link.
  } while (!records_.compare_exchange_weak(head, record, std::memory_order_release,
                                           std::memory_order_relaxed));
  record_count_.fetch_add(1, std::memory_order_relaxed);  // statistic only
  return record;
}

void HazardDomain::ReleaseRecord(HazardRecord* record) noexcept {
  while (record != nullptr) {
    MIDATLAS_INVARIANT(record->free_mask_ == HazardRecord::kAllFree, "HG2",
                       "a hazard record was released while a guard still held one of its slots");
    HazardRecord* chained = record->chained_;
    record->chained_ = nullptr;
    // (hp:P4) release: pairs with (hp:P3) of the next owner; our slots are already clear
    // (each guard cleared its own at (hp:H4)).
    record->owned_.store(false, std::memory_order_release);
    record = chained;
  }
}

std::atomic<const void*>* HazardRecord::TakeSlotFromChain() {
  if (chained_ == nullptr) chained_ = domain_->AcquireRecord();
  return chained_->TakeSlot();
}

void HazardRecord::GiveBackToChain(std::atomic<const void*>* slot) noexcept {
  for (HazardRecord* record = chained_; record != nullptr; record = record->chained_) {
    const auto* first = record->slots_.data();
    if (slot >= first && slot < first + kSlots) {
      record->GiveBack(slot);
      return;
    }
  }
  MIDATLAS_INVARIANT(false, "HG1", "a hazard slot was given back to a record that never lent it");
}

unsigned HazardRecord::TakenSlots() const noexcept {
  unsigned taken = 0;
  for (const HazardRecord* record = this; record != nullptr; record = record->chained_) {
    taken += static_cast<unsigned>(std::popcount(kAllFree & ~record->free_mask_));
  }
  return taken;
}

void HazardDomain::PushRetired(Retirable* first, Retirable* last, std::size_t count) noexcept {
  Retirable* head = retired_.load(std::memory_order_relaxed);  // validated by the CAS
  do {
    last->retired_next = head;
    // (hp:R0) release CAS: the unlink that preceded retirement, and the chain's links,
    // happen-before the reclaimer that takes the list at (hp:R1).
  } while (!retired_.compare_exchange_weak(head, first, std::memory_order_release,
                                           std::memory_order_relaxed));
  retired_count_.fetch_add(count, std::memory_order_relaxed);  // a trigger, not a guard
}

void HazardDomain::Retire(Retirable* object) noexcept {
#if MIDATLAS_CHECK_INVARIANTS
  MIDATLAS_INVARIANT(!object->retired, "HD2", "an object was retired twice");
  object->retired = true;
#endif
  PushRetired(object, object, 1);
  // relaxed: the count only decides when to scan; Reclaim's own (hp:R1) orders the list.
  if (retired_count_.load(std::memory_order_relaxed) >= reclaim_threshold_) Reclaim();
}

bool HazardDomain::IsProtected(const Retirable* object) const noexcept {
  const void* guard = object->guard;
  // acquire, as (hp:P1): pairs with (hp:P2), so every record's slots are reachable.
  for (HazardRecord* record = records_.load(std::memory_order_acquire);
       record != nullptr; record = record->next_) {
    for (const auto& slot : record->slots_) {
      // (hp:R3) acquire: pairs with (hp:H4); if the reader has cleared, its reads happen-before
      // our free. seq_cst on TSan, matching (hp:H2)/(hp:H3) there.
      const void* hazard =
          slot.load(kIsTsan ? std::memory_order_seq_cst : std::memory_order_acquire);
      if (hazard == object || (guard != nullptr && hazard == guard)) return true;
    }
  }
  return false;
}

std::size_t HazardDomain::Reclaim() noexcept {
  // (hp:R1) acquire exchange: pairs with (hp:R0), so every unlink before a retirement on the
  // list happens-before the scan.
  Retirable* list = retired_.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return 0;
  // Every object on `list` was unlinked before it was retired. After the heavy
  // barrier (fence:F3), a reader either published its hazard (hp:H2) visibly to the scan
  // below, or its validating re-load (hp:H3) sees the unlink and it never reads the object.
  AsymmetricHeavyBarrier();

  std::size_t taken = 0;
  std::size_t freed = 0;
  Retirable* kept_first = nullptr;
  Retirable* kept_last = nullptr;
  std::size_t kept = 0;
  while (list != nullptr) {
    Retirable* object = list;
    list = list->retired_next;
    ++taken;
    if (IsProtected(object)) {
      object->retired_next = kept_first;
      kept_first = object;
      if (kept_last == nullptr) kept_last = object;
      ++kept;
    } else {
      object->reclaim(object);
      ++freed;
    }
  }
  retired_count_.fetch_sub(taken, std::memory_order_relaxed);  // statistic / trigger only
  if (kept_first != nullptr) PushRetired(kept_first, kept_last, kept);
  return freed;
}

std::size_t HazardDomain::retired_count() const noexcept {
  return retired_count_.load(std::memory_order_relaxed);  // statistic only
}

std::size_t HazardDomain::record_count() const noexcept {
  return record_count_.load(std::memory_order_relaxed);  // statistic only
}

namespace hazard_detail {

constinit thread_local HazardRecord* this_thread_record = nullptr;

namespace {
// Returns the thread's record to the default domain when the thread exits. Kept apart from
// `this_thread_record` so that the hot path reads a trivially initialized thread_local.
struct ThreadRecordReturner {
  HazardRecord* record = nullptr;
  ThreadRecordReturner() = default;
  ThreadRecordReturner(const ThreadRecordReturner&) = delete;
  ThreadRecordReturner& operator=(const ThreadRecordReturner&) = delete;
  ~ThreadRecordReturner() {
    if (record != nullptr) {
      HazardDomain::Default().ReleaseRecord(record);
      this_thread_record = nullptr;
    }
  }
};
}  // namespace

HazardRecord* AcquireThisThreadRecordSlow() {
  static thread_local ThreadRecordReturner returner;
  HazardRecord* record = HazardDomain::Default().AcquireRecord();
  returner.record = record;
  this_thread_record = record;
  return record;
}

}  // namespace hazard_detail
}  // namespace midatlas::internal
