// The RDBSS-compatible C API: a thin shim over AtlasCore that never builds an absl::Status,
// so the C paths are as lean as the core.
#include "midatlas/midatlax.h"

#include <utility>

#include "atlas_core.h"

using midatlas::internal::AtlasCore;
using midatlas::internal::AtlasResult;

// The handle is the core object itself; the struct tag exists only to give C a distinct type.
struct _RX_MID_ATLAS {};

namespace {

AtlasCore* Core(PRX_MID_ATLAS atlas) noexcept { return reinterpret_cast<AtlasCore*>(atlas); }

NTSTATUS ToNtStatus(AtlasResult result) noexcept {
  switch (result) {
    case AtlasResult::kOk:
      return STATUS_SUCCESS;
    case AtlasResult::kAllInUse:
      return STATUS_UNSUCCESSFUL;
    case AtlasResult::kOutOfMemory:
      return STATUS_INSUFFICIENT_RESOURCES;
    case AtlasResult::kInvalidArgument:
      return STATUS_INVALID_PARAMETER;
  }
  return STATUS_UNSUCCESSFUL;
}

}  // namespace

extern "C" {

PRX_MID_ATLAS RxCreateMidAtlas(USHORT MaximumNumberOfMids, USHORT MidsAllocatedAtStart) {
  if (MaximumNumberOfMids == 0 || MidsAllocatedAtStart == 0 ||
      MidsAllocatedAtStart > MaximumNumberOfMids) {
    return nullptr;
  }
  AtlasCore* core = AtlasCore::New(MaximumNumberOfMids, MidsAllocatedAtStart, {});
  return reinterpret_cast<PRX_MID_ATLAS>(core);
}

VOID RxDestroyMidAtlas(PRX_MID_ATLAS MidAtlas, PCONTEXT_DESTRUCTOR Destructor) {
  if (MidAtlas == nullptr) return;
  AtlasCore* core = Core(MidAtlas);
  if (Destructor != nullptr) core->set_context_destructor(Destructor);
  delete core;
}

NTSTATUS RxAssociateContextWithMid(PRX_MID_ATLAS MidAtlas, PVOID Context, PUSHORT NewMid) {
  if (MidAtlas == nullptr) return STATUS_INVALID_PARAMETER;
  midatlas::Mid mid = 0;
  const AtlasResult result = Core(MidAtlas)->AssociateContext(Context, NewMid == nullptr ? nullptr : &mid);
  if (result == AtlasResult::kOk) *NewMid = mid;
  return ToNtStatus(result);
}

PVOID RxMapMidToContext(PRX_MID_ATLAS MidAtlas, USHORT Mid) {
  if (MidAtlas == nullptr) return nullptr;
  return Core(MidAtlas)->MapMid(Mid);
}

NTSTATUS RxMapAndDissociateMidFromContext(PRX_MID_ATLAS MidAtlas, USHORT Mid,
                                          PVOID* ContextPointer) {
  if (ContextPointer == nullptr) return STATUS_INVALID_PARAMETER;
  if (MidAtlas == nullptr) {
    *ContextPointer = nullptr;
    return STATUS_INVALID_PARAMETER;
  }
  return ToNtStatus(Core(MidAtlas)->DissociateMid(Mid, ContextPointer));
}

NTSTATUS RxReassociateMid(PRX_MID_ATLAS MidAtlas, USHORT Mid, PVOID NewContext) {
  if (MidAtlas == nullptr) return STATUS_INVALID_PARAMETER;
  return ToNtStatus(Core(MidAtlas)->ReassociateContext(Mid, NewContext));
}

VOID RxIterateMidAtlasAndRemove(PRX_MID_ATLAS MidAtlas, PCONTEXT_ITERATOR Iterator) {
  // A NULL iterator would drop every context on the floor: treat it as a no-op instead.
  if (MidAtlas == nullptr || Iterator == nullptr) return;
  Core(MidAtlas)->RemoveAll([Iterator](void* context) { Iterator(context); });
}

USHORT RxGetMaximumNumberOfMids(PRX_MID_ATLAS MidAtlas) {
  if (MidAtlas == nullptr) return 0;
  return static_cast<USHORT>(Core(MidAtlas)->max_mid_count());
}

USHORT RxGetNumberOfMidsInUse(PRX_MID_ATLAS MidAtlas) {
  if (MidAtlas == nullptr) return 0;
  return static_cast<USHORT>(Core(MidAtlas)->HeldMids());
}

}  // extern "C"
