#include "instrumentation/invariants.h"

#include <cstdio>
#include <cstdlib>

namespace midatlas::internal {

void InvariantBroken(const char* name, const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "midatlas: invariant %s broken: %s (%s:%d)\n", name, what, file, line);
  std::abort();
}

}  // namespace midatlas::internal
