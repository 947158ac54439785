// late: late and duplicate responses with stale values, and the quarantine (docs/DESIGN.md
// 10.3, 10.6), on an atlas with --genbits generation bits (0 included) and excluded values.
//
// Rounds of two phases:
//   0 associate: every thread associates fresh requests. Nothing frees a MID in this phase,
//     so each index is handed out at most once per round and the checkpoint knows exactly
//     which generation each new association must carry;
//   1 answer: every thread walks all MIDs of the round (and those still in quarantine) in its
//     own order. The owner of a request answers it as its plan says: a response
//     (map-and-dissociate), or a discard leaving a late context or none, released at once or
//     in a later round. The other threads send duplicate responses, racing discards and
//     releases and Map calls for the same MIDs, and at a high rate late responses (and Map,
//     discard and release calls) with stale values: values of earlier rounds, values of this
//     round under another generation, random values. Nothing associates in this phase, so
//     every value answers for at most one association: the one of the round, or the one in
//     quarantine, that holds exactly that value.
//
// Checked on every call: a context is returned only for its own value - a stale value never
// reaches another request (with G = 0 a reused value *is* the new request's; with G > 0 only a
// value 2^G reuses old can be, and the checkpoint proves each generation is the next one); a
// Cancelled answer comes only for a value under discard, with that discard's late context or
// none; each request and each late context goes out exactly once; a discard and a release
// each succeed at most once per association. At each checkpoint: the counts (in use,
// discarded), the generation of every new association (exactly the next one not excluded),
// no excluded value and no index beyond the usable ones handed out, every request of the
// round taken exactly once, every late context of a released MID out exactly once, every value
// mapping to null once all are answered (all 65536 every 8th round). Every 8th round the atlas
// is destroyed with MIDs in quarantine (the destructor gets each late context not taken, once)
// and made anew. At the end IterateAndRemove ends every quarantine, handing out each late
// context not taken once, and every MID can be taken again exactly max times.
//
// "late" drives the C API (midatlax_ex.h), "late_cpp" MidAtlas (mid_atlas.h, with
// MapAndDissociateOrLate for responses). "late_cpp_plain" sends every other response through
// MidAtlas::MapAndDissociate instead, which must answer Cancelled for a discarded MID and
// leave its late context for a later MapAndDissociateOrLate or the release.
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax_ex.h"
#include "scenarios/common.h"
#include "scenarios/ex_common.h"
#include "scenarios/scenarios.h"

