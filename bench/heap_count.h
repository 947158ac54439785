// Heap bytes allocated through malloc (and so through operator new) while a count is open.
//
// The binary interposes malloc, calloc, realloc, free and the aligned forms over glibc's, so
// every library in the process is counted alike: midatlas's maps, Abseil's and liburcu's
// tables, the hash-table nodes. A count is the sum of malloc_usable_size of the blocks
// allocated minus those freed, chunk headers excluded. glibc's own mallinfo cannot serve:
// blocks parked in its per-thread caches count as in use, so small deltas read as zero.
//
// Counting is off outside the memory workload: a relaxed load of a flag that never changes
// during a throughput run is all the hot paths pay.
#ifndef MIDATLAS_BENCH_HEAP_COUNT_H_
#define MIDATLAS_BENCH_HEAP_COUNT_H_

#include <cstdint>

namespace midatlas::bench {

// Starts counting from zero. Not nestable; one count at a time.
void StartHeapCount() noexcept;
// Net bytes since StartHeapCount, and stops counting.
std::int64_t StopHeapCount() noexcept;
// Allocations (malloc, calloc, realloc, aligned forms) between the last StartHeapCount and
// StopHeapCount.
std::int64_t CountedAllocations() noexcept;

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_HEAP_COUNT_H_
