/* The function table handed to plugins (hcl_host_api in plugin.h). Plugins
 * reach the runtime only through it, so they never link libhiercl. */
#include "graph.h"
#include "internal.h"
#include "trainer.h"

static void api_log(hcl_ctx *ctx, hcl_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hcl_logv(ctx, level, fmt, ap);
  va_end(ap);
}

static hcl_status api_fail(hcl_ctx *ctx, hcl_status rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hcl_plugin_failv(ctx, rc, fmt, ap);
  va_end(ap);
  return rc;
}

static cl_context api_context(hcl_ctx *ctx) { return ctx->context; }
static void api_count_flops(hcl_ctx *ctx, double flops) {
  if (ctx && flops > 0) ctx->gemm_flops += flops;
}
static cl_device_id api_device(hcl_ctx *ctx) { return ctx->dev.device_id; }
static cl_command_queue api_queue(hcl_ctx *ctx) { return ctx->queue; }

static const hcl_host_api g_api = {
    .abi_version = HCL_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(hcl_host_api),
    .log = api_log,
    .fail = api_fail,
    .note = hcl_note_add,
    .param_int = hcl_param_int,
    .param_double = hcl_param_double,
    .param_bool = hcl_param_bool,
    .param_str = hcl_param_str,
    .param_list = hcl_param_list,
    .cl_context = api_context,
    .cl_device = api_device,
    .cl_queue = api_queue,
    .buf_alloc = hcl_buf_alloc,
    .buf_free = hcl_buf_free,
    .buf_write = hcl_buf_write,
    .buf_read = hcl_buf_read,
    .buf_copy = hcl_buf_copy,
    .program = hcl_program_build,
    .kernel = hcl_kernel_create,
    .run_kernel = hcl_run_kernel,
    .finish = hcl_finish,
    .sgemm = hcl_sgemm,
    .sgemm_batched = hcl_sgemm_batched,
    .bias_act = hcl_bias_act,
    .act_backward = hcl_act_backward,
    .col_sum = hcl_col_sum,
    .axpby = hcl_axpby,
    .fill = hcl_fill,
    .rng = hcl_rng_fill,
    .philox = hcl_philox4x32,
    .train_phase = hcl_trainer_phase,
    .train_batch = hcl_trainer_batch,
    .train_params = hcl_trainer_params,
    .train_eval = hcl_trainer_eval,
    .train_stop_requested = hcl_trainer_stop_requested,
    .probe_forward = hcl_probe_forward,
    .probe_emit = hcl_probe_emit,
    .probe_batch = hcl_probe_batch,
    .probe_params = hcl_probe_params,
    .probe_features = hcl_probe_features,
    .probe_target_eval = hcl_probe_target_eval,
    .probe_ctx = hcl_probe_ctx,
    .probe_replicas = hcl_probe_replicas,
    .solve_spd = hcl_solve_spd,
    .train_loss_grad = hcl_trainer_loss_grad,
    .train_steps = hcl_trainer_steps,
    .train_lr = hcl_trainer_lr,
    .train_batch_size = hcl_trainer_batch_size,
    .train_size = hcl_trainer_train_size,
    .train_label = hcl_trainer_label,
    .rng_draw = hcl_rng_host,
    .should_stop = hcl_should_stop,
    .host_mem_check = hcl_host_mem_check,
    .mem_check = hcl_mem_check,
    .g_input = hcl_g_input,
    .g_matmul = hcl_g_matmul,
    .g_bias = hcl_g_bias,
    .g_act = hcl_g_act,
    .g_add = hcl_g_add,
    .g_mul = hcl_g_mul,
    .g_reshape = hcl_g_reshape,
    .g_slice = hcl_g_slice,
    .g_mean = hcl_g_mean,
    .g_transpose = hcl_g_transpose,
    .g_custom = hcl_g_custom,
    .g_feature = hcl_g_feature,
    .g_output = hcl_g_output,
    .g_matmul_cols = hcl_g_matmul_cols,
    .train_forward = hcl_trainer_forward,
    .g_patch = hcl_g_patch,
    .g_matmul_scaled = hcl_g_matmul_scaled,
    .g_bias_scaled = hcl_g_bias_scaled,
    .g_detach = hcl_g_detach,
    .train_backward = hcl_trainer_backward,
    .train_features = hcl_trainer_features,
    .train_loss_name = hcl_trainer_loss_name,
    .count_flops = api_count_flops,
    .sgemm_lower = hcl_sgemm_lower,
};

const hcl_host_api *hcl_host_api_get(void) { return &g_api; }
