// A linearizability checker for MID atlas histories: Wing & Gong's search with Lowe's
// memoization (the "just-in-time" linearization of Lowe, 2017, as in porcupine).
//
// A history is a set of completed calls, each with an invocation and a response timestamp
// taken from one global counter just before the call starts and just after it returns (so
// each recorded interval contains the real one: real-time order is only ever weakened, never
// invented, and the checker cannot report a violation the atlas did not commit).
//
// THE SEQUENTIAL MODEL
//   state: for each MID below max, the context it holds (0 = free).
//   Associate(c)           ok(m): m < max and m free; m now holds c (any free MID may be
//                                 returned). InvalidArgument iff c is null.
//                          Unavailable: see below.
//   Map(m)                 the context m holds, or null (m >= max: null).
//   MapAndDissociate(m)    ok(c): m holds c, and m is free afterwards.
//                          InvalidArgument: m is free or m >= max.
//   Reassociate(m, c)      ok: m is held and c is not null; m now holds c.
//                          InvalidArgument: m is free, m >= max, or c is null.
//   Every result except "Unavailable" must be strictly linearizable against this model.
//
// GENERATIONS AND QUARANTINE (docs/DESIGN.md 10.3, 10.6). With G generation bits a MID is
// gen << (16 - G) | index, and "m" above reads "m's index, live under m's generation". The
// state of an index adds the generation of its last association and a quarantine: discarded
// (with a late context), or discarded with the late context taken.
//   Associate(c)           ok(m): also m's generation is the one after the index's last (the
//                                 first association of an index carries generation 0).
//   Discard(m, late)       ok(c): m holds c; m is now discarded with `late`, held, mapping to
//                                 null. InvalidArgument: m is not live.
//   MapAndDissociate(m)    cancelled(late): m is discarded and its late context not taken
//                                 (taken now); cancelled(null): taken already.
//   ReleaseDiscarded(m)    ok(late or null): m is discarded (late if not taken); m is free.
//                          InvalidArgument: m is not discarded.
//   Reassociate / Map of a discarded MID: as for a MID not in use. A discarded MID is held for
//   the "all in use" rule below; its release frees it as a dissociate does.
//
// WAITERS: A FIFO QUEUE (docs/DESIGN.md 10.8). The state adds the queue of waiting contexts.
//   AssociateAsync(c)      ok(m): as Associate ok - and no waiter still queued had been told
//                                 it was queued before this call began (no barging).
//                          pending: the queue is not empty, or every MID is held (the rule
//                          below); c joins the back of the queue.
//   Associate(c)           ok: the same rule; "all in use" also while the queue is not empty.
//   CancelWait(c)          ok: c is queued, and leaves the queue. invalid: c is not queued.
//   Every call carries the hand-offs that ran during it (the waiter routines run on the thread
//   that freed the MID, inside its call): each (w, m) must find w at the head of the queue and
//   m free (the MID the call just freed, or one free already); w leaves the queue holding m.
//   A freeing call's hand-offs apply after its own effect, an associating call's before. After
//   every call, a queue that is not empty leaves no MID free: no lost wake-up.
//
// "ALL MIDS IN USE" (docs/DESIGN.md section 8.1)
//   A MID popped by an associate that has not yet stored its context, or exchanged by a
//   dissociate that has not yet pushed it back, is neither mappable nor allocatable. So the
//   design promises Unavailable only against a model in which a MID is held from the START of
//   the associate that takes it to the END of the dissociate that frees it. The checker models
//   exactly that, and nothing looser:
//
//   When the search linearizes an Unavailable result X, it needs one instant t with
//     lo <= t <= hi, where
//       lo = max(inv(X), inv of every call already linearized)   (t follows them)
//       hi = the earliest response among calls not yet linearized (t precedes them; this
//            includes X's own response)
//   such that every MID m < max is held at t in the extended sense:
//     - m holds a context in the model state, or
//     - a not-yet-linearized Associate that returned m was invoked at or before t
//       (it has started taking m), or
//     - m was freed by the already-linearized MapAndDissociate D, the last one to free it in
//       this linearization, and res(D) >= t (D has not finished giving m back).
//   Each condition is monotone in t, so the candidates lo and each qualifying inv(Associate)
//   cover every case. With no overlapping associate or dissociate this reduces to the exact
//   sequential rule "all max MIDs are held".
//
// Any other result (ResourceExhausted, or a status the API does not document for a call) is a
// violation.
#ifndef MIDATLAS_TESTS_LIN_CHECKER_H_
#define MIDATLAS_TESTS_LIN_CHECKER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace midatlas::lin {

