// "urcu-lfht": liburcu's lock-free RCU hash table (cds_lfht) from MID to context, with MIDs
// allocated from a free list under a std::mutex — the split the Linux kernel's IDR makes:
// lookups lock-free under RCU, allocation under a lock. It is the strongest read-side peer:
// a lookup is an RCU read-side critical section (no shared write, with sys_membarrier) and a
// hash-chain walk.
//
// Configured as a production user would: the default (memb) flavor, the read-side fast path
// inlined (_LGPL_SOURCE, in urcu_peer.cc only), an auto-resizing table, and nodes freed after
// a grace period by call_rcu rather than by a synchronize_rcu per dissociation.
#ifndef MIDATLAS_BENCH_PEERS_URCU_PEER_H_
#define MIDATLAS_BENCH_PEERS_URCU_PEER_H_

#include <cstdint>
#include <mutex>
#include <vector>

#include "peers/peer.h"

struct cds_lfht;

namespace midatlas::bench {

class UrcuMap {
 public:
  static constexpr const char* kName = "urcu-lfht";

  // Registers the current thread as an RCU reader unless it already is (thread 0 of every
  // benchmark is the main thread, which main() registers for the whole run).
  class ThreadScope {
   public:
    ThreadScope();
    ~ThreadScope();
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;

   private:
    bool registered_here_ = false;
  };

  // Whether the read side runs without fences (the kernel offers sys_membarrier); without it
  // every rcu_read_lock/unlock pays a full barrier.
  static bool UsesSysMembarrier() noexcept;

  explicit UrcuMap(std::uint32_t start);
  // The caller's thread must be registered (a ThreadScope lives on it) and no other thread
  // may use the table.
  ~UrcuMap();
  UrcuMap(const UrcuMap&) = delete;
  UrcuMap& operator=(const UrcuMap&) = delete;

  [[nodiscard]] bool ok() const { return table_ != nullptr; }
  bool Associate(void* context, Mid* mid) noexcept;
  [[nodiscard]] void* Map(Mid mid) const noexcept;
  void* MapAndDissociate(Mid mid) noexcept;
  // Resizes the table to fit and waits for the nodes queued for freeing after a grace
  // period to be freed.
  void Settle() noexcept;

 private:
  bool TakeId(Mid* mid) noexcept;
  void ReturnId(Mid mid) noexcept;

  cds_lfht* table_ = nullptr;
  std::mutex free_mu_;
  // Fresh MIDs (lowest first) until a freed one is available: memory follows the high-water
  // mark.
  std::vector<Mid> free_;
  std::uint32_t next_fresh_ = 0;
};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_URCU_PEER_H_
