// The NetName table's internals: entry nodes, bucket arrays and the core that owns them.
// Algorithms and invariants (NN1..NN7) are in docs/NETNAME.md, with a table of the atomic
// operations (nn:N1)..(nn:N16). Each shared atomic sits behind a tiny accessor that fixes its
// memory order, and each operation's label is defined (label, then order) at that accessor:
//   ChainLink        (nn:N2) (nn:N5) (nn:N6) (nn:N9) (nn:N14)   heads[] and next[]
//   RefCount         (nn:N3) (nn:N4) (nn:N7) (nn:N15)           NetNameNode::refs
//   RelaxedCounter   (nn:N10)                                   size_, live_nodes_
//   NetNameCore      (nn:N1) (nn:N8) (nn:N13) current_; (nn:N11) (nn:N12) (nn:N16) old_freed_
//
//   NetNameCore
//     current_ ──(nn:N1) / (nn:N8)──> NetNameBuckets  (mask, parity, heads[])
//                            heads[i] ──> node ──next[parity]──> node ──> null
//     old_     (mutex)   the previous bucket array, retired but perhaps not yet freed
//     deferred_ (mutex)  dead nodes waiting for old_ to be freed before they may be retired
//
//   NetNameNode (one allocation; key fields immutable once published)
//   +-----------+------------+------+------+------+----+--------+-------------+-------+------+
//   | Retirable | next[2]    | refs | hash | kind | id | linked | server_call | atlas | name |
//   +-----------+------------+------+------+------+----+--------+-------------+-------+------+
//     next[p] is the link in the bucket array of parity p, so that a resize can chain every
//     node into a new array while readers still walk the old one (NN5).
#ifndef MIDATLAS_SRC_NETNAME_NET_NAME_CORE_H_
#define MIDATLAS_SRC_NETNAME_NET_NAME_CORE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "instrumentation/atomic.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/net_name_table.h"

namespace midatlas::internal {

class NetNameCore;
struct NetNameNode;

// A chain link: a bucket head or a node's next[p]. Writers store links only while they hold
// the core's mutex (NN1); readers load them with no lock.
class ChainLink {
 public:
  // A reader's load, in a lock-free walk.
  [[nodiscard]] NetNameNode* Read() const noexcept {
    // (nn:N2) acquire: pairs with the release stores (nn:N5) and (nn:N6), and with (nn:N8),
    // which publishes the (nn:N9) links of a resize: the node's fields are visible to the
    // reader before it reads them.
    return node_.load(std::memory_order_acquire);
  }
  // A writer's load.
  [[nodiscard]] NetNameNode* ReadLocked() const noexcept {
    // (nn:N14) relaxed: every link is stored under the mutex, which the caller holds (NN1).
    return node_.load(std::memory_order_relaxed);
  }
  // Makes `node`, initialized, the first node of a chain that readers walk.
  void PublishInsert(NetNameNode* node) noexcept {
    // (nn:N5) release: publishes the node's fields with the pointer; pairs with (nn:N2).
    node_.store(node, std::memory_order_release);
  }
  // Points the link past the node being unlinked, at its `successor`.
  void PublishUnlink(NetNameNode* successor) noexcept {
    // (nn:N6) release: pairs with (nn:N2). The successor's fields were published earlier and
    // happen-before this store through the mutex, so a reader that reaches the successor
    // through this link sees them too.
    node_.store(successor, std::memory_order_release);
  }
  // A store into a link that no reader can reach yet.
  void StoreUnpublished(NetNameNode* node) noexcept {
    // (nn:N9) relaxed: a later release publishes the link: a new node's own link goes out
    // with the node at (nn:N5); a resize's links (the new array's heads, the next[] of the
    // new array's parity, which no reader walks (NN5)) go out with the array at (nn:N8).
    node_.store(node, std::memory_order_relaxed);
  }

