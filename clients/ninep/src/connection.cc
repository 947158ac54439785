// The connection: send path, receive thread, cancellation (ninep/connection.h).
//
// OWNERSHIP
//   A CallState is shared by the caller's Call handles and, while its tag maps to it, by the
//   connection through `self` (the table holds raw pointers). Whoever claims the request in
//   the tag table (CompleteReply or Complete, Discard in Cancel, the shutdown drain) takes
//   `self`. A cancelled request's LateContext holds itself (`self`: the table's reference)
//   until the table hands it out - to a late reply, to Release, or to the drain, exactly once -
//   and the request (`original`) until a late reply has used it or the tag is free; Tflush
//   calls hold their LateContext, and it holds them (`flushes`) until the tag is free. Retire
//   breaks those cycles: at the Rflush, at the drain of the context or of one of its Tflush
//   calls.
//
// SHUTDOWN
//   Close() marks the connection closed and shuts the socket; the receive thread then marks it
//   closed too, closes the tag table (waiters fail) and drains it (requests in flight fail
//   with kUnavailable). A sender that acquired its tag just then reads `closed_` after its
//   Associate and takes its own request back. Both read and write `closed_` with an RMW
//   (ninep:S1 / ninep:S2): RMWs of one variable are totally ordered, so either the sender
//   sees the shutdown, or the drain synchronizes with the sender and sees its entry.
#include "ninep/connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tag_table.h"

namespace ninep {
namespace internal {

class LateContext;

class CallState : public TagEntry {
 public:
  CallState(std::shared_ptr<ConnectionCore> core_ref, Request request_value,
            Callback done_callback)
      : TagEntry(Kind::kRequest),
        core(std::move(core_ref)),
        request(std::move(request_value)),
        callback(std::move(done_callback)) {}

  // Runs the callback, then publishes the result to Wait. Exactly once per call: only the
  // claimer of the request (see OWNERSHIP) delivers.
  void Deliver(absl::StatusOr<Reply> result) {
    result_ = std::move(result);
    if (callback) callback(result_);
    // (ninep:D1) release: publishes result_; pairs with the acquire load in Wait (D2).
    done_.store(1, std::memory_order_release);
    done_.notify_all();
  }
  absl::StatusOr<Reply> Wait() const {
    // (ninep:D2) acquire: pairs with D1, so result_ is complete.
    while (done_.load(std::memory_order_acquire) == 0) done_.wait(0, std::memory_order_acquire);
    if (result_.ok()) return result_;
    // An error goes out as a fresh Status rather than a reference to result_'s: the shared
    // representation's count lives in the Abseil library, whose atomics ThreadSanitizer does
    // not see, so a count shared by the waiter and the thread that frees the call would look
    // like a race. (OK statuses have no representation to share.)
    const absl::Status& error = result_.status();
    absl::Status copy(error.code(), error.message());
    error.ForEachPayload([&copy](auto url, const absl::Cord& payload) {
      copy.SetPayload(url, payload);
    });
    return copy;
  }
  [[nodiscard]] bool done() const {
    return done_.load(std::memory_order_acquire) != 0;  // (ninep:D3) acquire: pairs with D1
  }

  std::shared_ptr<ConnectionCore> core;
  Request request;  // bytes dropped once sent
  Callback callback;
  std::shared_ptr<CallState> self;    // the connection's reference, see OWNERSHIP
  std::mutex cancel_mu;               // serializes Cancel calls on this request
  std::shared_ptr<LateContext> late;  // guarded by cancel_mu; set by the first Cancel
  std::shared_ptr<LateContext> flush_target;  // Tflush calls: the tag they flush

 private:
  std::atomic<std::uint8_t> done_{0};
  absl::StatusOr<Reply> result_{absl::UnknownError("request still in flight")};
};

// Stands in for a cancelled request from its Tflush to its Rflush (flush(5)).
class LateContext : public TagEntry {
 public:
  LateContext() : TagEntry(Kind::kLate) {}

  std::mutex mu;
  std::shared_ptr<LateContext> self;      // guarded by mu once published
  std::shared_ptr<CallState> original;    // guarded by mu once published
  std::vector<std::shared_ptr<CallState>> flushes;  // guarded by mu: Tflush calls, oldest first
  bool released = false;                            // guarded by mu: the tag is free again
  std::optional<absl::StatusOr<Reply>> late_reply;  // guarded by mu

