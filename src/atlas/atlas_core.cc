#include "atlas/atlas_core.h"

#include <algorithm>
#include <new>
#include <utility>

#include "instrumentation/chaos.h"
#include "instrumentation/test_hooks.h"

namespace midatlas::internal {

AtlasCore::AtlasCore(std::uint32_t max_mids, std::uint32_t mids_end, std::uint32_t initial_mids,
                     MidLayout layout, ContextDestructor destructor) noexcept
    : map_bound_(mids_end),
      leaf_shift_(static_cast<std::uint32_t>(layout.leaf_bits)),
      slot_mask_((1U << layout.leaf_bits) - 1),
      dir_shift_(static_cast<std::uint32_t>(layout.dir_bits)),
      entry_mask_((1U << layout.dir_bits) - 1),
      leaf_count_((mids_end + (1U << layout.leaf_bits) - 1) >> layout.leaf_bits),
      leaf_capacity_(1U << layout.leaf_bits),
      dir_entries_(1U << layout.dir_bits),
      initial_mids_(initial_mids),
      max_mids_(max_mids),
      mids_end_(mids_end),
      layout_(layout),
      domain_(HazardDomain::Default()),
      destructor_(std::move(destructor)) {
  dir_count_ = (leaf_count_ + dir_entries_ - 1) >> dir_shift_;
}

std::optional<std::uint32_t> CoveredMidsEnd(std::uint32_t max_mids, const Mid* excluded,
                                            std::uint32_t excluded_count) noexcept {
  // Walk the sorted exclusions: each one below the end found so far pushes it up by one.
  std::uint32_t end = max_mids;
  for (std::uint32_t i = 0; i < excluded_count && excluded[i] < end; ++i) ++end;
  if (end > kMaxMidsLimit + 1) return std::nullopt;
  return end;
}

AtlasCore* AtlasCore::New(std::uint32_t max_mids, std::uint32_t initial_mids,
                          ContextDestructor destructor) noexcept {
  return New(AtlasConfig{.max_mids = max_mids, .initial_mids = initial_mids},
             std::move(destructor));
}

AtlasCore* AtlasCore::New(const AtlasConfig& config, ContextDestructor destructor,
                          AtlasResult* error) noexcept {
  AtlasResult ignored = AtlasResult::kOk;
  if (error == nullptr) error = &ignored;
  *error = AtlasResult::kInvalidArgument;
  const std::uint32_t max_mids = config.max_mids;
  const std::uint32_t initial_mids = config.initial_mids;
  const std::uint32_t gen_bits = config.generation_bits;
  if (max_mids == 0 || max_mids > kMaxMidsLimit || initial_mids == 0 ||
      initial_mids > max_mids || config.reserved_mids >= max_mids || gen_bits > 15 ||
      config.reuse_policy > 2 ||
      (config.excluded_count != 0 && config.excluded == nullptr) ||
      max_mids > (1U << (16 - gen_bits))) {
    return nullptr;
  }
  *error = AtlasResult::kOutOfMemory;
  // EX1: the exclusions sorted and distinct, so that the covered end and each leaf's excluded
  // slots are found by a walk or a binary search.
  std::unique_ptr<Mid[]> sorted;
  std::uint32_t distinct = 0;
  if (config.excluded_count != 0) {
    sorted.reset(new (std::nothrow) Mid[config.excluded_count]);
    if (!sorted) return nullptr;
    std::copy_n(config.excluded, config.excluded_count, sorted.get());
    std::sort(sorted.get(), sorted.get() + config.excluded_count);
    distinct = static_cast<std::uint32_t>(
        std::unique(sorted.get(), sorted.get() + config.excluded_count) - sorted.get());
  }
  // With G > 0 an excluded value is one generation of an index; an index is left out (EX1)
  // only when every generation of it is excluded (GN3).
  std::unique_ptr<Mid[]> values;
  std::uint32_t values_count = 0;
  if (gen_bits != 0 && distinct != 0) {
    values = std::move(sorted);
    values_count = distinct;
    const std::uint32_t index_mask = (1U << (16 - gen_bits)) - 1;
    std::unique_ptr<std::uint16_t[]> per_index(new (std::nothrow)
                                                   std::uint16_t[index_mask + 1]());
    sorted.reset(new (std::nothrow) Mid[distinct]);
    if (!per_index || !sorted) return nullptr;
    distinct = 0;
    for (std::uint32_t i = 0; i < values_count; ++i) {
      const std::uint32_t index = values[i] & index_mask;
      if (++per_index[index] == (1U << gen_bits)) sorted[distinct++] = static_cast<Mid>(index);
    }
    std::sort(sorted.get(), sorted.get() + distinct);
  }
  std::optional<std::uint32_t> mids_end = CoveredMidsEnd(max_mids, sorted.get(), distinct);
  if (!mids_end || *mids_end > (1U << (16 - gen_bits))) {
    *error = AtlasResult::kInvalidArgument;
    return nullptr;
  }
  // The cyclic and random policies hand out any index of the index space (10.5): the range
  // covered is all of it, and max_mids only limits how many are held at once.
  const bool picked = config.reuse_policy != 0;
  if (picked) mids_end = 1U << (16 - gen_bits);
  const MidLayout layout = LayoutForInitialMids(initial_mids);
  const std::uint32_t dir_entries = 1U << layout.dir_bits;
  static_assert(sizeof(AtlasCore) % alignof(DirectoryMap) == 0, "directory 0 follows the atlas");
  // Aligned to a cache line: the subordinate count has a line of its own.
  void* memory = ::operator new(sizeof(AtlasCore) + DirectoryMap::AllocationSize(dir_entries),
                                std::align_val_t{alignof(AtlasCore)}, std::nothrow);
  if (memory == nullptr) return nullptr;
  auto* core = new (memory)
      AtlasCore(max_mids, *mids_end, initial_mids, layout, std::move(destructor));
  DirectoryMap::CreateAt(core + 1, 0, dir_entries);
  core->reserved_ = config.reserved_mids;
  core->reuse_policy_ = config.reuse_policy;
  core->admission_ = config.reserved_mids != 0 || picked;
  if (gen_bits != 0) {
    core->gen_bits_ = gen_bits;
    core->gen_mask_ = (1U << gen_bits) - 1;
    core->index_bits_ = 16 - gen_bits;
    core->index_mask_ = (1U << core->index_bits_) - 1;
    core->map_bound_ = 0;  // every MID carries a generation: Map checks it
    core->excluded_values_ = std::move(values);
    core->excluded_values_count_ = values_count;
    core->states_.reset(new (std::nothrow) Atomic<std::uint32_t>[*mids_end]);
    if (!core->states_) {
      Destroy(core);
      return nullptr;
    }
    for (std::uint32_t i = 0; i < *mids_end; ++i) {
      core->states_[i].store(0, std::memory_order_relaxed);  // unshared until New returns
    }
  }
  if (!core->SetExclusions(sorted.get(), distinct) || !core->AllocateInitialMaps()) {
    Destroy(core);
    return nullptr;
  }
  if (picked) {
    core->picker_ = IndexPicker::Create(
        config.reuse_policy == 1 ? IndexPicker::Policy::kCyclic : IndexPicker::Policy::kRandom,
        *mids_end, core->excluded_.get(), core->excluded_count_);
    if (!core->picker_) {
      Destroy(core);
      return nullptr;
    }
    // Values land anywhere in the index space: its pages stay counted in (never returned),
    // and backed once written (10.5 counts what that costs).
    core->region_.CountLeafIn(core->leaf_capacity_ < *mids_end ? core->leaf_capacity_ : *mids_end,
                              *mids_end);
  }
  // The inline leaf-0 dissociate serves MIDs below this; everything else goes out of line.
  core->leaf0_bound_ =
      gen_bits != 0 || picked ? 0 : std::min(core->leaf_capacity_, core->map_bound_);
  *error = AtlasResult::kOk;
  return core;
}

void AtlasCore::Destroy(AtlasCore* core) noexcept {
  if (core == nullptr) return;
  core->~AtlasCore();
  ::operator delete(static_cast<void*>(core), std::align_val_t{alignof(AtlasCore)});
}

bool AtlasCore::SetExclusions(const Mid* sorted, std::uint32_t count) noexcept {
  // Only the exclusions below the covered end matter: no MID at or above it exists.
  while (count != 0 && sorted[count - 1] >= mids_end_) --count;
  if (count == 0) return true;
  excluded_.reset(new (std::nothrow) std::uint32_t[count]);
  if (!excluded_) return false;
  std::copy_n(sorted, count, excluded_.get());
  excluded_count_ = count;
  return true;
}

bool AtlasCore::AllocateInitialMaps() noexcept {
  if (!hints_.Init(leaf_count_)) return false;
  // EX1: a leaf whose every slot is excluded can never hold a MID, so it is never hinted,
  // never grown, and the all-in-use collect (AC6) passes over it.
  if (excluded_count_ != 0) {
    for (std::uint32_t leaf = 1; leaf < leaf_count_; ++leaf) {
      if (UsableSlots(leaf) == 0) hints_.Clear(leaf);  // unshared until New returns
    }
  }
  if (!region_.Init(mids_end_)) return false;
  contexts_ = region_.cells();
  root_[0].store(dir0(), std::memory_order_relaxed);  // unshared until New returns
  leaf0_ = CreateLeaf(0, 0, false);
  if (leaf0_ == nullptr) return false;
  region_.CountLeafIn(0, ValidSlots(0));  // for good, as leaf 0 (AC2)
  // AC2: leaf 0 and directory 0 are counted in for good, so neither is ever frozen.
  dir0()->TryCountLeafIn();
  dir0()->StoreLeafQuiescent(0, leaf0_);  // unshared until New returns
  return true;
}

template <AtlasCore::WalkMode Mode, typename Visit>
bool AtlasCore::ForEachLeaf(Visit&& visit) const {
  std::optional<RecordLease> lease;
  std::optional<HazardGuard> dir_guard;
  std::optional<HazardGuard> leaf_guard;
  if constexpr (Mode == WalkMode::kGuarded) {
    lease.emplace();
    dir_guard.emplace(lease->record());
    leaf_guard.emplace(lease->record());
  }
  for (std::uint32_t d = 0; d < dir_count_; ++d) {
    DirectoryMap* dir = dir0();
    if (d != 0) {
      if constexpr (Mode == WalkMode::kGuarded) {
        dir = dir_guard->Protect(root_[d]);
      } else {
        dir = root_[d].load(std::memory_order_relaxed);  // single-threaded
      }
    }
    for (std::uint32_t entry = 0; entry < dir_entries_; ++entry) {
      const std::uint32_t leaf_index = (d << dir_shift_) + entry;
      if (leaf_index >= leaf_count_) return true;
      LeafMap* leaf = nullptr;
      if (dir != nullptr) {
        if constexpr (Mode == WalkMode::kGuarded) {
          leaf = leaf_guard->Protect(dir->leaf(entry));
        } else {
          leaf = dir->LoadLeafQuiescent(entry);
        }
      }
      if (!visit(leaf_index, dir, leaf)) return false;
    }
  }
  return true;
}

AtlasCore::~AtlasCore() {
  // Retired contexts first (docs/DESIGN.md 10.7, RC5), while the atlas is still whole.
  retired_contexts_.RunAll();
  // Single-threaded by contract. Queued waiters are cancelled first (their completions may
  // still call into the atlas), then the late contexts of discarded MIDs and every context
  // are handed out, so that a destructor callback that still maps a MID sees a consistent
  // (empty) atlas; then the maps are freed.
  CancelAllWaiters();
  DestroyDiscards();
  if (picker_) {
    for (std::uint32_t index = 0; index < mids_end_; ++index) {
      void* context = contexts_[index].exchange(nullptr, std::memory_order_relaxed);
      if (context != nullptr && destructor_) destructor_(context);
    }
  }
  ForEachLeaf<WalkMode::kQuiescent>([this](std::uint32_t, DirectoryMap*, LeafMap* leaf) {
    if (leaf != nullptr) {
      leaf->DrainQuiescent([this](void* context) {
        if (destructor_) destructor_(context);
      });
    }
    return true;
  });
  ForEachLeaf<WalkMode::kQuiescent>([](std::uint32_t, DirectoryMap*, LeafMap* leaf) {
    if (leaf != nullptr) LeafMap::Destroy(leaf);
    return true;
  });
  // Directory 0 is part of this allocation.
  for (std::uint32_t d = 1; d < dir_count_; ++d) {
    DirectoryMap* dir = root_[d].load(std::memory_order_relaxed);  // single-threaded
    if (dir != nullptr) DirectoryMap::Destroy(dir);
  }
}

std::uint32_t AtlasCore::ValidSlots(std::uint32_t leaf) const noexcept {
  return std::min(leaf_capacity_, mids_end_ - (leaf << leaf_shift_));
}

std::pair<const std::uint32_t*, const std::uint32_t*> AtlasCore::ExcludedIn(
    std::uint32_t leaf) const noexcept {
  const std::uint32_t* begin = excluded_.get();
  const std::uint32_t* end = begin + excluded_count_;
  const std::uint32_t first_mid = leaf << leaf_shift_;
  const std::uint32_t* lo = std::lower_bound(begin, end, first_mid);
  const std::uint32_t* hi = std::lower_bound(lo, end, first_mid + ValidSlots(leaf));
  return {lo, hi};
}

std::uint32_t AtlasCore::UsableSlots(std::uint32_t leaf) const noexcept {
  const auto [lo, hi] = ExcludedIn(leaf);
  return ValidSlots(leaf) - static_cast<std::uint32_t>(hi - lo);
}

LeafMap* AtlasCore::CreateLeaf(std::uint32_t leaf_index, std::uint64_t serial,
                               bool first_held) noexcept {
  const std::uint32_t first_mid = leaf_index << leaf_shift_;
  const auto [lo, hi] = ExcludedIn(leaf_index);
  return LeafMap::Create(leaf_index, leaf_capacity_, ValidSlots(leaf_index), serial,
                         contexts_ + first_mid, first_held, lo, hi, first_mid);
}

bool AtlasCore::LeafAttached(std::uint32_t leaf_index) const noexcept {
  if (leaf_index == 0) return true;
  const RecordLease lease;
  HazardGuard guard(lease.record());
  return ProtectLeafOnce(guard, leaf_index).leaf != nullptr;
}

// ----------------------------------------------------------------------------------------
// Associate beyond leaf 0 (the inline part is in atlas_core.h).

AtlasResult AtlasCore::AssociateBeyondLeafZero(void* context, Mid* mid_out) noexcept {
  if (leaf_count_ == 1) return AtlasResult::kAllInUse;
  // Leaves below `from` could not be grown for lack of memory; later candidates may still
  // have free slots, so out-of-memory is reported only when none of them does.
  std::uint32_t from = 0;
  bool out_of_memory = false;
  while (true) {
    const std::uint32_t candidate = hints_.FindFirst(from);
    if (candidate == LeafHints::kNoLeaf) {
      // No hinted leaf; leaf 0 may have had a MID released while we looked elsewhere.
      if (TakeFromLeaf(*leaf0_, context, mid_out)) return AtlasResult::kOk;
      if (out_of_memory) return AtlasResult::kOutOfMemory;
      // A hint can be briefly clear while its leaf has room (between (hints:L1) and
      // (hints:L2) of a popper), so the hints alone do not prove the atlas full: confirm it.
      const Confirmation confirmed = ConfirmAllInUse();
      if (confirmed == Confirmation::kAllInUse) return AtlasResult::kAllInUse;
      if (confirmed == Confirmation::kOutOfMemory) return AtlasResult::kOutOfMemory;
      from = 0;
      continue;
    }
    const TakeResult result = TakeFromSubordinate(candidate, context, mid_out);
    if (result == TakeResult::kTaken) return AtlasResult::kOk;
    if (result == TakeResult::kOutOfMemory) {
      out_of_memory = true;
      from = candidate + 1;
    }
    MIDATLAS_CHAOS_POINT();
  }
}

// RS1: admission against the limits (with a reserve, or a picker). Every associate counts
// itself in before it takes a MID, and out again when the take fails; every dissociate counts
// out after its push. So the count is at least the number of MIDs held at every instant, and
// an associate that finds its limit (max_mids - reserved without the reserve, max_mids with
// it) already admitted fails without taking anything: the held MIDs never exceed a limit, not
// even for an instant. A refused associate never raises the count, so it never makes a
// concurrent one see a limit that the MIDs held do not reach.
AtlasResult AtlasCore::AssociateAdmitted(void* context, Mid* mid_out, bool use_reserve) noexcept {
  const std::uint32_t limit = max_mids_ - (use_reserve ? 0 : reserved_);
  // (atlas:Q0) relaxed: the CAS below validates it.
  std::uint32_t admitted = admitted_.load(std::memory_order_relaxed);
  do {
    if (admitted >= limit) return AtlasResult::kAllInUse;
    // (atlas:Q1) acq_rel CAS: acquire pairs with (atlas:Q2), so a freed MID's push
    // happens-before an admission that counted on its release; release orders our count
    // before our take.
  } while (!admitted_.compare_exchange_weak(admitted, admitted + 1, std::memory_order_acq_rel,
                                            std::memory_order_relaxed));
  MIDATLAS_CHAOS_POINT();
  if (picker_) return TakePicked(context, mid_out);  // admitted: an index is free (IP5)
  AtlasResult result = AtlasResult::kOk;
  if (!TakeFromLeaf(*leaf0_, context, mid_out)) result = AssociateBeyondLeafZero(context, mid_out);
  if (result != AtlasResult::kOk) ReleaseAdmission();
  return result;
}

// The picker's index of an admitted associate: one exists (RS1), so Claim is retried until it
// finds it (a kNone means a Release overlapped the pass: IP5).
AtlasResult AtlasCore::TakePicked(void* context, Mid* mid_out) noexcept {
  std::uint32_t index = picker_->Claim();
  while (index == IndexPicker::kNone) {
    MIDATLAS_CHAOS_POINT();
    index = picker_->Claim();
  }
  *mid_out = PublishAtIndex(index, context);  // (atlas:A2)
  return AtlasResult::kOk;
}

AtlasResult AtlasCore::DissociatePicked(Mid mid, void** context_out) noexcept {
  if (mid >= mids_end_) return AtlasResult::kInvalidArgument;
  void* context = LeafMap::TakeCell(contexts_[mid]);  // (atlas:D1)
  if (context == nullptr) return AtlasResult::kInvalidArgument;
  *context_out = context;
  Settle(ReleasePicked(mid));
  return AtlasResult::kOk;
}

AtlasCore::FreeOutcome AtlasCore::ReleasePicked(std::uint32_t index) noexcept {
  if (waits_.count() != 0) [[unlikely]] {  // (wait:W1)
    if (Waiter* handed = HandOff(index)) return {.handed = handed};
  }
  picker_->Release(index);
  ReleaseAdmission();  // (atlas:Q2), after the release (RS1)
  if (waits_.count() != 0) [[unlikely]] return {.serve_queue = true};  // (wait:W1)
  return {};
}

// AC6: a double collect of every leaf's (object, head word). The object is named by its
// pointer and its serial: a leaf drained, detached, freed and grown again at the same address
// comes back with a new serial, so no two leaf objects share a key. Head words carry a tag
// that changes on every CAS (FS2), so two equal collects mean no leaf changed in between: at
// any instant between them every leaf was attached and showed no free slot, i.e. every MID was
// held in the sense of DESIGN.md 8.1. A leaf that is absent, frozen or has room gets its hint
// set again (so the retry finds it) and the answer is kRoomFound.
AtlasCore::Confirmation AtlasCore::ConfirmAllInUse() noexcept {
  struct LeafState {
    const LeafMap* leaf;
    std::uint64_t serial;
    std::uint64_t head;
    bool operator==(const LeafState&) const = default;
  };
  // Small atlases collect on the stack; larger ones allocate, and out of memory for the
  // check itself is reported as such, never as "all in use".
  constexpr std::uint32_t kOnStack = 64;
  std::array<LeafState, kOnStack> on_stack;
  std::unique_ptr<LeafState[]> on_heap;
  LeafState* seen = on_stack.data();
  if (leaf_count_ > kOnStack) {
    on_heap.reset(new (std::nothrow) LeafState[leaf_count_]);
    if (!on_heap) return Confirmation::kOutOfMemory;
    seen = on_heap.get();
  }
  bool first = true;
  while (true) {
    bool changed = false;
    const bool full = ForEachLeaf<WalkMode::kGuarded>(
        [&](std::uint32_t leaf_index, DirectoryMap*, const LeafMap* leaf) {
          // EX1: a leaf of excluded values only holds no MID and is never grown.
          if (excluded_count_ != 0 && UsableSlots(leaf_index) == 0) return true;
          // (hints:L2)-style re-check through (stack:S0), in the same total order as the
          // pops and pushes that change it.
          const FreeStack::Head head = leaf == nullptr ? FreeStack::Head{} : leaf->stack().Load();
          if (leaf == nullptr || head.free > 0 || head.frozen()) {
            if (leaf_index != 0) hints_.SetIfClear(leaf_index);
            return false;
          }
          const LeafState state{leaf, leaf->serial(), head.Pack()};
          if (!first && !(seen[leaf_index] == state)) changed = true;
          seen[leaf_index] = state;
          return true;
        });
    if (!full) return Confirmation::kRoomFound;
    // Test builds only: a regression test replays, here, what other threads could do
    // between two collects (tests/atlas/hardening_regression_test.cc).
    MIDATLAS_TEST_HOOK(kAllInUseCollected);
    if (!first && !changed) return Confirmation::kAllInUse;
    first = false;
    MIDATLAS_CHAOS_POINT();
  }
}

void AtlasCore::ClearHintIfFull(LeafMap& leaf) noexcept {
  hints_.Clear(leaf.index());  // (hints:L1)
  MIDATLAS_CHAOS_POINT();
  if (kFaultHintNoRecheck) return;  // planted fault (fault_injection.h)
  // (hints:L2) seq_cst re-load of the head through (stack:S0): a push that raced with the
  // clear is either seen here, or its (hints:L3) comes after (hints:L1) and sets the bit.
  const FreeStack::Head head = leaf.stack().Load();
  if (head.free > 0 || head.frozen()) hints_.SetIfClear(leaf.index());
}

AtlasCore::TakeResult AtlasCore::TakeFromSubordinate(std::uint32_t leaf_index, void* context,
                                                     Mid* mid_out) noexcept {
  const RecordLease lease;
  HazardGuard dir_guard(lease.record());
  HazardGuard leaf_guard(lease.record());
  const std::uint32_t dir_index = leaf_index >> dir_shift_;
  DirectoryMap* dir = dir_index == 0 ? dir0() : ProtectOrGrowDirectory(dir_guard, dir_index);
  if (dir == nullptr) return TakeResult::kOutOfMemory;
  LeafMap* leaf = leaf_guard.Protect(dir->leaf(leaf_index & entry_mask_));
  if (leaf == nullptr) return GrowLeaf(leaf_guard, *dir, leaf_index, context, mid_out);
  if (TakeFromLeaf(*leaf, context, mid_out)) return TakeResult::kTaken;
  // A detacher froze this leaf but has not unlinked it yet: finish its work rather than wait
  // for it, which keeps Associate lock-free.
  if (leaf->stack().Load().frozen()) UnlinkFrozenLeaf(*dir, *leaf);
  return TakeResult::kRetry;
}

DirectoryMap* AtlasCore::ProtectOrGrowDirectory(HazardGuard& guard,
                                                std::uint32_t dir_index) noexcept {
  while (true) {
    DirectoryMap* dir = guard.Protect(root_[dir_index]);
    if (dir != nullptr) {
      if (!dir->frozen()) return dir;  // (dir:DS4)
      UnlinkFrozenDirectory(*dir);     // help a stalled detacher (DM2)
      continue;
    }
    DirectoryMap* fresh = DirectoryMap::Create(dir_index, dir_entries_);
    if (fresh == nullptr) return nullptr;
    DirectoryMap* expected = nullptr;
    // (atlas:A4) release CAS: publishes the directory's initialized entries; pairs with
    // (hp:H1) in every walker.
    if (!root_[dir_index].compare_exchange_strong(expected, fresh, std::memory_order_release,
                                                  std::memory_order_relaxed)) {
      DirectoryMap::Destroy(fresh);  // another grower won; nobody saw ours
    }
    MIDATLAS_CHAOS_POINT();
  }
}

AtlasCore::TakeResult AtlasCore::GrowLeaf(HazardGuard& guard, DirectoryMap& dir,
                                          std::uint32_t leaf_index, void* context,
                                          Mid* mid_out) noexcept {
  if (!dir.TryCountLeafIn()) {  // (dir:DS1)
    UnlinkFrozenDirectory(dir);  // frozen under us: help, then retry from the root
    return TakeResult::kRetry;
  }
  // (atlas:P2) relaxed: a serial only has to be unique, and the install (atlas:A3) publishes
  // it with the leaf.
  const std::uint64_t serial = next_leaf_serial_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint32_t first_mid = leaf_index << leaf_shift_;
  const std::uint32_t end_mid = first_mid + ValidSlots(leaf_index);
  // CR1: the leaf's pages of the context region must not be returned while we may write.
  region_.CountLeafIn(first_mid, end_mid);  // (region:P1)
  LeafMap* fresh = CreateLeaf(leaf_index, serial, true);
  if (fresh == nullptr) {
    region_.CountLeafOut(first_mid, end_mid);
    CountLeafOut(dir);
    return TakeResult::kOutOfMemory;
  }
  // The new leaf's first usable slot (slot 0 unless excluded, EX1) is ours from the start,
  // and our MID keeps the leaf from being frozen (FS3) - but a racing dissociate of that MID
  // could drain and retire it as soon as it is visible, so protect it before it is.
  guard.ProtectUnshared(fresh);
  MIDATLAS_CHAOS_POINT();
  CountSubordinateTaken();  // (atlas:C1), before our context is published
  if (dir.InstallLeaf(leaf_index & entry_mask_, fresh)) {  // (atlas:A3)
    // That slot was never on the free stack, so it is ours alone (AC1) and its context is
    // null until this store, which is the association's linearization point.
    *mid_out = PublishAssociation(*fresh, fresh->first_usable_slot(), context);  // (atlas:A2)
    if (fresh->usable_slots() == 1) ClearHintIfFull(*fresh);
    return TakeResult::kTaken;
  }
  CountSubordinateFreed();  // (atlas:C2): the slot was never ours
  // Another grower won; nobody saw ours. Our guard's hazard on it only delays a free of
  // whatever reuses the address until TakeFromSubordinate's guards end.
  LeafMap::Destroy(fresh);
  region_.CountLeafOut(first_mid, end_mid);  // the winner counted itself in too: no return
  CountLeafOut(dir);
  return TakeResult::kRetry;
}

// ----------------------------------------------------------------------------------------
// MapAndDissociate beyond leaf 0 (the inline part is in atlas_core.h).

AtlasResult AtlasCore::DissociateBeyondLeafZero(Mid mid, void** context_out) noexcept {
  const std::uint32_t leaf_index = std::uint32_t{mid} >> leaf_shift_;
  const std::uint32_t slot = mid & slot_mask_;
  FreeOutcome freed;
  {
    const RecordLease lease;
    LeafHazardGuard guard(lease.record());
    const ProtectedLeaf found = ProtectLeafOnce(guard, leaf_index);
    void* context =
        found.leaf == nullptr ? nullptr : found.leaf->TakeContext(slot);  // (atlas:D1)
    if (context == nullptr) return AtlasResult::kInvalidArgument;
    MIDATLAS_CHAOS_POINT();
    freed = ReleaseSlot(found.dir, *found.leaf, slot);
    *context_out = context;
  }
  Settle(freed);  // no hazard held: the completions may call into the atlas
  return AtlasResult::kOk;
}

AtlasCore::FreeOutcome AtlasCore::ReleaseSlot(DirectoryMap* dir, LeafMap& leaf,
                                              std::uint32_t slot) noexcept {
  // WQ2: a MID freed while an eligible waiter is queued goes to the oldest one, the same
  // index under its next generation, whatever the reuse policy; it stays held and admitted.
  if (waits_.count() != 0) [[unlikely]] {  // (wait:W1)
    if (Waiter* handed = HandOff((leaf.index() << leaf_shift_) | slot)) return {.handed = handed};
  }
  if (leaf.index() == 0) {
    leaf.stack().Push(leaf.links(), slot);                // (stack:S2)
    if (admission_) ReleaseAdmission();                   // (atlas:Q2), after the push (RS1)
  } else {
    CountSubordinateFreed();  // (atlas:C2)
    const std::uint32_t free_after = leaf.stack().Push(leaf.links(), slot);  // (stack:S2)
    if (admission_) ReleaseAdmission();  // (atlas:Q2), after the push (RS1)
    if (free_after == 1) hints_.SetIfClear(leaf.index());                    // (hints:L3)
    if (free_after == leaf.usable_slots()) OnLeafDrained(*dir, leaf);
  }
  // WQ1: a waiter queued between the check above and the push may have missed the MID.
  if (waits_.count() != 0) [[unlikely]] return {.serve_queue = true};  // (wait:W1)
  return {};
}

// ----------------------------------------------------------------------------------------
// Generations (G > 0): docs/DESIGN.md 10.3, GN1-GN3.

std::uint32_t AtlasCore::NextGen(std::uint32_t index, std::uint32_t state) const noexcept {
  const std::uint32_t last = GenOf(state);
  const Mid* begin = excluded_values_.get();
  const Mid* end = begin + excluded_values_count_;
  for (std::uint32_t step = 1; step <= gen_mask_ + 1; ++step) {
    const std::uint32_t gen = (last + step) & gen_mask_;
    const auto value = static_cast<Mid>((gen << index_bits_) | index);
    if (!std::binary_search(begin, end, value)) return gen;
  }
  return last;  // unreachable: an index whose every generation is excluded is never taken (GN3)
}

// The associating thread owns the index between its pop and this store: nothing else writes
// a state that is not live (GN1), so its own load needs no RMW.
Mid AtlasCore::PublishGeneration(std::uint32_t index) noexcept {
  Atomic<std::uint32_t>& state = states_[index];
  // (atlas:G1) relaxed: only the owner writes a state that is not live, and the pop
  // (stack:S3) synchronized with the push that ended the previous association.
  const std::uint32_t gen = NextGen(index, state.load(std::memory_order_relaxed));
  MIDATLAS_CHAOS_POINT();
  // (atlas:G2) release: the association's linearization point with G > 0; its context,
  // stored before (atlas:A2), is visible to whoever sees it live - the dissociate's dead mark
  // (atlas:G5), the reassociate's count-in (atlas:G7), the iterator (atlas:G9).
  state.store(EncodeGen(gen) | kLive, std::memory_order_release);
  return static_cast<Mid>((gen << index_bits_) | index);
}

std::uint32_t AtlasCore::LoadStateForCas(std::uint32_t index) const noexcept {
  // (atlas:G4) relaxed: the CAS that follows ((atlas:G5) or (atlas:G7)) validates it.
  return states_[index].load(std::memory_order_relaxed);
}

// Only after its generation RMW does a generational call look the leaf up: the index is held
// (GN1/GN2) until its push, so the leaf that holds it stays attached (FS3) and the one-shot
// protection cannot fail. (A leaf protected before the RMW could be one detached since, whose
// range a new leaf now holds.)
AtlasCore::ProtectedLeaf AtlasCore::LeafOfHeldIndex(HazardSlot& guard,
                                                    std::uint32_t leaf_index) const noexcept {
  const ProtectedLeaf found =
      leaf_index == 0 ? ProtectedLeaf{dir0(), leaf0_} : ProtectLeafOnce(guard, leaf_index);
  MIDATLAS_INVARIANT(found.leaf != nullptr, "GN2", "the leaf of a held index was not attached");
  return found;
}

AtlasResult AtlasCore::DissociateBeyondBound(Mid mid, void** context_out) noexcept {
  if (states_ == nullptr) return AtlasResult::kInvalidArgument;
  const std::uint32_t index = mid & index_mask_;
  if (index >= mids_end_) return AtlasResult::kInvalidArgument;
  const std::uint32_t want = EncodeGen(std::uint32_t{mid} >> index_bits_) | kLive;
  Atomic<std::uint32_t>& state_word = states_[index];
  std::uint32_t state = LoadStateForCas(index);  // (atlas:G4)
  while (true) {
    if ((state & (kGenField | kLive)) != want) return AtlasResult::kInvalidArgument;
    // (atlas:G5) acq_rel CAS, the dead mark: this dissociate's linearization point; of racing
    // dissociates exactly one clears `live` (GN1). Acquire pairs with (atlas:G2).
    if (state_word.compare_exchange_weak(state, state & ~kLive, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
      break;
    }
  }
  MIDATLAS_CHAOS_POINT();
  // Ours alone now; only reassociates counted in before the mark may still replace it. The
  // index is held until its push (GN2), so its leaf - and the context page it covers - stays
  // attached (FS3, CR1): the cell is written directly.
  *context_out = LeafMap::TakeCell(contexts_[index]);  // (atlas:D1)
  Settle(FreeHeldIndex(index));
  return AtlasResult::kOk;
}

AtlasResult AtlasCore::ReassociateGenerational(Mid mid, void* new_context) noexcept {
  const std::uint32_t index = mid & index_mask_;
  if (index >= mids_end_) return AtlasResult::kInvalidArgument;
  const std::uint32_t want = EncodeGen(std::uint32_t{mid} >> index_bits_) | kLive;
  Atomic<std::uint32_t>& state_word = states_[index];
  std::uint32_t state = LoadStateForCas(index);  // (atlas:G4)
  while (true) {
    if ((state & (kGenField | kLive)) != want) return AtlasResult::kInvalidArgument;
    // (atlas:G7) acq_rel CAS: counts this reassociate in while the MID's generation is live;
    // until it counts out, the index is not pushed (GN2), so the cell cannot be reused.
    if (state_word.compare_exchange_weak(state, state + kUserOne, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
      break;
    }
  }
  MIDATLAS_CHAOS_POINT();
  // Counted in, the index is held (GN2): its cell is written directly, as in the dissociate.
  const bool replaced = LeafMap::ReplaceCell(contexts_[index], new_context);  // (atlas:R1)/(atlas:R2)
  // (atlas:G8) acq_rel: count out. Release passes our CAS to the pusher; acquire, when we are
  // the last one out after the dissociate's hand-off (atlas:G6), sees its take.
  const std::uint32_t after = state_word.fetch_sub(kUserOne, std::memory_order_acq_rel) - kUserOne;
  if ((after >> kUsersShift) == 0 && (after & kPushPending) != 0) Settle(ReleaseHeldIndex(index));
  return replaced ? AtlasResult::kOk : AtlasResult::kInvalidArgument;
}

// Shrink policy: the lowest drained subordinate leaf stays attached as a spare, so a workload
// that hovers around a leaf boundary does not allocate and free a map on every crossing; any
// other leaf that drains is detached at once. So after a burst, memory returns to the first
// maps plus at most one spare leaf (and its directory).
void AtlasCore::OnLeafDrained(DirectoryMap& dir, LeafMap& leaf) noexcept {
  const std::uint32_t drained = leaf.index();
  // spare_leaf_ is only a policy hint, so relaxed throughout. Safety never depends on it: a
  // leaf is detached only by the freeze CAS (stack:S4), which fails unless every slot is free.
  std::uint32_t spare = spare_leaf_.load(std::memory_order_relaxed);  // validated by the CAS
  while (true) {
    if (spare == drained) return;
    if (spare != 0 && spare < drained) {
      if (leaf.stack().TryFreeze(leaf.usable_slots())) UnlinkFrozenLeaf(dir, leaf);  // (stack:S4)
      return;
    }
    // (atlas:P1) relaxed CAS: a policy hint, nothing is published through it.
    if (spare_leaf_.compare_exchange_weak(spare, drained, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
      break;
    }
  }
  if (spare == 0) return;
  // `drained` replaced a higher spare: detach that one if it is still drained.
  const RecordLease lease;
  HazardGuard guard(lease.record());
  const ProtectedLeaf old = ProtectLeafOnce(guard, spare);
  if (old.leaf != nullptr && old.leaf->stack().TryFreeze(old.leaf->usable_slots())) {
    UnlinkFrozenLeaf(*old.dir, *old.leaf);
  }
}

void AtlasCore::UnlinkFrozenLeaf(DirectoryMap& dir, LeafMap& leaf) noexcept {
  // The caller protects `leaf` (or its directory, HD1), so the CAS has no ABA; exactly one
  // unlinker wins, and only it retires the leaf.
  if (dir.UnlinkLeaf(leaf.index() & entry_mask_, &leaf)) {  // (atlas:U1)
    MIDATLAS_CHAOS_POINT();
    // HD1: readers that hold `dir` read its entries without protecting the leaf (AC5).
    leaf.guard = &dir;
    const std::uint32_t first_mid = leaf.index() << leaf_shift_;
    const std::uint32_t end_mid = first_mid + leaf.valid_slots();
    domain_.Retire(&leaf);
    CountLeafOut(dir);
    // Every slot was free when the leaf froze (FS3) and no slot can be taken now, so its
    // contexts are all null and stay so: its pages may go back (CR1).
    region_.CountLeafOut(first_mid, end_mid);  // (region:P2)
  }
}

void AtlasCore::CountLeafOut(DirectoryMap& dir) noexcept {
  // Directory 0 holds leaf 0 for good (AC2), so its count never reaches 0.
  if (dir.CountLeafOut() && dir.TryFreezeEmpty()) UnlinkFrozenDirectory(dir);  // (dir:DS2)/(dir:DS3)
}

void AtlasCore::UnlinkFrozenDirectory(DirectoryMap& dir) noexcept {
  DirectoryMap* expected = &dir;
  // (atlas:U2) acq_rel CAS, as (atlas:U1) for leaves: the caller protects `dir`, so no ABA;
  // release orders the freeze (dir:DS3) before the retirement (hp:R0).
  if (root_[dir.index()].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                                 std::memory_order_relaxed)) {
    domain_.Retire(&dir);
  }
}

// ----------------------------------------------------------------------------------------
// Reassociate: lock-free. Linearization point: the successful CAS (atlas:R2), or the load that
// shows the MID free.

AtlasResult AtlasCore::Reassociate(Mid mid, void* new_context) noexcept {
  if (new_context == nullptr) return AtlasResult::kInvalidArgument;
  if (states_ != nullptr) return ReassociateGenerational(mid, new_context);
  if (mid >= mids_end_) return AtlasResult::kInvalidArgument;
  if (picker_) {
    return LeafMap::ReplaceCell(contexts_[mid], new_context) ? AtlasResult::kOk
                                                             : AtlasResult::kInvalidArgument;
  }
  const std::uint32_t leaf_index = std::uint32_t{mid} >> leaf_shift_;
  const std::uint32_t slot = mid & slot_mask_;
  if (leaf_index == 0) {
    return leaf0_->ReplaceContext(slot, new_context) ? AtlasResult::kOk
                                                     : AtlasResult::kInvalidArgument;
  }
  const RecordLease lease;
  LeafHazardGuard guard(lease.record());
  LeafMap* leaf = ProtectLeafOnce(guard, leaf_index).leaf;
  return leaf != nullptr && leaf->ReplaceContext(slot, new_context)
             ? AtlasResult::kOk
             : AtlasResult::kInvalidArgument;
}

// ----------------------------------------------------------------------------------------
// Iterate-and-remove, counts, statistics.

std::size_t AtlasCore::IterateAndRemove(absl::FunctionRef<void(void*)> fn) {
  std::size_t removed = 0;
  for (std::uint32_t leaf_index = 0; leaf_index < leaf_count_; ++leaf_index) {
    // A picker's indexes are anywhere in the range, with no leaf attached beyond leaf 0.
    if (!picker_ && !LeafAttached(leaf_index)) continue;
    const std::uint32_t valid = ValidSlots(leaf_index);
    for (std::uint32_t slot = 0; slot < valid; ++slot) {
      void* context = nullptr;
      Mid mid = MidOf(leaf_index, slot);
      // A discarded MID is freed too, its late context (when not taken yet) handed to `fn`.
      if (const DiscardTable* table = discards(); table != nullptr) {
        const DiscardTable::Word word = table->Load(mid);  // (discard:Q2)
        if (word.discarded() && ReleaseDiscarded(word.mid(), &context) == AtlasResult::kOk) {
          if (context != nullptr) {
            fn(context);
            ++removed;
          }
          continue;
        }
      }
      if (states_ != nullptr) {
        // (atlas:G9) acquire: pairs with (atlas:G2); the generation live now (a stale one
        // only makes the dissociate below answer "not in use", as a racing dissociate would).
        const std::uint32_t state = states_[mid].load(std::memory_order_acquire);
        mid = static_cast<Mid>((GenOf(state) << index_bits_) | mid);
      }
      // Each MID goes through the ordinary dissociate path, so racing dissociates and the
      // shrink policy see nothing special, and no hazard is held while `fn` runs. A MID
      // discarded meanwhile is left to its release.
      if (MapAndDissociate(mid, &context, /*take_late=*/false) == AtlasResult::kOk) {
        fn(context);
        ++removed;
      }
    }
  }
  return removed;
}

// O(1): leaf 0's held slots from its free-stack head, plus the subordinate count. Exact when
// no call is running; while calls run it may be off by the calls in progress (each counts its
// MID between its pop and its publication, or between its take and its push).
std::uint32_t AtlasCore::mids_in_use() const noexcept {
  // With a picker, the admitted count (RS1: at least the held MIDs; exact when no call runs).
  // (atlas:Q4) relaxed: a snapshot of a count; pairs with nothing.
  if (picker_) return admitted_.load(std::memory_order_relaxed);
  // (atlas:C3) relaxed: a snapshot of a count; pairs with nothing.
  return leaf0_->HeldSlots() + subordinate_held_.load(std::memory_order_relaxed);
}

AtlasStats AtlasCore::stats() const noexcept {
  AtlasStats stats;
  // Directory 0 shares the atlas's allocation; the walk below counts it with the others.
  // The context region counts the pages attached leaves cover.
  stats.context_bytes = region_.attached_bytes();
  stats.bytes_attached = sizeof(AtlasCore) + hints_.bytes() + stats.context_bytes +
                         (picker_ ? picker_->bytes() : 0) +
                         (states_ ? std::size_t{mids_end_} * sizeof(Atomic<std::uint32_t>) : 0);
  ForEachLeaf<WalkMode::kGuarded>(
      [&](std::uint32_t leaf_index, const DirectoryMap* dir, const LeafMap* leaf) {
        if (dir != nullptr && (leaf_index & entry_mask_) == 0) {
          ++stats.directory_maps;
          stats.bytes_attached += DirectoryMap::AllocationSize(dir_entries_);
        }
        if (leaf != nullptr) {
          ++stats.leaf_maps;
          stats.mids_in_use += leaf->HeldSlots();
          stats.bytes_attached += LeafMap::AllocationSize(leaf_capacity_);
        }
        return true;
      });
  return stats;
}

}  // namespace midatlas::internal
