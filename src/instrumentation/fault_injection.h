// Planted faults for proving that the tests catch bugs. Test-only: the faults are compiled in
// only where MIDATLAS_PLANTED_FAULTS is defined, which only the fault-injection test builds do
// (stress/CMakeLists.txt, tests/dsched/CMakeLists.txt). One such build carries every fault, and
// a run plants the one its environment names, MIDATLAS_PLANTED_FAULT=<NAME> (none: no fault),
// read once at start-up: one build serves every fault test. In every other build each
// constant is a constexpr false and the guarded code is discarded.
//
//   POP_NO_RETRY                  FreeStack::Pop treats its first failed CAS as a success:
//                                 two associates can take the same slot (breaks FS2/AC1).
//   TAKE_NO_XCHG                  TakeContext reads the context and then stores null
//                                 instead of exchanging it: two racing dissociates can both
//                                 receive it (breaks the single-winner rule of D1).
//   HINT_NO_RECHECK               ClearHintIfFull clears the hint (hints:L1) and skips the
//                                 re-check (hints:L2): a push between the pop and the clear
//                                 leaves a leaf with room and no hint (breaks LH1).
//   FREEZE_IGNORES_COUNT          TryFreeze freezes a leaf without checking that every
//                                 slot is on its stack: a pop racing the drain is lost with
//                                 the leaf (breaks FS3).
//   HAZARD_NO_VALIDATE            HazardSlot::TryProtect publishes the hazard and skips
//                                 the validating re-load (hp:H3): a node unlinked and scanned
//                                 before the hazard was visible is read after its reclamation.
//   DIR_COUNT_IGNORES_FREEZE      TryCountLeafIn counts a grower into a frozen
//                                 directory: its leaf is installed in a directory being
//                                 unlinked, and its MID is lost (breaks DM1/DM2).
// The first two are caught by the linearizability checker and the stress scenarios; all six by
// the deterministic scheduler (tests/dsched/, docs/PROOF.md).
#ifndef MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_
#define MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_

#if defined(MIDATLAS_PLANTED_FAULTS)
#include <cstdlib>
#include <cstring>
#endif

namespace midatlas::internal {

#if defined(MIDATLAS_PLANTED_FAULTS)
// The fault this run plants: MIDATLAS_PLANTED_FAULT, or null when it is not set.
inline const char* PlantedFaultName() noexcept { return std::getenv("MIDATLAS_PLANTED_FAULT"); }
inline bool Planted(const char* fault) noexcept {
  const char* planted = PlantedFaultName();
  return planted != nullptr && std::strcmp(planted, fault) == 0;
}
// Read once, before main: the environment does not change while the tests run.
inline const bool kFaultPopNoRetry = Planted("POP_NO_RETRY");
inline const bool kFaultTakeNoExchange = Planted("TAKE_NO_XCHG");
inline const bool kFaultHintNoRecheck = Planted("HINT_NO_RECHECK");
inline const bool kFaultFreezeIgnoresCount = Planted("FREEZE_IGNORES_COUNT");
inline const bool kFaultHazardNoValidate = Planted("HAZARD_NO_VALIDATE");
inline const bool kFaultDirCountIgnoresFreeze = Planted("DIR_COUNT_IGNORES_FREEZE");
#else
inline constexpr bool kFaultPopNoRetry = false;
inline constexpr bool kFaultTakeNoExchange = false;
inline constexpr bool kFaultHintNoRecheck = false;
inline constexpr bool kFaultFreezeIgnoresCount = false;
inline constexpr bool kFaultHazardNoValidate = false;
inline constexpr bool kFaultDirCountIgnoresFreeze = false;
#endif

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_