namespace midatlas::stress {
namespace {

// ----------------------------------------------------------------------------------------
// The atlas under test, through either API. Each answer is one of these; anything else the
// API could answer (an out-of-memory status, a context left set on a refusal) is kOther.

enum class Answer { kOk, kNotInUse, kCancelled, kRefused, kOther };

// Where destruction and IterateAndRemove hand contexts. The C API's callbacks are plain
// function pointers, so they reach the scenario through this pointer, set while one runs.
std::function<void(void*)>* g_handed = nullptr;
void HandToScenario(PVOID context) { (*g_handed)(context); }

class LateApi {
 public:
  virtual ~LateApi() = default;
  virtual bool Create(const ExShape& shape, std::uint32_t start) = 0;
  // Destroys the atlas (if any), handing what it still holds to *g_handed.
  virtual void Destroy() = 0;
  virtual Answer Associate(void* context, bool use_reserve, Mid* mid) = 0;
  virtual void* Map(Mid mid) = 0;
  // kOk with the context; kCancelled with the late context handed out (or null); kNotInUse.
  virtual Answer Dissociate(Mid mid, void** context) = 0;
  virtual Answer Discard(Mid mid, void* late, void** context) = 0;
  virtual Answer Release(Mid mid, void** late) = 0;
  virtual std::uint32_t in_use() = 0;
  virtual std::uint32_t discarded() = 0;
  // The count the API reports; none from the C call.
  virtual std::optional<std::size_t> IterateAndRemove() = 0;
};

class CLate final : public LateApi {
 public:
  ~CLate() override { Destroy(); }
  bool Create(const ExShape& shape, std::uint32_t start) override {
    RX_MID_ATLAS_PARAMETERS p{};
    p.MaximumNumberOfMids = static_cast<USHORT>(shape.max());
    p.MidsAllocatedAtStart = static_cast<USHORT>(start);
    p.GenerationBits = static_cast<UCHAR>(shape.genbits());
    p.ReusePolicy = RX_MID_REUSE_COMPACT;
    p.NumberOfExcludedMids = static_cast<USHORT>(shape.excluded().size());
    p.ExcludedMids = shape.excluded().data();
    atlas_ = RxCreateMidAtlasEx(&p);
    return atlas_ != nullptr;
  }
  void Destroy() override {
    if (atlas_ != nullptr) RxDestroyMidAtlas(atlas_, &HandToScenario);
    atlas_ = nullptr;
  }
  Answer Associate(void* context, bool use_reserve, Mid* mid) override {
    USHORT out = 0;
    const NTSTATUS status = RxAssociateContextWithMidEx(
        atlas_, context, use_reserve ? RX_MID_USE_RESERVE : 0, &out);
    if (status == STATUS_SUCCESS) {
      *mid = out;
      return Answer::kOk;
    }
    return status == STATUS_UNSUCCESSFUL ? Answer::kRefused : Answer::kOther;
  }
  void* Map(Mid mid) override { return RxMapMidToContext(atlas_, mid); }
  Answer Dissociate(Mid mid, void** context) override {
    PVOID got = AsContext(5);  // the call must overwrite it
    const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas_, mid, &got);
    *context = got;
    return Classify(status, got);
  }
  Answer Discard(Mid mid, void* late, void** context) override {
    PVOID got = AsContext(5);
    const NTSTATUS status = RxDiscardMid(atlas_, mid, late, &got);
    *context = got;
    return Classify(status, got);
  }
  Answer Release(Mid mid, void** late) override {
    PVOID got = AsContext(5);
    const NTSTATUS status = RxReleaseDiscardedMid(atlas_, mid, &got);
    *late = got;
    return Classify(status, got);
  }
  std::uint32_t in_use() override { return RxGetNumberOfMidsInUse(atlas_); }
  std::uint32_t discarded() override { return RxGetNumberOfDiscardedMids(atlas_); }
  std::optional<std::size_t> IterateAndRemove() override {
    RxIterateMidAtlasAndRemove(atlas_, &HandToScenario);
    return std::nullopt;
  }

 private:
  static Answer Classify(NTSTATUS status, PVOID out) {
    if (status == STATUS_SUCCESS) return Answer::kOk;
    if (status == STATUS_CANCELLED) return Answer::kCancelled;
    if (status == STATUS_INVALID_PARAMETER && out == nullptr) return Answer::kNotInUse;
    return Answer::kOther;
  }
  PRX_MID_ATLAS atlas_ = nullptr;
};

class CppLate final : public LateApi {
 public:
  // plain: every other response (per thread) through MapAndDissociate (a discarded MID
  // answers Cancelled and keeps its late context), the rest through MapAndDissociateOrLate.
  explicit CppLate(bool plain) : plain_(plain) {}
  bool Create(const ExShape& shape, std::uint32_t start) override {
    absl::StatusOr<MidAtlas> created =
        MidAtlas::Create({.max_mids = shape.max(),
                          .initial_mids = start,
                          .context_destructor = [](void* p) { (*g_handed)(p); },
                          .excluded_mids = shape.excluded(),
                          .generation_bits = shape.genbits()});
    if (!created.ok()) return false;
    atlas_ = *std::move(created);
    return true;
  }
  void Destroy() override { atlas_.reset(); }
  Answer Associate(void* context, bool use_reserve, Mid* mid) override {
    absl::StatusOr<Mid> got = atlas_->Associate(context, {.use_reserve = use_reserve});
    if (got.ok()) {
      *mid = *got;
      return Answer::kOk;
    }
    return IsAllMidsInUse(got.status()) ? Answer::kRefused : Answer::kOther;
  }
  void* Map(Mid mid) override { return atlas_->Map(mid); }
  Answer Dissociate(Mid mid, void** context) override {
    *context = nullptr;
    thread_local std::uint64_t calls = 0;
    if (plain_ && (++calls & 1) != 0) {
      absl::StatusOr<void*> got = atlas_->MapAndDissociate(mid);
      if (got.ok()) *context = *got;
      return got.ok() ? Answer::kOk : Classify(got.status());
    }
    absl::StatusOr<Dissociated> got = atlas_->MapAndDissociateOrLate(mid);
    if (!got.ok()) return Classify(got.status());
    *context = got->context;
    return got->late ? Answer::kCancelled : Answer::kOk;
  }
  Answer Discard(Mid mid, void* late, void** context) override {
    *context = nullptr;
    absl::StatusOr<void*> got = atlas_->Discard(mid, late);
    if (!got.ok()) return Classify(got.status());
    *context = *got;
    return Answer::kOk;
  }
  Answer Release(Mid mid, void** late) override {
    *late = nullptr;
    absl::StatusOr<void*> got = atlas_->ReleaseDiscarded(mid);
    if (!got.ok()) return Classify(got.status());
    *late = *got;
    return Answer::kOk;
  }
  std::uint32_t in_use() override { return atlas_->mids_in_use(); }
  std::uint32_t discarded() override { return atlas_->discarded_mids(); }
  std::optional<std::size_t> IterateAndRemove() override {
    return atlas_->IterateAndRemove([](void* p) { (*g_handed)(p); });
  }

