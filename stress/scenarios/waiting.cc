// waiting: many waiters for few MIDs (docs/DESIGN.md 10.8) through the C API (midatlax_ex.h),
// on an atlas with --genbits generation bits and --reserve reserved MIDs. Every thread, in
// rounds of --round calls, holds up to --hold MIDs and
//   - queues asynchronous waits with its own wait blocks (RxAssociateContextWithMidAsync),
//     with and without the reserve flag, and cancels some of them (RxCancelMidWait) while
//     other threads' frees race to hand them a MID;
//   - waits blocking with timeouts of 0 to 2 ms (RxAssociateContextWithMidWait), racing
//     the hand-offs, and associates without waiting (which must queue behind waiters);
//   - frees what it holds, discards some MIDs with or without a late context, answers their
//     late responses and releases them (each release may hand the MID to a waiter).
// At each round's end, with no call running, a checkpoint compares the counts and then goes
// on, drains the atlas (frees everything, one by one or with RxIterateMidAtlasAndRemove, so
// that every queued waiter is served, then takes every MID again exactly max times), or
// destroys it with waiters queued, MIDs held and MIDs in quarantine, and makes it anew.
//
// Checked on every call: a routine runs only for a queued block, exactly once, with its own
// context - with SUCCESS inside a call that may serve the queue (a free, a release, an
// associate or a queued wait; never a cancel, a discard or a Map) and its MID already
// associated, or with STATUS_CANCELLED inside the RxCancelMidWait of that block (which
// answers TRUE only then) or inside the destruction; a MID handed out (at once, to a waiter, by
// a blocking wait) has a usable index nobody holds, and never more than max are held; every
// freed context and late context comes back exactly once. At each checkpoint: every queued
// block's routine has run exactly as often as its owner expects, the waiters, the MIDs in use
// and the discarded MIDs are what the threads hold; every request that timed out, was
// cancelled or was refused never reached the atlas's hands (no free, iterate or destructor
// gave it back); the destructor received exactly the contexts still held and the late
// contexts not taken; after a drain nobody waits and every MID can be taken again exactly max
// times (the run always ends with one).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax_ex.h"
#include "scenarios/common.h"
#include "scenarios/ex_common.h"
#include "scenarios/scenarios.h"

namespace midatlas::stress {
namespace {

// The atlas call a thread is in, so that a routine can tell where it runs.
enum class Call : std::uint8_t {
  kNone,
  kAssociate,  // RxAssociateContextWithMidEx
  kAsync,      // RxAssociateContextWithMidAsync
  kWait,       // RxAssociateContextWithMidWait
  kDissociate,
  kRelease,
  kIterate,
  kDiscard,
  kCancel,
  kMap,
  kDestroy,
};
thread_local Call t_call = Call::kNone;
thread_local const void* t_cancelling = nullptr;  // the block RxCancelMidWait is called for

class InCall {
 public:
  explicit InCall(Call call) : previous_(t_call) { t_call = call; }
  InCall(const InCall&) = delete;
  InCall& operator=(const InCall&) = delete;
  ~InCall() { t_call = previous_; }

