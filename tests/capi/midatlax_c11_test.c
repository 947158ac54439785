/*
 * The RDBSS C API compiled as C11: proves that midatlax.h is valid C with C linkage and that
 * every routine behaves as documented when called from C. No test framework: each failed check
 * is printed, and the program returns 1 if any failed.
 */
#include <midatlas/midatlax.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

_Static_assert(sizeof(NTSTATUS) == 4, "NTSTATUS is a 32-bit signed integer");
_Static_assert(sizeof(USHORT) == 2, "USHORT is 16 bits");
_Static_assert(STATUS_SUCCESS == 0, "STATUS_SUCCESS is 0");
_Static_assert((uint32_t)STATUS_UNSUCCESSFUL == 0xC0000001UL, "NT value");
_Static_assert((uint32_t)STATUS_NOT_IMPLEMENTED == 0xC0000002UL, "NT value");
_Static_assert((uint32_t)STATUS_INVALID_PARAMETER == 0xC000000DUL, "NT value");
_Static_assert((uint32_t)STATUS_INSUFFICIENT_RESOURCES == 0xC000009AUL, "NT value");
_Static_assert(STATUS_INVALID_PARAMETER < 0, "error statuses are negative NTSTATUS values");

#if !defined(STATUS_SUCCESS) || !defined(STATUS_UNSUCCESSFUL) || \
    !defined(STATUS_NOT_IMPLEMENTED) || !defined(STATUS_INVALID_PARAMETER) || \
    !defined(STATUS_INSUFFICIENT_RESOURCES)
#error "midatlax.h must define the STATUS_* values as macros"
#endif

#include "c_check.h"

static PVOID Context(uintptr_t value) { return (PVOID)value; }

/* What the destructor and iterator callbacks saw. */
static int destroyed_count = 0;
static uintptr_t destroyed_sum = 0;
static int iterated_count = 0;
static uintptr_t iterated_sum = 0;

static void CountDestroyed(PVOID context) {
  ++destroyed_count;
  destroyed_sum += (uintptr_t)context;
}

static void CountIterated(PVOID context) {
  ++iterated_count;
  iterated_sum += (uintptr_t)context;
}

static void TestCreateRejectsBadSizes(void) {
  CHECK(RxCreateMidAtlas(0, 0) == NULL);
  CHECK(RxCreateMidAtlas(0, 1) == NULL);
  CHECK(RxCreateMidAtlas(50, 0) == NULL);
  CHECK(RxCreateMidAtlas(50, 51) == NULL);
  CHECK(RxCreateMidAtlas(1, 2) == NULL);
}

static void TestNullAtlas(void) {
  USHORT mid = 0;
  PVOID context = Context(1);
  CHECK(RxAssociateContextWithMid(NULL, Context(1), &mid) == STATUS_INVALID_PARAMETER);
  CHECK(RxMapMidToContext(NULL, 0) == NULL);
  CHECK(RxMapAndDissociateMidFromContext(NULL, 0, &context) == STATUS_INVALID_PARAMETER);
  CHECK(RxReassociateMid(NULL, 0, Context(1)) == STATUS_INVALID_PARAMETER);
  CHECK(RxGetMaximumNumberOfMids(NULL) == 0);
  CHECK(RxGetNumberOfMidsInUse(NULL) == 0);
  iterated_count = 0;
  RxIterateMidAtlasAndRemove(NULL, CountIterated);
  CHECK(iterated_count == 0);
}

