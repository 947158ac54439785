#include "harness/harness.h"

#include <barrier>
#include <charconv>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <latch>
#include <limits>
#include <thread>

namespace midatlas::stress {
namespace {

// ----------------------------------------------------------------------------------------
// Flags.

template <typename T>
bool ParseNumber(std::string_view text, T* out, T low, T high = std::numeric_limits<T>::max()) {
  const char* end = text.data() + text.size();
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < low || value > high) return false;
  *out = value;
  return true;
}

bool ParseSeconds(std::string_view text, double* out) {
  // from_chars for double is missing from some standard libraries; sscanf is enough here.
  const std::string copy(text);
  char extra = 0;
  double value = 0;
  if (std::sscanf(copy.c_str(), "%lf%c", &value, &extra) != 1 || !(value >= 0)) return false;
  *out = value;
  return true;
}

// Every flag any stress program takes. `size` flags are taken only by the programs that name
// them in Program::sizes; the others by every program.
struct FlagSpec {
  std::string_view name;
  bool size;
  bool (*parse)(std::string_view value, Flags& flags);
};

constexpr FlagSpec kFlags[] = {
    {"scenario", false,
     [](std::string_view v, Flags& f) {
       f.scenario = std::string(v);
       return true;
     }},
    {"threads", false, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.threads, 1, 256); }},
    {"seconds", false, [](std::string_view v, Flags& f) { return ParseSeconds(v, &f.seconds); }},
    {"ops", false, [](std::string_view v, Flags& f) { return ParseNumber<std::uint64_t>(v, &f.ops, 0); }},
    {"seed", false, [](std::string_view v, Flags& f) { return ParseNumber<std::uint64_t>(v, &f.seed, 0); }},
    {"max", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.max, 1U); }},
    {"start", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.start, 1U); }},
    {"round", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.round, 1U); }},
    {"wave", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.wave, 1U); }},
    {"hold", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.hold, 1U); }},
    {"generation", true,
     [](std::string_view v, Flags& f) { return ParseNumber(v, &f.generation, 1U); }},
    {"genbits", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.genbits, 0U, 15U); }},
    {"reserve", true, [](std::string_view v, Flags& f) { return ParseNumber(v, &f.reserve, 0U); }},
};

// Whether the space-separated `list` holds `word`.
bool Lists(std::string_view list, std::string_view word) {
  while (!list.empty()) {
    const std::size_t space = list.find(' ');
    if (list.substr(0, space) == word) return true;
    if (space == std::string_view::npos) break;
    list.remove_prefix(space + 1);
  }
  return false;
}

bool Takes(const Program& program, const FlagSpec& spec) {
  return !spec.size || Lists(program.sizes, spec.name);
}

// The value of a size flag, for the start line.
std::uint64_t SizeValue(const Flags& flags, std::string_view name) {
  if (name == "max") return flags.max;
  if (name == "start") return flags.start;
  if (name == "round") return flags.round;
  if (name == "wave") return flags.wave;
  if (name == "hold") return flags.hold;
  if (name == "genbits") return flags.genbits;
  if (name == "reserve") return flags.reserve;
  return flags.generation;
}

const Scenario* FindScenario(const Program& program, std::string_view name) {
  for (const Scenario& scenario : program.scenarios) {
    if (scenario.name == name) return &scenario;
  }
  return nullptr;
}

void PrintUsage(const Program& program) {
  std::string line = "usage: " + std::string(program.name);
  for (const FlagSpec& spec : kFlags) {
    if (Takes(program, spec)) line += " [--" + std::string(spec.name) + "=...]";
  }
  line += "\nscenarios:";
  for (const Scenario& scenario : program.scenarios) line += " " + std::string(scenario.name);
  std::fprintf(stderr, "%s (the first is the default)\n", line.c_str());
}

// Returns false (after saying why) on a flag that is unknown, not taken by the program,
// malformed or out of range, or on flags that do not fit together.
bool ParseFlags(const Program& program, int argc, char** argv, Flags* flags, bool* seed_given) {
  const std::string prefix(program.name);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    const std::size_t eq = arg.find('=');
    const FlagSpec* spec = nullptr;
    if (arg.starts_with("--") && eq != std::string_view::npos) {
      for (const FlagSpec& candidate : kFlags) {
        if (candidate.name == arg.substr(2, eq - 2) && Takes(program, candidate)) spec = &candidate;
      }
    }
    if (spec == nullptr || !spec->parse(arg.substr(eq + 1), *flags)) {
      std::fprintf(stderr, "%s: bad flag '%s'\n", prefix.c_str(), argv[i]);
      return false;
    }
    if (spec->name == "seed") *seed_given = true;
  }
  if (flags->scenario.empty()) flags->scenario = std::string(program.scenarios.front().name);
  if (FindScenario(program, flags->scenario) == nullptr) {
    std::fprintf(stderr, "%s: no scenario '%s'\n", prefix.c_str(), flags->scenario.c_str());
    return false;
  }
  if (const char* problem = program.check != nullptr ? program.check(*flags) : nullptr) {
    std::fprintf(stderr, "%s: %s\n", prefix.c_str(), problem);
    return false;
  }
  return true;
}

