/* A sweep across MPI ranks (`mpirun -np K hiercl sweep CONFIG`): rank 0 owns
 * the sweep directory and hands out runs from a dynamic queue, one at a time;
 * every other rank trains what it is sent, on the device of its node-local
 * rank, and sends back the run's record lines, which rank 0 appends. A rank
 * that dies loses only the run it held: it was never recorded, so it is
 * pending for the next resume. Without HCL_MPI these are stubs. */
#include "sweep.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HCL_MPI
#include <mpi.h>

enum { TAG_TASK = 1, TAG_RESULT = 2 };

static int g_joined;

int hcl_mpi_begin(int *argc, char ***argv) {
  /* only under a launcher: a plain `hiercl sweep` never starts MPI */
  const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", NULL};
  int under = 0;
  for (const char **e = launched; *e; e++) under |= getenv(*e) != NULL;
  if (!under) return 1;
  int provided, size = 1;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return 1;
  g_joined = 1;
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

static hcl_status master(hcl_sweep_env *env, int size) {
  size_t cursor = 0, active = 0;
  hcl_sweep_job j;
  HCL_TRY(hcl_sweep_job_alloc(env, &j));
  for (int w = 1; w < size; w++) {
    size_t p = hcl_sweep_next_task(env, &cursor, NULL);
    int64_t msg = p == (size_t)-1 ? -1 : (int64_t)p;
    MPI_Send(&msg, 1, MPI_INT64_T, w, TAG_TASK, MPI_COMM_WORLD);
    active += msg >= 0;
  }
  while (active) {
    MPI_Status st;
    int n = 0;
    /* poll, sleeping: a blocking probe spins a core the workers need */
    for (int got = 0; !got;) {
      MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &got, &st);
      if (!got) nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }
    MPI_Get_count(&st, MPI_BYTE, &n);
    char *b = malloc(n > 20 ? (size_t)n : 21);
    MPI_Recv(b, n, MPI_BYTE, st.MPI_SOURCE, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    active--;
    int64_t pp = -1;
    int32_t prc = HCL_ERR_PLUGIN;
    uint64_t len = 0;
    if (b && n >= 21) memcpy(&pp, b, 8), memcpy(&prc, b + 8, 4), memcpy(&len, b + 12, 8);
    if (b && n >= 21 && pp >= 0 && len <= (uint64_t)n - 21 && b[n - 1] == 0) {
      hcl_sweep_job_prepare(env, (size_t)pp, &j);
      hcl_sweep_job_done(env, &j, (hcl_status)prc, b + 20 + len, b + 20, (size_t)len);
    }
    free(b);
    size_t p = hcl_sweep_next_task(env, &cursor, NULL);
    int64_t msg = p == (size_t)-1 ? -1 : (int64_t)p;
    MPI_Send(&msg, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
    active += msg >= 0;
  }
  hcl_sweep_job_free(&j);
  return env->rc;
}

static hcl_status worker(hcl_sweep_env *env, int rank, const char *device) {
  hcl_session *session = NULL;
  hcl_sweep_job j;
  char err[8192] = "";
  hcl_status rc = hcl_sweep_job_alloc(env, &j);
  if (rc == HCL_OK &&
      (rc = hcl_session_create(env->opt->run.plugin_path, &session, err, sizeof err)) != HCL_OK)
    hcl_sweep_job_free(&j);
  for (;;) {
    int64_t p;
    MPI_Recv(&p, 1, MPI_INT64_T, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
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
    MPI_Send(b, b ? (int)n : 0, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
    free(b);
  }
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
