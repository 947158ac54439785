// Every conversion between a C handle and the C++ object behind it, in one place.
//
//   PRX_MID_ATLAS   the AtlasCore itself (no wrapper: RxMapMidToContext is one call)
//   PRX_NET_NAME    a NetNameNode holding one reference (netname_c.cc)
//
// The C structs are only tags that give C distinct pointer types; no object of those types
// ever exists.
#ifndef MIDATLAS_SRC_CAPI_HANDLES_H_
#define MIDATLAS_SRC_CAPI_HANDLES_H_

#include "atlas/atlas_core.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"

namespace midatlas::internal {

// The C++ front end's core, for the C shims that hand it out as a PRX_MID_ATLAS.
struct FrontEndAccess {
  static AtlasCore* Core(MidAtlas& atlas) noexcept { return atlas.core_; }
};

inline AtlasCore* CoreOf(PRX_MID_ATLAS atlas) noexcept {
  return reinterpret_cast<AtlasCore*>(atlas);
}
inline PRX_MID_ATLAS HandleOf(AtlasCore* core) noexcept {
  return reinterpret_cast<PRX_MID_ATLAS>(core);
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_CAPI_HANDLES_H_
