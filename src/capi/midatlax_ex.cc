// The extension C API (midatlax_ex.h): parameter checks, then the same AtlasCore as
// midatlax.cc. The statuses map as there.
#include "midatlas/midatlax_ex.h"

#include <chrono>
#include <cstdint>

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
  // AtlasCore::New checks the rest: maximum and start, the policy, reserve below the maximum,
  // G <= 15, a NULL exclusion array, and a maximum the index space less the exclusions has no
  // room for.
  const AtlasConfig config{.max_mids = parameters->MaximumNumberOfMids,
                           .initial_mids = parameters->MidsAllocatedAtStart,
                           .reserved_mids = parameters->MidsReserved,
                           .excluded = parameters->ExcludedMids,
                           .excluded_count = parameters->NumberOfExcludedMids,
                           .generation_bits = parameters->GenerationBits,
                           .reuse_policy = parameters->ReusePolicy};
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

// ---- Quarantine and waiting ------------------------------------------------------------

namespace {

using midatlas::internal::Waiter;

// The C wait block holds the core's Waiter; the routine is called through this adapter.
static_assert(sizeof(Waiter) <= sizeof(RX_MID_WAIT_BLOCK), "a Waiter fits in a wait block");
static_assert(alignof(Waiter) <= alignof(RX_MID_WAIT_BLOCK), "and is aligned as one");

Waiter* WaiterOf(PRX_MID_WAIT_BLOCK block) noexcept { return reinterpret_cast<Waiter*>(block); }

void CallWaitRoutine(Waiter* waiter, AtlasResult result, midatlas::Mid mid) {
  const auto routine = reinterpret_cast<PRX_MID_WAIT_ROUTINE>(waiter->user_routine);
  void* context = waiter->context;
  routine(reinterpret_cast<PRX_MID_WAIT_BLOCK>(waiter), context, ToNtStatus(result), mid);
}

}  // namespace

extern "C" {

NTSTATUS RxDiscardMid(PRX_MID_ATLAS atlas, USHORT mid, PVOID late_context,
                      PVOID* context_pointer) {
  if (context_pointer != nullptr) *context_pointer = nullptr;
  if (atlas == nullptr || context_pointer == nullptr) return STATUS_INVALID_PARAMETER;
  return ToNtStatus(CoreOf(atlas)->Discard(mid, late_context, context_pointer));
}

NTSTATUS RxReleaseDiscardedMid(PRX_MID_ATLAS atlas, USHORT mid, PVOID* late_context_pointer) {
  if (atlas == nullptr) {
    if (late_context_pointer != nullptr) *late_context_pointer = nullptr;
    return STATUS_INVALID_PARAMETER;
  }
  return ToNtStatus(CoreOf(atlas)->ReleaseDiscarded(mid, late_context_pointer));
}

USHORT RxGetNumberOfDiscardedMids(PRX_MID_ATLAS atlas) {
  return atlas == nullptr ? 0 : static_cast<USHORT>(CoreOf(atlas)->discarded_mids());
}

NTSTATUS RxAssociateContextWithMidWait(PRX_MID_ATLAS atlas, PVOID context, ULONG flags,
                                       ULONG timeout_milliseconds, PUSHORT new_mid) {
  if (atlas == nullptr || new_mid == nullptr || (flags & ~ULONG{RX_MID_USE_RESERVE}) != 0) {
    return STATUS_INVALID_PARAMETER;
  }
  midatlas::internal::WaitDeadline deadline;
  if (timeout_milliseconds != 0xFFFFFFFFUL) {
    deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_milliseconds);
  }
  midatlas::Mid mid = 0;
  const AtlasResult result = CoreOf(atlas)->AssociateWait(
      context, &mid, (flags & RX_MID_USE_RESERVE) != 0, deadline);
  if (result == AtlasResult::kOk) *new_mid = mid;
  // One try that found every MID in use is a wait that timed out.
  return ToNtStatus(result == AtlasResult::kAllInUse ? AtlasResult::kTimeout : result);
}

NTSTATUS RxAssociateContextWithMidAsync(PRX_MID_ATLAS atlas, PVOID context, ULONG flags,
                                        PRX_MID_WAIT_BLOCK wait_block,
                                        PRX_MID_WAIT_ROUTINE routine, PUSHORT new_mid) {
  if (atlas == nullptr || wait_block == nullptr || routine == nullptr || new_mid == nullptr ||
      (flags & ~ULONG{RX_MID_USE_RESERVE}) != 0) {
    return STATUS_INVALID_PARAMETER;
  }
  midatlas::Mid mid = 0;
  const AtlasResult result = CoreOf(atlas)->AssociateAsync(
      {.context = context,
       .use_reserve = (flags & RX_MID_USE_RESERVE) != 0,
       .complete = &CallWaitRoutine,
       .user_routine = reinterpret_cast<void (*)()>(routine)},
      WaiterOf(wait_block), &mid);
  if (result == AtlasResult::kOk) *new_mid = mid;
  return ToNtStatus(result);
}

BOOLEAN RxCancelMidWait(PRX_MID_ATLAS atlas, PRX_MID_WAIT_BLOCK wait_block) {
  if (atlas == nullptr || wait_block == nullptr) return FALSE;
  return CoreOf(atlas)->CancelWait(WaiterOf(wait_block)) ? TRUE : FALSE;
}

USHORT RxGetNumberOfWaiters(PRX_MID_ATLAS atlas) {
  if (atlas == nullptr) return 0;
  const std::uint32_t waiters = CoreOf(atlas)->waiters();
  return static_cast<USHORT>(waiters > 0xFFFF ? 0xFFFF : waiters);
}

}  // extern "C"