 private:
  Call previous_;
};

// Whether a routine with SUCCESS may run inside `call`: those that free a MID or serve the
// queue before they associate.
bool MayHandOff(Call call) {
  return call == Call::kAssociate || call == Call::kAsync || call == Call::kWait ||
         call == Call::kDissociate || call == Call::kRelease || call == Call::kIterate;
}

enum class State : std::uint8_t {
  kNew,
  kQueued,     // its block is queued
  kHeld,       // associated: a thread holds its MID
  kDiscarded,  // its MID is in quarantine
  kFreed,      // its context came back (a free, a discard then a release, iterate, destroy)
  kNever,      // timed out, cancelled or refused: never associated
};

struct Request {
  // Plain: written by the owner (or by a checkpoint with no call running).
  State state = State::kNew;
  Mid mid = 0;
  void* late = nullptr;    // the late context its discard left: &late_tag or null
  bool late_out = false;   // its late context went out already (owner's view)
  bool released = false;
  // Served during a drain's iterate-and-remove and removed by that same call (checkpoint
  // only): its MID is free again, its context came back.
  bool removed = false;
  char late_tag = 0;       // its address is the late context
  // Relaxed: each counts hand-backs and detects a second by its atomicity; compared at the
  // checkpoints, after the barrier.
  std::atomic<int> deliveries{0};
  std::atomic<int> late_deliveries{0};
};

// A thread's wait block: the C block first, so the routine finds the rest from its address.
struct Block {
  RX_MID_WAIT_BLOCK block{};
  int owner = 0;
  Request* request = nullptr;  // plain: set by the owner before it queues the block
  bool queued = false;         // the owner's view: queued, completion not seen yet
  std::uint32_t expected = 0;  // routine calls the owner expects so far
  // 1 from just before the block is queued until its routine runs. Relaxed: the queueing
  // call's mutex orders the store before the routine's exchange.
  std::atomic<int> armed{0};
  // Written by the routine before its release increment of `calls`, read by the owner after
  // its acquire load of `calls`. Relaxed: `calls` orders them.
  std::atomic<NTSTATUS> status{0};
  std::atomic<Mid> mid{0};
  std::atomic<std::uint32_t> calls{0};
};
static_assert(offsetof(Block, block) == 0, "the routine finds its Block at the block's address");

struct Held {
  Request* request;
};

class WaitRun;
WaitRun* g_run = nullptr;  // for the C callbacks; set while the scenario runs

VOID RoutineThunk(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid);
VOID HandedThunk(PVOID context);

struct ThreadState {
  std::vector<std::unique_ptr<Block>> blocks;
  std::vector<Held> held;                           // owner only
  std::vector<std::unique_ptr<Request>> requests;   // every request not yet settled
  std::uint64_t timeouts = 0, cancels = 0, cancel_lost = 0, handed = 0, immediate = 0;
  std::uint64_t waited = 0, discards = 0, releases = 0;
};

class WaitRun {
 public:
  WaitRun(const Flags& flags, Tally& tally)
      : flags_(flags),
        tally_(tally),
        threads_(std::max(flags.threads, 2)),
        rngs_(RngsFor(flags.seed, threads_ + 1)),
        shape_(ExShape::Draw(flags.max, flags.genbits, rngs_.back())),
        claims_(shape_),
        bounds_(flags),
        states_(static_cast<std::size_t>(threads_)) {
    for (int t = 0; t < threads_; ++t) {
      ThreadState& state = states_[static_cast<std::size_t>(t)];
      for (int b = 0; b < 3; ++b) {
        auto block = std::make_unique<Block>();
        block->owner = t;
        state.blocks.push_back(std::move(block));
      }
    }
  }

  void Run() {
    g_run = this;
    if (!Failed() && Create()) {
      RunPhases(
          threads_, 1, [this](int t, int /*phase*/) { Work(t); },
          [this](int /*phase*/) { return Checkpoint(); });
    }
    if (atlas_ != nullptr) {
      // The last checkpoint drained it (or a failure stopped the run): what is left goes to
      // the destructor, and the run is over whatever it hands out.
      expected_handed_.clear();
      collecting_ = false;
      const InCall in(Call::kDestroy);
      RxDestroyMidAtlas(atlas_, &HandedThunk);
      atlas_ = nullptr;
    }
    g_run = nullptr;
    ThreadState sum;
    for (const ThreadState& s : states_) {
      sum.timeouts += s.timeouts;
      sum.cancels += s.cancels;
      sum.cancel_lost += s.cancel_lost;
      sum.handed += s.handed;
      sum.immediate += s.immediate;
      sum.waited += s.waited;
      sum.discards += s.discards;
      sum.releases += s.releases;
    }
    tally_.Note("genbits", shape_.genbits());
    tally_.Note("reserve", flags_.reserve);
    tally_.Note("immediate", sum.immediate);
    tally_.Note("queued_served", sum.handed);
    tally_.Note("blocking_served", sum.waited);
    tally_.Note("timeouts", sum.timeouts);
    tally_.Note("cancelled", sum.cancels);
    tally_.Note("cancel_too_late", sum.cancel_lost);
    tally_.Note("discards", sum.discards);
    tally_.Note("releases", sum.releases);
    tally_.Note("drains", drains_);
    tally_.Note("destroys", destroys_);
    tally_.Note("destroy_cancelled", destroy_cancelled_);
    tally_.Note("iterate_removed_served", removed_after_hand_off_);
    main_local_.FlushTo(tally_);
  }

  // --- the C callbacks -------------------------------------------------------------------

