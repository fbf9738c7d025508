// Clang's thread-safety analysis (-Wthread-safety), and the mutex it understands.
//
// A member written `T x_ GUARDED_BY(mu_);` may only be read or written while `mu_` is held; a
// function declared `REQUIRES(mu_)` may only be called with it held. libstdc++'s std::mutex
// and std::lock_guard carry no annotations, so code that wants the check uses `Mutex` and
// `MutexLock` (or `UniqueLock`, which a condition variable can wait on), or `SharedMutex` with
// `ReaderLock` and `WriterLock`. scripts/check-thread-safety.sh compiles every source file with
// clang and these warnings as errors (run by scripts/test.sh); with g++ the macros are empty.
// Thread-safety: Mutex is a mutex; the locks are for one thread's scope.
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define DAS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define DAS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) DAS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY DAS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) DAS_THREAD_ANNOTATION(guarded_by(x))
#define REQUIRES(...) DAS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) DAS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) DAS_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) DAS_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE(...) DAS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS DAS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace das {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  friend class UniqueLock;
  std::mutex mu_;
};

// A reader-writer mutex: writers hold it alone (WriterLock), readers together (ReaderLock).
class CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  void lock_shared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void unlock_shared() RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~WriterLock() RELEASE() { mu_.unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_.lock_shared(); }
  ~ReaderLock() RELEASE() { mu_.unlock_shared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

// Holds `mu` for its scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Holds `mu` for its scope, but for the waits of a std::condition_variable on `native()`
// (which give it up and take it again before they return: held again, as the analysis assumes).
class SCOPED_CAPABILITY UniqueLock {
 public:
  explicit UniqueLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~UniqueLock() RELEASE() {}
  UniqueLock(const UniqueLock&) = delete;
  UniqueLock& operator=(const UniqueLock&) = delete;

  std::unique_lock<std::mutex>& native() { return lock_; }
  // Gives the mutex up for a while (work that must not hold it), and takes it again.
  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace das
