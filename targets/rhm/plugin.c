/* The Random Hierarchy Model target plugin: descriptor, parameters,
 * create/destroy/info and the manifest notes (SPEC 1.2; Cagnetta et al.,
 * PRX 2024, arXiv:2307.02129; rules = ren: Ren et al., COLT 2026,
 * arXiv:2601.19756). */
/* the newest host-table entry this plugin calls unconditionally */
#define HCL_PLUGIN_NEEDS probe_replicas
#include "rhm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_rules[] = {"uniform", "ren", NULL};
static const char *const k_whitening[] = {"none", "centered", "prx", NULL};

static const hcl_param_desc k_params[] = {
    HCL_P_INT("n_c", "8", 2, 65536, "number of classes n_c (the root symbols); bound n_c*m <= v^s"),
    HCL_P_INT("v", "8", 2, 65536,
              "vocabulary size v of every level below the root (input channels)"),
    HCL_P_INT("m", "4", 1, 65536,
              "multiplicity m: rules (synonymous s-tuples) per symbol; bounds m <= v^(s-1) and "
              "n_c*m <= v^s"),
    HCL_P_INT("s", "2", 2, 64, "tuple size s: every rule produces s symbols"),
    HCL_P_INT("l", "3", 1, 20,
              "depth L: the input has d = s^L tokens (at most 1048576), one-hot [v, d]; "
              "P_max = n_c*m^((s^L-1)/(s-1)) distinct data"),
    HCL_P_ENUM(
        "rules", "uniform", k_rules,
        "rule sampler per replica seed: uniform = each level draws its parents*m tuples uniformly "
        "without replacement from the v^s lexicographic s-tuples, parent p gets draws p*m..p*m+m-1 "
        "(the reference code); ren = for every first token mu draw its suffixes in [v]^(s-1) "
        "without replacement (m each below the root; at the root n_c*m/v, the remainder spread "
        "over random tokens: this project's reading for n_c != v), then deal the shuffled "
        "candidates m to each parent, so first tokens are uniform over the rules (Ren et al.)"),
    HCL_P_ENUM("whitening", "none", k_whitening,
               "input encoding: none = one-hot 1/0; centered = (x - 1/v)/sqrt(1 - 1/v); prx = "
               "x*(1 + (v-1)^-1/2) - (v-1)^-1/2 (the reference code's whitening)"),
    HCL_P_INT(
        "probe_samples", "512", 0, 1e7,
        "synonymic-sensitivity probe: data averaged (x and an independent datum y each); 0 = off. "
        "S_{k,l} = E|f_k(x) - f_k(P_l x)|^2 / E|f_k(x) - f_k(y)|^2, f_k = hidden layer k of the "
        "model, P_l = the rule of every level-l node re-drawn uniformly among its parent's m rules "
        "(may keep the same tuple); metric sensitivity_k<k>_l<l>. x = probe samples 0..N-1, y = "
        "N..2N-1: fresh indices beyond train + test when 2N unused ones exist (finite train_size), "
        "else i.i.d. draws; the same inputs at every evaluation. Feature widths are asked with "
        "n = 0"),
    HCL_P_LIST(
        "sensitivity_layers", "", 1, 64,
        "probe: model layers k (1-based hidden layers); empty = 1..L, stopping at the first layer "
        "the model does not have"),
    HCL_P_LIST(
        "sensitivity_levels", "", 1, 64,
        "probe: levels l of the hierarchy, 1 = the input tuples .. L = the tuple of the class; "
        "empty = 1..L"),
    HCL_P_END};

static void rhm_destroy(void *self) {
  rhm_target *t = self;
  if (!t) return;
  rhm_device_release(t);
  free(t->tables);
  free(t->seeds);
  free(t);
}

/* Integer list of a LIST key into out (at most 64), each in 1..hi. */
static hcl_status read_list(rhm_target *t, const hcl_params *p, const char *key, uint64_t hi,
                            uint32_t *out, size_t *n) {
  double vals[64];
  size_t k = hcl_host->param_list(p, key, vals, 64);
  if (k > 64) return hcl_report_fail(t->rep, HCL_ERR_PARAM, "%s: %zu entries, at most 64", key, k);
  for (size_t i = 0; i < k; i++) {
    if (vals[i] != floor(vals[i]) || vals[i] < 1 || vals[i] > (double)hi)
      return hcl_report_fail(t->rep, HCL_ERR_PARAM,
                             "%s: entry %zu (%g) must be an integer in 1..%llu", key, i + 1,
                             vals[i], (unsigned long long)hi);
    out[i] = (uint32_t)vals[i];
  }
  *n = k;
  return HCL_OK;
}

