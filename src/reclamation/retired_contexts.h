// RetiredContexts: deferred destruction of an atlas's contexts (MidAtlas::Retire,
// RxRetireContext). A context retired with a destructor - after its MID was dissociated - is
// destroyed once no hazard slot holds it (no guarded lookup that returned it is still held,
// context_hazard.h), at the latest when the atlas is destroyed. docs/DESIGN.md 10.7 gives the
// invariants (RC1-RC5) and the argument.
//
//   Retire    pushes a node {context, destructor} onto the atlas's lock-free list
//             ((retire:R1), a node allocated per call) and, every `threshold` retirements,
//             scans - if no other thread is scanning this list right now.
//   scan      takes the whole list ((retire:R2)), runs the heavy barrier (fence:F3) (so every
//             hazard published before our retirement's dissociation is visible, or the
//             publisher's re-check sees the dissociation), then runs the destructor of each
//             context no slot of the hazard domain holds ((hp:R3), HazardDomain::IsHazard) and
//             puts the others back.
//   Flush     a scan that first waits for any scan in progress on this list: a scan holds
//             the nodes it took privately while it runs their destructors, so only once no
//             other scan runs does "every node retired before the flush began" mean "on the
//             list the flush takes" (RC2). The scan lock is (retire:L1)/(retire:L2).
//   RunAll    destruction: every destructor, guarded or not (a guard still held then is a
//             caller error, RC5, caught in debug builds).
//
// Destructors run with no lock of the atlas held but this list's scan lock, on the thread
// that scans. They may call any atlas function but destroy: a Retire from a destructor only
// pushes, and a Flush from a destructor never waits for a scan (it would wait for itself, or
// for a scan on another thread that waits for ours), so it may return before destructors
// other threads are running complete.
//
// When a node cannot be allocated, Retire waits until no hazard slot holds the context and
// runs the destructor itself: blocking, and never returning if the calling thread holds a
// guard on that very context.
#ifndef MIDATLAS_SRC_RECLAMATION_RETIRED_CONTEXTS_H_
#define MIDATLAS_SRC_RECLAMATION_RETIRED_CONTEXTS_H_

#include <cstddef>
#include <cstdint>

#include "instrumentation/atomic.h"
#include "midatlas/mid_atlas.h"
#include "reclamation/hazard_domain.h"

namespace midatlas::internal {

class RetiredContexts {
 public:
  // `domain` holds every hazard a guarded lookup can publish (the atlas's: Default()).
  // `threshold`: retirements between scans (1 scans on every retirement).
  explicit RetiredContexts(HazardDomain& domain,
                           std::size_t threshold = kDefaultReclaimThreshold) noexcept;
  // Runs what is still retired (RunAll).
  ~RetiredContexts();
  RetiredContexts(const RetiredContexts&) = delete;
  RetiredContexts& operator=(const RetiredContexts&) = delete;

  // Hands `context`, whose MID was already dissociated, to `destructor`, which runs exactly
  // once, once no hazard slot holds the context. A null context or an empty destructor does
  // nothing. A context is retired at most once while its destructor has not run (RC3,
  // checked in debug builds).
  void Retire(void* context, ContextDestructor destructor) noexcept;

  // Before it returns, runs the destructor of every context retired before it began that no
  // hazard slot holds (blocking: it waits for a scan in progress on another thread; from
  // inside a destructor it does not wait, see the top of this file).
  void Flush() noexcept;

  // Runs every destructor still pending, with no call running on the atlas (destruction).
  void RunAll() noexcept;

  // Contexts retired whose destructor has not run yet (a snapshot, for tests).
  [[nodiscard]] std::size_t pending() const noexcept;

 private:
  struct Node;

  void Push(Node* first, Node* last) noexcept;
  // Scans with the scan lock held. False when the heavy barrier failed (nothing ran).
  bool ScanLocked() noexcept;
  [[nodiscard]] bool TryLock() noexcept;
  void Lock() noexcept;
  void Unlock() noexcept;
  [[nodiscard]] bool LockedByThisThread() const noexcept;
  // The allocation-failure path of Retire.
  void DestroyWhenUnguarded(void* context, ContextDestructor& destructor) noexcept;
  // RC3 in debug builds: `context` is not on the list (checked under the scan lock).
  void CheckNotRetired(const void* context) noexcept;

  HazardDomain& domain_;
  const std::size_t threshold_;
  Atomic<Node*> head_{nullptr};
  Atomic<std::size_t> count_{0};  // nodes not yet run: the scan trigger and pending()
  Atomic<bool> scanning_{false};  // the scan lock
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_RECLAMATION_RETIRED_CONTEXTS_H_