  // The table handed this context out: its reference, for the caller to drop when done.
  std::shared_ptr<LateContext> TakeFromTable() {
    std::lock_guard<std::mutex> lock(mu);
    return std::move(self);
  }
  // Breaks the cycles once the tag is free, or will never be answered (Rflush or drain).
  void Retire() {
    // Dropped after the lock: a last reference may lead back to this very object.
    std::shared_ptr<CallState> dropped_original;
    std::vector<std::shared_ptr<CallState>> dropped_flushes;
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
      dropped_original = std::move(original);
      dropped_flushes = std::move(flushes);
    }
  }
};

class ConnectionCore : public std::enable_shared_from_this<ConnectionCore> {
 public:
  ConnectionCore(int fd, std::uint32_t msize, std::unique_ptr<TagTable> table)
      : fd_(fd), msize_(msize), table_(std::move(table)) {}
  ConnectionCore(const ConnectionCore&) = delete;
  ConnectionCore& operator=(const ConnectionCore&) = delete;
  ~ConnectionCore() { ::close(fd_); }

  void StartReceiver() {
    receiver_ = std::thread([this] { ReceiveLoop(); });
  }
  void StopReceiver() {
    Close();
    if (receiver_.joinable()) receiver_.join();
    // Nothing else runs now but senders the caller let race the destructor; take what is left.
    DrainTable();
  }

  Call Start(absl::StatusOr<Request> request, Callback done) {
    if (!request.ok()) {
      auto failed = std::make_shared<CallState>(shared_from_this(), Request{}, std::move(done));
      Fail(*failed, request.status());
      return Call(failed);
    }
    auto state =
        std::make_shared<CallState>(shared_from_this(), *std::move(request), std::move(done));
    if (state->request.bytes.size() > msize_) {
      Fail(*state, absl::InvalidArgumentError(absl::StrCat(
                       MsgTypeName(static_cast<std::uint8_t>(state->request.type)), " of ",
                       state->request.bytes.size(), " bytes is larger than msize ", msize_)));
      return Call(state);
    }
    if (closed()) {
      Fail(*state, absl::UnavailableError("connection closed"));
      return Call(state);
    }
    state->self = state;
    absl::StatusOr<std::uint16_t> tag = table_->Acquire(state.get());
    if (!tag.ok()) {
      state->self.reset();
      Fail(*state, tag.status());
      return Call(state);
    }
    Send(*state, *tag);
    return Call(state);
  }

  bool Cancel(const std::shared_ptr<CallState>& state) {
    if (state->request.type == MsgType::kTflush || state->request.type == MsgType::kTversion) {
      return false;
    }
    std::lock_guard<std::mutex> cancel_lock(state->cancel_mu);
    // (ninep:T4) acquire: pairs with T1; the tag was stored before Start returned the Call.
    const std::uint16_t oldtag = state->tag.load(std::memory_order_acquire);
    if (oldtag == kNoTag) return false;  // never sent: it failed in Start
    if (!state->late) {
      auto late = std::make_shared<LateContext>();
      late->self = late;
      late->original = state;
      if (table_->Discard(oldtag, state.get(), late.get()) ==
          TagTable::DiscardResult::kAlreadyCompleted) {
        (void)late->TakeFromTable();  // the table never had it
        late->Retire();
        return false;
      }
      state->late = late;
      state->self.reset();  // the late context holds the request now
      state->Deliver(absl::CancelledError("request cancelled"));
    }
    // Another Tflush (the first, or a repeat). Its tag may take a while (first come, first
    // served); the Rflush of an earlier flush may release the old tag meanwhile.
    const std::shared_ptr<LateContext>& late = state->late;
    absl::StatusOr<Request> tflush = BuildTflush(oldtag);
    auto flush = std::make_shared<CallState>(shared_from_this(), *std::move(tflush), Callback{});
    flush->flush_target = late;
    flush->self = flush;
    absl::StatusOr<std::uint16_t> tag = table_->Acquire(flush.get());
    if (!tag.ok()) {
      flush->self.reset();
      return false;
    }
    bool registered = false;
    {
      std::lock_guard<std::mutex> lock(late->mu);
      if (!late->released) {
        late->flushes.push_back(flush);
        registered = true;
      }
    }
    if (!registered) {
      Abandon(*flush, *tag);  // the old tag is already free: nothing to flush
      return false;
    }
    flushes_sent_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S3) relaxed: a counter
    Send(*flush, *tag);
    return true;
  }

