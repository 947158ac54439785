// The RDBSS-compatible C API: a thin shim over AtlasCore that never builds an absl::Status,
// so the C paths are as lean as the core.
#include "midatlas/midatlax.h"

#include <utility>

#include "atlas/atlas_core.h"
#include "capi/handles.h"

using midatlas::internal::AtlasCore;
using midatlas::internal::AtlasResult;
using midatlas::internal::CoreOf;
using midatlas::internal::HandleOf;
using midatlas::internal::ToNtStatus;

extern "C" {

PRX_MID_ATLAS RxCreateMidAtlas(USHORT max_mids, USHORT initial_mids) {
  if (max_mids == 0 || initial_mids == 0 ||
      initial_mids > max_mids) {
    return nullptr;
  }
  return HandleOf(AtlasCore::New(max_mids, initial_mids, {}));
}

VOID RxDestroyMidAtlas(PRX_MID_ATLAS atlas, PCONTEXT_DESTRUCTOR destructor) {
  if (atlas == nullptr) return;
  AtlasCore* core = CoreOf(atlas);
  if (destructor != nullptr) core->set_context_destructor(destructor);
  AtlasCore::Destroy(core);
}

NTSTATUS RxAssociateContextWithMid(PRX_MID_ATLAS atlas, PVOID context, PUSHORT new_mid) {
  if (atlas == nullptr) return STATUS_INVALID_PARAMETER;
  midatlas::Mid mid = 0;
  const AtlasResult result = CoreOf(atlas)->Associate(context, new_mid == nullptr ? nullptr : &mid);
  if (result == AtlasResult::kOk) *new_mid = mid;
  return ToNtStatus(result);
}

// The receive path's one call: its fast path (about 24 bytes) starts a cache line, so that it
// is one fetch block wherever the linker places it (straddling a 32-byte boundary cost about
// 0.5 ns per call, with the same instructions).
[[gnu::aligned(64)]] PVOID RxMapMidToContext(PRX_MID_ATLAS atlas, USHORT mid) {
  if (atlas == nullptr) return nullptr;
  return CoreOf(atlas)->Map(mid);
}

NTSTATUS RxMapAndDissociateMidFromContext(PRX_MID_ATLAS atlas, USHORT mid,
                                          PVOID* context_out) {
  if (context_out == nullptr) return STATUS_INVALID_PARAMETER;
  if (atlas == nullptr) {
    *context_out = nullptr;
    return STATUS_INVALID_PARAMETER;
  }
  return ToNtStatus(CoreOf(atlas)->MapAndDissociate(mid, context_out));
}

NTSTATUS RxReassociateMid(PRX_MID_ATLAS atlas, USHORT mid, PVOID new_context) {
  if (atlas == nullptr) return STATUS_INVALID_PARAMETER;
  return ToNtStatus(CoreOf(atlas)->Reassociate(mid, new_context));
}

VOID RxIterateMidAtlasAndRemove(PRX_MID_ATLAS atlas, PCONTEXT_ITERATOR iterator) {
  // A NULL iterator would drop every context on the floor: treat it as a no-op instead.
  if (atlas == nullptr || iterator == nullptr) return;
  CoreOf(atlas)->IterateAndRemove([iterator](void* context) { iterator(context); });
}

USHORT RxGetMaximumNumberOfMids(PRX_MID_ATLAS atlas) {
  if (atlas == nullptr) return 0;
  return static_cast<USHORT>(CoreOf(atlas)->max_mids());
}

USHORT RxGetNumberOfMidsInUse(PRX_MID_ATLAS atlas) {
  if (atlas == nullptr) return 0;
  return static_cast<USHORT>(CoreOf(atlas)->mids_in_use());
}

}  // extern "C"
