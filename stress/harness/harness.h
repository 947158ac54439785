// The harness every stress program runs on: flag parsing, the seed, thread start, bounds,
// failure reporting and the summary line, so that each scenario is only its own operations
// and checks.
//
// A run goes like this (Main):
//   1. parse --scenario, --threads, --seconds, --ops, --seed and the size flags the program
//      takes (--max, --start, --round, --wave, --hold, --generation, --genbits, --reserve); a
//      bad flag prints the usage and exits 2;
//   2. draw a seed unless --seed was given, and print one line with the scenario, the seed and
//      every flag, before any thread starts;
//   3. run the scenario; its threads start together behind a latch (RunThreads), go through
//      phases in lockstep where it has any (RunPhases: a barrier between phases, whose
//      completion step checks the state with no call running), never sleep, and stop when
//      Bounds says: time up, --ops done, or a failure;
//   4. print one summary line - PASS or FAIL, the scenario, the seed, operations, checks -
//      and exit 0 on a pass, 1 if any check failed.
// Every failure is printed as "<program>: FAIL (scenario=NAME seed=N): message", so a failing
// run names how to repeat its operation mix (the interleaving is the scheduler's).
#ifndef MIDATLAS_STRESS_HARNESS_HARNESS_H_
#define MIDATLAS_STRESS_HARNESS_HARNESS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace midatlas::stress {

using Clock = std::chrono::steady_clock;

// The flags of every stress program. The common ones come first; the sizes after them are
// taken only by the programs that name them (Program::sizes) and are read only by those.
struct Flags {
  int threads = 8;                 // --threads (1..256)
  double seconds = 5.0;            // --seconds: wall-clock bound
  std::uint64_t ops = 50'000'000;  // --ops: bound on calls, total across threads
  std::uint64_t seed = 0;          // --seed: drawn at random when not given
  std::string scenario{};          // --scenario: empty picks the program's first
  std::uint32_t max = 65535;       // --max: MIDs of the atlas
  std::uint32_t start = 50;        // --start: MIDs of the atlas's first map
  std::uint32_t round = 2048;      // --round: operations per thread between barriers
  std::uint32_t wave = 6000;       // --wave: most MIDs one grow-and-shrink wave takes
  std::uint32_t hold = 6;          // --hold: references a thread keeps
  std::uint32_t generation = 5;    // --generation: rounds per table
  std::uint32_t genbits = 0;       // --genbits: the atlas's generation bits G (0..15)
  std::uint32_t reserve = 0;       // --reserve: MIDs only reserve callers may take
};

// What the summary line counts, summed over threads. Relaxed throughout: the counts are read
// in barrier completions and after the joins, which order them.
class Tally {
 public:
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> checks{0};
  std::atomic<std::uint64_t> refused{0};  // calls refused for want of room (all MIDs in use)
  std::atomic<std::uint64_t> rounds{0};   // barrier rounds (checkpoints, phases) completed

  // Adds " key=value" to the summary line; from one thread at a time (the main thread after
  // the joins, or a barrier completion).
  void Note(std::string key, std::uint64_t value);
  const std::vector<std::pair<std::string, std::uint64_t>>& notes() const { return notes_; }

 private:
  std::vector<std::pair<std::string, std::uint64_t>> notes_;
};

// A thread's own counts, added to the tally when it is done, so that the hot path touches no
// shared counter.
struct Local {
  std::uint64_t ops = 0;
  std::uint64_t checks = 0;
  std::uint64_t refused = 0;
  void FlushTo(Tally& tally) const;
};

// Reports a violation: printed with the program, the scenario and the seed (the first 20
// only, to keep logs short), and the run exits 1. Safe from any thread.
[[gnu::format(printf, 1, 2)]] void Fail(const char* format, ...);
// Whether any violation was reported; polled between operations to stop early.
bool Failed();

// The bounds of a run: --seconds of wall-clock time and --ops calls in all.
class Bounds {
 public:
  explicit Bounds(const Flags& flags);
  // True while a thread that made `thread_ops` calls may go on: nothing failed, its share of
  // --ops is not used up, and there is time left.
  [[nodiscard]] bool Go(std::uint64_t thread_ops) const {
    return !Failed() && thread_ops < share_ && !Expired();
  }
  // True once a run that made `total_ops` calls in all must stop; for barrier completions.
  [[nodiscard]] bool Done(std::uint64_t total_ops) const {
    return Failed() || total_ops >= ops_ || Expired();
  }
  [[nodiscard]] bool Expired() const { return Clock::now() >= deadline_; }
  // Calls per thread: --ops divided among the threads, rounded up.
  [[nodiscard]] std::uint64_t share() const { return share_; }

 private:
  Clock::time_point deadline_;
  std::uint64_t ops_;
  std::uint64_t share_;
};

// Runs body(t) for t = 0 .. threads-1, each on its own thread. No body starts before every
// thread exists (a latch releases them together), so none gets a head start of a whole
// thread creation; returns once all have joined.
void RunThreads(int threads, const std::function<void(int)>& body);

// Runs `threads` threads in lockstep through cycles of phases 0, 1, ..., phases - 1: each
// thread runs body(t, phase), then waits at a barrier whose completion step runs
// checkpoint(phase) on one thread while no other runs (so it may inspect everything), and
// then all go on with the next phase. The run ends at the end of a cycle - after phase
// phases - 1 - when that phase's checkpoint returns true (say, Bounds::Done); each thread
// then runs after(t), if given, and returns.
void RunPhases(int threads, int phases, const std::function<void(int t, int phase)>& body,
               const std::function<bool(int phase)>& checkpoint,
               const std::function<void(int t)>& after = nullptr);

// Thread t's random stream for a run's seed: different per thread, fixed per (seed, t).
std::mt19937_64 RngFor(std::uint64_t seed, int thread);
// RngFor(seed, t) for each of `threads` threads, for scenarios whose threads keep their
// stream across phases.
std::vector<std::mt19937_64> RngsFor(std::uint64_t seed, int threads);
// A number in [0, n); n > 0.
inline std::uint32_t Below(std::mt19937_64& rng, std::uint32_t n) {
  return static_cast<std::uint32_t>(rng() % n);
}

// One scenario of a program: its --scenario name and what runs it. The scenario reads its
// flags, counts into the tally and reports violations with Fail; the harness does the rest.
struct Scenario {
  std::string_view name;
  void (*run)(const Flags& flags, Tally& tally);
};

struct Program {
  std::string_view name;                // prefixes every line it prints
  Flags defaults;                       // the values of the flags not given
  std::string_view sizes;               // the size flags it takes, space-separated
  std::span<const Scenario> scenarios;  // the first is the default
  // Checks that the flags fit the program; returns a message, or nullptr when they do.
  const char* (*check)(const Flags& flags) = nullptr;
};

// Runs a program as described at the top of this file; returns the exit status (0 pass,
// 1 violation, 2 usage).
int Main(const Program& program, int argc, char** argv);

}  // namespace midatlas::stress

#endif  // MIDATLAS_STRESS_HARNESS_HARNESS_H_
