// Doorwatch benchmark load: a bounded loopback accept storm.
//
// One process: a server thread doing blocking accept4() on 127.0.0.1:<ephemeral>
// (closing each connection at once) until it accepted exactly --connections,
// and --clients threads each doing socket()/connect()/close() until then.
//
// connect() returns once the handshake is done, before the server accepts, so
// clients can outrun the server: the accept queue then overflows, the kernel
// drops SYNs (a 1 s retransmit stall) or final ACKs (a connection the client
// thinks made but the server never sees). A semaphore of --window slots keeps
// at most that many connections between connect() and accept4().
//
// Both ends close with SO_LINGER {1,0} (an RST), so 100k+ connections leave no
// TIME_WAIT behind and never run out of ephemeral ports.
//
// Protocol (stdout, one JSON object per line):
//   {"pid":..,"port":..}      once listening; then waits for one line on stdin
//   {"connections":..,...}    when done (or when --timeout expired)
//
// Build: gcc -O2 -Wall -Werror -pthread -o storm storm.c   (bench/run.ts does this)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long opt_connections = 100000;
static int opt_clients = 2;
static double opt_timeout_s = 60.0;
static int opt_window = 128;
static const char *opt_cpus = NULL;
static double opt_rate = 0; // connections per second, 0 = as fast as possible

static int g_listen_fd;
static struct sockaddr_in g_addr;

static sem_t g_window;               // free slots between connect() and accept4()
static atomic_long g_accepted;       // successful accept4() calls
static atomic_long g_accept_errors;  // failed accept4() calls (each is still an event)
static atomic_long g_connect_errors; // failed connect() calls
static atomic_int g_stop;
static atomic_long g_ticket;         // paced connects issued (--rate)
static double g_t0;                  // when the storm started (now_s)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "storm: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void set_rst_close(int fd) {
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) die("setsockopt(SO_LINGER)");
}

/** Stop the clients: they see the flag once a slot is free, so free one each. */
static void stop_clients(void) {
  atomic_store(&g_stop, 1);
  for (int i = 0; i < opt_clients; i++) sem_post(&g_window);
}

static void *server(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop) && atomic_load(&g_accepted) < opt_connections) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(g_listen_fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    if (fd >= 0) {
      close(fd); // SO_LINGER {1,0} is inherited from the listener: an RST
      atomic_fetch_add(&g_accepted, 1);
      sem_post(&g_window);
    } else if (!atomic_load(&g_stop)) {
      atomic_fetch_add(&g_accept_errors, 1);
    }
  }
  stop_clients();
  return NULL;
}

// Clients stop when the server has its N: a connection lost on the way costs
// one more connect, never a hang. Connections still queued at the end are
// never accepted (no event) and vanish with the listener.
static void *client(void *arg) {
  (void)arg;
  for (;;) {
    while (sem_wait(&g_window) != 0) {
    }
    if (atomic_load(&g_stop)) return NULL;
    if (opt_rate > 0) {
      // Paced: connection k is due at t0 + k/rate, whichever client takes it.
      double wait = g_t0 + (double)atomic_fetch_add(&g_ticket, 1) / opt_rate - now_s();
      if (wait > 0) {
        struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    set_rst_close(fd);
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    int err = errno;
    close(fd);
    if (rc != 0) {
      atomic_fetch_add(&g_connect_errors, 1);
      // ECONNRESET: the server accepted and reset it before connect() returned
      // (it freed the slot). Anything else never reached the queue.
      if (err != ECONNRESET) sem_post(&g_window);
    }
  }
}

/** Every thread of the storm on these CPUs ("0", "0,1"): threads inherit it. */
static void pin_to(const char *list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  char *copy = strdup(list), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) CPU_SET(atoi(tok), &set);
  free(copy);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static void usage(void) {
  fprintf(stderr, "usage: storm [--connections N] [--clients C] [--window W] [--cpus LIST] [--timeout SECONDS] [--rate PER_SECOND]\n");
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"connections", required_argument, NULL, 'n'},
      {"clients", required_argument, NULL, 'c'},
      {"timeout", required_argument, NULL, 't'},
      {"window", required_argument, NULL, 'w'},
      {"cpus", required_argument, NULL, 'p'},
      {"rate", required_argument, NULL, 'r'},
      {NULL, 0, NULL, 0},
  };
  int o;
  while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (o) {
    case 'n': opt_connections = strtol(optarg, NULL, 10); break;
    case 'c': opt_clients = atoi(optarg); break;
    case 't': opt_timeout_s = strtod(optarg, NULL); break;
    case 'w': opt_window = atoi(optarg); break;
    case 'p': opt_cpus = optarg; break;
    case 'r': opt_rate = strtod(optarg, NULL); break;
    default: usage();
    }
  }
  if (opt_connections < 1 || opt_clients < 1 || opt_clients > 64 || opt_timeout_s <= 0 || opt_window < 1 || opt_window > 4096 || opt_rate < 0) usage();
  if (sem_init(&g_window, 0, (unsigned)opt_window) != 0) die("sem_init");
  if (opt_cpus) pin_to(opt_cpus);

  g_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (g_listen_fd < 0) die("socket");
  set_rst_close(g_listen_fd);
  g_addr.sin_family = AF_INET;
  g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  g_addr.sin_port = 0;
  if (bind(g_listen_fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) die("bind");
  if (listen(g_listen_fd, 4096) != 0) die("listen");
  socklen_t alen = sizeof g_addr;
  if (getsockname(g_listen_fd, (struct sockaddr *)&g_addr, &alen) != 0) die("getsockname");

  printf("{\"pid\":%d,\"port\":%d}\n", (int)getpid(), ntohs(g_addr.sin_port));
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 0; // parent gone: nothing to do

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t0 = now_s();
  g_t0 = t0;
  pthread_t srv, cli[64];
  if (pthread_create(&srv, NULL, server, NULL) != 0) die("pthread_create");
  for (int i = 0; i < opt_clients; i++)
    if (pthread_create(&cli[i], NULL, client, NULL) != 0) die("pthread_create");

  // Wait for the server to finish, bounded by the wall clock.
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)opt_timeout_s;
  int timed_out = pthread_timedjoin_np(srv, NULL, &deadline) != 0;
  double elapsed = now_s() - t0;
  if (timed_out) {
    stop_clients();
    shutdown(g_listen_fd, SHUT_RDWR); // wakes the blocked accept4() with EINVAL
    pthread_join(srv, NULL);
  }
  for (int i = 0; i < opt_clients; i++) pthread_join(cli[i], NULL);
  getrusage(RUSAGE_SELF, &ru1);

  long accepted = atomic_load(&g_accepted);
  double user_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
  double sys_us = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  printf("{\"connections\":%ld,\"acceptErrors\":%ld,\"connectErrors\":%ld,\"elapsedS\":%.6f,"
         "\"acceptsPerS\":%.1f,\"timedOut\":%s,\"cpuUserUs\":%.0f,\"cpuSysUs\":%.0f,\"clients\":%d,\"window\":%d}\n",
         accepted, atomic_load(&g_accept_errors), atomic_load(&g_connect_errors), elapsed,
         elapsed > 0 ? accepted / elapsed : 0.0, timed_out ? "true" : "false", user_us, sys_us, opt_clients, opt_window);
  fflush(stdout);
  return timed_out ? 3 : 0;
}
