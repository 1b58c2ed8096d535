// netnsConnect(userFd, netFd, family, address, port, timeoutMs, udp) -> fd: a TCP
// socket made inside a sandbox's network namespace and connected there, for
// brig's port proxy (src/net/proxy.ts). With udp: a UDP socket made there and
// left unconnected: the caller connects it through Node's dgram (libuv marks
// a socket it adopts already connected as such, and Node's dgram then can
// send neither with an address nor without one).
//
// A socket belongs to the network namespace it was made in, for good, so
// the proxy needs one made inside. Joining that namespace needs
// CAP_SYS_ADMIN in the user namespace that owns it, so the maker first
// joins the sandbox's user namespace, which a multithreaded process (Node)
// may not do. A vfork-style child does it instead: our memory (no copy of
// Node's), its own fs_struct (a shared one would refuse the setns), our fd
// table (the socket it makes is ours when it exits). It runs raw system
// calls only, on a stack of its own, while this thread waits.
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "sys.h"
#include "trampoline.h"

namespace brig {

namespace {

constexpr size_t kConnectStack = 64 * 1024;

struct NetnsConnect {
  int user_fd;
  int net_fd;
  int family;
  int type;  // SOCK_STREAM or SOCK_DGRAM
  union {
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr;
  socklen_t addr_len;
  long timeout_ms;
  // Out: the socket, or the failed step and its errno.
  int fd;
  int step;  // 0 setns, 1 socket, 2 connect
  int err;
};

[[noreturn]] void connect_main(void* arg) {
  auto* c = static_cast<NetnsConnect*>(arg);
  c->fd = -1;
  long r = sys(SYS_setns, c->user_fd, CLONE_NEWUSER);
  if (r == 0) r = sys(SYS_setns, c->net_fd, CLONE_NEWNET);
  if (r < 0) {
    c->step = 0;
    c->err = static_cast<int>(-r);
    sys(SYS_exit, 0);
  }
  long fd = sys(SYS_socket, c->family, c->type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c->step = 1;
    c->err = static_cast<int>(-fd);
    sys(SYS_exit, 0);
  }
  if (c->type == SOCK_DGRAM) {
    c->fd = static_cast<int>(fd);
    sys(SYS_exit, 0);
  }
  // connect() waits at most this long (SO_SNDTIMEO bounds it); on loopback
  // it is answered at once, refused or accepted.
  struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, P(&tv), sizeof tv);
  r = sys(SYS_connect, fd, P(&c->addr), c->addr_len);
  if (r < 0) {
    sys(SYS_close, fd);
    c->step = 2;
    c->err = static_cast<int>(-r);
    sys(SYS_exit, 0);
  }
  struct timeval none = {0, 0};
  sys(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, P(&none), sizeof none);
  c->fd = static_cast<int>(fd);
  sys(SYS_exit, 0);
  __builtin_unreachable();
}

}  // namespace

Napi::Value NetnsConnectFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NetnsConnect c;
  memset(&c, 0, sizeof c);
  c.user_fd = info[0].As<Napi::Number>().Int32Value();
  c.net_fd = info[1].As<Napi::Number>().Int32Value();
  c.family = info[2].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  std::string address = info[3].As<Napi::String>().Utf8Value();
  int port = info[4].As<Napi::Number>().Int32Value();
  c.timeout_ms = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Int64Value() : 2000;
  c.type = info.Length() > 6 && info[6].ToBoolean().Value() ? SOCK_DGRAM : SOCK_STREAM;
  if (c.family == AF_INET) {
    c.addr.v4.sin_family = AF_INET;
    c.addr.v4.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, address.c_str(), &c.addr.v4.sin_addr) != 1) throw StepError(env, "proxy-address", EINVAL, address);
    c.addr_len = sizeof c.addr.v4;
  } else {
    c.addr.v6.sin6_family = AF_INET6;
    c.addr.v6.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, address.c_str(), &c.addr.v6.sin6_addr) != 1) throw StepError(env, "proxy-address", EINVAL, address);
    c.addr_len = sizeof c.addr.v6;
  }
  void* stack = mmap(nullptr, kConnectStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) throw StepError(env, "proxy-stack", errno);
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_CLEAR_SIGHAND;
  args.exit_signal = 0;
  args.stack = reinterpret_cast<uint64_t>(stack);
  args.stack_size = kConnectStack;
  // No Node or libuv handler may run in the child: every signal blocked
  // across the clone (CLONE_CLEAR_SIGHAND resets the handlers).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = brig_clone3_call(&args, sizeof args, connect_main, &c);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid > 0) {
    siginfo_t si;
    while (waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | __WALL) < 0 && errno == EINTR) {
    }
  }
  munmap(stack, kConnectStack);
  if (pid < 0) throw StepError(env, "proxy-clone", static_cast<int>(-pid));
  if (c.fd < 0) {
    static const char* steps[] = {"proxy-setns", "proxy-socket", "proxy-connect"};
    throw StepError(env, steps[c.step < 0 || c.step > 2 ? 0 : c.step], c.err ? c.err : EIO);
  }
  return Napi::Number::New(env, c.fd);
}

}  // namespace brig
