/* The benchmark suite: each reference experiment's model, data law, init,
 * optimiser and batch as in configs/, with evaluation off so only training
 * steps are timed. bench/torch/ holds the PyTorch twin of each case. */
#include "bench_suite.h"

#define EVAL_OFF "[eval]\nevery = 0\ntest_size = 256\nprobes = false\n"

static const char staircase[] =
    "[target]\nplugin = staircase\nn = 30\nk = 10\nfunction = staircase\n"
    "[model]\nplugin = resnet\nwidth = 40\ndepth = 5\nactivation = relu\n"
    "[train]\nbatch = 20\nlr = 0.01\nloss = mse\noptimizer = sgd\ntrain_size = 60000\n" EVAL_OFF;

static const char rhm_cnn[] = "[target]\nplugin = rhm\nn_c = 8\nv = 8\nm = 8\ns = 2\nl = 2\n"
                              "[model]\nplugin = deep_cnn\nwidth = 256\ns = 2\ndepth = 2\n"
                              "[train]\nbatch = 128\nlr = 0.1\ntrain_size = 2048\n" EVAL_OFF;

static const char rhm_fcn[] =
    "[target]\nplugin = rhm\nn_c = 8\nv = 8\nm = 8\ns = 2\nl = 2\n"
    "[model]\nplugin = regular_net\ndepth = 1\nactivation = relu\nwidth = 512\n"
    "[train]\nbatch = 128\nlr = 0.05\ntrain_size = 2048\n" EVAL_OFF;

static const char three_layer[] =
    "[target]\nplugin = single_index\nd = 16\nlink = relu\n"
    "[model]\nplugin = three_layer\nm1 = 512\nm2 = 512\nlambda = 1e-5\n"
    "[train]\nalgorithm = algorithm1\nsteps = 1\nbatch = 256\ntrain_size = 4000\nloss = "
    "mse\n" EVAL_OFF;

static const char taylor[] =
    "[target]\nplugin = low_rank_poly\nd = 16\nr = 1\np = 4\n"
    "[model]\nplugin = taylor\nwidth = 1024\norder = 2\nrepresentation = raw\n"
    "[train]\nalgorithm = gd\nbatch = 0\ntrain_size = 1024\nlr = 0.05\nloss = mse\n" EVAL_OFF;

static const char linear_teacher[] =
    "[target]\nplugin = linear_teacher\nd = 50\nmargin = 0.1\n"
    "[model]\nplugin = regular_net\ndepth = 1\nwidth = 40\nactivation = leaky_relu\n"
    "readout_fixed = pm_v\nreadout_bias = false\nbias = false\ninit = normal\ninit_scale = 0.01\n"
    "[train]\nloss = hinge\nbatch = 50\nlr = 0.05\ntrain_size = 500\n" EVAL_OFF;

static const hcl_bench_case suite[] = {
    {"staircase_resnet/r1", staircase, 1, 3000, 300, "step"},
    {"staircase_resnet/r10", staircase, 10, 3000, 300, "step"},
    {"staircase_resnet/r100", staircase, 100, 1000, 100, "step"},
    {"rhm_cnn/r1", rhm_cnn, 1, 1000, 100, "step"},
    {"rhm_cnn/r8", rhm_cnn, 8, 300, 30, "step"},
    {"rhm_fcn/r1", rhm_fcn, 1, 1000, 100, "step"},
    {"rhm_fcn/r8", rhm_fcn, 8, 300, 30, "step"},
    {"three_layer_algorithm1/r1", three_layer, 1, 0, 0, "run"},
    {"three_layer_algorithm1/r8", three_layer, 8, 0, 0, "run"},
    {"taylor_quadntk/r1", taylor, 1, 500, 50, "step"},
    {"taylor_quadntk/r8", taylor, 8, 200, 20, "step"},
    {"linear_teacher/r1", linear_teacher, 1, 3000, 300, "step"},
    {"linear_teacher/r100", linear_teacher, 100, 1000, 100, "step"},
};

const hcl_bench_case *hcl_bench_suite(size_t *n) {
  *n = sizeof suite / sizeof *suite;
  return suite;
}
