/*
 * The NetName table's C API compiled as C11: proves that netname.h is valid C with C linkage
 * and that its routines behave as documented when called from C, the NULL rule included. No
 * test framework: each failed check is printed, and the program returns 1 if any failed.
 */
#include <midatlas/netname.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(RX_CONNECTION_ID) == 8, "RX_CONNECTION_ID is the 8-byte RDBSS blob");
_Static_assert(RxNetNameInvalid == -1 && RxNetNameServerCall == 0 && RxNetNameNetRoot == 1 &&
                   RxNetNameVNetRoot == 2,
               "the type values are part of the ABI");
_Static_assert((uint32_t)STATUS_NOT_FOUND == 0xC0000225UL, "NT value");
_Static_assert((uint32_t)STATUS_OBJECT_NAME_INVALID == 0xC0000033UL, "NT value");
_Static_assert((uint32_t)STATUS_OBJECT_NAME_COLLISION == 0xC0000035UL, "NT value");
_Static_assert(RX_NETNAME_MAX_BYTES == 4096 && RX_NETNAME_MAX_COMPONENT_BYTES == 255,
               "the C++ limits");

#if !defined(STATUS_NOT_FOUND) || !defined(STATUS_OBJECT_NAME_INVALID) || \
    !defined(STATUS_OBJECT_NAME_COLLISION)
#error "netname.h must define its STATUS_* values as macros"
#endif

#include "c_check.h"

/* MRxGetConnectionId: the request context is a session number; 0 means "no IDs". */
static NTSTATUS GetConnectionId(PVOID rx_context, PRX_CONNECTION_ID unique_id) {
  const ULONG session = *(const ULONG*)rx_context;
  if (session == 0) return STATUS_NOT_IMPLEMENTED;
  unique_id->SessionID = session;
  return STATUS_SUCCESS;
}

/* What the outstanding-context callback saw. */
static int outstanding_count = 0;
static uintptr_t outstanding_sum = 0;

static void CollectOutstanding(PVOID context) {
  ++outstanding_count;
  outstanding_sum += (uintptr_t)context;
}

static NTSTATUS Create(PRX_NET_NAME_TABLE table, const char* name, ULONG session,
                       RX_NET_NAME_TYPE type, PRX_NET_NAME* out) {
  return RxFindOrCreateNetName(table, &session, name, strlen(name), type, out);
}

static void TestFindLookupAndTheAtlas(PRX_NET_NAME_TABLE table) {
  PRX_NET_NAME root = NULL;
  CHECK(Create(table, "\\\\Server\\Share", 7, RxNetNameNetRoot, &root) == STATUS_SUCCESS);
  CHECK(root != NULL);
  CHECK(RxGetNetNameType(root) == RxNetNameNetRoot);
  size_t length = 0;
  const char* name = RxGetNetNameName(root, &length);
  CHECK(length == 14 && name != NULL && memcmp(name, "\\\\Server\\Share", 14) == 0);
  RX_CONNECTION_ID id;
  RxGetNetNameConnectionId(root, &id);
  CHECK(id.SessionID == 7);

  /* Longest prefix, case folded, with the same ID; another ID misses. */
  const char* path = "\\\\SERVER\\share\\dir\\file.txt:stream";
  PRX_NET_NAME found = NULL;
  size_t prefix = 0;
  CHECK(RxLookupNetName(table, path, strlen(path), &id, &found, &prefix) == STATUS_SUCCESS);
  CHECK(found == root);
  CHECK(prefix == 14);
  RxDereferenceNetName(found);
  RX_CONNECTION_ID other;
  memset(&other, 0, sizeof(other));
  other.SessionID = 8;
  CHECK(RxLookupNetName(table, path, strlen(path), &other, &found, &prefix) == STATUS_NOT_FOUND);
  CHECK(found == NULL);

  /* The same key as another type collides; a bad name is refused. */
  PRX_NET_NAME clash = NULL;
  CHECK(Create(table, "\\\\Server\\Share", 7, RxNetNameVNetRoot, &clash) ==
        STATUS_OBJECT_NAME_COLLISION);
  CHECK(clash == NULL);
  CHECK(Create(table, "\\\\Server\\\\Share", 7, RxNetNameNetRoot, &clash) ==
        STATUS_OBJECT_NAME_INVALID);

  /* The connection's atlas, through the midatlax.h routines; drained at the last reference. */
  PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(root);
  CHECK(atlas != NULL);
  CHECK(RxGetMaximumNumberOfMids(atlas) == 20);
  USHORT mids[3] = {0, 0, 0};
  for (uintptr_t i = 0; i < 3; ++i) {
    CHECK(RxAssociateContextWithMid(atlas, (PVOID)(i + 1), &mids[i]) == STATUS_SUCCESS);
  }
  CHECK(RxMapMidToContext(atlas, mids[1]) == (PVOID)2);
  CHECK(RxRemoveNetName(table, root) == STATUS_SUCCESS);
  CHECK(RxRemoveNetName(table, root) == STATUS_NOT_FOUND);
  CHECK(outstanding_count == 0);
  RxDereferenceNetName(root);
  CHECK(outstanding_count == 3);
  CHECK(outstanding_sum == 1 + 2 + 3);
}