/* How each stream maps sample indices to data (see rhm.h / rhm.cl). */
static hcl_status plan_streams(rhm_target *t) {
  hcl_ctx *ctx = t->ctx;
  const rhm_dims *g = &t->g;
  uint64_t P = t->train_size, T = t->test_size, V = t->val_size;
  char pm[64];
  /* Unlabelled inputs are i.i.d. draws: statistics fitted on them need no
   * disjointness from the labelled sets. */
  t->map[HCL_STREAM_UNLABELLED] = (rhm_stream_map){RHM_MODE_DRAW, 0, 0};
  t->map[HCL_STREAM_VAL] = (rhm_stream_map){RHM_MODE_DRAW, 0, V};
  rhm_u128_text(g->p_max, pm, sizeof pm);
  if (!g->index_mode) {
    t->map[HCL_STREAM_TRAIN] = (rhm_stream_map){RHM_MODE_DRAW, 0, P};
    t->map[HCL_STREAM_TEST] = (rhm_stream_map){RHM_MODE_DRAW, 0, T};
    t->map[HCL_STREAM_PROBE] = (rhm_stream_map){RHM_MODE_DRAW, 0, 0};
    hcl_host->note(ctx, "rhm.sampling",
                   "with replacement: P_max >= 2^63, every stream draws label and rule choices "
                   "i.i.d. uniform (train, test and probe may overlap with negligible probability)",
                   0);
    if (ctx)
      hcl_host->log(ctx, HCL_LOG_INFO,
                    "rhm: P_max = %s%s >= 2^63: train and test data are drawn with replacement", pm,
                    g->p_max_sat ? " (at least)" : "");
    return HCL_OK;
  }
  uint64_t pmax = (uint64_t)g->p_max;
  if ((rhm_u128)P + T + V > g->p_max)
    return hcl_report_fail(
        t->rep, HCL_ERR_PARAM,
        "train_size + test_size + val_size = %llu + %llu + %llu = %llu exceeds P_max = "
        "n_c*m^((s^L-1)/(s-1)) = %llu*%llu^%llu = %s distinct data (bound "
        "train_size + test_size + val_size <= P_max)",
        (unsigned long long)P, (unsigned long long)T, (unsigned long long)V,
        (unsigned long long)(P + T + V), (unsigned long long)g->n_c, (unsigned long long)g->m,
        (unsigned long long)g->n_dig, pm);
  if (!P && T >= pmax)
    return hcl_report_fail(t->rep, HCL_ERR_PARAM,
                           "online training (train_size = 0) with test_size = %llu leaves no data: "
                           "P_max = %s (bound test_size < P_max)",
                           (unsigned long long)T, pm);
  /* Validation takes its own V permuted indices, disjoint from train and test,
   * placed so that train and test are the same with or without it (except
   * online training, whose train range starts after test and validation). */
  if (!P && V >= pmax - T)
    return hcl_report_fail(t->rep, HCL_ERR_PARAM,
                           "online training (train_size = 0) with test_size + val_size = %llu + "
                           "%llu leaves no data: P_max = %s",
                           (unsigned long long)T, (unsigned long long)V, pm);
  t->map[HCL_STREAM_TRAIN] = P ? (rhm_stream_map){RHM_MODE_INDEX, 0, P}
                               : (rhm_stream_map){RHM_MODE_INDEX, T + V, pmax - T - V};
  if (T)
    t->map[HCL_STREAM_TEST] = (rhm_stream_map){RHM_MODE_INDEX, P, T};
  else if (pmax > P + V)
    t->map[HCL_STREAM_TEST] = (rhm_stream_map){RHM_MODE_INDEX, P, pmax - P - V};
  else
    t->map[HCL_STREAM_TEST] = (rhm_stream_map){RHM_MODE_DRAW, 0, 0};
  if (V) t->map[HCL_STREAM_VAL] = (rhm_stream_map){RHM_MODE_INDEX, T || !P ? P + T : pmax - V, V};
  uint64_t q = pmax - P - T - V, need = 2 * (t->probe_samples ? t->probe_samples : 1);
  if (P && q >= need)
    t->map[HCL_STREAM_PROBE] = (rhm_stream_map){RHM_MODE_INDEX, P + T + V, q};
  else
    t->map[HCL_STREAM_PROBE] = (rhm_stream_map){RHM_MODE_DRAW, 0, 0};
  hcl_host->note(ctx, "rhm.sampling",
                 P ? "without replacement: keyed Feistel bijection perm of [0, P_max); train i = "
                     "datum(perm(i mod P)), test i = datum(perm(P + i mod T))"
                   : "without replacement: keyed Feistel bijection perm of [0, P_max); online "
                     "train i = datum(perm(T + i mod (P_max - T))), test i = datum(perm(i mod T))",
                 0);
  hcl_host->note(ctx, "rhm.probe_stream",
                 t->map[HCL_STREAM_PROBE].mode == RHM_MODE_INDEX
                     ? "fresh: probe i = datum(perm(P + T + V + i mod (P_max - P - T - V)))"
                     : "with replacement (no 2*probe_samples unused indices beyond P + T, or "
                       "online training)",
                 0);
  return HCL_OK;
}

