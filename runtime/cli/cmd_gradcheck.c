/* hiercl gradcheck CONFIG: the configured model's backward() against finite
 * differences of its forward(), one line per parameter block. */
#include "commands.h"
#include "hiercl/hiercl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char gradcheck_usage[] =
    "usage: hiercl gradcheck CONFIG [--samples N] [--replicas R] [--coords K] [--tol T]\n"
    "                        [--device SEL] [--set section.key=value]... [--plugin-path DIRS]\n"
    "Compares the model's gradient of every parameter block with central finite\n"
    "differences (float64 sums) on N test inputs (default 4) in R >= 2 replicas\n"
    "(default 2), K evenly spaced coordinates per block (default 16; all of a\n"
    "smaller block), a fixed random dout. Prints the largest relative error per\n"
    "block; exits 1 when one is above T (default 0.05), naming the block. A\n"
    "coordinate that disagrees is tried with up to 3 smaller steps (a step across a\n"
    "ReLU kink misses) and its best agreement counts.\n";

/* A whole positive number of argument `a` into *out; 0 when malformed. */
static int parse_count(const char *text, unsigned long long max, unsigned long long *out) {
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (!*text || *end || text[0] == '-' || v == 0 || v > max) return 0;
  *out = v;
  return 1;
}

int hcl_cmd_gradcheck(int argc, char **argv) {
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  if (!sets) {
    fprintf(stderr, "hiercl gradcheck: out of memory\n");
    return HCL_EXIT_FAIL;
  }
  hcl_gradcheck_options opt = {0};
  double tol = 0.05;
  size_t n_sets = 0;
  int code = -1;
  for (int i = 1; code < 0 && i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    unsigned long long v = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(gradcheck_usage, stdout);
      code = HCL_EXIT_OK;
    } else if (!strcmp(a, "--samples") && has) {
      if (!parse_count(argv[++i], 1u << 20, &v)) {
        fprintf(stderr, "hiercl gradcheck: --samples takes a whole number >= 1\n");
        code = HCL_EXIT_USAGE;
      }
      opt.samples = (size_t)v;
    } else if (!strcmp(a, "--replicas") && has) {
      if (!parse_count(argv[++i], 4096, &v) || v < 2) {
        fprintf(stderr, "hiercl gradcheck: --replicas takes a whole number from 2 to 4096\n");
        code = HCL_EXIT_USAGE;
      }
      opt.replicas = (uint32_t)v;
    } else if (!strcmp(a, "--coords") && has) {
      if (!parse_count(argv[++i], 1u << 20, &v)) {
        fprintf(stderr, "hiercl gradcheck: --coords takes a whole number >= 1\n");
        code = HCL_EXIT_USAGE;
      }
      opt.coords = (size_t)v;
    } else if (!strcmp(a, "--tol") && has) {
      char *end;
      const char *t = argv[++i];
      tol = strtod(t, &end);
      if (!*t || *end || !(tol > 0) || !isfinite(tol)) {
        fprintf(stderr, "hiercl gradcheck: --tol takes a positive number\n");
        code = HCL_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--device") && has) {
      opt.run.device = argv[++i];
    } else if (!strcmp(a, "--plugin-path") && has) {
      opt.run.plugin_path = argv[++i];
    } else if (!strcmp(a, "--set") && has) {
      sets[n_sets++] = argv[++i];
    } else if (a[0] == '-' || opt.run.config_path) {
      fprintf(stderr, "hiercl gradcheck: unexpected argument '%s'\n%s", a, gradcheck_usage);
      code = HCL_EXIT_USAGE;
    } else {
      opt.run.config_path = a;
    }
  }
  if (code < 0 && !opt.run.config_path) {
    fprintf(stderr, "hiercl gradcheck: missing CONFIG\n%s", gradcheck_usage);
    code = HCL_EXIT_USAGE;
  }
  if (code >= 0) {
    free(sets);
    return code;
  }
  opt.run.sets = sets;
  opt.run.n_sets = n_sets;
  hcl_cli_catch_stop();
  opt.run.stop = hcl_cli_stop_flag();
  char err[8192], model[128];
  hcl_gradcheck_block *b = NULL;
  size_t nb = 0;
  hcl_status rc = hcl_gradcheck(&opt, &b, &nb, model, sizeof model, err, sizeof err);
  free(sets);
  if (rc != HCL_OK) {
    fprintf(stderr, "hiercl: error: %s\n", err);
    return hcl_cli_exit_code(rc);
  }
  printf("%-28s %12s %8s %12s %12s\n", "block", "shape", "checked", "max|grad|", "max rel err");
  const hcl_gradcheck_block *worst = NULL;
  for (size_t i = 0; i < nb; i++) {
    char shape[48];
    snprintf(shape, sizeof shape, "%zux%zu", b[i].rows, b[i].cols);
    if (!b[i].trainable) {
      printf("%-28s %12s %8s %12s %12s\n", b[i].name, shape, "-", "-", "frozen");
      continue;
    }
    printf("%-28s %12s %8zu %12.3e %12.3e\n", b[i].name, shape, b[i].checked, b[i].max_grad,
           b[i].max_rel);
    if (!(b[i].max_rel <= tol) && (!worst || !(b[i].max_rel <= worst->max_rel))) worst = &b[i];
  }
  int status = HCL_EXIT_OK;
  if (worst) {
    char why[160] = "";
    if (isfinite(worst->ratio))
      snprintf(why, sizeof why,
               " (it is %.4g times the finite differences at the coordinates checked: a "
               "constant factor such as a learning rate folded into backward?)",
               worst->ratio);
    fprintf(stderr,
            "hiercl: error: %s: [model] %s: block '%s': backward() differs from finite "
            "differences: max relative error %.3g > --tol %g%s\n",
            opt.run.config_path, model, worst->name, worst->max_rel, tol, why);
    status = HCL_EXIT_FAIL;
  } else {
    printf("gradcheck passed: %s, %zu blocks, max relative error <= %g\n", model, nb, tol);
  }
  free(b);
  return status;
}
