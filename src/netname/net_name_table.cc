// The NetName table: a bucket array of atomic singly linked chains. Writers (insert, unlink,
// resize) serialize on one mutex; readers walk the chains under one hazard pointer on the
// bucket array (a HazardGuard), which also guards every node unlinked from that array (HD1).
// See docs/NETNAME.md for the invariants NN1..NN7; the atomic operations (nn:N1)..(nn:N16)
// cited below are defined at their accessors in net_name_core.h.
#include "midatlas/net_name_table.h"

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"
#include "netname/connection_id.h"
#include "netname/net_name_core.h"
#include "netname/net_name_key.h"

namespace midatlas {
namespace internal {

namespace {

std::size_t RoundUpToPowerOfTwo(std::size_t n) noexcept {
  std::size_t p = 1;
  while (p < n && p < (std::size_t{1} << 30)) p <<= 1;
  return p;
}

bool KeyMatches(const NetNameNode& node, std::uint64_t hash, std::string_view name,
                const ConnectionId& id, bool case_sensitive) noexcept {
  return node.hash == hash && node.id == id && NamesEqual(node.name, name, case_sensitive);
}

// A reference, unless the node is dead (NN2): (nn:N3).
bool TryAcquire(NetNameNode& node) noexcept { return node.refs.TryAcquire(); }

}  // namespace

void NetNameBuckets::Reclaim(Retirable* self) noexcept {
  auto* buckets = static_cast<NetNameBuckets*>(self);
  NetNameCore* core = buckets->core;
  delete buckets;
  core->MarkOldFreed();  // (nn:N11)
}

NetNameCore::NetNameCore(NetNameTable::Options options) : options_(std::move(options)) {
  PublishCurrent(NewBuckets(RoundUpToPowerOfTwo(options_.initial_buckets), 0));  // (nn:N8)
}

NetNameCore::~NetNameCore() {
  // Destruction is single-threaded by contract.
  assert(live_nodes_.Get() == 0 && "NetNameTable destroyed while a NetNameRef was still held");
  if (old_ != nullptr) {
    // The retired array's reclaim writes old_freed_; wait for it so that it never touches a
    // freed core. No reader of this table remains, so the next scan frees it.
    while (!OldFreed()) {  // (nn:N12)
      HazardDomain::Default().Reclaim();
      std::this_thread::yield();
    }
  }
  for (NetNameNode* node : deferred_) delete node;  // no reader remains: no retirement needed
  delete &CurrentLocked();  // (nn:N13): no other thread remains
}

NetNameBuckets* NetNameCore::NewBuckets(std::size_t count, int parity) {
  auto buckets = std::make_unique<NetNameBuckets>();
  buckets->core = this;
  buckets->mask = count - 1;
  buckets->parity = parity;
  buckets->heads = std::make_unique<ChainLink[]>(count);
  buckets->reclaim = &NetNameBuckets::Reclaim;
  return buckets.release();
}

std::size_t NetNameCore::bucket_count() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return CurrentLocked().mask + 1;  // (nn:N13)
}

template <typename Accept>
NetNameNode* NetNameCore::FindKey(const NetNameBuckets& buckets, Walker walker,
                                  std::uint64_t hash, std::string_view name,
                                  const ConnectionId& id, Accept accept) const noexcept {
  for (ChainCursor at(buckets, hash, walker); at.node() != nullptr; at.Advance()) {
    if (KeyMatches(*at.node(), hash, name, id, options_.case_sensitive) && accept(*at.node())) {
      return at.node();
    }
  }
  return nullptr;
}

NetNameNode* NetNameCore::FindLive(std::uint64_t hash, std::string_view name,
                                   const ConnectionId& id) const noexcept {
  const RecordLease lease;  // the thread's record, or the emergency one under exhaustion
  HazardGuard guard(lease.record());
  const NetNameBuckets& buckets = ProtectCurrent(guard);  // (nn:N1)
  // A dead node (refs 0) with the key is skipped: the live one, if any, is elsewhere (NN3).
  return FindKey(buckets, Walker::kReader, hash, name, id, TryAcquire);
}

NetNameCore::PrefixMatch NetNameCore::LongestMatch(std::string_view path, std::size_t limit,
                                                   const ConnectionId& id) const noexcept {
  const std::uint64_t id_hash = ConnectionIdHash(id);
  const RecordLease lease;
  HazardGuard guard(lease.record());
  const NetNameBuckets& buckets = ProtectCurrent(guard);  // (nn:N1)
  PrefixMatch server_call;  // seen live, no reference taken yet
  PrefixHasher hasher(options_.case_sensitive);
  for (std::size_t start = 0; start < limit;) {
    // The next prefix ends at the next '\\' (after the leading two) or at the limit.
    const std::size_t from = start == 0 ? 2 : start + 1;
    const std::size_t at = path.substr(0, limit).find('\\', from);
    const std::size_t end = at == std::string_view::npos ? limit : at;
    hasher.AddSegment(path.data() + start, end - start);
    start = end;
    // A server call keeps the search going and is only remembered (its reference is taken
    // at the end); a net root ends it with a reference taken (nn:N3). Dead ones are skipped
    // ((nn:N15) reads 0 only for a node that is dead for good).
    NetNameNode* node = FindKey(buckets, Walker::kReader, hasher.Finish(id_hash),
                                path.substr(0, end), id, [](NetNameNode& candidate) {
                                  return candidate.kind == NetNameKind::kServerCall
                                             ? candidate.refs.Snapshot() != 0
                                             : TryAcquire(candidate);
                                });
    if (node == nullptr) continue;
    if (node->kind != NetNameKind::kServerCall) return {.node = node, .length = end};
    server_call = {.node = node, .length = end};
  }
  if (server_call.node != nullptr && TryAcquire(*server_call.node)) return server_call;
  return {};
}

absl::StatusOr<NetNameMatch> NetNameCore::Lookup(std::string_view path,
                                                 const ConnectionId& id) const {
  ParsedPath parsed;
  if (absl::Status status = ParseNetPath(path, /*allow_stream=*/true, &parsed); !status.ok()) {
    return status;
  }
  // Entry names have no stream part, so prefixes are probed up to the first ':' only.
  const std::size_t limit = parsed.has_stream ? parsed.stream_begin : path.size();
  // The guard's scope ended inside LongestMatch (hp:H4): the reference taken, if any, keeps
  // the entry alive from here.
  const PrefixMatch match = LongestMatch(path, limit, id);
  if (match.node == nullptr) {
    return ErrorStatus(absl::StatusCode::kNotFound, [&] {
      return absl::StrCat("no net name is a prefix of ", std::string(path));
    });
  }
  return NetNameMatch{.entry = NetNameRef(match.node), .remaining = path.substr(match.length)};
}

absl::StatusOr<NetNameRef> NetNameCore::FindOrCreate(std::string_view name, NetNameKind kind,
                                                     const ConnectionId& id,
                                                     const AtlasOptions& atlas) {
  ParsedPath parsed;
  if (absl::Status status = ParseNetPath(name, /*allow_stream=*/false, &parsed); !status.ok()) {
    return status;
  }
  const bool is_server = kind == NetNameKind::kServerCall;
  if (is_server ? parsed.components != 1 : parsed.components < 2) {
    return ErrorStatus(absl::StatusCode::kInvalidArgument, [&] {
      return absl::StrCat(is_server ? "a server call name has one component: "
                                    : "a net root name has two or more components: ",
                          std::string(name));
    });
  }
  const std::uint64_t hash = KeyHash(name, id, options_.case_sensitive);
  auto check_kind = [&](NetNameNode* node) -> absl::StatusOr<NetNameRef> {
    NetNameRef ref(node);
    if (node->kind != kind) {
      return ErrorStatus(absl::StatusCode::kFailedPrecondition, [&] {
        return absl::StrCat(std::string(name), " exists as another kind of net name");
      });
    }
    return ref;
  };

  // Lock-free fast path.
  if (NetNameNode* node = FindLive(hash, name, id)) return check_kind(node);

  NetNameRef server_ref;
  if (!is_server) {
    const std::size_t server_end = name.find('\\', 2);
    absl::StatusOr<NetNameRef> server =
        FindOrCreate(name.substr(0, server_end), NetNameKind::kServerCall, id, atlas);
    if (!server.ok()) return server.status();
    server_ref = *std::move(server);
  }

  std::unique_ptr<NetNameNode> fresh;
  try {
    fresh = std::make_unique<NetNameNode>();
    fresh->name.assign(name);
  } catch (const std::bad_alloc&) {
    return ErrorStatus(absl::StatusCode::kResourceExhausted,
                       [] { return std::string("out of memory creating a net name"); });
  }
  if (is_server) {
    absl::StatusOr<MidAtlas> created = MidAtlas::Create(atlas);
    if (!created.ok()) return created.status();
    fresh->atlas.emplace(*std::move(created));
  }
  fresh->reclaim = &NetNameNode::Reclaim;
  fresh->hash = hash;
  fresh->kind = kind;
  fresh->id = id;
  fresh->core = this;

  NetNameNode* existing = nullptr;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    NetNameBuckets& buckets = CurrentLocked();  // (nn:N13)
    // At most one linked node per key (NN3): a live one means another creator won; a dead
    // one (its last releaser waits for the mutex) is unlinked now, and its releaser retires it.
    while (NetNameNode* node = FindKey(buckets, Walker::kWriter, hash, name, id,
                                       [](const NetNameNode&) { return true; })) {
      if (TryAcquire(*node)) {
        existing = node;
        break;
      }
      UnlinkLocked(node);
    }
    if (existing == nullptr) {
      fresh->server_call = server_ref.ReleaseToRaw();
      fresh->linked = true;
      ChainLink& head = buckets.Head(hash);
      fresh->next[static_cast<std::size_t>(buckets.parity)].StoreUnpublished(
          head.ReadLocked());               // (nn:N9), (nn:N14)
      head.PublishInsert(fresh.get());      // (nn:N5)
      size_.Add();                          // (nn:N10)
      live_nodes_.Add();
      MaybeGrowLocked();
    }
  }
  if (existing != nullptr) return check_kind(existing);  // `fresh` was never shared
  return NetNameRef(fresh.release());
}

