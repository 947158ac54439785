// The tables the waiting benchmarks (wait_bench.cc) compare: midatlas's own waiting, through
// the C API, against what a user writes today when MIDs run out - one mutex over a free list
// and a context array, and either a FIFO of waiters the freer hands the MID to, or the
// textbook condition variable. RingCeiling is no table at all but the measure of what a FIFO
// hand-off can reach on the machine (see there).
//
// A waiting peer is a class with
//   static constexpr const char* kName;
//   explicit Peer(std::uint32_t max_mids);  all MIDs allocated at start (no growth)
//   bool ok() const;
//   bool AssociateWait(void* context, Mid*);            blocks until a MID is associated
//   template <GrantRoutine Done>
//   AsyncResult AssociateAsync(void* context, WaitNode*, Mid*);
//                                            kNow: *Mid associated at once; kQueued: Done
//                                            (context, mid) runs later, once, on the thread
//                                            that freed the MID, with the MID associated
//   void* Map(Mid);  void* MapAndDissociate(Mid);       nullptr when the MID is not in use
//   std::uint32_t Waiters();                 requests queued now (set-up waits on it)
//   using WaitNode = ...;                    the caller-owned storage of one queued request
//                                            (zero-initialised before its first use)
// Peers without an asynchronous form (the textbook condition variable) say
// kHasAsync = false; kFifoHandOff says that a freed MID goes straight to the oldest waiter,
// so that no MID is ever free while someone waits.
#ifndef MIDATLAS_BENCH_PEERS_WAIT_PEERS_H_
#define MIDATLAS_BENCH_PEERS_WAIT_PEERS_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "midatlas/midatlax.h"
#include "midatlas/midatlax_ex.h"
#include "peers/peer.h"

namespace midatlas::bench {

// Runs on the freeing thread when a queued request is handed its MID.
using GrantRoutine = void (*)(void* context, Mid mid);

enum class AsyncResult : std::uint8_t { kNow, kQueued, kFailed };

// The largest table the waiting benchmarks use; the baselines size their arrays by it.
inline constexpr std::uint32_t kMaxWaitMids = 64;

// midatlas through the C API: a wait block inside each request, so nothing is allocated per
// wait (the C++ AssociateAsync allocates a node and a callback per queued request).
class MidatlasCWait {
 public:
  static constexpr const char* kName = "midatlas-c";
  static constexpr bool kHasAsync = true;
  static constexpr bool kFifoHandOff = true;
  using WaitNode = RX_MID_WAIT_BLOCK;

  explicit MidatlasCWait(std::uint32_t max_mids) {
    RX_MID_ATLAS_PARAMETERS parameters{};
    parameters.MaximumNumberOfMids = static_cast<USHORT>(max_mids);
    parameters.MidsAllocatedAtStart = static_cast<USHORT>(max_mids);
    atlas_ = RxCreateMidAtlasEx(&parameters);
  }
  // Requests still queued are cancelled (their routine runs with STATUS_CANCELLED and does
  // nothing); contexts still associated belong to the benchmark.
  ~MidatlasCWait() {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, nullptr);
  }
  MidatlasCWait(const MidatlasCWait&) = delete;
  MidatlasCWait& operator=(const MidatlasCWait&) = delete;

  [[nodiscard]] bool ok() const { return atlas_ != nullptr; }

  bool AssociateWait(void* context, Mid* mid) noexcept {
    return RxAssociateContextWithMidWait(atlas_, context, 0, 0xFFFFFFFFUL, mid) ==
           STATUS_SUCCESS;
  }

  template <GrantRoutine Done>
  AsyncResult AssociateAsync(void* context, WaitNode* node, Mid* mid) noexcept {
    const NTSTATUS status =
        RxAssociateContextWithMidAsync(atlas_, context, 0, node, &Routine<Done>, mid);
    if (status == STATUS_SUCCESS) return AsyncResult::kNow;
    return status == STATUS_PENDING ? AsyncResult::kQueued : AsyncResult::kFailed;
  }

