#include "peers/urcu_peer.h"

// Inlines rcu_read_lock/unlock (otherwise a call into liburcu each): the read side at its
// best, which is the comparison that matters.
#define _LGPL_SOURCE
#include <urcu.h>
#include <urcu/rculfhash.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace midatlas::bench {
namespace {

// Standard layout with the hash-table node first, so the table's node pointer converts back
// to the Node (and the rcu_head by its offset).
struct Node {
  cds_lfht_node table_node;
  rcu_head rcu;
  void* context;
  Mid mid;
};
static_assert(offsetof(Node, table_node) == 0);

Node* NodeOf(cds_lfht_node* node) { return reinterpret_cast<Node*>(node); }

void FreeNode(rcu_head* head) {
  delete reinterpret_cast<Node*>(reinterpret_cast<char*>(head) - offsetof(Node, rcu));
}

// cds_lfht splits on the low bits of the hash; a 64-bit finalizer (murmur3's fmix64) spreads
// nearby MIDs, as a production table keyed by small integers would.
unsigned long Hash(Mid mid) {
  std::uint64_t h = mid;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<unsigned long>(h);
}

int Match(cds_lfht_node* node, const void* key) {
  return NodeOf(node)->mid == *static_cast<const Mid*>(key) ? 1 : 0;
}

thread_local bool t_registered = false;

}  // namespace

UrcuMap::ThreadScope::ThreadScope() {
  if (t_registered) return;
  rcu_register_thread();
  t_registered = true;
  registered_here_ = true;
}

UrcuMap::ThreadScope::~ThreadScope() {
  if (!registered_here_) return;
  rcu_unregister_thread();
  t_registered = false;
}

bool UrcuMap::UsesSysMembarrier() noexcept { return urcu_memb_has_sys_membarrier != 0; }

UrcuMap::UrcuMap(std::uint32_t start) {
  // Bucket counts must be powers of two; start sizes the table like RDBSS's
  // MidsAllocatedAtStart sizes its first map. The table may shrink back to that size.
  const unsigned long initial = std::bit_ceil(start < 2 ? 2UL : static_cast<unsigned long>(start));
  table_ = cds_lfht_new(initial, initial, std::bit_ceil(static_cast<unsigned long>(kMaxMids)),
                        CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, nullptr);
}

UrcuMap::~UrcuMap() {
  if (table_ == nullptr) return;
  std::vector<Node*> leftovers;
  rcu_read_lock();
  cds_lfht_iter iter;
  cds_lfht_first(table_, &iter);
  for (cds_lfht_node* node = cds_lfht_iter_get_node(&iter); node != nullptr;
       cds_lfht_next(table_, &iter), node = cds_lfht_iter_get_node(&iter)) {
    if (cds_lfht_del(table_, node) == 0) leftovers.push_back(NodeOf(node));
  }
  rcu_read_unlock();
  synchronize_rcu();
  for (Node* node : leftovers) delete node;
  rcu_barrier();  // call_rcu callbacks still queued would free nodes after the table is gone
  cds_lfht_destroy(table_, nullptr);
}

bool UrcuMap::TakeId(Mid* mid) noexcept {
  std::lock_guard<std::mutex> lock(free_mu_);
  if (!free_.empty()) {
    *mid = free_.back();
    free_.pop_back();
    return true;
  }
  if (next_fresh_ >= kMaxMids) return false;
  *mid = static_cast<Mid>(next_fresh_++);
  return true;
}

void UrcuMap::ReturnId(Mid mid) noexcept {
  std::lock_guard<std::mutex> lock(free_mu_);
  free_.push_back(mid);
}

bool UrcuMap::Associate(void* context, Mid* mid) noexcept {
  Mid id = 0;
  if (!TakeId(&id)) return false;
  Node* node = new (std::nothrow) Node{};
  if (node == nullptr) {
    ReturnId(id);
    return false;
  }
  node->context = context;
  node->mid = id;
  cds_lfht_node_init(&node->table_node);
  // cds_lfht_add, not add_unique: the MID is this thread's alone until it is returned.
  rcu_read_lock();
  cds_lfht_add(table_, Hash(id), &node->table_node);
  rcu_read_unlock();
  *mid = id;
  return true;
}

void* UrcuMap::Map(Mid mid) const noexcept {
  rcu_read_lock();
  cds_lfht_iter iter;
  cds_lfht_lookup(table_, Hash(mid), Match, &mid, &iter);
  cds_lfht_node* node = cds_lfht_iter_get_node(&iter);
  // A node's fields never change after cds_lfht_add published it.
  void* context = node == nullptr ? nullptr : NodeOf(node)->context;
  rcu_read_unlock();
  return context;
}

void* UrcuMap::MapAndDissociate(Mid mid) noexcept {
  rcu_read_lock();
  cds_lfht_iter iter;
  cds_lfht_lookup(table_, Hash(mid), Match, &mid, &iter);
  cds_lfht_node* found = cds_lfht_iter_get_node(&iter);
  // Of racing removals exactly one cds_lfht_del succeeds: that one owns the node.
  if (found == nullptr || cds_lfht_del(table_, found) != 0) {
    rcu_read_unlock();
    return nullptr;
  }
  rcu_read_unlock();
  Node* node = NodeOf(found);
  void* context = node->context;
  // Readers that found the node before the removal may still read it: free it after a grace
  // period. The MID itself can be reused at once, since lookups skip removed nodes.
  call_rcu(&node->rcu, FreeNode);
  ReturnId(mid);
  return context;
}

void UrcuMap::Settle() noexcept {
  // Auto-resizing runs on liburcu's worker thread and lags a burst of insertions (on a loaded
  // machine by seconds, with hash chains thousands long meanwhile). A server's table that has
  // been at one size for a while has been resized to fit; do that now, synchronously.
  long split_count_before = 0;
  unsigned long count = 0;
  long split_count_after = 0;
  cds_lfht_count_nodes(table_, &split_count_before, &count, &split_count_after);
  cds_lfht_resize(table_, std::bit_ceil(count < 2 ? 2UL : count));
  rcu_barrier();  // the frees queued by call_rcu
}

}  // namespace midatlas::bench