void NetNameCore::UnlinkLocked(NetNameNode* node) noexcept {
  const NetNameBuckets& buckets = CurrentLocked();  // (nn:N13)
  ChainCursor at(buckets, node->hash, Walker::kWriter);
  while (at.node() != node) {
    assert(at.node() != nullptr && "a linked net name is missing from its chain");
    at.Advance();
  }
  // (nn:N6). The unlinked node's own links never change again (NN5), so readers standing on
  // it keep walking a chain of nodes that were linked during their walk.
  at.link().PublishUnlink(node->next[static_cast<std::size_t>(buckets.parity)].ReadLocked());
  node->linked = false;
  size_.Subtract();  // (nn:N10)
}

std::vector<NetNameNode*> NetNameCore::TakeDeferredLocked() noexcept {
  std::vector<NetNameNode*> ready;
  if (old_ == nullptr || !OldFreed()) return ready;  // (nn:N12)
  old_ = nullptr;
  const NetNameBuckets* guard = &CurrentLocked();  // (nn:N13)
  for (NetNameNode* node : deferred_) {
    node->guard = guard;  // NN6: the only array any reader may still reach it through
  }
  ready.swap(deferred_);  // no allocation
  return ready;
}

void NetNameCore::MaybeGrowLocked() {
  NetNameBuckets* buckets = &CurrentLocked();  // (nn:N13)
  const std::size_t count = buckets->mask + 1;
  if (size_.Get() <= count || count >= (std::size_t{1} << 30)) return;  // (nn:N10)
  // The parity the new array uses is the one the previous old array used: it may be rewritten
  // only once that array is freed and no reader walks it (NN5). A scan usually frees it now
  // (no reader holds it); if one still does, grow on a later insert.
  if (old_ != nullptr && !OldFreed()) {  // (nn:N12)
    HazardDomain::Default().Reclaim();
  }
  for (NetNameNode* node : TakeDeferredLocked()) HazardDomain::Default().Retire(node);
  if (old_ != nullptr) return;
  NetNameBuckets* grown = nullptr;
  try {
    grown = NewBuckets(count * 2, buckets->parity ^ 1);
  } catch (const std::bad_alloc&) {
    return;  // chains stay longer; lookups remain correct
  }
  const auto to = static_cast<std::size_t>(grown->parity);
  for (std::size_t i = 0; i < count; ++i) {  // chain i is the one Head(i) starts
    for (ChainCursor at(*buckets, i, Walker::kWriter); at.node() != nullptr; at.Advance()) {
      NetNameNode* node = at.node();
      ChainLink& head = grown->Head(node->hash);
      node->next[to].StoreUnpublished(head.ReadLocked());  // (nn:N9), (nn:N14)
      head.StoreUnpublished(node);                          // (nn:N9)
    }
  }
  old_ = buckets;
  MarkOldRetired();        // (nn:N16)
  PublishCurrent(grown);   // (nn:N8)
  HazardDomain::Default().Retire(buckets);
}

