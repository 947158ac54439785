#include "midatlas/mid_atlas.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atlas/atlas_core.h"
#include "reclamation/context_hazard.h"

namespace midatlas {

using internal::AtlasCore;
using internal::AtlasResult;

namespace {

// The errors of the hot paths (all in use, out of memory, MID not in use, null context) carry
// a code and no message: such a Status is one word with no heap part, so building, copying
// and destroying it costs nothing and never allocates in these noexcept functions - a late
// duplicate response costs what a lookup does. The code says what happened (mid_atlas.h).
absl::Status ErrorFor(AtlasResult result) noexcept {
  switch (result) {
    case AtlasResult::kAllInUse:
      return {absl::StatusCode::kUnavailable, {}};
    case AtlasResult::kOutOfMemory:
      return {absl::StatusCode::kResourceExhausted, {}};
    case AtlasResult::kCancelled:
      return {absl::StatusCode::kCancelled, {}};
    case AtlasResult::kTimeout:
      return {absl::StatusCode::kDeadlineExceeded, {}};
    case AtlasResult::kPending:
    case AtlasResult::kInvalidArgument:
    case AtlasResult::kOk:
      break;
  }
  return {absl::StatusCode::kInvalidArgument, {}};
}

}  // namespace

MidLayout LayoutForInitialMids(std::uint32_t initial_mids) noexcept {
  int leaf_bits = kMinLeafBits;
  while (leaf_bits < 16 && (std::uint32_t{1} << leaf_bits) < initial_mids) ++leaf_bits;
  const int rest = 16 - leaf_bits;
  // The larger half goes to the directory level: directories are allocated one at a time,
  // the root once, so a smaller root keeps creation cheap.
  return MidLayout{.leaf_bits = leaf_bits, .dir_bits = (rest + 1) / 2, .root_bits = rest / 2};
}

bool IsAllMidsInUse(const absl::Status& status) noexcept {
  return absl::IsUnavailable(status);
}

bool IsOutOfMemory(const absl::Status& status) noexcept {
  return absl::IsResourceExhausted(status);
}

absl::StatusOr<MidAtlas> MidAtlas::Create(AtlasOptions options) {
  const bool bad_max = options.max_mids == 0 || options.max_mids > kMaxMidsLimit;
  const bool bad_initial = options.initial_mids == 0 || options.initial_mids > options.max_mids;
  const bool bad_reserve = !bad_max && options.reserved_mids >= options.max_mids;
  const bool bad_policy = static_cast<std::uint32_t>(options.reuse_policy) > 2;
  const bool bad_gen = options.generation_bits > 15 ||
                       options.max_mids > (1U << (16 - std::min(options.generation_bits, 16U)));
  const internal::AtlasConfig config{
      .max_mids = options.max_mids,
      .initial_mids = options.initial_mids,
      .reserved_mids = options.reserved_mids,
      .excluded = options.excluded_mids.data(),
      .excluded_count = static_cast<std::uint32_t>(options.excluded_mids.size()),
      .generation_bits = options.generation_bits,
      .reuse_policy = static_cast<std::uint32_t>(options.reuse_policy)};
  AtlasResult error = AtlasResult::kInvalidArgument;
  AtlasCore* core = nullptr;
  if (!bad_max && !bad_initial && !bad_reserve && !bad_gen && !bad_policy) {
    core = AtlasCore::New(config, std::move(options.context_destructor), &error);
    if (core != nullptr) return MidAtlas(core);
    if (error == AtlasResult::kOutOfMemory) return ErrorFor(error);
  }
  {
    // The message says which option is wrong; without memory for it, the code alone does.
    try {
      if (bad_max) {
        return absl::InvalidArgumentError(
            absl::StrCat("max_mids must be in 1..", kMaxMidsLimit, ", got ", options.max_mids));
      }
      if (bad_initial) {
        return absl::InvalidArgumentError(absl::StrCat("initial_mids must be in 1..max_mids (",
                                                       options.max_mids, "), got ",
                                                       options.initial_mids));
      }
      if (bad_reserve) {
        return absl::InvalidArgumentError(absl::StrCat("reserved_mids must be below max_mids (",
                                                       options.max_mids, "), got ",
                                                       options.reserved_mids));
      }
      if (bad_policy) {
        return absl::InvalidArgumentError(
            absl::StrCat("reuse_policy must be kCompact, kCyclic or kRandom, got ",
                         static_cast<int>(options.reuse_policy)));
      }
      if (bad_gen) {
        return absl::InvalidArgumentError(
            absl::StrCat("generation_bits must be in 0..15 and max_mids at most "
                         "2^(16 - generation_bits); got generation_bits ",
                         options.generation_bits, ", max_mids ", options.max_mids));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "max_mids (", options.max_mids, ") MIDs cannot be in use at once beside the ",
          options.excluded_mids.size(), " excluded values"));
    } catch (const std::bad_alloc&) {
      return ErrorFor(AtlasResult::kInvalidArgument);
    }
  }
}