  void Close() {
    // (ninep:S4) acq_rel RMW: see SHUTDOWN. An RMW, not a store, so that the release
    // sequence of a sender's S1 reaches the drain's S2 through it.
    closed_.fetch_or(1, std::memory_order_acq_rel);
    ::shutdown(fd_, SHUT_RDWR);
  }
  [[nodiscard]] bool closed() const {
    return closed_.load(std::memory_order_acquire) != 0;  // (ninep:S5) acquire: pairs with S4
  }
  [[nodiscard]] std::uint32_t msize() const { return msize_; }

  [[nodiscard]] ConnectionStats stats() const {
    const TagTableCounters c = table_->counters();
    // (ninep:S6) relaxed loads: statistics, exact once the connection is quiet.
    return {.requests_sent = requests_sent_.load(std::memory_order_relaxed),
            .replies = replies_.load(std::memory_order_relaxed),
            .unknown_tags = c.unknown_tags,
            .malformed_replies = malformed_.load(std::memory_order_relaxed),
            .flushes_sent = flushes_sent_.load(std::memory_order_relaxed),
            .rflushes = rflushes_.load(std::memory_order_relaxed),
            .late_replies = late_replies_.load(std::memory_order_relaxed),
            .late_clunks = late_clunks_.load(std::memory_order_relaxed),
            .tag_waits = c.waits,
            .tags_in_use = table_->in_use(),
            .tags_waiting = table_->waiting(),
            .generation_bits = table_->generation_bits()};
  }

 private:
  static void Fail(CallState& state, absl::Status status) {
    state.phase.store(TagEntry::kCompleted, std::memory_order_relaxed);  // (ninep:S7) relaxed:
    state.Deliver(std::move(status));  // never published to the table
  }

