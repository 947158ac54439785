/*
 * netname.h: the NetName table (connections, each owning its MID atlas) in the RDBSS style,
 * for code ported from a mini-redirector. Usable from C11 and C++, with C linkage. The C++ API
 * and its guarantees are in midatlas/net_name_table.h; this is a thin rendering of it.
 *
 *   NTSTATUS GetConnectionId(PVOID RxContext, PRX_CONNECTION_ID UniqueId);  // MRxGetConnectionId
 *
 *   PRX_NET_NAME_TABLE table;
 *   RxCreateNetNameTable(GetConnectionId, 50, 50, 0, CancelRequest, &table);
 *   PRX_NET_NAME root;
 *   NTSTATUS status = RxFindOrCreateNetName(table, RxContext, "\\\\server\\share",
 *                                           RxNetNameNetRoot, &root);
 *   PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(root);      // the connection's MIDs
 *   RxAssociateContextWithMid(atlas, request, &mid);
 *   ...
 *   RxDereferenceNetName(root);    // the last reference takes the entry out of the table
 *   RxDestroyNetNameTable(table);
 *
 * Names are byte strings (UTF-8 or ASCII) with an explicit length: "\\server",
 * "\\server\share", "\\server\share\dir\file:stream". Bad names (no leading "\\", an empty
 * component, an embedded NUL, longer than RX_NETNAME_MAX_BYTES) give
 * STATUS_OBJECT_NAME_INVALID and insert nothing.
 *
 * NULL ARGUMENTS: one rule for every function. No function dereferences a NULL handle or a
 * NULL pointer argument:
 *   - a function returning NTSTATUS returns STATUS_INVALID_PARAMETER, after clearing the
 *     outputs it was given (a handle to NULL, a length to 0);
 *   - a getter returns a neutral value: NULL, a 0 length, the all-zero connection ID, or
 *     RxNetNameInvalid for the type;
 *   - a VOID function does nothing.
 * Four arguments are optional, so NULL there is a value, not an error: the callbacks of
 * RxCreateNetNameTable (none), the RxContext of RxFindOrCreateNetName (handed to the callback
 * as it is), the ConnectionId of RxLookupNetName (the all-zero ID) and the NameLength of
 * RxGetNetNameName (not written). Each function's comment says what NULL gives there.
 */
#ifndef MIDATLAS_NETNAME_H_
#define MIDATLAS_NETNAME_H_

/* NOLINTBEGIN(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#include <stddef.h>
#include <stdint.h>

#include "midatlas/midatlax.h"

#if !defined(_WINDEF_) && !defined(_MINWINDEF_) && !defined(MIDATLAS_HAVE_WIN_NETNAME_TYPES)
#define MIDATLAS_HAVE_WIN_NETNAME_TYPES 1
typedef unsigned char UCHAR;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef ULONG* PULONG;
#endif

#if !defined(_NTDEF_) && !defined(_WINNT_) && !defined(MIDATLAS_HAVE_LUID)
#define MIDATLAS_HAVE_LUID 1
typedef struct _LUID {
  ULONG LowPart;
  LONG HighPart;
} LUID, *PLUID;
#endif

#ifndef STATUS_NOT_FOUND
#define STATUS_NOT_FOUND MIDATLAS_NTSTATUS_VALUE(0xC0000225UL)
#endif
#ifndef STATUS_OBJECT_NAME_INVALID
#define STATUS_OBJECT_NAME_INVALID MIDATLAS_NTSTATUS_VALUE(0xC0000033UL)
#endif
#ifndef STATUS_OBJECT_NAME_COLLISION
#define STATUS_OBJECT_NAME_COLLISION MIDATLAS_NTSTATUS_VALUE(0xC0000035UL)
#endif

/* Longest name or path, in bytes, and longest component (the C++ kMaxNetNameBytes and
 * kMaxNetNameComponentBytes). */
#define RX_NETNAME_MAX_BYTES 4096
#define RX_NETNAME_MAX_COMPONENT_BYTES 255
/* Flags for RxCreateNetNameTable. */
#define RX_NETNAME_CASE_SENSITIVE 0x1UL

