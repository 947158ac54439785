// The NetName table's internals: entry nodes, bucket arrays and the core that owns them.
// Algorithms, invariants (NN1..NN7) and the numbered atomic operations (N1..N12) are in
// docs/NETNAME.md; the comments below cite them.
//
//   NetNameCore
//     current_ ──(N1 acquire / N8 release)──> NetNameBuckets  (mask, parity, heads[])
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
#include "reclamation/hazard_domain.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/net_name_table.h"

namespace midatlas::internal {

class NetNameCore;

struct NetNameNode : Retirable {
  // (N2)/(N5)/(N6)/(N9) chain links, one per bucket-array parity.
  std::array<std::atomic<NetNameNode*>, 2> next{};
  // References held by NetNameRefs (and by the net roots of a server call). 0 is final (NN2).
  std::atomic<std::uint32_t> refs{1};
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
  std::unique_ptr<std::atomic<NetNameNode*>[]> heads;

  // The head of the chain that keys with `hash` belong to.
  [[nodiscard]] std::atomic<NetNameNode*>& Head(std::uint64_t hash) const noexcept {
    return heads[hash & mask];
  }

  static void Reclaim(Retirable* self) noexcept;
};

// Who walks a chain: a reader (no lock; a hazard on the array, NN4) or a writer holding
// the core's mutex (NN1). It decides the order of the walk's loads.
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
  [[nodiscard]] std::atomic<NetNameNode*>& link() const noexcept { return *link_; }
  // The node after node(), which must not be null.
  void Advance() noexcept {
    link_ = &node_->next[parity_];
    node_ = Load(*link_);
  }

 private:
  [[nodiscard]] NetNameNode* Load(const std::atomic<NetNameNode*>& link) const noexcept {
    if (walker_ == Walker::kReader) {
      // (N2) acquire: pairs with the release stores (N5) insert, (N6) unlink and, through
      // (N8), the chaining of a resize (N9): the node's fields are visible before we read them.
      return link.load(std::memory_order_acquire);
    }
    return link.load(std::memory_order_relaxed);  // writers: every link is stored under mutex_
  }

  std::size_t parity_;
  Walker walker_;
  std::atomic<NetNameNode*>* link_;
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

  [[nodiscard]] std::size_t size() const noexcept {
    return size_.load(std::memory_order_relaxed);  // statistic only
  }
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

  const NetNameTable::Options options_;
  std::atomic<NetNameBuckets*> current_{nullptr};
  std::atomic<std::size_t> size_{0};
  // (N11) set when the retired old bucket array is freed; pairs with (N12).
  std::atomic<bool> old_freed_{true};
  mutable std::mutex mutex_;
  NetNameBuckets* old_ = nullptr;            // guarded by mutex_
  std::vector<NetNameNode*> deferred_;        // guarded by mutex_
  std::atomic<std::size_t> live_nodes_{0};   // statistic / destruction check only
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_NETNAME_NET_NAME_CORE_H_
