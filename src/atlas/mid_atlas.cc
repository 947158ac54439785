#include "midatlas/mid_atlas.h"

#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atlas/atlas_core.h"

namespace midatlas {

using internal::AtlasCore;
using internal::AtlasResult;

namespace {

// The errors of the hot paths are built once and copied: copying a Status shares its
// message (a reference count), so a full atlas or a late duplicate response never allocates
// in these noexcept functions. Leaked on purpose: calls may still run during static
// destruction.
struct HotPathErrors {
  absl::Status all_in_use = absl::UnavailableError("all MIDs are in use");
  absl::Status out_of_memory =
      absl::ResourceExhaustedError("out of memory while growing the MID atlas");
  absl::Status null_context = absl::InvalidArgumentError("context must not be null");
  absl::Status mid_not_in_use = absl::InvalidArgumentError("MID is not in use");
};

const HotPathErrors& Errors() {
  // NOLINTNEXTLINE(bugprone-unhandled-exception-at-new): built on the first error; failing
  // to allocate a few dozen bytes then is fatal anyway.
  static const HotPathErrors* const kErrors = new HotPathErrors();
  return *kErrors;
}

const absl::Status& ErrorFor(AtlasResult result, const absl::Status& invalid) noexcept {
  switch (result) {
    case AtlasResult::kAllInUse:
      return Errors().all_in_use;
    case AtlasResult::kOutOfMemory:
      return Errors().out_of_memory;
    case AtlasResult::kInvalidArgument:
    case AtlasResult::kOk:
      break;
  }
  return invalid;
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
  if (options.max_mids == 0 || options.max_mids > kMaxMidsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_mids must be in 1..", kMaxMidsLimit, ", got ", options.max_mids));
  }
  if (options.initial_mids == 0 || options.initial_mids > options.max_mids) {
    return absl::InvalidArgumentError(absl::StrCat("initial_mids must be in 1..max_mids (",
                                                   options.max_mids, "), got ",
                                                   options.initial_mids));
  }
  // Built before the first call can fail, so that no later error allocates.
  static_cast<void>(Errors());
  AtlasCore* core = AtlasCore::New(options.max_mids, options.initial_mids,
                                   std::move(options.context_destructor));
  if (core == nullptr) return absl::ResourceExhaustedError("out of memory creating a MID atlas");
  return MidAtlas(core);
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
  return ErrorFor(result, Errors().null_context);
}

void* MidAtlas::Map(Mid mid) const noexcept { return core_->Map(mid); }

absl::StatusOr<void*> MidAtlas::MapAndDissociate(Mid mid) noexcept {
  void* context = nullptr;
  const AtlasResult result = core_->MapAndDissociate(mid, &context);
  if (result == AtlasResult::kOk) [[likely]] return context;
  return ErrorFor(result, Errors().mid_not_in_use);
}

absl::Status MidAtlas::Reassociate(Mid mid, void* new_context) noexcept {
  const AtlasResult result = core_->Reassociate(mid, new_context);
  if (result == AtlasResult::kOk) [[likely]] return absl::OkStatus();
  return new_context == nullptr ? Errors().null_context : Errors().mid_not_in_use;
}

std::size_t MidAtlas::IterateAndRemove(absl::FunctionRef<void(void*)> fn) {
  return core_->IterateAndRemove(fn);
}

std::uint32_t MidAtlas::max_mids() const noexcept { return core_->max_mids(); }
std::uint32_t MidAtlas::initial_mids() const noexcept { return core_->initial_mids(); }
MidLayout MidAtlas::layout() const noexcept { return core_->layout(); }
std::uint32_t MidAtlas::mids_in_use() const noexcept { return core_->mids_in_use(); }
AtlasStats MidAtlas::stats() const noexcept { return core_->stats(); }

}  // namespace midatlas
