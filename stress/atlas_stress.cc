// atlas_stress: the multithreaded stress scenarios of one shared atlas (scenarios/scenarios.h
// describes each), run by the stress harness (harness/harness.h).
//
//   atlas_stress [--scenario=NAME] [--threads=N] [--seconds=S] [--ops=N] [--seed=N]
//                [--max=N] [--start=N] [--round=N] [--wave=N] [--hold=N] [--genbits=G]
//                [--reserve=N]
//
// Seeded (the seed is printed at the start and with every failure; without --seed one is
// drawn at random), bounded both by time and by total operations, threads ordered with
// latches and barriers, never with sleeps. Every run ends with one summary line of the
// operations done and the invariant checks made. Exit status: 0 pass, 1 violation, 2 usage.
// atlas_stress_chaos and atlas_stress_fault_* are this program linked with chaos and
// planted-fault builds of the library (stress/CMakeLists.txt).
#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "scenarios/scenarios.h"

namespace midatlas::stress {
namespace {

// The first is the default.
constexpr Scenario kScenarios[] = {
    {"mixed", &RunMixed},
    {"reqresp", &RunRequestResponse},
    {"readmostly", &RunReadMostly},
    {"exhaustion", &RunExhaustion},
    {"teardown", &RunTeardown},
    {"duplicates", &RunDuplicates},
    {"guards", &RunGuards},
    {"late", &RunLate},
    {"late_cpp", &RunLateCpp},
    {"late_cpp_plain", &RunLateCppPlain},
    {"waiting", &RunWaiting},
    {"waiting_cpp", &RunWaitingCpp},
};

const char* CheckSizes(const Flags& flags) {
  if (flags.max > kMaxMidsLimit) return "--max must not exceed 65535";
  if (flags.start > flags.max) return "--start must not exceed --max";
  const bool waiting = flags.scenario.starts_with("waiting");
  if (!waiting && !flags.scenario.starts_with("late") && flags.genbits != 0) {
    return "--genbits is taken by the late* and waiting* scenarios only";
  }
  if (!waiting && flags.reserve != 0) return "--reserve is taken by the waiting* scenarios only";
  if (flags.max > (1U << (16 - flags.genbits))) return "--max must not exceed 2^(16 - genbits)";
  if (flags.reserve >= flags.max) return "--reserve must be below --max";
  return nullptr;
}

}  // namespace
}  // namespace midatlas::stress

int main(int argc, char** argv) {
  using namespace midatlas::stress;
  return Main({.name = "atlas_stress",
               .defaults = {.threads = 8, .seconds = 5.0, .ops = 50'000'000, .max = 65535,
                            .start = 50, .round = 2048, .wave = 6000, .hold = 6},
               .sizes = "max start round wave hold genbits reserve",
               .scenarios = kScenarios,
               .check = &CheckSizes},
              argc, argv);
}
