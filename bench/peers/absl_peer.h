// "absl-map": absl::flat_hash_map from MID to context behind one absl::Mutex, with a list of
// freed MIDs — the table most C++ servers built on Abseil would write. Lookups take the mutex
// shared (ReaderLock); associate and dissociate take it exclusive.
//
// Debian's Abseil is built without NDEBUG, which leaves absl::Mutex's deadlock detection on
// (a graph update per lock: ~40 ns instead of ~13). Production builds have it off, so the
// benchmark's main() switches it off for every absl::Mutex (DisableAbslDeadlockDetection).
#ifndef MIDATLAS_BENCH_PEERS_ABSL_PEER_H_
#define MIDATLAS_BENCH_PEERS_ABSL_PEER_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "peers/peer.h"

namespace midatlas::bench {

inline void DisableAbslDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

class AbslMap {
 public:
  static constexpr const char* kName = "absl-map";
  using ThreadScope = NoThreadScope;

  explicit AbslMap(std::uint32_t start) { map_.reserve(start); }
  [[nodiscard]] bool ok() const { return true; }

  bool Associate(void* context, Mid* mid) noexcept {
    absl::MutexLock lock(&mu_);
    Mid id = 0;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else if (next_fresh_ < kMaxMids) {
      id = static_cast<Mid>(next_fresh_++);
    } else {
      return false;
    }
    map_.emplace(id, context);
    *mid = id;
    return true;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept {
    absl::ReaderMutexLock lock(&mu_);
    auto it = map_.find(mid);
    return it == map_.end() ? nullptr : it->second;
  }
  void* MapAndDissociate(Mid mid) noexcept {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(mid);
    if (it == map_.end()) return nullptr;
    void* context = it->second;
    map_.erase(it);
    free_.push_back(mid);
    return context;
  }
  void Settle() noexcept {}

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Mid, void*> map_ ABSL_GUARDED_BY(mu_);
  // MIDs are handed out fresh (lowest first) until a freed one is available, so memory grows
  // with the high-water mark, not with the maximum.
  std::vector<Mid> free_ ABSL_GUARDED_BY(mu_);
  std::uint32_t next_fresh_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_ABSL_PEER_H_
