// See failing_allocation.h.
#include "support/failing_allocation.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

namespace {

// ------------------------------------------------------------------------------------------
// The definitions the replacements displace: the sanitizer runtime's when one is linked (it
// comes first in the lookup order), else the C++ runtime's. Found by their mangled names on
// first use, so that allocations made by other libraries' static initializers, before this
// file's, already work.

static_assert(std::is_same_v<std::size_t, unsigned long>, "the mangled names below use 'm'");

template <typename Fn>
class Displaced {
 public:
  explicit constexpr Displaced(const char* symbol) noexcept : symbol_(symbol) {}

  Fn get() noexcept {
    // relaxed: every thread that resolves the symbol stores the same address, and nothing
    // else is published with it.
    void* address = address_.load(std::memory_order_relaxed);
    if (address == nullptr) [[unlikely]] {
      address = dlsym(RTLD_NEXT, symbol_);  // dlsym allocates, if at all, with malloc
      if (address == nullptr) {
        static constexpr char kMessage[] = "failing_allocation: a displaced operator is missing\n";
        static_cast<void>(write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1));
        std::abort();
      }
      address_.store(address, std::memory_order_relaxed);
    }
    Fn fn = nullptr;
    static_assert(sizeof(fn) == sizeof(address));
    std::memcpy(&fn, &address, sizeof(fn));
    return fn;
  }

 private:
  const char* symbol_;
  std::atomic<void*> address_{nullptr};
};

using Align = std::align_val_t;
using Nothrow = const std::nothrow_t&;

constinit Displaced<void* (*)(std::size_t)> g_new("_Znwm");
constinit Displaced<void* (*)(std::size_t)> g_new_array("_Znam");
constinit Displaced<void* (*)(std::size_t, Align)> g_new_aligned("_ZnwmSt11align_val_t");
constinit Displaced<void* (*)(std::size_t, Align)> g_new_array_aligned("_ZnamSt11align_val_t");
constinit Displaced<void* (*)(std::size_t, Nothrow) noexcept> g_new_nothrow("_ZnwmRKSt9nothrow_t");
constinit Displaced<void* (*)(std::size_t, Nothrow) noexcept> g_new_array_nothrow(
    "_ZnamRKSt9nothrow_t");
constinit Displaced<void* (*)(std::size_t, Align, Nothrow) noexcept> g_new_aligned_nothrow(
    "_ZnwmSt11align_val_tRKSt9nothrow_t");
constinit Displaced<void* (*)(std::size_t, Align, Nothrow) noexcept> g_new_array_aligned_nothrow(
    "_ZnamSt11align_val_tRKSt9nothrow_t");

constinit Displaced<void (*)(void*) noexcept> g_delete("_ZdlPv");
constinit Displaced<void (*)(void*) noexcept> g_delete_array("_ZdaPv");
constinit Displaced<void (*)(void*, std::size_t) noexcept> g_delete_sized("_ZdlPvm");
constinit Displaced<void (*)(void*, std::size_t) noexcept> g_delete_array_sized("_ZdaPvm");
constinit Displaced<void (*)(void*, Align) noexcept> g_delete_aligned("_ZdlPvSt11align_val_t");
constinit Displaced<void (*)(void*, Align) noexcept> g_delete_array_aligned(
    "_ZdaPvSt11align_val_t");
constinit Displaced<void (*)(void*, std::size_t, Align) noexcept> g_delete_sized_aligned(
    "_ZdlPvmSt11align_val_t");
constinit Displaced<void (*)(void*, std::size_t, Align) noexcept> g_delete_array_sized_aligned(
    "_ZdaPvmSt11align_val_t");
constinit Displaced<void (*)(void*, Nothrow) noexcept> g_delete_nothrow("_ZdlPvRKSt9nothrow_t");
constinit Displaced<void (*)(void*, Nothrow) noexcept> g_delete_array_nothrow(
    "_ZdaPvRKSt9nothrow_t");
constinit Displaced<void (*)(void*, Align, Nothrow) noexcept> g_delete_aligned_nothrow(
    "_ZdlPvSt11align_val_tRKSt9nothrow_t");
constinit Displaced<void (*)(void*, Align, Nothrow) noexcept> g_delete_array_aligned_nothrow(
    "_ZdaPvSt11align_val_tRKSt9nothrow_t");

