/*
 * quiver-netem: a user-space link emulator between two TUN devices.
 *
 * Kernel netem is not available on the bench machines, so this process stands in for it: it opens two TUN
 * devices (IFF_TUN | IFF_NO_PI, so every read is one IP packet), the caller moves each device into its own network
 * namespace, and every packet read from one device is written to the other after a one-way delay, optional
 * jitter, random or bursty (Gilbert-Elliott) loss and a bandwidth cap. TCP's and QUIC's own loss recovery and
 * congestion control therefore run for real against it.
 *
 *   quiver-netem <client-dev> <server-dev>
 *
 * Control is line-based on stdin (one command per line, one reply line on stdout):
 *   set <up|down|both> key=value ...   -> "ok" or "error <why>"
 *       delay_us, jitter_us, loss (0..1), ge_p, ge_r, ge_h, ge_k (Gilbert-Elliott; ge_p=0 disables it),
 *       rate_bps (0 = unlimited), limit (packets queued per direction), seed
 *   stats                              -> one JSON object with per-direction counters
 *   quit                               -> exits
 * "up" is client-dev -> server-dev. EOF on stdin also exits: the parent owns the link, and when it dies (even by
 * SIGKILL) the devices vanish with this process (non-persistent TUN devices are deleted on last close).
 * After opening both devices it prints "ready" and waits for commands.
 *
 * Design choices (why):
 * - Packets keep their order within a direction (a FIFO, not netem's reordering jitter): real paths rarely
 *   reorder, and reordering would make TCP look worse for a reason unrelated to the claim being measured. Jitter
 *   therefore delays a packet by delay + U(-jitter, +jitter) but never before its predecessor.
 * - The bandwidth cap is a serializer: a packet occupies the link for len*8/rate seconds after its predecessor
 *   has left it (drop-tail once `limit` packets are waiting), so queueing delay builds up like on a real
 *   bottleneck.
 * - Randomness is a seeded xorshift64* per direction, so a run is reproducible given the same packet sequence.
 * - Every drop is counted: by the loss model, by the queue limit, and on write errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 65536

typedef struct pkt {
  struct pkt *next;
  int64_t due_ns;
  uint32_t len;
  unsigned char data[];
} pkt;

typedef struct {
  /* parameters */
  int64_t delay_ns, jitter_ns;
  double loss;
  double ge_p, ge_r, ge_h, ge_k; /* Gilbert-Elliott: P(G->B), P(B->G), P(deliver|B), P(deliver|G) */
  double rate_bps;
  uint32_t limit;
  uint64_t rng;
  /* state */
  int ge_bad;
  int64_t tx_free_ns;   /* when the serializer is free again */
  int64_t last_due_ns;  /* keeps FIFO order under jitter */
  pkt *head, *tail;
  uint32_t queued;
  /* counters */
  uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes, drop_loss, drop_queue, drop_write;
} dir_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static double uniform(uint64_t *s) { return (double)(xorshift(s) >> 11) * (1.0 / 9007199254740992.0); }