/* Rule tables of replica 0 as JSON (small grammars only). */
static void note_rules(rhm_target *t) {
  const rhm_dims *g = &t->g;
  if (g->table_size > 4096) return;
  size_t cap = 64 + g->table_size * 12;
  char *s = malloc(cap);
  if (!s) return;
  size_t u = (size_t)snprintf(s, cap, "[");
  for (uint64_t lv = 0; lv < g->L; lv++) {
    const uint32_t *tab = t->tables + rhm_table_offset(g, lv);
    u += (size_t)snprintf(s + u, cap - u, "%s[", lv ? "," : "");
    for (uint64_t p = 0; p < rhm_parents(g, lv); p++) {
      u += (size_t)snprintf(s + u, cap - u, "%s[", p ? "," : "");
      for (uint64_t j = 0; j < g->m; j++) {
        u += (size_t)snprintf(s + u, cap - u, "%s[", j ? "," : "");
        for (uint64_t a = 0; a < g->s; a++)
          u += (size_t)snprintf(s + u, cap - u, "%s%u", a ? "," : "",
                                tab[(p * g->m + j) * g->s + a]);
        u += (size_t)snprintf(s + u, cap - u, "]");
      }
      u += (size_t)snprintf(s + u, cap - u, "]");
    }
    u += (size_t)snprintf(s + u, cap - u, "]");
  }
  snprintf(s + u, cap - u, "]");
  hcl_host->note(t->ctx, "rhm.rules_replica0", s, 1);
  free(s);
}

static hcl_status configure(rhm_target *t, const hcl_params *p) {
  int64_t n_c = hcl_host->param_int(p, "n_c"), v = hcl_host->param_int(p, "v");
  int64_t m = hcl_host->param_int(p, "m"), s = hcl_host->param_int(p, "s");
  int64_t L = hcl_host->param_int(p, "l"), ps = hcl_host->param_int(p, "probe_samples");
  t->rules_kind = HCL_ENUM(p, "rules", k_rules);
  t->whitening = HCL_ENUM(p, "whitening", k_whitening);
  if (n_c < 1 || v < 1 || m < 1 || s < 1 || L < 1 || ps < 0 || t->rules_kind < 0 ||
      t->whitening < 0)
    return hcl_report_fail(t->rep, HCL_ERR_PARAM,
                           "n_c = %lld, v = %lld, m = %lld, s = %lld, L = %lld, probe_samples = "
                           "%lld, rules or whitening out of range",
                           (long long)n_c, (long long)v, (long long)m, (long long)s, (long long)L,
                           (long long)ps);
  char why[512];
  if (rhm_dims_init(&t->g, (uint64_t)n_c, (uint64_t)v, (uint64_t)m, (uint64_t)s, (uint64_t)L, why,
                    sizeof why))
    return hcl_report_fail(t->rep, HCL_ERR_PARAM, "%s", why);
  t->probe_samples = (uint64_t)ps;
  HCL_TRY(read_list(t, p, "sensitivity_layers", 64, t->layers, &t->n_layers));
  HCL_TRY(read_list(t, p, "sensitivity_levels", t->g.L, t->levels, &t->n_levels));
  if (!t->n_layers) {
    t->layers_default = 1;
    t->n_layers = (size_t)t->g.L;
    for (size_t k = 0; k < t->n_layers; k++) t->layers[k] = (uint32_t)(k + 1);
  }
  if (!t->n_levels) {
    t->n_levels = (size_t)t->g.L;
    for (size_t k = 0; k < t->n_levels; k++) t->levels[k] = (uint32_t)(k + 1);
  }
  rhm_whiten_values(t->whitening, t->g.v, &t->x_on, &t->x_off);
  return plan_streams(t);
}

