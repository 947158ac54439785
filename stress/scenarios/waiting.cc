// waiting: many waiters for few MIDs (docs/DESIGN.md 10.8), on an atlas with --genbits
// generation bits and --reserve reserved MIDs; "waiting" drives the C API (midatlax_ex.h),
// "waiting_cpp" MidAtlas (mid_atlas.h: MidWait handles and callbacks, AssociateWait). Every
// thread, in rounds of --round calls, holds up to --hold MIDs and
//   - queues asynchronous waits with its own wait blocks (RxAssociateContextWithMidAsync) or
//     handles (AssociateAsync), with and without the reserve flag, and cancels some of them
//     (RxCancelMidWait, MidWait::Cancel, or - C++ - by dropping the handle) while other
//     threads' frees race to hand them a MID;
//   - waits blocking with timeouts of 0 to 2 ms (RxAssociateContextWithMidWait,
//     AssociateWait), racing the hand-offs, and associates without waiting (which must queue
//     behind waiters);
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
// associated, or with STATUS_CANCELLED (Cancelled) inside the cancel of that block (which
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  kCancel,  // a cancel, or (C++) dropping a handle
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

bool IsFree(Call call) {
  return call == Call::kDissociate || call == Call::kRelease || call == Call::kIterate;
}

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

// A thread's wait block: the C block first, so the routine finds the rest from its address;
// with the C++ API, the handle of its current wait.
struct Block {
  RX_MID_WAIT_BLOCK block{};
  midatlas::MidWait handle;
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
void CallbackThunk(Block* block, absl::StatusOr<Mid> got);

// ----------------------------------------------------------------------------------------
// The atlas under test through either API. Answers are NTSTATUS values (the C++ front
// translates its statuses), so that the checks read the same for both.

class WaitApi {
 public:
  virtual ~WaitApi() = default;
  virtual bool Create(const ExShape& shape, std::uint32_t start, std::uint32_t reserve) = 0;
  [[nodiscard]] virtual bool created() const = 0;
  // Destroys the atlas, handing what it still holds to HandedThunk.
  virtual void Destroy() = 0;
  virtual NTSTATUS Associate(void* context, bool reserve, Mid* mid) = 0;
  virtual NTSTATUS Wait(void* context, bool reserve, std::uint32_t timeout_ms, Mid* mid) = 0;
  virtual NTSTATUS Async(Block& block, void* context, bool reserve, Mid* mid) = 0;
  virtual bool Cancel(Block& block) = 0;
  // C++: drops the block's handle, cancelling a wait still queued; false for the C API,
  // which has no handle.
  virtual bool Drop(Block& block) = 0;
  virtual void* Map(Mid mid) = 0;
  // A response: kOk with the context; STATUS_CANCELLED for a discarded MID, with its late
  // context the first time. `plain` (C++): MapAndDissociate, for MIDs not discarded.
  virtual NTSTATUS Dissociate(Mid mid, bool plain, void** context) = 0;
  virtual NTSTATUS Discard(Mid mid, void* late, void** context) = 0;
  virtual NTSTATUS Release(Mid mid, void** late) = 0;
  // The count handed out, where the API reports one.
  virtual std::optional<std::size_t> IterateAndRemove() = 0;
  virtual std::uint32_t waiters() = 0;
  virtual std::uint32_t in_use() = 0;
  virtual std::uint32_t discarded() = 0;
};

class CWait final : public WaitApi {
 public:
  ~CWait() override { Destroy(); }
  bool Create(const ExShape& shape, std::uint32_t start, std::uint32_t reserve) override {
    RX_MID_ATLAS_PARAMETERS p{};
    p.MaximumNumberOfMids = static_cast<USHORT>(shape.max());
    p.MidsAllocatedAtStart = static_cast<USHORT>(start);
    p.GenerationBits = static_cast<UCHAR>(shape.genbits());
    p.MidsReserved = static_cast<USHORT>(reserve);
    p.NumberOfExcludedMids = static_cast<USHORT>(shape.excluded().size());
    p.ExcludedMids = shape.excluded().data();
    atlas_ = RxCreateMidAtlasEx(&p);
    return atlas_ != nullptr;
  }
  [[nodiscard]] bool created() const override { return atlas_ != nullptr; }
  void Destroy() override {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, &HandedThunk);
    atlas_ = nullptr;
  }
  NTSTATUS Associate(void* context, bool reserve, Mid* mid) override {
    USHORT out = 0;
    const NTSTATUS status = RxAssociateContextWithMidEx(atlas_, context, Flags(reserve), &out);
    *mid = out;
    return status;
  }
  NTSTATUS Wait(void* context, bool reserve, std::uint32_t timeout_ms, Mid* mid) override {
    USHORT out = 0;
    const NTSTATUS status =
        RxAssociateContextWithMidWait(atlas_, context, Flags(reserve), timeout_ms, &out);
    *mid = out;
    return status;
  }
  NTSTATUS Async(Block& block, void* context, bool reserve, Mid* mid) override {
    USHORT out = 0;
    const NTSTATUS status = RxAssociateContextWithMidAsync(atlas_, context, Flags(reserve),
                                                           &block.block, &RoutineThunk, &out);
    *mid = out;
    return status;
  }
  bool Cancel(Block& block) override { return RxCancelMidWait(atlas_, &block.block) != FALSE; }
  bool Drop(Block& /*block*/) override { return false; }
  void* Map(Mid mid) override { return RxMapMidToContext(atlas_, mid); }
  NTSTATUS Dissociate(Mid mid, bool /*plain*/, void** context) override {
    return RxMapAndDissociateMidFromContext(atlas_, mid, context);
  }
  NTSTATUS Discard(Mid mid, void* late, void** context) override {
    return RxDiscardMid(atlas_, mid, late, context);
  }
  NTSTATUS Release(Mid mid, void** late) override {
    return RxReleaseDiscardedMid(atlas_, mid, late);
  }
  std::optional<std::size_t> IterateAndRemove() override {
    RxIterateMidAtlasAndRemove(atlas_, &HandedThunk);
    return std::nullopt;
  }
  std::uint32_t waiters() override { return RxGetNumberOfWaiters(atlas_); }
  std::uint32_t in_use() override { return RxGetNumberOfMidsInUse(atlas_); }
  std::uint32_t discarded() override { return RxGetNumberOfDiscardedMids(atlas_); }