  // Fills in the tag and sends, or takes the request back when the connection has closed.
  void Send(CallState& state, std::uint16_t tag) {
    SetTag(state.request, tag);
    // (ninep:S1) acq_rel RMW: reads closed_ after the Associate, whose entry the release
    // hands to a shutdown (S2) that follows; pairs with S2.
    if (closed_.fetch_or(0, std::memory_order_acq_rel) != 0) {
      Abandon(state, tag);
      return;
    }
    absl::Status sent;
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      sent = SendAll(state.request.bytes);
    }
    std::vector<std::uint8_t>().swap(state.request.bytes);
    requests_sent_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S9) relaxed: a counter
    if (!sent.ok()) Close();  // the receive thread fails what is in flight, this one included
  }

  // Frees the tag of a request that was never sent and fails it.
  void Abandon(CallState& state, std::uint16_t tag) {
    if (table_->Complete(tag) == &state) {
      std::shared_ptr<CallState> keep = std::move(state.self);
      state.Deliver(absl::UnavailableError("connection closed"));
    }
    // Otherwise the shutdown drain claimed it and fails it.
  }

  absl::Status SendAll(std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", strerrordesc_np(errno)));
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return absl::OkStatus();
  }

  void ReceiveLoop() {
    // Twice msize: after moving a partial frame (< msize bytes) to the front, a whole frame fits.
    std::vector<std::uint8_t> buffer(std::size_t{msize_} * 2);
    std::size_t begin = 0;
    std::size_t end = 0;
    for (;;) {
      bool broken = false;
      while (end - begin >= 4) {
        std::span<const std::uint8_t> pending(buffer.data() + begin, end - begin);
        const std::uint32_t size = static_cast<std::uint32_t>(pending[0]) |
                                   (static_cast<std::uint32_t>(pending[1]) << 8) |
                                   (static_cast<std::uint32_t>(pending[2]) << 16) |
                                   (static_cast<std::uint32_t>(pending[3]) << 24);
        if (size < kHeaderSize || size > msize_) {  // no way to find the next frame
          malformed_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S10) relaxed: counter
          broken = true;
          break;
        }
        if (pending.size() < size) break;
        HandleFrame(pending.first(size));
        begin += size;
      }
      if (broken) break;
      if (begin == end) {
        begin = end = 0;
      } else if (buffer.size() - end < msize_) {
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      const ssize_t n = ::recv(fd_, buffer.data() + end, buffer.size() - end, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      end += static_cast<std::size_t>(n);
    }
    Shutdown();
  }

  void Shutdown() {
    // (ninep:S2) acq_rel RMW: closed_ before the drain's reads; pairs with S1.
    closed_.fetch_or(1, std::memory_order_acq_rel);
    ::shutdown(fd_, SHUT_RDWR);
    table_->Close();
    DrainTable();
  }

  void DrainTable() {
    table_->Drain([](TagEntry* e) {
      if (e->kind == TagEntry::Kind::kLate) {
        auto* late = static_cast<LateContext*>(e);
        const std::shared_ptr<LateContext> keep = late->TakeFromTable();
        late->Retire();
        return;
      }
      auto* state = static_cast<CallState*>(e);  // claimed by the drain
      std::shared_ptr<CallState> keep = std::move(state->self);
      // A Tflush: the tag it flushes is free now, or will never be answered (its late context,
      // if a late reply took it, is nowhere else in the table).
      if (state->flush_target) state->flush_target->Retire();
      state->Deliver(absl::UnavailableError("connection closed with the request in flight"));
    });
  }

  void HandleFrame(std::span<const std::uint8_t> frame) {
    const std::uint16_t tag = TagOf(frame);
    TagEntry* e = table_->CompleteReply(tag);
    if (e == nullptr) return;  // the table counted the unknown tag; the reply is dropped
    if (e->kind == TagEntry::Kind::kLate) {
      HandleLateReply(*static_cast<LateContext*>(e), frame);
      return;
    }
    auto* state = static_cast<CallState*>(e);
    std::shared_ptr<CallState> keep = std::move(state->self);
    replies_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S12) relaxed: a counter
    if (state->request.type == MsgType::kTflush) {
      HandleRflush(*state, frame);
    } else {
      state->Deliver(Parse(frame, state->request));
    }
    SendDeferredClunks();
  }

  absl::StatusOr<Reply> Parse(std::span<const std::uint8_t> frame, const Request& request) {
    absl::StatusOr<Reply> reply = ParseReply(frame, request.type);
    if (reply.ok()) {
      std::size_t carried = 0;
      if (const auto* r = std::get_if<Rread>(&*reply)) carried = r->data.size();
      if (request.type == MsgType::kTreaddir) carried = frame.size() - kHeaderSize - 4;
      if (carried > request.count) {
        reply = absl::DataLossError(absl::StrCat("malformed ", MsgTypeName(frame[4]), ": ",
                                                 carried, " bytes for a request of ",
                                                 request.count));
      }
    }
    if (!reply.ok() && absl::IsDataLoss(reply.status())) {
      malformed_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S13) relaxed: a counter
    }
    return reply;
  }

  void HandleRflush(CallState& flush, std::span<const std::uint8_t> frame) {
    absl::StatusOr<Reply> reply = Parse(frame, flush.request);
    LateContext& late = *flush.flush_target;
    if (!reply.ok()) {
      // An Rlerror or a malformed Rflush: the server may still answer the old tag, so it
      // stays quarantined (until a later Rflush, or the connection closes). This flush is done.
      {
        std::lock_guard<std::mutex> lock(late.mu);
        std::erase_if(late.flushes, [&](const auto& f) { return f.get() == &flush; });
      }
      flush.Deliver(std::move(reply));
      return;
    }
    rflushes_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S14) relaxed: a counter
    std::vector<std::shared_ptr<CallState>> earlier;
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(late.mu);
      auto it = std::find_if(late.flushes.begin(), late.flushes.end(),
                             [&](const auto& f) { return f.get() == &flush; });
      if (it != late.flushes.end()) {
        last = (it + 1 == late.flushes.end());
        if (last) {
          late.flushes.erase(it);
          earlier = std::move(late.flushes);
          late.flushes.clear();
          late.released = true;
        } else {
          late.flushes.erase(it);  // a server that answers every Tflush: free just this one
        }
      }
    }
    if (last) {
      // Only the last Tflush for a tag is answered (flush(5)); the earlier ones are done too.
      for (const std::shared_ptr<CallState>& f : earlier) {
        if (table_->Complete(f->tag.load(std::memory_order_relaxed)) == f.get()) {  // (ninep:T5)
          std::shared_ptr<CallState> keep = std::move(f->self);                   // relaxed: own
          f->Deliver(Rempty{});                                                    // thread
        }
      }
      // (ninep:T6) relaxed: written before the Tflush was sent, by Discard (T2).
      const absl::StatusOr<TagEntry*> released =
          table_->Release(late.tag.load(std::memory_order_relaxed));
      // The table's reference comes back with the context, unless a late reply took both.
      std::shared_ptr<LateContext> keep;
      if (released.ok() && *released != nullptr) keep = late.TakeFromTable();
      late.Retire();
    }
    flush.Deliver(std::move(reply));
  }

  // A reply for a cancelled request that beat its Rflush (flush(5)): whatever it changed on
  // the server stands; undo what the cancelled caller no longer wants.
  void HandleLateReply(LateContext& late, std::span<const std::uint8_t> frame) {
    late_replies_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S15) relaxed: a counter
    // The table handed the context out: its reference is ours now, and so is the request,
    // which nothing else needs it for (a second reply for the tag finds nothing).
    std::shared_ptr<LateContext> keep;
    std::shared_ptr<CallState> original;
    {
      std::lock_guard<std::mutex> lock(late.mu);
      keep = std::move(late.self);
      original = std::move(late.original);
    }
    if (!original) return;
    const Request& request = original->request;
    absl::StatusOr<Reply> reply = Parse(frame, request);
    if (reply.ok()) {
      if (const auto* walk = std::get_if<Rwalk>(&*reply)) {
        // A complete walk created newfid (a walk to itself only moved the caller's fid).
        if (walk->qids.size() == request.walk_names && request.newfid != request.fid) {
          Clunk(request.newfid);
        }
      } else if (std::holds_alternative<Rattach>(*reply)) {
        Clunk(request.fid);
      }
      // Rlopen, Rlcreate: the fid is open now; its owner clunks it (late_reply shows it).
    }
    std::lock_guard<std::mutex> lock(late.mu);
    late.late_reply = std::move(reply);
  }

  // Clunks a fid from the receive thread, which must never wait for a tag: when none is free
  // the clunk waits in deferred_clunks_ until a reply frees one.
  void Clunk(std::uint32_t fid) {
    deferred_clunks_.push_back(fid);
    SendDeferredClunks();
  }
  void SendDeferredClunks() {
    while (!deferred_clunks_.empty() && !closed()) {
      auto state = std::make_shared<CallState>(
          shared_from_this(), *BuildTclunk(deferred_clunks_.back()), Callback{});
      state->self = state;
      absl::StatusOr<std::uint16_t> tag = table_->TryAcquire(state.get());
      if (!tag.ok()) {
        state->self.reset();
        return;
      }
      deferred_clunks_.pop_back();
      late_clunks_.fetch_add(1, std::memory_order_relaxed);  // (ninep:S16) relaxed: a counter
      Send(*state, *tag);
    }
  }

  const int fd_;
  const std::uint32_t msize_;
  std::unique_ptr<TagTable> table_;
  std::mutex send_mu_;  // one writer at a time on the socket
  std::thread receiver_;
  std::atomic<std::uint8_t> closed_{0};  // 0 or 1; an integer for fetch_or (S1, S2)
  std::vector<std::uint32_t> deferred_clunks_;  // receive thread only
  std::atomic<std::uint64_t> requests_sent_{0}, replies_{0}, malformed_{0}, flushes_sent_{0},
      rflushes_{0}, late_replies_{0}, late_clunks_{0};

  friend class ::ninep::Connection;
};

