#include "midatlas/mid_atlas.h"

#include <algorithm>
#include <new>
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
  const bool bad_gen = options.generation_bits > 15 ||
                       options.max_mids > (1U << (16 - std::min(options.generation_bits, 16U)));
  const internal::AtlasConfig config{
      .max_mids = options.max_mids,
      .initial_mids = options.initial_mids,
      .reserved_mids = options.reserved_mids,
      .excluded = options.excluded_mids.data(),
      .excluded_count = static_cast<std::uint32_t>(options.excluded_mids.size()),
      .generation_bits = options.generation_bits};
  AtlasResult error = AtlasResult::kInvalidArgument;
  AtlasCore* core = nullptr;
  if (!bad_max && !bad_initial && !bad_reserve && !bad_gen) {
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
  const AtlasResult result = core_->MapAndDissociate(mid, &context);
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
MidLayout MidAtlas::layout() const noexcept { return core_->layout(); }
std::uint32_t MidAtlas::mids_in_use() const noexcept { return core_->mids_in_use(); }
AtlasStats MidAtlas::stats() const noexcept { return core_->stats(); }

}  // namespace midatlas
