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

/* How an association picks among the free MIDs. */
#define RX_MID_REUSE_COMPACT 0 /* recently freed low MIDs first: values stay low, memory shrinks */
#define RX_MID_REUSE_CYCLIC 1  /* the first free index at or after a moving cursor, over the whole
                                  index space (idr_alloc_cyclic): with G 0 and Max 50, a value
                                  recurs only after all 65536 came by */
#define RX_MID_REUSE_RANDOM 2  /* each index drawn uniformly from all free indexes of the index
                                  space by a CSPRNG seeded from the OS (RFC 5452) */

/* RxAssociateContextWithMidEx flag: may take the MidsReserved capacity. */
#define RX_MID_USE_RESERVE 0x1

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _RX_MID_ATLAS_PARAMETERS {
  USHORT MaximumNumberOfMids;  /* as RxCreateMidAtlas: the most MIDs held at once */
  USHORT MidsAllocatedAtStart; /* as RxCreateMidAtlas */
  UCHAR GenerationBits;        /* G, 0..15: MID = generation << (16 - G) | index */
  UCHAR ReusePolicy;           /* RX_MID_REUSE_COMPACT, _CYCLIC or _RANDOM */
  USHORT MidsReserved;         /* R < MaximumNumberOfMids: only RX_MID_USE_RESERVE takes these */
  USHORT NumberOfExcludedMids; /* values never handed out */
  const USHORT* ExcludedMids;  /* NumberOfExcludedMids values, any order, duplicates allowed */
} RX_MID_ATLAS_PARAMETERS, *PRX_MID_ATLAS_PARAMETERS;

/* NULL for NULL Parameters, the RxCreateMidAtlas errors (maximum 0, start 0 or above the
 * maximum, memory short), an unknown ReusePolicy, GenerationBits above
 * 15, MidsReserved >= MaximumNumberOfMids, NumberOfExcludedMids > 0 with NULL ExcludedMids,
 * or when MaximumNumberOfMids MIDs could not be in use at once: more than the index space
 * 2^(16 - G) less the indexes whose every value is excluded (with G = 0: 65536 less the
 * distinct excluded values). With COMPACT the indexes handed out are the lowest
 * MaximumNumberOfMids ones not wholly excluded; CYCLIC and RANDOM hand out any index of the
 * index space [0, 2^(16 - G)) not wholly excluded, MaximumNumberOfMids limiting how many are
 * held at once (their memory: up to 8 bytes per index, not returned while the atlas lives).
 * A zeroed tail behaves as RxCreateMidAtlas. Parameters and ExcludedMids
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

/* ---- Quarantine (after a cancel or a timeout) ----------------------------------------- */

/* Takes the context of an in-use MID and keeps the MID held: it counts in use and against
 * the limits, is never handed out, maps to NULL, and keeps LateContext (may be NULL) for a
 * response that still arrives. SUCCESS with *ContextPointer = its context. A MID not in use
 * (free, stale generation, already discarded): STATUS_INVALID_PARAMETER, *ContextPointer =
 * NULL, nothing changed. STATUS_INSUFFICIENT_RESOURCES when the atlas's first discard could
 * not allocate its quarantine (2 words per MID of the range). Of racing Discard and
 * RxMapAndDissociateMidFromContext calls on one MID exactly one gets the context.
 * Afterwards RxMapAndDissociateMidFromContext of the MID answers STATUS_CANCELLED with
 * *ContextPointer = LateContext the first time and NULL afterwards, and the MID stays
 * discarded (9P: a reply that beats the Rflush is still honoured, flush(5); DNS: pass NULL and
 * drop late answers). RxReassociateMid of a discarded MID: STATUS_INVALID_PARAMETER. */
NTSTATUS RxDiscardMid(PRX_MID_ATLAS MidAtlas, USHORT Mid, PVOID LateContext,
                      PVOID* ContextPointer);

/* Ends a discarded MID's quarantine: SUCCESS, the MID is free (or handed to a waiter), and
 * *LateContextPointer (when not NULL) = LateContext unless a late
 * RxMapAndDissociateMidFromContext took it (then NULL): LateContext goes out exactly once.
 * Not discarded, stale generation, free: STATUS_INVALID_PARAMETER, *LateContextPointer =
 * NULL. Of racing calls exactly one succeeds. RxIterateMidAtlasAndRemove also ends every
 * quarantine, handing a LateContext not yet taken (and not NULL) to its routine; destruction
 * hands such a LateContext to the destructor. */
NTSTATUS RxReleaseDiscardedMid(PRX_MID_ATLAS MidAtlas, USHORT Mid, PVOID* LateContextPointer);

/* MIDs in quarantine now (exact when no call runs). */
USHORT RxGetNumberOfDiscardedMids(PRX_MID_ATLAS MidAtlas);

/* ---- Waiting for a free MID (FIFO hand-off, no lost wake-ups) -------------------------- */

/* Associates Context, waiting up to TimeoutMilliseconds (0: one try; 0xFFFFFFFF: no limit)
 * for a MID. SUCCESS, or STATUS_TIMEOUT when none could be had in time. Flags as
 * RxAssociateContextWithMidEx; bad arguments: STATUS_INVALID_PARAMETER. */
NTSTATUS RxAssociateContextWithMidWait(PRX_MID_ATLAS MidAtlas, PVOID Context, ULONG Flags,
                                       ULONG TimeoutMilliseconds, PUSHORT NewMid);

typedef struct _RX_MID_WAIT_BLOCK {
  PVOID Reserved[8];
} RX_MID_WAIT_BLOCK, *PRX_MID_WAIT_BLOCK;

typedef VOID (*PRX_MID_WAIT_ROUTINE)(PRX_MID_WAIT_BLOCK WaitBlock, PVOID Context,
                                     NTSTATUS Status, USHORT Mid);

/* SUCCESS: associated now, *NewMid set, Routine never called. STATUS_PENDING: queued;
 * Routine is called exactly once, either (SUCCESS, mid) with Context already associated to
 * mid, on the thread that freed the MID (or, rarely, inside another caller's associate or
 * wait that served the queue first), or (STATUS_CANCELLED, 0) after RxCancelMidWait or
 * destruction. WaitBlock is the caller's (nothing is allocated per wait) and must live until
 * Routine is called. STATUS_INVALID_PARAMETER (nothing changed) for unknown flag bits, a NULL
 * context, routine, wait block or NewMid, or a wait block still queued. Routines may call any
 * atlas function but RxDestroyMidAtlas. */
NTSTATUS RxAssociateContextWithMidAsync(PRX_MID_ATLAS MidAtlas, PVOID Context, ULONG Flags,
                                        PRX_MID_WAIT_BLOCK WaitBlock,
                                        PRX_MID_WAIT_ROUTINE Routine, PUSHORT NewMid);

/* TRUE: WaitBlock was queued; its Routine has been called with STATUS_CANCELLED before this
 * returns. FALSE: a MID was already handed to it (its Routine runs or ran with SUCCESS). */
BOOLEAN RxCancelMidWait(PRX_MID_ATLAS MidAtlas, PRX_MID_WAIT_BLOCK WaitBlock);

/* Waiters queued now, blocking and asynchronous. Queued waiters are served in arrival order
 * among those whose flags allow the MID; while an eligible waiter is queued a freed MID goes
 * to it, never to a new caller, and every MID freed then reaches a waiter. */
USHORT RxGetNumberOfWaiters(PRX_MID_ATLAS MidAtlas);

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