MidAtlas& MidAtlas::operator=(MidAtlas&& other) noexcept {
  if (this != &other) {
    AtlasCore::Destroy(core_);
    core_ = other.core_;
    other.core_ = nullptr;
  }
  return *this;
}

MidAtlas::~MidAtlas() { AtlasCore::Destroy(core_); }

absl::StatusOr<Mid> MidAtlas::Associate(void* context) noexcept {
  Mid mid = 0;
  const AtlasResult result = core_->Associate(context, &mid);
  if (result == AtlasResult::kOk) [[likely]] return mid;
  return ErrorFor(result);
}

absl::StatusOr<Mid> MidAtlas::Associate(void* context, AssociateOptions options) noexcept {
  Mid mid = 0;
  const AtlasResult result = core_->Associate(context, &mid, options.use_reserve);
  if (result == AtlasResult::kOk) [[likely]] return mid;
  return ErrorFor(result);
}

void* MidAtlas::Map(Mid mid) const noexcept { return core_->Map(mid); }

absl::StatusOr<void*> MidAtlas::MapAndDissociate(Mid mid) noexcept {
  void* context = nullptr;
  // A discarded MID answers Cancelled and keeps its late context for MapAndDissociateOrLate.
  const AtlasResult result = core_->MapAndDissociate(mid, &context, /*take_late=*/false);
  if (result == AtlasResult::kOk) [[likely]] return context;
  return ErrorFor(result);
}

absl::Status MidAtlas::Reassociate(Mid mid, void* new_context) noexcept {
  const AtlasResult result = core_->Reassociate(mid, new_context);
  if (result == AtlasResult::kOk) [[likely]] return absl::OkStatus();
  return ErrorFor(result);
}

std::size_t MidAtlas::IterateAndRemove(absl::FunctionRef<void(void*)> fn) {
  return core_->IterateAndRemove(fn);
}

// Guarded lookup and deferred destruction (docs/DESIGN.md 10.7): a ContextGuard carries a
// ContextHazard's two parts as opaque pointers.
ContextGuard MidAtlas::MapGuarded(Mid mid) const noexcept {
  internal::ContextHazard hazard;
  ContextGuard guard;
  guard.context_ = hazard.Protect([this, mid] { return core_->Map(mid); });
  guard.slot_ = hazard.slot();
  guard.record_ = hazard.record();
  return guard;
}

void ContextGuard::ReleaseHeld() noexcept {
  internal::ContextHazard(static_cast<internal::Atomic<const void*>*>(slot_),
                          static_cast<internal::HazardRecord*>(record_))
      .Release();
  context_ = nullptr;
  slot_ = nullptr;
  record_ = nullptr;
}

void MidAtlas::Retire(void* context, ContextDestructor destructor) noexcept {
  core_->retired_contexts().Retire(context, std::move(destructor));
}

void MidAtlas::FlushRetired() noexcept { core_->retired_contexts().Flush(); }

std::uint32_t MidAtlas::max_mids() const noexcept { return core_->max_mids(); }
std::uint32_t MidAtlas::initial_mids() const noexcept { return core_->initial_mids(); }
std::uint32_t MidAtlas::reserved_mids() const noexcept { return core_->reserved_mids(); }
std::uint32_t MidAtlas::generation_bits() const noexcept { return core_->generation_bits(); }
ReusePolicy MidAtlas::reuse_policy() const noexcept {
  return static_cast<ReusePolicy>(core_->reuse_policy());
}
MidLayout MidAtlas::layout() const noexcept { return core_->layout(); }
std::uint32_t MidAtlas::mids_in_use() const noexcept { return core_->mids_in_use(); }
AtlasStats MidAtlas::stats() const noexcept { return core_->stats(); }

}  // namespace midatlas

// ---- Quarantine and waiting ------------------------------------------------------------

namespace midatlas {

namespace internal {

// A queued AssociateAsync: the core's Waiter, the callback, and whether its completion has
// started (after which the handle may free the node).
struct AsyncWaitNode {
  Waiter waiter{};
  MidWaitCallback done;
  // Set (wait:W6) by the completion once it no longer touches the node except through its
  // own copy of the callback; the handle reads it (wait:W7)/(wait:W8) before it frees the node.
  Atomic<bool> released{false};