static void TestAssociateMapDissociateReassociate(void) {
  enum { kMax = 100 };
  USHORT mids[kMax];
  unsigned char seen[kMax] = {0};
  USHORT extra = 0;
  USHORT i;
  PVOID context = NULL;
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(kMax, 16);
  CHECK(atlas != NULL);
  if (atlas == NULL) return;
  CHECK(RxGetMaximumNumberOfMids(atlas) == kMax);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 0);

  /* Take every MID: each is new, below the maximum, and maps back. */
  for (i = 0; i < kMax; ++i) {
    CHECK(RxAssociateContextWithMid(atlas, Context((uintptr_t)i + 1), &mids[i]) == STATUS_SUCCESS);
    CHECK(mids[i] < kMax);
    if (mids[i] < kMax) {
      CHECK(!seen[mids[i]]);
      seen[mids[i]] = 1;
    }
  }
  for (i = 0; i < kMax; ++i) CHECK(RxMapMidToContext(atlas, mids[i]) == Context((uintptr_t)i + 1));
  CHECK(RxGetNumberOfMidsInUse(atlas) == kMax);
  CHECK(RxAssociateContextWithMid(atlas, Context(0xABC), &extra) == STATUS_UNSUCCESSFUL);
  /* Argument errors come before "all in use". */
  CHECK(RxAssociateContextWithMid(atlas, NULL, &extra) == STATUS_INVALID_PARAMETER);
  CHECK(RxAssociateContextWithMid(atlas, Context(1), NULL) == STATUS_INVALID_PARAMETER);
  CHECK(RxMapMidToContext(atlas, kMax) == NULL);
  CHECK(RxMapMidToContext(atlas, 65535) == NULL);

  /* Dissociate one: context back, MID free, count down, and the next associate reuses it. */
  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[40], &context) == STATUS_SUCCESS);
  CHECK(context == Context(41));
  CHECK(RxMapMidToContext(atlas, mids[40]) == NULL);
  CHECK(RxGetNumberOfMidsInUse(atlas) == kMax - 1);

  /* A free MID: invalid parameter, *ContextPointer NULL, count unchanged. */
  context = Context(0x5EED);
  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[40], &context) == STATUS_INVALID_PARAMETER);
  CHECK(context == NULL);
  context = Context(0x5EED);
  CHECK(RxMapAndDissociateMidFromContext(atlas, 65535, &context) == STATUS_INVALID_PARAMETER);
  CHECK(context == NULL);
  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[0], NULL) == STATUS_INVALID_PARAMETER);
  CHECK(RxMapMidToContext(atlas, mids[0]) == Context(1));
  CHECK(RxGetNumberOfMidsInUse(atlas) == kMax - 1);

  /* Reassociate: in use succeeds; free MID or NULL context changes nothing. */
  CHECK(RxReassociateMid(atlas, mids[0], Context(0x1001)) == STATUS_SUCCESS);
  CHECK(RxMapMidToContext(atlas, mids[0]) == Context(0x1001));
  CHECK(RxReassociateMid(atlas, mids[0], NULL) == STATUS_INVALID_PARAMETER);
  CHECK(RxMapMidToContext(atlas, mids[0]) == Context(0x1001));
  CHECK(RxReassociateMid(atlas, mids[40], Context(7)) == STATUS_INVALID_PARAMETER);
  CHECK(RxMapMidToContext(atlas, mids[40]) == NULL);
  CHECK(RxGetNumberOfMidsInUse(atlas) == kMax - 1);

  CHECK(RxAssociateContextWithMid(atlas, Context(41), &extra) == STATUS_SUCCESS);
  CHECK(extra == mids[40]);
  CHECK(RxAssociateContextWithMid(atlas, Context(0xABC), &extra) == STATUS_UNSUCCESSFUL);

  /* Unaligned and extreme contexts are fine. */
  CHECK(RxReassociateMid(atlas, mids[1], Context(UINTPTR_MAX)) == STATUS_SUCCESS);
  CHECK(RxMapMidToContext(atlas, mids[1]) == Context(UINTPTR_MAX));
  CHECK(RxReassociateMid(atlas, mids[1], Context(2)) == STATUS_SUCCESS);

  /* A NULL iterator is a no-op. */
  RxIterateMidAtlasAndRemove(atlas, NULL);
  CHECK(RxGetNumberOfMidsInUse(atlas) == kMax);

  /* Iterate hands each context out once and frees every MID. */
  {
    uintptr_t expected_sum = 0;
    for (i = 0; i < kMax; ++i) expected_sum += (uintptr_t)i + 1;
    expected_sum += 0x1001 - 1; /* mids[0] holds 0x1001 instead of 1 */
    iterated_count = 0;
    iterated_sum = 0;
    RxIterateMidAtlasAndRemove(atlas, CountIterated);
    CHECK(iterated_count == kMax);
    CHECK(iterated_sum == expected_sum);
  }
  CHECK(RxGetNumberOfMidsInUse(atlas) == 0);
  for (i = 0; i < kMax; ++i) CHECK(RxMapMidToContext(atlas, mids[i]) == NULL);
  for (i = 0; i < kMax; ++i) {
    CHECK(RxAssociateContextWithMid(atlas, Context((uintptr_t)i + 1), &mids[i]) == STATUS_SUCCESS);
  }
  CHECK(RxAssociateContextWithMid(atlas, Context(0xABC), &extra) == STATUS_UNSUCCESSFUL);

  /* Destroy hands every remaining context to the destructor once. */
  for (i = 0; i < kMax / 2; ++i) {
    CHECK(RxMapAndDissociateMidFromContext(atlas, mids[i], &context) == STATUS_SUCCESS);
  }
  {
    uintptr_t expected_sum = 0;
    for (i = kMax / 2; i < kMax; ++i) expected_sum += (uintptr_t)i + 1;
    destroyed_count = 0;
    destroyed_sum = 0;
    RxDestroyMidAtlas(atlas, CountDestroyed);
    CHECK(destroyed_count == kMax - kMax / 2);
    CHECK(destroyed_sum == expected_sum);
  }
}

static void TestSameContextDestroyedOncePerAssociation(void) {
  int shared = 0;
  USHORT mid = 0;
  int i;
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(65535, 50);
  CHECK(atlas != NULL);
  if (atlas == NULL) return;
  for (i = 0; i < 3; ++i) CHECK(RxAssociateContextWithMid(atlas, &shared, &mid) == STATUS_SUCCESS);
  destroyed_count = 0;
  destroyed_sum = 0;
  RxDestroyMidAtlas(atlas, CountDestroyed);
  CHECK(destroyed_count == 3);
  CHECK(destroyed_sum == 3 * (uintptr_t)&shared);
}

static void TestFullRangeAtlas(void) {
  uint32_t i;
  USHORT mid = 0;
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(65535, 1);
  CHECK(atlas != NULL);
  if (atlas == NULL) return;
  for (i = 0; i < 65535; ++i) {
    if (RxAssociateContextWithMid(atlas, Context(i + 1), &mid) != STATUS_SUCCESS) {
      CHECK(!"every one of 65535 associations succeeds");
      break;
    }
  }
  CHECK(RxGetNumberOfMidsInUse(atlas) == 65535);
  CHECK(RxAssociateContextWithMid(atlas, Context(1), &mid) == STATUS_UNSUCCESSFUL);
  CHECK(RxMapMidToContext(atlas, 65535) == NULL);
  /* Destroy with a NULL destructor: allowed, the contexts are simply dropped. */
  RxDestroyMidAtlas(atlas, NULL);
}

int main(void) {
  TestCreateRejectsBadSizes();
  TestNullAtlas();
  TestAssociateMapDissociateReassociate();
  TestSameContextDestroyedOncePerAssociation();
  TestFullRangeAtlas();
  if (c_check_failures != 0) {
    fprintf(stderr, "midatlax_c11_test: %d check(s) failed\n", c_check_failures);
    return 1;
  }
  printf("midatlax_c11_test: all checks passed\n");
  return 0;
}
