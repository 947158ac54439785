/*
 * midatlax_ex.h: extensions to the RDBSS MID_ATLAS routines of midatlax.h, for protocols
 * that need more than the original: values that must never be handed out (SMB1's 0 and
 * 0xFFFF, 9P's NOTAG), capacity kept for requests that must not be refused when the
 * ordinary ones have taken everything else (a cancel, an echo, a flush), and generation bits
 * that keep a late response to a freed MID from reaching the request that reused it.
 *
 * Everything midatlax.h says still holds; every routine here may be called from any number
 * of threads at once. Usable from C11 and C++, with C linkage.
 *
 *   static const USHORT kNever[] = {0, 0xFFFF};
 *   RX_MID_ATLAS_PARAMETERS p = {0};
 *   p.MaximumNumberOfMids = 1024;
 *   p.MidsAllocatedAtStart = 50;
 *   p.MidsReserved = 4;                     // only RX_MID_USE_RESERVE may take the last 4
 *   p.NumberOfExcludedMids = 2;
 *   p.ExcludedMids = kNever;
 *   PRX_MID_ATLAS atlas = RxCreateMidAtlasEx(&p);
 *   USHORT mid;
 *   RxAssociateContextWithMidEx(atlas, request, 0, &mid);                   // up to 1020
 *   RxAssociateContextWithMidEx(atlas, cancel, RX_MID_USE_RESERVE, &mid);   // up to 1024
 */
#ifndef MIDATLAS_MIDATLAX_EX_H_
#define MIDATLAS_MIDATLAX_EX_H_

/* The Windows names and C idioms, as in midatlax.h. */
/* NOLINTBEGIN(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#include <midatlas/midatlax.h>
#include <stdint.h>

#if !defined(_WINDEF_) && !defined(_MINWINDEF_) && !defined(MIDATLAS_HAVE_WIN_EX_TYPES)
#define MIDATLAS_HAVE_WIN_EX_TYPES 1
typedef uint8_t UCHAR;
typedef uint32_t ULONG;
#endif
#if !defined(_NTDEF_) && !defined(_WINNT_) && !defined(MIDATLAS_HAVE_BOOLEAN)
#define MIDATLAS_HAVE_BOOLEAN 1
typedef uint8_t BOOLEAN;
#endif
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#ifndef STATUS_TIMEOUT
#define STATUS_TIMEOUT MIDATLAS_NTSTATUS_VALUE(0x00000102UL)
#endif
#ifndef STATUS_PENDING
#define STATUS_PENDING MIDATLAS_NTSTATUS_VALUE(0x00000103UL)
#endif
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED MIDATLAS_NTSTATUS_VALUE(0xC0000120UL)
#endif

/* How an association picks among the free MIDs. This release implements COMPACT:
 * RxCreateMidAtlasEx refuses (returns NULL for) CYCLIC and RANDOM. */
#define RX_MID_REUSE_COMPACT 0 /* recently freed low MIDs first: values stay low */
#define RX_MID_REUSE_CYCLIC 1  /* refused by RxCreateMidAtlasEx */
#define RX_MID_REUSE_RANDOM 2  /* refused by RxCreateMidAtlasEx */

/* RxAssociateContextWithMidEx flag: may take the MidsReserved capacity. */
#define RX_MID_USE_RESERVE 0x1

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _RX_MID_ATLAS_PARAMETERS {
  USHORT MaximumNumberOfMids;  /* as RxCreateMidAtlas: the most MIDs held at once */
  USHORT MidsAllocatedAtStart; /* as RxCreateMidAtlas */
  UCHAR GenerationBits;        /* G, 0..15: MID = generation << (16 - G) | index */
  UCHAR ReusePolicy;           /* RX_MID_REUSE_COMPACT (the others are refused) */
  USHORT MidsReserved;         /* R < MaximumNumberOfMids: only RX_MID_USE_RESERVE takes these */
  USHORT NumberOfExcludedMids; /* values never handed out */
  const USHORT* ExcludedMids;  /* NumberOfExcludedMids values, any order, duplicates allowed */
} RX_MID_ATLAS_PARAMETERS, *PRX_MID_ATLAS_PARAMETERS;

/* NULL for NULL Parameters, the RxCreateMidAtlas errors (maximum 0, start 0 or above the
 * maximum, memory short), ReusePolicy other than RX_MID_REUSE_COMPACT, GenerationBits above
 * 15, MidsReserved >= MaximumNumberOfMids, NumberOfExcludedMids > 0 with NULL ExcludedMids,
 * or when MaximumNumberOfMids MIDs could not be in use at once: more than the index space
 * 2^(16 - G) less the indexes whose every value is excluded (with G = 0: 65536 less the
 * distinct excluded values). The indexes handed out are the lowest MaximumNumberOfMids ones
 * not wholly excluded. A zeroed tail behaves as RxCreateMidAtlas. Parameters and ExcludedMids
 * are read only during the call.
 *
 * Generations (G > 0): each time an index is handed out again its generation advances (mod
 * 2^G, skipping excluded values), so a freed value recurs only after its index was reused
 * 2^G times (fewer when excluded values skip generations). Until then RxMapMidToContext,
 * RxMapAndDissociateMidFromContext and RxReassociateMid treat it exactly as a MID not in use.
 * A value that is not live, used while its index is being handed out again, may map to that
 * index's previous context only if it is the value the new association will carry - that
 * is, a value 2^G reuses old: the generations' limit, not a new one. */