static void TestNoIdsIsTheAllZeroId(PRX_NET_NAME_TABLE table) {
  PRX_NET_NAME server = NULL;
  CHECK(Create(table, "\\\\solo", 0, RxNetNameServerCall, &server) == STATUS_SUCCESS);
  RX_CONNECTION_ID id;
  memset(&id, 0xab, sizeof(id));
  RxGetNetNameConnectionId(server, &id);
  for (size_t i = 0; i < sizeof(id.Bytes); ++i) CHECK(id.Bytes[i] == 0);
  PRX_NET_NAME found = NULL;
  size_t prefix = 0;
  CHECK(RxLookupNetName(table, "\\\\solo\\x", 8, NULL, &found, &prefix) == STATUS_SUCCESS);
  CHECK(found == server);
  CHECK(prefix == 6);
  RxReferenceNetName(found);
  RxDereferenceNetName(found);
  RxDereferenceNetName(found);
  RxDereferenceNetName(server);
  CHECK(RxLookupNetName(table, "\\\\solo", 6, NULL, &found, &prefix) == STATUS_NOT_FOUND);
}

/* netname.h's NULL rule. */
static void TestNullArguments(PRX_NET_NAME_TABLE table) {
  CHECK(RxCreateNetNameTable(NULL, 20, 20, 0, NULL, NULL) == STATUS_INVALID_PARAMETER);
  PRX_NET_NAME_TABLE bad = table;
  CHECK(RxCreateNetNameTable(NULL, 20, 21, 0, NULL, &bad) == STATUS_INVALID_PARAMETER);
  CHECK(bad == NULL);
  RxDestroyNetNameTable(NULL);

  ULONG session = 1;
  PRX_NET_NAME name = (PRX_NET_NAME)&session;
  CHECK(RxFindOrCreateNetName(NULL, &session, "\\\\s", 3, RxNetNameServerCall, &name) ==
        STATUS_INVALID_PARAMETER);
  CHECK(name == NULL);
  CHECK(RxFindOrCreateNetName(table, &session, NULL, 3, RxNetNameServerCall, &name) ==
        STATUS_INVALID_PARAMETER);
  CHECK(RxFindOrCreateNetName(table, &session, "\\\\s", 3, RxNetNameServerCall, NULL) ==
        STATUS_INVALID_PARAMETER);

  size_t prefix = 5;
  name = (PRX_NET_NAME)&session;
  CHECK(RxLookupNetName(NULL, "\\\\s", 3, NULL, &name, &prefix) == STATUS_INVALID_PARAMETER);
  CHECK(name == NULL && prefix == 0);
  CHECK(RxLookupNetName(table, NULL, 3, NULL, &name, &prefix) == STATUS_INVALID_PARAMETER);
  CHECK(RxLookupNetName(table, "\\\\s", 3, NULL, NULL, &prefix) == STATUS_INVALID_PARAMETER);
  CHECK(RxLookupNetName(table, "\\\\s", 3, NULL, &name, NULL) == STATUS_INVALID_PARAMETER);

  CHECK(RxRemoveNetName(NULL, NULL) == STATUS_INVALID_PARAMETER);
  CHECK(RxRemoveNetName(table, NULL) == STATUS_INVALID_PARAMETER);
  RxReferenceNetName(NULL);
  RxDereferenceNetName(NULL);

  CHECK(RxGetNetNameMidAtlas(NULL) == NULL);
  CHECK(RxGetNetNameType(NULL) == RxNetNameInvalid);
  size_t length = 9;
  CHECK(RxGetNetNameName(NULL, &length) == NULL);
  CHECK(length == 0);
  CHECK(RxGetNetNameName(NULL, NULL) == NULL);
  RX_CONNECTION_ID id;
  memset(&id, 0xab, sizeof(id));
  RxGetNetNameConnectionId(NULL, &id);
  for (size_t i = 0; i < sizeof(id.Bytes); ++i) CHECK(id.Bytes[i] == 0);
  RxGetNetNameConnectionId(NULL, NULL);
}

int main(void) {
  PRX_NET_NAME_TABLE table = NULL;
  if (RxCreateNetNameTable(GetConnectionId, 20, 20, 0, CollectOutstanding, &table) !=
          STATUS_SUCCESS ||
      table == NULL) {
    fprintf(stderr, "netname_c11_test: RxCreateNetNameTable failed\n");
    return 1;
  }
  TestFindLookupAndTheAtlas(table);
  TestNoIdsIsTheAllZeroId(table);
  TestNullArguments(table);
  RxDestroyNetNameTable(table);
  if (c_check_failures != 0) {
    fprintf(stderr, "netname_c11_test: %d check(s) failed\n", c_check_failures);
    return 1;
  }
  printf("netname_c11_test: all checks passed\n");
  return 0;
}