 private:
  static Answer Classify(const absl::Status& status) {
    if (absl::IsInvalidArgument(status)) return Answer::kNotInUse;
    if (absl::IsCancelled(status)) return Answer::kCancelled;
    return Answer::kOther;
  }
  bool plain_;
  std::optional<MidAtlas> atlas_;
};

// ----------------------------------------------------------------------------------------
// Requests and their late contexts.

enum class Plan : std::uint8_t {
  kRespond,         // the owner map-and-dissociates it
  kDiscardRelease,  // the owner discards it and releases it at once
  kDiscardKeep,     // the owner discards it; it stays in quarantine into later rounds
};

struct Request;

// A late context: what a discard leaves for a response that still arrives.
struct Late {
  Request* of = nullptr;
  std::atomic<int> deliveries{0};
};

struct Request {
  Request() { late_context.of = this; }
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  // Plain: written by the owner in phase 0 (or by a checkpoint), read after a barrier.
  Mid mid = 0;
  int owner = 0;
  Plan plan = Plan::kRespond;
  bool carried = false;   // in quarantine since an earlier round
  void* late = nullptr;   // the late context every discard of it leaves: &late_context or null
  // Relaxed throughout: each counts successes and detects a second one by its atomicity; the
  // counts are compared in the checkpoints, after the barrier.
  std::atomic<int> deliveries{0};
  std::atomic<int> discards{0};
  std::atomic<int> releases{0};
  // Set before any discard of it is called. Relaxed: a Cancelled answer that follows that
  // discard synchronizes with it through the atlas (the claim's release, discard:Q3, and the
  // responder's acquire, discard:Q2), which orders this store before the responder's load.
  std::atomic<bool> discard_tried{false};
  Late late_context;
};

// The per-thread counts the summary line reports.
struct LateCounts {
  std::uint64_t stale = 0;           // calls with a stale, perturbed or random value
  std::uint64_t stale_refused = 0;   // ... answered "not in use"
  std::uint64_t value_hits = 0;      // ... answered for the live association of that value
  std::uint64_t late_taken = 0;      // Cancelled answers that handed out the late context
  std::uint64_t cancelled = 0;       // Cancelled answers
  std::uint64_t discards = 0;        // successful discards
  std::uint64_t releases = 0;        // successful releases
};

class LateRun {
 public:
  LateRun(const Flags& flags, Tally& tally, std::unique_ptr<LateApi> api, const char* name)
      : flags_(flags),
        tally_(tally),
        api_(std::move(api)),
        name_(name),
        threads_(std::max(flags.threads, 2)),
        rngs_(RngsFor(flags.seed, threads_ + 1)),
        shape_(ExShape::Draw(flags.max, flags.genbits, rngs_.back())),
        bounds_(flags),
        fresh_(static_cast<std::size_t>(threads_)),
        counts_(static_cast<std::size_t>(threads_)),
        last_gen_(shape_.index_space(), shape_.NoGeneration()),
        held_by_index_(shape_.index_space(), nullptr),
        by_value_(65536, nullptr) {}

