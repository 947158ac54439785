// What the atlas scenarios share: creating the atlas under test, contexts that are plain
// numbers, contexts that must reach exactly one owner, and the check that ends every run.
#ifndef MIDATLAS_STRESS_SCENARIOS_COMMON_H_
#define MIDATLAS_STRESS_SCENARIOS_COMMON_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "harness/harness.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::stress {

// An atlas of `max` MIDs starting with `start`; reports a failure (and returns nothing) if
// it cannot be created.
std::optional<MidAtlas> NewAtlas(std::uint32_t max, std::uint32_t start,
                                 ContextDestructor destructor = {});

// Contexts that are numbers, never dereferenced (by the atlas or by the test).
inline void* AsContext(std::uint64_t value) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value));
}
inline std::uint64_t AsValue(const void* context) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(context));
}

// A context that must reach exactly one owner.
struct Token {
  Mid mid = 0;           // plain: set before the token is associated
  bool entered = false;  // plain: set by its thread; read after a barrier
  std::atomic<int> deliveries{0};
};

// Hands `token` to its owner `to`; a second delivery is a violation. Relaxed: the count
// detects a second owner by its atomicity alone.
void Deliver(Token* token, const char* to);

// The test's own record of which MIDs are held, kept next to the atlas's: a MID handed to a
// second holder, or more than max held at once, is a violation. Relaxed throughout: the
// exchange detects a second holder by its atomicity alone, and the count is read only with no
// call running.
class HeldMids {
 public:
  explicit HeldMids(std::uint32_t max);
  // Records that Associate just gave `mid` to thread t (a `role`: "sender", "thread"):
  // checks that it is below max, that nobody holds it, and that no more than max are held.
  void Claim(Mid mid, const char* role, int t, Local& local);
  // Records that `mid` is about to be handed back. Called while it is still held, so that
  // the next Claim of it, after the atlas hands it out again, finds it free.
  void Release(Mid mid);
  [[nodiscard]] std::int64_t count() const { return held_.load(std::memory_order_relaxed); }

 private:
  const std::uint32_t max_;
  std::vector<std::atomic<std::uint8_t>> owner_;  // 1 while held
  std::atomic<std::int64_t> held_{0};
};

// The end of every scenario, with no call running: nothing in use and every MID maps to
// null; then all max MIDs can be taken again (each maps to its context, one more is refused
// as all-in-use) and freed (each giving its context back), and the memory attached is back
// within twice `fresh_bytes`, the size of the atlas when it was new.
void CheckDrainedAndReusable(MidAtlas& atlas, std::size_t fresh_bytes, Local& local);

// Ends a scenario once its threads have joined: the check above, unless a violation was
// reported already (the threads then stop without freeing what they hold), and the main
// thread's counts into the tally.
void EndScenario(MidAtlas& atlas, std::size_t fresh_bytes, Local& local, Tally& tally);

}  // namespace midatlas::stress

#endif  // MIDATLAS_STRESS_SCENARIOS_COMMON_H_
