// What every benchmarked implementation ("peer") provides, and the helpers they share.
//
// A peer is a class with
//   static constexpr const char* kName;     the column heading in every table and plot
//   explicit Peer(std::uint32_t start);     max 65,535 MIDs; `start` is RDBSS's
//                                           MidsAllocatedAtStart (peers without one ignore it)
//   bool ok() const;                        creation succeeded
//   bool Associate(void* context, Mid*);    false when no MID could be handed out
//   void* Map(Mid) const;                   nullptr when the MID is not in use
//   void* MapAndDissociate(Mid);            nullptr when the MID is not in use
//   void Settle();                          finishes background work (deferred frees, resizing)
//                                           before memory or lookups are measured
//   using ThreadScope = ...;                lives on every thread that calls the peer (RCU
//                                           readers register with it; the others need nothing)
#ifndef MIDATLAS_BENCH_PEERS_PEER_H_
#define MIDATLAS_BENCH_PEERS_PEER_H_

#include <cstdint>

namespace midatlas::bench {

using Mid = std::uint16_t;

// RDBSS's MaximumNumberOfMids is a USHORT: MIDs 0 .. 65534.
inline constexpr std::uint32_t kMaxMids = 65535;

struct NoThreadScope {};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_PEER_H_