  void Run() {
    std::function<void(void*)> handed = [this](void* p) { OnHanded(p); };
    g_handed = &handed;
    if (!Failed() && Create()) {
      RunPhases(
          threads_, 2,
          [this](int t, int phase) { phase == 0 ? AssociatePhase(t) : AnswerPhase(t); },
          [this](int phase) { return Checkpoint(phase); });
      End();
    }
    api_->Destroy();
    g_handed = nullptr;
    LateCounts sum;
    for (const LateCounts& c : counts_) {
      sum.stale += c.stale;
      sum.stale_refused += c.stale_refused;
      sum.value_hits += c.value_hits;
      sum.late_taken += c.late_taken;
      sum.cancelled += c.cancelled;
      sum.discards += c.discards;
      sum.releases += c.releases;
    }
    tally_.Note("genbits", shape_.genbits());
    tally_.Note("excluded", shape_.excluded().size());
    tally_.Note("stale", sum.stale);
    tally_.Note("stale_refused", sum.stale_refused);
    tally_.Note("value_hits", sum.value_hits);
    tally_.Note("cancelled", sum.cancelled);
    tally_.Note("late_taken", sum.late_taken);
    tally_.Note("discards", sum.discards);
    tally_.Note("releases", sum.releases);
    tally_.Note("renewals", renewals_);
    main_local_.FlushTo(tally_);
  }

 private:
  bool Create() {
    if (!api_->Create(shape_, std::min(flags_.start, flags_.max))) {
      Fail("%s: creating an atlas of max %u, G %u, %zu exclusions failed", name_, shape_.max(),
           shape_.genbits(), shape_.excluded().size());
      return false;
    }
    return true;
  }

  // --- phase 0 ---------------------------------------------------------------------------

  void AssociatePhase(int t) {
    std::mt19937_64& rng = rngs_[static_cast<std::size_t>(t)];
    auto& list = fresh_[static_cast<std::size_t>(t)];
    Local local;
    for (std::uint32_t i = 0; i < per_thread_; ++i) {
      auto request = std::make_unique<Request>();
      request->owner = t;
      const std::uint32_t pick = Below(rng, 4);
      request->plan = pick < 2 ? Plan::kRespond
                               : (pick == 2 ? Plan::kDiscardRelease : Plan::kDiscardKeep);
      request->late = Below(rng, 4) == 0 ? nullptr : &request->late_context;
      ++local.ops;
      Mid mid = 0;
      const Answer answer = api_->Associate(request.get(), Below(rng, 2) == 0, &mid);
      if (answer == Answer::kRefused) {
        ++local.refused;
        break;
      }
      if (answer != Answer::kOk) {
        Fail("%s: thread %d: an association failed other than as all-in-use", name_, t);
        break;
      }
      request->mid = mid;
      list.push_back(std::move(request));
    }
    local.FlushTo(tally_);
  }

  // With no call running: every new association carries the next generation of its index,
  // of a usable index nobody holds, and maps to its request.
  void CheckAssociated() {
    entries_.clear();
    for (auto& request : quarantine_) {
      by_value_[request->mid] = request.get();
      entries_.push_back(request.get());
    }
    for (auto& list : fresh_) {
      for (auto& request : list) {
        const Mid mid = request->mid;
        const std::uint32_t index = shape_.IndexOf(mid);
        main_local_.checks += 5;
        if (shape_.IsExcluded(mid) || !shape_.IsUsable(index)) {
          Fail("%s: MID %u handed out: excluded, or of an index beyond the usable ones", name_,
               mid);
          continue;
        }
        if (held_by_index_[index] != nullptr) {
          Fail("%s: MID %u handed out while MID %u of its index was held", name_, mid,
               held_by_index_[index]->mid);
          continue;
        }
        const std::uint32_t want = shape_.NextGen(index, last_gen_[index]);
        if (shape_.GenOf(mid) != want) {
          Fail("%s: MID %u of index %u carries generation %u; after generation %u the next is %u",
               name_, mid, index, shape_.GenOf(mid), last_gen_[index], want);
        }
        last_gen_[index] = shape_.GenOf(mid);
        held_by_index_[index] = request.get();
        by_value_[mid] = request.get();
        if (api_->Map(mid) != request.get()) Fail("%s: Map(%u) is not its request", name_, mid);
        entries_.push_back(request.get());
        round_.push_back(std::move(request));
      }
      list.clear();
    }
    main_local_.checks += 2;
    if (api_->in_use() != entries_.size()) {
      Fail("%s: %u MIDs in use, %zu held", name_, api_->in_use(), entries_.size());
    }
    if (api_->discarded() != quarantine_.size()) {
      Fail("%s: %u MIDs discarded, %zu in quarantine", name_, api_->discarded(),
           quarantine_.size());
    }
  }

