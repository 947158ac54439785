// Planted faults for proving that the tests catch bugs. Test-only: each fault is compiled in
// only when its MIDATLAS_FAULT_<NAME> macro is defined, which only the fault-injection test
// builds do (stress/CMakeLists.txt); in every other build each constant is false and the
// guarded code is discarded by `if constexpr`.
//
//   MIDATLAS_FAULT_POP_NO_RETRY   FreeStack::Pop treats its first failed CAS as a success:
//                                 two associates can take the same slot (breaks FS2/AC1).
//   MIDATLAS_FAULT_TAKE_NO_XCHG   TakeContext reads the context and then stores null
//                                 instead of exchanging it: two racing dissociates can both
//                                 receive it (breaks the single-winner rule of D1).
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

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_FAULT_INJECTION_H_
