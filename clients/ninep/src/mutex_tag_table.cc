// MutexTagTable: the benchmark's baseline, a tag table the way Linux's 9p client keeps one
// (net/9p/client.c: an IDR of requests under the client's spinlock). Every operation, the
// receive path's lookup included, takes the one mutex. Tags are slot numbers, no generations.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "fifo_gate.h"
#include "tag_table.h"

namespace ninep::internal {
namespace {

class MutexTagTable final : public TagTable {
 public:
  explicit MutexTagTable(std::uint32_t max_in_flight)
      : slots_(max_in_flight, nullptr), max_in_flight_(max_in_flight) {
    free_.reserve(max_in_flight);
    for (std::uint32_t i = max_in_flight; i > 0; --i) {
      free_.push_back(static_cast<std::uint16_t>(i - 1));  // tag 0 first
    }
  }

  absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) override {
    return gate_.Acquire([&] { return TryTake(request); });
  }
  absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) override {
    return TryTake(request);
  }

  TagEntry* Complete(std::uint16_t tag) override {
    TagEntry* e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (tag >= slots_.size()) return nullptr;
      e = slots_[tag];
      if (e == nullptr || e->kind != TagEntry::Kind::kRequest ||
          e->phase.load(std::memory_order_relaxed) != TagEntry::kLive) {  // (ninep:M1) relaxed:
        return nullptr;                                                 // under mu_
      }
      e->phase.store(TagEntry::kCompleted, std::memory_order_relaxed);  // (ninep:M2) under mu_
      FreeLocked(tag);
    }
    gate_.Freed();
    return e;
  }

  DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (request->phase.load(std::memory_order_relaxed) != TagEntry::kLive) {  // (ninep:M3)
      return DiscardResult::kAlreadyCompleted;                               // under mu_
    }
    request->phase.store(TagEntry::kDiscarded, std::memory_order_relaxed);  // (ninep:M4) mu_
    if (tag >= slots_.size() || slots_[tag] != request) return DiscardResult::kDrained;
    late->tag.store(tag, std::memory_order_relaxed);  // (ninep:M5) relaxed: under mu_
    slots_[tag] = late;
    return DiscardResult::kQuarantined;
  }

  TagEntry* CompleteLate(std::uint16_t tag) override {
    std::lock_guard<std::mutex> lock(mu_);
    TagEntry* e = tag < slots_.size() ? slots_[tag] : nullptr;
    if (e != nullptr && e->kind == TagEntry::Kind::kLate &&
        e->phase.load(std::memory_order_relaxed) == TagEntry::kLatePending) {  // (ninep:M6) mu_
      e->phase.store(TagEntry::kLateConsumed, std::memory_order_relaxed);     // (ninep:M7) mu_
      return e;
    }
    ++unknown_tags_;
    return nullptr;
  }

  TagEntry* Release(std::uint16_t tag) override {
    TagEntry* e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (tag >= slots_.size()) return nullptr;
      e = slots_[tag];
      if (e == nullptr || e->kind != TagEntry::Kind::kLate) return nullptr;
      FreeLocked(tag);
    }
    gate_.Freed();
    return e;
  }

  void Close() override { gate_.Close(); }

  void Drain(absl::FunctionRef<void(TagEntry*)> fn) override {
    std::vector<TagEntry*> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t tag = 0; tag < slots_.size(); ++tag) {
        if (slots_[tag] == nullptr) continue;
        left.push_back(slots_[tag]);
        FreeLocked(static_cast<std::uint16_t>(tag));
      }
    }
    for (TagEntry* e : left) fn(e);
  }

  [[nodiscard]] std::uint32_t max_in_flight() const override { return max_in_flight_; }
  [[nodiscard]] int generation_bits() const override { return 0; }
  [[nodiscard]] std::uint32_t in_use() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }
  [[nodiscard]] std::uint32_t waiting() const override { return gate_.waiting(); }
  [[nodiscard]] TagTableCounters counters() const override {
    // The gate's mutex is taken before mu_ (Acquire -> TryTake), never inside it.
    const std::uint64_t waits = gate_.waits();
    std::lock_guard<std::mutex> lock(mu_);
    return {.unknown_tags = unknown_tags_, .waits = waits};
  }

 private:
  absl::StatusOr<std::uint16_t> TryTake(TagEntry* request) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return absl::Status(absl::StatusCode::kUnavailable, {});
    const std::uint16_t tag = free_.back();
    free_.pop_back();
    slots_[tag] = request;
    ++in_use_;
    request->admission = admissions_++;
    request->tag.store(tag, std::memory_order_relaxed);  // (ninep:M8) relaxed: under mu_
    return tag;
  }

  void FreeLocked(std::uint16_t tag) {
    slots_[tag] = nullptr;
    free_.push_back(tag);
    --in_use_;
  }

  mutable std::mutex mu_;
  std::vector<TagEntry*> slots_;     // guarded by mu_: the entry of each tag
  std::vector<std::uint16_t> free_;  // guarded by mu_: free tags, most recently freed last
  std::uint32_t in_use_ = 0;         // guarded by mu_
  std::uint64_t unknown_tags_ = 0;   // guarded by mu_
  std::uint64_t admissions_ = 0;     // guarded by mu_
  const std::uint32_t max_in_flight_;
  FifoGate gate_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TagTable>> MakeMutexTagTable(std::uint32_t max_in_flight) {
  return std::unique_ptr<TagTable>(new MutexTagTable(max_in_flight));
}

}  // namespace ninep::internal
