// brig-client: the `brig` command (package.json's bin; a symlink on PATH)
// and the fast path of `brig run` and `brig box run` from a shell.
//
// One short-lived process that hands its whole invocation (argv, env, cwd,
// umask, resource limits and its stdin, stdout and stderr as fds) to the
// user's brig agent over a unix socket and passes the run's exit status on.
// It parses none of brig's options: the agent parses argv with the CLI's own
// code and answers "not served" for anything it does not serve, and then this
// process becomes the Node CLI (bin/brig-node) with the same argv.
//
// Never twice: the agent acknowledges a request before it starts the run.
// Without that acknowledgement the run did not and will not happen in the
// agent, and the Node CLI runs it here; after it, only the agent's answer
// counts (if the agent dies the run fails with exit 125, never re-runs).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

#define PROTOCOL "brig-agent-1"
#define EXIT_BRIG_ERROR 125
// How long a client waits for an agent it started to listen, and for any
// agent to acknowledge a request, before it runs the Node CLI itself.
#define START_TIMEOUT_MS 5000
#define ACK_TIMEOUT_MS 5000

static char g_root[PATH_MAX];  // the package: build/Release/brig-client is under it
static char** g_argv;
static int g_argc;
// Which of fds 0-2 the caller left open ('1'), taken before this process
// opens anything: a closed one is then held on /dev/null, so that no socket
// of ours takes its number and is sent as the program's stdio.
static char g_open_mask[4] = "000";

static void die(const char* what, int err) {
  fprintf(stderr, "brig: %s: %s\n", what, strerror(err));
  exit(EXIT_BRIG_ERROR);
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// The Node CLI with the same argv: for every verb and case the agent does
// not serve, for BRIG_NO_AGENT=1, and when no agent can be reached.
static void exec_node_cli(void) {
  char cli[PATH_MAX + 32];
  snprintf(cli, sizeof cli, "%s/bin/brig-node", g_root);
  char** args = calloc((size_t)g_argc + 3, sizeof(char*));
  if (!args) die("exec node", ENOMEM);
  // "--": Node 20 would otherwise read --env-file from the CLI's arguments.
  args[0] = "node";
  args[1] = "--";
  args[2] = cli;
  for (int i = 1; i < g_argc; i++) args[i + 2] = g_argv[i];
  execvp("node", args);
  die("exec node (is node on PATH?)", errno);
}

// The package is where this binary lies: <root>/build/Release/brig-client.
// /proc/self/exe is the real path, every symlink followed, so a `brig` that
// is a symlink (npm's bin link, ~/.local/bin/brig) finds the package it
// points into. A copy or hard link elsewhere cannot, and says so.
static int find_root(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) die("find the brig package: readlink /proc/self/exe", errno);
  exe[n] = 0;
  snprintf(g_root, sizeof g_root, "%s", exe);
  for (int up = 0; up < 3; up++) {
    char* slash = strrchr(g_root, '/');
    if (!slash) break;
    *slash = 0;
  }
  char cli[PATH_MAX + 32];
  snprintf(cli, sizeof cli, "%s/bin/brig-node", g_root);
  if (access(cli, R_OK) != 0) {
    fprintf(stderr, "brig: %s is not inside a brig package (expected PACKAGE/build/Release/brig-client, with PACKAGE/bin/brig-node): link it (ln -s), do not copy it\n", exe);
    exit(EXIT_BRIG_ERROR);
  }
  return 0;
}

