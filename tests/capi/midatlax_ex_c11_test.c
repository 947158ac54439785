/*
 * The extension C API compiled as C11: proves that midatlax_ex.h is valid C with C linkage and
 * that its routines behave as documented when called from C. Each failed check is printed, and
 * the program returns 1 if any failed.
 */
#include <midatlas/midatlax_ex.h>

#include <stddef.h>
#include <stdint.h>

_Static_assert(sizeof(UCHAR) == 1 && sizeof(ULONG) == 4 && sizeof(BOOLEAN) == 1, "sizes");
_Static_assert((uint32_t)STATUS_TIMEOUT == 0x00000102UL, "NT value");
_Static_assert((uint32_t)STATUS_PENDING == 0x00000103UL, "NT value");
_Static_assert((uint32_t)STATUS_CANCELLED == 0xC0000120UL, "NT value");
_Static_assert(STATUS_CANCELLED < 0 && STATUS_PENDING > 0, "severities");

#include "c_check.h"

static PVOID Context(uintptr_t value) { return (PVOID)value; }

static int g_routine_calls = 0;
static NTSTATUS g_routine_status = 0;
static USHORT g_routine_mid = 0;
static VOID Routine(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  (void)block;
  (void)context;
  ++g_routine_calls;
  g_routine_status = status;
  g_routine_mid = mid;
}

_Static_assert(sizeof(RX_MID_GUARD) == 4 * sizeof(PVOID), "a guard is four words");

/* Guarded lookups from C: a guard on a retired context holds off its destructor. */
static int destroyed = 0;
static void Destroy(PVOID context) {
  (void)context;
  ++destroyed;
}
static void CheckGuards(void) {
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(8, 8);
  USHORT mid = 0;
  RX_MID_GUARD guard;
  PVOID done = NULL;
  CHECK(atlas != NULL);
  CHECK(RxAssociateContextWithMid(atlas, Context(8), &mid) == STATUS_SUCCESS);
  CHECK(RxMapMidToContextGuarded(atlas, mid, &guard) == Context(8));
  CHECK(RxMapAndDissociateMidFromContext(atlas, mid, &done) == STATUS_SUCCESS);
  RxRetireContext(atlas, done, Destroy);
  RxFlushRetiredContexts(atlas);
  CHECK(destroyed == 0);
  RxReleaseMidGuard(&guard);
  RxFlushRetiredContexts(atlas);
  CHECK(destroyed == 1);
  CHECK(RxMapMidToContextGuarded(atlas, mid, &guard) == NULL);
  RxDestroyMidAtlas(atlas, NULL);
}

int main(void) {
  static const USHORT kExcluded[] = {0, 0xFFFF};
  RX_MID_ATLAS_PARAMETERS p = {0};
  CHECK(RxCreateMidAtlasEx(NULL) == NULL);
  p.MaximumNumberOfMids = 4;
  p.MidsAllocatedAtStart = 4;
  p.MidsReserved = 1;
  p.NumberOfExcludedMids = 2;
  p.ExcludedMids = kExcluded;
  PRX_MID_ATLAS atlas = RxCreateMidAtlasEx(&p);
  CHECK(atlas != NULL);
  USHORT mid = 0;
  for (uintptr_t i = 1; i <= 3; ++i) {
    CHECK(RxAssociateContextWithMidEx(atlas, Context(i), 0, &mid) == STATUS_SUCCESS);
    CHECK(mid == i); /* 0 is excluded: MIDs 1, 2, 3 */
  }
  CHECK(RxAssociateContextWithMidEx(atlas, Context(4), 0, &mid) == STATUS_UNSUCCESSFUL);
  CHECK(RxAssociateContextWithMidEx(atlas, Context(4), 2, &mid) == STATUS_INVALID_PARAMETER);
  CHECK(RxAssociateContextWithMidEx(atlas, Context(4), RX_MID_USE_RESERVE, &mid) ==
        STATUS_SUCCESS);
  CHECK(mid == 4);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 4);
  CHECK(RxMapMidToContext(atlas, 0) == NULL);

  /* Quarantine: MID 2 discarded with a late context, then released. */
  PVOID taken = NULL;
  CHECK(RxDiscardMid(atlas, 2, Context(0x22), &taken) == STATUS_SUCCESS);
  CHECK(taken == Context(2));
  CHECK(RxGetNumberOfDiscardedMids(atlas) == 1);
  CHECK(RxMapMidToContext(atlas, 2) == NULL);
  CHECK(RxMapAndDissociateMidFromContext(atlas, 2, &taken) == STATUS_CANCELLED);
  CHECK(taken == Context(0x22));

  /* Waiting: the atlas is full; a queued async waiter gets MID 2 when it is released. */
  RX_MID_WAIT_BLOCK block;
  CHECK(RxAssociateContextWithMidWait(atlas, Context(5), RX_MID_USE_RESERVE, 0, &mid) ==
        STATUS_TIMEOUT);
  CHECK(RxAssociateContextWithMidAsync(atlas, Context(6), RX_MID_USE_RESERVE, &block, Routine,
                                       &mid) == STATUS_PENDING);
  CHECK(RxGetNumberOfWaiters(atlas) == 1);
  PVOID late = Context(1);
  CHECK(RxReleaseDiscardedMid(atlas, 2, &late) == STATUS_SUCCESS);
  CHECK(late == NULL);
  CHECK(g_routine_calls == 1 && g_routine_status == STATUS_SUCCESS && g_routine_mid == 2);
  CHECK(RxMapMidToContext(atlas, 2) == Context(6));
  CHECK(RxCancelMidWait(atlas, &block) == FALSE);
  CHECK(RxGetNumberOfWaiters(atlas) == 0);
  RxDestroyMidAtlas(atlas, NULL);
  p.ReusePolicy = 3; /* unknown */
  CHECK(RxCreateMidAtlasEx(&p) == NULL);
  p.ReusePolicy = RX_MID_REUSE_CYCLIC;
  atlas = RxCreateMidAtlasEx(&p);
  CHECK(atlas != NULL);
  CHECK(RxAssociateContextWithMidEx(atlas, Context(1), 0, &mid) == STATUS_SUCCESS);
  CHECK(mid == 1);
  CHECK(RxMapAndDissociateMidFromContext(atlas, 1, &taken) == STATUS_SUCCESS);
  CHECK(RxAssociateContextWithMidEx(atlas, Context(1), 0, &mid) == STATUS_SUCCESS);
  CHECK(mid == 2); /* cyclic: the cursor moved past 1 */
  RxDestroyMidAtlas(atlas, NULL);
  CheckGuards();
  return c_check_failures != 0;
}