enum class Kind : std::uint8_t {
  kAssociate,
  kMap,
  kDissociate,
  kReassociate,
  kDiscard,
  kRelease,
  kAsync,   // AssociateAsync(arg): ok(mid) at once, or pending
  kCancel,  // CancelWait of the waiter whose context is arg
  kHandOff,  // (the checker's own) one hand-off a call recorded: waiter arg gets mid
};
enum class Code : std::uint8_t { kOk, kUnavailable, kInvalid, kOther, kCancelled, kPending };

// Contexts are small integers (never dereferenced by the atlas); 0 is null.
using Ctx = std::uint32_t;

struct Op {
  int thread = 0;
  Kind kind = Kind::kMap;
  std::uint32_t mid = 0;  // argument (Map, Dissociate, Reassociate) or result (Associate ok)
  Ctx arg = 0;            // context passed (Associate, Reassociate; Discard: the late one)
  Code code = Code::kOk;
  Ctx result = 0;         // context returned (Map, Dissociate, Discard, ReleaseDiscarded)
  std::uint64_t invoke = 0;
  std::uint64_t response = 0;
  // Hand-offs to queued waiters that ran during this call: (waiter's context, MID), in order.
  std::vector<std::pair<Ctx, std::uint32_t>> handed{};
};

inline std::string Describe(const Op& op) {
  std::string out = "t" + std::to_string(op.thread) + " [" + std::to_string(op.invoke) + "," +
                    std::to_string(op.response) + "] ";
  const char* code = op.code == Code::kOk            ? "ok"
                     : op.code == Code::kUnavailable ? "unavailable"
                     : op.code == Code::kInvalid     ? "invalid"
                     : op.code == Code::kCancelled   ? "cancelled"
                     : op.code == Code::kPending     ? "pending"
                                                     : "OTHER";
  switch (op.kind) {
    case Kind::kAssociate:
      out += "Associate(" + std::to_string(op.arg) + ") -> " + code;
      if (op.code == Code::kOk) out += " mid " + std::to_string(op.mid);
      break;
    case Kind::kMap:
      out += "Map(" + std::to_string(op.mid) + ") -> " + std::to_string(op.result);
      break;
    case Kind::kDissociate:
      out += "MapAndDissociate(" + std::to_string(op.mid) + ") -> " + code;
      if (op.code == Code::kOk || op.code == Code::kCancelled) {
        out += " ctx " + std::to_string(op.result);
      }
      break;
    case Kind::kDiscard:
      out += "Discard(" + std::to_string(op.mid) + ", late " + std::to_string(op.arg) + ") -> " +
             code + " ctx " + std::to_string(op.result);
      break;
    case Kind::kRelease:
      out += "ReleaseDiscarded(" + std::to_string(op.mid) + ") -> " + code + " late " +
             std::to_string(op.result);
      break;
    case Kind::kAsync:
      out += "AssociateAsync(" + std::to_string(op.arg) + ") -> " + code;
      if (op.code == Code::kOk) out += " mid " + std::to_string(op.mid);
      break;
    case Kind::kCancel:
      out += "CancelWait(" + std::to_string(op.arg) + ") -> " + code;
      break;
    case Kind::kHandOff:
      out += "(hand-off of " + std::to_string(op.mid) + " to " + std::to_string(op.arg) + ")";
      break;
    case Kind::kReassociate:
      out += "Reassociate(" + std::to_string(op.mid) + ", " + std::to_string(op.arg) + ") -> " +
             code;
      break;
  }
  for (const auto& [waiter, mid] : op.handed) {
    out += " [handed " + std::to_string(mid) + " to " + std::to_string(waiter) + "]";
  }
  return out;
}

