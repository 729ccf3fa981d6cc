/* Device side of the rhm target: seed and rule-table upload, kernel
 * compilation, sample() and the probe's squared distances. The draw layout
 * is documented in rhm.cl (and mirrored by tests/test_rhm.c). */
#include "rhm.h"

#include <stdlib.h>
#include <string.h>

extern const char hcl_cl_rhm[];

hcl_status rhm_device_init(rhm_target *t) {
  hcl_ctx *ctx = t->ctx;
  uint32_t *keys = malloc(2 * t->R * sizeof *keys);
  if (!keys) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  for (size_t r = 0; r < t->R; r++) {
    keys[2 * r] = (uint32_t)t->seeds[r];
    keys[2 * r + 1] = (uint32_t)(t->seeds[r] >> 32);
  }
  hcl_status rc = hcl_host->buf_alloc(ctx, 2 * t->R * sizeof *keys, &t->d_seeds);
  if (rc == HCL_OK) rc = hcl_host->buf_write(ctx, t->d_seeds, keys, 2 * t->R * sizeof *keys);
  free(keys);
  HCL_TRY(rc);
  size_t tb = t->R * t->g.table_size * sizeof(uint32_t);
  HCL_TRY(hcl_host->buf_alloc(ctx, tb, &t->d_rules));
  HCL_TRY(hcl_host->buf_write(ctx, t->d_rules, t->tables, tb));
  HCL_TRY(hcl_host->program(ctx, "rhm", hcl_cl_rhm, "", &t->prog));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "rhm_sample", &t->k_sample));
  HCL_TRY(hcl_host->kernel(ctx, t->prog, "rhm_sqdist", &t->k_sqdist));
  return HCL_OK;
}

void rhm_device_release(rhm_target *t) {
  hcl_ctx *ctx = t->ctx;
  if (t->k_sample) clReleaseKernel(t->k_sample);
  if (t->k_sqdist) clReleaseKernel(t->k_sqdist);
  if (t->prog) clReleaseProgram(t->prog);
  hcl_buf *bufs[] = {&t->d_seeds, &t->d_rules, &t->p_x, &t->p_y, &t->p_fa, &t->p_fb, &t->p_dist};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    if (bufs[i]->mem) hcl_host->buf_free(ctx, bufs[i]);
}

hcl_status rhm_sample_ext(rhm_target *t, uint32_t stream, uint64_t first, size_t count, hcl_buf x,
                          hcl_buf y, uint32_t ell) {
  if (stream > HCL_STREAM_VAL)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM,
                          "unknown stream %u (0 train, 1 test, 2 probe, 3 unlabelled, 4 val)",
                          stream);
  if (ell > t->g.L)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "level %u outside 1..L = 1..%llu", ell,
                          (unsigned long long)t->g.L);
  if (!count) return HCL_OK;
  if (count > UINT32_MAX)
    return hcl_host->fail(t->ctx, HCL_ERR_PARAM, "%zu samples in one call", count);
  size_t xs = (size_t)(t->g.v * t->g.d);
  HCL_TRY(hcl_view_room(t->ctx, x, t->R * count * xs, "x"));
  HCL_TRY(hcl_view_room(t->ctx, y, t->R * count, "y"));
  cl_ulong xo, yo;
  HCL_TRY(hcl_view_offset(t->ctx, x, "x", &xo));
  HCL_TRY(hcl_view_offset(t->ctx, y, "y", &yo));
  const rhm_stream_map *mp = &t->map[stream];
  const rhm_dims *g = &t->g;
  cl_ulong tsize = g->table_size, fst = first, base = mp->base, wrap = mp->wrap;
  cl_ulong dstream = RHM_STREAM_DRAW | stream, pmax = g->index_mode ? (cl_ulong)g->p_max : 0;
  cl_ulong per_class = g->per_class, syn_stream = RHM_STREAM_SYN | ell;
  cl_uint cnt = (cl_uint)count, mode = (cl_uint)mp->mode, half = g->feistel_half;
  cl_uint n_c = (cl_uint)g->n_c, v = (cl_uint)g->v, m = (cl_uint)g->m, s = (cl_uint)g->s;
  cl_uint L = (cl_uint)g->L, d = (cl_uint)g->d, n_dig = (cl_uint)g->n_dig;
  cl_uint syn_on = ell ? 1u : 0u, syn_t = ell ? (cl_uint)(g->L - ell) : 0u;
  cl_float on = t->x_on, off = t->x_off;
  hcl_arg args[] = {HCL_ARG(x.mem),
                    HCL_ARG(xo),
                    HCL_ARG(y.mem),
                    HCL_ARG(yo),
                    HCL_ARG(t->d_seeds.mem),
                    HCL_ARG(t->d_rules.mem),
                    HCL_ARG(tsize),
                    HCL_ARG(cnt),
                    HCL_ARG(fst),
                    HCL_ARG(mode),
                    HCL_ARG(base),
                    HCL_ARG(wrap),
                    HCL_ARG(dstream),
                    HCL_ARG(pmax),
                    HCL_ARG(per_class),
                    HCL_ARG(half),
                    HCL_ARG(n_c),
                    HCL_ARG(v),
                    HCL_ARG(m),
                    HCL_ARG(s),
                    HCL_ARG(L),
                    HCL_ARG(d),
                    HCL_ARG(n_dig),
                    HCL_ARG(syn_on),
                    HCL_ARG(syn_t),
                    HCL_ARG(syn_stream),
                    HCL_ARG(on),
                    HCL_ARG(off)};
  size_t gws[2] = {count, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_sample, 2, gws, NULL, "rhm_sample",
                              sizeof args / sizeof *args, args);
}

hcl_status rhm_sample(void *self, uint32_t stream, uint64_t first, size_t n, hcl_buf x, hcl_buf y) {
  return rhm_sample_ext(self, stream, first, n, x, y, 0);
}

hcl_status rhm_sqdist(rhm_target *t, hcl_buf a, hcl_buf b, size_t n, size_t D, hcl_buf out) {
  cl_ulong ao, bo;
  HCL_TRY(hcl_view_offset(t->ctx, a, "features", &ao));
  HCL_TRY(hcl_view_offset(t->ctx, b, "features", &bo));
  cl_uint cnt = (cl_uint)n, dim = (cl_uint)D;
  hcl_arg args[] = {HCL_ARG(a.mem),   HCL_ARG(ao),  HCL_ARG(b.mem), HCL_ARG(bo),
                    HCL_ARG(out.mem), HCL_ARG(cnt), HCL_ARG(dim)};
  size_t gws[2] = {n, t->R};
  return hcl_host->run_kernel(t->ctx, t->k_sqdist, 2, gws, NULL, "rhm_sqdist",
                              sizeof args / sizeof *args, args);
}
