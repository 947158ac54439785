// Debug checks of the named invariants (docs/DESIGN.md): FS1, DM1, AC1, HD2, HG1, HG2, ...
//
// MIDATLAS_INVARIANT(condition, "NAME", "what broke") costs nothing in release builds. In
// builds without NDEBUG (the debug preset) a false condition prints which invariant broke and
// aborts, so a stress or fuzz failure names its cause instead of showing up later as a
// duplicate MID or a use after free. Only cheap checks go here: a load the algorithm already
// made, a bit test, a flag.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_INVARIANTS_H_
#define MIDATLAS_SRC_INSTRUMENTATION_INVARIANTS_H_

#if !defined(NDEBUG) && !defined(MIDATLAS_CHECK_INVARIANTS)
#define MIDATLAS_CHECK_INVARIANTS 1
#elif !defined(MIDATLAS_CHECK_INVARIANTS)
#define MIDATLAS_CHECK_INVARIANTS 0
#endif

namespace midatlas::internal {
// Prints "midatlas: invariant NAME broken: WHAT (file:line)" to stderr and aborts.
[[noreturn]] void InvariantBroken(const char* name, const char* what, const char* file,
                                  int line) noexcept;
}  // namespace midatlas::internal

#if MIDATLAS_CHECK_INVARIANTS
#define MIDATLAS_INVARIANT(condition, name, what)                                      \
  do {                                                                                 \
    if (!(condition)) [[unlikely]] {                                                   \
      ::midatlas::internal::InvariantBroken(name, what, __FILE__, __LINE__);           \
    }                                                                                  \
  } while (false)
#else
#define MIDATLAS_INVARIANT(condition, name, what) static_cast<void>(0)
#endif

#endif  // MIDATLAS_SRC_INSTRUMENTATION_INVARIANTS_H_
