// A downstream program built against an installed midatlas: uses the C++ API, the typed
// wrapper and the RDBSS C API, and returns nonzero if any of them misbehaves.
#include <cstdint>
#include <cstdio>

#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"

namespace {

int failures = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: check failed: %s\n", what);
    ++failures;
  }
}

struct Request {
  int id = 0;
};

int destroyed = 0;
void CountDestroyed(PVOID) { ++destroyed; }

void UseCppApi() {
  int request = 0;
  int destructor_calls = 0;
  {
    auto atlas = midatlas::MidAtlas::Create(
        {.max_mids = 2,
         .initial_mids = 1,
         .context_destructor = [&destructor_calls](void*) { ++destructor_calls; }});
    Check(atlas.ok(), "MidAtlas::Create");
    if (!atlas.ok()) return;
    midatlas::MidAtlas& a = *atlas;
    absl::StatusOr<midatlas::Mid> first = a.Associate(&request);
    absl::StatusOr<midatlas::Mid> second = a.Associate(&request);
    Check(first.ok() && second.ok() && *first != *second, "Associate twice");
    if (!first.ok() || !second.ok()) return;
    Check(midatlas::IsAllMidsInUse(a.Associate(&request).status()), "third Associate is full");
    Check(a.Map(*first) == &request, "Map");
    absl::StatusOr<void*> done = a.MapAndDissociate(*first);
    Check(done.ok() && *done == &request, "MapAndDissociate");
    Check(!a.MapAndDissociate(*first).ok(), "second MapAndDissociate fails");
    Check(a.mids_in_use() == 1, "mids_in_use");
    Check(a.max_mids() == 2, "max_mids");
  }
  Check(destructor_calls == 1, "context_destructor once per remaining association");

  Request typed_request{.id = 7};
  auto typed = midatlas::TypedMidAtlas<Request>::Create({.max_mids = 16, .initial_mids = 16});
  Check(typed.ok(), "TypedMidAtlas::Create");
  if (!typed.ok()) return;
  absl::StatusOr<midatlas::Mid> mid = typed->Associate(&typed_request);
  Check(mid.ok() && typed->Map(*mid)->id == 7, "TypedMidAtlas Associate/Map");
  Check(!midatlas::MidAtlas::Create({.max_mids = 0, .initial_mids = 0}).ok(),
        "Create rejects max_mids 0");
}

void UseCApi() {
  Check(RxCreateMidAtlas(0, 0) == nullptr, "RxCreateMidAtlas(0, 0) is NULL");
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(1024, 50);
  Check(atlas != nullptr, "RxCreateMidAtlas");
  if (atlas == nullptr) return;
  int request = 0;
  USHORT mid = 0;
  Check(RxAssociateContextWithMid(atlas, &request, &mid) == STATUS_SUCCESS,
        "RxAssociateContextWithMid");
  Check(RxMapMidToContext(atlas, mid) == &request, "RxMapMidToContext");
  Check(RxReassociateMid(atlas, mid, &failures) == STATUS_SUCCESS, "RxReassociateMid");
  PVOID context = nullptr;
  Check(RxMapAndDissociateMidFromContext(atlas, mid, &context) == STATUS_SUCCESS &&
            context == &failures,
        "RxMapAndDissociateMidFromContext");
  Check(RxMapAndDissociateMidFromContext(atlas, mid, &context) == STATUS_INVALID_PARAMETER &&
            context == nullptr,
        "dissociating a free MID");
  Check(RxAssociateContextWithMid(atlas, &request, &mid) == STATUS_SUCCESS, "associate again");
  Check(RxGetNumberOfMidsInUse(atlas) == 1, "RxGetNumberOfMidsInUse");
  Check(RxGetMaximumNumberOfMids(atlas) == 1024, "RxGetMaximumNumberOfMids");
  RxDestroyMidAtlas(atlas, &CountDestroyed);
  Check(destroyed == 1, "RxDestroyMidAtlas calls the destructor once");
}

}  // namespace

int main() {
  UseCppApi();
  UseCApi();
  if (failures != 0) {
    std::fprintf(stderr, "consumer: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("consumer: midatlas found, built and working\n");
  return 0;
}
