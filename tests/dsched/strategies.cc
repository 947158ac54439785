#include "dsched/strategies.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>

namespace midatlas::dsched {
namespace {

bool Enabled(const Choice& choice, int thread) {
  return thread >= 0 && ((choice.enabled >> thread) & 1U) != 0;
}

// The first enabled thread after `current` (round robin), for a forced switch.
int NextAfter(const Choice& choice, int current) {
  const auto n = static_cast<int>(std::bit_width(choice.enabled));
  for (int k = 1; k <= n; ++k) {
    const int candidate = (current + k) % n;
    if (Enabled(choice, candidate) && candidate != current) return candidate;
  }
  return current;
}

int LowestEnabled(const Choice& choice) { return std::countr_zero(choice.enabled); }

}  // namespace

std::uint64_t MixSeed(std::uint64_t seed) noexcept {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// --- random -------------------------------------------------------------------------------

void RandomStrategy::BeginExecution(std::uint64_t index) {
  execution_seed_ = seed_ + index;
  rng_.seed(MixSeed(execution_seed_));
}

int RandomStrategy::Pick(const Choice& choice) {
  std::uint32_t candidates = choice.enabled;
  if (choice.must_switch) candidates &= ~(1U << choice.current);
  const auto count = static_cast<unsigned>(std::popcount(candidates));
  auto nth = static_cast<unsigned>(rng_() % count);
  while (true) {
    const int thread = std::countr_zero(candidates);
    if (nth == 0) return thread;
    candidates &= candidates - 1;
    --nth;
  }
}

std::string RandomStrategy::ReplayHint() const {
  return "MIDATLAS_DSCHED_MODE=random MIDATLAS_DSCHED_SEED=" + std::to_string(execution_seed_);
}

// --- PCT ----------------------------------------------------------------------------------

std::string PctStrategy::Name() const {
  return "pct(d=" + std::to_string(depth_) + ",k=" + std::to_string(steps_) + ")";
}

void PctStrategy::BeginExecution(std::uint64_t index) {
  execution_seed_ = seed_ + index;
  rng_.seed(MixSeed(execution_seed_));
  priority_.clear();  // drawn at the first pick, when the thread count is known
  change_points_.clear();
  for (int i = 1; i < depth_; ++i) change_points_.push_back(1 + rng_() % steps_);
  std::sort(change_points_.begin(), change_points_.end());
  change_points_.erase(std::unique(change_points_.begin(), change_points_.end()),
                       change_points_.end());
  next_change_ = 0;
  lowest_ = 0;
}

int PctStrategy::Pick(const Choice& choice) {
  if (priority_.empty()) {
    const auto n = static_cast<int>(std::bit_width(choice.enabled));
    // Initial priorities depth_ .. depth_+n-1, in random order (Fisher-Yates).
    for (int i = 0; i < n; ++i) priority_.push_back(depth_ + i);
    for (int i = n - 1; i > 0; --i) {
      const auto j = static_cast<int>(rng_() % static_cast<std::uint64_t>(i + 1));
      std::swap(priority_[static_cast<std::size_t>(i)], priority_[static_cast<std::size_t>(j)]);
    }
  }
  const bool running = Enabled(choice, choice.current);
  // The j-th change point (0-based) drops the running thread to depth_-1-j: below every initial
  // priority and below every earlier change point's.
  while (next_change_ < change_points_.size() && change_points_[next_change_] <= choice.step) {
    if (running) {
      priority_[static_cast<std::size_t>(choice.current)] =
          depth_ - 1 - static_cast<long>(next_change_);
    }
    ++next_change_;
  }
  if (choice.must_switch) {
    lowest_ = std::min(lowest_, 0L) - 1;
    priority_[static_cast<std::size_t>(choice.current)] = lowest_;
  }
  int best = -1;
  for (int i = 0; i < static_cast<int>(priority_.size()); ++i) {
    if (!Enabled(choice, i) || (choice.must_switch && i == choice.current)) continue;
    if (best < 0 || priority_[static_cast<std::size_t>(i)] >
                        priority_[static_cast<std::size_t>(best)]) {
      best = i;
    }
  }
  return best;
}

std::string PctStrategy::ReplayHint() const {
  return "MIDATLAS_DSCHED_MODE=pct" + std::to_string(depth_) +
         " MIDATLAS_DSCHED_SEED=" + std::to_string(execution_seed_);
}

// --- bounded-preemption DFS ---------------------------------------------------------------

void BoundedDfsStrategy::BeginExecution(std::uint64_t) {
  depth_ = 0;
  preemptions_ = 0;
  schedule_.clear();
}

int BoundedDfsStrategy::Pick(const Choice& choice) {
  const bool running = Enabled(choice, choice.current);
  std::vector<std::uint8_t> options;
  int pick = -1;
  if (running && choice.must_switch) {
    pick = NextAfter(choice, choice.current);  // fairness: forced, not a choice
  } else if (running) {
    options.push_back(static_cast<std::uint8_t>(choice.current));
    if (preemptions_ < bound_) {
      for (int i = 0; i < Scheduler::kMaxThreads; ++i) {
        if (i != choice.current && Enabled(choice, i)) options.push_back(static_cast<std::uint8_t>(i));
      }
    }
  } else {
    for (int i = 0; i < Scheduler::kMaxThreads; ++i) {
      if (Enabled(choice, i)) options.push_back(static_cast<std::uint8_t>(i));
    }
  }
  if (pick < 0 && options.size() == 1) pick = options[0];
  if (pick < 0) {
    if (depth_ < stack_.size()) {
      const Decision& decision = stack_[depth_];
      if (decision.options != options) {
        std::fprintf(stderr,
                     "dsched: the execution is not deterministic: decision %zu offered other "
                     "threads than in the previous execution with the same prefix\n",
                     depth_);
        std::abort();
      }
      pick = decision.options[decision.taken];
    } else {
      stack_.push_back(Decision{options, 0});
      pick = options[0];
    }
    ++depth_;
  }
  if (running && pick != choice.current) ++preemptions_;
  schedule_.push_back(static_cast<std::uint8_t>(pick));
  return pick;
}

bool BoundedDfsStrategy::Advance() {
  if (depth_ != stack_.size()) {
    std::fprintf(stderr,
                 "dsched: the execution is not deterministic: %zu decisions where the previous "
                 "execution with the same prefix had %zu\n",
                 depth_, stack_.size());
    std::abort();
  }
  deepest_ = std::max(deepest_, depth_);
  while (!stack_.empty()) {
    Decision& decision = stack_.back();
    if (decision.taken + 1 < decision.options.size()) {
      ++decision.taken;
      return true;
    }
    stack_.pop_back();
  }
  return false;
}

std::string BoundedDfsStrategy::ReplayHint() const {
  return "MIDATLAS_DSCHED_SCHEDULE='" + FormatSchedule(schedule_) + "'";
}

// --- replay, sequential -------------------------------------------------------------------

int ReplayStrategy::Pick(const Choice& choice) {
  if (choice.step < schedule_.size()) {
    const int wanted = schedule_[choice.step];
    if (Enabled(choice, wanted) && !(choice.must_switch && wanted == choice.current)) return wanted;
  }
  diverged_ = true;
  if (Enabled(choice, choice.current) && !choice.must_switch) return choice.current;
  return choice.must_switch ? NextAfter(choice, choice.current) : LowestEnabled(choice);
}

std::string ReplayStrategy::ReplayHint() const {
  return "MIDATLAS_DSCHED_SCHEDULE='" + FormatSchedule(schedule_) + "'";
}

int SequentialStrategy::Pick(const Choice& choice) {
  if (Enabled(choice, choice.current) && !choice.must_switch) return choice.current;
  return choice.must_switch ? NextAfter(choice, choice.current) : LowestEnabled(choice);
}

}  // namespace midatlas::dsched
