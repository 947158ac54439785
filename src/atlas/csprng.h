// The random numbers behind the RANDOM reuse policy (index_picker.h): a ChaCha20 keystream
// (RFC 8439, section 2.3: the block function with a 256-bit key, a 32-bit block counter and a
// 96-bit nonce) used as a generator, keyed from the operating system (getrandom(2)).
//
// Why a cryptographic generator: RFC 5452 asks for identifiers an off-path attacker cannot
// predict from the ones it has seen. A fast statistical generator (xorshift, a PCG, the
// Mersenne Twister) passes uniformity tests but gives its state away after a few outputs;
// ChaCha20 does not, and costs about ten nanoseconds per 32-bit draw (one 64-byte block per 16
// draws).
//
// Each thread draws from its own generator (ThreadRandom), so a draw takes no lock and
// touches no shared line. A forked child would otherwise continue its parent's stream and
// hand out the same "unpredictable" values as the parent; a pthread_atfork handler marks
// every generator of the child stale, and its next draw re-keys from the system.
//
// When not to use it: this is a generator for identifiers, not a general-purpose
// cryptographic library. It keeps no backtracking protection (a memory dump of a thread
// reveals the draws it made since its last re-key), which identifiers do not need.
#ifndef MIDATLAS_SRC_ATLAS_CSPRNG_H_
#define MIDATLAS_SRC_ATLAS_CSPRNG_H_

#include <array>
#include <cstdint>

namespace midatlas::internal {

// RFC 8439 section 2.3: the 16 output words of the ChaCha20 block function (the state after 20
// rounds plus the input state), for `key`, block `counter` and `nonce`. Serialized
// little-endian, the words are the 64 bytes of keystream.
std::array<std::uint32_t, 16> ChaCha20Block(const std::array<std::uint32_t, 8>& key,
                                            std::uint32_t counter,
                                            const std::array<std::uint32_t, 3>& nonce) noexcept;

// RFC 8439 section 2.1: the quarter round on (a, b, c, d), in place. Exposed for the RFC's own
// test vector.
void ChaCha20QuarterRound(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c,
                          std::uint32_t& d) noexcept;

// A ChaCha20 keystream read 32 bits at a time. Not thread-safe: one per thread (ThreadRandom),
// or owned by one thread. A default-constructed generator is unkeyed (keyed() is false) and
// must be keyed before its first draw.
class ChaCha20Random {
 public:
  constexpr ChaCha20Random() noexcept = default;

  // Keys the generator: block counter 0, nothing buffered.
  void Key(const std::array<std::uint32_t, 8>& key,
           const std::array<std::uint32_t, 3>& nonce) noexcept;
  // Keys it from the operating system (getrandom(2), else /dev/urandom). A system that offers
  // neither has no secure randomness to give: this aborts with a message rather than hand out
  // predictable values.
  void KeyFromSystem() noexcept;
  // A deterministic key derived from `seed`, for tests: the same seed gives the same stream.
  void KeyForTesting(std::uint64_t seed) noexcept;

  [[nodiscard]] bool keyed() const noexcept { return keyed_; }

  // The next 32 bits of keystream.
  std::uint32_t Next32() noexcept {
    if (next_ == kBlockWords) Refill();
    return block_[next_++];
  }

  // A uniform draw from [0, bound), bound >= 1, without bias: the multiply-and-shift reduction
  // of a 32-bit draw, rejecting the few draws (fewer than bound of the 2^32) that would
  // favour some results.
  std::uint32_t Below(std::uint32_t bound) noexcept;

 private:
  static constexpr std::uint32_t kBlockWords = 16;

  void Refill() noexcept;

  std::array<std::uint32_t, 8> key_{};
  std::array<std::uint32_t, 3> nonce_{};
  std::uint32_t counter_ = 0;            // the next block to compute
  std::array<std::uint32_t, kBlockWords> block_{};
  std::uint32_t next_ = kBlockWords;     // the next unread word of block_
  bool keyed_ = false;
};

// The calling thread's generator, keyed from the system on first use and again in a forked
// child (see the top of this file).
ChaCha20Random& ThreadRandom() noexcept;

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_CSPRNG_H_
