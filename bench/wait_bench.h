// The waiting benchmarks (BM_WaitAsync, BM_WaitBlocking): see wait_bench.cc.
#ifndef MIDATLAS_BENCH_WAIT_BENCH_H_
#define MIDATLAS_BENCH_WAIT_BENCH_H_

namespace midatlas::bench {

// Registers waiting for a free MID in a saturated atlas, midatlas against the mutex-protected
// tables (peers/wait_peers.h).
void RegisterWaitBenchmarks();

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_WAIT_BENCH_H_