  [[nodiscard]] void* Map(Mid mid) const noexcept { return RxMapMidToContext(atlas_, mid); }
  void* MapAndDissociate(Mid mid) noexcept {
    PVOID context = nullptr;
    RxMapAndDissociateMidFromContext(atlas_, mid, &context);
    return context;
  }
  [[nodiscard]] std::uint32_t Waiters() const noexcept { return RxGetNumberOfWaiters(atlas_); }

 private:
  template <GrantRoutine Done>
  static VOID Routine(PRX_MID_WAIT_BLOCK /*block*/, PVOID context, NTSTATUS status, USHORT mid) {
    if (status == STATUS_SUCCESS) Done(context, mid);
  }

  PRX_MID_ATLAS atlas_ = nullptr;
};

// The MIDs, their contexts and the free list a mutex-protected table holds; every field is
// read and written under the owner's mutex.
struct LockedMidTable {
  explicit LockedMidTable(std::uint32_t max_mids) : free_count(max_mids) {
    // Lowest MIDs on top, as the atlas prefers them.
    for (std::uint32_t i = 0; i < max_mids; ++i) free_mids[i] = static_cast<Mid>(max_mids - 1 - i);
  }
  bool Take(void* context, Mid* mid) noexcept {
    if (free_count == 0) return false;
    *mid = free_mids[--free_count];
    contexts[*mid] = context;
    return true;
  }
  // The context of `mid`, nullptr when not in use; the MID stays held.
  [[nodiscard]] void* At(Mid mid) const noexcept {
    return mid < kMaxWaitMids ? contexts[mid] : nullptr;
  }
  void Free(Mid mid) noexcept {
    contexts[mid] = nullptr;
    free_mids[free_count++] = mid;
  }

  std::array<void*, kMaxWaitMids> contexts{};
  std::array<Mid, kMaxWaitMids> free_mids{};
  std::uint32_t free_count;
};

// What a careful user writes for FIFO waiting: one std::mutex over the table and a FIFO of
// waiters; the freer hands the MID straight to the oldest waiter (no barging, every hand-off
// reaches a waiter). A blocking waiter sleeps on its own condition variable, which the freer
// notifies under the mutex (the waiter's node lives on its stack and may be gone as soon as
// the mutex is released); an asynchronous request's routine runs on the freeing thread, after
// the mutex is released. Lookups take the mutex too: the whole table is mutex-protected.
class MutexFifoWait {
 public:
  static constexpr const char* kName = "mutex+fifo";
  static constexpr bool kHasAsync = true;
  static constexpr bool kFifoHandOff = true;

  struct Sleeper;
  struct WaitNode {
    WaitNode* next;
    void* context;
    GrantRoutine done;  // an asynchronous request's routine, or
    Sleeper* sleeper;   // a blocking waiter's wake-up
  };
  struct Sleeper {
    WaitNode node{};
    std::condition_variable woken;
    Mid mid = 0;
    bool served = false;
  };

  explicit MutexFifoWait(std::uint32_t max_mids) : table_(max_mids) {}
  [[nodiscard]] bool ok() const { return true; }

  bool AssociateWait(void* context, Mid* mid) noexcept {
    Sleeper sleeper;
    sleeper.node.context = context;
    sleeper.node.sleeper = &sleeper;
    std::unique_lock<std::mutex> lock(mutex_);
    if (head_ == nullptr && table_.Take(context, mid)) return true;
    Append(&sleeper.node);
    sleeper.woken.wait(lock, [&] { return sleeper.served; });
    *mid = sleeper.mid;
    return true;
  }