class Checker {
 public:
  // `initial[m]` is the context MID m holds before the first call (0 = free); its size is
  // the atlas's max_mids.
  //
  // `check_unavailable` false accepts an Associate "Unavailable" result anywhere (it changes
  // no state); every other result is still checked strictly. Only for shapes with
  // subordinate leaves, where the atlas does not meet the section 8.1 rule (see
  // tests/lin/linearizability_test.cc, DISABLED_...HintedLeafWithAFreeSlot).
  // `generation_bits` G: MIDs carry a generation (`initial` is then per index, each index's
  // first association carries generation 0, and a prefilled index carries generation 0).
  Checker(std::vector<Ctx> initial, const std::vector<Op>& ops, bool check_unavailable = true,
          std::uint32_t generation_bits = 0)
      : max_(static_cast<std::uint32_t>(initial.size())),
        gen_bits_(generation_bits),
        index_bits_(16 - generation_bits),
        check_unavailable_(check_unavailable),
        ops_(WithHandOffs(ops)),
        initial_(std::move(initial)) {}

  // True if the history is linearizable against the model above.
  bool Linearizable() {
    BuildList();
    State state{initial_, std::vector<std::int32_t>(max_, -1), std::vector<std::int32_t>(max_, -1),
                std::vector<std::uint8_t>(max_, 0), std::vector<Ctx>(max_, 0)};
    for (std::uint32_t m = 0; m < max_; ++m) {
      if (initial_[m] != 0) state.gen[m] = 0;
    }
    std::vector<std::uint64_t> done((ops_.size() + 63) / 64, 0);
    std::unordered_set<std::string> seen;
    struct Frame {
      std::size_t call;
      State state;
      std::uint64_t lo;
    };
    std::vector<Frame> stack;
    std::uint64_t lo = 0;
    std::size_t entry = entries_[kHead].next;
    while (entries_[kHead].next != kTail) {
      const Entry& e = entries_[entry];
      if (e.is_call) {
        const Op& op = ops_[e.op];
        State next = state;
        if (Apply(op, e.op, lo, &next)) {
          done[e.op / 64] |= std::uint64_t{1} << (e.op % 64);
          if (seen.insert(Key(done, next)).second) {
            stack.push_back(Frame{entry, std::move(state), lo});
            state = std::move(next);
            lo = std::max(lo, op.invoke);
            Lift(entry);
            entry = entries_[kHead].next;
            ++steps_;
            continue;
          }
          done[e.op / 64] &= ~(std::uint64_t{1} << (e.op % 64));
        }
        entry = e.next;
      } else {
        if (stack.size() >= deepest_ || frontier_.empty()) NoteFrontier(stack.size(), state);
        if (stack.empty()) return false;
        Frame frame = std::move(stack.back());
        stack.pop_back();
        state = std::move(frame.state);
        lo = frame.lo;
        const std::size_t op_index = entries_[frame.call].op;
        done[op_index / 64] &= ~(std::uint64_t{1} << (op_index % 64));
        Unlift(frame.call);
        entry = entries_[frame.call].next;
      }
    }
    return true;
  }

  [[nodiscard]] std::uint64_t steps() const { return steps_; }

  // After a failed search: the deepest point the search reached - how many calls it had
  // linearized, the model state there, and the pending calls none of which could go next.
  // The culprit is usually among them.
  [[nodiscard]] const std::string& frontier() const { return frontier_; }

