// brig-reaper: cleans up after a container's monitor that died without
// doing so itself (SIGKILL, the OOM killer).
//
// The monitor (src/container/monitor.ts) starts one reaper per container, in
// a session of its own, with a pipe as its stdin. Whenever what it would have
// to remove changes, the monitor writes one record: paths separated by NUL,
// ended by a newline; the first is the runtime directory (the monitor's
// socket in it), the rest are the container's cgroup directories. A record
// with nothing in it says there is nothing left to clean (the monitor
// finished properly). On end of file (the monitor is gone, however it went)
// the reaper removes what the last whole record named:
//
// - the cgroup directories, once empty: the container's processes are
//   ending at that moment (its init has PR_SET_PDEATHSIG(SIGKILL) towards
//   the monitor, and the pid namespace goes with its init), so a directory
//   still busy is tried again, every 20 ms for up to 10 s;
// - the runtime directory's entries (not recursively) and the directory.
//
// The record in the store is not touched: the next brig process that reads
// it marks the container exited (state.ts reconcile), which needs the lock
// and JSON, and finds nothing left to remove. The reaper costs a few hundred
// KiB while it waits and holds nothing of the container's.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECORD 65536

static char pending[MAX_RECORD];  // bytes read since the last newline
static size_t npending;
static char last[MAX_RECORD + 1];  // the last whole record, NUL-terminated
static size_t nlast;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

// Every entry of dir (one level: the monitor puts only its socket there), then dir.
static void remove_runtime_dir(const char* dir) {
  DIR* d = opendir(dir);
  if (d) {
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
  }
  rmdir(dir);
}

static void clean(void) {
  if (nlast == 0) return;
  const char* paths[1024];
  int n = 0;
  for (size_t i = 0; i < nlast && n < 1024;) {
    paths[n++] = &last[i];
    i += strlen(&last[i]) + 1;
  }
  if (n > 0 && paths[0][0]) remove_runtime_dir(paths[0]);
  // Cgroups: nested ones may be listed after or before their parents, so
  // every pass tries all that are left; a directory with processes or
  // children in it is busy until they are gone.
  int left = n - 1;
  char done[1024] = {0};
  for (int pass = 0; left > 0 && pass < 500; pass++) {
    for (int k = n - 1; k >= 1; k--) {
      if (done[k]) continue;
      if (!paths[k][0] || rmdir(paths[k]) == 0 || errno == ENOENT || (errno != EBUSY && errno != ENOTEMPTY)) {
        done[k] = 1;
        left--;
      }
    }
    if (left > 0) sleep_ms(20);
  }
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  prctl(PR_SET_NAME, "brig-reaper", 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  // A signal to the monitor's process group must not end the reaper too.
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  // Nothing of the caller's held: no directory kept busy, no fd but stdin.
  if (chdir("/") < 0) return 1;
  for (int fd = 1; fd < 3; fd++) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
  char buf[4096];
  for (;;) {
    ssize_t r = read(0, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] == '\n') {
        memcpy(last, pending, npending);
        nlast = npending;
        last[nlast] = 0;
        npending = 0;
      } else if (npending < sizeof pending) {
        pending[npending++] = buf[i];
      }
    }
  }
  clean();
  return 0;
}
