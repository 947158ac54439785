// Compile-time facts about the build that change how the algorithms are instrumented.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_SANITIZERS_H_
#define MIDATLAS_SRC_INSTRUMENTATION_SANITIZERS_H_

namespace midatlas::internal {

#if defined(__SANITIZE_THREAD__)
#define MIDATLAS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MIDATLAS_TSAN 1
#endif
#endif

// ThreadSanitizer models neither asymmetric fences (membarrier) nor stand-alone fences. Under
// it, the hazard-pointer handshake uses sequentially consistent stores and loads instead of a
// compiler barrier paired with membarrier, so TSan sees every happens-before edge it relies on.
#if defined(MIDATLAS_TSAN)
inline constexpr bool kIsTsan = true;
#else
inline constexpr bool kIsTsan = false;
#endif

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_SANITIZERS_H_
