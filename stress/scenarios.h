// The focused stress scenarios of atlas_stress (--scenario=NAME); "mixed", the default, is
// the original all-roles run in atlas_stress.cc. See the header comment of scenarios.cc.
#ifndef MIDATLAS_STRESS_SCENARIOS_H_
#define MIDATLAS_STRESS_SCENARIOS_H_

#include <cstdint>
#include <string_view>

namespace midatlas::stress {

struct ScenarioOptions {
  int threads = 8;
  double seconds = 5.0;
  std::uint64_t ops = 50'000'000;  // total across threads
  std::uint64_t seed = 0;
  std::uint32_t max = 65535;
  std::uint32_t start = 50;
};

// The scenario names RunScenario accepts, space-separated.
inline constexpr const char* kScenarioNames =
    "reqresp readmostly exhaustion teardown duplicates";

bool IsScenario(std::string_view name);

// Runs one scenario; prints one summary line. Returns 0 on success, 1 on a violation.
int RunScenario(std::string_view name, const ScenarioOptions& options);

}  // namespace midatlas::stress

#endif  // MIDATLAS_STRESS_SCENARIOS_H_