  template <GrantRoutine Done>
  AsyncResult AssociateAsync(void* context, WaitNode* node, Mid* mid) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (head_ == nullptr && table_.Take(context, mid)) return AsyncResult::kNow;
    node->context = context;
    node->done = Done;
    node->sleeper = nullptr;
    Append(node);
    return AsyncResult::kQueued;
  }

  [[nodiscard]] void* Map(Mid mid) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    return table_.At(mid);
  }

  void* MapAndDissociate(Mid mid) noexcept {
    WaitNode* handed = nullptr;
    void* context = nullptr;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      context = table_.At(mid);
      if (context == nullptr) return nullptr;
      if (head_ == nullptr) {
        table_.Free(mid);
        return context;
      }
      handed = head_;
      head_ = handed->next;
      if (head_ == nullptr) tail_ = nullptr;
      --waiters_;
      table_.contexts[mid] = handed->context;  // the MID goes on, associated
      if (Sleeper* sleeper = handed->sleeper) {
        sleeper->mid = mid;
        sleeper->served = true;
        sleeper->woken.notify_one();
        return context;
      }
    }
    handed->done(handed->context, mid);
    return context;
  }

  [[nodiscard]] std::uint32_t Waiters() noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    return waiters_;
  }

 private:
  void Append(WaitNode* node) noexcept {
    node->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = node;
    } else {
      head_ = node;
    }
    tail_ = node;
    ++waiters_;
  }

  std::mutex mutex_;
  LockedMidTable table_;
  WaitNode* head_ = nullptr;
  WaitNode* tail_ = nullptr;
  std::uint32_t waiters_ = 0;
};

// The textbook form: one mutex, one condition variable, a free list. A waiter re-checks
// "a MID is free" after every wake-up; the freer notifies one waiter after releasing the
// mutex. Correct, and what most code does, but not FIFO: a caller that arrives while a woken
// waiter is still on its way to the mutex takes the MID (barging), and that waiter sleeps
// again - so a hand-off need not wake anyone. Blocking only.
class MutexCvWait {
 public:
  static constexpr const char* kName = "mutex+cv";
  static constexpr bool kHasAsync = false;
  static constexpr bool kFifoHandOff = false;

  explicit MutexCvWait(std::uint32_t max_mids) : table_(max_mids) {}
  [[nodiscard]] bool ok() const { return true; }

  bool AssociateWait(void* context, Mid* mid) noexcept {
    std::unique_lock<std::mutex> lock(mutex_);
    if (table_.free_count == 0) {
      ++waiters_;
      freed_.wait(lock, [&] { return table_.free_count != 0; });
      --waiters_;
    }
    return table_.Take(context, mid);
  }

  [[nodiscard]] void* Map(Mid mid) noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    return table_.At(mid);
  }

  void* MapAndDissociate(Mid mid) noexcept {
    void* context = nullptr;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      context = table_.At(mid);
      if (context == nullptr) return nullptr;
      table_.Free(mid);
    }
    freed_.notify_one();
    return context;
  }

  [[nodiscard]] std::uint32_t Waiters() noexcept {
    const std::lock_guard<std::mutex> lock(mutex_);
    return waiters_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  LockedMidTable table_;
  std::uint32_t waiters_ = 0;  // threads inside the wait (for set-up only)
};

// Not a table anyone could ship: the ceiling of the asynchronous workload on the machine it
// runs on. A flat array of 64 contexts and a bounded lock-free FIFO ring of waiting requests
// (D. Vyukov's bounded MPMC queue: a sequence number per cell, one CAS per enqueue or
// dequeue), with nothing else - no cancellation, no reserve, no growth, no generations, no
// waiter count - and correct only while the queue never runs empty, which the saturated
// workload guarantees (a MID freed while a request is being queued would be lost). Every
// table that hands MIDs over in FIFO order pays at least this ring's traffic between cores:
// the oldest waiter is at the queue's one head, and both drivers move it. Asynchronous only.
class RingCeiling {
 public:
  static constexpr const char* kName = "ring-ceiling";
  static constexpr bool kHasAsync = true;
  static constexpr bool kFifoHandOff = true;
  static constexpr std::uint64_t kCells = 256;  // every request of the workload fits

  struct WaitNode {
    void* context;
    GrantRoutine done;
  };

  explicit RingCeiling(std::uint32_t max_mids) : free_count_(max_mids) {
    for (std::uint32_t i = 0; i < max_mids; ++i) {
      free_mids_[i] = static_cast<Mid>(max_mids - 1 - i);
    }
    for (std::uint64_t i = 0; i < kCells; ++i) {
      cells_[i].sequence.store(i, std::memory_order_relaxed);  // set-up: before any thread
    }
  }
  [[nodiscard]] bool ok() const { return true; }