// $XDG_RUNTIME_DIR/brig, else /tmp/brig-UID (see docs/agent.md for why):
// made 0700 if absent, and used only if it is a real directory of ours that
// nobody else can enter.
static int socket_dir(char* out, size_t size) {
  const char* xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && xdg[0] == '/') snprintf(out, size, "%s/brig", xdg);
  else snprintf(out, size, "/tmp/brig-%u", (unsigned)getuid());
  if (mkdir(out, 0700) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (lstat(out, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
    errno = EACCES;
    return -1;
  }
  return 0;
}

static int try_connect(const char* path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Is the lock free, i.e. no agent alive? Probed on a fresh open file, so a
// lock this process might hold never answers for it.
static int lock_is_free(const char* lock) {
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return 0;
  int free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd);  // releases the probe's lock, if it got one
  return free_;
}

// Detached: its own session (no terminal, no signals from ours), stdio to
// /dev/null and its log, fds of ours closed, reparented to init by the
// double fork so no shell waits for it.
static int spawn_agent(const char* dir) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (setsid() < 0) _exit(1);
    pid_t again = fork();
    if (again != 0) _exit(again < 0 ? 1 : 0);
    char log[PATH_MAX + 16], agent[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/agent.log", dir);
    snprintf(agent, sizeof agent, "%s/dist/src/agent/main.js", g_root);
    int null = open("/dev/null", O_RDWR);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
    if (null < 0) _exit(1);
    if (out < 0) out = null;
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    if (chdir("/") != 0) _exit(1);
    signal(SIGINT, SIG_DFL);
    char* args[] = {"node", agent, NULL};
    execvp("node", args);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

// A connected socket to the agent, starting one if none listens; -1 when
// none could be reached in time (the caller then runs the Node CLI).
static int connect_agent(void) {
  char dir[PATH_MAX - 32], sock[PATH_MAX], lock[PATH_MAX];
  if (socket_dir(dir, sizeof dir) != 0) return -1;
  snprintf(sock, sizeof sock, "%s/agent.sock", dir);
  snprintf(lock, sizeof lock, "%s/agent.lock", dir);
  if (strlen(sock) >= sizeof(((struct sockaddr_un*)0)->sun_path)) return -1;
  int fd = try_connect(sock);
  if (fd >= 0) return fd;
  // ENOENT: no agent yet; ECONNREFUSED: a dead agent's socket, or one
  // between its lock and its listen (half-started).
  long deadline = now_ms() + START_TIMEOUT_MS;
  int spawned = 0;
  long pause = 1;
  while (now_ms() < deadline) {
    fd = try_connect(sock);
    if (fd >= 0) return fd;
    if (!spawned && lock_is_free(lock)) {
      // No agent holds the lock: whatever socket file is there is stale.
      // One start per client: until Node has loaded, the new agent does not
      // hold the lock yet, so the lock says nothing more here. Two clients
      // racing here both start one; the one that loses the lock leaves at
      // once, and both clients connect to the other.
      spawned = 1;
      if (spawn_agent(dir) != 0) return -1;
      pause = 1;
    }
    sleep_ms(pause);
    if (pause < 20) pause *= 2;
  }
  return -1;
}

// ---- the request ----

struct buf {
  char* data;
  size_t len, cap;
};

static void put(struct buf* b, const char* s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char* d = realloc(b->data, cap);
    if (!d) die("request", ENOMEM);
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len++] = 0;
}

// Lengths on the wire are little-endian, whatever this machine's order.
static void le32(unsigned char* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static void puts0(struct buf* b, const char* s) { put(b, s, strlen(s)); }

static void putnum(struct buf* b, long long v) {
  char n[32];
  snprintf(n, sizeof n, "%lld", v);
  puts0(b, n);
}

// The fds come only once the agent has acknowledged: an agent that never
// does never holds them, so a caller's pipe sees its end of file when this
// process ends, whatever became of the agent. One byte, 'F', carries them.
static int send_fds(int sock) {
  int fds[3], nfds = 0;
  for (int fd = 0; fd < 3; fd++)
    if (g_open_mask[fd] == '1') fds[nfds++] = fd;
  char f = 'F';
  struct iovec iov = {&f, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 3)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : -1;
}

// NUL-separated strings after a 4-byte length: protocol, which of fds 0-2
// are open (those follow as SCM_RIGHTS once accepted, see send_fds), cwd,
// umask, argc + argv, envc + env, count + "resource:soft:hard" (-1:
// unlimited).
static int send_request(int sock) {
  struct buf b = {0};
  puts0(&b, PROTOCOL);
  puts0(&b, g_open_mask);
  char cwd[PATH_MAX];
  puts0(&b, getcwd(cwd, sizeof cwd) ? cwd : "");
  mode_t mask = umask(0);
  umask(mask);
  putnum(&b, (long long)mask);
  putnum(&b, g_argc - 1);
  for (int i = 1; i < g_argc; i++) puts0(&b, g_argv[i]);
  int envc = 0;
  for (char** e = environ; *e; e++) envc++;
  putnum(&b, envc);
  for (char** e = environ; *e; e++) puts0(&b, *e);
  putnum(&b, RLIMIT_NLIMITS);
  for (int r = 0; r < RLIMIT_NLIMITS; r++) {
    struct rlimit lim;
    char row[80];
    if (getrlimit(r, &lim) != 0) lim.rlim_cur = lim.rlim_max = RLIM_INFINITY;
    snprintf(row, sizeof row, "%d:%lld:%lld", r, lim.rlim_cur == RLIM_INFINITY ? -1LL : (long long)lim.rlim_cur,
             lim.rlim_max == RLIM_INFINITY ? -1LL : (long long)lim.rlim_max);
    puts0(&b, row);
  }
  unsigned char len[4];
  le32(len, (uint32_t)b.len);
  struct iovec iov[2] = {{len, sizeof len}, {b.data, b.len}};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  size_t total = sizeof len + b.len;
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    free(b.data);
    return -1;
  }
  // The rest of a long request (a large environment).
  size_t sent = (size_t)n;
  while (sent < total) {
    const char* from = sent < sizeof len ? (const char*)len + sent : b.data + (sent - sizeof len);
    size_t left = sent < sizeof len ? sizeof len - sent : total - sent;
    do n = send(sock, from, left, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      free(b.data);
      return -1;
    }
    sent += (size_t)n;
  }
  free(b.data);
  return 0;
}

// ---- the answer ----

// Messages from the agent: a type byte, a 4-byte length, the payload.
//   N: not served (the Node CLI runs it)   A: accepted, the run starts
//   R: report: file NUL text               X: exit status (decimal)
struct reader {
  char* data;
  size_t len, cap;
};

static int read_more(int sock, struct reader* r) {
  if (r->cap - r->len < 65536) {
    size_t cap = r->cap ? r->cap * 2 : 65536;
    char* d = realloc(r->data, cap);
    if (!d) die("answer", ENOMEM);
    r->data = d;
    r->cap = cap;
  }
  ssize_t n = read(sock, r->data + r->len, r->cap - r->len);
  if (n > 0) r->len += (size_t)n;
  return (int)n;
}

// The next whole message, or 0 if more bytes are needed.
static int next_message(struct reader* r, char* type, char** payload, uint32_t* plen) {
  if (r->len < 5) return 0;
  const unsigned char* h = (const unsigned char*)r->data + 1;
  uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
  if (r->len < 5 + (size_t)len) return 0;
  *type = r->data[0];
  *payload = malloc(len + 1);
  if (!*payload) die("answer", ENOMEM);
  memcpy(*payload, r->data + 5, len);
  (*payload)[len] = 0;
  *plen = len;
  memmove(r->data, r->data + 5 + len, r->len - 5 - len);
  r->len -= 5 + len;
  return 1;
}

static int g_signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char s = (unsigned char)sig;
  ssize_t ignored = write(g_signal_pipe[1], &s, 1);
  (void)ignored;
  errno = saved;
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void forward_signals(void) {
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &sa, NULL);
}