PRX_MID_ATLAS RxCreateMidAtlasEx(const RX_MID_ATLAS_PARAMETERS* Parameters);

/* As RxAssociateContextWithMid, with Flags 0 or RX_MID_USE_RESERVE. Without the flag,
 * STATUS_UNSUCCESSFUL once MaximumNumberOfMids - MidsReserved MIDs are held (also for
 * RxAssociateContextWithMid); with it, up to MaximumNumberOfMids. Neither limit is exceeded
 * even for an instant under races. Unknown flag bits: STATUS_INVALID_PARAMETER. Excluded
 * values are never handed out by any call. */
NTSTATUS RxAssociateContextWithMidEx(PRX_MID_ATLAS MidAtlas, PVOID Context, ULONG Flags,
                                     PUSHORT NewMid);

/* Guarded lookups and deferred destruction of contexts. A guard keeps the context a guarded
 * map returned alive while it is held: a context retired with RxRetireContext (after its MID
 * was dissociated: RxMapAndDissociateMidFromContext, RxReassociateMid,
 * RxIterateMidAtlasAndRemove) is destroyed only once no guard that returned it is held, and at
 * the latest before RxDestroyMidAtlas returns.
 *
 *   RX_MID_GUARD guard;
 *   REQUEST *request = RxMapMidToContextGuarded(atlas, mid, &guard);
 *   if (request != NULL) {
 *     complete(request);               // safe even if another thread retires it meanwhile
 *     RxReleaseMidGuard(&guard);
 *   }
 *   ...
 *   RxMapAndDissociateMidFromContext(atlas, mid, &done);
 *   RxRetireContext(atlas, done, free_request);   // runs once no guard holds it
 *
 * The guard is the caller's storage (on its stack, say); its fields are private. */
typedef struct _RX_MID_GUARD {
  PVOID Reserved[4];
} RX_MID_GUARD, *PRX_MID_GUARD;
/* As RxMapMidToContext, and on success Guard holds the context until RxReleaseMidGuard.
 * NULL, with Guard left unset, when Mid is not in use (free, stale generation, out of range),
 * MidAtlas or Guard is NULL, or - rarely - the calling thread can get no hazard slot (memory
 * short on its first call, or for one more guard than it ever held at once). Lock-free,
 * takes no lock; allocates only on a thread's first call and when the thread holds more
 * guards at once than ever before. A thread may hold any number of guards. */
PVOID RxMapMidToContextGuarded(PRX_MID_ATLAS MidAtlas, USHORT Mid, PRX_MID_GUARD Guard);
/* Ends the protection of a Guard that a guarded map set (returned non-NULL), on the thread
 * that took it (hazard slots belong to one thread). Releasing an unset guard does nothing;
 * releasing a guard twice, or on another thread, is an error (caught in debug builds). A
 * guard must be released before RxDestroyMidAtlas. */
VOID RxReleaseMidGuard(PRX_MID_GUARD Guard);
/* Destructor(Context) runs exactly once, never while a guard from a guarded map that
 * returned Context is held, and at the latest before RxDestroyMidAtlas returns. Context's
 * MID must already be dissociated, and a context is retired once (a second retirement is
 * caught in debug builds). Every few retirements the calling thread runs the destructors
 * no guard holds; if memory for the retirement is short, it waits until no guard holds
 * Context and runs Destructor itself (so it never returns if the calling thread holds one).
 * Nothing happens for a NULL atlas, Context or Destructor. Destructors may call any routine
 * but RxDestroyMidAtlas. */
VOID RxRetireContext(PRX_MID_ATLAS MidAtlas, PVOID Context, PCONTEXT_DESTRUCTOR Destructor);
/* Before it returns, runs the destructor of every retired context that no guard holds.
 * Blocks while another thread runs retired destructors of this atlas; called from a
 * destructor, it does not wait for those. */
VOID RxFlushRetiredContexts(PRX_MID_ATLAS MidAtlas);
#ifdef __cplusplus
} /* extern "C" */
#endif

/* NOLINTEND(readability-identifier-naming, bugprone-reserved-identifier, modernize-deprecated-headers) */
#endif /* MIDATLAS_MIDATLAX_EX_H_ */