static void seed_dir(dir_t *d, uint64_t seed) {
  /* splitmix64 so that small seeds still give well-mixed state; the state must never be 0 */
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  d->rng = z ? z : 1;
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Gilbert-Elliott (and plain Bernoulli) loss: returns 1 when the packet is lost. */
static int lose(dir_t *d) {
  if (d->ge_p > 0) {
    /* transition first, then decide in the new state (the usual 4-parameter formulation) */
    if (d->ge_bad) {
      if (uniform(&d->rng) < d->ge_r) d->ge_bad = 0;
    } else if (uniform(&d->rng) < d->ge_p) d->ge_bad = 1;
    double deliver = d->ge_bad ? d->ge_h : d->ge_k;
    if (uniform(&d->rng) >= deliver) return 1;
  }
  if (d->loss > 0 && uniform(&d->rng) < d->loss) return 1;
  return 0;
}

/* QUIVER_NETEM_TRACE=1: one stderr line per packet read (monotonic ms, direction, IP length, protocol, verdict), to
 * see handshakes on the wire without tcpdump. */
static int trace;
static int64_t trace_t0;

static void trace_pkt(const dir_t *d, int up, const unsigned char *buf, size_t len, int64_t now, const char *verdict) {
  (void)d;
  int proto = len >= 20 && (buf[0] >> 4) == 4 ? buf[9] : -1;
  fprintf(stderr, "%.3f %s %zu %s %s\n", (double)(now - trace_t0) / 1e6, up ? "up" : "down", len,
          proto == 6 ? "tcp" : proto == 17 ? "udp" : proto == 1 ? "icmp" : "other", verdict);
}

static void enqueue(dir_t *d, int up, const unsigned char *buf, size_t len, int64_t now) {
  d->rx_pkts++;
  d->rx_bytes += len;
  if (lose(d)) {
    d->drop_loss++;
    if (trace) trace_pkt(d, up, buf, len, now, "lost");
    return;
  }
  if (trace) trace_pkt(d, up, buf, len, now, "pass");
  if (d->queued >= d->limit) {
    d->drop_queue++;
    return;
  }
  pkt *p = malloc(sizeof(pkt) + len);
  if (!p) {
    d->drop_queue++;
    return;
  }
  memcpy(p->data, buf, len);
  p->len = (uint32_t)len;
  p->next = NULL;
  int64_t t = now;
  if (d->rate_bps > 0) {
    int64_t start = d->tx_free_ns > now ? d->tx_free_ns : now;
    d->tx_free_ns = start + (int64_t)((double)len * 8.0 * 1e9 / d->rate_bps);
    t = d->tx_free_ns;
  }
  int64_t delay = d->delay_ns;
  if (d->jitter_ns > 0) delay += (int64_t)((uniform(&d->rng) * 2.0 - 1.0) * (double)d->jitter_ns);
  if (delay < 0) delay = 0;
  t += delay;
  if (t < d->last_due_ns) t = d->last_due_ns;
  d->last_due_ns = t;
  p->due_ns = t;
  if (d->tail) d->tail->next = p;
  else d->head = p;
  d->tail = p;
  d->queued++;
}

static void flush(dir_t *d, int out_fd, int64_t now) {
  while (d->head && d->head->due_ns <= now) {
    pkt *p = d->head;
    ssize_t w = write(out_fd, p->data, p->len);
    if (w == (ssize_t)p->len) {
      d->tx_pkts++;
      d->tx_bytes += p->len;
    } else {
      d->drop_write++;
    }
    d->head = p->next;
    if (!d->head) d->tail = NULL;
    d->queued--;
    free(p);
  }
}

static int set_param(dir_t *d, const char *key, const char *val) {
  char *end;
  double v = strtod(val, &end);
  if (end == val || *end != '\0' || v != v) return -1;
  if (v < 0) return -1;
  if (!strcmp(key, "delay_us")) d->delay_ns = (int64_t)(v * 1000.0);
  else if (!strcmp(key, "jitter_us")) d->jitter_ns = (int64_t)(v * 1000.0);
  else if (!strcmp(key, "loss") && v <= 1) d->loss = v;
  else if (!strcmp(key, "ge_p") && v <= 1) d->ge_p = v;
  else if (!strcmp(key, "ge_r") && v <= 1) d->ge_r = v;
  else if (!strcmp(key, "ge_h") && v <= 1) d->ge_h = v;
  else if (!strcmp(key, "ge_k") && v <= 1) d->ge_k = v;
  else if (!strcmp(key, "rate_bps")) d->rate_bps = v;
  else if (!strcmp(key, "limit") && v >= 1) d->limit = (uint32_t)v;
  else return -1;
  return 0;
}

static void cmd_set(dir_t *dirs, char *args) {
  char *save = NULL;
  char *which = strtok_r(args, " \t", &save);
  int lo, hi;
  if (!which) goto bad;
  if (!strcmp(which, "up")) lo = hi = 0;
  else if (!strcmp(which, "down")) lo = hi = 1;
  else if (!strcmp(which, "both")) lo = 0, hi = 1;
  else goto bad;
  /* validate everything before applying anything, so a bad line changes nothing */
  dir_t scratch[2];
  memcpy(scratch, dirs, sizeof scratch);
  for (char *tok; (tok = strtok_r(NULL, " \t", &save));) {
    char *eq = strchr(tok, '=');
    if (!eq) goto bad;
    *eq = '\0';
    for (int i = lo; i <= hi; i++) {
      if (!strcmp(tok, "seed")) {
        char *end;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || v < 0) goto bad;
        seed_dir(&scratch[i], (uint64_t)v * 2 + (uint64_t)i);
        scratch[i].ge_bad = 0;
      } else if (set_param(&scratch[i], tok, eq + 1) < 0) goto bad;
    }
  }
  for (int i = lo; i <= hi; i++) {
    dirs[i].delay_ns = scratch[i].delay_ns;
    dirs[i].jitter_ns = scratch[i].jitter_ns;
    dirs[i].loss = scratch[i].loss;
    dirs[i].ge_p = scratch[i].ge_p;
    dirs[i].ge_r = scratch[i].ge_r;
    dirs[i].ge_h = scratch[i].ge_h;
    dirs[i].ge_k = scratch[i].ge_k;
    dirs[i].rate_bps = scratch[i].rate_bps;
    dirs[i].limit = scratch[i].limit;
    dirs[i].rng = scratch[i].rng;
    dirs[i].ge_bad = scratch[i].ge_bad;
    /* a new rate starts from an idle serializer rather than inheriting a backlog computed at the old rate */
    if (dirs[i].tx_free_ns > 0 && dirs[i].rate_bps == 0) dirs[i].tx_free_ns = 0;
  }
  printf("ok\n");
  fflush(stdout);
  return;
bad:
  printf("error bad set command\n");
  fflush(stdout);
}

