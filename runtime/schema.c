/* Core config keys, so that every experiment reads alike (the [target] and
 * [model] sections add the keys their plugins declare). */
#include "schema.h"

#define UNB 1, 0 /* lo > hi: unbounded */

static const char *const sched_choices[] = {"constant", "step", "piecewise", "cosine", NULL};
static const char *const loss_choices[] = {"auto",     "mse",   "cross_entropy",
                                           "logistic", "hinge", NULL};
static const char *const opt_choices[] = {"sgd", "adam", NULL};
static const char *const cache_choices[] = {"auto", "on", "off", NULL};

const char *const hcl_config_sections[] = {"run",  "runtime", "target", "model", "train",
                                           "eval", "sweep",   "select", NULL};

const hcl_param_desc hcl_schema_run[] = {
    {"name", HCL_PARAM_STRING, "", UNB, NULL, "name of the run (default: the config file's stem)"},
    {"seed", HCL_PARAM_INT, "0", 0, 4294967295.0, NULL,
     "seed of replica 0; replica r uses seed + r"},
    {"replicas", HCL_PARAM_INT, "1", 1, HCL_MAX_REPLICAS, NULL,
     "independent runs (seeds) trained together in one pass"},
    {"seeds", HCL_PARAM_LIST, "", 0, 4294967295.0, NULL,
     "explicit seeds, one per replica, at most 4096 (overrides seed and replicas)"},
    {"out", HCL_PARAM_STRING, "runs", UNB, NULL, "folder that receives the run directory"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

const hcl_param_desc hcl_schema_runtime[] = {
    {"device", HCL_PARAM_STRING, "", UNB, NULL,
     "device selector: index, id (pocl:cpu:0), gpu, cpu, accel or a name substring"},
    {"kernel_cache", HCL_PARAM_ENUM, "auto", UNB, cache_choices,
     "on-disk program cache; auto skips drivers that cache themselves (PoCL, NVIDIA)"},
    {"binary_dir", HCL_PARAM_STRING, "", UNB, NULL,
     "prebuilt program binaries for devices without a compiler (FPGA boards)"},
    {"profile", HCL_PARAM_BOOL, "false", UNB, NULL, "time every kernel on the device (slower)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

const hcl_param_desc hcl_schema_train[] = {
    {"steps", HCL_PARAM_INT, "1000", 0, 1e15, NULL, "optimizer steps"},
    {"batch", HCL_PARAM_INT, "20", 0, 1e7, NULL,
     "samples per step; 0 = the whole training set (full-batch gradient descent)"},
    {"lr", HCL_PARAM_DOUBLE, "0.01", 0, 1e6, NULL, "learning rate"},
    {"schedule", HCL_PARAM_ENUM, "constant", UNB, sched_choices, "learning-rate schedule"},
    {"lr_every", HCL_PARAM_INT, "0", 0, 1e15, NULL, "step/piecewise: steps per interval"},
    {"lr_factor", HCL_PARAM_DOUBLE, "0.5", 0, 1e6, NULL,
     "step: factor applied every lr_every steps"},
    {"lr_factors", HCL_PARAM_LIST, "", 0, 1e6, NULL, "piecewise: factor of each interval"},
    {"lr_min", HCL_PARAM_DOUBLE, "0", 0, 1e6, NULL, "cosine: final learning rate"},
    {"loss", HCL_PARAM_ENUM, "auto", UNB, loss_choices,
     "auto: mse for regression, cross_entropy for classes, logistic for +-1 labels"},
    {"optimizer", HCL_PARAM_ENUM, "sgd", UNB, opt_choices, "optimizer"},
    {"momentum", HCL_PARAM_DOUBLE, "0", 0, 1, NULL, "sgd momentum"},
    {"nesterov", HCL_PARAM_BOOL, "false", UNB, NULL, "sgd: Nesterov momentum"},
    {"weight_decay", HCL_PARAM_DOUBLE, "0", 0, 1e6, NULL, "l2 weight decay added to the gradient"},
    {"beta1", HCL_PARAM_DOUBLE, "0.9", 0, 1, NULL, "adam beta1"},
    {"beta2", HCL_PARAM_DOUBLE, "0.999", 0, 1, NULL, "adam beta2"},
    {"eps", HCL_PARAM_DOUBLE, "1e-8", 0, 1, NULL, "adam epsilon"},
    {"train_size", HCL_PARAM_INT, "0", 0, 1e15, NULL,
     "P: training set of the first P samples, cycled in order; 0 = fresh samples every step"},
    {"train_sizes", HCL_PARAM_LIST, "", 1, 1e15, NULL,
     "one training-set size per replica (a sample-complexity curve in one pass); "
     "overrides train_size"},
    {"lrs", HCL_PARAM_LIST, "", 0, 1e6, NULL,
     "one learning rate per replica (a learning-rate grid in one pass); the schedule's "
     "factors apply to each"},
    {"algorithm", HCL_PARAM_STRING, "sgd", UNB, NULL,
     "training algorithm: sgd, or one the model offers (hiercl describe MODEL)"},
    {"stop_loss", HCL_PARAM_DOUBLE, "0", 0, 1e30, NULL,
     "> 0: stop once every replica's training loss is below (checked at evaluations)"},
    {"stop_error", HCL_PARAM_DOUBLE, "0", 0, 1e30, NULL,
     "> 0: stop once every replica's test error is below (checked at evaluations)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

const hcl_param_desc hcl_schema_eval[] = {
    {"every", HCL_PARAM_STRING, "1000", UNB, NULL,
     "N: evaluate every N steps (0: start and end only); log:N: about N evaluations evenly "
     "spaced in log(step), at step 0 and the distinct steps round(steps^(k/(N-1))), "
     "k = 0..N-1 (so step 1 and the last step), for learning curves on a log axis"},
    {"test_size", HCL_PARAM_INT, "10000", 0, 1e12, NULL,
     "test samples (a stream disjoint from training)"},
    {"val_size", HCL_PARAM_INT, "0", 0, 1e12, NULL,
     "validation samples (a third stream, disjoint from training and test): their loss is "
     "val_loss in metrics.jsonl and summary.json; 0 = off"},
    {"batch", HCL_PARAM_INT, "0", 0, 1e7, NULL,
     "samples per evaluation chunk (0: automatic, 32768 / replicas, at least 256)"},
    {"probes", HCL_PARAM_BOOL, "true", UNB, NULL, "run the target's and model's probes"},
    {"train_set", HCL_PARAM_BOOL, "false", UNB, NULL,
     "also evaluate the whole finite training set at the current parameters: train_set_loss "
     "and (classification) train_set_error; train_loss is instead the mean over the interval's "
     "mini-batches. Needs one train_size for every replica"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
