#include "reclamation/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

namespace midatlas::internal {
namespace {

long Membarrier(int command) noexcept { return syscall(__NR_membarrier, command, 0U); }

bool RegisterMembarrier() noexcept {
  const long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

struct FenceState {
  bool membarrier = false;
  char* page = nullptr;  // fallback: a private page whose protection we flip
  std::mutex page_mutex;
};

FenceState& State() noexcept {
  // Deliberately leaked: reclaimers may run during static destruction.
  static FenceState* const kState = [] {
    // NOLINTNEXTLINE(bugprone-unhandled-exception-at-new): failing here at start-up is fatal anyway.
    auto* state = new FenceState();
    state->membarrier = RegisterMembarrier();
    {  // mapped even with membarrier, should a later membarrier call ever fail
      void* page = mmap(nullptr, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)),
                        PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      // Without membarrier and without this page there is no sound heavy barrier; readers do
      // not fence, so continuing would be unsafe.
      if (page == MAP_FAILED) std::abort();
      state->page = static_cast<char*>(page);
    }
    return state;
  }();
  return *kState;
}

void PageProtectionBarrier(FenceState& state) noexcept {
  const auto size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::lock_guard<std::mutex> lock(state.page_mutex);
  // Make the page writable and dirty so its translation is cached, then revoke write access:
  // the kernel must shoot the stale writable translation down on every CPU that may hold it,
  // interrupting each one, which serializes it like a full fence.
  if (mprotect(state.page, size, PROT_READ | PROT_WRITE) != 0) std::abort();
  *static_cast<volatile char*>(state.page) = 0;
  if (mprotect(state.page, size, PROT_READ) != 0) std::abort();
}

}  // namespace

void InitAsymmetricFences() noexcept { static_cast<void>(State()); }

void AsymmetricHeavyBarrier() noexcept {
  FenceState& state = State();
  SeqCstFence();  // (fence:F1): our own unlinks before the scan (and what TSan sees)
  // (fence:F3) seq_cst on every CPU running a thread of this process: pairs with (fence:F2).
  if (state.membarrier && Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  PageProtectionBarrier(state);
}

}  // namespace midatlas::internal