 private:
  Atomic<NetNameNode*> node_{nullptr};
};

// An entry's reference count: 1 at creation; 0 is final (NN2).
class RefCount {
 public:
  // Increment-if-not-zero: false once the count has reached 0.
  [[nodiscard]] bool TryAcquire() noexcept {
    std::uint32_t refs = Snapshot();
    while (refs != 0) {
      // (nn:N3) relaxed: the entry's key, kind and atlas were set before the node was
      // published ((nn:N5), or (nn:N9) with (nn:N8)) and the finder loaded it at (nn:N2); the
      // count publishes no data of its own.
      if (refs_.compare_exchange_weak(refs, refs + 1, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  // One more reference, taken by a holder of one.
  void Acquire() noexcept {
    // (nn:N7) relaxed: the caller holds a reference, so the count cannot reach 0 meanwhile,
    // and it publishes nothing.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  // Drops one reference; true for the last one, whose caller tears the entry down.
  [[nodiscard]] bool Release() noexcept {
    // (nn:N4) acq_rel: release orders this holder's use of the entry (and its atlas) before
    // the teardown; acquire makes every other holder's release visible to the last one.
    return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }
  // The count at some instant.
  [[nodiscard]] std::uint32_t Snapshot() const noexcept {
    // (nn:N15) relaxed: decides nothing on its own: it starts (nn:N3), whose CAS checks it;
    // it lets a walk skip a node already dead (0 is final, so a 0 is never stale); it is
    // what use_count() reports.
    return refs_.load(std::memory_order_relaxed);
  }

 private:
  Atomic<std::uint32_t> refs_{1};
};

// A count that only reports or triggers: the entries in the table (and the growth trigger),
// the live nodes (the destruction check). Nothing is read through it.
class RelaxedCounter {
 public:
  // (nn:N10) relaxed, all three: no other data is published or read through the count.
  void Add() noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  void Subtract() noexcept { count_.fetch_sub(1, std::memory_order_relaxed); }
  [[nodiscard]] std::size_t Get() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  Atomic<std::size_t> count_{0};
};

struct NetNameNode : Retirable {
  // Chain links, one per bucket-array parity (NN5).
  std::array<ChainLink, 2> next{};
  // References held by NetNameRefs (and by the net roots of a server call).
  RefCount refs;
  std::uint64_t hash = 0;
  NetNameKind kind = NetNameKind::kServerCall;
  ConnectionId id;
  bool linked = false;  // guarded by core->mutex_: in the current bucket array
  NetNameCore* core = nullptr;
  NetNameNode* server_call = nullptr;  // net roots: one reference held; server calls: null
  // Server calls only; drained at the last release. mutable: shared by every reference,
  // and the atlas synchronizes itself.
  mutable std::optional<MidAtlas> atlas;
  std::string name;

  // The server call this entry belongs to: the one a net root holds, or a server call itself.
  [[nodiscard]] NetNameNode& Connection() noexcept {
    return server_call != nullptr ? *server_call : *this;
  }
  // The connection's atlas; null only once the server call's last release drained it.
  [[nodiscard]] MidAtlas* ConnectionAtlas() noexcept {
    std::optional<MidAtlas>& connection_atlas = Connection().atlas;
    return connection_atlas.has_value() ? &*connection_atlas : nullptr;
  }

  static void Reclaim(Retirable* self) noexcept { delete static_cast<NetNameNode*>(self); }
};

struct NetNameBuckets : Retirable {
  NetNameCore* core = nullptr;
  std::size_t mask = 0;
  int parity = 0;
  std::unique_ptr<ChainLink[]> heads;

  // The head of the chain that keys with `hash` belong to.
  [[nodiscard]] ChainLink& Head(std::uint64_t hash) const noexcept { return heads[hash & mask]; }

  static void Reclaim(Retirable* self) noexcept;
};

// Who walks a chain: a reader (no lock; a hazard on the array, NN4) or a writer holding
// the core's mutex (NN1). It decides which ChainLink load the walk makes.
enum class Walker : std::uint8_t { kReader, kWriter };

// The one walk over a bucket chain, used by every chain operation: lookups, find-or-create,
// unlink and resize. At each step it stands on a node and knows the link that points to it
// (the bucket head or the previous node's next[parity]), so a writer can unlink that node.
class ChainCursor {
 public:
  // The chain of `buckets` that keys with `hash` belong to.
  ChainCursor(const NetNameBuckets& buckets, std::uint64_t hash, Walker walker) noexcept
      : parity_(static_cast<std::size_t>(buckets.parity)),
        walker_(walker),
        link_(&buckets.Head(hash)),
        node_(Load(*link_)) {}

  // The node the cursor stands on; null past the end of the chain.
  [[nodiscard]] NetNameNode* node() const noexcept { return node_; }
  // The link that points to node().
  [[nodiscard]] ChainLink& link() const noexcept { return *link_; }
  // The node after node(), which must not be null.
  void Advance() noexcept {
    link_ = &node_->next[parity_];
    node_ = Load(*link_);
  }

 private:
  [[nodiscard]] NetNameNode* Load(const ChainLink& link) const noexcept {
    return walker_ == Walker::kReader ? link.Read() : link.ReadLocked();  // (nn:N2) / (nn:N14)
  }

  std::size_t parity_;
  Walker walker_;
  ChainLink* link_;
  NetNameNode* node_;
};

// The C API's way in and out of a NetNameRef: a handle is the node, carrying the one
// reference the NetNameRef it came from held. NetNameRef keeps these forms private.
struct NetNameRefAccess {
  // Gives up `ref`'s reference without releasing it.
  static NetNameNode* ReleaseToRaw(NetNameRef&& ref) noexcept { return ref.ReleaseToRaw(); }
  // A NetNameRef owning the one reference `node` carries.
  static NetNameRef AdoptRaw(NetNameNode* node) noexcept { return NetNameRef::AdoptRaw(node); }
};

class NetNameCore {
 public:
  explicit NetNameCore(NetNameTable::Options options);
  ~NetNameCore();
  NetNameCore(const NetNameCore&) = delete;
  NetNameCore& operator=(const NetNameCore&) = delete;

  absl::StatusOr<NetNameRef> FindOrCreate(std::string_view name, NetNameKind kind,
                                          const ConnectionId& id, const AtlasOptions& atlas);
  [[nodiscard]] absl::StatusOr<NetNameMatch> Lookup(std::string_view path,
                                                    const ConnectionId& id) const;
  bool Remove(NetNameNode* node);
  bool InTable(const NetNameNode* node);

  static void Acquire(NetNameNode* node) noexcept;
  // Drops one reference; the last one takes the node out of the table and tears it down.
  static void Release(NetNameNode* node) noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return size_.Get(); }
  [[nodiscard]] std::size_t bucket_count() const;
  [[nodiscard]] bool case_sensitive() const noexcept { return options_.case_sensitive; }
  [[nodiscard]] const NetNameTable::Options& options() const noexcept { return options_; }

 private:
  friend struct NetNameBuckets;

  // The first node of the key's chain in `buckets` that has the key and that `accept` takes
  // (it may take a reference); null when none does.
  template <typename Accept>
  NetNameNode* FindKey(const NetNameBuckets& buckets, Walker walker, std::uint64_t hash,
                       std::string_view name, const ConnectionId& id,
                       Accept accept) const noexcept;
  // An entry that matched a prefix of a path, and the prefix's length.
  struct PrefixMatch {
    NetNameNode* node = nullptr;
    std::size_t length = 0;
  };
  // Lookup's walk over the prefixes of `path` that end before `limit`: the longest match
  // (a net root ends the walk), with a reference taken; a null node when none matches.
  // Lock-free: protects the current array for the walk.
  PrefixMatch LongestMatch(std::string_view path, std::size_t limit,
                           const ConnectionId& id) const noexcept;
  // The live node with the key, with a reference taken (NN2); null when there is none.
  // Lock-free: protects the current array for the walk.
  NetNameNode* FindLive(std::uint64_t hash, std::string_view name,
                        const ConnectionId& id) const noexcept;
  void UnlinkLocked(NetNameNode* node) noexcept;
  void MaybeGrowLocked();
  // Once the old bucket array is freed: the deferred nodes, guarded by the current array and
  // ready to retire (NN6). Empty otherwise.
  std::vector<NetNameNode*> TakeDeferredLocked() noexcept;
  void LastRelease(NetNameNode* node) noexcept;
  NetNameBuckets* NewBuckets(std::size_t count, int parity);

  // The current array for a lock-free walk, protected by `guard` (NN4).
  [[nodiscard]] const NetNameBuckets& ProtectCurrent(HazardGuard& guard) const noexcept {
    // (nn:N1) acquire: HazardGuard::Protect, (hp:H1)..(hp:H3); pairs with (nn:N8). The hazard
    // also guards every node retired with this array as its guard (NN4).
    return *guard.Protect(current_);
  }
  // The current array, for a holder of mutex_ (or the single-threaded constructor and
  // destructor).
  [[nodiscard]] NetNameBuckets& CurrentLocked() const noexcept {
    // (nn:N13) relaxed: current_ is stored only under mutex_, which the caller holds (NN1).
    return *current_.load(std::memory_order_relaxed);
  }
  // Makes `buckets`, initialized, the array that walks start from.
  void PublishCurrent(NetNameBuckets* buckets) noexcept {
    // (nn:N8) release: publishes the array and every (nn:N9) link chained into it; pairs
    // with (nn:N1).
    current_.store(buckets, std::memory_order_release);
  }

  // Whether the retired old array has been freed, so that no reader walks it any more.
  [[nodiscard]] bool OldFreed() const noexcept {
    // (nn:N12) acquire: pairs with (nn:N11): every reader's walk of the old array
    // happens-before what the caller does next: rewrite that array's link parity (NN5), or
    // retire the nodes deferred on it (NN6).
    return old_freed_.load(std::memory_order_acquire);
  }
  // Called by the old array's reclaim, after the free.
  void MarkOldFreed() noexcept {
    // (nn:N11) release: every reader's walk of the array happened-before the scan that freed
    // it ((hp:H4), (hp:R3)); pass that on to the writer that reads (nn:N12).
    old_freed_.store(true, std::memory_order_release);
  }
  // Called under mutex_ when a resize retires the old array.
  void MarkOldRetired() noexcept {
    // (nn:N16) relaxed: stored before the array's retirement (hp:R0), which the reclaimer
    // acquires (hp:R1) before it frees the array and stores (nn:N11); so this store comes
    // first in old_freed_'s order, and writers read it under mutex_.
    old_freed_.store(false, std::memory_order_relaxed);
  }

  const NetNameTable::Options options_;
  Atomic<NetNameBuckets*> current_{nullptr};  // (nn:N1) (nn:N8) (nn:N13) only
  RelaxedCounter size_;                           // entries linked in the current array
  Atomic<bool> old_freed_{true};              // (nn:N11) (nn:N12) (nn:N16) only
  mutable std::mutex mutex_;
  NetNameBuckets* old_ = nullptr;            // guarded by mutex_
  std::vector<NetNameNode*> deferred_;        // guarded by mutex_
  RelaxedCounter live_nodes_;                // the destruction check only
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_NETNAME_NET_NAME_CORE_H_
