// The strategies that drive the scheduler (scheduler.h). Each is deterministic given its seed
// (or, for the exhaustive one, its position in the search): the same execution index under the
// same seed picks the same threads at the same steps, every time.
//
//   RandomStrategy       uniform random among the enabled threads at every scheduling point.
//   PctStrategy          probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
//                        random distinct priorities, the highest enabled thread runs, and at
//                        d-1 random steps (out of an estimated k) the running thread drops
//                        below every other. Finds any bug of depth d with probability at least
//                        1/(n k^(d-1)) per execution.
//   BoundedDfsStrategy   every interleaving with at most `bound` preemptions (CHESS's
//                        iterative context bounding): a depth-first search over the choice
//                        points, replaying the prefix each execution. Switches when a thread
//                        finishes are free, as in CHESS.
//   ReplayStrategy       follows a recorded schedule (scheduler.h, FormatSchedule).
//   SequentialStrategy   no preemption: thread 0 to its end, then 1, ... (PCT calibrates k on it).
//
// Execution i of a seeded exploration uses seed + i: the seed printed with a failure, given to
// a fresh exploration, replays that execution first.
#ifndef MIDATLAS_TESTS_DSCHED_STRATEGIES_H_
#define MIDATLAS_TESTS_DSCHED_STRATEGIES_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dsched/scheduler.h"

namespace midatlas::dsched {

// splitmix64: decorrelates consecutive seeds.
std::uint64_t MixSeed(std::uint64_t seed) noexcept;

class RandomStrategy final : public Strategy {
 public:
  explicit RandomStrategy(std::uint64_t seed) : seed_(seed) {}
  [[nodiscard]] std::string Name() const override { return "random"; }
  void BeginExecution(std::uint64_t index) override;
  int Pick(const Choice& choice) override;
  [[nodiscard]] std::string ReplayHint() const override;

 private:
  std::uint64_t seed_;
  std::uint64_t execution_seed_ = 0;
  std::mt19937_64 rng_;
};

class PctStrategy final : public Strategy {
 public:
  // `depth` d >= 1; `steps` k, the expected scheduling points of one execution.
  PctStrategy(std::uint64_t seed, int depth, std::uint64_t steps)
      : seed_(seed), depth_(depth), steps_(steps == 0 ? 1 : steps) {}
  [[nodiscard]] std::string Name() const override;
  void BeginExecution(std::uint64_t index) override;
  int Pick(const Choice& choice) override;
  [[nodiscard]] std::string ReplayHint() const override;

 private:
  std::uint64_t seed_;
  int depth_;
  std::uint64_t steps_;
  std::uint64_t execution_seed_ = 0;
  std::mt19937_64 rng_;
  std::vector<long> priority_;               // per thread; higher runs first
  std::vector<std::uint64_t> change_points_;  // sorted steps
  std::size_t next_change_ = 0;
  long lowest_ = 0;
};

class BoundedDfsStrategy final : public Strategy {
 public:
  explicit BoundedDfsStrategy(int bound) : bound_(bound) {}
  [[nodiscard]] std::string Name() const override {
    return "dfs(bound=" + std::to_string(bound_) + ")";
  }
  void BeginExecution(std::uint64_t index) override;
  int Pick(const Choice& choice) override;
  bool Advance() override;
  [[nodiscard]] std::string ReplayHint() const override;
  // The most choice points one execution had (the depth of the search).
  [[nodiscard]] std::size_t deepest() const noexcept { return deepest_; }

 private:
  struct Decision {
    std::vector<std::uint8_t> options;  // options[0] is the default (no preemption)
    std::size_t taken = 0;
  };
  int bound_;
  std::vector<Decision> stack_;
  std::size_t depth_ = 0;  // decisions made in this execution
  int preemptions_ = 0;
  std::size_t deepest_ = 0;
  std::vector<std::uint8_t> schedule_;  // this execution's picks, for ReplayHint
};

class ReplayStrategy final : public Strategy {
 public:
  explicit ReplayStrategy(std::vector<std::uint8_t> schedule) : schedule_(std::move(schedule)) {}
  [[nodiscard]] std::string Name() const override { return "replay"; }
  void BeginExecution(std::uint64_t) override {}
  int Pick(const Choice& choice) override;
  [[nodiscard]] std::string ReplayHint() const override;
  // False when the execution did not follow the schedule to its end (it diverged: the build
  // or the case changed since the schedule was recorded).
  [[nodiscard]] bool diverged() const noexcept { return diverged_; }

 private:
  std::vector<std::uint8_t> schedule_;
  bool diverged_ = false;
};

class SequentialStrategy final : public Strategy {
 public:
  [[nodiscard]] std::string Name() const override { return "sequential"; }
  void BeginExecution(std::uint64_t) override {}
  int Pick(const Choice& choice) override;
  [[nodiscard]] std::string ReplayHint() const override { return "sequential"; }
};

}  // namespace midatlas::dsched

#endif  // MIDATLAS_TESTS_DSCHED_STRATEGIES_H_