// ----------------------------------------------------------------------------------------
// Failure reporting. Set once by Main before any scenario thread starts.

std::string g_program;
std::string g_scenario;
std::uint64_t g_seed = 0;
std::atomic<bool> g_failed{false};
std::atomic<int> g_reports{0};

constexpr int kMostReports = 20;

}  // namespace

void Fail(const char* format, ...) {
  g_failed.store(true, std::memory_order_relaxed);  // polled between operations only
  if (g_reports.fetch_add(1, std::memory_order_relaxed) >= kMostReports) return;
  char message[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  std::fprintf(stderr, "%s: FAIL (scenario=%s seed=%" PRIu64 "): %s\n", g_program.c_str(),
               g_scenario.c_str(), g_seed, message);
}

bool Failed() { return g_failed.load(std::memory_order_relaxed); }

void Tally::Note(std::string key, std::uint64_t value) {
  notes_.emplace_back(std::move(key), value);
}

void Local::FlushTo(Tally& tally) const {
  tally.ops.fetch_add(ops, std::memory_order_relaxed);
  tally.checks.fetch_add(checks, std::memory_order_relaxed);
  tally.refused.fetch_add(refused, std::memory_order_relaxed);
}

Bounds::Bounds(const Flags& flags)
    : deadline_(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(flags.seconds))),
      ops_(flags.ops),
      share_(flags.ops / static_cast<std::uint64_t>(flags.threads) + 1) {}

void RunThreads(int threads, const std::function<void(int)>& body) {
  std::latch start(threads);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&start, &body, t] {
      start.arrive_and_wait();
      body(t);
    });
  }
  for (std::thread& thread : pool) thread.join();
}

void RunPhases(int threads, int phases, const std::function<void(int t, int phase)>& body,
               const std::function<bool(int phase)>& checkpoint,
               const std::function<void(int t)>& after) {
  // Both written only in the completion step; the barrier orders that step before every
  // thread's return from arrive_and_wait, where they are read.
  int phase = 0;
  bool stop = false;
  std::barrier sync(threads, [&]() noexcept {
    const bool done = checkpoint(phase);
    stop = phase == phases - 1 && done;
    phase = (phase + 1) % phases;
  });
  RunThreads(threads, [&](int t) {
    do {
      body(t, phase);
      sync.arrive_and_wait();
    } while (!stop);
    if (after) after(t);
  });
}

std::mt19937_64 RngFor(std::uint64_t seed, int thread) {
  return std::mt19937_64(seed ^ (0xD1B54A32D192ED03ULL * (static_cast<std::uint64_t>(thread) + 1)));
}

std::vector<std::mt19937_64> RngsFor(std::uint64_t seed, int threads) {
  std::vector<std::mt19937_64> rngs;
  rngs.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) rngs.push_back(RngFor(seed, t));
  return rngs;
}

int Main(const Program& program, int argc, char** argv) {
  Flags flags = program.defaults;
  bool seed_given = false;
  if (!ParseFlags(program, argc, argv, &flags, &seed_given)) {
    PrintUsage(program);
    return 2;
  }
  if (!seed_given) {
    flags.seed = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  }
  g_program = std::string(program.name);
  g_scenario = flags.scenario;
  g_seed = flags.seed;

  std::string sizes;
  for (const FlagSpec& spec : kFlags) {
    if (spec.size && Takes(program, spec)) {
      sizes += " " + std::string(spec.name) + "=" + std::to_string(SizeValue(flags, spec.name));
    }
  }
  std::printf("%s: scenario=%s seed=%" PRIu64 " threads=%d seconds=%.2f ops=%" PRIu64 "%s\n",
              g_program.c_str(), g_scenario.c_str(), flags.seed, flags.threads, flags.seconds,
              flags.ops, sizes.c_str());
  std::fflush(stdout);  // the seed is out even if the run crashes

  Tally tally;
  const Clock::time_point begin = Clock::now();
  FindScenario(program, flags.scenario)->run(flags, tally);
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();

  std::string notes;
  for (const auto& [key, value] : tally.notes()) notes += " " + key + "=" + std::to_string(value);
  const int failures = g_reports.load(std::memory_order_relaxed);
  // The sizes again, so that the last line alone says what ran.
  std::printf("%s: %s scenario=%s seed=%" PRIu64 " threads=%d%s seconds=%.2f ops=%" PRIu64
              " checks=%" PRIu64 " refused=%" PRIu64 " rounds=%" PRIu64 " failures=%d%s\n",
              g_program.c_str(), Failed() ? "FAIL" : "PASS", g_scenario.c_str(), flags.seed,
              flags.threads, sizes.c_str(), elapsed, tally.ops.load(std::memory_order_relaxed),
              tally.checks.load(std::memory_order_relaxed),
              tally.refused.load(std::memory_order_relaxed),
              tally.rounds.load(std::memory_order_relaxed), failures, notes.c_str());
  return Failed() ? 1 : 0;
}

}  // namespace midatlas::stress