 private:
  struct State {
    std::vector<Ctx> ctx;
    // For a free MID: the op index of the MapAndDissociate that freed it last in this
    // linearization, or -1. Always -1 for a held MID.
    std::vector<std::int32_t> freer;
    std::vector<std::int32_t> gen;      // the generation of the index's last association; -1
    std::vector<std::uint8_t> quarantine;  // 0; kDiscarded; kDiscarded | kLateTaken
    std::vector<Ctx> late;
    std::vector<Ctx> queue{};  // waiting contexts, oldest first
  };
  static constexpr std::uint8_t kDiscarded = 1;
  static constexpr std::uint8_t kLateTaken = 2;

  void NoteFrontier(std::size_t depth, const State& state) {
    deepest_ = depth;
    frontier_ = "deepest point: " + std::to_string(depth) + " calls linearized; state:";
    for (std::uint32_t m = 0; m < max_; ++m) {
      if (state.ctx[m] != 0) frontier_ += " " + std::to_string(m) + "=" + std::to_string(state.ctx[m]);
    }
    frontier_ += "\n  none of these can go next:\n";
    for (std::size_t i = entries_[kHead].next; i != kTail; i = entries_[i].next) {
      if (!entries_[i].is_call) break;
      frontier_ += "    " + Describe(ops_[entries_[i].op]) + "\n";
    }
  }

  struct Entry {
    bool is_call = false;
    std::size_t op = 0;
    std::uint64_t time = 0;
    std::size_t match = 0;  // a call's return entry
    std::size_t prev = 0;
    std::size_t next = 0;
  };
  static constexpr std::size_t kHead = 0;
  static constexpr std::size_t kTail = 1;

