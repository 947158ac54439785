// FifoGate: makes tag acquisition wait, first come first served, while every tag is in use.
//
// A caller first tries to take a tag without waiting (no lock, when nobody waits). If none is
// free it takes a ticket and sleeps; only the holder of the oldest ticket tries again, each
// time a tag is freed, so tags go to waiters in the order they arrived. A caller that arrives
// while others wait queues behind them instead of trying first.
//
// The lost-wakeup argument: a waiter publishes itself (waiting_ += 1) and then tries to take a
// tag; a freer frees a tag and then reads waiting_. Both sides do it with a read-modify-write
// of waiting_ (ninep:G1, ninep:G2), and RMWs of one variable are totally ordered: if the
// freer's comes first, the waiter's acquire RMW synchronizes with it and its try sees the free
// tag; if the waiter's comes first, the freer reads waiting_ > 0 and notifies under the mutex
// (the waiter holds the mutex from its try until it sleeps, so the notification cannot fall in
// between). RMWs, not fences: ThreadSanitizer cannot check fences.
#ifndef NINEP_SRC_FIFO_GATE_H_
#define NINEP_SRC_FIFO_GATE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ninep::internal {

class FifoGate {
 public:
  // `try_take()` answers a tag or Unavailable when none is free (other errors pass through).
  template <typename TryTake>
  absl::StatusOr<std::uint16_t> Acquire(TryTake&& try_take) {
    // (ninep:G3) relaxed: a hint only; a waiter that appears just after this read can lose
    // its turn to this caller once (never a wakeup: the fences below decide those).
    if (waiting_.load(std::memory_order_relaxed) == 0 &&
        !closed_.load(std::memory_order_acquire)) {  // (ninep:G4) acquire: pairs with Close
      absl::StatusOr<std::uint16_t> tag = try_take();
      if (tag.ok() || !absl::IsUnavailable(tag.status())) return tag;
    }
    std::unique_lock<std::mutex> lock(mu_);
    ++waits_;
    const std::uint64_t ticket = next_ticket_++;
    // (ninep:G1) acq_rel RMW: publish this waiter before trying; pairs with G2.
    waiting_.fetch_add(1, std::memory_order_acq_rel);
    for (;;) {
      if (closed_.load(std::memory_order_acquire)) {  // (ninep:G5) acquire: pairs with Close
        waiting_.fetch_sub(1, std::memory_order_relaxed);  // (ninep:G6) relaxed: a count
        return absl::UnavailableError("connection closed while waiting for a tag");
      }
      if (serving_ == ticket) {
        absl::StatusOr<std::uint16_t> tag = try_take();
        if (tag.ok() || !absl::IsUnavailable(tag.status())) {
          ++serving_;
          waiting_.fetch_sub(1, std::memory_order_relaxed);  // (ninep:G7) relaxed: a count
          cv_.notify_all();  // the next ticket may find another free tag
          return tag;
        }
      }
      cv_.wait(lock);
    }
  }

  // Called after a tag is freed.
  void Freed() {
    // (ninep:G2) acq_rel RMW: reads waiting_ after the free (release publishes the free to a
    // waiter whose G1 follows); pairs with G1.
    if (waiting_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
    { std::lock_guard<std::mutex> lock(mu_); }  // the head waiter is asleep or has not tried
    cv_.notify_all();
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_.store(true, std::memory_order_release);  // (ninep:G8) release: pairs with G4, G5
    }
    cv_.notify_all();
  }

  [[nodiscard]] std::uint32_t waiting() const {
    return waiting_.load(std::memory_order_relaxed);  // (ninep:G9) relaxed: a statistic
  }
  [[nodiscard]] std::uint64_t waits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t next_ticket_ = 0;  // guarded by mu_
  std::uint64_t serving_ = 0;      // guarded by mu_: the ticket allowed to try
  std::uint64_t waits_ = 0;        // guarded by mu_
  std::atomic<std::uint32_t> waiting_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace ninep::internal

#endif  // NINEP_SRC_FIFO_GATE_H_