 private:
  static ULONG Flags(bool reserve) { return reserve ? RX_MID_USE_RESERVE : 0; }
  PRX_MID_ATLAS atlas_ = nullptr;
};

class CppWait final : public WaitApi {
 public:
  bool Create(const ExShape& shape, std::uint32_t start, std::uint32_t reserve) override {
    absl::StatusOr<MidAtlas> created =
        MidAtlas::Create({.max_mids = shape.max(),
                          .initial_mids = start,
                          .context_destructor = [](void* p) { HandedThunk(p); },
                          .reserved_mids = reserve,
                          .excluded_mids = shape.excluded(),
                          .generation_bits = shape.genbits()});
    if (!created.ok()) return false;
    atlas_.emplace(*std::move(created));
    return true;
  }
  [[nodiscard]] bool created() const override { return atlas_.has_value(); }
  void Destroy() override { atlas_.reset(); }
  NTSTATUS Associate(void* context, bool reserve, Mid* mid) override {
    return Translate(atlas_->Associate(context, {.use_reserve = reserve}), mid);
  }
  NTSTATUS Wait(void* context, bool reserve, std::uint32_t timeout_ms, Mid* mid) override {
    return Translate(atlas_->AssociateWait(context, absl::Milliseconds(timeout_ms),
                                           {.use_reserve = reserve}),
                     mid);
  }
  NTSTATUS Async(Block& block, void* context, bool reserve, Mid* mid) override {
    Block* target = &block;
    absl::StatusOr<midatlas::MidWait> wait = atlas_->AssociateAsync(
        context, [target](absl::StatusOr<Mid> got) { CallbackThunk(target, std::move(got)); },
        {.use_reserve = reserve});
    if (!wait.ok()) return Translate(wait.status());
    const std::optional<Mid> at_once = wait->mid();
    // The block is not queued: its old handle, if any, has completed.
    block.handle = *std::move(wait);
    if (!at_once) return STATUS_PENDING;
    *mid = *at_once;
    return STATUS_SUCCESS;
  }
  bool Cancel(Block& block) override { return block.handle.Cancel(); }
  bool Drop(Block& block) override {
    block.handle = midatlas::MidWait();
    return true;
  }
  void* Map(Mid mid) override { return atlas_->Map(mid); }
  NTSTATUS Dissociate(Mid mid, bool plain, void** context) override {
    *context = nullptr;
    if (plain) {
      absl::StatusOr<void*> got = atlas_->MapAndDissociate(mid);
      if (got.ok()) *context = *got;
      return Translate(got.status());
    }
    absl::StatusOr<Dissociated> got = atlas_->MapAndDissociateOrLate(mid);
    if (!got.ok()) return Translate(got.status());
    *context = got->context;
    return got->late ? STATUS_CANCELLED : STATUS_SUCCESS;
  }
  NTSTATUS Discard(Mid mid, void* late, void** context) override {
    absl::StatusOr<void*> got = atlas_->Discard(mid, late);
    *context = got.ok() ? *got : nullptr;
    return Translate(got.status());
  }
  NTSTATUS Release(Mid mid, void** late) override {
    absl::StatusOr<void*> got = atlas_->ReleaseDiscarded(mid);
    *late = got.ok() ? *got : nullptr;
    return Translate(got.status());
  }
  std::optional<std::size_t> IterateAndRemove() override {
    return atlas_->IterateAndRemove([](void* p) { HandedThunk(p); });
  }
  std::uint32_t waiters() override { return atlas_->waiters(); }
  std::uint32_t in_use() override { return atlas_->mids_in_use(); }
  std::uint32_t discarded() override { return atlas_->discarded_mids(); }

