// Planted faults for proving that the tests catch bugs. Test-only: each fault is compiled in
// only when its MIDATLAS_FAULT_<NAME> macro is defined, which only the fault-injection test
// builds do (stress/CMakeLists.txt, tests/dsched/CMakeLists.txt); in every other build each
// constant is false and the guarded code is discarded by `if constexpr`.
//
//   MIDATLAS_FAULT_POP_NO_RETRY   FreeStack::Pop treats its first failed CAS as a success:
//                                 two associates can take the same slot (breaks FS2/AC1).
//   MIDATLAS_FAULT_TAKE_NO_XCHG   TakeContext reads the context and then stores null
//                                 instead of exchanging it: two racing dissociates can both
//                                 receive it (breaks the single-winner rule of D1).
//   MIDATLAS_FAULT_HINT_NO_RECHECK  ClearHintIfFull clears the hint (hints:L1) and skips the
//                                 re-check (hints:L2): a push between the pop and the clear
//                                 leaves a leaf with room and no hint (breaks LH1).
//   MIDATLAS_FAULT_FREEZE_IGNORES_COUNT  TryFreeze freezes a leaf without checking that every
//                                 slot is on its stack: a pop racing the drain is lost with
//                                 the leaf (breaks FS3).
//   MIDATLAS_FAULT_HAZARD_NO_VALIDATE  HazardSlot::TryProtect publishes the hazard and skips
//                                 the validating re-load (hp:H3): a node unlinked and scanned
//                                 before the hazard was visible is read after its reclamation.
//   MIDATLAS_FAULT_DIR_COUNT_IGNORES_FREEZE  TryCountLeafIn counts a grower into a frozen
//                                 directory: its leaf is installed in a directory being
//                                 unlinked, and its MID is lost (breaks DM1/DM2).
// The first two are caught by the linearizability checker and the stress scenarios; all six by
// the deterministic scheduler (tests/dsched/, docs/PROOF.md).
#ifndef MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_
#define MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_

namespace midatlas::internal {

#if defined(MIDATLAS_FAULT_POP_NO_RETRY)
inline constexpr bool kFaultPopNoRetry = true;
#else
inline constexpr bool kFaultPopNoRetry = false;
#endif

#if defined(MIDATLAS_FAULT_TAKE_NO_XCHG)
inline constexpr bool kFaultTakeNoExchange = true;
#else
inline constexpr bool kFaultTakeNoExchange = false;
#endif

#if defined(MIDATLAS_FAULT_HINT_NO_RECHECK)
inline constexpr bool kFaultHintNoRecheck = true;
#else
inline constexpr bool kFaultHintNoRecheck = false;
#endif

#if defined(MIDATLAS_FAULT_FREEZE_IGNORES_COUNT)
inline constexpr bool kFaultFreezeIgnoresCount = true;
#else
inline constexpr bool kFaultFreezeIgnoresCount = false;
#endif

#if defined(MIDATLAS_FAULT_HAZARD_NO_VALIDATE)
inline constexpr bool kFaultHazardNoValidate = true;
#else
inline constexpr bool kFaultHazardNoValidate = false;
#endif

#if defined(MIDATLAS_FAULT_DIR_COUNT_IGNORES_FREEZE)
inline constexpr bool kFaultDirCountIgnoresFreeze = true;
#else
inline constexpr bool kFaultDirCountIgnoresFreeze = false;
#endif

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_