void NetNameCore::Acquire(NetNameNode* node) noexcept { node->refs.Acquire(); }  // (nn:N7)

void NetNameCore::Release(NetNameNode* node) noexcept {
  if (node->refs.Release()) node->core->LastRelease(node);  // (nn:N4)
}

void NetNameCore::LastRelease(NetNameNode* node) noexcept {
  // The node is dead (NN2): no reader can take a reference, so only this thread touches the
  // atlas; readers still walking past it read only its immutable key and its count.
  if (node->atlas.has_value()) {
    const OutstandingContextHandler& handler = options_.outstanding_context;
    node->atlas->IterateAndRemove([&](void* context) {
      if (handler) handler(node->name, node->id, context);
    });
    node->atlas.reset();
  }
  NetNameNode* server_call = node->server_call;
  node->server_call = nullptr;

  std::vector<NetNameNode*> ready;
  bool deferred = false;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (node->linked) UnlinkLocked(node);
    live_nodes_.Subtract();
    ready = TakeDeferredLocked();
    if (old_ != nullptr) {
      // NN6: a reader of the old array may still reach the node; it is retired once that
      // array is freed.
      try {
        deferred_.push_back(node);
        deferred = true;
      } catch (const std::bad_alloc&) {
        // Rare: wait for the old array here instead (no reader holds it for long).
        while (!OldFreed()) HazardDomain::Default().Reclaim();  // (nn:N12)
      }
    }
    if (!deferred) node->guard = &CurrentLocked();  // NN4; (nn:N13)
  }
  for (NetNameNode* ready_node : ready) HazardDomain::Default().Retire(ready_node);
  if (deferred) {
    HazardDomain::Default().Reclaim();  // usually frees the old array at once
  } else {
    HazardDomain::Default().Retire(node);
  }
  if (server_call != nullptr) Release(server_call);
}

