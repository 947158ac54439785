#include "atlas/csprng.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

#include "instrumentation/atomic.h"

namespace midatlas::internal {
namespace {

// RFC 8439 section 2.3: "expand 32-byte k" as four little-endian words.
constexpr std::array<std::uint32_t, 4> kSigma = {0x61707865U, 0x3320646eU, 0x79622d32U,
                                                 0x6b206574U};

// How many times this process has been forked into (counted in the child). A generator keyed
// under another count belongs to an ancestor process and re-keys before its next draw.
Atomic<std::uint64_t> fork_generation{0};

void MarkGeneratorsStaleInChild() noexcept {
  // (rng:K2) relaxed: runs in the child before fork() returns there, when the child has one
  // thread; that thread's later (rng:K1) follows it in program order.
  fork_generation.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t ForkGeneration() noexcept {
  // (rng:K1) relaxed: only a forked child's own (rng:K2) ever changes the value it reads, and
  // that happened earlier on this very thread.
  return fork_generation.load(std::memory_order_relaxed);
}

// Fills `bytes` from getrandom(2), or from /dev/urandom on a kernel without it. False when
// neither works.
bool ReadSystemRandom(unsigned char* bytes, std::size_t count) noexcept {
  std::size_t done = 0;
  while (done < count) {
    const ssize_t got = getrandom(bytes + done, count - done, 0);
    if (got > 0) {
      done += static_cast<std::size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (done == count) return true;
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  while (done < count) {
    const ssize_t got = read(fd, bytes + done, count - done);
    if (got > 0) {
      done += static_cast<std::size_t>(got);
    } else if (!(got < 0 && errno == EINTR)) {
      break;
    }
  }
  close(fd);
  return done == count;
}

std::uint32_t LittleEndianWord(const unsigned char* bytes) noexcept {
  return std::uint32_t{bytes[0]} | std::uint32_t{bytes[1]} << 8 |
         std::uint32_t{bytes[2]} << 16 | std::uint32_t{bytes[3]} << 24;
}

struct ThreadGenerator {
  ChaCha20Random random;
  std::uint64_t fork_generation = 0;  // ForkGeneration() when `random` was keyed
  // Without the fork handler (pthread_atfork failed for want of memory), every draw compares
  // the process id instead: a system call per draw, but never the parent's stream in a child.
  bool fork_handler = false;
  pid_t pid = 0;
};

// Constant-initialized: no guard on the hot path, and nothing to destroy at thread exit.
constinit thread_local ThreadGenerator thread_generator;

}  // namespace

namespace {

// The quarter round on four words held in locals, so that the compiler keeps the whole state
// in registers (an array indexed through references stays in memory at -O2: twice as slow).
[[gnu::always_inline]] inline void QuarterRound(std::uint32_t& a, std::uint32_t& b,
                                                std::uint32_t& c, std::uint32_t& d) noexcept {
  a += b;
  d = std::rotl(d ^ a, 16);
  c += d;
  b = std::rotl(b ^ c, 12);
  a += b;
  d = std::rotl(d ^ a, 8);
  c += d;
  b = std::rotl(b ^ c, 7);
}

}  // namespace

void ChaCha20QuarterRound(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c,
                          std::uint32_t& d) noexcept {
  QuarterRound(a, b, c, d);
}

std::array<std::uint32_t, 16> ChaCha20Block(const std::array<std::uint32_t, 8>& key,
                                            std::uint32_t counter,
                                            const std::array<std::uint32_t, 3>& nonce) noexcept {
  // The state matrix: constants (words 0-3), key (4-11), counter (12), nonce (13-15).
  std::uint32_t x0 = kSigma[0];
  std::uint32_t x1 = kSigma[1];
  std::uint32_t x2 = kSigma[2];
  std::uint32_t x3 = kSigma[3];
  std::uint32_t x4 = key[0];
  std::uint32_t x5 = key[1];
  std::uint32_t x6 = key[2];
  std::uint32_t x7 = key[3];
  std::uint32_t x8 = key[4];
  std::uint32_t x9 = key[5];
  std::uint32_t x10 = key[6];
  std::uint32_t x11 = key[7];
  std::uint32_t x12 = counter;
  std::uint32_t x13 = nonce[0];
  std::uint32_t x14 = nonce[1];
  std::uint32_t x15 = nonce[2];
  for (int double_round = 0; double_round < 10; ++double_round) {
    // Column round, then diagonal round.
    QuarterRound(x0, x4, x8, x12);
    QuarterRound(x1, x5, x9, x13);
    QuarterRound(x2, x6, x10, x14);
    QuarterRound(x3, x7, x11, x15);
    QuarterRound(x0, x5, x10, x15);
    QuarterRound(x1, x6, x11, x12);
    QuarterRound(x2, x7, x8, x13);
    QuarterRound(x3, x4, x9, x14);
  }
  // Add the input state back in.
  return {x0 + kSigma[0], x1 + kSigma[1], x2 + kSigma[2],  x3 + kSigma[3],
          x4 + key[0],    x5 + key[1],    x6 + key[2],     x7 + key[3],
          x8 + key[4],    x9 + key[5],    x10 + key[6],    x11 + key[7],
          x12 + counter,  x13 + nonce[0], x14 + nonce[1],  x15 + nonce[2]};
}

void ChaCha20Random::Key(const std::array<std::uint32_t, 8>& key,
                         const std::array<std::uint32_t, 3>& nonce) noexcept {
  key_ = key;
  nonce_ = nonce;
  counter_ = 0;
  next_ = kBlockWords;
  keyed_ = true;
}

void ChaCha20Random::KeyFromSystem() noexcept {
  unsigned char bytes[(8 + 3) * 4];
  if (!ReadSystemRandom(bytes, sizeof(bytes))) {
    std::fputs("midatlas: neither getrandom(2) nor /dev/urandom gave random bytes\n", stderr);
    std::abort();
  }
  std::array<std::uint32_t, 8> key{};
  std::array<std::uint32_t, 3> nonce{};
  for (std::size_t i = 0; i < 8; ++i) key[i] = LittleEndianWord(bytes + 4 * i);
  for (std::size_t i = 0; i < 3; ++i) nonce[i] = LittleEndianWord(bytes + 32 + 4 * i);
  Key(key, nonce);
}

void ChaCha20Random::KeyForTesting(std::uint64_t seed) noexcept {
  // The seed is the key's first two words; the rest is a fixed pattern, so that seeds 0 and 1
  // still give unrelated streams (ChaCha20's outputs are unrelated for any two keys).
  const std::array<std::uint32_t, 8> key = {static_cast<std::uint32_t>(seed),
                                            static_cast<std::uint32_t>(seed >> 32),
                                            0x6d696461U, 0x746c6173U, 0x74657374U,
                                            0x73656564U, 0, 0};
  Key(key, {0, 0, 0});
}

void ChaCha20Random::Refill() noexcept {
  block_ = ChaCha20Block(key_, counter_, nonce_);
  next_ = 0;
  // 2^32 blocks (256 GiB of keystream) exhaust the counter; the stream goes on under the
  // next nonce instead of repeating.
  if (++counter_ == 0 && ++nonce_[0] == 0 && ++nonce_[1] == 0) ++nonce_[2];
}

std::uint32_t ChaCha20Random::Below(std::uint32_t bound) noexcept {
  // The high half of draw * bound is in [0, bound); each result has floor(2^32 / bound) or
  // one more draws mapping to it. The low half tells them apart: rejecting draws whose low half
  // is below 2^32 mod bound leaves exactly floor(2^32 / bound) for every result.
  std::uint64_t product = std::uint64_t{Next32()} * bound;
  auto low = static_cast<std::uint32_t>(product);
  if (low < bound) {
    const std::uint32_t threshold = (0U - bound) % bound;  // 2^32 mod bound
    while (low < threshold) {
      product = std::uint64_t{Next32()} * bound;
      low = static_cast<std::uint32_t>(product);
    }
  }
  return static_cast<std::uint32_t>(product >> 32);
}

ChaCha20Random& ThreadRandom() noexcept {
  ThreadGenerator& generator = thread_generator;
  const std::uint64_t generation = ForkGeneration();
  if (!generator.random.keyed() || generator.fork_generation != generation ||
      (!generator.fork_handler && generator.pid != getpid())) [[unlikely]] {
    // Registered before the first key is drawn, so every fork after it marks it stale.
    static const bool kForkHandler =
        pthread_atfork(nullptr, nullptr, &MarkGeneratorsStaleInChild) == 0;
    generator.random.KeyFromSystem();
    generator.fork_generation = generation;
    generator.fork_handler = kForkHandler;
    generator.pid = getpid();
  }
  return generator.random;
}

}  // namespace midatlas::internal
