/* A sweep across MPI ranks (`mpirun -np K hiercl sweep CONFIG`): rank 0 owns
 * the sweep directory and hands out runs from a dynamic queue, one at a time;
 * every other rank trains what it is sent, on the device of its node-local
 * rank, and sends back the run's record lines, which rank 0 appends.
 *
 * A rank that dies loses only the run it held: it was never recorded, so it
 * is pending for the next resume. Plain `mpirun` ends the whole job when a
 * rank dies; under `mpirun --enable-recovery` the others go on. Open MPI 4.1
 * has no failure notice without ULFM, so every worker sends a heartbeat from
 * a thread of its own (its training never stops it), and rank 0 gives up on
 * a rank it has not heard from for HIERCL_MPI_TIMEOUT seconds (default 60).
 * Without HCL_MPI these are stubs. */
#include "internal.h"
#include "sweep.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HCL_MPI
#include <mpi.h>

enum { TAG_TASK = 1, TAG_RESULT = 2, TAG_BEAT = 3 };

static int g_joined, g_threads; /* g_threads: MPI_THREAD_SERIALIZED was granted */

int hcl_mpi_begin(int *argc, char ***argv) {
  /* only under a launcher: a plain `hiercl sweep` never starts MPI */
  const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", NULL};
  int under = 0;
  for (const char **e = launched; *e; e++) under |= getenv(*e) != NULL;
  if (!under) return 1;
  int provided, size = 1;
  /* under --enable-recovery a rank may die mid-message: one killed while
   * writing into a shared-memory queue can leave the survivors' queue
   * broken (a hang), while a dead peer's TCP socket is closed by the kernel;
   * so TCP unless the user chose the transports (read at MPI_Init) */
  const char *rec = getenv("OMPI_MCA_orte_enable_recovery");
  if (rec && atoi(rec) > 0) setenv("OMPI_MCA_btl", "self,tcp", 0);
  /* serialized: a worker's heartbeat thread sends between its main
   * thread's calls, all under one mutex */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) return 1;
  g_joined = 1;
  g_threads = provided >= MPI_THREAD_SERIALIZED;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

void hcl_mpi_end(void) {
  if (g_joined) MPI_Finalize();
  g_joined = 0;
}

void hcl_sweep_mpi_world(int *rank, int *size) {
  *rank = 0, *size = 1;
  if (!g_joined) return;
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
}

/* The worker's index among the workers of its node: its node-local rank,
 * less one on the node of rank 0 (rank 0 trains nothing). */
static int node_worker_index(int rank) {
  MPI_Comm node;
  int local = 0, has0 = 0, is0 = rank == 0;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
      MPI_SUCCESS)
    return rank > 0 ? rank - 1 : 0;
  MPI_Comm_rank(node, &local);
  MPI_Allreduce(&is0, &has0, 1, MPI_INT, MPI_MAX, node);
  MPI_Comm_free(&node);
  return local - has0 > 0 ? local - has0 : 0;
}

/* A result: int64 point, int32 status, uint64 record bytes, records, error (NUL-ended). */
static char *pack(size_t p, hcl_status prc, const char *text, size_t len, const char *err,
                  size_t *out) {
  size_t el = strlen(err) + 1;
  char *b = malloc(20 + len + el);
  if (!b) return NULL;
  int64_t pp = (int64_t)p;
  int32_t st = prc;
  uint64_t l = len;
  memcpy(b, &pp, 8), memcpy(b + 8, &st, 4), memcpy(b + 12, &l, 8);
  if (len) memcpy(b + 20, text, len);
  memcpy(b + 20 + len, err, el);
  *out = 20 + len + el;
  return b;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void nap(void) { nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL); }

enum { BEAT_S = 1 }; /* a worker's heartbeat period */

/* HIERCL_MPI_TIMEOUT in seconds (default 60); 0 with env->err set when it is
 * not a number >= 2 heartbeats. */
static double lost_after(hcl_sweep_env *env) {
  const char *v = hcl_getenv("HIERCL_MPI_TIMEOUT");
  if (!v) return 60;
  char *end;
  double t = strtod(v, &end);
  if (end != v && !*end && t >= 2 * BEAT_S && t < 1e9) return t;
  snprintf(env->err, sizeof env->err,
           "HIERCL_MPI_TIMEOUT=%s: not a number of seconds >= %d (how long rank 0 waits "
           "for a word from a rank before giving up its run)",
           v, 2 * BEAT_S);
  return 0;
}

/* Rank 0's view of one worker. */
typedef struct rank_state {
  int64_t held; /* the run it trains, -1: none */
  double heard; /* when it last sent anything */
  int lost;     /* given up: silent for longer than the timeout */
} rank_state;

/* Send rank w its next run (or -1: no more), noting what it holds. */
static void hand_out(hcl_sweep_env *env, size_t *cursor, rank_state *rs, int w) {
  size_t p = hcl_sweep_next_task(env, cursor, NULL);
  int64_t msg = p == (size_t)-1 ? -1 : (int64_t)p;
  rs[w].held = msg;
  MPI_Send(&msg, 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD);
}