static void print_dir(const char *name, const dir_t *d) {
  printf("\"%s\":{\"rxPackets\":%llu,\"rxBytes\":%llu,\"txPackets\":%llu,\"txBytes\":%llu,\"droppedLoss\":%llu,"
         "\"droppedQueue\":%llu,\"droppedWrite\":%llu,\"queued\":%u}",
         name, (unsigned long long)d->rx_pkts, (unsigned long long)d->rx_bytes, (unsigned long long)d->tx_pkts,
         (unsigned long long)d->tx_bytes, (unsigned long long)d->drop_loss, (unsigned long long)d->drop_queue,
         (unsigned long long)d->drop_write, d->queued);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <client-dev> <server-dev>\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int fds[2];
  for (int i = 0; i < 2; i++) {
    fds[i] = open_tun(argv[1 + i]);
    if (fds[i] < 0) {
      fprintf(stderr, "quiver-netem: cannot open TUN device %s: %s\n", argv[1 + i], strerror(errno));
      return 1;
    }
  }
  const char *tr = getenv("QUIVER_NETEM_TRACE");
  trace = tr && *tr && strcmp(tr, "0") != 0;
  trace_t0 = now_ns();
  dir_t dirs[2];
  memset(dirs, 0, sizeof dirs);
  for (int i = 0; i < 2; i++) {
    dirs[i].limit = 10000;
    dirs[i].ge_h = 0;
    dirs[i].ge_k = 1;
    seed_dir(&dirs[i], 2 + (uint64_t)i);
  }
  /* The emulated network must not stall when the machine is busy (the bench machines are shared): as root, run
   * at a modest real-time priority so that queued packets leave on time. The loop blocks in ppoll, so this costs
   * nothing when idle. QUIVER_NETEM_RT=0 turns it off; failure (no privilege) is not an error. */
  const char *rt = getenv("QUIVER_NETEM_RT");
  if (!rt || strcmp(rt, "0") != 0) {
    struct sched_param sp = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) fprintf(stderr, "quiver-netem: no real-time priority: %s\n", strerror(errno));
  }
  printf("ready\n");
  fflush(stdout);

  static unsigned char buf[MAX_PKT];
  char line[4096];
  size_t line_len = 0;
  int stdin_open = 1;
  while (stdin_open) {
    int64_t now = now_ns();
    int64_t next = -1;
    for (int i = 0; i < 2; i++)
      if (dirs[i].head && (next < 0 || dirs[i].head->due_ns < next)) next = dirs[i].head->due_ns;
    struct timespec ts, *tsp = NULL;
    if (next >= 0) {
      int64_t wait = next > now ? next - now : 0;
      ts.tv_sec = wait / 1000000000LL;
      ts.tv_nsec = wait % 1000000000LL;
      tsp = &ts;
    }
    struct pollfd pfd[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {0, POLLIN, 0}};
    int n = ppoll(pfd, 3, tsp, NULL);
    if (n < 0 && errno != EINTR) {
      perror("quiver-netem: ppoll");
      return 1;
    }
    now = now_ns();
    for (int i = 0; n > 0 && i < 2; i++) {
      if (!(pfd[i].revents & POLLIN)) continue;
      /* drain a bounded batch so one busy direction cannot starve the other or the timers */
      for (int k = 0; k < 256; k++) {
        ssize_t r = read(fds[i], buf, sizeof buf);
        if (r <= 0) break;
        enqueue(&dirs[i], i == 0, buf, (size_t)r, now);
      }
    }
    if (n > 0 && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(0, line + line_len, sizeof line - 1 - line_len);
      if (r <= 0) {
        stdin_open = 0;
      } else {
        line_len += (size_t)r;
        char *nl;
        while ((nl = memchr(line, '\n', line_len))) {
          *nl = '\0';
          if (!strncmp(line, "set ", 4)) cmd_set(dirs, line + 4);
          else if (!strcmp(line, "stats")) {
            printf("{");
            print_dir("up", &dirs[0]);
            printf(",");
            print_dir("down", &dirs[1]);
            printf("}\n");
            fflush(stdout);
          } else if (!strcmp(line, "quit")) {
            stdin_open = 0;
          } else if (line[0]) {
            printf("error unknown command\n");
            fflush(stdout);
          }
          size_t used = (size_t)(nl - line) + 1;
          memmove(line, nl + 1, line_len - used);
          line_len -= used;
        }
        if (line_len == sizeof line - 1) line_len = 0; /* an overlong line is discarded */
      }
    }
    now = now_ns();
    flush(&dirs[0], fds[1], now);
    flush(&dirs[1], fds[0], now);
  }
  return 0;
}
