#include "midatlas/mid_atlas.h"

#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atlas/atlas_core.h"

namespace midatlas {

using internal::AtlasCore;
using internal::AtlasResult;

namespace {

AtlasCore& Core(MidAtlas* atlas) noexcept { return *static_cast<AtlasCore*>(atlas); }
const AtlasCore& Core(const MidAtlas* atlas) noexcept {
  return *static_cast<const AtlasCore*>(atlas);
}

constexpr const char* kAllInUseMessage = "all MIDs are in use";
constexpr const char* kOutOfMemoryMessage = "out of memory while growing the MID atlas";

absl::Status ErrorFor(AtlasResult result, const char* invalid_message) {
  switch (result) {
    case AtlasResult::kAllInUse:
      return absl::UnavailableError(kAllInUseMessage);
    case AtlasResult::kOutOfMemory:
      return absl::ResourceExhaustedError(kOutOfMemoryMessage);
    case AtlasResult::kInvalidArgument:
      return absl::InvalidArgumentError(invalid_message);
    case AtlasResult::kOk:
      break;
  }
  return absl::InternalError("midatlas: success reported as an error");
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

absl::StatusOr<std::unique_ptr<MidAtlas>> MidAtlas::Create(AtlasOptions options) {
  if (options.max_mids == 0 || options.max_mids > kMaxMidsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_mids must be in 1..", kMaxMidsLimit, ", got ", options.max_mids));
  }
  if (options.initial_mids == 0 || options.initial_mids > options.max_mids) {
    return absl::InvalidArgumentError(absl::StrCat("initial_mids must be in 1..max_mids (",
                                                   options.max_mids, "), got ",
                                                   options.initial_mids));
  }
  AtlasCore* core = AtlasCore::New(options.max_mids, options.initial_mids,
                                   std::move(options.context_destructor));
  if (core == nullptr) return absl::ResourceExhaustedError("out of memory creating a MID atlas");
  return std::unique_ptr<MidAtlas>(core);
}

MidAtlas::~MidAtlas() = default;

absl::StatusOr<Mid> MidAtlas::Associate(void* context) noexcept {
  Mid mid = 0;
  const AtlasResult result = Core(this).AssociateContext(context, &mid);
  if (result == AtlasResult::kOk) [[likely]] return mid;
  return ErrorFor(result, "context must not be null");
}

void* MidAtlas::Map(Mid mid) const noexcept { return Core(this).MapMid(mid); }

absl::StatusOr<void*> MidAtlas::MapAndDissociate(Mid mid) noexcept {
  void* context = nullptr;
  const AtlasResult result = Core(this).DissociateMid(mid, &context);
  if (result == AtlasResult::kOk) [[likely]] return context;
  return ErrorFor(result, "MID is not in use");
}

absl::Status MidAtlas::Reassociate(Mid mid, void* new_context) noexcept {
  const AtlasResult result = Core(this).ReassociateContext(mid, new_context);
  if (result == AtlasResult::kOk) [[likely]] return absl::OkStatus();
  return ErrorFor(result, new_context == nullptr ? "new context must not be null"
                                                 : "MID is not in use");
}

std::size_t MidAtlas::IterateAndRemove(absl::FunctionRef<void(void*)> fn) {
  return Core(this).RemoveAll(fn);
}

std::uint32_t MidAtlas::max_mids() const noexcept { return Core(this).max_mid_count(); }
std::uint32_t MidAtlas::initial_mids() const noexcept { return Core(this).initial_mid_count(); }
MidLayout MidAtlas::layout() const noexcept { return Core(this).mid_layout(); }
std::uint32_t MidAtlas::mids_in_use() const noexcept { return Core(this).HeldMids(); }
AtlasStats MidAtlas::stats() const noexcept { return Core(this).Snapshot(); }

}  // namespace midatlas
