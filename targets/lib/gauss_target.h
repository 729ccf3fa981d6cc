/* Shared code of the Gaussian/sphere-input targets single_index,
 * quadratic_features and low_rank_poly (SPEC 1.3-1.5). Each plugin compiles
 * the sources of this folder into itself (listed by relative path in its
 * CMakeLists.txt); nothing here is exported.
 *
 * Sample layout common to the three (the plugin's stream tag TAG in bits
 * 40..63 of every stream id, purpose p in bits 32..39, index q below):
 *   inputs:  (seed, TAG | 0 << 32 | s), s = 0 train, 1 test, 2 probe:
 *            coordinate j of sample i = element i*w + j, w = 4*ceil(d/4),
 *            N(0, 1) as kernels/common.cl draws it (hcl_rng_draw, a = 0, b = 1);
 *            inputs = sphere: the d draws z scaled by sqrt(d) * rsqrt(sum z_j^2)
 *            (sum in order j = 0..d-1, rsqrt by three Newton steps, see gt_math.cl);
 *   noise:   (seed, TAG | 1 << 32 | s): element i, N(0, 1), times `noise`;
 *   params:  (seed, TAG | 2 << 32 | q): the target's random parameters (beta,
 *            G, ...), drawn on the host (gt_normal_host) and uploaded.
 * Train index i is i mod train_size when train_size > 0. */
#ifndef HCL_GAUSS_TARGET_H
#define HCL_GAUSS_TARGET_H

#include "hiercl/plugin.h"

#include <stddef.h>
#include <stdint.h>

/* ---- streams ------------------------------------------------------------- */
enum { GT_PURPOSE_X = 0, GT_PURPOSE_NOISE = 1, GT_PURPOSE_PARAM = 2 };

/* Stream id TAG | purpose << 32 | q (tag already shifted to bits 40..63). */
static inline uint64_t gt_stream_id(uint64_t tag, unsigned purpose, uint64_t q) {
  return tag | ((uint64_t)(purpose & 0xffu) << 32) | (q & 0xffffffffu);
}

/* ---- host random draws (gt_rng_host.c) ------------------------------------ */
/* Element i of stream (seed, stream), N(0, 1): the bits kernels/common.cl's
 * hcl_rng_draw(HCL_RNG_NORMAL, 0, 1, ...) gives on a device. */
float gt_normal_host(uint64_t seed, uint64_t stream, uint64_t i);
/* out[0..d) = z / |z| in double, z = elements first..first+d-1 of the
 * stream (a uniform direction). 0, or -1 when z = 0. */
int gt_unit_vector(uint64_t seed, uint64_t stream, uint64_t first, size_t d, double *out);
/* Orthonormalise the k rows of v [k, d] in place (Gram-Schmidt, twice). 0,
 * or -1 when a row is (numerically) in the span of the previous ones. */
int gt_orthonormalize(double *v, size_t k, size_t d);

/* ---- link functions (gt_link.c, device side in gt_math.cl) ---------------- */
#define GT_MAX_COEF 16 /* poly links: degree <= 15 */
enum { GT_LINK_POLY = 0, GT_LINK_RELU = 1, GT_LINK_TANH = 2, GT_LINK_IDENTITY = 3 };
enum { GT_IN_GAUSSIAN = 0, GT_IN_SPHERE = 1 };

/* "he1", "he2", "he3", "he4", "relu", "tanh", "poly" (NULL-terminated). */
extern const char *const gt_link_choices[];
/* "monomial", "hermite". */
extern const char *const gt_basis_choices[];
/* "gaussian", "sphere". */
extern const char *const gt_input_choices[];

typedef struct gt_link {
  int menu;      /* index into gt_link_choices; -1: identity (no link) */
  int kind;      /* GT_LINK_* as the device evaluates it */
  size_t n_coef; /* POLY: c_0..c_{n_coef-1}, monomial basis */
  double coef[GT_MAX_COEF];
  float coef_f[GT_MAX_COEF]; /* what the device uses */
} gt_link;

/* Read `link`, `coefficients`, `poly_basis` of a plugin section into out,
 * checking them (poly needs coefficients, at most GT_MAX_COEF). */
hcl_status gt_link_read(const hcl_report *r, const char *who, const hcl_params *p, gt_link *out);
/* The identity link (targets without one). */
void gt_link_identity(gt_link *out);
/* Monomial coefficients of He_k / sqrt(k!) into c[0..k] (k < GT_MAX_COEF). */
void gt_hermite_coef(unsigned k, double *c);
/* g(z) in float, bit for bit as the device computes it. */
float gt_link_f32(const gt_link *l, float z);
/* g(z) in double (the mathematical link; tanh from libm). */
double gt_link_f64(const gt_link *l, double z);
/* Human-readable "g(z) = ..." for notes and logs. */
void gt_link_text(const gt_link *l, char *buf, size_t len);
/* Host mirrors of gt_math.cl, bit for bit (for tests and host setup). */
float gt_tanh_f32(float z);
float gt_sphere_scale_f32(float sum_sq, float sqrt_d);

/* ---- the state every one of the three targets has (gt_common.c) ----------- */
typedef struct gt_target {
  hcl_ctx *ctx;
  const char *name; /* plugin name, first word of every message */
  uint64_t tag;     /* stream tag in bits 40..63 */
  size_t R, d, max_batch;
  uint64_t *seeds;     /* [R] */
  uint64_t train_size; /* 0: fresh samples */
  int inputs;          /* GT_IN_* */
  double noise;
  gt_link link;
  /* device (gt_device.c) */
  cl_program prog;
  cl_kernel k_draw, k_sample, k_eval;
  hcl_buf d_seeds;                       /* ulong [R] */
  hcl_buf d_coef;                        /* float [GT_MAX_COEF]: the link polynomial */
  char label_sample[64], label_eval[64]; /* kernel names in profiles */
} gt_target;

