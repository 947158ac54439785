// What the C-API tests of midatlax_ex.h share: an owning pointer that destroys an atlas (with
// no destructor for the contexts still associated), and small integers as contexts.
#ifndef MIDATLAS_TESTS_SUPPORT_EX_ATLAS_H_
#define MIDATLAS_TESTS_SUPPORT_EX_ATLAS_H_

#include <cstdint>
#include <memory>

#include "midatlas/midatlax_ex.h"

namespace midatlas::testing {

// A context that is only compared, never dereferenced.
template <typename Int>
void* Ctx(Int value) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value));
}

struct AtlasDeleter {
  void operator()(RX_MID_ATLAS* atlas) const { RxDestroyMidAtlas(atlas, nullptr); }
};
using AtlasPtr = std::unique_ptr<RX_MID_ATLAS, AtlasDeleter>;

// RxCreateMidAtlasEx with the given sizes, generation bits and reserve; null when refused.
inline AtlasPtr MakeExAtlas(USHORT max, USHORT start, UCHAR gen_bits = 0, USHORT reserved = 0) {
  RX_MID_ATLAS_PARAMETERS p{};
  p.MaximumNumberOfMids = max;
  p.MidsAllocatedAtStart = start;
  p.GenerationBits = gen_bits;
  p.MidsReserved = reserved;
  return AtlasPtr(RxCreateMidAtlasEx(&p));
}

}  // namespace midatlas::testing

#endif  // MIDATLAS_TESTS_SUPPORT_EX_ATLAS_H_
