#include "asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>


namespace midatlas::internal {
namespace fence_detail {
std::atomic<bool> membarrier_available{false};
}  // namespace fence_detail

namespace {

long Membarrier(int command) noexcept {
  return syscall(__NR_membarrier, command, 0U);
}

bool RegisterMembarrier() noexcept {
  const long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

void InitAsymmetricFences() noexcept {
  // A function-local static runs the registration exactly once, even with racing callers.
  static const bool kRegistered = [] {
    const bool ok = RegisterMembarrier();
    // (F0) release: published before any atlas exists; readers load it relaxed (F1) because
    // the atlas pointer they use was itself published after this store.
    fence_detail::membarrier_available.store(ok, std::memory_order_release);
    return ok;
  }();
  static_cast<void>(kRegistered);
}

void AsymmetricHeavyBarrier() noexcept {
  if (fence_detail::membarrier_available.load(std::memory_order_relaxed)) {
    // (F3) pairs with every (F2). If the call fails (it cannot after a successful
    // registration) fall through to a plain fence rather than skip the barrier.
    if (Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  }
  SeqCstFence();  // (F3') pairs with (F2')
}

}  // namespace midatlas::internal