  // --- phase 1 ---------------------------------------------------------------------------

  void AnswerPhase(int t) {
    std::mt19937_64& rng = rngs_[static_cast<std::size_t>(t)];
    LateCounts& counts = counts_[static_cast<std::size_t>(t)];
    Local local;
    std::vector<Request*> order = entries_;
    std::shuffle(order.begin(), order.end(), rng);
    for (Request* request : order) {
      if (Failed()) break;
      const Mid mid = request->mid;
      if (request->owner == t) {
        Own(request, rng, counts, local);
      } else {
        const std::uint32_t pick = Below(rng, 16);
        if (pick < 4) {
          Respond(mid, "duplicate response", counts, local);
        } else if (pick < 6) {
          TryDiscard(mid, counts, local);
        } else if (pick < 8) {
          TryRelease(mid, counts, local);
        } else if (pick < 12) {
          CheckMap(mid, local);
        }
      }
      if (Below(rng, 2) == 0) Stale(mid, rng, counts, local);
    }
    local.FlushTo(tally_);
  }

  void Own(Request* request, std::mt19937_64& rng, LateCounts& counts, Local& local) {
    const Mid mid = request->mid;
    if (request->carried) {
      if (Below(rng, 2) == 0) TryRelease(mid, counts, local);
      return;
    }
    switch (request->plan) {
      case Plan::kRespond:
        Respond(mid, "owner's response", counts, local);
        break;
      case Plan::kDiscardRelease:
        TryDiscard(mid, counts, local);
        TryRelease(mid, counts, local);
        break;
      case Plan::kDiscardKeep:
        TryDiscard(mid, counts, local);
        break;
    }
  }

  // A value from earlier rounds, this round's value under another generation, or any value;
  // answered by the call chosen at random, whose answer must be what the value deserves.
  void Stale(Mid current, std::mt19937_64& rng, LateCounts& counts, Local& local) {
    Mid value = 0;
    const std::uint32_t pick = Below(rng, 4);
    if (pick < 2 && !history_.empty()) {
      value = history_[Below(rng, static_cast<std::uint32_t>(history_.size()))];
    } else if (pick < 3) {
      value = shape_.ValueOf(Below(rng, 1U << shape_.genbits()), shape_.IndexOf(current));
    } else {
      value = static_cast<Mid>(rng());
    }
    ++counts.stale;
    const Request* live = by_value_[value];
    const std::uint32_t call = Below(rng, 16);
    bool refused = false;
    if (call < 10) {
      refused = Respond(value, "late response", counts, local) == Answer::kNotInUse;
    } else if (call < 14) {
      refused = CheckMap(value, local) == nullptr;
    } else if (call < 15) {
      refused = TryDiscard(value, counts, local) == Answer::kNotInUse;
    } else {
      refused = TryRelease(value, counts, local) == Answer::kNotInUse;
    }
    if (refused) {
      ++counts.stale_refused;
    } else if (live != nullptr) {
      ++counts.value_hits;
    }
  }

