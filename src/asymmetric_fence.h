// Asymmetric fences: a cheap barrier for the frequent side (a reader publishing a hazard
// pointer) and an expensive one for the rare side (a reclaimer about to scan hazard pointers).
//
// Pairing: every AsymmetricLightBarrier() (a compiler barrier) pairs with every
// AsymmetricHeavyBarrier() (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full
// fence on every CPU currently running a thread of this process). Together they give the
// store->load ordering of two seq_cst fences: either the reader's hazard store is visible to
// the reclaimer's scan, or the reclaimer's unlink is visible to the reader's re-load.
//
// Where membarrier is unavailable (old kernels, seccomp filters) both sides fall back to
// std::atomic_thread_fence(seq_cst). Under ThreadSanitizer, which cannot see either fence, the
// callers switch to seq_cst operations instead (see kIsTsan in sanitizers.h).
#ifndef MIDATLAS_SRC_ASYMMETRIC_FENCE_H_
#define MIDATLAS_SRC_ASYMMETRIC_FENCE_H_

#include <atomic>

#include "sanitizers.h"

namespace midatlas::internal {

// Registers this process for expedited membarrier once; safe to call from any thread, any
// number of times. Must run before the first light barrier that relies on it: the hazard
// domain calls it from its constructor, which happens-before every use of the domain.
void InitAsymmetricFences() noexcept;

namespace fence_detail {
// Written once by InitAsymmetricFences before any reader can exist; read relaxed afterwards.
extern std::atomic<bool> membarrier_available;
}  // namespace fence_detail

// A full fence that ThreadSanitizer can also reason about: TSan ignores (and GCC warns about)
// std::atomic_thread_fence, so TSan builds use a seq_cst read-modify-write of a private word,
// which is a full barrier on the hardware and an atomic operation TSan models.
inline void SeqCstFence() noexcept {
  if constexpr (kIsTsan) {
    static std::atomic<int> fence_word{0};
    fence_word.fetch_add(0, std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

inline void AsymmetricLightBarrier() noexcept {
  // (F1) relaxed: the flag never changes after the domain is constructed, and construction
  // happens-before every reader through the atlas's publication.
  if (fence_detail::membarrier_available.load(std::memory_order_relaxed)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // (F2) pairs with (F3) membarrier
  } else {
    SeqCstFence();  // (F2') pairs with (F3') fence
  }
}

// (F3) membarrier, or (F3') a seq_cst fence when membarrier is unavailable.
void AsymmetricHeavyBarrier() noexcept;

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ASYMMETRIC_FENCE_H_
