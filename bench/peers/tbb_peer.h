// "tbb-map": tbb::concurrent_hash_map from MID to context, with the freed MIDs in a
// tbb::concurrent_queue — the combination a TBB user would reach for. Lookups hold a read
// accessor (bucket lock plus element read lock) for as long as they read the context.
//
// Both containers use TBB's default allocators (tbbmalloc when it is installed, as with
// Debian's libtbb-dev). tbbmalloc does not go through malloc, so the heap delta the memory
// workload takes misses it; a thin wrapper counts the bytes those allocators hand out, per
// thread so that counting costs no shared cache line.
#ifndef MIDATLAS_BENCH_PEERS_TBB_PEER_H_
#define MIDATLAS_BENCH_PEERS_TBB_PEER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "oneapi/tbb/cache_aligned_allocator.h"
#include "oneapi/tbb/concurrent_hash_map.h"
#include "oneapi/tbb/concurrent_queue.h"
#include "oneapi/tbb/tbb_allocator.h"
#include "peers/peer.h"

namespace midatlas::bench {

// Net bytes the TBB containers allocated on this thread. The memory workload runs on one
// thread, so its reading is exact there.
inline thread_local std::ptrdiff_t tbb_thread_bytes = 0;

template <typename T, template <typename> class Base>
class CountingAllocator : public Base<T> {
 public:
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = CountingAllocator<U, Base>;
  };

  CountingAllocator() = default;
  // Implicit, as the allocator requirements demand of the rebinding conversion.
  template <typename U>
  CountingAllocator(const CountingAllocator<U, Base>& /*unused*/) noexcept {}  // NOLINT

  T* allocate(std::size_t n) {
    tbb_thread_bytes += static_cast<std::ptrdiff_t>(n * sizeof(T));
    return Base<T>::allocate(n);
  }
  void deallocate(T* p, std::size_t n) {
    tbb_thread_bytes -= static_cast<std::ptrdiff_t>(n * sizeof(T));
    Base<T>::deallocate(p, n);
  }
  friend bool operator==(const CountingAllocator&, const CountingAllocator&) { return true; }
};

// True when TBB's allocators bypass malloc (tbbmalloc was found at run time).
inline bool TbbUsesScalableAllocator() {
  return oneapi::tbb::tbb_allocator<int>::allocator_type() ==
         oneapi::tbb::tbb_allocator<int>::scalable;
}

class TbbMap {
 public:
  static constexpr const char* kName = "tbb-map";
  using ThreadScope = NoThreadScope;

  explicit TbbMap(std::uint32_t start) : map_(start) {}
  [[nodiscard]] bool ok() const { return true; }

  bool Associate(void* context, Mid* mid) noexcept {
    Mid id = 0;
    if (!free_.try_pop(id)) {
      // Fresh MIDs (lowest first) until the first one is freed: memory follows the
      // high-water mark. Relaxed: the counter only has to hand each value out once.
      std::uint32_t fresh = next_fresh_.load(std::memory_order_relaxed);
      do {
        if (fresh >= kMaxMids) return false;
      } while (!next_fresh_.compare_exchange_weak(fresh, fresh + 1, std::memory_order_relaxed));
      id = static_cast<Mid>(fresh);
    }
    map_.insert(std::make_pair(id, context));
    *mid = id;
    return true;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept {
    HashMap::const_accessor entry;
    return map_.find(entry, mid) ? entry->second : nullptr;
  }
  void* MapAndDissociate(Mid mid) noexcept {
    HashMap::accessor entry;
    if (!map_.find(entry, mid)) return nullptr;
    void* context = entry->second;
    map_.erase(entry);
    free_.push(mid);
    return context;
  }
  void Settle() noexcept {}

 private:
  template <typename T>
  using MapAllocator = CountingAllocator<T, oneapi::tbb::tbb_allocator>;
  template <typename T>
  using QueueAllocator = CountingAllocator<T, oneapi::tbb::cache_aligned_allocator>;
  using HashMap = oneapi::tbb::concurrent_hash_map<Mid, void*, oneapi::tbb::tbb_hash_compare<Mid>,
                                                   MapAllocator<std::pair<const Mid, void*>>>;

  HashMap map_;
  oneapi::tbb::concurrent_queue<Mid, QueueAllocator<Mid>> free_;
  std::atomic<std::uint32_t> next_fresh_{0};
};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_TBB_PEER_H_
