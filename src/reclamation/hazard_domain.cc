#include "reclamation/hazard_domain.h"

#include <pthread.h>

#include <bit>
#include <cassert>
#include <cstdlib>
#include <new>
#include <thread>

#include "instrumentation/atomic.h"

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
  // Built in static storage, so that creating the first atlas of the process cannot fail for
  // lack of memory; never destroyed, so that threads exiting after static destruction can
  // still return their records.
  alignas(HazardDomain) static unsigned char storage[sizeof(HazardDomain)];
  static auto* const kDomain = new (storage) HazardDomain();
  return *kDomain;
}

HazardRecord* HazardDomain::AcquireRecord() noexcept {
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
  auto* record = new (std::nothrow) HazardRecord();
  if (record == nullptr) return nullptr;
  AddRecord(record);
  return record;
}

void HazardDomain::AddRecord(HazardRecord* record) noexcept {
  record->domain_ = this;
  record->owned_.store(true, std::memory_order_relaxed);  // not yet shared: relaxed
  HazardRecord* head = records_.load(std::memory_order_relaxed);  // validated by the CAS
  do {
    record->next_ = head;
    // (hp:P2) release CAS: publishes the record's initialized fields together with the link.
  } while (!records_.compare_exchange_weak(head, record, std::memory_order_release,
                                           std::memory_order_relaxed));
  record_count_.fetch_add(1, std::memory_order_relaxed);  // statistic only
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

Atomic<const void*>* HazardRecord::TakeSlotFromChain() noexcept {
  if (chained_ == nullptr) chained_ = domain_->AcquireRecord();
  return chained_ == nullptr ? nullptr : chained_->TakeSlot();
}

void HazardRecord::GiveBackToChain(Atomic<const void*>* slot) noexcept {
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
  return AnySlotHolds(object, guard != nullptr ? guard : object);
}

bool HazardDomain::AnySlotHolds(const void* first, const void* second) const noexcept {
  // acquire, as (hp:P1): pairs with (hp:P2), so every record's slots are reachable.
  for (HazardRecord* record = records_.load(std::memory_order_acquire);
       record != nullptr; record = record->next_) {
    for (const auto& slot : record->slots_) {
      // (hp:R3) acquire: pairs with (hp:H4); if the reader has cleared, its reads happen-before
      // our free. seq_cst on TSan, matching (hp:H2)/(hp:H3) there.
      const void* hazard =
          slot.load(kIsTsan ? std::memory_order_seq_cst : std::memory_order_acquire);
      if (hazard == first || hazard == second) return true;
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
  if (!AsymmetricHeavyBarrier()) [[unlikely]] {
    Retirable* last = list;
    std::size_t count = 1;
    for (; last->retired_next != nullptr; last = last->retired_next) ++count;
    PushRetired(list, last, count);  // no barrier, no scan: keep everything for next time
    retired_count_.fetch_sub(count, std::memory_order_relaxed);  // PushRetired counted again
    return 0;
  }

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

// Runs at thread exit, after the thread's C++ thread_local destructors (glibc calls those
// first, then the pthread key destructors), so a thread_local destructor that used an atlas
// has already finished with the record. If a later key destructor takes a record again, the
// key is set again and glibc runs this once more (up to PTHREAD_DESTRUCTOR_ITERATIONS).
void ReturnThreadRecord(void* record) noexcept {
  this_thread_record = nullptr;
  HazardDomain::Default().ReleaseRecord(static_cast<HazardRecord*>(record));
}

pthread_key_t ThreadRecordKey() noexcept {
  static const pthread_key_t kKey = [] {
    pthread_key_t key{};
    // Without the key no record could ever be returned; a process that cannot create one
    // key at its first atlas operation is out of resources for good.
    if (pthread_key_create(&key, ReturnThreadRecord) != 0) std::abort();
    return key;
  }();
  return kKey;
}

}  // namespace

HazardRecord* AcquireThisThreadRecordSlow() noexcept {
  const pthread_key_t key = ThreadRecordKey();
  HazardRecord* record = HazardDomain::Default().AcquireRecord();
  if (record == nullptr) return nullptr;
  if (pthread_setspecific(key, record) != 0) {  // ENOMEM: the key's storage
    HazardDomain::Default().ReleaseRecord(record);
    return nullptr;
  }
  this_thread_record = record;
  return record;
}

}  // namespace hazard_detail

namespace {

// The emergency record (RecordLease): static storage, so lending it never allocates.
struct EmergencyRecord {
  HazardRecord record;
  // Lent to one thread at a time: (hp:E1)/(hp:E2).
  Atomic<bool> lent{false};
};

EmergencyRecord& Emergency() noexcept {
  static EmergencyRecord* const kEmergency = [] {
    static EmergencyRecord storage;
    HazardDomain::Default().AddRecord(&storage.record);  // owned for good by the lease
    return &storage;
  }();
  return *kEmergency;
}

// How many leases this thread holds on the emergency record (an operation under a lease may
// run another, e.g. a context destructor that maps a MID).
constinit thread_local int emergency_depth = 0;

}  // namespace

HazardRecord* RecordLease::LeaseEmergencyRecord() noexcept {
  EmergencyRecord& emergency = Emergency();
  emergency_ = true;
  if (emergency_depth++ > 0) return &emergency.record;
  // A test-and-test-and-set lock: taken only under memory exhaustion, for one operation.
  // (hp:E1) acquire exchange: pairs with (hp:E2), so the previous borrower's use of the
  // record, its clears (hp:H4) included, happens-before ours.
  while (emergency.lent.exchange(true, std::memory_order_acquire)) {
    // relaxed: only waits; the exchange (hp:E1) decides.
    while (emergency.lent.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
  return &emergency.record;
}

void RecordLease::ReturnEmergencyRecord() noexcept {
  if (--emergency_depth > 0) return;
  // (hp:E2) release: pairs with the next borrower's (hp:E1).
  Emergency().lent.store(false, std::memory_order_release);
}

}  // namespace midatlas::internal
