#include "reclamation/retired_contexts.h"

#include <new>
#include <thread>
#include <utility>

#include "instrumentation/invariants.h"
#include "reclamation/asymmetric_fence.h"

namespace midatlas::internal {

struct RetiredContexts::Node {
  Node* next = nullptr;
  void* context = nullptr;
  ContextDestructor destructor;
};

namespace {

// The scan locks this thread holds, innermost first: a destructor that calls back into a
// list must know whether it runs inside that list's scan (the lock is its own) or inside any
// scan at all (it must not wait for a lock).
struct ScanFrame {
  const RetiredContexts* list;
  ScanFrame* outer;
};
constinit thread_local ScanFrame* this_thread_scans = nullptr;

// Marks the scan lock of `list` as this thread's while it lives.
class ScanScope {
 public:
  explicit ScanScope(const RetiredContexts* list) noexcept
      : frame_{.list = list, .outer = this_thread_scans} {
    this_thread_scans = &frame_;
  }
  ScanScope(const ScanScope&) = delete;
  ScanScope& operator=(const ScanScope&) = delete;
  ~ScanScope() { this_thread_scans = frame_.outer; }

 private:
  ScanFrame frame_;
};

}  // namespace

RetiredContexts::RetiredContexts(HazardDomain& domain, std::size_t threshold) noexcept
    : domain_(domain), threshold_(threshold == 0 ? 1 : threshold) {}

RetiredContexts::~RetiredContexts() { RunAll(); }

void RetiredContexts::Push(Node* first, Node* last) noexcept {
  Node* head = head_.load(std::memory_order_relaxed);  // validated by the CAS
  do {
    last->next = head;
    // (retire:R1) release CAS: the dissociation that preceded the retirement, the node's
    // fields and its link happen-before the scan that takes the list at (retire:R2).
  } while (!head_.compare_exchange_weak(head, first, std::memory_order_release,
                                        std::memory_order_relaxed));
}

void RetiredContexts::Retire(void* context, ContextDestructor destructor) noexcept {
  if (context == nullptr || !destructor) return;
  CheckNotRetired(context);
  // If the allocation fails, the node is not built and `destructor` is not moved from.
  auto* node = new (std::nothrow) Node{.next = nullptr, .context = context,
                                       .destructor = std::move(destructor)};
  if (node == nullptr) [[unlikely]] {
    DestroyWhenUnguarded(context, destructor);
    return;
  }
  Push(node, node);
  // (retire:R3) relaxed: the count only decides when to scan; the list itself is ordered by
  // (retire:R1)/(retire:R2).
  const std::size_t count = count_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (count % threshold_ != 0) return;
  // A scan in progress elsewhere will not see our node, but the next trigger or Flush will;
  // a destructor of this list's own scan leaves it to that scan's caller.
  if (LockedByThisThread() || !TryLock()) return;
  {
    const ScanScope scope(this);
    static_cast<void>(ScanLocked());  // a failed barrier keeps everything for next time
  }
  Unlock();
}

void RetiredContexts::Flush() noexcept {
  if (LockedByThisThread()) {
    // From a destructor of this list's own scan: the lock is ours already.
    while (!ScanLocked()) std::this_thread::yield();
    return;
  }
  if (this_thread_scans != nullptr) {
    // From a destructor of another list's scan: waiting could wait for a scan that waits
    // for ours, so scan only if nobody else does.
    if (!TryLock()) return;
  } else {
    Lock();
  }
  {
    const ScanScope scope(this);
    // A failed heavy barrier (the kernel refused membarrier) runs nothing: try again.
    while (!ScanLocked()) std::this_thread::yield();
  }
  Unlock();
}

bool RetiredContexts::ScanLocked() noexcept {
  // (retire:R2) acquire exchange: pairs with every (retire:R1) before it, so each context's
  // dissociation happens-before the barrier and the scan below.
  Node* list = head_.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return true;
  Node* last = list;
  while (last->next != nullptr) last = last->next;
  // After the heavy barrier (fence:F3) (fence:F1) a guarded lookup either published its
  // hazard visibly to IsHazard's scan (hp:R3), or its re-check sees the dissociation and it
  // returns nothing (RC1).
  if (!AsymmetricHeavyBarrier()) [[unlikely]] {
    Push(list, last);
    return false;
  }
#if MIDATLAS_CHECK_INVARIANTS
  // RC3: two nodes of one context pending at once are a double retirement (races that
  // CheckNotRetired cannot see end up here).
  for (const Node* a = list; a != nullptr; a = a->next) {
    for (const Node* b = a->next; b != nullptr; b = b->next) {
      MIDATLAS_INVARIANT(a->context != b->context, "RC3",
                         "a context was retired twice before its destructor ran");
    }
  }
#endif
  Node* kept_first = nullptr;
  Node* kept_last = nullptr;
  std::size_t ran = 0;
  while (list != nullptr) {
    Node* node = list;
    list = list->next;
    if (domain_.IsHazard(node->context)) {
      node->next = kept_first;
      kept_first = node;
      if (kept_last == nullptr) kept_last = node;
      continue;
    }
    node->destructor(node->context);  // RC1: no slot held it after the barrier
    delete node;
    ++ran;
  }
  if (kept_first != nullptr) Push(kept_first, kept_last);
  // (retire:R4) relaxed: as (retire:R3), a trigger and a snapshot.
  if (ran != 0) count_.fetch_sub(ran, std::memory_order_relaxed);
  return true;
}

void RetiredContexts::RunAll() noexcept {
  // No call runs on the atlas (destruction): relaxed, and no lock. A destructor that retires
  // again (into a list being destroyed) is still served: loop until the list stays empty.
  while (Node* list = head_.exchange(nullptr, std::memory_order_relaxed)) {
#if MIDATLAS_CHECK_INVARIANTS
    if (AsymmetricHeavyBarrier()) {
      for (const Node* node = list; node != nullptr; node = node->next) {
        MIDATLAS_INVARIANT(!domain_.IsHazard(node->context), "RC5",
                           "a guard still held a retired context when its atlas was destroyed");
      }
    }
#endif
    while (list != nullptr) {
      Node* node = list;
      list = list->next;
      node->destructor(node->context);
      delete node;
    }
  }
  count_.store(0, std::memory_order_relaxed);  // single-threaded: relaxed
}

std::size_t RetiredContexts::pending() const noexcept {
  return count_.load(std::memory_order_relaxed);  // a snapshot: relaxed
}

void RetiredContexts::DestroyWhenUnguarded(void* context, ContextDestructor& destructor) noexcept {
  // The context's dissociation precedes this call; each heavy barrier orders it before the
  // scan that follows, as in ScanLocked.
  while (!AsymmetricHeavyBarrier() || domain_.IsHazard(context)) std::this_thread::yield();
  destructor(context);
}

bool RetiredContexts::TryLock() noexcept {
  // relaxed: only avoids the exchange's write while another scan runs; (retire:L1) decides.
  if (scanning_.load(std::memory_order_relaxed)) return false;
  // (retire:L1) acquire exchange: pairs with (retire:L2), so the previous scan's destructors
  // and its push of the kept nodes happen-before ours.
  return !scanning_.exchange(true, std::memory_order_acquire);
}

void RetiredContexts::Lock() noexcept {
  while (!TryLock()) std::this_thread::yield();
}

void RetiredContexts::Unlock() noexcept {
  // (retire:L2) release: pairs with the next scan's (retire:L1).
  scanning_.store(false, std::memory_order_release);
}

bool RetiredContexts::LockedByThisThread() const noexcept {
  for (const ScanFrame* frame = this_thread_scans; frame != nullptr; frame = frame->outer) {
    if (frame->list == this) return true;
  }
  return false;
}

void RetiredContexts::CheckNotRetired([[maybe_unused]] const void* context) noexcept {
#if MIDATLAS_CHECK_INVARIANTS
  // Nodes are freed only under the scan lock, so the walk holds it (or skips the check when
  // another thread scans: ScanLocked checks the list it takes as well).
  const bool nested = LockedByThisThread();
  if (!nested && !TryLock()) return;
  // (retire:R5) acquire: pairs with (retire:R1), so the nodes' fields and links are visible.
  for (const Node* node = head_.load(std::memory_order_acquire); node != nullptr;
       node = node->next) {
    MIDATLAS_INVARIANT(node->context != context, "RC3",
                       "a context was retired twice before its destructor ran");
  }
  if (!nested) Unlock();
#endif
}

}  // namespace midatlas::internal