  void OnRoutine(PRX_MID_WAIT_BLOCK wait_block, PVOID context, NTSTATUS status, USHORT mid) {
    auto* block = reinterpret_cast<Block*>(wait_block);
    Local local;
    local.checks += 4;
    if (block->armed.exchange(0, std::memory_order_relaxed) != 1) {
      Fail("waiting: a routine ran for a block that was not queued, or ran twice");
    }
    if (context != block->request) Fail("waiting: a routine got another block's context");
    if (status == STATUS_SUCCESS) {
      if (!MayHandOff(t_call)) {
        Fail("waiting: a hand-off routine ran inside a call that frees nothing (call %d)",
             static_cast<int>(t_call));
      }
      claims_.Claim(mid, "hand-off", local);
      void* mapped = nullptr;
      {
        const InCall in(Call::kMap);
        mapped = RxMapMidToContext(atlas_, mid);
      }
      if (mapped != context) {
        Fail("waiting: MID %u handed to a waiter does not map to its context", mid);
      }
    } else if (status == STATUS_CANCELLED) {
      const bool by_cancel = t_call == Call::kCancel && t_cancelling == block;
      if (!by_cancel && t_call != Call::kDestroy) {
        Fail("waiting: a routine got STATUS_CANCELLED outside its cancel and the destruction");
      }
      if (mid != 0) Fail("waiting: a cancelled routine got MID %u", mid);
    } else {
      Fail("waiting: a routine got status 0x%08x", static_cast<unsigned>(status));
    }
    block->status.store(status, std::memory_order_relaxed);
    block->mid.store(mid, std::memory_order_relaxed);
    // Release: pairs with the owner's acquire load, which then reads status and mid.
    block->calls.fetch_add(1, std::memory_order_release);
    local.FlushTo(tally_);
  }

  // Destruction and IterateAndRemove: only what is expected, each once.
  void OnHanded(PVOID context) {
    if (Failed()) return;  // the teardown after a violation hands out whatever was left
    ++main_local_.checks;
    if (!collecting_) {
      Fail("waiting: a context was handed out with nothing held");
      return;
    }
    auto it = expected_handed_.find(context);
    if (it == expected_handed_.end()) {
      // Iterate-and-remove may hand a MID it frees to a waiter and then come upon that new
      // association further on: it dissociates it like any other in use.
      if (t_call == Call::kIterate && RemovedAfterHandOff(context)) return;
      Fail("waiting: teardown handed out a context it should not have (or one twice)");
      return;
    }
    Request* request = it->second.request;
    if (it->second.late) {
      request->late_deliveries.fetch_add(1, std::memory_order_relaxed);
    } else {
      request->deliveries.fetch_add(1, std::memory_order_relaxed);
    }
    expected_handed_.erase(it);
  }

 private:
  bool RemovedAfterHandOff(PVOID context) {
    for (ThreadState& me : states_) {
      for (auto& block : me.blocks) {
        Request* request = block->request;
        if (request != context || !block->queued || request->removed ||
            block->calls.load(std::memory_order_acquire) != block->expected + 1 ||
            block->status.load(std::memory_order_relaxed) != STATUS_SUCCESS) {
          continue;
        }
        request->removed = true;
        claims_.Release(block->mid.load(std::memory_order_relaxed));
        request->deliveries.fetch_add(1, std::memory_order_relaxed);
        ++removed_after_hand_off_;
        return true;
      }
    }
    return false;
  }

  bool Create() {
    RX_MID_ATLAS_PARAMETERS p{};
    p.MaximumNumberOfMids = static_cast<USHORT>(shape_.max());
    p.MidsAllocatedAtStart = static_cast<USHORT>(std::min(flags_.start, flags_.max));
    p.GenerationBits = static_cast<UCHAR>(shape_.genbits());
    p.MidsReserved = static_cast<USHORT>(flags_.reserve);
    p.NumberOfExcludedMids = static_cast<USHORT>(shape_.excluded().size());
    p.ExcludedMids = shape_.excluded().data();
    atlas_ = RxCreateMidAtlasEx(&p);
    if (atlas_ == nullptr) {
      Fail("waiting: creating an atlas of max %u, G %u, reserve %u failed", shape_.max(),
           shape_.genbits(), flags_.reserve);
    }
    return atlas_ != nullptr;
  }

  // --- a thread's round ------------------------------------------------------------------

