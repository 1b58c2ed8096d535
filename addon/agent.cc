// The agent's socket calls Node has no API for: the peer's credentials, and
// a read that takes the fds a client sends with its request (SCM_RIGHTS).
// Both work on the fd of a socket libuv accepted (paused, so libuv reads
// nothing from it while these run).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"

namespace brig {

// SO_PEERCRED: the pid, uid and gid of the process that connected, as the
// kernel recorded them at connect(); the agent serves only its own uid.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw StepError(info.Env(), "agent-peercred", errno);
  auto out = Napi::Array::New(info.Env(), 3);
  out.Set(0u, Napi::Number::New(info.Env(), cred.pid));
  out.Set(1u, Napi::Number::New(info.Env(), cred.uid));
  out.Set(2u, Napi::Number::New(info.Env(), cred.gid));
  return out;
}

// Up to max bytes, and the fds that came with them (close-on-exec), waiting
// at most waitMs (a few ms at most: this blocks the JS thread). null:
// nothing to read yet; an empty buffer: end of file. Never reads past max,
// so the bytes after a request stay for libuv.
Napi::Value RecvWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t max = info[1].As<Napi::Number>().Uint32Value();
  int wait_ms = info.Length() > 2 ? info[2].As<Napi::Number>().Int32Value() : 0;
  if (max == 0 || max > (1u << 24) || wait_ms < 0 || wait_ms > 10) throw StepError(env, "agent-recv", EINVAL);
  if (wait_ms > 0) {
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, wait_ms) < 0 && errno == EINTR) {
    }
  }
  std::vector<char> buf(max);
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  struct iovec iov = {buf.data(), max};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return env.Null();
  if (n < 0) throw StepError(env, "agent-recv", errno);
  auto fds = Napi::Array::New(env);
  uint32_t k = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.Set(k++, Napi::Number::New(env, got));
    }
  }
  auto out = Napi::Object::New(env);
  out.Set("data", Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  // More fds than the control buffer holds were closed by the kernel: the
  // request is not what the client meant to send.
  out.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
  return out;
}

// This process's resource limits, [resource, soft, hard] with -1 for
// unlimited: a client whose limits differ is not served (its sandbox would
// inherit the agent's limits, not its own).
Napi::Value Rlimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Array::New(env);
  uint32_t k = 0;
  for (int r = 0; r < RLIMIT_NLIMITS; r++) {
    struct rlimit lim;
    if (getrlimit(r, &lim) != 0) continue;
    auto row = Napi::Array::New(env, 3);
    row.Set(0u, Napi::Number::New(env, r));
    row.Set(1u, Napi::Number::New(env, lim.rlim_cur == RLIM_INFINITY ? -1.0 : static_cast<double>(lim.rlim_cur)));
    row.Set(2u, Napi::Number::New(env, lim.rlim_max == RLIM_INFINITY ? -1.0 : static_cast<double>(lim.rlim_max)));
    out.Set(k++, row);
  }
  return out;
}

// One agent per user: the agent holds an exclusive flock on its lock file
// for its life (the fd close-on-exec, so no sandbox inherits it); a second
// agent started at the same moment gets EWOULDBLOCK and leaves.
Napi::Value LockExclusive(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw StepError(info.Env(), "agent-lock", errno, path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    throw StepError(info.Env(), "agent-lock", err, path);
  }
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace brig