#ifdef __cplusplus
extern "C" {
#endif

/* RDBSS RX_CONNECTION_ID: an opaque 8-byte blob, compared byte by byte, all of it. All zero
 * bytes means "no connection ID". Clear it whole (memset) before filling one member. */
typedef struct _RX_CONNECTION_ID {
  union {
    ULONG SessionID;
    LUID Luid;
    UCHAR Bytes[8];
  };
} RX_CONNECTION_ID, *PRX_CONNECTION_ID;

/* MRxGetConnectionId. STATUS_SUCCESS with *UniqueId filled; STATUS_NOT_IMPLEMENTED means the
 * all-zero ID; any other status is returned to the RxFindOrCreateNetName caller unchanged and
 * nothing is created. *UniqueId is zeroed before each call. */
typedef NTSTATUS (*PMRX_GET_CONNECTION_ID)(PVOID RxContext, PRX_CONNECTION_ID UniqueId);

/* Receives each context still associated in a server call's atlas when the server call goes
 * (its last reference), exactly once. */
typedef VOID (*PRX_OUTSTANDING_CONTEXT)(PVOID Context);

typedef enum _RX_NET_NAME_TYPE {
  RxNetNameInvalid = -1,    /* no entry: RxGetNetNameType(NULL); never a valid argument */
  RxNetNameServerCall = 0,  /* \\server */
  RxNetNameNetRoot = 1,     /* \\server\share */
  RxNetNameVNetRoot = 2     /* \\server\share[\...] as seen by one session */
} RX_NET_NAME_TYPE;

/* Opaque. A PRX_NET_NAME is one reference to an entry. */
typedef struct _RX_NET_NAME_TABLE RX_NET_NAME_TABLE, *PRX_NET_NAME_TABLE;
typedef struct _RX_NET_NAME RX_NET_NAME, *PRX_NET_NAME;

/* GetConnectionId and OutstandingContext may be NULL (no IDs; contexts are simply
 * dissociated). Each server call's atlas is created with (MaximumNumberOfMids,
 * MidsAllocatedAtStart). STATUS_SUCCESS with the table in *Table; STATUS_INVALID_PARAMETER for
 * bad sizes or a NULL Table; STATUS_INSUFFICIENT_RESOURCES when memory is short. On failure
 * *Table is NULL. */
NTSTATUS RxCreateNetNameTable(PMRX_GET_CONNECTION_ID GetConnectionId,
                              USHORT MaximumNumberOfMids, USHORT MidsAllocatedAtStart,
                              ULONG Flags, PRX_OUTSTANDING_CONTEXT OutstandingContext,
                              PRX_NET_NAME_TABLE* Table);

/* Every PRX_NET_NAME must have been dereferenced; no other call may run during this one.
 * A NULL Table: nothing is done. */
VOID RxDestroyNetNameTable(PRX_NET_NAME_TABLE Table);

/* Calls GetConnectionId(RxContext, ...), then finds the entry (Name, ID) or creates it (a
 * net root also finds or creates its server call). STATUS_SUCCESS with a new reference in
 * *NetName; the provider's failure status unchanged; STATUS_OBJECT_NAME_INVALID for a bad
 * name; STATUS_INVALID_PARAMETER for a NULL Table, Name or NetName or a type that does not fit
 * the name; STATUS_OBJECT_NAME_COLLISION when the key exists as another type;
 * STATUS_INSUFFICIENT_RESOURCES. On failure *NetName is NULL (if NetName is not) and nothing
 * was created. RxContext may be NULL: it is only handed to GetConnectionId. */
NTSTATUS RxFindOrCreateNetName(PRX_NET_NAME_TABLE Table, PVOID RxContext, const char* Name,
                               size_t NameLength, RX_NET_NAME_TYPE Type, PRX_NET_NAME* NetName);

/* Longest-prefix lookup of Path with ConnectionId (NULL: the all-zero ID). STATUS_SUCCESS
 * with a new reference in *NetName and the length of the matched prefix in *PrefixLength
 * (the remaining name is Path + *PrefixLength); STATUS_NOT_FOUND; STATUS_OBJECT_NAME_INVALID;
 * STATUS_INVALID_PARAMETER for a NULL Table, Path, NetName or PrefixLength. On failure
 * *NetName is NULL and *PrefixLength 0 (those of them that are not NULL). Lock-free. */
NTSTATUS RxLookupNetName(PRX_NET_NAME_TABLE Table, const char* Path, size_t PathLength,
                         const RX_CONNECTION_ID* ConnectionId, PRX_NET_NAME* NetName,
                         size_t* PrefixLength);

/* Takes the entry out of the table (references stay valid). STATUS_SUCCESS, or
 * STATUS_NOT_FOUND when it was no longer in the table (or is another table's);
 * STATUS_INVALID_PARAMETER for a NULL Table or NetName. */
NTSTATUS RxRemoveNetName(PRX_NET_NAME_TABLE Table, PRX_NET_NAME NetName);

/* One more reference / one reference fewer. The last one takes the entry out of the table; a
 * server call's last one drains its atlas into OutstandingContext. A NULL NetName: nothing is
 * done. */
VOID RxReferenceNetName(PRX_NET_NAME NetName);
VOID RxDereferenceNetName(PRX_NET_NAME NetName);

/* The connection's (server call's) atlas: valid while the reference is held. Use the
 * midatlax.h routines on it, but never RxDestroyMidAtlas. NULL for a NULL NetName. */
PRX_MID_ATLAS RxGetNetNameMidAtlas(PRX_NET_NAME NetName);

/* The entry's type; RxNetNameInvalid for a NULL NetName. */
RX_NET_NAME_TYPE RxGetNetNameType(PRX_NET_NAME NetName);

/* The entry's name as first created, not NUL-terminated, valid while the reference is held;
 * its length goes to *NameLength unless NameLength is NULL. A NULL NetName gives NULL and a
 * length of 0. */
const char* RxGetNetNameName(PRX_NET_NAME NetName, size_t* NameLength);

/* Copies the entry's connection ID into *ConnectionId. A NULL NetName gives the all-zero ID;
 * a NULL ConnectionId: nothing is done. */
VOID RxGetNetNameConnectionId(PRX_NET_NAME NetName, PRX_CONNECTION_ID ConnectionId);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* NOLINTEND(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#endif /* MIDATLAS_NETNAME_H_ */
