#!/usr/bin/env bash
# scripts/check-thread-safety.sh: clang's thread-safety analysis fails on each rule broken in a
# made-up file (a guarded member touched without its mutex, a REQUIRES function called without
# it, a lock given up and the member touched anyway), names the line, and passes the same code
# kept right. Usage: thread_safety_test.sh BUILD_DIR (its compile_commands.json gives the flags).
set -euo pipefail
script="$(dirname "$0")/../../scripts/check-thread-safety.sh"
build=${1:?the build directory}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$work/broken.cc" <<'CC'
#include "common/mutex.h"
namespace das {
class Counter {
 public:
  void Unlocked() { ++n_; }
  void CallsWithout() { AddLocked(); }
  void GivesUp() {
    UniqueLock lock(mu_);
    lock.Unlock();
    ++n_;
  }
  void AddLocked() REQUIRES(mu_) { ++n_; }

 private:
  Mutex mu_;
  int n_ GUARDED_BY(mu_) = 0;
};
}  // namespace das
CC
cat >"$work/kept.cc" <<'CC'
#include "common/mutex.h"
namespace das {
class Counter {
 public:
  void Locked() { MutexLock lock(mu_); ++n_; }
  void CallsWith() { MutexLock lock(mu_); AddLocked(); }
  void GivesUpAndTakesBack() {
    UniqueLock lock(mu_);
    lock.Unlock();
    lock.Lock();
    ++n_;
  }
  void AddLocked() REQUIRES(mu_) { ++n_; }

 private:
  Mutex mu_;
  int n_ GUARDED_BY(mu_) = 0;
};
}  // namespace das
CC
if out=$("$script" "$build" "$work/broken.cc" 2>&1); then fail "broken rules accepted: $out"; fi
for expected in "broken.cc:5:" "broken.cc:6:" "broken.cc:10:" "requires holding mutex 'mu_'" \
  "1 of 1 files failed"; do
  [[ "$out" == *"$expected"* ]] || fail "missing '$expected' in: $out"
done
out=$("$script" "$build" "$work/kept.cc" 2>&1) || fail "rules kept refused: $out"
echo "ok"
