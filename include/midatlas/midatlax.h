/*
 * midatlax.h: the RDBSS MID_ATLAS routines, so that code written against the Windows
 * mini-redirector interface ports unchanged. Usable from C11 and C++, with C linkage.
 *
 * Unlike the original, every routine but RxDestroyMidAtlas may be called from any number of
 * threads at once without a caller-side lock (see midatlas/mid_atlas.h for the guarantees).
 *
 *   PRX_MID_ATLAS atlas = RxCreateMidAtlas(1024, 50);
 *   USHORT mid;
 *   if (RxAssociateContextWithMid(atlas, request, &mid) == STATUS_SUCCESS) { send(mid); }
 *   PVOID request_again = RxMapMidToContext(atlas, mid);          // on every response
 *   PVOID finished;
 *   RxMapAndDissociateMidFromContext(atlas, mid, &finished);      // on the final response
 *   RxDestroyMidAtlas(atlas, free_request);
 *
 * The Windows type names are defined only where a Windows header has not already defined
 * them (the _NTDEF_, _WINDEF_ and _MINWINDEF_ guards); the STATUS_* values are macros, as in
 * ntstatus.h, and each is defined only if not defined already.
 */
#ifndef MIDATLAS_MIDATLAX_H_
#define MIDATLAS_MIDATLAX_H_

/* The C API keeps the Windows names and C idioms (typedef, <stdint.h>, the _RX_MID_ATLAS
 * tag, PascalCase parameters) so that ported code reads the same. */
/* NOLINTBEGIN(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#include <stdint.h>

#if !defined(_NTDEF_) && !defined(MIDATLAS_HAVE_NTSTATUS)
#define MIDATLAS_HAVE_NTSTATUS 1
typedef int32_t NTSTATUS;
#endif

#if !defined(_WINDEF_) && !defined(_MINWINDEF_) && !defined(MIDATLAS_HAVE_WIN_BASE_TYPES)
#define MIDATLAS_HAVE_WIN_BASE_TYPES 1
typedef unsigned short USHORT;
typedef USHORT* PUSHORT;
typedef void* PVOID;
#ifndef VOID
#define VOID void
#endif
#endif

/* C++ callers often build with -Wold-style-cast; C has only the cast. */
#ifdef __cplusplus
#define MIDATLAS_NTSTATUS_VALUE(value) (static_cast<NTSTATUS>(value))
#else
#define MIDATLAS_NTSTATUS_VALUE(value) ((NTSTATUS)(value))
#endif

#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS MIDATLAS_NTSTATUS_VALUE(0x00000000UL)
#endif
#ifndef STATUS_UNSUCCESSFUL
#define STATUS_UNSUCCESSFUL MIDATLAS_NTSTATUS_VALUE(0xC0000001UL)
#endif
#ifndef STATUS_NOT_IMPLEMENTED
#define STATUS_NOT_IMPLEMENTED MIDATLAS_NTSTATUS_VALUE(0xC0000002UL)
#endif
#ifndef STATUS_INVALID_PARAMETER
#define STATUS_INVALID_PARAMETER MIDATLAS_NTSTATUS_VALUE(0xC000000DUL)
#endif
#ifndef STATUS_INSUFFICIENT_RESOURCES
#define STATUS_INSUFFICIENT_RESOURCES MIDATLAS_NTSTATUS_VALUE(0xC000009AUL)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque: only pointers to it exist outside the library. */
typedef struct _RX_MID_ATLAS RX_MID_ATLAS, *PRX_MID_ATLAS;

typedef void (*PCONTEXT_DESTRUCTOR)(PVOID Context);
typedef void (*PCONTEXT_ITERATOR)(PVOID Context);

/* NULL when MaximumNumberOfMids is 0, MidsAllocatedAtStart is 0 or greater than the
 * maximum, or memory is short. Allocates in proportion to MidsAllocatedAtStart. */
PRX_MID_ATLAS RxCreateMidAtlas(USHORT MaximumNumberOfMids, USHORT MidsAllocatedAtStart);

/* Hands every context still associated to Destructor (which may be NULL), once each, then
 * frees the atlas. No other call may use the atlas during or after this one. */
VOID RxDestroyMidAtlas(PRX_MID_ATLAS MidAtlas, PCONTEXT_DESTRUCTOR Destructor);

/* STATUS_SUCCESS and *NewMid; STATUS_INVALID_PARAMETER for a NULL atlas, context or NewMid;
 * STATUS_UNSUCCESSFUL when all MaximumNumberOfMids MIDs are in use;
 * STATUS_INSUFFICIENT_RESOURCES when a new MID_MAP could not be allocated (or, in an atlas
 * of more than 64 leaf maps, the scratch array that confirms that all MIDs are in use). */
NTSTATUS RxAssociateContextWithMid(PRX_MID_ATLAS MidAtlas, PVOID Context, PUSHORT NewMid);

/* The context of Mid, or NULL if Mid is not in use or MidAtlas is NULL. Wait-free. */
PVOID RxMapMidToContext(PRX_MID_ATLAS MidAtlas, USHORT Mid);

/* STATUS_SUCCESS with the context in *ContextPointer, and Mid is free again; for a Mid not
 * in use, STATUS_INVALID_PARAMETER with *ContextPointer set to NULL and nothing changed. */
NTSTATUS RxMapAndDissociateMidFromContext(PRX_MID_ATLAS MidAtlas, USHORT Mid,
                                          PVOID* ContextPointer);

/* Replaces the context of a Mid in use; STATUS_INVALID_PARAMETER for a free Mid or a NULL
 * NewContext, and nothing changes. */
NTSTATUS RxReassociateMid(PRX_MID_ATLAS MidAtlas, USHORT Mid, PVOID NewContext);

/* Dissociates every Mid in use, handing each context to Iterator exactly once. */
VOID RxIterateMidAtlasAndRemove(PRX_MID_ATLAS MidAtlas, PCONTEXT_ITERATOR Iterator);

/* 0 for a NULL atlas. */
USHORT RxGetMaximumNumberOfMids(PRX_MID_ATLAS MidAtlas);
USHORT RxGetNumberOfMidsInUse(PRX_MID_ATLAS MidAtlas);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* NOLINTEND(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#endif /* MIDATLAS_MIDATLAX_H_ */