namespace {

absl::Status ReadExactly(int fd, std::uint8_t* out, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::recv(fd, out, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) return absl::UnavailableError("connection closed during version negotiation");
    if (got < 0) return absl::UnavailableError(absl::StrCat("recv: ", strerrordesc_np(errno)));
    out += got;
    n -= static_cast<std::size_t>(got);
  }
  return absl::OkStatus();
}

// Tversion / Rversion, before the receive thread exists. Answers the msize agreed.
absl::StatusOr<std::uint32_t> Negotiate(int fd, std::uint32_t msize) {
  absl::StatusOr<Request> tversion = BuildTversion(msize, kProtocolVersion);
  if (!tversion.ok()) return tversion.status();
  std::span<const std::uint8_t> out(tversion->bytes);
  while (!out.empty()) {
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", strerrordesc_np(errno)));
    out = out.subspan(static_cast<std::size_t>(n));
  }
  std::vector<std::uint8_t> frame(kHeaderSize);
  if (absl::Status s = ReadExactly(fd, frame.data(), kHeaderSize); !s.ok()) return s;
  absl::StatusOr<FrameHeader> header = ParseFrameHeader(frame, std::max(msize, 8192U));
  if (!header.ok()) return header.status();
  frame.resize(header->size);
  if (absl::Status s = ReadExactly(fd, frame.data() + kHeaderSize, header->size - kHeaderSize);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<Reply> reply = ParseReply(frame, MsgType::kTversion);
  if (!reply.ok()) return reply.status();
  const auto& rversion = std::get<Rversion>(*reply);
  if (header->tag != kNoTag) {
    return absl::DataLossError(absl::StrCat("Rversion with tag ", header->tag, ", not NOTAG"));
  }
  if (rversion.version != kProtocolVersion) {
    return absl::UnimplementedError(
        absl::StrCat("server speaks \"", rversion.version, "\", not 9P2000.L"));
  }
  // A message must hold at least a header and a useful payload.
  constexpr std::uint32_t kMinMsize = 4096;
  if (rversion.msize < kMinMsize || rversion.msize > msize) {
    return absl::DataLossError(absl::StrCat("Rversion msize ", rversion.msize, " outside ",
                                            kMinMsize, "..", msize));
  }
  return rversion.msize;
}

}  // namespace
}  // namespace internal

