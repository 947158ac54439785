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
  RxDestroyMidAtlas(atlas, NULL);
  p.ReusePolicy = RX_MID_REUSE_RANDOM;
  CHECK(RxCreateMidAtlasEx(&p) == NULL);
  CheckGuards();
  return c_check_failures != 0;
}