  // A response (map-and-dissociate) for `value`. Only the association holding exactly this
  // value may answer it: kOk with its request, or kCancelled (under discard) with its late
  // context or none.
  Answer Respond(Mid value, const char* who, LateCounts& counts, Local& local) {
    Request* live = by_value_[value];
    void* context = nullptr;
    ++local.ops;
    local.checks += 2;
    const Answer answer = api_->Dissociate(value, &context);
    switch (answer) {
      case Answer::kOk:
        if (live == nullptr || context != live) {
          Fail("%s: a %s for MID %u received %s", name_, who, value,
               live == nullptr ? "a context, though no association holds that value"
                               : "another association's context");
        } else {
          Deliver(live, who);
        }
        break;
      case Answer::kCancelled:
        ++counts.cancelled;
        if (live == nullptr || !live->discard_tried.load(std::memory_order_relaxed)) {
          Fail("%s: a %s for MID %u answered Cancelled, but that value was never discarded",
               name_, who, value);
        } else if (context != nullptr) {
          if (context != live->late) {
            Fail("%s: a %s for discarded MID %u received a late context not its own", name_, who,
                 value);
          } else {
            ++counts.late_taken;
            DeliverLate(live, who);
          }
        }
        break;
      case Answer::kNotInUse:
        break;
      default:
        Fail("%s: a %s for MID %u got an unexpected answer", name_, who, value);
        break;
    }
    return answer;
  }

  Answer TryDiscard(Mid value, LateCounts& counts, Local& local) {
    Request* live = by_value_[value];
    // The late context is the request's own, whoever discards it (so the one a late response
    // or the release hands out is known whichever discard won).
    void* late = live != nullptr ? live->late : AsContext(7);
    if (live != nullptr) live->discard_tried.store(true, std::memory_order_relaxed);
    void* context = nullptr;
    ++local.ops;
    local.checks += 2;
    const Answer answer = api_->Discard(value, late, &context);
    if (answer == Answer::kOk) {
      ++counts.discards;
      if (live == nullptr || context != live) {
        Fail("%s: Discard(%u) took %s", name_, value,
             live == nullptr ? "a context no association of that value holds"
                             : "another association's context");
      } else {
        if (live->discards.fetch_add(1, std::memory_order_relaxed) != 0) {
          Fail("%s: MID %u was discarded twice", name_, value);
        }
        Deliver(live, "discard");
      }
    } else if (answer != Answer::kNotInUse) {
      Fail("%s: Discard(%u) got an unexpected answer", name_, value);
    }
    return answer;
  }

  Answer TryRelease(Mid value, LateCounts& counts, Local& local) {
    Request* live = by_value_[value];
    void* late = nullptr;
    ++local.ops;
    local.checks += 2;
    const Answer answer = api_->Release(value, &late);
    if (answer == Answer::kOk) {
      ++counts.releases;
      if (live == nullptr) {
        Fail("%s: ReleaseDiscarded(%u) succeeded for a value no association holds", name_, value);
      } else {
        if (live->releases.fetch_add(1, std::memory_order_relaxed) != 0) {
          Fail("%s: discarded MID %u was released twice", name_, value);
        }
        if (late != nullptr) {
          if (late != live->late) {
            Fail("%s: ReleaseDiscarded(%u) handed out a late context not its own", name_, value);
          } else {
            DeliverLate(live, "release");
          }
        }
      }
    } else if (answer != Answer::kNotInUse) {
      Fail("%s: ReleaseDiscarded(%u) got an unexpected answer", name_, value);
    }
    return answer;
  }

  void* CheckMap(Mid value, Local& local) {
    ++local.ops;
    ++local.checks;
    void* seen = api_->Map(value);
    if (seen != nullptr && seen != by_value_[value]) {
      Fail("%s: Map(%u) returned a context not of the association holding that value", name_,
           value);
    }
    return seen;
  }

  void Deliver(Request* request, const char* to) {
    if (request->deliveries.fetch_add(1, std::memory_order_relaxed) != 0) {
      Fail("%s: the request of MID %u reached a second taker (%s)", name_, request->mid, to);
    }
  }
  void DeliverLate(Request* request, const char* to) {
    if (request->late_context.deliveries.fetch_add(1, std::memory_order_relaxed) != 0) {
      Fail("%s: the late context of MID %u went out a second time (%s)", name_, request->mid, to);
    }
  }

  // What destruction and IterateAndRemove hand out: only late contexts not taken yet.
  void OnHanded(void* context) {
    if (Failed()) return;  // the teardown after a violation hands out whatever was left
    ++handed_;
    ++main_local_.checks;
    for (auto& request : quarantine_) {
      if (context == request->late && context != nullptr) {
        DeliverLate(request.get(), "teardown");
        return;
      }
    }
    Fail("%s: teardown handed out a context that is no late context in quarantine", name_);
  }

