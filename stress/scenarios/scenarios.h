// The scenarios of atlas_stress (--scenario=NAME), one file each in this folder; atlas_stress.cc
// lists them for the harness (harness/harness.h). Each is seeded, bounded by time and by total
// calls, orders its threads with latches and barriers only, checks its invariants on every
// call (not only at the end), and ends with the same check (CheckDrainedAndReusable,
// common.h): no MID in use, every MID maps to null, all max MIDs can be taken again (one more
// is refused as all-in-use), and the memory attached is back within twice the fresh size.
//
//   mixed       (the default; from --start=1 the grow/shrink storm) waves, churners and
//               mappers on one atlas that grows by thousands of MIDs and shrinks again, with
//               a full check of every MID at each checkpoint (mixed.cc)
//   reqresp     request/response through a relaxed mailbox: MIDs handed to two holders, wrong
//               or stale requests and lost MIDs (reqresp.cc)
//   readmostly  many readers, few writers: every Map result was live during the call
//               (readmostly.cc)
//   exhaustion  a small max hammered by all threads: never more than max held, exactly max
//               when all are refused (exhaustion.cc)
//   teardown    IterateAndRemove and destruction race with dissociates and reassociates:
//               every context reaches exactly one owner (teardown.cc)
//   duplicates  every thread map-and-dissociates every MID: exactly one call wins each
//               context (duplicates.cc)
//   guards      guarded lookups race with retirements whose destructors poison the context:
//               no reader holding a guard ever sees a destroyed context, and every retired
//               context is destroyed exactly once (guards.cc)
//   late        late and duplicate responses with stale values, discard/release races and the
//               quarantine, with --genbits generation bits and excluded values, through the C
//               API; late_cpp through MidAtlas; late_cpp_plain answers late responses with
//               MidAtlas::MapAndDissociate (late.cc)
//   waiting     many waiters for few MIDs through the C API: async waits and cancels, blocking
//               waits with timeouts, all racing hand-offs, discards and releases mixed in,
//               destruction with waiters queued; --genbits, --reserve; waiting_cpp through
//               MidAtlas (MidWait handles, AssociateWait) (waiting.cc)
//
// late* and waiting* end with their own check (CheckTakesMaxAgain, ex_common.h), which knows
// generations and exclusions; they alone take --genbits (and waiting* --reserve).
#ifndef MIDATLAS_STRESS_SCENARIOS_SCENARIOS_H_
#define MIDATLAS_STRESS_SCENARIOS_SCENARIOS_H_

#include "harness/harness.h"

namespace midatlas::stress {

void RunMixed(const Flags& flags, Tally& tally);
void RunRequestResponse(const Flags& flags, Tally& tally);
void RunReadMostly(const Flags& flags, Tally& tally);
void RunExhaustion(const Flags& flags, Tally& tally);
void RunTeardown(const Flags& flags, Tally& tally);
void RunDuplicates(const Flags& flags, Tally& tally);
void RunGuards(const Flags& flags, Tally& tally);
void RunLate(const Flags& flags, Tally& tally);
void RunLateCpp(const Flags& flags, Tally& tally);
void RunLateCppPlain(const Flags& flags, Tally& tally);
void RunWaiting(const Flags& flags, Tally& tally);
void RunWaitingCpp(const Flags& flags, Tally& tally);

}  // namespace midatlas::stress

#endif  // MIDATLAS_STRESS_SCENARIOS_SCENARIOS_H_
