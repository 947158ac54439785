// Records short concurrent histories of a real MidAtlas for lin::Checker (checker.h).
//
// A Recorder owns `threads` worker threads for its whole life. Each round:
//   1. the barrier's completion step (every worker waiting) checks the previous round's
//      history, creates a fresh atlas and fills `prefill` MIDs sequentially (so MIDs of
//      subordinate maps can be the contended ones);
//   2. every worker runs `ops_per_thread` random calls, stamping each with an invocation and a
//      response ticket from one global counter.
// Threads are ordered by the barrier only. The operation mix is seeded per (seed, round,
// thread); the interleaving is up to the scheduler (and the chaos points of a chaos build).
//
// The clock is an acq_rel fetch_add: when A's response ticket precedes B's invocation
// ticket, A's calls happen-before B's, which is what "A precedes B in real time" has to mean
// for the model. It is the only synchronization the recorder adds between workers.
#ifndef MIDATLAS_TESTS_LIN_RECORDER_H_
#define MIDATLAS_TESTS_LIN_RECORDER_H_

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lin/checker.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::lin {

struct Config {
  const char* name = "";
  int threads = 3;                 // 1..7
  std::uint32_t max_mids = 2;
  std::uint32_t initial_mids = 1;
  std::uint32_t prefill = 0;       // MIDs taken sequentially before each history
  int ops_per_thread = 80;
  // Check "all in use" results against the section 8.1 rule (lin/checker.h).
  bool check_unavailable = true;
  std::uint32_t generation_bits = 0;  // G: stale values of reused indexes are drawn too
  bool discards = false;              // Discard and ReleaseDiscarded in the mix
  bool waiters = false;               // AssociateAsync and CancelWait in the mix
};

// Names a shape in test output (GoogleTest finds this by argument-dependent lookup).
inline void PrintTo(const Config& config, std::ostream* out) { *out << config.name; }

struct Budget {
  std::uint64_t histories = 1000;  // per config
  double seconds = 10;             // per config
  std::uint64_t seed = 1;
};

struct Outcome {
  std::uint64_t histories = 0;
  std::uint64_t ops = 0;
  std::uint64_t unavailable = 0;   // Associate results "all in use"
  std::uint64_t steps = 0;         // search steps taken by the checker
  bool violation = false;
  std::string report;              // the first violating history, one call per line
};

inline Code CodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Code::kOk;
    case absl::StatusCode::kUnavailable:
      return Code::kUnavailable;
    case absl::StatusCode::kInvalidArgument:
      return Code::kInvalid;
    case absl::StatusCode::kCancelled:
      return Code::kCancelled;
    default:
      return Code::kOther;
  }
}

inline void* AsPointer(Ctx ctx) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ctx));
}
inline Ctx AsCtx(void* pointer) {
  return static_cast<Ctx>(reinterpret_cast<std::uintptr_t>(pointer));
}

// The hand-offs that run during the call a thread is recording: a waiter's callback runs on
// the thread that freed the MID, inside that thread's call, and notes itself here.
inline thread_local std::vector<std::pair<Ctx, std::uint32_t>>* t_handed = nullptr;

class Recorder {
 public:
  Recorder(const Config& config, const Budget& budget) : config_(config), budget_(budget) {}

