// The instrumented atomic of the deterministic-schedule build: what
// src/instrumentation/atomic.h names `Atomic<T>` when MIDATLAS_DETERMINISTIC_SCHEDULE is
// defined, so the shipped algorithms run unchanged under the scheduler (scheduler.h).
//
// Each operation first calls SchedulingPoint(): on a thread the scheduler runs, that hands
// the choice of which logical thread runs next to the strategy (and may block this thread
// until it is picked again); on any other thread it does nothing. Then the operation runs on
// an ordinary std::atomic<T> with the order asked for. Only one scheduled thread runs at a
// time, and each hand-over is a semaphore release/acquire, so every execution is one
// sequentially consistent interleaving of the operations (docs/PROOF.md says what that cannot
// show).
//
// Layout: exactly std::atomic<T> (the maps placement-construct arrays of Atomic<T> in raw
// memory), no per-object metadata.
#ifndef MIDATLAS_TESTS_DSCHED_ATOMIC_H_
#define MIDATLAS_TESTS_DSCHED_ATOMIC_H_

#include <atomic>

namespace midatlas::dsched {

struct LogicalThread;  // scheduler.cc

namespace detail {
// The logical thread the calling OS thread runs, or nullptr on any unscheduled thread.
extern constinit thread_local LogicalThread* current_thread;
void SchedulingPointSlow(LogicalThread& self) noexcept;
}  // namespace detail

// A scheduling point: on a scheduled thread the strategy picks who runs next.
inline void SchedulingPoint() noexcept {
  LogicalThread* self = detail::current_thread;
  if (self != nullptr) [[unlikely]] detail::SchedulingPointSlow(*self);
}

// A fence is a scheduling point; between scheduling points one thread runs alone, so the
// fence itself orders nothing more than the interleaving already does.
inline void ThreadFence(std::memory_order order) noexcept {
  SchedulingPoint();
  std::atomic_thread_fence(order);
}

template <typename T>
class Atomic {
 public:
  static constexpr bool is_always_lock_free = std::atomic<T>::is_always_lock_free;

  Atomic() noexcept = default;
  constexpr Atomic(T desired) noexcept : value_(desired) {}  // NOLINT: as std::atomic
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
    SchedulingPoint();
    return value_.load(order);
  }
  void store(T desired, std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    value_.store(desired, order);
  }
  T exchange(T desired, std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.exchange(desired, order);
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                             std::memory_order failure) noexcept {
    SchedulingPoint();
    // Strong: a spurious failure would be a choice the scheduler did not make, and would
    // make a schedule depend on the hardware.
    return value_.compare_exchange_strong(expected, desired, success, failure);
  }
  bool compare_exchange_weak(T& expected, T desired,
                             std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.compare_exchange_strong(expected, desired, order);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                               std::memory_order failure) noexcept {
    SchedulingPoint();
    return value_.compare_exchange_strong(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T& expected, T desired,
                               std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.compare_exchange_strong(expected, desired, order);
  }
  // U = T, a template only so that Atomic<bool> (no difference_type) still instantiates.
  template <typename U = T>
  U fetch_add(typename std::atomic<U>::difference_type delta,
              std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.fetch_add(delta, order);
  }
  template <typename U = T>
  U fetch_sub(typename std::atomic<U>::difference_type delta,
              std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.fetch_sub(delta, order);
  }
  T fetch_and(T bits, std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.fetch_and(bits, order);
  }
  T fetch_or(T bits, std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.fetch_or(bits, order);
  }
  T fetch_xor(T bits, std::memory_order order = std::memory_order_seq_cst) noexcept {
    SchedulingPoint();
    return value_.fetch_xor(bits, order);
  }
  operator T() const noexcept { return load(); }  // NOLINT: as std::atomic

 private:
  std::atomic<T> value_;
};

static_assert(sizeof(Atomic<void*>) == sizeof(std::atomic<void*>) &&
                  alignof(Atomic<void*>) == alignof(std::atomic<void*>),
              "layout-compatible with std::atomic");
static_assert(sizeof(Atomic<unsigned long long>) == sizeof(std::atomic<unsigned long long>) &&
                  alignof(Atomic<unsigned long long>) == alignof(std::atomic<unsigned long long>),
              "layout-compatible with std::atomic");
static_assert(sizeof(Atomic<bool>) == sizeof(std::atomic<bool>), "layout-compatible");

}  // namespace midatlas::dsched

#endif  // MIDATLAS_TESTS_DSCHED_ATOMIC_H_