static void describe(rhm_target *t) {
  const rhm_dims *g = &t->g;
  char pm[64], buf[512];
  rhm_u128_text(g->p_max, pm, sizeof pm);
  snprintf(buf, sizeof buf,
           "{\"n_c\":%llu,\"v\":%llu,\"m\":%llu,\"s\":%llu,\"L\":%llu,\"d\":%llu,\"rules\":\"%s\","
           "\"whitening\":\"%s\",\"p_max\":\"%s%s\"}",
           (unsigned long long)g->n_c, (unsigned long long)g->v, (unsigned long long)g->m,
           (unsigned long long)g->s, (unsigned long long)g->L, (unsigned long long)g->d,
           k_rules[t->rules_kind], k_whitening[t->whitening], g->p_max_sat ? ">=" : "", pm);
  hcl_host->note(t->ctx, "rhm.grammar", buf, 1);
  hcl_host->note(
      t->ctx, "rhm.rng",
      "runtime streams (kernels/common.cl), ids 0x52484D<purpose><sub>: rules of depth "
      "t = (seed, 0x52484D00_00000000|t) on the host; Feistel round k on half r = word 0 "
      "of block (k<<32|r) of (seed, 0x52484D01_00000000); with-replacement data of "
      "stream s = (seed, 0x52484D02_00000000|s); probe synonym re-draws of level l = "
      "(seed, 0x52484D03_00000000|l); layout in targets/rhm/rhm.cl",
      0);
  note_rules(t);
  hcl_host->log(t->ctx, HCL_LOG_INFO,
                "rhm: n_c = %llu, v = %llu, m = %llu, s = %llu, L = %llu, d = %llu, P_max = %s%s, "
                "rules %s, whitening %s",
                (unsigned long long)g->n_c, (unsigned long long)g->v, (unsigned long long)g->m,
                (unsigned long long)g->s, (unsigned long long)g->L, (unsigned long long)g->d,
                g->p_max_sat ? ">= " : "", pm, k_rules[t->rules_kind], k_whitening[t->whitening]);
}

static hcl_status rhm_create(hcl_ctx *ctx, const hcl_setup *setup, void **self) {
  *self = NULL;
  if (!setup->replicas || !setup->seeds)
    return hcl_host->fail(ctx, HCL_ERR_PARAM, "no replicas/seeds in the setup");
  rhm_target *t = calloc(1, sizeof *t);
  if (!t) return hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  t->ctx = ctx;
  hcl_report rep = {.host = hcl_host, .ctx = ctx};
  t->rep = &rep;
  t->R = setup->replicas;
  t->train_size = setup->train_size;
  t->test_size = HCL_STRUCT_HAS(setup, hcl_setup, test_size) ? setup->test_size : 0;
  t->val_size = HCL_STRUCT_HAS(setup, hcl_setup, val_size) ? setup->val_size : 0;
  t->max_batch = setup->max_batch ? setup->max_batch : 1;
  t->seeds = malloc(t->R * sizeof *t->seeds);
  hcl_status rc = t->seeds ? HCL_OK : hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory");
  if (rc == HCL_OK) {
    memcpy(t->seeds, setup->seeds, t->R * sizeof *t->seeds);
    rc = configure(t, setup->params);
  }
  if (rc == HCL_OK && HCL_HOST_HAS(host_mem_check)) {
    /* replicas x (n_c + (l-1) v) m s rule entries: refused, not swapped to death */
    char what[160];
    snprintf(what, sizeof what,
             "rhm: rule tables of %zu replicas x %zu entries ([target] l, v, m, s)", t->R,
             t->g.table_size);
    rc = hcl_host->host_mem_check(ctx, t->R * t->g.table_size * sizeof *t->tables, what);
  }
  if (rc == HCL_OK) {
    t->tables = malloc(t->R * t->g.table_size * sizeof *t->tables);
    if (!t->tables) rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory (rules)");
    int can_stop = HCL_HOST_HAS(should_stop);
    for (size_t r = 0; r < t->R && rc == HCL_OK; r++) {
      if (r && can_stop && hcl_host->should_stop(ctx)) /* large tables: seconds per replica */
        rc = hcl_host->fail(ctx, HCL_ERR_INTERRUPTED,
                            "interrupted while drawing the rules (replica %zu of %zu)", r, t->R);
      else if (rhm_rules_build(&t->g, t->rules_kind, hcl_host->philox, t->seeds[r],
                               t->tables + r * t->g.table_size))
        rc = hcl_host->fail(ctx, HCL_ERR_NOMEM, "out of host memory (rules)");
    }
  }
  if (rc == HCL_OK) {
    describe(t);
    rc = rhm_device_init(t);
  }
  if (rc != HCL_OK) {
    rhm_destroy(t);
    return rc;
  }
  *self = t;
  return HCL_OK;
}

