#include "reclamation/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace midatlas::internal {

namespace fence_detail {
// Written once, by InitAsymmetricFences, before any thread can hold a hazard record (the
// domain constructor calls it, and every record comes from a constructed domain).
constinit bool readers_fence = false;
}  // namespace fence_detail

namespace {

long Membarrier(int command) noexcept { return syscall(__NR_membarrier, command, 0U); }

bool RegisterMembarrier() noexcept {
  const long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// MIDATLAS_FENCED_READERS=1 forces the fenced form, so that tests can run it on a kernel
// that has membarrier.
bool FencedReadersForced() noexcept {
  const char* value = std::getenv("MIDATLAS_FENCED_READERS");  // NOLINT(concurrency-mt-unsafe): read once, at start-up
  return value != nullptr && std::strcmp(value, "1") == 0;
}

// Whether the heavy side is membarrier; decided once per process. Never under the
// deterministic scheduler (kDeterministicSchedule): it runs one thread at a time, so a
// membarrier would order nothing it can see, while the fenced form's fences are operations it
// schedules (tests/dsched/).
bool UsesMembarrier() noexcept {
  static const bool kMembarrier = [] {
    const bool membarrier =
        !kDeterministicSchedule && !FencedReadersForced() && RegisterMembarrier();
    fence_detail::readers_fence = !membarrier;
    return membarrier;
  }();
  return kMembarrier;
}

}  // namespace

void InitAsymmetricFences() noexcept { static_cast<void>(UsesMembarrier()); }

bool ReadersFence() noexcept { return !UsesMembarrier(); }

bool AsymmetricHeavyBarrier() noexcept {
  SeqCstFence();  // (fence:F1): our own unlinks before the scan (and what TSan sees)
  if (!UsesMembarrier()) return true;  // readers fence themselves: (fence:F1) pairs with theirs
  // (fence:F3) seq_cst on every CPU running a thread of this process: pairs with (fence:F2).
  // The kernel may refuse a later call (ENOMEM on some configurations); the caller then
  // frees nothing this time, which is always safe.
  return Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}

}  // namespace midatlas::internal