  // Set-up is single-threaded: MIDs come from the free list only then (the queue never
  // empties afterwards).
  template <GrantRoutine Done>
  AsyncResult AssociateAsync(void* context, WaitNode* node, Mid* mid) noexcept {
    // relaxed: the set-up's own stores; the driver threads start after it (thread creation).
    if (tail_.load(std::memory_order_relaxed) == head_.load(std::memory_order_relaxed) &&
        free_count_ != 0) {
      *mid = free_mids_[--free_count_];
      // release: pairs with Map's acquire (the context's request is visible to the mapper).
      contexts_[*mid].store(context, std::memory_order_release);
      return AsyncResult::kNow;
    }
    node->context = context;
    node->done = Done;
    return Enqueue(node) ? AsyncResult::kQueued : AsyncResult::kFailed;
  }

  [[nodiscard]] void* Map(Mid mid) const noexcept {
    // acquire: pairs with the release stores that associate the MID.
    return mid < kMaxWaitMids ? contexts_[mid].load(std::memory_order_acquire) : nullptr;
  }

  void* MapAndDissociate(Mid mid) noexcept {
    if (mid >= kMaxWaitMids) return nullptr;
    // acq_rel: takes the context (acquire, as Map) and orders this response before the next
    // association's store.
    void* context = contexts_[mid].exchange(nullptr, std::memory_order_acq_rel);
    if (context == nullptr) return nullptr;
    WaitNode* handed = Dequeue();
    if (handed == nullptr) return context;  // cannot happen while saturated; the MID leaks
    // release: pairs with Map's acquire.
    contexts_[mid].store(handed->context, std::memory_order_release);
    handed->done(handed->context, mid);
    return context;
  }

  [[nodiscard]] std::uint32_t Waiters() const noexcept {
    // relaxed: an estimate (set-up reads it single-threaded).
    return static_cast<std::uint32_t>(tail_.load(std::memory_order_relaxed) -
                                      head_.load(std::memory_order_relaxed));
  }

 private:
  struct alignas(64) Cell {
    std::atomic<std::uint64_t> sequence;
    WaitNode* node = nullptr;
  };

  bool Enqueue(WaitNode* node) noexcept {
    std::uint64_t position = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& cell = cells_[position % kCells];
      // acquire: pairs with the dequeuer's release that recycled the cell.
      const std::uint64_t sequence = cell.sequence.load(std::memory_order_acquire);
      if (sequence == position) {
        // relaxed: the cell is claimed by the sequence protocol, not by this counter.
        if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          cell.node = node;
          // release: publishes the node to the dequeuer's acquire.
          cell.sequence.store(position + 1, std::memory_order_release);
          return true;
        }
      } else if (sequence < position) {
        // The cell's previous lap is still queued (full), or its dequeuer has taken it and
        // not yet recycled it: then wait for that dequeuer (the ring is not lock-free).
        // relaxed: an estimate, rechecked on every turn.
        if (head_.load(std::memory_order_relaxed) + kCells <= position) return false;
        position = tail_.load(std::memory_order_relaxed);
      } else {
        position = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  WaitNode* Dequeue() noexcept {
    std::uint64_t position = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& cell = cells_[position % kCells];
      // acquire: pairs with the enqueuer's release.
      const std::uint64_t sequence = cell.sequence.load(std::memory_order_acquire);
      if (sequence == position + 1) {
        if (head_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          WaitNode* node = cell.node;
          // release: the cell is free for the enqueuer a lap later.
          cell.sequence.store(position + kCells, std::memory_order_release);
          return node;
        }
      } else if (sequence < position + 1) {
        // Empty, or the cell's enqueuer has taken its place and not yet filled it: then wait
        // for that enqueuer. relaxed: an estimate, rechecked on every turn.
        if (tail_.load(std::memory_order_relaxed) == position) return nullptr;
        position = head_.load(std::memory_order_relaxed);
      } else {
        position = head_.load(std::memory_order_relaxed);
      }
    }
  }

  std::array<std::atomic<void*>, kMaxWaitMids> contexts_{};
  std::array<Mid, kMaxWaitMids> free_mids_{};
  std::uint32_t free_count_;
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::array<Cell, kCells> cells_{};
};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_WAIT_PEERS_H_