  // With no call running: every request of the round was taken exactly once; a released one
  // gave its late context out exactly once, one still in quarantine at most once.
  void CheckAnswered() {
    // After a violation the threads stop where they are: what they left unanswered says
    // nothing more.
    if (Failed()) return;
    std::vector<std::unique_ptr<Request>> kept;
    auto settle = [&](std::unique_ptr<Request>& request) {
      const int taken = request->deliveries.load(std::memory_order_relaxed);
      const int discards = request->discards.load(std::memory_order_relaxed);
      const int releases = request->releases.load(std::memory_order_relaxed);
      const int late = request->late_context.deliveries.load(std::memory_order_relaxed);
      main_local_.checks += 3;
      if (taken != 1) {
        Fail("%s: the request of MID %u was taken %d times", name_, request->mid, taken);
      }
      if (releases > discards) {
        Fail("%s: MID %u released %d times after %d discards", name_, request->mid, releases,
             discards);
      }
      by_value_[request->mid] = nullptr;
      history_.push_back(request->mid);
      if (discards == 1 && releases == 0) {
        if (late > (request->late != nullptr ? 1 : 0)) {
          Fail("%s: quarantined MID %u handed out its late context %d times", name_,
               request->mid, late);
        }
        request->carried = true;
        kept.push_back(std::move(request));
        return;
      }
      const int want = discards == 1 && request->late != nullptr ? 1 : 0;
      if (late != want) {
        Fail("%s: MID %u (%d discards, %d releases) handed out its late context %d times, not %d",
             name_, request->mid, discards, releases, late, want);
      }
      held_by_index_[shape_.IndexOf(request->mid)] = nullptr;
    };
    for (auto& request : quarantine_) settle(request);
    for (auto& request : round_) settle(request);
    round_.clear();
    quarantine_ = std::move(kept);
    main_local_.checks += 2;
    if (api_->in_use() != quarantine_.size()) {
      Fail("%s: %u MIDs in use, %zu in quarantine", name_, api_->in_use(), quarantine_.size());
    }
    if (api_->discarded() != quarantine_.size()) {
      Fail("%s: %u MIDs discarded, %zu in quarantine", name_, api_->discarded(),
           quarantine_.size());
    }
    // Everything answered: no value maps to a context.
    if (rounds_ % 8 == 0) {
      for (std::uint32_t value = 0; value < 65536; ++value) {
        ++main_local_.checks;
        if (api_->Map(static_cast<Mid>(value)) != nullptr) {
          Fail("%s: Map(%u) found a context with every request answered", name_, value);
          break;
        }
      }
    } else {
      for (const Mid value : history_) {
        ++main_local_.checks;
        if (api_->Map(value) != nullptr) {
          Fail("%s: Map(%u) found a context with every request answered", name_, value);
          break;
        }
      }
    }
    constexpr std::size_t kHistory = 2048;
    if (history_.size() > kHistory) {
      history_.erase(history_.begin(),
                     history_.begin() + static_cast<std::ptrdiff_t>(history_.size() - kHistory));
    }
  }

  // Destroys the atlas with MIDs in quarantine: the destructor gets each late context not
  // taken, once. Then a new atlas of the same shape.
  void Renew() {
    handed_ = 0;
    std::size_t want = 0;
    for (auto& request : quarantine_) {
      if (request->late != nullptr &&
          request->late_context.deliveries.load(std::memory_order_relaxed) == 0) {
        ++want;
      }
    }
    api_->Destroy();
    CheckLateContextsOut("destruction", want);
    quarantine_.clear();
    std::fill(last_gen_.begin(), last_gen_.end(), shape_.NoGeneration());
    std::fill(held_by_index_.begin(), held_by_index_.end(), nullptr);
    ++renewals_;
    Create();
  }

  void CheckLateContextsOut(const char* by, std::size_t want) {
    main_local_.checks += 1 + quarantine_.size();
    if (handed_ != want) {
      Fail("%s: %s handed out %zu late contexts, %zu were not taken", name_, by, handed_, want);
    }
    for (auto& request : quarantine_) {
      const int late = request->late_context.deliveries.load(std::memory_order_relaxed);
      if (late != (request->late != nullptr ? 1 : 0)) {
        Fail("%s: after %s the late context of MID %u went out %d times", name_, by,
             request->mid, late);
      }
    }
  }

