// Guarded lookups and deferred destruction of contexts in the extension C API
// (midatlax_ex.h): RxMapMidToContextGuarded, RxReleaseMidGuard, RxRetireContext,
// RxFlushRetiredContexts, over the same ContextHazard and RetiredContexts as the C++ API
// (docs/DESIGN.md 10.7).
//
// An RX_MID_GUARD is the caller's storage for what a release needs, in its Reserved words
// (the guard belongs to one thread, so plain stores and loads suffice):
//
//   Reserved[0]  the hazard slot            (ContextHazard::slot)
//   Reserved[1]  the record that lent it    (ContextHazard::record)
//   Reserved[2]  the guarded context
//   Reserved[3]  the state: kHeld, kReleased, or 0 (unset: a map that returned NULL)
//
// The state word lets a release tell a held guard from a released or an unset one: releasing
// an unset guard does nothing, and in debug builds releasing a guard twice, or memory no
// guarded map set, aborts naming RC4.
#include <cstdint>

#include "atlas/atlas_core.h"
#include "capi/handles.h"
#include "instrumentation/invariants.h"
#include "midatlas/midatlax_ex.h"
#include "reclamation/context_hazard.h"

using midatlas::internal::Atomic;
using midatlas::internal::ContextHazard;
using midatlas::internal::CoreOf;
using midatlas::internal::HazardRecord;

namespace {

// Distinctive values, so that a stray word is unlikely to pass for either.
constexpr std::uintptr_t kHeld = 0x6D69'6447'7264'4831ULL;      // "midGrdH1"
constexpr std::uintptr_t kReleased = 0x6D69'6447'7264'5231ULL;  // "midGrdR1"

struct GuardState {
  Atomic<const void*>* slot = nullptr;
  HazardRecord* record = nullptr;
  void* context = nullptr;
  std::uintptr_t state = 0;
};
static_assert(sizeof(RX_MID_GUARD::Reserved) / sizeof(PVOID) == 4, "four Reserved words");
static_assert(sizeof(std::uintptr_t) == sizeof(PVOID), "the state word is one Reserved word");

GuardState Load(const RX_MID_GUARD& guard) noexcept {
  return {.slot = static_cast<Atomic<const void*>*>(guard.Reserved[0]),
          .record = static_cast<HazardRecord*>(guard.Reserved[1]),
          .context = guard.Reserved[2],
          .state = reinterpret_cast<std::uintptr_t>(guard.Reserved[3])};
}

void Store(RX_MID_GUARD& guard, const GuardState& state) noexcept {
  guard.Reserved[0] = state.slot;
  guard.Reserved[1] = state.record;
  guard.Reserved[2] = state.context;
  guard.Reserved[3] = reinterpret_cast<PVOID>(state.state);
}

}  // namespace

extern "C" {

PVOID RxMapMidToContextGuarded(PRX_MID_ATLAS atlas, USHORT mid, PRX_MID_GUARD guard) {
  if (guard == nullptr) return nullptr;
  GuardState state;  // unset unless the lookup succeeds
  if (atlas != nullptr) {
    const midatlas::internal::AtlasCore* core = CoreOf(atlas);
    ContextHazard hazard;
    void* context = hazard.Protect([core, mid] { return core->Map(mid); });
    if (context != nullptr) {
      state = {.slot = hazard.slot(), .record = hazard.record(), .context = context,
               .state = kHeld};
    }
  }
  Store(*guard, state);
  return state.context;
}

VOID RxReleaseMidGuard(PRX_MID_GUARD guard) {
  if (guard == nullptr) return;
  const GuardState state = Load(*guard);
  if (state.state != kHeld) {
    MIDATLAS_INVARIANT(state.state != kReleased, "RC4", "a guard was released twice");
    MIDATLAS_INVARIANT(state.state == 0, "RC4",
                       "a guard that no guarded map set (or a corrupted one) was released");
    return;
  }
  ContextHazard(state.slot, state.record).Release();
  Store(*guard, {.state = kReleased});
}

VOID RxRetireContext(PRX_MID_ATLAS atlas, PVOID context, PCONTEXT_DESTRUCTOR destructor) {
  if (atlas == nullptr || context == nullptr || destructor == nullptr) return;
  // A std::function built from a function pointer stores it inline: no allocation here.
  CoreOf(atlas)->retired_contexts().Retire(context, destructor);
}

VOID RxFlushRetiredContexts(PRX_MID_ATLAS atlas) {
  if (atlas == nullptr) return;
  CoreOf(atlas)->retired_contexts().Flush();
}

}  // extern "C"
