// Test helper: the diod that scripts/with-diod started (NINEP_ADDR, NINEP_EXPORT,
// NINEP_DIOD_PID), FIFOs that hold a request in flight inside it, and bounded waits.
#ifndef NINEP_TESTS_DIOD_ENV_H_
#define NINEP_TESTS_DIOD_ENV_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace ninep::testing {

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}
inline std::string DiodAddr() { return Env("NINEP_ADDR"); }
inline std::string DiodExport() { return Env("NINEP_EXPORT"); }

// Polls `condition` until it holds or `limit` passes: the server works on its own schedule, so
// a test can only watch for the state it expects. True when the condition held.
inline bool Eventually(const std::function<bool()>& condition,
                       std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Threads of the diod process blocked in open()/openat() right now (a Tlopen of a FIFO with
// no writer), read from /proc/<pid>/task/*/syscall.
inline int DiodThreadsInOpen() {
  const std::string pid = Env("NINEP_DIOD_PID");
  if (pid.empty()) return -1;
  int blocked = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + pid + "/task", ec)) {
    std::ifstream in(task.path() / "syscall");
    long number = -1;
    if (in >> number && (number == SYS_openat
#ifdef SYS_open
                         || number == SYS_open
#endif
                         )) {
      ++blocked;
    }
  }
  return blocked;
}

// A FIFO in the export: a Tlopen of it blocks inside diod until Unblock opens the other end.
class HeldFifo {
 public:
  explicit HeldFifo(const std::string& name) : path_(DiodExport() + "/" + name) {
    ::unlink(path_.c_str());
    ok_ = ::mkfifo(path_.c_str(), 0666) == 0;
  }
  HeldFifo(const HeldFifo&) = delete;
  HeldFifo& operator=(const HeldFifo&) = delete;
  ~HeldFifo() {
    Unblock();
    if (writer_.joinable()) writer_.join();
    ::unlink(path_.c_str());
  }
  [[nodiscard]] bool ok() const { return ok_; }
  // Opens the writing end (in a thread: the open waits for the reader), letting diod's open of
  // the reading end finish.
  void Unblock() {
    if (unblocked_) return;
    unblocked_ = true;
    // A non-blocking open of the writing end succeeds once a reader (diod's open) waits, and
    // wakes it; retried for a while in case diod has not reached its open yet.
    writer_ = std::thread([path = path_] {
      Eventually([&] {
        const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return false;
        ::close(fd);
        return true;
      });
    });
  }

 private:
  std::string path_;
  bool ok_ = false;
  bool unblocked_ = false;
  std::thread writer_;
};

}  // namespace ninep::testing

#endif  // NINEP_TESTS_DIOD_ENV_H_