  bool Checkpoint(int phase) {
    if (phase == 0) {
      CheckAssociated();
      return false;
    }
    CheckAnswered();
    ++rounds_;
    tally_.rounds.fetch_add(1, std::memory_order_relaxed);
    if (rounds_ % 8 == 7 && !Failed()) Renew();
    // Room for the next round: what the quarantine leaves, shared among the threads.
    const std::uint32_t room = shape_.max() - static_cast<std::uint32_t>(quarantine_.size());
    per_thread_ = std::max<std::uint32_t>(
        1, std::min<std::uint32_t>(64, room / static_cast<std::uint32_t>(threads_)));
    return bounds_.Done(tally_.ops.load(std::memory_order_relaxed));
  }

  // IterateAndRemove ends every quarantine, handing out each late context not taken once;
  // then every MID can be taken again exactly max times.
  void End() {
    if (Failed()) return;
    handed_ = 0;
    std::size_t want = 0;
    for (auto& request : quarantine_) {
      if (request->late != nullptr &&
          request->late_context.deliveries.load(std::memory_order_relaxed) == 0) {
        ++want;
      }
    }
    const std::optional<std::size_t> reported = api_->IterateAndRemove();
    main_local_.checks += 3;
    if (reported && *reported != handed_) {
      Fail("%s: IterateAndRemove reported %zu, handed out %zu", name_, *reported, handed_);
    }
    CheckLateContextsOut("IterateAndRemove", want);
    if (api_->discarded() != 0) Fail("%s: %u MIDs still discarded", name_, api_->discarded());
    quarantine_.clear();
    CheckTakesMaxAgain(
        shape_,
        {.associate_with_reserve =
             [this](void* context, Mid* mid) {
               const Answer answer = api_->Associate(context, true, mid);
               if (answer == Answer::kOther) Fail("%s end: an association failed", name_);
               return answer == Answer::kOk;
             },
         .map = [this](Mid mid) { return api_->Map(mid); },
         .dissociate =
             [this](Mid mid, void** context) {
               return api_->Dissociate(mid, context) == Answer::kOk;
             },
         .in_use = [this] { return api_->in_use(); }},
        name_, main_local_);
  }

  const Flags& flags_;
  Tally& tally_;
  std::unique_ptr<LateApi> api_;
  const char* name_;
  const int threads_;
  std::vector<std::mt19937_64> rngs_;  // one per thread, and the last for the shape
  const ExShape shape_;
  const Bounds bounds_;
  Local main_local_;
  std::uint32_t per_thread_ = 1;
  std::uint64_t rounds_ = 0;
  std::uint64_t renewals_ = 0;
  std::size_t handed_ = 0;  // contexts handed to OnHanded, by the thread in a checkpoint

  // Written in phase 0 by their threads, read in the checkpoint.
  std::vector<std::vector<std::unique_ptr<Request>>> fresh_;
  std::vector<LateCounts> counts_;
  // Written only in checkpoints, read by all in phase 1.
  std::vector<std::unique_ptr<Request>> round_;       // associated this round
  std::vector<std::unique_ptr<Request>> quarantine_;  // discarded in earlier rounds, held
  std::vector<Request*> entries_;                     // round_ and quarantine_
  std::vector<std::uint32_t> last_gen_;               // per index: its last association's
  std::vector<Request*> held_by_index_;               // per index: who holds it
  std::vector<Request*> by_value_;                    // per value: who holds exactly it
  std::vector<Mid> history_;                          // values of earlier rounds
};

}  // namespace

void RunLate(const Flags& flags, Tally& tally) {
  LateRun(flags, tally, std::make_unique<CLate>(), "late").Run();
}

void RunLateCpp(const Flags& flags, Tally& tally) {
  LateRun(flags, tally, std::make_unique<CppLate>(false), "late_cpp").Run();
}

void RunLateCppPlain(const Flags& flags, Tally& tally) {
  LateRun(flags, tally, std::make_unique<CppLate>(true), "late_cpp_plain").Run();
}

}  // namespace midatlas::stress