static int g_report_failed;

static void report_failed(const char* prefix, const char* file, int err) {
  // As the CLI says it: the errno's name; the run's status stands.
  const char* name = strerrorname_np(err);
  fprintf(stderr, "%s: --report %s: %s; the run's result was not written\n", prefix, file, name ? name : strerror(err));
  g_report_failed = 1;
}

// R: prefix NUL file NUL text. Written here, relative to this process's cwd
// and with its umask, as the CLI writes it (created, truncated).
static void write_report(const char* payload, uint32_t len) {
  const char* prefix = payload;
  size_t plen = strnlen(prefix, len);
  if (plen == len) return;
  const char* file = prefix + plen + 1;
  size_t flen = strnlen(file, len - plen - 1);
  if (plen + 1 + flen == len) return;
  const char* text = file + flen + 1;
  size_t tlen = len - plen - 1 - flen - 1;
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    report_failed(prefix, file, errno);
    return;
  }
  while (tlen) {
    ssize_t n = write(fd, text, tlen);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      report_failed(prefix, file, n < 0 ? errno : EIO);
      break;
    }
    text += n;
    tlen -= (size_t)n;
  }
  close(fd);
}

// Gives up on an agent that has not acknowledged: after shutdown() it can no
// longer send (its acknowledgement would fail, so it never starts the run);
// whatever it sent before is still read here. 1: it had acknowledged.
static int withdraw(int sock, struct reader* r) {
  shutdown(sock, SHUT_RDWR);
  while (read_more(sock, r) > 0) {
  }
  char type;
  char* payload;
  uint32_t plen;
  while (next_message(r, &type, &payload, &plen)) {
    free(payload);
    if (type == 'A') return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  g_argc = argc;
  g_argv = argv;
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) g_open_mask[fd] = '1';
    else {
      // The Node CLI, if it comes to that, sees the same: Node also puts
      // /dev/null on a closed stdio fd when it starts.
      int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (null >= 0 && null != fd) close(null);
    }
  }
  find_root();
  const char* off = getenv("BRIG_NO_AGENT");
  // The agent serves run and box run; the verb (not an option) is all that
  // is looked at here, so other verbs never start an agent.
  int maybe = argc > 1 && (strcmp(argv[1], "run") == 0 || (strcmp(argv[1], "box") == 0 && argc > 2 && strcmp(argv[2], "run") == 0));
  if ((off && strcmp(off, "1") == 0) || !maybe) exec_node_cli();

  int sock = connect_agent();
  if (sock < 0) exec_node_cli();
  if (send_request(sock) != 0) {
    // The agent went away before reading: it never acknowledged.
    close(sock);
    exec_node_cli();
  }
  struct ucred agent = {0};
  socklen_t clen = sizeof agent;
  getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &agent, &clen);

  struct reader r = {0};
  int accepted = 0, pending_signal = 0;
  long ack_deadline = now_ms() + ACK_TIMEOUT_MS;
  for (;;) {
    char type;
    char* payload;
    uint32_t plen;
    while (next_message(&r, &type, &payload, &plen)) {
      if (type == 'N' && !accepted) {
        // Why, for someone finding out why runs are slow (a umask, rlimit or
        // variable that differs from the agent's, say).
        const char* verbose = getenv("BRIG_AGENT_VERBOSE");
        if (verbose && strcmp(verbose, "1") == 0) fprintf(stderr, "brig: the agent does not serve this (%s): the Node CLI runs it\n", payload);
        close(sock);
        exec_node_cli();
      } else if (type == 'A') {
        accepted = 1;
        if (send_fds(sock) != 0) {
          fprintf(stderr, "brig: the brig agent (pid %d) ended as the run began; the run failed\n", agent.pid);
          return EXIT_BRIG_ERROR;
        }
        forward_signals();
      } else if (type == 'R') {
        write_report(payload, plen);
      } else if (type == 'X') {
        int code = atoi(payload);
        if (g_report_failed && code == 0) code = EXIT_BRIG_ERROR;
        if (pending_signal) {
          // Killed by a signal here, so the shell sees what it would see of
          // the Node CLI: the same signal, its default action.
          signal(pending_signal, SIG_DFL);
          raise(pending_signal);
        }
        return code;
      }
      free(payload);
    }
    struct pollfd p[2] = {{sock, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    int timeout = accepted ? -1 : (int)(ack_deadline - now_ms());
    if (!accepted && timeout <= 0) {
      if (withdraw(sock, &r)) {
        fprintf(stderr, "brig: the brig agent (pid %d) accepted the run but stopped answering; its outcome is unknown\n", agent.pid);
        return EXIT_BRIG_ERROR;
      }
      close(sock);
      exec_node_cli();
    }
    int n = poll(p, g_signal_pipe[0] >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR) die("poll", errno);
    if (n <= 0) continue;
    if (p[1].revents & POLLIN) {
      unsigned char s;
      while (read(g_signal_pipe[0], &s, 1) == 1) {
        pending_signal = s;
        char msg[6] = {'S', 1, 0, 0, 0, (char)s};
        send(sock, msg, sizeof msg, MSG_NOSIGNAL);
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      int got = read_more(sock, &r);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        // End of file: the agent ended (killed, or crashed).
        if (!accepted) {
          close(sock);
          exec_node_cli();
        }
        // A last whole message may be in the buffer.
        char t;
        char* pl;
        uint32_t pn;
        int code = -1;
        while (next_message(&r, &t, &pl, &pn)) {
          if (t == 'R') write_report(pl, pn);
          if (t == 'X') code = atoi(pl);
          free(pl);
        }
        if (code >= 0) return g_report_failed && code == 0 ? EXIT_BRIG_ERROR : code;
        fprintf(stderr, "brig: the brig agent (pid %d) ended during the run; the run failed (its outcome is unknown)\n", agent.pid);
        return EXIT_BRIG_ERROR;
      }
    }
  }
}