/* x is one-hot [v, d] channels first, y the class index: classification. */
static hcl_status rhm_info(void *self, hcl_target_info *out) {
  rhm_target *t = self;
  hcl_target_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = (uint32_t)sizeof info;
  info.x.rank = 2;
  info.x.dims[0] = (size_t)t->g.v;
  info.x.dims[1] = (size_t)t->g.d;
  info.y_dim = 1;
  info.task = HCL_TASK_CLASSES;
  info.n_classes = (size_t)t->g.n_c;
  return hcl_target_info_put(out, &info);
}

/* The parameters against the run's sizes, without a device: configure()
 * without the rule tables (the grammar's dimensions and P_max only). */
static hcl_status rhm_check(const hcl_params *p, const hcl_check_info *run, hcl_target_info *info,
                            char *err, size_t errlen) {
  rhm_target *t = calloc(1, sizeof *t);
  if (!t) return snprintf(err, errlen, "out of host memory"), HCL_ERR_NOMEM;
  hcl_report rep = {.err = err, .errlen = errlen};
  t->rep = &rep;
  t->train_size = run->train_size;
  t->test_size = run->test_size;
  t->val_size = run->val_size;
  hcl_status rc = configure(t, p);
  if (rc == HCL_OK) rc = rhm_info(t, info);
  free(t);
  return rc;
}

static const hcl_target_vt k_vt = {
    .struct_size = sizeof(hcl_target_vt),
    .create = rhm_create,
    .destroy = rhm_destroy,
    .info = rhm_info,
    .sample = rhm_sample,
    .probe = rhm_probe,
    .eval = NULL,
    .check = rhm_check,
};

static const hcl_plugin_desc k_desc = {
    HCL_DESC_HEAD(HCL_PLUGIN_TARGET),
    .name = "rhm",
    .version = "1.0.0",
    .summary = "Random Hierarchy Model: n_c classes expanded through L levels of random "
               "unambiguous rules (m synonymous s-tuples per symbol over a vocabulary of v) into "
               "one-hot inputs [v, s^L]; train/test drawn without replacement by a keyed "
               "bijection of the P_max data; synonymic-sensitivity probe",
    .citation = "F. Cagnetta, L. Petrini, U. M. Tomasini, A. Favero, M. Wyart, \"How deep neural "
                "networks learn compositional data: the Random Hierarchy Model\", Phys. Rev. X 14, "
                "031001 (2024), arXiv:2307.02129 (code: github pcsl-epfl/hierarchy-learning); "
                "rules = ren: Y. Ren, Y. Dandi, F. Krzakala, J. D. Lee, \"Provable learning of "
                "Random Hierarchy Models and hierarchical shallow-to-deep chaining\", COLT 2026, "
                "arXiv:2601.19756",
    .params = k_params,
    .vt = &k_vt,
};

HCL_PLUGIN_DEFINE(rhm, k_desc)
