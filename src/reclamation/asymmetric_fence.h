// Asymmetric fences: a cheap barrier for the frequent side (a reader publishing a hazard
// pointer) and an expensive one for the rare side (a reclaimer about to scan hazard pointers).
//
// Pairing: every AsymmetricLightBarrier() (a compiler barrier) pairs with every
// AsymmetricHeavyBarrier(), which makes every CPU currently running a thread of this process
// execute a full barrier. Together they give the store->load ordering of two seq_cst fences:
// either the reader's hazard store is visible to the reclaimer's scan, or the reclaimer's
// unlink is visible to the reader's re-load.
//
// The heavy side is membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED). Where the kernel refuses it
// (old kernels, seccomp filters) the heavy side falls back to changing the protection of a
// private page, which makes the kernel interrupt every CPU that may cache its translation
// (a TLB shoot-down) - the same effect, slower. Either way the reader never pays for a fence,
// and never needs to know which one the reclaimer uses.
//
// ThreadSanitizer models neither. Under it (kIsTsan) the hazard handshake uses seq_cst
// operations instead and the heavy side adds a seq_cst RMW (SeqCstFence, (fence:F1)).
#ifndef MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_
#define MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_

#include <atomic>

#include "instrumentation/sanitizers.h"

namespace midatlas::internal {

// Registers this process for expedited membarrier once (or prepares the fallback); safe to
// call from any thread, any number of times. The hazard domain calls it from its constructor.
void InitAsymmetricFences() noexcept;

// A full fence that ThreadSanitizer can also reason about: TSan ignores (and GCC warns about)
// std::atomic_thread_fence, so TSan builds use a seq_cst read-modify-write of a private word,
// which is a full barrier on the hardware and an atomic operation TSan models.
inline void SeqCstFence() noexcept {
  if constexpr (kIsTsan) {
    static std::atomic<int> fence_word{0};
    // (fence:F1) seq_cst RMW: the fence in a form TSan models; orders the reclaimer's unlinks
    // before its scan (hp:R3), as the hardware fence does.
    fence_word.fetch_add(0, std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // (fence:F1)
  }
}

// A compiler barrier: keeps the hazard store (hp:H2) before the validating re-load (hp:H3) in
// program order; the hardware order comes from (fence:F3) on the other side.
inline void AsymmetricLightBarrier() noexcept {
  // (fence:F2) seq_cst signal fence: a compiler barrier only; pairs with (fence:F3).
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

// Pairs with every (fence:F2) in every thread of the process: (fence:F3), below.
void AsymmetricHeavyBarrier() noexcept;

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_ASYMMETRIC_FENCE_H_