bool NetNameCore::Remove(NetNameNode* node) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (!node->linked) return false;
  UnlinkLocked(node);
  return true;
}

bool NetNameCore::InTable(const NetNameNode* node) {
  const std::lock_guard<std::mutex> lock(mutex_);
  return node->linked;
}

}  // namespace internal

using internal::NetNameCore;
using internal::NetNameNode;

// ------------------------------------------------------------------------------------------
// NetNameRef

NetNameRef::NetNameRef(const NetNameRef& other) noexcept : node_(other.node_) {
  if (node_ != nullptr) NetNameCore::Acquire(node_);
}

NetNameRef& NetNameRef::operator=(const NetNameRef& other) noexcept {
  if (this != &other) {
    if (other.node_ != nullptr) NetNameCore::Acquire(other.node_);
    if (node_ != nullptr) NetNameCore::Release(node_);
    node_ = other.node_;
  }
  return *this;
}

NetNameRef& NetNameRef::operator=(NetNameRef&& other) noexcept {
  if (this != &other) {
    if (node_ != nullptr) NetNameCore::Release(node_);
    node_ = other.node_;
    other.node_ = nullptr;
  }
  return *this;
}

NetNameRef::~NetNameRef() {
  if (node_ != nullptr) NetNameCore::Release(node_);
}

