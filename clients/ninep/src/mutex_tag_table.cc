// MutexTagTable: the benchmark's baseline, a tag table the way Linux's 9p client keeps one
// (net/9p/client.c: an IDR of requests under the client's spinlock). Every operation, the
// receive path's lookup included, takes the one mutex. Tags are slot numbers, no generations.
// The same rules as the atlas table (tag_table.h), each done under the mutex: a quarantined
// slot holds the late context; waiters queue in a FIFO and a freed slot goes straight to the
// oldest of them.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "tag_table.h"

namespace ninep::internal {
namespace {

class MutexTagTable final : public TagTable {
 public:
  explicit MutexTagTable(std::uint32_t max_in_flight)
      : slots_(max_in_flight), max_in_flight_(max_in_flight) {
    free_.reserve(max_in_flight);
    for (std::uint32_t i = max_in_flight; i > 0; --i) {
      free_.push_back(static_cast<std::uint16_t>(i - 1));  // tag 0 first
    }
  }

  absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return absl::UnavailableError("connection closed");
    if (!free_.empty()) return TakeLocked(request);  // free slots exist only while none wait
    Waiter w(request);
    queue_.push_back(&w);
    ++waits_;
    w.woken.wait(lock, [&w] { return w.done; });
    return w.result;
  }

  absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return absl::Status(absl::StatusCode::kUnavailable, {});
    return TakeLocked(request);
  }

  TagEntry* CompleteReply(std::uint16_t tag) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (tag < slots_.size()) {
      Slot& slot = slots_[tag];
      if (slot.late != nullptr) {
        if (!slot.late_taken) {
          slot.late_taken = true;
          return slot.late;
        }
      } else if (TagEntry* e = CompleteLocked(tag)) {
        return e;
      }
    }
    ++unknown_tags_;
    return nullptr;
  }

  TagEntry* Complete(std::uint16_t tag) override {
    std::lock_guard<std::mutex> lock(mu_);
    return tag < slots_.size() ? CompleteLocked(tag) : nullptr;
  }

  DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) override {
    std::lock_guard<std::mutex> lock(mu_);
    // (ninep:M1) relaxed: every phase change of this table is under mu_.
    if (request->phase.load(std::memory_order_relaxed) != TagEntry::kLive) {
      return DiscardResult::kAlreadyCompleted;  // the reply or the drain claimed it
    }
    // (ninep:M2) relaxed: under mu_.
    request->phase.store(TagEntry::kDiscarded, std::memory_order_relaxed);
    late->tag.store(tag, std::memory_order_relaxed);  // (ninep:M3) relaxed: under mu_
    // A live request's slot holds it (only its claimer frees the slot).
    Slot& slot = slots_[tag];
    slot.request = nullptr;
    slot.late = late;
    slot.late_taken = false;
    return DiscardResult::kQuarantined;
  }

  absl::StatusOr<TagEntry*> Release(std::uint16_t tag) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (tag >= slots_.size() || slots_[tag].late == nullptr) {
      return absl::Status(absl::StatusCode::kInvalidArgument, {});
    }
    Slot& slot = slots_[tag];
    TagEntry* late = slot.late_taken ? nullptr : slot.late;
    slot.late = nullptr;
    FreeLocked(tag);
    return late;
  }

  void Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (Waiter* w : queue_) {
      w->result = absl::UnavailableError("connection closed while waiting for a tag");
      w->done = true;
      w->woken.notify_one();  // under mu_: the waiter ends `w` only after it retakes mu_
    }
    queue_.clear();
  }

  void Drain(absl::FunctionRef<void(TagEntry*)> fn) override {
    std::vector<TagEntry*> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t tag = 0; tag < slots_.size(); ++tag) {
        Slot& slot = slots_[tag];
        if (slot.late != nullptr) {
          if (!slot.late_taken) left.push_back(slot.late);
          slot.late = nullptr;
        } else if (slot.request != nullptr) {
          slot.request->phase.store(TagEntry::kCompleted,  // (ninep:M4) relaxed: under mu_
                                    std::memory_order_relaxed);
          left.push_back(slot.request);
          slot.request = nullptr;
        } else {
          continue;
        }
        FreeLocked(static_cast<std::uint16_t>(tag));
      }
    }
    for (TagEntry* e : left) fn(e);
  }

  [[nodiscard]] std::uint32_t max_in_flight() const override { return max_in_flight_; }
  [[nodiscard]] int generation_bits() const override { return 0; }
  [[nodiscard]] std::uint32_t in_use() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::uint32_t>(max_in_flight_ - free_.size());
  }
  [[nodiscard]] std::uint32_t waiting() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::uint32_t>(queue_.size());
  }
  [[nodiscard]] TagTableCounters counters() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return {.unknown_tags = unknown_tags_, .waits = waits_};
  }

 private:
  // A tag's slot: the live request, or the late context of a quarantined tag.
  struct Slot {
    TagEntry* request = nullptr;
    TagEntry* late = nullptr;
    bool late_taken = false;
  };
  // An Acquire waiting for a slot, on its own stack.
  struct Waiter {
    explicit Waiter(TagEntry* r) : request(r) {}
    TagEntry* const request;
    std::condition_variable woken;
    bool done = false;                     // guarded by mu_
    absl::StatusOr<std::uint16_t> result;  // guarded by mu_
  };

  TagEntry* CompleteLocked(std::uint16_t tag) {
    TagEntry* e = slots_[tag].request;
    if (e == nullptr) return nullptr;
    e->phase.store(TagEntry::kCompleted, std::memory_order_relaxed);  // (ninep:M5) relaxed: mu_
    slots_[tag].request = nullptr;
    FreeLocked(tag);
    return e;
  }

  std::uint16_t TakeLocked(TagEntry* request) {
    const std::uint16_t tag = free_.back();
    free_.pop_back();
    AssignLocked(tag, request);
    return tag;
  }

  void AssignLocked(std::uint16_t tag, TagEntry* request) {
    slots_[tag].request = request;
    request->admission = admissions_++;
    request->tag.store(tag, std::memory_order_relaxed);  // (ninep:M6) relaxed: under mu_
  }

  // The slot is empty now: it goes to the oldest waiter, or back to the free list.
  void FreeLocked(std::uint16_t tag) {
    if (queue_.empty()) {
      free_.push_back(tag);
      return;
    }
    Waiter* w = queue_.front();
    queue_.pop_front();
    AssignLocked(tag, w->request);
    w->result = tag;
    w->done = true;
    w->woken.notify_one();  // under mu_, as in Close
  }

  mutable std::mutex mu_;
  std::vector<Slot> slots_;          // guarded by mu_
  std::vector<std::uint16_t> free_;  // guarded by mu_: free tags, most recently freed last
  std::deque<Waiter*> queue_;        // guarded by mu_: waiting Acquires, oldest first
  bool closed_ = false;              // guarded by mu_
  std::uint64_t unknown_tags_ = 0;   // guarded by mu_
  std::uint64_t waits_ = 0;          // guarded by mu_
  std::uint64_t admissions_ = 0;     // guarded by mu_
  const std::uint32_t max_in_flight_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TagTable>> MakeMutexTagTable(std::uint32_t max_in_flight) {
  return std::unique_ptr<TagTable>(new MutexTagTable(max_in_flight));
}

}  // namespace ninep::internal