  void Work(int t) {
    ThreadState& me = states_[static_cast<std::size_t>(t)];
    std::mt19937_64& rng = rngs_[static_cast<std::size_t>(t)];
    Local local;
    for (std::uint32_t i = 0; i < flags_.round && bounds_.Go(local.ops); ++i) {
      // Not every time: a cancel of a block served but not yet looked at must answer FALSE.
      if (Below(rng, 2) == 0) {
        for (auto& block : me.blocks) Poll(me, *block, local);
      }
      std::size_t queued = 0;
      for (auto& block : me.blocks) queued += block->queued ? 1U : 0U;
      const bool room = me.held.size() + queued < flags_.hold;
      const std::uint32_t pick = Below(rng, 16);
      if (pick < 3 && room) {
        QueueAsync(me, rng, local);
      } else if (pick < 4 && room) {
        WaitBlocking(me, rng, local);
      } else if (pick < 5 && room) {
        AssociateNow(me, rng, local);
      } else if (pick < 7) {
        CancelOne(me, rng, local);
      } else if (pick < 10) {
        FreeOne(me, rng, local);
      } else if (pick < 11) {
        DiscardOne(me, rng, local);
      } else if (pick < 12) {
        LateResponse(me, rng, local);
      } else if (pick < 14) {
        ReleaseOne(me, rng, local);
      } else {
        MapOne(me, rng, local);
      }
    }
    local.FlushTo(tally_);
  }

  Request* NewRequest(ThreadState& me) {
    me.requests.push_back(std::make_unique<Request>());
    return me.requests.back().get();
  }

  ULONG PickFlags(std::mt19937_64& rng) const {
    return flags_.reserve != 0 && Below(rng, 3) == 0 ? RX_MID_USE_RESERVE : 0;
  }

  void Take(ThreadState& me, Request* request, Mid mid, const char* who, Local& local) {
    claims_.Claim(mid, who, local);
    request->state = State::kHeld;
    request->mid = mid;
    me.held.push_back({request});
    ++local.checks;
    const InCall in(Call::kMap);
    if (RxMapMidToContext(atlas_, mid) != request) {
      Fail("waiting: MID %u (%s) does not map to its context", mid, who);
    }
  }

  // The owner's look at a queued block: has its routine run?
  void Poll(ThreadState& me, Block& block, Local& local) {
    if (!block.queued) return;
    // Acquire: pairs with the routine's release increment.
    const std::uint32_t calls = block.calls.load(std::memory_order_acquire);
    if (calls == block.expected) return;
    ++local.checks;
    if (calls != block.expected + 1) {
      Fail("waiting: a routine ran %u times", calls - block.expected);
    }
    block.expected = calls;
    block.queued = false;
    Request* request = block.request;
    if (block.status.load(std::memory_order_relaxed) != STATUS_SUCCESS) {
      Fail("waiting: a block nobody cancelled was cancelled");
      request->state = State::kNever;
      return;
    }
    const Mid mid = block.mid.load(std::memory_order_relaxed);
    if (request->removed) {
      request->state = State::kFreed;
      return;
    }
    // The routine claimed the index already.
    request->state = State::kHeld;
    request->mid = mid;
    me.held.push_back({request});
    ++me.handed;
  }

  void QueueAsync(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Block* block = nullptr;
    for (auto& candidate : me.blocks) {
      if (!candidate->queued) block = candidate.get();
    }
    if (block == nullptr) return;
    Request* request = NewRequest(me);
    block->request = request;
    block->armed.store(1, std::memory_order_relaxed);
    USHORT mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kAsync);
      status = RxAssociateContextWithMidAsync(atlas_, request, PickFlags(rng), &block->block,
                                              &RoutineThunk, &mid);
    }
    if (status == STATUS_SUCCESS) {
      ++local.checks;
      if (block->armed.exchange(0, std::memory_order_relaxed) != 1) {
        Fail("waiting: a routine ran for a wait that was associated at once");
      }
      ++me.immediate;
      Take(me, request, mid, "async at once", local);
    } else if (status == STATUS_PENDING) {
      request->state = State::kQueued;
      block->queued = true;
    } else {
      Fail("waiting: RxAssociateContextWithMidAsync answered 0x%08x",
           static_cast<unsigned>(status));
      block->armed.store(0, std::memory_order_relaxed);
      request->state = State::kNever;
    }
  }

