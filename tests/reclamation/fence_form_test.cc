// Which form of the hazard-pointer handshake runs (docs/DESIGN.md section 7). The form is
// decided once per process, so CTest runs this binary twice: as is, and with
// MIDATLAS_FENCED_READERS=1, which must force the fenced form (readers fence, reclaimers do
// not need membarrier) - the form a kernel without expedited membarrier gets.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "reclamation/asymmetric_fence.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"

namespace midatlas::internal {
namespace {

bool FencedFormRequested() {
  const char* value = std::getenv("MIDATLAS_FENCED_READERS");  // NOLINT(concurrency-mt-unsafe)
  return value != nullptr && std::strcmp(value, "1") == 0;
}

struct Node : Retirable {
  static void Free(Retirable* self) noexcept { delete static_cast<Node*>(self); }
};

TEST(FenceForm, TheEnvironmentSwitchForcesTheFencedForm) {
  HazardDomain domain(HazardDomain::Options{.reclaim_threshold = 1});
  if (FencedFormRequested()) {
    EXPECT_TRUE(ReadersFence());
  } else {
    // On a kernel without expedited membarrier the fenced form runs anyway; either way the
    // decision is made and stays.
    const bool first = ReadersFence();
    EXPECT_EQ(ReadersFence(), first);
  }
}

TEST(FenceForm, ReclaimingWorksInTheFormThatRuns) {
  HazardDomain domain(HazardDomain::Options{.reclaim_threshold = 1});
  HazardRecord* record = domain.AcquireRecord();
  ASSERT_NE(record, nullptr);
  auto* kept = new Node();
  kept->reclaim = &Node::Free;
  std::atomic<Node*> source{kept};
  {
    HazardGuard guard(*record);
    ASSERT_EQ(guard.TryProtect(source), kept);
    source.store(nullptr, std::memory_order_relaxed);  // unlinked (single-threaded test)
    domain.Retire(kept);
    EXPECT_EQ(domain.retired_count(), 1U) << "a protected node must not be freed";
  }
  EXPECT_EQ(domain.Reclaim(), 1U) << "once unprotected it is freed";
  domain.ReleaseRecord(record);
}

}  // namespace
}  // namespace midatlas::internal