  void BuildList() {
    entries_.assign(2, Entry{});
    std::vector<Entry> events;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      events.push_back(Entry{true, i, ops_[i].invoke, 0, 0, 0});
      events.push_back(Entry{false, i, ops_[i].response, 0, 0, 0});
    }
    std::sort(events.begin(), events.end(),
              [](const Entry& a, const Entry& b) { return a.time < b.time; });
    std::vector<std::size_t> call_of(ops_.size());
    std::size_t prev = kHead;
    for (Entry& event : events) {
      const std::size_t index = entries_.size();
      event.prev = prev;
      entries_.push_back(event);
      entries_[prev].next = index;
      if (event.is_call) {
        call_of[event.op] = index;
      } else {
        entries_[call_of[event.op]].match = index;
      }
      prev = index;
    }
    entries_[prev].next = kTail;
    entries_[kTail].prev = prev;
  }

  void Lift(std::size_t call) {
    const Entry& c = entries_[call];
    entries_[c.prev].next = c.next;
    entries_[c.next].prev = c.prev;
    const Entry& r = entries_[c.match];
    entries_[r.prev].next = r.next;
    entries_[r.next].prev = r.prev;
  }

  void Unlift(std::size_t call) {
    const Entry& c = entries_[call];
    const Entry& r = entries_[c.match];
    entries_[r.prev].next = c.match;
    entries_[r.next].prev = c.match;
    entries_[c.prev].next = call;
    entries_[c.next].prev = call;
  }

  static std::string Key(const std::vector<std::uint64_t>& done, const State& state) {
    std::string key(reinterpret_cast<const char*>(done.data()), done.size() * sizeof(done[0]));
    key.append(reinterpret_cast<const char*>(state.ctx.data()), state.ctx.size() * sizeof(Ctx));
    key.append(reinterpret_cast<const char*>(state.freer.data()),
               state.freer.size() * sizeof(std::int32_t));
    key.append(reinterpret_cast<const char*>(state.gen.data()),
               state.gen.size() * sizeof(std::int32_t));
    key.append(reinterpret_cast<const char*>(state.quarantine.data()), state.quarantine.size());
    key.append(reinterpret_cast<const char*>(state.late.data()), state.late.size() * sizeof(Ctx));
    key.append(reinterpret_cast<const char*>(state.queue.data()), state.queue.size() * sizeof(Ctx));
    key.push_back(static_cast<char>(state.queue.size() & 0xFF));
    return key;
  }

  // The section 8.1 rule (see the header comment).
  bool AllHeldAtSomeInstant(const Op& x, std::size_t x_index, std::uint64_t lo_before,
                            const State& state) const {
    constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t lo = std::max(lo_before, x.invoke);
    // Calls not yet linearized that were invoked before the earliest pending response: the
    // list from the head up to the first return entry.
    std::uint64_t hi = kNever;
    std::vector<std::uint64_t> start_of(max_, kNever);  // earliest pending Associate -> m
    for (std::size_t i = entries_[kHead].next; i != kTail; i = entries_[i].next) {
      const Entry& e = entries_[i];
      if (!e.is_call) {
        hi = e.time;
        break;
      }
      const Op& op = ops_[e.op];
      if (e.op != x_index && (op.kind == Kind::kAssociate || op.kind == Kind::kAsync) &&
          op.code == Code::kOk &&
          IndexOf(op.mid) < max_) {
        start_of[IndexOf(op.mid)] = std::min(start_of[IndexOf(op.mid)], op.invoke);
      }
    }
    auto held_at = [&](std::uint64_t t) {
      for (std::uint32_t m = 0; m < max_; ++m) {
        if (state.ctx[m] != 0 || state.quarantine[m] != 0) continue;
        if (start_of[m] <= t) continue;
        const std::int32_t freer = state.freer[m];
        if (freer >= 0 && ops_[static_cast<std::size_t>(freer)].response >= t) continue;
        // GN2 (G > 0): a reassociate counted in before the dissociate's mark pushes the index
        // itself when it counts out, after the dissociate may have returned.
        if (freer >= 0 && gen_bits_ != 0 &&
            ReassociateSpans(m, ops_[static_cast<std::size_t>(freer)].response, t)) {
          continue;
        }
        return false;
      }
      return true;
    };
    if (lo > hi) return false;
    if (held_at(lo)) return true;
    for (std::uint32_t m = 0; m < max_; ++m) {
      if (start_of[m] != kNever && start_of[m] >= lo && start_of[m] <= hi &&
          held_at(start_of[m])) {
        return true;
      }
    }
    return false;
  }

  [[nodiscard]] std::uint32_t IndexOf(std::uint32_t mid) const {
    return mid & ((1U << index_bits_) - 1);
  }
  [[nodiscard]] std::int32_t GenOf(std::uint32_t mid) const {
    return gen_bits_ == 0 ? 0 : static_cast<std::int32_t>((mid & 0xFFFF) >> index_bits_);
  }

  // Each hand-off a call recorded becomes an operation of its own, with the call's interval: the
  // freed MID may be in transit (taken, not yet handed) for a while inside the call - a waiter
  // that queues meanwhile is served with it - so the hand-off need not sit at the call's own
  // linearization point, only inside its interval.
  static std::vector<Op> WithHandOffs(const std::vector<Op>& ops) {
    std::vector<Op> out;
    out.reserve(ops.size());
    for (const Op& op : ops) {
      Op copy = op;
      copy.handed.clear();
      out.push_back(copy);
    }
    for (const Op& op : ops) {
      for (const auto& [waiter, mid] : op.handed) {
        Op handoff;
        handoff.thread = op.thread;
        handoff.kind = Kind::kHandOff;
        handoff.mid = mid;
        handoff.arg = waiter;
        handoff.invoke = op.invoke;
        handoff.response = op.response;
        out.push_back(handoff);
      }
    }
    return out;
  }

  // Hand-offs of the call, then the no-lost-wake-up rule.
  bool ApplyHandOffs(const Op& op, State* state) const {
    for (const auto& [waiter, mid] : op.handed) {
      const std::uint32_t i = IndexOf(mid);
      if (state->queue.empty() || state->queue.front() != waiter) return false;
      if (i >= max_ || state->ctx[i] != 0 || state->quarantine[i] != 0) return false;
      const std::int32_t next =
          gen_bits_ == 0 ? 0
                         : (state->gen[i] + 1) & static_cast<std::int32_t>((1U << gen_bits_) - 1);
      if (GenOf(mid) != next) return false;
      state->ctx[i] = waiter;
      state->gen[i] = next;
      state->freer[i] = -1;
      state->queue.erase(state->queue.begin());
    }
    return true;
  }
  // A reassociate of index m that began by `began_by` and had not returned at t.
  [[nodiscard]] bool ReassociateSpans(std::uint32_t m, std::uint64_t began_by,
                                      std::uint64_t t) const {
    for (const Op& op : ops_) {
      if (op.kind == Kind::kReassociate && IndexOf(op.mid) == m && op.invoke <= began_by &&
          op.response >= t) {
        return true;
      }
    }
    return false;
  }
  // A MID free in the model that a call not yet linearized is taking (an associate that
  // returned it, a hand-off of it) or, with G > 0, that a pending reassociate still holds
  // back from the free stack (GN2): in transit, as in section 8.1's "held", not lost.
  [[nodiscard]] bool InTransit(std::uint32_t m, std::size_t self) const {
    for (std::size_t i = entries_[kHead].next; i != kTail; i = entries_[i].next) {
      const Entry& e = entries_[i];
      if (!e.is_call || e.op == self) continue;
      const Op& op = ops_[e.op];
      if ((op.kind == Kind::kAssociate || op.kind == Kind::kAsync) && op.code == Code::kOk &&
          IndexOf(op.mid) == m) {
        return true;
      }
      if (op.kind == Kind::kHandOff && IndexOf(op.mid) == m) return true;
      if (gen_bits_ != 0 && op.kind == Kind::kReassociate && IndexOf(op.mid) == m) return true;
    }
    return false;
  }
  // No barging: a caller that took a MID must not have begun after a waiter still queued had
  // been told it was queued (that waiter's AssociateAsync had returned "pending"). One that
  // began earlier may have decided before the waiter queued, and published after it.
  [[nodiscard]] bool Overtakes(const Op& op, const State& state) const {
    for (const Ctx waiter : state.queue) {
      for (const Op& queued : ops_) {
        if (queued.kind == Kind::kAsync && queued.code == Code::kPending && queued.arg == waiter &&
            queued.response < op.invoke) {
          return true;
        }
      }
    }
    return false;
  }
  [[nodiscard]] bool NoFreeMidWhileQueued(const State& state, std::size_t self) const {
    if (state.queue.empty()) return true;
    for (std::uint32_t m = 0; m < max_; ++m) {
      if (state.ctx[m] != 0 || state.quarantine[m] != 0 || InTransit(m, self)) continue;
      // Section 8.1: a MID is held until the end of the call that frees it (its push, or a
      // hand-off after a waiter queued, comes after its linearization point).
      const std::int32_t freer = state.freer[m];
      if (freer >= 0 && ops_[static_cast<std::size_t>(freer)].response >= ops_[self].invoke) {
        continue;
      }
      return false;
    }
    return true;
  }

  bool Apply(const Op& op, std::size_t index, std::uint64_t lo, State* state) const {
    const bool associating = op.kind == Kind::kAssociate || op.kind == Kind::kAsync;
    if (associating && !ApplyHandOffs(op, state)) return false;
    if (!ApplyOwn(op, index, lo, state)) return false;
    if (!associating && !ApplyHandOffs(op, state)) return false;
    return NoFreeMidWhileQueued(*state, index);
  }

  bool ApplyOwn(const Op& op, std::size_t index, std::uint64_t lo, State* state) const {
    const std::uint32_t i = IndexOf(op.mid);
    const bool in_range = i < max_ && op.mid <= 0xFFFF;
    // The value names the index's current association (live or discarded).
    const bool this_gen = in_range && state->gen[i] == GenOf(op.mid);
    const bool live = this_gen && state->ctx[i] != 0;
    const bool discarded = this_gen && state->quarantine[i] != 0;
    switch (op.kind) {
      case Kind::kHandOff: {
        Op carrier;
        carrier.handed.emplace_back(op.arg, op.mid);
        return ApplyHandOffs(carrier, state);
      }
      case Kind::kCancel: {
        const auto it = std::find(state->queue.begin(), state->queue.end(), op.arg);
        if (it == state->queue.end()) return op.code == Code::kInvalid;
        if (op.code != Code::kOk) return false;
        state->queue.erase(it);
        return true;
      }
      case Kind::kAsync:
      case Kind::kAssociate: {
        if (op.arg == 0) return op.code == Code::kInvalid;
        if (op.code == Code::kUnavailable || op.code == Code::kPending) {
          if ((op.code == Code::kPending) != (op.kind == Kind::kAsync)) return false;
          const bool may_wait = !state->queue.empty() || !check_unavailable_ ||
                                AllHeldAtSomeInstant(op, index, lo, *state);
          if (may_wait && op.code == Code::kPending) state->queue.push_back(op.arg);
          return may_wait;
        }
        if (op.code != Code::kOk || !in_range || state->ctx[i] != 0 ||
            state->quarantine[i] != 0 || Overtakes(op, *state)) {
          return false;
        }
        const std::int32_t next =
            gen_bits_ == 0 ? 0 : (state->gen[i] + 1) & static_cast<std::int32_t>((1U << gen_bits_) - 1);
        if (GenOf(op.mid) != next) return false;
        state->ctx[i] = op.arg;
        state->gen[i] = next;
        state->freer[i] = -1;
        return true;
      }
      case Kind::kMap:
        return op.result == (live ? state->ctx[i] : 0);
      case Kind::kDissociate:
        if (live) {
          if (op.code != Code::kOk || op.result != state->ctx[i]) return false;
          state->ctx[i] = 0;
          state->freer[i] = static_cast<std::int32_t>(index);
          return true;
        }
        if (discarded) {
          if (op.code != Code::kCancelled) return false;
          if ((state->quarantine[i] & kLateTaken) != 0) return op.result == 0;
          if (op.result != state->late[i]) return false;
          state->quarantine[i] |= kLateTaken;
          return true;
        }
        return op.code == Code::kInvalid && op.result == 0;
      case Kind::kReassociate:
        if (op.arg == 0 || !live) return op.code == Code::kInvalid;
        if (op.code != Code::kOk) return false;
        state->ctx[i] = op.arg;
        return true;
      case Kind::kDiscard:
        if (!live) return op.code == Code::kInvalid && op.result == 0;
        if (op.code != Code::kOk || op.result != state->ctx[i]) return false;
        state->ctx[i] = 0;
        state->quarantine[i] = kDiscarded;
        state->late[i] = op.arg;
        return true;
      case Kind::kRelease:
        if (!discarded) return op.code == Code::kInvalid && op.result == 0;
        if (op.code != Code::kOk) return false;
        if (op.result != ((state->quarantine[i] & kLateTaken) != 0 ? 0 : state->late[i])) {
          return false;
        }
        state->quarantine[i] = 0;
        state->late[i] = 0;
        state->freer[i] = static_cast<std::int32_t>(index);
        return true;
    }
    return false;
  }

  const std::uint32_t max_;
  const std::uint32_t gen_bits_;
  const std::uint32_t index_bits_;
  const bool check_unavailable_;
  const std::vector<Op> ops_;
  const std::vector<Ctx> initial_;
  std::vector<Entry> entries_;
  std::uint64_t steps_ = 0;
  std::size_t deepest_ = 0;
  std::string frontier_;
};

}  // namespace midatlas::lin

#endif  // MIDATLAS_TESTS_LIN_CHECKER_H_
