// Raw system calls for the code that runs between clone and execve.
//
// Why not libc's syscall() or its wrappers: after a fork-like clone of a
// multithreaded process (Node has libuv's thread pool, V8's platform threads),
// the child has only the calling thread and may find any libc lock held by a
// thread that no longer exists. The wrappers also write errno through the
// thread pointer. These inline functions touch nothing but registers: they
// return -errno on failure, like the kernel does.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace brig {

#if defined(__x86_64__)
static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#else
#error "brig supports x86_64 and aarch64"
#endif

static inline long sys(long n) { return raw_syscall6(n, 0, 0, 0, 0, 0, 0); }
static inline long sys(long n, long a) { return raw_syscall6(n, a, 0, 0, 0, 0, 0); }
static inline long sys(long n, long a, long b) { return raw_syscall6(n, a, b, 0, 0, 0, 0); }
static inline long sys(long n, long a, long b, long c) { return raw_syscall6(n, a, b, c, 0, 0, 0); }
static inline long sys(long n, long a, long b, long c, long d) { return raw_syscall6(n, a, b, c, d, 0, 0); }
static inline long sys(long n, long a, long b, long c, long d, long e) {
  return raw_syscall6(n, a, b, c, d, e, 0);
}

template <typename T>
static inline long P(T* p) { return reinterpret_cast<long>(p); }
template <typename T>
static inline long P(const T* p) { return reinterpret_cast<long>(p); }

// Freestanding helpers. The reads go through a volatile pointer: a plain
// loop is turned into a call to libc's strlen by the optimiser, and a first
// call through the PLT makes the dynamic linker run (and write shared state)
// inside the child.
static inline size_t str_len(const char* s) {
  const volatile char* v = s;
  size_t n = 0;
  while (v[n]) n++;
  return n;
}

}  // namespace brig