// ------------------------------------------------------------------------------------------
// The injection. The plan fields are written only while it is disarmed, by the arming
// thread, and published by the release store of g_armed.

constinit std::atomic<bool> g_armed{false};
constinit std::atomic<long> g_fail_at{0};
constinit std::atomic<bool> g_fail_after{false};
constinit std::atomic<bool> g_every_thread{false};
constinit std::atomic<bool> g_nothrow_only{false};
// Bumped at every arming; the arming thread remembers it, so that under kArmingThread a
// thread that armed an earlier injection is not mistaken for this one's.
constinit std::atomic<long> g_generation{0};
constinit thread_local long t_armed_generation = 0;

constinit std::atomic<long> g_seen{0};
constinit std::atomic<long> g_failures{0};
constinit std::atomic<long> g_live{0};

bool FailThisAllocation(bool nothrow) noexcept {
  // acquire: pairs with the release store in FailingAllocations' constructor, so the plan
  // read below is the armed one.
  if (!g_armed.load(std::memory_order_acquire)) [[likely]] return false;
  // relaxed from here on: the plan was published by the acquire above; the counters only
  // count (their read-modify-writes never lose an increment).
  if (!g_every_thread.load(std::memory_order_relaxed) &&
      t_armed_generation != g_generation.load(std::memory_order_relaxed)) {
    return false;
  }
  if (!nothrow && g_nothrow_only.load(std::memory_order_relaxed)) return false;
  const long n = g_seen.fetch_add(1, std::memory_order_relaxed) + 1;
  const long fail_at = g_fail_at.load(std::memory_order_relaxed);
  if (fail_at <= 0 || n < fail_at) return false;
  if (n > fail_at && !g_fail_after.load(std::memory_order_relaxed)) return false;
  g_failures.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void* Allocated(void* block) noexcept {
  // relaxed: a statistic; readers compare it across joins or on the allocating thread.
  if (block != nullptr) g_live.fetch_add(1, std::memory_order_relaxed);
  return block;
}

void Freed(void* block) noexcept {
  if (block != nullptr) g_live.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as above
}

}  // namespace

namespace midatlas::testing_support {

FailingAllocations::FailingAllocations(FailurePlan plan) : plan_(plan) {
  // relaxed: nobody reads the plan until the release store below publishes it.
  g_fail_at.store(plan.fail_at, std::memory_order_relaxed);
  g_fail_after.store(plan.after == AfterFailure::kFail, std::memory_order_relaxed);
  g_every_thread.store(plan.threads == AllocationThreads::kEveryThread,
                       std::memory_order_relaxed);
  g_nothrow_only.store(plan.forms == AllocationForms::kNothrowOnly, std::memory_order_relaxed);
  g_seen.store(0, std::memory_order_relaxed);
  g_failures.store(0, std::memory_order_relaxed);
  t_armed_generation = g_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  // release: pairs with the acquire load in FailThisAllocation.
  g_armed.store(true, std::memory_order_release);
}

FailingAllocations::~FailingAllocations() { Disarm(); }

void FailingAllocations::Disarm() {
  if (!armed_) return;
  armed_ = false;
  // relaxed: other threads may see the injection armed a little longer; a test that needs
  // them to stop joins them first.
  g_armed.store(false, std::memory_order_relaxed);
}

long FailingAllocations::seen() const { return g_seen.load(std::memory_order_relaxed); }
long FailingAllocations::failures() const { return g_failures.load(std::memory_order_relaxed); }
bool FailingAllocations::reached() const { return plan_.fail_at > 0 && seen() >= plan_.fail_at; }

InjectionReport FailingAllocations::report() const {
  return {.seen = seen(), .failures = failures(), .reached = reached()};
}

long LiveAllocations() { return g_live.load(std::memory_order_relaxed); }

FailNothrowAllocations::FailNothrowAllocations(long successes_first, Mode mode)
    : injection_({.fail_at = successes_first + 1,
                  .after = mode == Mode::kOnlyTheNext ? AfterFailure::kSucceed
                                                      : AfterFailure::kFail,
                  .threads = AllocationThreads::kEveryThread,
                  .forms = AllocationForms::kNothrowOnly}) {}

long FailNothrowAllocations::failures() { return g_failures.load(std::memory_order_relaxed); }

}  // namespace midatlas::testing_support

