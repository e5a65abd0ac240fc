#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#endif

namespace appliance {
namespace {

constexpr int kMaxHelpers = 3;

int HelpersWanted() {
  if (const char* env = std::getenv("APPLIANCE_DECODE_HELPERS"); env != nullptr && *env != 0) {
    char* rest = nullptr;
    const long wanted = std::strtol(env, &rest, 10);
    if (*rest == 0 && wanted >= 0) return static_cast<int>(std::min<long>(wanted, kMaxHelpers));
  }
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
#endif
  return std::clamp(cpus - 1, 0, kMaxHelpers);
}

// One RunParts call. Parts are claimed by taking `next`; the caller waits for
// `done` to reach `count`. Helpers hold it by shared_ptr, so a helper that
// wakes after the caller has returned finds nothing left to claim and lets go.
struct Job {
  Job(const std::function<void(int)>* part, int count) : part(part), count(count) {}

  const std::function<void(int)>* part;  // the caller's: used only for a claimed part
  const int count;
  std::atomic<int> next{0};
  std::mutex mutex;
  std::condition_variable finished;
  int done = 0;               // guarded by mutex
  std::exception_ptr error;   // guarded by mutex: the first part's that threw

  // Runs every part not yet claimed.
  void Work() {
    for (int i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      std::exception_ptr thrown;
      try {
        (*part)(i);
      } catch (...) {
        thrown = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (thrown && !error) error = thrown;
      if (++done == count) finished.notify_all();
    }
  }
};

class Helpers {
 public:
  explicit Helpers(int wanted) {
#if defined(__linux__)
    // The helpers take no signals (a new thread inherits its creator's mask):
    // SIGTERM and SIGHUP stay with the threads of the program that handles them.
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
#endif
    for (int i = 0; i < wanted; ++i) {
      try {
        std::thread([this] { Loop(); }).detach();
        ++size_;
      } catch (const std::system_error&) {
        break;  // no more threads to be had: fewer helpers
      }
    }
#if defined(__linux__)
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
#endif
  }

  int size() const { return size_; }

  void Post(const std::shared_ptr<Job>& job, int copies) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int i = 0; i < copies; ++i) queue_.push_back(job);
    }
    for (int i = 0; i < copies; ++i) wake_.notify_one();
  }

 private:
  void Loop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job->Work();
    }
  }

  int size_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
};

// The process's helpers, started at first use. They live as long as the
// process (never destroyed: no thread outlives what it waits on at exit). A
// child forked after they started has none of their threads, so it starts its
// own.
Helpers& TheHelpers() {
  static std::mutex mutex;
  static Helpers* helpers = nullptr;
#if defined(__linux__)
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(mutex);
  if (helpers == nullptr || owner != getpid()) {
    helpers = new Helpers(HelpersWanted());
    owner = getpid();
  }
#else
  std::lock_guard<std::mutex> lock(mutex);
  if (helpers == nullptr) helpers = new Helpers(HelpersWanted());
#endif
  return *helpers;
}

}  // namespace

void RunParts(int count, const std::function<void(int)>& part) {
  if (count <= 0) return;
  Helpers& pool = TheHelpers();
  const int helpers = std::min(pool.size(), count - 1);
  if (helpers == 0) {
    for (int i = 0; i < count; ++i) part(i);
    return;
  }
  auto job = std::make_shared<Job>(&part, count);
  pool.Post(job, helpers);
  job->Work();
  std::unique_lock<std::mutex> lock(job->mutex);
  job->finished.wait(lock, [&] { return job->done == job->count; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace appliance