/* Copy the setup (replicas, seeds, sizes) and read `d`, `inputs`, `noise`
 * and, when has_link, the link keys. d < min_d fails naming min_d. */
hcl_status gt_target_init(gt_target *t, hcl_ctx *ctx, const hcl_setup *setup, const char *name,
                          uint64_t tag, int has_link, size_t min_d);
/* The keys every Gaussian target has (d, inputs, noise, the link when
 * has_link), into t (t->name set); reports through r (create or check). */
hcl_status gt_target_read(gt_target *t, const hcl_report *r, const hcl_params *p, int has_link,
                          size_t min_d);
/* For a target's check(): gt_target_read into a scratch t (no device, no
 * seeds) and the info create() would give. */
hcl_status gt_check(gt_target *t, const char *name, const hcl_params *p, int has_link, size_t min_d,
                    const hcl_report *r, hcl_target_info *info);
/* Release what gt_target_init and gt_device_init made (not t itself). */
void gt_target_release(gt_target *t);
/* HCL_OK when `bytes` (a double, so that no product wraps) of host memory
 * can be had now (host->host_mem_check, when the runtime offers it); else
 * HCL_ERR_NOMEM saying `what` (the plugin and its keys) needs them. */
hcl_status gt_host_room(const gt_target *t, double bytes, const char *what);

/* x rank 1 [d], y_dim 1, regression; writes only what out's size covers. */
hcl_status gt_target_info(const gt_target *t, hcl_target_info *out);
/* Note a per-replica array of numbers as JSON under "<name>.<key>". */
void gt_note_replicas(const gt_target *t, const char *key, const double *v);
/* Note a string (is_json 0) or JSON literal under "<name>.<key>". */
void gt_note(const gt_target *t, const char *key, const char *value, int is_json);
/* Note the common description: inputs, link, noise, the stream layout. */
void gt_note_common(const gt_target *t);

/* ---- device side (gt_device.c) ------------------------------------------ */
/* Upload seeds and link, build gt_math.cl + gt_draw.cl + plugin_src (the
 * plugin's kernels) and fetch the two kernels. */
hcl_status gt_device_init(gt_target *t, const char *plugin_src, const char *sample_kernel,
                          const char *eval_kernel);
/* Upload n floats to a fresh buffer. */
hcl_status gt_upload(gt_target *t, const float *v, size_t n, hcl_buf *out);
/* Draw x (host->rng, or gt_k_draw_x when d is not a multiple of 4), then
 * run the sample kernel: arguments (x, xo, y,
 * yo, seeds, count, d, first, wrap, sid_x, sid_noise, sphere, sqrt_d, noise,
 * link_kind, n_coef, coef) followed by the plugin's extra arguments; work
 * items (count, R). The kernel finds x drawn (gt_sphere_x scales it). */
hcl_status gt_device_sample(gt_target *t, uint32_t stream, uint64_t first, size_t n, hcl_buf x,
                            hcl_buf y, size_t n_extra, const hcl_arg *extra);
/* Run the eval kernel: arguments (x, xo, out, oo, count, d, what, link_kind,
 * n_coef, coef) followed by the extras; work items (count, R). */
hcl_status gt_device_eval(gt_target *t, cl_uint what, hcl_buf x, size_t n, hcl_buf out,
                          size_t n_extra, const hcl_arg *extra);
/* "hstar" -> 0, "f" -> 1; else fails HCL_ERR_UNSUPPORTED naming both. */
hcl_status gt_eval_what(const gt_target *t, const char *what, cl_uint *out);

/* The parameter declarations every one of the three has. */
/* clang-format off */
#define GT_PARAM_D(def) HCL_P_INT("d", def, 1, 1048576, "input dimension d (x in R^d)")
#define GT_PARAM_INPUTS(def) \
  HCL_P_ENUM("inputs", def, gt_input_choices, \
    "input law: gaussian x ~ N(0, I_d); sphere x uniform on the sphere of radius sqrt(d) " \
    "(a Gaussian vector scaled to that radius)")
#define GT_PARAM_NOISE \
  HCL_P_DOUBLE("noise", "0", 0, 1e6, \
    "label noise: y = f(x) + noise * N(0, 1), independent per sample")
#define GT_PARAM_LINK(what) \
  HCL_P_ENUM("link", "relu", gt_link_choices, \
    "link g applied to " what ": he1..he4 = normalised Hermite polynomials He_k(z)/sqrt(k!) " \
    "(orthonormal under N(0, 1)); relu = max(0, z); tanh; poly = the polynomial given by " \
    "`coefficients`. Every link is computed with + - * only (tanh by range reduction, " \
    "polynomials and Newton steps), so labels are the same bits on every device")
#define GT_PARAM_COEFFICIENTS \
  HCL_P_LIST("coefficients", "", 1, 0, \
    "poly link (required there): coefficients c_0, c_1, ..., c_K, K <= 15, c_0 first, in the " \
    "basis chosen by poly_basis")
#define GT_PARAM_POLY_BASIS \
  HCL_P_ENUM("poly_basis", "monomial", gt_basis_choices, \
    "poly link: monomial g(z) = sum_k c_k z^k; hermite g(z) = sum_k c_k He_k(z)/sqrt(k!) " \
    "(then E g = c_0 and Var g = sum_{k>=1} c_k^2 for z ~ N(0, 1))")
/* clang-format on */

#endif