// ------------------------------------------------------------------------------------------
// The replacements. Each counts (and may fail) one allocation, then calls the operator it
// displaces.

namespace {

// The C++ runtime's operators call one another (its nothrow new calls the throwing one, its
// sized delete the unsized one), and such a nested call comes back here. It was counted by
// the outer call, so it goes straight through.
constinit thread_local int t_forwarding = 0;

class Forwarding {
 public:
  Forwarding() noexcept { ++t_forwarding; }
  Forwarding(const Forwarding&) = delete;
  Forwarding& operator=(const Forwarding&) = delete;
  ~Forwarding() { --t_forwarding; }
};

template <typename Displace>
void* Allocate(bool nothrow, Displace&& displaced) {
  if (t_forwarding > 0) return displaced();
  if (FailThisAllocation(nothrow)) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  const Forwarding forwarding;
  return Allocated(displaced());
}

template <typename Displace>
void Deallocate(void* block, Displace&& displaced) noexcept {
  if (t_forwarding > 0) {
    displaced();
    return;
  }
  Freed(block);
  const Forwarding forwarding;
  displaced();
}

}  // namespace

void* operator new(std::size_t size) {
  return Allocate(false, [&] { return g_new.get()(size); });
}

void* operator new[](std::size_t size) {
  return Allocate(false, [&] { return g_new_array.get()(size); });
}

void* operator new(std::size_t size, std::align_val_t alignment) {
  return Allocate(false, [&] { return g_new_aligned.get()(size, alignment); });
}

void* operator new[](std::size_t size, std::align_val_t alignment) {
  return Allocate(false, [&] { return g_new_array_aligned.get()(size, alignment); });
}

void* operator new(std::size_t size, const std::nothrow_t& tag) noexcept {
  return Allocate(true, [&] { return g_new_nothrow.get()(size, tag); });
}

void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return Allocate(true, [&] { return g_new_array_nothrow.get()(size, tag); });
}

void* operator new(std::size_t size, std::align_val_t alignment,
                   const std::nothrow_t& tag) noexcept {
  return Allocate(true, [&] { return g_new_aligned_nothrow.get()(size, alignment, tag); });
}

void* operator new[](std::size_t size, std::align_val_t alignment,
                     const std::nothrow_t& tag) noexcept {
  return Allocate(true, [&] { return g_new_array_aligned_nothrow.get()(size, alignment, tag); });
}

void operator delete(void* block) noexcept {
  Deallocate(block, [&] { g_delete.get()(block); });
}

void operator delete[](void* block) noexcept {
  Deallocate(block, [&] { g_delete_array.get()(block); });
}

void operator delete(void* block, std::size_t size) noexcept {
  Deallocate(block, [&] { g_delete_sized.get()(block, size); });
}

void operator delete[](void* block, std::size_t size) noexcept {
  Deallocate(block, [&] { g_delete_array_sized.get()(block, size); });
}

void operator delete(void* block, std::align_val_t alignment) noexcept {
  Deallocate(block, [&] { g_delete_aligned.get()(block, alignment); });
}

void operator delete[](void* block, std::align_val_t alignment) noexcept {
  Deallocate(block, [&] { g_delete_array_aligned.get()(block, alignment); });
}

void operator delete(void* block, std::size_t size, std::align_val_t alignment) noexcept {
  Deallocate(block, [&] { g_delete_sized_aligned.get()(block, size, alignment); });
}

void operator delete[](void* block, std::size_t size, std::align_val_t alignment) noexcept {
  Deallocate(block, [&] { g_delete_array_sized_aligned.get()(block, size, alignment); });
}

void operator delete(void* block, const std::nothrow_t& tag) noexcept {
  Deallocate(block, [&] { g_delete_nothrow.get()(block, tag); });
}

void operator delete[](void* block, const std::nothrow_t& tag) noexcept {
  Deallocate(block, [&] { g_delete_array_nothrow.get()(block, tag); });
}

void operator delete(void* block, std::align_val_t alignment, const std::nothrow_t& tag) noexcept {
  Deallocate(block, [&] { g_delete_aligned_nothrow.get()(block, alignment, tag); });
}

void operator delete[](void* block, std::align_val_t alignment,
                       const std::nothrow_t& tag) noexcept {
  Deallocate(block, [&] { g_delete_array_aligned_nothrow.get()(block, alignment, tag); });
}