/* Record a result message b (n bytes) from a worker. */
static void take_result(hcl_sweep_env *env, hcl_sweep_job *j, const char *b, int n) {
  int64_t pp = -1;
  int32_t prc = HCL_ERR_PLUGIN;
  uint64_t len = 0;
  if (b && n >= 21) memcpy(&pp, b, 8), memcpy(&prc, b + 8, 4), memcpy(&len, b + 12, 8);
  if (b && n >= 21 && pp >= 0 && len <= (uint64_t)n - 21 && b[n - 1] == 0) {
    hcl_sweep_job_prepare(env, (size_t)pp, j);
    hcl_sweep_job_done(env, j, (hcl_status)prc, b + 20 + len, b + 20, (size_t)len);
  }
}

/* Give up on the ranks silent for longer than `after` seconds; their runs
 * stay unrecorded, so pending. Returns how many runs are still awaited. */
static int check_silence(hcl_sweep_env *env, hcl_sweep_job *j, rank_state *rs, int size,
                         double after, int *n_lost) {
  int waiting = 0;
  double t = now_s();
  for (int w = 1; w < size; w++) {
    if (rs[w].held < 0 || rs[w].lost) continue;
    if (t - rs[w].heard <= after) {
      waiting++;
      continue;
    }
    rs[w].lost = 1, ++*n_lost;
    hcl_sweep_job_prepare(env, (size_t)rs[w].held, j);
    if (env->progress_tty) fputc('\n', stderr);
    fprintf(stderr,
            "hiercl sweep: rank %d lost (nothing heard for %.0f s); its run %s is left pending "
            "for the next resume\n",
            w, after, *j->gkey ? j->gkey : "(all)");
  }
  return waiting;
}

static hcl_status master(hcl_sweep_env *env, int size) {
  size_t cursor = 0;
  int n_lost = 0;
  hcl_sweep_job j;
  HCL_TRY(hcl_sweep_job_alloc(env, &j));
  rank_state *rs = calloc((size_t)size, sizeof *rs);
  if (!rs) {
    hcl_sweep_job_free(&j);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  }
  /* a send to a dead rank must not end rank 0, which holds the records */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  double after = lost_after(env);
  if (after <= 0) env->rc = HCL_ERR_CONFIG, env->stop_all = 1;
  if (!g_threads) after = 1e30; /* no heartbeats: wait for ever */
  const char *rec = getenv("OMPI_MCA_orte_enable_recovery");
  int recovery = rec && atoi(rec) > 0;
  if (!recovery && size > 2)
    fprintf(stderr, "hiercl sweep: note: a rank that dies ends the whole job under plain "
                    "mpirun; with `mpirun --enable-recovery` it loses only its own run\n");
  for (int w = 1; w < size; w++) {
    rs[w].heard = now_s();
    hand_out(env, &cursor, rs, w);
  }
  while (check_silence(env, &j, rs, size, after, &n_lost)) {
    MPI_Status st;
    int got = 0, n = 0;
    /* poll, sleeping: a blocking probe spins a core the workers need */
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &got, &st);
    if (!got) {
      nap();
      continue;
    }
    int w = st.MPI_SOURCE;
    MPI_Get_count(&st, MPI_BYTE, &n);
    char *b = malloc(n > 20 ? (size_t)n : 21);
    MPI_Recv(b ? b : (char[21]){0}, b ? n : 0, MPI_BYTE, w, st.MPI_TAG, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    if (w > 0 && w < size) {
      rs[w].heard = now_s();
      /* a rank given up on that speaks again had only stalled: its run was
       * handed to no one else, so it is awaited again */
      if (rs[w].lost) {
        rs[w].lost = 0, n_lost--;
        fprintf(stderr, "hiercl sweep: rank %d is heard from again\n", w);
      }
    }
    if (st.MPI_TAG == TAG_RESULT && w > 0 && w < size) {
      take_result(env, &j, b, n);
      hand_out(env, &cursor, rs, w);
    }
    free(b);
  }
  /* the ranks given up on may be gone: a send that nobody receives */
  for (int w = 1; w < size; w++) {
    if (!rs[w].lost) continue;
    int64_t stop = -1;
    MPI_Request r;
    if (MPI_Isend(&stop, 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD, &r) == MPI_SUCCESS)
      MPI_Request_free(&r);
  }
  if (n_lost && env->rc == HCL_OK) {
    env->rc = HCL_ERR_INTERRUPTED;
    snprintf(env->err, sizeof env->err,
             "%d rank(s) lost; their runs are pending: run the sweep again to train them", n_lost);
  }
  if (recovery && env->rc != HCL_OK)
    fprintf(stderr, "hiercl sweep: note: under --enable-recovery, Open MPI 4.1's mpirun exits 0 "
                    "whatever the ranks return; `hiercl sweep CONFIG --status` exits non-zero "
                    "while a run is pending or failed\n");
  free(rs);
  hcl_sweep_job_free(&j);
  return env->rc;
}

