/* The keys the runtime itself declares, per config section (schema.c). */
#ifndef HCL_SCHEMA_H
#define HCL_SCHEMA_H
#include "hiercl/plugin.h"

/* The most replicas one run trains ([run] replicas, and the length of [run]
 * seeds, [train] train_sizes and lrs): bounds host and device arrays. */
#define HCL_MAX_REPLICAS 4096

extern const hcl_param_desc hcl_schema_run[];
extern const hcl_param_desc hcl_schema_runtime[];
extern const hcl_param_desc hcl_schema_train[];
extern const hcl_param_desc hcl_schema_eval[];
/* The sections a config may have (NULL-terminated). */
extern const char *const hcl_config_sections[];

#endif
