// The extension C API (midatlax_ex.h): parameter checks, then the same AtlasCore as
// midatlax.cc. The statuses map as there.
#include "midatlas/midatlax_ex.h"

#include "atlas/atlas_core.h"
#include "capi/handles.h"

using midatlas::internal::AtlasConfig;
using midatlas::internal::AtlasCore;
using midatlas::internal::AtlasResult;
using midatlas::internal::CoreOf;
using midatlas::internal::HandleOf;
using midatlas::internal::ToNtStatus;

extern "C" {

PRX_MID_ATLAS RxCreateMidAtlasEx(const RX_MID_ATLAS_PARAMETERS* parameters) {
  if (parameters == nullptr) return nullptr;
  // CYCLIC and RANDOM reuse are refused until they are implemented: an atlas that accepted
  // them would hand out values in an order its caller relies on not getting.
  if (parameters->ReusePolicy != RX_MID_REUSE_COMPACT) return nullptr;
  // AtlasCore::New checks the rest: maximum and start, reserve below the maximum, G <= 15, a
  // NULL exclusion array, and a maximum the index space less the exclusions has no room for.
  const AtlasConfig config{.max_mids = parameters->MaximumNumberOfMids,
                           .initial_mids = parameters->MidsAllocatedAtStart,
                           .reserved_mids = parameters->MidsReserved,
                           .excluded = parameters->ExcludedMids,
                           .excluded_count = parameters->NumberOfExcludedMids,
                           .generation_bits = parameters->GenerationBits};
  return HandleOf(AtlasCore::New(config, {}));
}

NTSTATUS RxAssociateContextWithMidEx(PRX_MID_ATLAS atlas, PVOID context, ULONG flags,
                                     PUSHORT new_mid) {
  if (atlas == nullptr || (flags & ~ULONG{RX_MID_USE_RESERVE}) != 0) {
    return STATUS_INVALID_PARAMETER;
  }
  midatlas::Mid mid = 0;
  const AtlasResult result = CoreOf(atlas)->Associate(
      context, new_mid == nullptr ? nullptr : &mid, (flags & RX_MID_USE_RESERVE) != 0);
  if (result == AtlasResult::kOk) *new_mid = mid;
  return ToNtStatus(result);
}

}  // extern "C"