// ---- Call ----------------------------------------------------------------------------------

absl::StatusOr<Reply> Call::Wait() const {
  if (!state_) return absl::FailedPreconditionError("empty Call");
  return state_->Wait();
}
bool Call::done() const { return state_ && state_->done(); }
bool Call::Cancel() const { return state_ && state_->core->Cancel(state_); }
std::uint16_t Call::tag() const {
  return state_ ? state_->tag.load(std::memory_order_acquire) : kNoTag;  // (ninep:T7) acquire:
}                                                                         // pairs with T1
std::uint64_t Call::admission() const { return state_ ? state_->admission : 0; }
std::optional<absl::StatusOr<Reply>> Call::late_reply() const {
  if (!state_) return std::nullopt;
  std::shared_ptr<internal::LateContext> late;
  {
    std::lock_guard<std::mutex> lock(state_->cancel_mu);
    late = state_->late;
  }
  if (!late) return std::nullopt;
  std::lock_guard<std::mutex> lock(late->mu);
  return late->late_reply;
}

// ---- Connection ----------------------------------------------------------------------------

Connection::Connection(std::shared_ptr<internal::ConnectionCore> core) : core_(std::move(core)) {}

Connection::~Connection() { core_->StopReceiver(); }

absl::StatusOr<std::unique_ptr<Connection>> Connection::FromSocket(int fd,
                                                                   ConnectionOptions options) {
  absl::StatusOr<std::unique_ptr<internal::TagTable>> table =
      internal::TagTable::Create(options.tag_table, options.max_in_flight);
  if (!table.ok()) {
    ::close(fd);
    return table.status();
  }
  absl::StatusOr<std::uint32_t> msize = internal::Negotiate(fd, options.msize);
  if (!msize.ok()) {
    ::close(fd);
    return msize.status();
  }
  auto core = std::make_shared<internal::ConnectionCore>(fd, *msize, *std::move(table));
  core->StartReceiver();
  return std::unique_ptr<Connection>(new Connection(std::move(core)));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(std::string_view host_port,
                                                                ConnectionOptions options) {
  const std::size_t colon = host_port.rfind(':');
  std::uint32_t port = 0;
  if (colon == std::string_view::npos || !absl::SimpleAtoi(std::string(host_port.substr(colon + 1)), &port) ||
      port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", std::string(host_port), "\" is not host:port"));
  }
  const std::string host(host_port.substr(0, colon));
  const std::string service = absl::StrCat(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::NotFoundError(absl::StrCat("resolving ", host, ": ", ::gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError("no address");
  int fd = -1;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    last = absl::UnavailableError(absl::StrCat("connect to ", std::string(host_port), ": ",
                                               strerrordesc_np(errno)));
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) return last;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return FromSocket(fd, options);
}

Call Connection::Start(absl::StatusOr<Request> request, Callback done) {
  return core_->Start(std::move(request), std::move(done));
}

absl::StatusOr<Reply> Connection::Run(absl::StatusOr<Request> request) {
  return Start(std::move(request)).Wait();
}

void Connection::Close() { core_->Close(); }
bool Connection::closed() const { return core_->closed(); }
std::uint32_t Connection::msize() const { return core_->msize(); }
ConnectionStats Connection::stats() const { return core_->stats(); }

}  // namespace ninep