NetNameKind NetNameRef::kind() const noexcept { return node_->kind; }
std::string_view NetNameRef::name() const noexcept { return node_->name; }
const ConnectionId& NetNameRef::connection_id() const noexcept { return node_->id; }

NetNameRef NetNameRef::server_call() const noexcept {
  NetNameNode& server = node_->Connection();
  NetNameCore::Acquire(&server);
  return NetNameRef(&server);
}

MidAtlas* NetNameRef::atlas() const noexcept { return node_->ConnectionAtlas(); }

bool NetNameRef::in_table() const { return node_->core->InTable(node_); }

std::uint32_t NetNameRef::use_count() const noexcept {
  return node_->refs.Snapshot();  // (nn:N15)
}

internal::NetNameNode* NetNameRef::ReleaseToRaw() noexcept {
  NetNameNode* node = node_;
  node_ = nullptr;
  return node;
}

// ------------------------------------------------------------------------------------------
// NetNameTable

absl::StatusOr<std::unique_ptr<NetNameTable>> NetNameTable::Create(Options options) {
  if (absl::StatusOr<MidAtlas> probe = MidAtlas::Create(options.atlas);
      !probe.ok()) {
    return probe.status();
  }
  if (options.initial_buckets == 0) options.initial_buckets = 1;
  try {
    return std::unique_ptr<NetNameTable>(
        new NetNameTable(std::make_unique<NetNameCore>(std::move(options))));
  } catch (const std::bad_alloc&) {
    return internal::ErrorStatus(absl::StatusCode::kResourceExhausted, [] {
      return std::string("out of memory creating a NetName table");
    });
  }
}

NetNameTable::NetNameTable(std::unique_ptr<NetNameCore> core) noexcept : core_(std::move(core)) {}

NetNameTable::~NetNameTable() = default;

absl::StatusOr<NetNameRef> NetNameTable::FindOrCreate(
    std::string_view name, NetNameKind kind, void* request_context,
    const std::optional<AtlasOptions>& server_atlas) {
  absl::StatusOr<ConnectionId> id =
      internal::ResolveConnectionId(core_->options().provider.get(), request_context);
  if (!id.ok()) return id.status();
  return FindOrCreateWithId(name, kind, *id, server_atlas);
}

absl::StatusOr<NetNameRef> NetNameTable::FindOrCreateWithId(
    std::string_view name, NetNameKind kind, const ConnectionId& id,
    const std::optional<AtlasOptions>& server_atlas) {
  return core_->FindOrCreate(name, kind, id, server_atlas.value_or(core_->options().atlas));
}

absl::StatusOr<NetNameMatch> NetNameTable::Lookup(std::string_view path,
                                                  const ConnectionId& id) const {
  return core_->Lookup(path, id);
}

bool NetNameTable::Remove(const NetNameRef& entry) {
  if (!entry || entry.node_->core != core_.get()) return false;
  return core_->Remove(entry.node_);
}

std::size_t NetNameTable::size() const noexcept { return core_->size(); }
std::size_t NetNameTable::bucket_count() const { return core_->bucket_count(); }
bool NetNameTable::case_sensitive() const noexcept { return core_->case_sensitive(); }

}  // namespace midatlas
