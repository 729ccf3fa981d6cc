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
 * Once the runs are handed out, every send and receive is polled and, under
 * recovery, no rank waits in MPI_Finalize for the others, so a dead peer
 * cannot hold a survivor. Without HCL_MPI these are stubs. */
#include "internal.h"
#include "sweep.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifdef HCL_MPI
#include <mpi.h>

enum { TAG_TASK = 1, TAG_RESULT = 2, TAG_BEAT = 3 };

static int g_joined, g_threads; /* g_threads: MPI_THREAD_SERIALIZED was granted */

/* 1 under `mpirun --enable-recovery` (or `--mca orte_enable_recovery`, any of
 * Open MPI's spellings of true), which the launcher puts in every rank's
 * environment: then a rank's death does not end the job. */
static int recovery_mode(void) {
  const char *v = getenv("OMPI_MCA_orte_enable_recovery");
  static const char *const yes[] = {"t", "true", "enabled", "yes", "y"};
  if (!v) return 0;
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    if (!strcasecmp(v, yes[i])) return 1;
  return atoi(v) > 0;
}

int hcl_mpi_begin(int *argc, char ***argv) {
  /* only under a launcher: a plain `hiercl sweep` never starts MPI */
  const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", NULL};
  int under = 0;
  for (const char **e = launched; *e; e++) under |= getenv(*e) != NULL;
  if (!under) return 1;
  int provided, size = 1;
  /* read at MPI_Init; the user's own choice wins */
  if (recovery_mode()) {
    /* a rank may die mid-message: one killed while writing into a
     * shared-memory queue can leave the survivors' queue broken (a hang),
     * while a dead peer's TCP socket is closed by the kernel */
    setenv("OMPI_MCA_btl", "self,tcp", 0);
    /* MPI_Finalize starts with a PMIx fence over every rank of the job, the
     * dead one too; Open MPI 4.1 sometimes never completes it (the survivors
     * hang there). The sweep's protocol does not need it: every message a
     * rank still needs is acknowledged before it finalizes (see master). */
    setenv("OMPI_MCA_async_mpi_finalize", "1", 0);
  }
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

/* Whether the send *r has completed (then *r is MPI_REQUEST_NULL); a send
 * that failed (its peer is gone) counts as complete: nothing will come of it. */
static int sent(MPI_Request *r) {
  int done = 1;
  if (*r != MPI_REQUEST_NULL && MPI_Test(r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    *r = MPI_REQUEST_NULL, done = 1;
  return done;
}

enum { BEAT_S = 1 }; /* a worker's heartbeat period */

/* HIERCL_MPI_TIMEOUT in seconds (default 60); 0 when it is not a number
 * >= 2 heartbeats. */
static double timeout_s(void) {
  const char *v = hcl_getenv("HIERCL_MPI_TIMEOUT");
  if (!v) return 60;
  char *end;
  double t = strtod(v, &end);
  return end != v && !*end && t >= 2 * BEAT_S && t < 1e9 ? t : 0;
}

/* Rank 0's view of one worker. */
typedef struct rank_state {
  int64_t held;    /* the run it trains, -1: none */
  int64_t msg;     /* the message of req, which must live until it is sent */
  MPI_Request req; /* rank 0's last send to it, MPI_REQUEST_NULL once sent */
  double heard;    /* when it last sent anything */
  int lost;        /* given up: silent for longer than the timeout */
} rank_state;

/* Send rank w its next run, or -1: no more. The stop is a synchronous send:
 * once it completes the worker has it, so rank 0 may leave without
 * MPI_Finalize's fence. Both are polled (a worker may die meanwhile). */
static void hand_out(hcl_sweep_env *env, size_t *cursor, rank_state *rs, int w) {
  size_t p = hcl_sweep_next_task(env, cursor, NULL);
  /* the last send was received: the worker answered it */
  if (rs[w].req != MPI_REQUEST_NULL) MPI_Wait(&rs[w].req, MPI_STATUS_IGNORE);
  rs[w].held = rs[w].msg = p == (size_t)-1 ? -1 : (int64_t)p;
  int rc = rs[w].msg < 0
               ? MPI_Issend(&rs[w].msg, 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD, &rs[w].req)
               : MPI_Isend(&rs[w].msg, 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD, &rs[w].req);
  if (rc != MPI_SUCCESS) rs[w].req = MPI_REQUEST_NULL;
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

/* Give up on the ranks silent for longer than `after` seconds: a run they
 * held stays unrecorded, so pending. Returns how many ranks are still
 * awaited: those holding a run, and those that have not taken their stop. */
static int check_silence(hcl_sweep_env *env, hcl_sweep_job *j, rank_state *rs, int size,
                         double after) {
  int waiting = 0;
  double t = now_s();
  for (int w = 1; w < size; w++) {
    if (rs[w].lost || (rs[w].held < 0 && sent(&rs[w].req))) continue;
    if (t - rs[w].heard <= after) {
      waiting++;
      continue;
    }
    rs[w].lost = 1;
    if (env->progress_tty) fputc('\n', stderr);
    if (rs[w].held < 0) {
      fprintf(stderr,
              "hiercl sweep: rank %d silent for %.0f s after its last run; not waited for\n", w,
              after);
      continue;
    }
    hcl_sweep_job_prepare(env, (size_t)rs[w].held, j);
    fprintf(stderr,
            "hiercl sweep: rank %d lost (nothing heard for %.0f s); its run %s is left pending "
            "for the next resume\n",
            w, after, *j->gkey ? j->gkey : "(all)");
  }
  return waiting;
}

static hcl_status master(hcl_sweep_env *env, int size) {
  size_t cursor = 0;
  hcl_sweep_job j;
  HCL_TRY(hcl_sweep_job_alloc(env, &j));
  rank_state *rs = calloc((size_t)size, sizeof *rs);
  if (!rs) {
    hcl_sweep_job_free(&j);
    return hcl_fail(NULL, HCL_ERR_NOMEM, "out of memory");
  }
  double after = timeout_s();
  if (after <= 0) {
    env->rc = HCL_ERR_CONFIG, env->stop_all = 1;
    snprintf(env->err, sizeof env->err,
             "HIERCL_MPI_TIMEOUT=%s: not a number of seconds >= %d (how long rank 0 waits "
             "for a word from a rank before giving up its run)",
             hcl_getenv("HIERCL_MPI_TIMEOUT"), 2 * BEAT_S);
  }
  if (!g_threads) after = 1e30; /* no heartbeats: wait for ever */
  int recovery = recovery_mode();
  if (!recovery && size > 2)
    fprintf(stderr, "hiercl sweep: note: a rank that dies ends the whole job under plain "
                    "mpirun; with `mpirun --enable-recovery` it loses only its own run\n");
  for (int w = 1; w < size; w++) {
    rs[w].req = MPI_REQUEST_NULL;
    rs[w].heard = now_s();
    hand_out(env, &cursor, rs, w);
  }
  while (check_silence(env, &j, rs, size, after)) {
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
        rs[w].lost = 0;
        fprintf(stderr, "hiercl sweep: rank %d is heard from again\n", w);
      }
    }
    if (st.MPI_TAG == TAG_RESULT && w > 0 && w < size && rs[w].held >= 0) {
      take_result(env, &j, b, n);
      hand_out(env, &cursor, rs, w);
    }
    free(b);
  }
  int n_lost = 0;
  for (int w = 1; w < size; w++) {
    n_lost += rs[w].lost && rs[w].held >= 0;
    /* a send to a rank given up on may never complete: MPI_Finalize drops it */
    if (rs[w].req != MPI_REQUEST_NULL) MPI_Request_free(&rs[w].req);
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
 * that this rank lives, between the main thread's MPI calls (mu). A beat
 * is sent only once the last one has gone: if rank 0 is gone, none pile up. */
typedef struct beat {
  pthread_mutex_t mu;
  pthread_t thread;
  int stop, running;
  MPI_Request req; /* the last beat */
  char one;
} beat;

static void *beat_loop(void *arg) {
  beat *bt = arg;
  for (int tick = 0;; tick++) {
    pthread_mutex_lock(&bt->mu);
    int stop = bt->stop;
    if (!stop && tick % (BEAT_S * 50) == 0 && sent(&bt->req) &&
        MPI_Isend(&bt->one, 1, MPI_BYTE, 0, TAG_BEAT, MPI_COMM_WORLD, &bt->req) != MPI_SUCCESS)
      bt->req = MPI_REQUEST_NULL;
    pthread_mutex_unlock(&bt->mu);
    if (stop) return NULL;
    nap();
  }
}

/* The next run from rank 0 (-1: none), polled so the heartbeat can send,
 * once *out (the last result) is sent. Rank 0 answers a result at once;
 * when it says nothing for `patience` s it has ended without this rank
 * (it gave it up) or died: -1 too, with a line. */
static int64_t next_run(beat *bt, MPI_Request *out, double patience, int rank) {
  int64_t p = -1;
  int got = 0;
  for (double t0 = now_s();;) {
    pthread_mutex_lock(&bt->mu);
    int done = sent(out);
    if (!got) {
      MPI_Iprobe(0, TAG_TASK, MPI_COMM_WORLD, &got, MPI_STATUS_IGNORE);
      if (got) MPI_Recv(&p, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    int late = !(got && done) && now_s() - t0 > patience;
    if (late && *out != MPI_REQUEST_NULL) MPI_Request_free(out);
    pthread_mutex_unlock(&bt->mu);
    if (got && done) return p;
    if (late) {
      fprintf(stderr,
              "hiercl sweep: rank %d: no word from rank 0 for %.0f s; stopping (rank 0 gave "
              "this rank up, or ended)\n",
              rank, patience);
      return -1;
    }
    nap();
  }
}

static hcl_status worker(hcl_sweep_env *env, int rank, const char *device) {
  beat bt = {.stop = 0, .req = MPI_REQUEST_NULL, .one = 1};
  pthread_mutex_init(&bt.mu, NULL);
  /* rank 0 answers a result at once, so a long silence means it has ended
   * or died; twice its timeout, to spare a loaded machine (60 s when
   * HIERCL_MPI_TIMEOUT is malformed: rank 0 then stops the sweep) */
  double patience = timeout_s();
  patience = 2 * (patience > 0 ? patience : 60);
  /* before the session: compiling kernels can take long */
  bt.running = g_threads && !pthread_create(&bt.thread, NULL, beat_loop, &bt);
  hcl_session *session = NULL;
  hcl_sweep_job j;
  char err[8192] = "";
  hcl_status rc = hcl_sweep_job_alloc(env, &j);
  if (rc == HCL_OK &&
      (rc = hcl_session_create(env->opt->run.plugin_path, &session, err, sizeof err)) != HCL_OK)
    hcl_sweep_job_free(&j);
  MPI_Request out = MPI_REQUEST_NULL;
  char *b = NULL; /* the result in flight (out) */
  for (;;) {
    int64_t p = next_run(&bt, &out, patience, rank);
    free(b);
    b = NULL;
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
    b = pack((size_t)p, prc, text, len, err, &n);
    free(text);
    if (!b) b = pack((size_t)p, HCL_ERR_NOMEM, NULL, 0, "out of memory", &n);
    pthread_mutex_lock(&bt.mu);
    if (MPI_Isend(b, b ? (int)n : 0, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD, &out) != MPI_SUCCESS)
      out = MPI_REQUEST_NULL;
    pthread_mutex_unlock(&bt.mu);
  }
  if (bt.running) {
    pthread_mutex_lock(&bt.mu);
    bt.stop = 1;
    pthread_mutex_unlock(&bt.mu);
    pthread_join(bt.thread, NULL);
  }
  /* a beat rank 0 no longer reads: MPI_Finalize drops it */
  if (bt.req != MPI_REQUEST_NULL) MPI_Request_free(&bt.req);
  pthread_mutex_destroy(&bt.mu);
  hcl_session_destroy(session);
  if (rc == HCL_OK) hcl_sweep_job_free(&j);
  return HCL_OK;
}

hcl_status hcl_sweep_exec_mpi(hcl_sweep_env *env, char **devices, size_t n_devices) {
  int rank, size;
  hcl_sweep_mpi_world(&rank, &size);
  int idx = node_worker_index(rank); /* collective: every rank */
  /* an operation with a dead peer must not end a survivor: it returns an
   * error, which the polling treats as done */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
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