  void WaitBlocking(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Request* request = NewRequest(me);
    const auto timeout = static_cast<ULONG>(Below(rng, 3));  // 0, 1 or 2 ms
    USHORT mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kWait);
      status = RxAssociateContextWithMidWait(atlas_, request, PickFlags(rng), timeout, &mid);
    }
    if (status == STATUS_SUCCESS) {
      ++me.waited;
      Take(me, request, mid, "blocking wait", local);
    } else if (status == STATUS_TIMEOUT) {
      ++me.timeouts;
      ++local.refused;
      request->state = State::kNever;
    } else {
      Fail("waiting: RxAssociateContextWithMidWait answered 0x%08x",
           static_cast<unsigned>(status));
      request->state = State::kNever;
    }
  }

  void AssociateNow(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Request* request = NewRequest(me);
    USHORT mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kAssociate);
      status = RxAssociateContextWithMidEx(atlas_, request, PickFlags(rng), &mid);
    }
    if (status == STATUS_SUCCESS) {
      ++me.immediate;
      Take(me, request, mid, "associate", local);
    } else if (status == STATUS_UNSUCCESSFUL) {
      ++local.refused;
      request->state = State::kNever;
    } else {
      Fail("waiting: RxAssociateContextWithMidEx answered 0x%08x", static_cast<unsigned>(status));
      request->state = State::kNever;
    }
  }

  void CancelOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Block& block = *me.blocks[Below(rng, static_cast<std::uint32_t>(me.blocks.size()))];
    BOOLEAN cancelled = FALSE;
    ++local.ops;
    {
      const InCall in(Call::kCancel);
      t_cancelling = &block;
      cancelled = RxCancelMidWait(atlas_, &block.block);
      t_cancelling = nullptr;
    }
    local.checks += 2;
    if (!block.queued) {
      if (cancelled != FALSE) Fail("waiting: RxCancelMidWait of a block not queued answered TRUE");
      return;
    }
    if (cancelled != FALSE) {
      // Its routine ran with STATUS_CANCELLED before the cancel returned.
      const std::uint32_t calls = block.calls.load(std::memory_order_acquire);
      if (calls != block.expected + 1 ||
          block.status.load(std::memory_order_relaxed) != STATUS_CANCELLED) {
        Fail("waiting: RxCancelMidWait answered TRUE, its routine ran %u times (status 0x%08x)",
             calls - block.expected,
             static_cast<unsigned>(block.status.load(std::memory_order_relaxed)));
      }
      block.expected = calls;
      block.queued = false;
      block.request->state = State::kNever;
      ++me.cancels;
      return;
    }
    // FALSE: a MID was handed to it; its routine runs, or ran, on the freeing thread, which is
    // inside its call now and returns from it only after the routine.
    ++me.cancel_lost;
    while (block.calls.load(std::memory_order_acquire) == block.expected && !Failed()) {
      std::this_thread::yield();
    }
    if (block.status.load(std::memory_order_relaxed) != STATUS_SUCCESS && !Failed()) {
      Fail("waiting: RxCancelMidWait answered FALSE but the routine did not get a MID");
    }
    Poll(me, block, local);
  }

  // A held MID picked at random: `discarded` says which kind.
  Held* PickHeld(ThreadState& me, std::mt19937_64& rng, bool discarded) {
    if (me.held.empty()) return nullptr;
    const auto start = Below(rng, static_cast<std::uint32_t>(me.held.size()));
    for (std::size_t k = 0; k < me.held.size(); ++k) {
      Held& held = me.held[(start + k) % me.held.size()];
      if ((held.request->state == State::kDiscarded) == discarded) return &held;
    }
    return nullptr;
  }

  void Forget(ThreadState& me, Held* held) {
    *held = me.held.back();
    me.held.pop_back();
  }

  void FreeOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Held* held = PickHeld(me, rng, false);
    if (held == nullptr) return;
    Request* request = held->request;
    claims_.Release(request->mid);
    PVOID context = nullptr;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kDissociate);
      status = RxMapAndDissociateMidFromContext(atlas_, request->mid, &context);
    }
    ++local.checks;
    if (status != STATUS_SUCCESS || context != request) {
      Fail("waiting: freeing held MID %u answered 0x%08x with another context", request->mid,
           static_cast<unsigned>(status));
    } else {
      request->deliveries.fetch_add(1, std::memory_order_relaxed);
    }
    request->state = State::kFreed;
    Forget(me, held);
  }

  void DiscardOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Held* held = PickHeld(me, rng, false);
    if (held == nullptr) return;
    Request* request = held->request;
    request->late = Below(rng, 4) == 0 ? nullptr : &request->late_tag;
    PVOID context = nullptr;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kDiscard);
      status = RxDiscardMid(atlas_, request->mid, request->late, &context);
    }
    ++local.checks;
    if (status != STATUS_SUCCESS || context != request) {
      Fail("waiting: discarding held MID %u answered 0x%08x with another context", request->mid,
           static_cast<unsigned>(status));
      return;
    }
    request->deliveries.fetch_add(1, std::memory_order_relaxed);
    request->state = State::kDiscarded;  // still held: the index stays claimed
    ++me.discards;
  }

  // A late response to one of its own discarded MIDs (never after the release: the value may
  // be another request's by then).
  void LateResponse(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Held* held = PickHeld(me, rng, true);
    if (held == nullptr) return;
    Request* request = held->request;
    PVOID context = AsContext(5);
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kDissociate);
      status = RxMapAndDissociateMidFromContext(atlas_, request->mid, &context);
    }
    ++local.checks;
    void* want = request->late_out ? nullptr : request->late;
    if (status != STATUS_CANCELLED || context != want) {
      Fail("waiting: a late response to discarded MID %u answered 0x%08x with %s", request->mid,
           static_cast<unsigned>(status), context == nullptr ? "no context" : "a wrong context");
      return;
    }
    if (context != nullptr) {
      request->late_out = true;
      request->late_deliveries.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void ReleaseOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Held* held = PickHeld(me, rng, true);
    if (held == nullptr) return;
    Request* request = held->request;
    // Released from the record first: the release may hand the index to a waiter at once.
    claims_.Release(request->mid);
    PVOID late = AsContext(5);
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kRelease);
      status = RxReleaseDiscardedMid(atlas_, request->mid, &late);
    }
    ++local.checks;
    void* want = request->late_out ? nullptr : request->late;
    if (status != STATUS_SUCCESS || late != want) {
      Fail("waiting: releasing discarded MID %u answered 0x%08x with %s", request->mid,
           static_cast<unsigned>(status), late == nullptr ? "no late context" : "a wrong one");
    } else if (late != nullptr) {
      request->late_out = true;
      request->late_deliveries.fetch_add(1, std::memory_order_relaxed);
    }
    request->released = true;
    request->state = State::kFreed;
    ++me.releases;
    Forget(me, held);
  }

  void MapOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    if (me.held.empty()) return;
    const Request* request =
        me.held[Below(rng, static_cast<std::uint32_t>(me.held.size()))].request;
    void* seen = nullptr;
    ++local.ops;
    {
      const InCall in(Call::kMap);
      seen = RxMapMidToContext(atlas_, request->mid);
    }
    ++local.checks;
    const void* want = request->state == State::kDiscarded ? nullptr : request;
    if (seen != want) Fail("waiting: Map(%u) of a MID it holds is wrong", request->mid);
  }

  // --- checkpoints -----------------------------------------------------------------------

  // With no call running.
  bool Checkpoint() {
    // After a violation the threads stop where they are: nothing more to compare.
    if (Failed()) return true;
    std::size_t held = 0;
    std::size_t discarded = 0;
    std::size_t queued = 0;
    for (ThreadState& me : states_) {
      for (auto& block : me.blocks) Poll(me, *block, main_local_);
      for (auto& block : me.blocks) {
        ++main_local_.checks;
        if (block->calls.load(std::memory_order_relaxed) != block->expected) {
          Fail("waiting: a block's routine ran %u times, its owner expected %u",
               block->calls.load(std::memory_order_relaxed), block->expected);
        }
        queued += block->queued ? 1U : 0U;
      }
      held += me.held.size();
      for (const Held& h : me.held) discarded += h.request->state == State::kDiscarded ? 1 : 0;
    }
    main_local_.checks += 4;
    if (RxGetNumberOfWaiters(atlas_) != queued) {
      Fail("waiting: %u waiters, %zu blocks queued", RxGetNumberOfWaiters(atlas_), queued);
    }
    if (RxGetNumberOfMidsInUse(atlas_) != held) {
      Fail("waiting: %u MIDs in use, %zu held", RxGetNumberOfMidsInUse(atlas_), held);
    }
    if (RxGetNumberOfDiscardedMids(atlas_) != discarded) {
      Fail("waiting: %u MIDs discarded, %zu held discarded", RxGetNumberOfDiscardedMids(atlas_),
           discarded);
    }
    if (claims_.count() != static_cast<std::int64_t>(held)) {
      Fail("waiting: the record holds %lld MIDs, the threads %zu",
           static_cast<long long>(claims_.count()), held);
    }
    tally_.rounds.fetch_add(1, std::memory_order_relaxed);
    const bool done = bounds_.Done(tally_.ops.load(std::memory_order_relaxed));
    if (!Failed()) {
      std::mt19937_64& rng = rngs_.back();
      const std::uint32_t pick = Below(rng, 4);
      if (done || pick == 0) {
        Drain(Below(rng, 2) == 0);
      } else if (pick == 1) {
        DestroyWithWaiters();
      }
    }
    Settle();
    return done;
  }

  // Frees everything - one by one, or by iterate-and-remove - until nothing is held and nobody
  // waits (each free serves a waiter while one is queued); then every MID can be taken again
  // exactly max times.
  void Drain(bool iterate) {
    ++drains_;
    for (int pass = 0; pass < 4 * (threads_ + 1) * 3 + 8; ++pass) {
      std::size_t left = 0;
      if (iterate) {
        expected_handed_.clear();
        for (ThreadState& me : states_) {
          for (const Held& h : me.held) {
            Request* request = h.request;
            if (request->state == State::kDiscarded) {
              if (request->late != nullptr && !request->late_out) {
                expected_handed_[request->late] = {request, true};
              }
            } else {
              expected_handed_[request] = {request, false};
            }
          }
        }
        for (ThreadState& me : states_) {
          for (const Held& h : me.held) claims_.Release(h.request->mid);
        }
        collecting_ = true;
        {
          const InCall in(Call::kIterate);
          RxIterateMidAtlasAndRemove(atlas_, &HandedThunk);
        }
        collecting_ = false;
        ++main_local_.checks;
        if (!expected_handed_.empty()) {
          Fail("waiting: IterateAndRemove left out %zu contexts", expected_handed_.size());
        }
        for (ThreadState& me : states_) {
          for (const Held& h : me.held) {
            if (h.request->state == State::kDiscarded && h.request->late != nullptr) {
              h.request->late_out = true;
            }
            h.request->state = State::kFreed;
          }
          me.held.clear();
        }
      } else {
        for (ThreadState& me : states_) {
          while (!me.held.empty()) {
            Request* request = me.held.back().request;
            claims_.Release(request->mid);
            PVOID context = nullptr;
            NTSTATUS status = 0;
            if (request->state == State::kDiscarded) {
              const InCall in(Call::kRelease);
              status = RxReleaseDiscardedMid(atlas_, request->mid, &context);
              if (status == STATUS_SUCCESS && context != nullptr) {
                request->late_deliveries.fetch_add(1, std::memory_order_relaxed);
                request->late_out = true;
              }
            } else {
              const InCall in(Call::kDissociate);
              status = RxMapAndDissociateMidFromContext(atlas_, request->mid, &context);
              if (status == STATUS_SUCCESS && context == request) {
                request->deliveries.fetch_add(1, std::memory_order_relaxed);
              }
            }
            ++main_local_.checks;
            if (status != STATUS_SUCCESS) {
              Fail("waiting: draining MID %u answered 0x%08x", request->mid,
                   static_cast<unsigned>(status));
            }
            request->state = State::kFreed;
            me.held.pop_back();
          }
        }
      }
      // The waiters served meanwhile hold MIDs now.
      for (ThreadState& me : states_) {
        for (auto& block : me.blocks) {
          Poll(me, *block, main_local_);
          left += block->queued ? 1U : 0U;
        }
        left += me.held.size();
      }
      if (left == 0 || Failed()) break;
    }
    main_local_.checks += 2;
    if (RxGetNumberOfWaiters(atlas_) != 0) {
      Fail("waiting: %u waiters left with every MID free", RxGetNumberOfWaiters(atlas_));
      return;
    }
    if (claims_.count() != 0) {
      Fail("waiting: drained, the record still holds %lld",
           static_cast<long long>(claims_.count()));
      return;
    }
    CheckTakesMaxAgain(
        shape_,
        {.associate_with_reserve =
             [this](void* context, Mid* mid) {
               USHORT out = 0;
               const NTSTATUS status =
                   RxAssociateContextWithMidEx(atlas_, context, RX_MID_USE_RESERVE, &out);
               if (status != STATUS_SUCCESS && status != STATUS_UNSUCCESSFUL) {
                 Fail("waiting end: an association answered 0x%08x", static_cast<unsigned>(status));
               }
               *mid = out;
               return status == STATUS_SUCCESS;
             },
         .map = [this](Mid mid) { return RxMapMidToContext(atlas_, mid); },
         .dissociate =
             [this](Mid mid, void** context) {
               return RxMapAndDissociateMidFromContext(atlas_, mid, context) == STATUS_SUCCESS;
             },
         .in_use = [this] { return std::uint32_t{RxGetNumberOfMidsInUse(atlas_)}; }},
        "waiting", main_local_);
  }

  // Destroys the atlas with waiters queued, MIDs held and MIDs in quarantine: each queued
  // block's routine runs once with STATUS_CANCELLED, the destructor gets each held context
  // and each late context not taken, once. Then a new atlas.
  void DestroyWithWaiters() {
    ++destroys_;
    expected_handed_.clear();
    for (ThreadState& me : states_) {
      for (const Held& h : me.held) {
        Request* request = h.request;
        if (request->state == State::kDiscarded) {
          if (request->late != nullptr && !request->late_out) {
            expected_handed_[request->late] = {request, true};
          }
        } else {
          expected_handed_[request] = {request, false};
        }
      }
    }
    collecting_ = true;
    {
      const InCall in(Call::kDestroy);
      RxDestroyMidAtlas(atlas_, &HandedThunk);
    }
    atlas_ = nullptr;
    collecting_ = false;
    ++main_local_.checks;
    if (!expected_handed_.empty()) {
      Fail("waiting: destruction left out %zu contexts", expected_handed_.size());
    }
    for (ThreadState& me : states_) {
      for (const Held& h : me.held) {
        if (h.request->state == State::kDiscarded && h.request->late != nullptr) {
          h.request->late_out = true;
        }
        h.request->state = State::kFreed;
      }
      me.held.clear();
      for (auto& block : me.blocks) {
        if (!block->queued) continue;
        ++main_local_.checks;
        const std::uint32_t calls = block->calls.load(std::memory_order_acquire);
        if (calls != block->expected + 1 ||
            block->status.load(std::memory_order_relaxed) != STATUS_CANCELLED) {
          Fail("waiting: destruction ran a queued block's routine %u times",
               calls - block->expected);
        }
        block->expected = calls;
        block->queued = false;
        block->request->state = State::kNever;
        ++destroy_cancelled_;
      }
    }
    claims_.Reset();
    Create();
  }

  // Requests whose story is over: each came back exactly as often as it should.
  void Settle() {
    for (ThreadState& me : states_) {
      std::vector<std::unique_ptr<Request>> open;
      for (auto& request : me.requests) {
        const State state = request->state;
        if (state != State::kFreed && state != State::kNever) {
          open.push_back(std::move(request));
          continue;
        }
        const int deliveries = request->deliveries.load(std::memory_order_relaxed);
        const int late = request->late_deliveries.load(std::memory_order_relaxed);
        main_local_.checks += 2;
        if (deliveries != (state == State::kFreed ? 1 : 0)) {
          Fail("waiting: a %s request's context came back %d times",
               state == State::kFreed ? "freed" : "never associated", deliveries);
        }
        const int want_late = request->late != nullptr && request->late_out ? 1 : 0;
        if (late != want_late) {
          Fail("waiting: a late context went out %d times, not %d", late, want_late);
        }
        if (request->late != nullptr && request->released && !request->late_out) {
          Fail("waiting: a released MID's late context never went out");
        }
      }
      me.requests = std::move(open);
    }
  }

  struct Expected {
    Request* request;
    bool late;
  };

  const Flags& flags_;
  Tally& tally_;
  const int threads_;
  std::vector<std::mt19937_64> rngs_;  // one per thread, and the last for the checkpoints
  const ExShape shape_;
  IndexClaims claims_;
  const Bounds bounds_;
  std::vector<ThreadState> states_;
  Local main_local_;
  PRX_MID_ATLAS atlas_ = nullptr;  // replaced only in checkpoints
  // What teardown may hand out now; checkpoint only.
  std::unordered_map<const void*, Expected> expected_handed_;
  bool collecting_ = false;
  std::uint64_t drains_ = 0;
  std::uint64_t destroys_ = 0;
  std::uint64_t destroy_cancelled_ = 0;
  std::uint64_t removed_after_hand_off_ = 0;
};

VOID RoutineThunk(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  g_run->OnRoutine(block, context, status, mid);
}

VOID HandedThunk(PVOID context) { g_run->OnHanded(context); }

}  // namespace

void RunWaiting(const Flags& flags, Tally& tally) { WaitRun(flags, tally).Run(); }

}  // namespace midatlas::stress
