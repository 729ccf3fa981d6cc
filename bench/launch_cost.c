/* What one kernel launch costs the OpenCL driver, apart from the kernel's
 * work: N launches of a kernel that writes one float, timed by the host
 * (wall) and by the process's CPU time (every driver thread included), for
 * kernels of 2, 4 (a 104-byte struct) and 19 arguments (hcl_k_gemm_row's
 * 3 buffers and 16 scalars), with and without a profiling queue, and with a
 * wait for each launch's event (as profiled hiercl runs did before
 * runtime/profile.c).
 *
 *   build/bench/launch_cost [N]        (default N = 20000, first device) */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *src =
    "__kernel void k2(__global float *a, ulong n) { if (get_global_id(0) == 0) a[0] = 1.0f; }\n"
    "typedef struct { int ta, tb; ulong m, n, k; float alpha; ulong ao, lda, sa, bo, ldb, sb;\n"
    "                 float beta; ulong co, ldc, sc; } P;\n"
    "__kernel void k4(__global float *a, __global float *b, __global float *c, P p) {\n"
    "  if (get_global_id(0) == 0) c[p.co] = p.alpha; }\n"
    "__kernel void k19(int ta, int tb, ulong m, ulong n, ulong k, float alpha, __global float *a,\n"
    "  ulong ao, ulong lda, ulong sa, __global float *b, ulong bo, ulong ldb, ulong sb, float "
    "beta,\n"
    "  __global float *c, ulong co, ulong ldc, ulong sc) { if (get_global_id(0) == 0) c[co] = "
    "alpha; }\n";

typedef struct {
  cl_int ta, tb;
  cl_ulong m, n, k;
  cl_float alpha;
  cl_ulong ao, lda, sa, bo, ldb, sb;
  cl_float beta;
  cl_ulong co, ldc, sc;
} params;

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Set the arguments of kernel `which` (0: k2, 1: k4, 2: k19) as a launch would. */
static void set_args(cl_kernel k, int which, cl_mem b) {
  cl_ulong z = 0;
  cl_int zi = 0;
  cl_float one = 1.0f;
  params p = {0};
  if (which == 0) {
    clSetKernelArg(k, 0, sizeof b, &b);
    clSetKernelArg(k, 1, sizeof z, &z);
  } else if (which == 1) {
    for (cl_uint i = 0; i < 3; i++) clSetKernelArg(k, i, sizeof b, &b);
    clSetKernelArg(k, 3, sizeof p, &p);
  } else {
    for (cl_uint i = 0; i < 19; i++) {
      if (i == 6 || i == 10 || i == 15)
        clSetKernelArg(k, i, sizeof b, &b);
      else if (i < 2)
        clSetKernelArg(k, i, sizeof zi, &zi);
      else if (i == 5 || i == 14)
        clSetKernelArg(k, i, sizeof one, &one);
      else
        clSetKernelArg(k, i, sizeof z, &z);
    }
  }
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  cl_platform_id plat;
  cl_device_id dev;
  cl_int e;
  char name[256] = "";
  if (n < 1 || clGetPlatformIDs(1, &plat, NULL) != CL_SUCCESS ||
      clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) {
    fprintf(stderr, "launch_cost: no OpenCL device (or N < 1)\n");
    return 1;
  }
  clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
  cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
  cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &e);
  if (e != CL_SUCCESS || clBuildProgram(prog, 1, &dev, "", NULL, NULL) != CL_SUCCESS) {
    fprintf(stderr, "launch_cost: cannot build the kernels on %s\n", name);
    return 1;
  }
  cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &e);
  static const char *const kname[3] = {"k2", "k4", "k19"};
  static const int nargs[3] = {2, 4, 19};
  static const char *const mode[3] = {"no event", "event kept", "event waited"};
  printf("%s, %d launches of one work-item each; microseconds per launch\n", name, n);
  printf("| args | queue | events | wall | CPU (all threads) |\n|---:|---|---|---:|---:|\n");
  for (int prof = 0; prof < 2; prof++) {
#ifdef __GNUC__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    cl_command_queue q = clCreateCommandQueue(ctx, dev, prof ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
#ifdef __GNUC__
#pragma GCC diagnostic pop
#endif
    for (int which = 0; which < 3; which++) {
      cl_kernel k = clCreateKernel(prog, kname[which], &e);
      size_t g = 1;
      set_args(k, which, buf);
      for (int i = 0; i < 100; i++) clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL);
      clFinish(q);
      for (int m = 0; m < (prof ? 3 : 1); m++) {
        cl_event *ev = m == 1 ? malloc((size_t)n * sizeof *ev) : NULL;
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < n; i++) {
          cl_event one = NULL;
          set_args(k, which, buf);
          clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, m ? &one : NULL);
          if (m == 2) {
            clWaitForEvents(1, &one);
            clReleaseEvent(one);
          } else if (m == 1) {
            ev[i] = one;
          }
        }
        clFinish(q);
        double w = clock_s(CLOCK_MONOTONIC) - w0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (ev) {
          for (int i = 0; i < n; i++) clReleaseEvent(ev[i]);
          free(ev);
        }
        printf("| %d | %s | %s | %.2f | %.2f |\n", nargs[which], prof ? "profiling" : "plain",
               mode[m], w / n * 1e6, c / n * 1e6);
      }
      clReleaseKernel(k);
    }
    clReleaseCommandQueue(q);
  }
  clReleaseMemObject(buf);
  clReleaseProgram(prog);
  clReleaseContext(ctx);
  return 0;
}