 private:
  static NTSTATUS Translate(const absl::Status& status) {
    if (status.ok()) return STATUS_SUCCESS;
    if (IsAllMidsInUse(status)) return STATUS_UNSUCCESSFUL;
    if (absl::IsDeadlineExceeded(status)) return STATUS_TIMEOUT;
    if (absl::IsCancelled(status)) return STATUS_CANCELLED;
    if (absl::IsInvalidArgument(status)) return STATUS_INVALID_PARAMETER;
    return STATUS_INSUFFICIENT_RESOURCES;
  }
  static NTSTATUS Translate(const absl::StatusOr<Mid>& got, Mid* mid) {
    if (got.ok()) *mid = *got;
    return Translate(got.status());
  }
  std::optional<MidAtlas> atlas_;
};

struct ThreadState {
  std::vector<std::unique_ptr<Block>> blocks;
  std::vector<Held> held;                           // owner only
  std::vector<std::unique_ptr<Request>> requests;   // every request not yet settled
  std::uint64_t timeouts = 0, cancels = 0, cancel_lost = 0, handed = 0, immediate = 0;
  std::uint64_t waited = 0, discards = 0, releases = 0;
};

class WaitRun {
 public:
  WaitRun(const Flags& flags, Tally& tally, std::unique_ptr<WaitApi> api, const char* name)
      : flags_(flags),
        tally_(tally),
        api_(std::move(api)),
        name_(name),
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
    if (api_->created()) {
      // The last checkpoint drained it (or a failure stopped the run): what is left goes to
      // the destructor, and the run is over whatever it hands out.
      expected_handed_.clear();
      collecting_ = false;
      const InCall in(Call::kDestroy);
      api_->Destroy();
    }
    // Handles outlive the atlas that completed them (C++).
    for (ThreadState& me : states_) {
      for (auto& block : me.blocks) block->handle = midatlas::MidWait();
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
    tally_.Note("served_in_free", served_by_free_.load(std::memory_order_relaxed));
    tally_.Note("served_in_associate", served_by_associate_.load(std::memory_order_relaxed));
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
      // Relaxed: a count for the summary line, read after the joins.
      std::atomic<std::uint64_t>& where = IsFree(t_call) ? served_by_free_ : served_by_associate_;
      where.fetch_add(1, std::memory_order_relaxed);
      if (!MayHandOff(t_call)) {
        Fail("waiting: a hand-off routine ran inside a call that frees nothing (call %d)",
             static_cast<int>(t_call));
      }
      claims_.Claim(mid, "hand-off", local);
      void* mapped = nullptr;
      {
        const InCall in(Call::kMap);
        mapped = api_->Map(mid);
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
    ++handed_;
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
        ++handed_;
        return true;
      }
    }
    return false;
  }

  bool Create() {
    if (!api_->Create(shape_, std::min(flags_.start, flags_.max), flags_.reserve)) {
      Fail("%s: creating an atlas of max %u, G %u, reserve %u failed", name_, shape_.max(),
           shape_.genbits(), flags_.reserve);
      return false;
    }
    return true;
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

  bool PickReserve(std::mt19937_64& rng) const {
    return flags_.reserve != 0 && Below(rng, 3) == 0;
  }

  void Take(ThreadState& me, Request* request, Mid mid, const char* who, Local& local) {
    claims_.Claim(mid, who, local);
    request->state = State::kHeld;
    request->mid = mid;
    me.held.push_back({request});
    ++local.checks;
    const InCall in(Call::kMap);
    if (api_->Map(mid) != request) {
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
    Mid mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kAsync);
      status = api_->Async(*block, request, PickReserve(rng), &mid);
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
      Fail("waiting: the async associate answered 0x%08x",
           static_cast<unsigned>(status));
      block->armed.store(0, std::memory_order_relaxed);
      request->state = State::kNever;
    }
  }

  void WaitBlocking(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Request* request = NewRequest(me);
    const std::uint32_t timeout = Below(rng, 3);  // 0, 1 or 2 ms
    Mid mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kWait);
      status = api_->Wait(request, PickReserve(rng), timeout, &mid);
    }
    if (status == STATUS_SUCCESS) {
      ++me.waited;
      Take(me, request, mid, "blocking wait", local);
    } else if (status == STATUS_TIMEOUT) {
      ++me.timeouts;
      ++local.refused;
      request->state = State::kNever;
    } else {
      Fail("waiting: the blocking wait answered 0x%08x",
           static_cast<unsigned>(status));
      request->state = State::kNever;
    }
  }

  void AssociateNow(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Request* request = NewRequest(me);
    Mid mid = 0;
    NTSTATUS status = 0;
    ++local.ops;
    {
      const InCall in(Call::kAssociate);
      status = api_->Associate(request, PickReserve(rng), &mid);
    }
    if (status == STATUS_SUCCESS) {
      ++me.immediate;
      Take(me, request, mid, "associate", local);
    } else if (status == STATUS_UNSUCCESSFUL) {
      ++local.refused;
      request->state = State::kNever;
    } else {
      Fail("waiting: the associate answered 0x%08x", static_cast<unsigned>(status));
      request->state = State::kNever;
    }
  }

  void CancelOne(ThreadState& me, std::mt19937_64& rng, Local& local) {
    Block& block = *me.blocks[Below(rng, static_cast<std::uint32_t>(me.blocks.size()))];
    // C++: a third of the cancels drop the handle instead, which says nothing.
    const bool drop = Below(rng, 3) == 0;
    bool cancelled = false;
    bool answered = true;
    ++local.ops;
    {
      const InCall in(Call::kCancel);
      t_cancelling = &block;
      if (drop && api_->Drop(block)) {
        answered = false;
      } else {
        cancelled = api_->Cancel(block);
      }
      t_cancelling = nullptr;
    }
    local.checks += 2;
    if (!block.queued) {
      if (cancelled) Fail("waiting: a cancel of a block not queued answered TRUE");
      return;
    }
    if (!answered) {
      // Dropped: cancelled (its routine ran before the drop returned), or handed a MID (its
      // routine runs or ran on the freeing thread).
      while (block.calls.load(std::memory_order_acquire) == block.expected && !Failed()) {
        std::this_thread::yield();
      }
      cancelled = block.status.load(std::memory_order_relaxed) == STATUS_CANCELLED;
    }
    if (cancelled) {
      // Its routine ran with STATUS_CANCELLED before the cancel returned.
      const std::uint32_t calls = block.calls.load(std::memory_order_acquire);
      if (calls != block.expected + 1 ||
          block.status.load(std::memory_order_relaxed) != STATUS_CANCELLED) {
        Fail("waiting: a cancel answered TRUE, its routine ran %u times (status 0x%08x)",
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
      Fail("waiting: a cancel answered FALSE but the routine did not get a MID");
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
      status = api_->Dissociate(request->mid, Below(rng, 2) == 0, &context);
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
      status = api_->Discard(request->mid, request->late, &context);
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
      status = api_->Dissociate(request->mid, false, &context);
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
      status = api_->Release(request->mid, &late);
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
      seen = api_->Map(request->mid);
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
    if (api_->waiters() != queued) {
      Fail("waiting: %u waiters, %zu blocks queued", api_->waiters(), queued);
    }
    if (api_->in_use() != held) {
      Fail("waiting: %u MIDs in use, %zu held", api_->in_use(), held);
    }
    if (api_->discarded() != discarded) {
      Fail("waiting: %u MIDs discarded, %zu held discarded", api_->discarded(), discarded);
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

  // What a teardown (iterate-and-remove, destruction) must hand back, once each: every held
  // context, and the late context of every discarded MID whose late response was not taken.
  void ExpectHeldContextsBack() {
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
  }

  // Frees everything - one by one, or by iterate-and-remove - until nothing is held and nobody
  // waits (each free serves a waiter while one is queued); then every MID can be taken again
  // exactly max times.
  void Drain(bool iterate) {
    ++drains_;
    for (int pass = 0; pass < 4 * (threads_ + 1) * 3 + 8; ++pass) {
      std::size_t left = 0;
      if (iterate) {
        ExpectHeldContextsBack();
        for (ThreadState& me : states_) {
          for (const Held& h : me.held) claims_.Release(h.request->mid);
        }
        const std::size_t want = expected_handed_.size();
        collecting_ = true;
        handed_ = 0;
        std::optional<std::size_t> reported;
        {
          const InCall in(Call::kIterate);
          reported = api_->IterateAndRemove();
        }
        collecting_ = false;
        main_local_.checks += 2;
        if (!expected_handed_.empty()) {
          Fail("waiting: IterateAndRemove left out %zu of %zu contexts", expected_handed_.size(),
               want);
        }
        if (reported && *reported != handed_) {
          Fail("waiting: IterateAndRemove reported %zu, handed out %zu", *reported, handed_);
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
              status = api_->Release(request->mid, &context);
              if (status == STATUS_SUCCESS && context != nullptr) {
                request->late_deliveries.fetch_add(1, std::memory_order_relaxed);
                request->late_out = true;
              }
            } else {
              const InCall in(Call::kDissociate);
              status = api_->Dissociate(request->mid, false, &context);
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
    if (api_->waiters() != 0) {
      Fail("waiting: %u waiters left with every MID free", api_->waiters());
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
               const NTSTATUS status = api_->Associate(context, true, mid);
               if (status != STATUS_SUCCESS && status != STATUS_UNSUCCESSFUL) {
                 Fail("waiting end: an association answered 0x%08x", static_cast<unsigned>(status));
               }
               return status == STATUS_SUCCESS;
             },
         .map = [this](Mid mid) { return api_->Map(mid); },
         .dissociate =
             [this](Mid mid, void** context) {
               return api_->Dissociate(mid, false, context) == STATUS_SUCCESS;
             },
         .in_use = [this] { return api_->in_use(); }},
        name_, main_local_);
  }

  // Destroys the atlas with waiters queued, MIDs held and MIDs in quarantine: each queued
  // block's routine runs once with STATUS_CANCELLED, the destructor gets each held context
  // and each late context not taken, once. Then a new atlas.
  void DestroyWithWaiters() {
    ++destroys_;
    ExpectHeldContextsBack();
    collecting_ = true;
    {
      const InCall in(Call::kDestroy);
      api_->Destroy();
    }
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
  std::unique_ptr<WaitApi> api_;  // its atlas replaced only in checkpoints
  const char* name_;
  const int threads_;
  std::vector<std::mt19937_64> rngs_;  // one per thread, and the last for the checkpoints
  const ExShape shape_;
  IndexClaims claims_;
  const Bounds bounds_;
  std::vector<ThreadState> states_;
  Local main_local_;
  // What teardown may hand out now, and how many it did; checkpoint only.
  std::unordered_map<const void*, Expected> expected_handed_;
  std::size_t handed_ = 0;
  bool collecting_ = false;
  std::uint64_t drains_ = 0;
  std::uint64_t destroys_ = 0;
  std::uint64_t destroy_cancelled_ = 0;
  std::uint64_t removed_after_hand_off_ = 0;
  // Hand-off routines run inside a free (or release, or iterate) and inside an associate,
  // async associate or blocking wait that served the queue.
  std::atomic<std::uint64_t> served_by_free_{0};
  std::atomic<std::uint64_t> served_by_associate_{0};
};

VOID RoutineThunk(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  g_run->OnRoutine(block, context, status, mid);
}

VOID HandedThunk(PVOID context) { g_run->OnHanded(context); }

void CallbackThunk(Block* block, absl::StatusOr<Mid> got) {
  if (got.ok()) {
    g_run->OnRoutine(&block->block, block->request, STATUS_SUCCESS, *got);
  } else {
    if (!absl::IsCancelled(got.status())) Fail("waiting_cpp: a callback got another error");
    g_run->OnRoutine(&block->block, block->request, STATUS_CANCELLED, 0);
  }
}

}  // namespace

void RunWaiting(const Flags& flags, Tally& tally) {
  WaitRun(flags, tally, std::make_unique<CWait>(), "waiting").Run();
}

void RunWaitingCpp(const Flags& flags, Tally& tally) {
  WaitRun(flags, tally, std::make_unique<CppWait>(), "waiting_cpp").Run();
}

}  // namespace midatlas::stress