/* A worker's heartbeat: a thread that tells rank 0 every BEAT_S seconds
 * that this rank lives, between the main thread's MPI calls (mu). */
typedef struct beat {
  pthread_mutex_t mu;
  pthread_t thread;
  int stop, running;
} beat;

static void *beat_loop(void *arg) {
  beat *bt = arg;
  for (int tick = 0;; tick++) {
    pthread_mutex_lock(&bt->mu);
    int stop = bt->stop;
    if (!stop && tick % (BEAT_S * 50) == 0) {
      char one = 1;
      MPI_Send(&one, 1, MPI_BYTE, 0, TAG_BEAT, MPI_COMM_WORLD);
    }
    pthread_mutex_unlock(&bt->mu);
    if (stop) return NULL;
    nap();
  }
}

/* The next run from rank 0 (-1: none), polled so the heartbeat can send. */
static int64_t next_run(beat *bt) {
  for (;;) {
    int got = 0;
    int64_t p = -1;
    pthread_mutex_lock(&bt->mu);
    MPI_Iprobe(0, TAG_TASK, MPI_COMM_WORLD, &got, MPI_STATUS_IGNORE);
    if (got) MPI_Recv(&p, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    pthread_mutex_unlock(&bt->mu);
    if (got) return p;
    nap();
  }
}

static hcl_status worker(hcl_sweep_env *env, int rank, const char *device) {
  beat bt = {.stop = 0};
  pthread_mutex_init(&bt.mu, NULL);
  /* before the session: compiling kernels can take long */
  bt.running = g_threads && !pthread_create(&bt.thread, NULL, beat_loop, &bt);
  hcl_session *session = NULL;
  hcl_sweep_job j;
  char err[8192] = "";
  hcl_status rc = hcl_sweep_job_alloc(env, &j);
  if (rc == HCL_OK &&
      (rc = hcl_session_create(env->opt->run.plugin_path, &session, err, sizeof err)) != HCL_OK)
    hcl_sweep_job_free(&j);
  for (;;) {
    int64_t p = next_run(&bt);
    if (p < 0) break;
    hcl_status prc = rc;
    char *text = NULL;
    size_t len = 0;
    if (rc == HCL_OK) {
      hcl_sweep_job_prepare(env, (size_t)p, &j);
      fprintf(stderr, "hiercl sweep: rank %d%s%s: starting %s\n", rank, device ? " on " : "",
              device ? device : "", *j.gkey ? j.gkey : "(all)");
      err[0] = 0;
      hcl_status frc =
          hcl_sweep_job_run(env, &j, session, device, &prc, err, sizeof err, &text, &len);
      if (frc != HCL_OK) prc = frc, snprintf(err, sizeof err, "%s", hcl_errmsg(NULL));
    } else if (!err[0]) {
      snprintf(err, sizeof err, "rank %d: %s", rank, hcl_errmsg(NULL));
    }
    size_t n;
    char *b = pack((size_t)p, prc, text, len, err, &n);
    free(text);
    if (!b) b = pack((size_t)p, HCL_ERR_NOMEM, NULL, 0, "out of memory", &n);
    pthread_mutex_lock(&bt.mu);
    MPI_Send(b, b ? (int)n : 0, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
    pthread_mutex_unlock(&bt.mu);
    free(b);
  }
  if (bt.running) {
    pthread_mutex_lock(&bt.mu);
    bt.stop = 1;
    pthread_mutex_unlock(&bt.mu);
    pthread_join(bt.thread, NULL);
  }
  pthread_mutex_destroy(&bt.mu);
  hcl_session_destroy(session);
  if (rc == HCL_OK) hcl_sweep_job_free(&j);
  return HCL_OK;
}

hcl_status hcl_sweep_exec_mpi(hcl_sweep_env *env, char **devices, size_t n_devices) {
  int rank, size;
  hcl_sweep_mpi_world(&rank, &size);
  int idx = node_worker_index(rank); /* collective: every rank */
  if (rank == 0) {
    env->progress_tty = 0; /* the launcher's log: one line per point */
    return master(env, size);
  }
  const char *device = n_devices ? devices[(size_t)idx % n_devices] : NULL;
  env->opt->run.progress = 0;
  return worker(env, rank, device);
}

#else /* built without MPI */

int hcl_mpi_begin(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* under mpirun each rank would run the whole sweep into one directory */
  const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
  for (const char **e = launched; *e; e++)
    if (getenv(*e) && atoi(getenv(*e)) > 1) return -1;
  return 1;
}

void hcl_mpi_end(void) {}

void hcl_sweep_mpi_world(int *rank, int *size) { *rank = 0, *size = 1; }

hcl_status hcl_sweep_exec_mpi(hcl_sweep_env *env, char **devices, size_t n_devices) {
  (void)devices, (void)n_devices;
  snprintf(env->err, sizeof env->err, "hiercl was built without MPI (HCL_MPI)");
  return HCL_ERR_UNSUPPORTED;
}

#endif
