#include "heap_count.h"

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

// glibc's implementations, which the definitions below forward to.
extern "C" {
void* __libc_malloc(std::size_t size) noexcept;
void* __libc_calloc(std::size_t count, std::size_t size) noexcept;
void* __libc_realloc(void* block, std::size_t size) noexcept;
void* __libc_memalign(std::size_t alignment, std::size_t size) noexcept;
void __libc_free(void* block) noexcept;
}

namespace midatlas::bench {
namespace {

// Relaxed: frees on other threads (liburcu's call_rcu thread) are ordered before the reading
// by the barrier the caller waits on before it stops the count.
std::atomic<bool> g_counting{false};
std::atomic<std::int64_t> g_bytes{0};
std::atomic<std::int64_t> g_allocations{0};

void Count(void* block, std::int64_t sign) noexcept {
  if (block == nullptr || !g_counting.load(std::memory_order_relaxed)) return;
  g_bytes.fetch_add(sign * static_cast<std::int64_t>(malloc_usable_size(block)),
                    std::memory_order_relaxed);
  if (sign > 0) g_allocations.fetch_add(1, std::memory_order_relaxed);
}

void* Counted(void* block) noexcept {
  Count(block, 1);
  return block;
}

}  // namespace

void StartHeapCount() noexcept {
  g_bytes.store(0, std::memory_order_relaxed);
  g_allocations.store(0, std::memory_order_relaxed);
  g_counting.store(true, std::memory_order_seq_cst);
}

std::int64_t StopHeapCount() noexcept {
  g_counting.store(false, std::memory_order_seq_cst);
  return g_bytes.load(std::memory_order_relaxed);
}

std::int64_t CountedAllocations() noexcept { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace midatlas::bench

extern "C" {

using midatlas::bench::Count;
using midatlas::bench::Counted;

void* malloc(std::size_t size) noexcept { return Counted(__libc_malloc(size)); }

void* calloc(std::size_t count, std::size_t size) noexcept {
  return Counted(__libc_calloc(count, size));
}

void* realloc(void* block, std::size_t size) noexcept {
  // Counted as a free and an allocation; on failure the old block is untouched.
  const std::size_t old_size = block == nullptr ? 0 : malloc_usable_size(block);
  void* moved = __libc_realloc(block, size);
  if (moved == nullptr && size != 0) return nullptr;
  if (midatlas::bench::g_counting.load(std::memory_order_relaxed)) {
    const std::size_t new_size = moved == nullptr ? 0 : malloc_usable_size(moved);
    midatlas::bench::g_bytes.fetch_add(
        static_cast<std::int64_t>(new_size) - static_cast<std::int64_t>(old_size),
        std::memory_order_relaxed);
  }
  return moved;
}

void free(void* block) noexcept {
  Count(block, -1);
  __libc_free(block);
}

void* memalign(std::size_t alignment, std::size_t size) noexcept {
  return Counted(__libc_memalign(alignment, size));
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return Counted(__libc_memalign(alignment, size));
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  void* block = __libc_memalign(alignment, size);
  if (block == nullptr) return ENOMEM;
  *out = Counted(block);
  return 0;
}

}  // extern "C"