  Outcome Run() {
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(budget_.seconds));
    logs_.assign(static_cast<std::size_t>(config_.threads), {});
    inboxes_ = std::make_unique<Inbox[]>(static_cast<std::size_t>(config_.threads));
    waits_.clear();
    waits_.resize(static_cast<std::size_t>(config_.threads));
    auto between_rounds = [this]() noexcept { BetweenRounds(); };
    std::barrier sync(config_.threads, between_rounds);
    std::vector<std::thread> workers;
    for (int t = 0; t < config_.threads; ++t) {
      workers.emplace_back([this, t, &sync] {
        while (true) {
          sync.arrive_and_wait();
          if (stop_) break;
          Work(t);
        }
      });
    }
    for (std::thread& worker : workers) worker.join();
    atlas_.reset();
    return outcome_;
  }

 private:
  // Runs with every worker waiting at the barrier.
  void BetweenRounds() {
    if (atlas_.has_value()) {
      CheckRound();
      atlas_.reset();  // cancels the waiters still queued
    }
    for (auto& waits : waits_) waits.clear();
    for (int t = 0; t < config_.threads; ++t) inboxes_[static_cast<std::size_t>(t)].mids.clear();
    stop_ = outcome_.violation || outcome_.histories >= budget_.histories ||
            std::chrono::steady_clock::now() >= deadline_;
    if (stop_) return;
    absl::StatusOr<MidAtlas> created =
        MidAtlas::Create({.max_mids = config_.max_mids,
                          .initial_mids = config_.initial_mids,
                          .generation_bits = config_.generation_bits});
    if (!created.ok()) {
      outcome_.violation = true;
      outcome_.report = "Create failed: " + created.status().ToString();
      stop_ = true;
      return;
    }
    atlas_ = *std::move(created);
    initial_.assign(config_.max_mids, 0);
    for (std::uint32_t i = 0; i < config_.prefill; ++i) {
      const Ctx ctx = 8 * (i + 1);  // thread field 0: prefill
      absl::StatusOr<Mid> mid = atlas_->Associate(AsPointer(ctx));
      if (!mid.ok() || *mid >= config_.max_mids || initial_[*mid] != 0) {  // generation 0
        outcome_.violation = true;
        outcome_.report = "sequential prefill failed at association " + std::to_string(i);
        stop_ = true;
        return;
      }
      initial_[*mid] = ctx;
    }
    for (auto& log : logs_) log.clear();
    ++round_;
  }

  void CheckRound() {
    std::vector<Op> history;
    for (const auto& log : logs_) history.insert(history.end(), log.begin(), log.end());
    for (const Op& op : history) {
      if (op.kind == Kind::kAssociate && op.code == Code::kUnavailable) ++outcome_.unavailable;
    }
    Checker checker(initial_, history, config_.check_unavailable, config_.generation_bits);
    const bool ok = checker.Linearizable();
    ++outcome_.histories;
    outcome_.ops += history.size();
    outcome_.steps += checker.steps();
    if (ok) return;
    outcome_.violation = true;
    std::sort(history.begin(), history.end(),
              [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
    std::string report = std::string("config ") + config_.name + ", seed " +
                         std::to_string(budget_.seed) + ", round " + std::to_string(round_) +
                         ": not linearizable. Initially held:";
    for (std::uint32_t m = 0; m < initial_.size(); ++m) {
      if (initial_[m] != 0) report += " " + std::to_string(m) + "=" + std::to_string(initial_[m]);
    }
    report += "\n" + checker.frontier() + "  the whole history, by invocation:\n";
    for (const Op& op : history) report += "  " + Describe(op) + "\n";
    outcome_.report = report;
  }

  std::uint64_t Tick() { return clock_.fetch_add(1, std::memory_order_acq_rel); }

  void Work(int t) {
    const std::uint64_t stream = budget_.seed * std::uint64_t{0x9E3779B97F4A7C15} +
                                 round_ * std::uint64_t{0xBF58476D1CE4E5B9} +
                                 static_cast<std::uint64_t>(t) + std::uint64_t{1};
    std::mt19937_64 rng(stream);
    auto below = [&rng](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
    std::vector<Op>& log = logs_[static_cast<std::size_t>(t)];
    std::vector<std::uint32_t> mine;  // MIDs this thread associated (may be stale)
    const std::uint32_t max = config_.max_mids;
    const std::uint32_t low = config_.prefill > 2 ? config_.prefill - 2 : 0;
    Ctx next_ctx = static_cast<Ctx>(t + 1);
    auto fresh_ctx = [&next_ctx]() { return next_ctx += 8; };
    const std::uint32_t index_bits = 16 - config_.generation_bits;
    std::vector<std::uint32_t> stale;  // values this thread saw go (with G > 0: stale soon)
    auto some_mid = [&]() -> std::uint32_t {
      const std::uint32_t dice = below(100);
      if (dice < 3) return dice == 0 ? 65535 : max;  // out of range
      if (dice < 60 && !mine.empty()) return mine[below(static_cast<std::uint32_t>(mine.size()))];
      if (dice < 75 && !stale.empty()) return stale[below(static_cast<std::uint32_t>(stale.size()))];
      const std::uint32_t index = low + below(max - low);
      if (config_.generation_bits == 0) return index;
      return (below(1U << config_.generation_bits) << index_bits) | index;
    };
    MidAtlas& atlas = *atlas_;
    Inbox& inbox = inboxes_[static_cast<std::size_t>(t)];
    std::vector<std::pair<Ctx, MidWait>>& waits = waits_[static_cast<std::size_t>(t)];
    for (int i = 0; i < config_.ops_per_thread; ++i) {
      {
        // MIDs handed to this thread's waiters are its own to free.
        const std::lock_guard<std::mutex> lock(inbox.mutex);
        mine.insert(mine.end(), inbox.mids.begin(), inbox.mids.end());
        inbox.mids.clear();
      }
      Op op;
      op.thread = t;
      t_handed = &op.handed;
      const std::uint32_t dice = below(100);
      if (config_.waiters && dice >= 97) {
        op.kind = Kind::kCancel;
        if (waits.empty()) {
          t_handed = nullptr;
          continue;
        }
        const std::size_t which = below(static_cast<std::uint32_t>(waits.size()));
        op.arg = waits[which].first;
        op.invoke = Tick();
        const bool cancelled = waits[which].second.Cancel();
        op.response = Tick();
        op.code = cancelled ? Code::kOk : Code::kInvalid;
        waits.erase(waits.begin() + static_cast<std::ptrdiff_t>(which));
      } else if (config_.waiters && dice >= 87) {
        op.kind = Kind::kAsync;
        op.arg = fresh_ctx();
        Inbox* owner = &inbox;
        const Ctx ctx = op.arg;
        op.invoke = Tick();
        absl::StatusOr<MidWait> wait = atlas.AssociateAsync(
            AsPointer(ctx), [owner, ctx](absl::StatusOr<Mid> mid) {
              if (!mid.ok()) return;  // cancelled
              if (t_handed != nullptr) t_handed->emplace_back(ctx, *mid);
              const std::lock_guard<std::mutex> lock(owner->mutex);
              owner->mids.push_back(*mid);
            });
        op.response = Tick();
        if (!wait.ok()) {
          op.code = CodeOf(wait.status());
        } else if (wait->mid().has_value()) {
          op.code = Code::kOk;
          op.mid = *wait->mid();
          mine.push_back(op.mid);
        } else {
          op.code = Code::kPending;
          waits.emplace_back(ctx, *std::move(wait));
        }
      } else if (dice < 30) {
        op.kind = Kind::kAssociate;
        op.arg = below(50) == 0 ? 0 : fresh_ctx();
        op.invoke = Tick();
        absl::StatusOr<Mid> mid = atlas.Associate(AsPointer(op.arg));
        op.response = Tick();
        op.code = CodeOf(mid.status());
        if (mid.ok()) {
          op.mid = *mid;
          mine.push_back(*mid);
        }
      } else if (dice < 55) {
        op.kind = Kind::kMap;
        op.mid = some_mid();
        op.invoke = Tick();
        void* got = atlas.Map(static_cast<Mid>(op.mid));
        op.response = Tick();
        op.result = AsCtx(got);
      } else if (dice < 85) {
        op.kind = Kind::kDissociate;
        op.mid = some_mid();
        op.invoke = Tick();
        if (config_.discards) {
          absl::StatusOr<Dissociated> got = atlas.MapAndDissociateOrLate(static_cast<Mid>(op.mid));
          op.response = Tick();
          op.code = got.ok() && got->late ? Code::kCancelled : CodeOf(got.status());
          if (got.ok()) op.result = AsCtx(got->context);
        } else {
          absl::StatusOr<void*> got = atlas.MapAndDissociate(static_cast<Mid>(op.mid));
          op.response = Tick();
          op.code = CodeOf(got.status());
          if (got.ok()) op.result = AsCtx(*got);
        }
        if (op.code == Code::kOk) stale.push_back(op.mid);
        if (op.code != Code::kCancelled) std::erase(mine, op.mid);
      } else if (config_.discards && dice < 92) {
        op.kind = Kind::kDiscard;
        op.mid = some_mid();
        op.arg = below(4) == 0 ? 0 : fresh_ctx();
        op.invoke = Tick();
        absl::StatusOr<void*> got = atlas.Discard(static_cast<Mid>(op.mid), AsPointer(op.arg));
        op.response = Tick();
        op.code = CodeOf(got.status());
        if (got.ok()) op.result = AsCtx(*got);
      } else if (config_.discards && dice < 97) {
        op.kind = Kind::kRelease;
        op.mid = some_mid();
        op.invoke = Tick();
        absl::StatusOr<void*> got = atlas.ReleaseDiscarded(static_cast<Mid>(op.mid));
        op.response = Tick();
        op.code = CodeOf(got.status());
        if (got.ok()) {
          op.result = AsCtx(*got);
          stale.push_back(op.mid);
          std::erase(mine, op.mid);
        }
      } else {
        op.kind = Kind::kReassociate;
        op.mid = some_mid();
        op.arg = below(30) == 0 ? 0 : fresh_ctx();
        op.invoke = Tick();
        const absl::Status status = atlas.Reassociate(static_cast<Mid>(op.mid), AsPointer(op.arg));
        op.response = Tick();
        op.code = CodeOf(status);
      }
      t_handed = nullptr;
      log.push_back(op);
    }
  }

  const Config config_;
  const Budget budget_;
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<std::uint64_t> clock_{1};
  // Written in the barrier's completion step only; read by workers after the barrier.
  std::optional<MidAtlas> atlas_;
  std::vector<Ctx> initial_;
  std::vector<std::vector<Op>> logs_;  // one per worker, written only by it during a round
  // MIDs handed to a worker's waiters (by any thread), for it to free later.
  struct Inbox {
    std::mutex mutex;
    std::vector<std::uint32_t> mids;
  };
  std::unique_ptr<Inbox[]> inboxes_;
  // A worker's queued requests (context, handle); destroyed after the atlas, which cancels them.
  std::vector<std::vector<std::pair<Ctx, MidWait>>> waits_;
  std::uint64_t round_ = 0;
  bool stop_ = false;
  Outcome outcome_;
};

}  // namespace midatlas::lin

#endif  // MIDATLAS_TESTS_LIN_RECORDER_H_