  static void Complete(Waiter* waiter, AtlasResult result, Mid mid) {
    auto* node = reinterpret_cast<AsyncWaitNode*>(waiter);  // `waiter` is the first member
    MidWaitCallback done = std::move(node->done);
    node->released.store(true, std::memory_order_release);  // (wait:W6) release
    if (result == AtlasResult::kOk) {
      done(mid);
    } else {
      done(absl::Status(absl::StatusCode::kCancelled, "the wait for a MID was cancelled"));
    }
  }
};

}  // namespace internal

using internal::AsyncWaitNode;

absl::StatusOr<void*> MidAtlas::Discard(Mid mid, void* late_context) noexcept {
  void* context = nullptr;
  const AtlasResult result = core_->Discard(mid, late_context, &context);
  if (result == AtlasResult::kOk) return context;
  return ErrorFor(result);
}

absl::StatusOr<void*> MidAtlas::ReleaseDiscarded(Mid mid) noexcept {
  void* late = nullptr;
  const AtlasResult result = core_->ReleaseDiscarded(mid, &late);
  if (result == AtlasResult::kOk) return late;
  return ErrorFor(result);
}

absl::StatusOr<Dissociated> MidAtlas::MapAndDissociateOrLate(Mid mid) noexcept {
  void* context = nullptr;
  const AtlasResult result = core_->MapAndDissociate(mid, &context);
  if (result == AtlasResult::kOk) return Dissociated{.context = context, .late = false};
  if (result == AtlasResult::kCancelled) return Dissociated{.context = context, .late = true};
  return ErrorFor(result);
}

std::uint32_t MidAtlas::discarded_mids() const noexcept { return core_->discarded_mids(); }

absl::StatusOr<Mid> MidAtlas::AssociateWait(void* context, absl::Duration timeout,
                                            AssociateOptions options) noexcept {
  internal::WaitDeadline deadline;
  if (timeout != absl::InfiniteDuration()) {
    deadline = std::chrono::steady_clock::now() +
               absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration()));
  }
  Mid mid = 0;
  const AtlasResult result = core_->AssociateWait(context, &mid, options.use_reserve, deadline);
  if (result == AtlasResult::kOk) return mid;
  return ErrorFor(result == AtlasResult::kAllInUse ? AtlasResult::kTimeout : result);
}

absl::StatusOr<MidWait> MidAtlas::AssociateAsync(void* context, MidWaitCallback done,
                                                 AssociateOptions options) noexcept {
  if (context == nullptr || !done) return ErrorFor(AtlasResult::kInvalidArgument);
  MidWait wait;
  Mid mid = 0;
  // Try first, so that a MID to be had now costs no node.
  if (!core_->waiters()) {
    const AtlasResult now = core_->Associate(context, &mid, options.use_reserve);
    if (now == AtlasResult::kOk) {
      wait.mid_ = mid;
      return wait;
    }
    if (now != AtlasResult::kAllInUse) return ErrorFor(now);
  }
  auto* node = new (std::nothrow) AsyncWaitNode{};
  if (node == nullptr) return ErrorFor(AtlasResult::kOutOfMemory);
  node->done = std::move(done);
  const AtlasResult result = core_->AssociateAsync(
      {.context = context, .use_reserve = options.use_reserve,
       .complete = &AsyncWaitNode::Complete},
      &node->waiter, &mid);
  if (result == AtlasResult::kPending) {
    wait.core_ = core_;
    wait.node_ = node;
    return wait;
  }
  delete node;  // never queued
  if (result == AtlasResult::kOk) {
    wait.mid_ = mid;
    return wait;
  }
  return ErrorFor(result);
}

std::uint32_t MidAtlas::waiters() const noexcept { return core_->waiters(); }

MidWait::MidWait(MidWait&& other) noexcept
    : mid_(other.mid_), core_(other.core_), node_(other.node_) {
  other.core_ = nullptr;
  other.node_ = nullptr;
}

MidWait& MidWait::operator=(MidWait&& other) noexcept {
  if (this != &other) {
    Cancel();
    mid_ = other.mid_;
    core_ = other.core_;
    node_ = other.node_;
    other.core_ = nullptr;
    other.node_ = nullptr;
  }
  return *this;
}

MidWait::~MidWait() { Cancel(); }

bool MidWait::Cancel() noexcept {
  if (node_ == nullptr) return false;
  // A completed request (handed a MID, or cancelled by the atlas's destruction) needs no
  // atlas: the handle may outlive it then.
  // (wait:W8) acquire: pairs with (wait:W6).
  const bool cancelled = !node_->released.load(std::memory_order_acquire) &&
                         core_->CancelWait(&node_->waiter);
  // Not cancelled: a hand-off (or the atlas's destruction) completes it; its completion
  // lets go of the node in a few instructions, after the queue's mutex.
  // (wait:W7) acquire: pairs with (wait:W6).
  while (!node_->released.load(std::memory_order_acquire)) std::this_thread::yield();
  delete node_;
  node_ = nullptr;
  core_ = nullptr;
  return cancelled;
}

}  // namespace midatlas
