// Asymmetric fences: a cheap barrier for the frequent side (a reader publishing a hazard
// pointer) and an expensive one for the rare side (a reclaimer about to scan hazard pointers).
//
// Pairing: every AsymmetricLightBarrier() pairs with every AsymmetricHeavyBarrier(). Together
// they give the store->load ordering of two seq_cst fences: either the reader's hazard store
// is visible to the reclaimer's scan, or the reclaimer's unlink is visible to the reader's
// re-load. Two forms, decided once per process before any thread holds a hazard record:
//
//   membarrier form (Linux with MEMBARRIER_CMD_PRIVATE_EXPEDITED, any architecture):
//     light = a compiler barrier; heavy = membarrier, which runs a full barrier on every CPU
//     currently running a thread of this process. Should a later membarrier call fail, the
//     heavy barrier reports it and the reclaimer frees nothing that time.
//   fenced form (no membarrier, MIDATLAS_FENCED_READERS=1, or the deterministic-schedule test
//   build, where each fence is a scheduling point):
//     light = a seq_cst fence (x86 mfence, ARMv8 dmb ish); heavy = a seq_cst fence. The
//     classic symmetric protocol: correct on every architecture, a fence per protection.
//
// (An earlier fallback revoked write access to a page to force TLB shoot-down interrupts; that
// orders other CPUs only where the shoot-down interrupts them, which arm64's broadcast TLB
// invalidation and recent AMD CPUs' INVLPGB do not, so it is gone.)
//
// ThreadSanitizer models neither form. Under it (kIsTsan) the hazard handshake uses seq_cst
// operations instead and the heavy side adds a seq_cst RMW (SeqCstFence, (fence:F1)).
#ifndef MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_
#define MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_

#include <atomic>

#include "instrumentation/atomic.h"
#include "instrumentation/sanitizers.h"

namespace midatlas::internal {

// Decides the form once per process (registering for expedited membarrier); safe to call
// from any thread, any number of times. The hazard domain calls it from its constructor.
void InitAsymmetricFences() noexcept;

// True in the fenced form (for tests and diagnostics).
bool ReadersFence() noexcept;

namespace fence_detail {
extern constinit bool readers_fence;  // the fenced form: set once by InitAsymmetricFences
}  // namespace fence_detail

// A full fence that ThreadSanitizer can also reason about: TSan ignores (and GCC warns about)
// std::atomic_thread_fence, so TSan builds use a seq_cst read-modify-write of a private word,
// which is a full barrier on the hardware and an atomic operation TSan models.
inline void SeqCstFence() noexcept {
  if constexpr (kIsTsan) {
    static Atomic<int> fence_word{0};
    // (fence:F1) seq_cst RMW: the fence in a form TSan models; orders the reclaimer's unlinks
    // before its scan (hp:R3), as the hardware fence does.
    fence_word.fetch_add(0, std::memory_order_seq_cst);
  } else {
    AtomicThreadFence(std::memory_order_seq_cst);  // (fence:F1)
  }
}

// Keeps the hazard store (hp:H2) before the validating re-load (hp:H3). In the membarrier
// form a compiler barrier (the hardware order comes from (fence:F3) on the other side); in
// the fenced form a full fence. The form never changes once a record exists, so the branch
// is perfectly predicted.
inline void AsymmetricLightBarrier() noexcept {
  if (fence_detail::readers_fence) [[unlikely]] {
    AtomicThreadFence(std::memory_order_seq_cst);  // (fence:F2), fenced form
  } else {
    // (fence:F2) seq_cst signal fence: a compiler barrier only; pairs with (fence:F3).
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
}

// Pairs with every (fence:F2) in every thread of the process: (fence:F3) in the membarrier
// form, (fence:F1) in the fenced form. False when membarrier failed this time: the caller
// must then free nothing.
[[nodiscard]] bool AsymmetricHeavyBarrier() noexcept;

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_
