/*
 * A downstream C program built against an installed midatlas with nothing but
 *
 *   cc -std=c11 pkgconfig_consumer.c $(pkg-config --cflags --libs --static midatlas)
 *
 * (pkgconfig.cmake does exactly that). It uses the RDBSS MID atlas and the NetName table
 * through their C headers, which pulls in the C++ runtime and Abseil from the archive, and
 * returns nonzero if any call gives a wrong answer.
 */
#include <midatlas/midatlax.h>
#include <midatlas/netname.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      fprintf(stderr, "pkgconfig_consumer: check failed: %s (line %d)\n", #condition,     \
              __LINE__);                                                                 \
      ++failures;                                                                        \
    }                                                                                    \
  } while (0)

/* Distinct, recognisable contexts: the atlas stores pointers and never dereferences them. */
static int requests[3];

static int destroyed_count = 0;
static void CountDestroyed(PVOID context) {
  CHECK(context == &requests[2]);
  ++destroyed_count;
}

static int outstanding_count = 0;
static void CountOutstanding(PVOID context) {
  CHECK(context == &requests[0]);
  ++outstanding_count;
}

static void UseMidAtlas(void) {
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(4, 2);
  CHECK(atlas != NULL);
  if (atlas == NULL) return;
  CHECK(RxGetMaximumNumberOfMids(atlas) == 4);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 0);

  USHORT mids[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    CHECK(RxAssociateContextWithMid(atlas, &requests[i], &mids[i]) == STATUS_SUCCESS);
  }
  CHECK(mids[0] != mids[1] && mids[1] != mids[2] && mids[0] != mids[2]);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 3);
  for (int i = 0; i < 3; ++i) CHECK(RxMapMidToContext(atlas, mids[i]) == &requests[i]);

  PVOID finished = NULL;
  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[1], &finished) == STATUS_SUCCESS);
  CHECK(finished == &requests[1]);
  CHECK(RxMapMidToContext(atlas, mids[1]) == NULL);
  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[1], &finished) == STATUS_INVALID_PARAMETER);
  CHECK(finished == NULL);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 2);

  CHECK(RxMapAndDissociateMidFromContext(atlas, mids[0], &finished) == STATUS_SUCCESS);
  CHECK(finished == &requests[0]);
  CHECK(RxGetNumberOfMidsInUse(atlas) == 1);

  /* requests[2] is still associated: the destructor must see it, and only it, once. */
  RxDestroyMidAtlas(atlas, CountDestroyed);
  CHECK(destroyed_count == 1);
}

static void UseNetNameTable(void) {
  PRX_NET_NAME_TABLE table = NULL;
  CHECK(RxCreateNetNameTable(NULL, 16, 4, 0, CountOutstanding, &table) == STATUS_SUCCESS);
  CHECK(table != NULL);
  if (table == NULL) return;

  static const char kServer[] = "\\\\server";
  PRX_NET_NAME server = NULL;
  CHECK(RxFindOrCreateNetName(table, NULL, kServer, sizeof kServer - 1, RxNetNameServerCall,
                              &server) == STATUS_SUCCESS);
  CHECK(server != NULL);
  if (server != NULL) {
    CHECK(RxGetNetNameType(server) == RxNetNameServerCall);
    size_t name_length = 0;
    const char* name = RxGetNetNameName(server, &name_length);
    CHECK(name_length == sizeof kServer - 1 && memcmp(name, kServer, name_length) == 0);

    PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(server);
    CHECK(atlas != NULL);
    CHECK(RxGetMaximumNumberOfMids(atlas) == 16);
    USHORT mid = 0;
    CHECK(RxAssociateContextWithMid(atlas, &requests[0], &mid) == STATUS_SUCCESS);
    CHECK(RxMapMidToContext(atlas, mid) == &requests[0]);
    CHECK(RxGetNumberOfMidsInUse(atlas) == 1);

    /* A longest-prefix lookup of a path below the server finds it, with a new reference. */
    static const char kPath[] = "\\\\server\\share\\file";
    PRX_NET_NAME found = NULL;
    size_t prefix_length = 0;
    CHECK(RxLookupNetName(table, kPath, sizeof kPath - 1, NULL, &found, &prefix_length) ==
          STATUS_SUCCESS);
    CHECK(found == server);
    CHECK(prefix_length == sizeof kServer - 1);
    RxDereferenceNetName(found);
    CHECK(outstanding_count == 0);

    /* The last reference takes the server call out of the table and drains its atlas. */
    RxDereferenceNetName(server);
    CHECK(outstanding_count == 1);
    CHECK(RxLookupNetName(table, kPath, sizeof kPath - 1, NULL, &found, &prefix_length) ==
          STATUS_NOT_FOUND);
  }
  RxDestroyNetNameTable(table);
}

int main(void) {
  UseMidAtlas();
  UseNetNameTable();
  if (failures != 0) {
    fprintf(stderr, "pkgconfig_consumer: %d check(s) failed\n", failures);
    return 1;
  }
  printf("pkgconfig_consumer: all checks passed\n");
  return 0;
}
