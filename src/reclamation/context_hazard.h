// ContextHazard: the hazard slot behind a guarded lookup (MidAtlas::MapGuarded,
// RxMapMidToContextGuarded). It keeps one context that a lookup returned alive across calls,
// until the caller releases it: a context retired meanwhile (retired_contexts.h) is destroyed
// only once no slot holds it (docs/DESIGN.md 10.7, RC1).
//
// Unlike a HazardGuard, whose source is one atomic pointer, the source here is "what Map(mid)
// returns": the context region's cell, with the generation check when the atlas has
// generation bits. So the protocol is HazardSlot's, with Map as the load:
//
//   c = map()                        (atlas:M1)/(atlas:M2), in the place of (hp:H1)
//   slot = c                         (hp:H2) and (fence:F2): HazardSlot's publication step
//   [TSan: a seq_cst RMW, (fence:F1)]
//   map() == c ?                     the re-check, in the place of (hp:H3); else retry with
//                                    what it returned, or give the slot back on null
//
// The re-check is sound because a context is retired only after its MID was dissociated:
// if the retiring scan's (hp:R3) missed our hazard, the fence pairing (fence:F2)/(fence:F3)
// (the fenced form: two seq_cst fences) makes the re-check see that dissociation, so it does
// not find the context and we never use it. Under ThreadSanitizer Map's acquire load is not
// seq_cst as (hp:H3) is there, so a seq_cst RMW of the word every reclaimer's heavy barrier
// also updates ((fence:F1), SeqCstFence) orders the hazard store before the re-check: either
// the reclaimer's RMW reads ours (and its scan sees the hazard) or ours reads the reclaimer's
// (and the re-check sees the dissociation) - a guarantee TSan models.
//
// The slot is one of the calling thread's record (hazard_domain.h): only that thread may
// release it. Taking it allocates only on the thread's first call (its record) and when the
// thread holds more guards at once than its records have lent before (a chained record).
#ifndef MIDATLAS_SRC_RECLAMATION_CONTEXT_HAZARD_H_
#define MIDATLAS_SRC_RECLAMATION_CONTEXT_HAZARD_H_

#include "instrumentation/atomic.h"
#include "instrumentation/chaos.h"
#include "instrumentation/invariants.h"
#include "instrumentation/sanitizers.h"
#include "reclamation/asymmetric_fence.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"

namespace midatlas::internal {

class ContextHazard {
 public:
  // An empty hazard: holds no slot.
  ContextHazard() noexcept = default;

  // The parts a front end stored (the C guard keeps them in RX_MID_GUARD::Reserved).
  ContextHazard(Atomic<const void*>* slot, HazardRecord* record) noexcept
      : slot_(slot), record_(record) {}

  // The context `map()` returns, protected until Release; nullptr (and the hazard stays
  // empty) when `map()` returns null, or when the calling thread can get no slot (memory
  // short for its first record or a chained one). The hazard must be empty. Lock-free: it
  // retries only when the MID's context changed between two of its Map calls.
  template <typename MapFn>
  void* Protect(const MapFn& map) noexcept {
    void* context = map();
    if (context == nullptr) return nullptr;  // a free MID costs one Map, no slot
    HazardRecord* record = TryThisThreadRecord();
    if (record == nullptr) [[unlikely]] return nullptr;
    Atomic<const void*>* slot = record->TakeSlot();
    if (slot == nullptr) [[unlikely]] return nullptr;
    Publisher publisher(slot);
    while (true) {
      MIDATLAS_CHAOS_POINT();  // the window in which the context may be retired and scanned
      publisher.ProtectUnshared(context);  // (hp:H2), (fence:F2)
      if constexpr (kIsTsan) SeqCstFence();  // (fence:F1): see the top of this file
      MIDATLAS_CHAOS_POINT();
      void* again = map();  // the re-check, as (hp:H3)
      if (again == context) [[likely]] {
        slot_ = slot;
        record_ = record;
        return context;
      }
      if (again == nullptr) break;
      context = again;  // reassociated meanwhile: protect the new context instead
    }
    publisher.Reset();  // (hp:H4)
    record->GiveBack(slot);
    return nullptr;
  }

  // Ends the protection and gives the slot back; the hazard is empty afterwards. Only the
  // thread that protected may release (RC4: checked in debug builds).
  void Release() noexcept {
    MIDATLAS_INVARIANT(hazard_detail::this_thread_record == record_, "RC4",
                       "a context guard was released by a thread other than the one that took "
                       "it (hazard records belong to one thread)");
    Publisher(slot_).Reset();  // (hp:H4), a release store: our reads of the context come first
    record_->GiveBack(slot_);  // HG1 catches a slot given back twice
    slot_ = nullptr;
    record_ = nullptr;
  }

  [[nodiscard]] bool held() const noexcept { return slot_ != nullptr; }
  [[nodiscard]] Atomic<const void*>* slot() const noexcept { return slot_; }
  [[nodiscard]] HazardRecord* record() const noexcept { return record_; }

 private:
  // HazardSlot's publication and clear, on a slot this class took itself.
  class Publisher : public HazardSlot {
   public:
    explicit Publisher(Atomic<const void*>* slot) noexcept : HazardSlot(slot) {}
  };

  Atomic<const void*>* slot_ = nullptr;
  HazardRecord* record_ = nullptr;  // the calling thread's record, which lent the slot
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_CONTEXT_HAZARD_H_
