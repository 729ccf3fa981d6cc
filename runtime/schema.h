/* The keys the runtime itself declares, per config section (schema.c). */
#ifndef HCL_SCHEMA_H
#define HCL_SCHEMA_H
#include "hiercl/plugin.h"

extern const hcl_param_desc hcl_schema_run[];
extern const hcl_param_desc hcl_schema_runtime[];
extern const hcl_param_desc hcl_schema_train[];
extern const hcl_param_desc hcl_schema_eval[];
/* The sections a config may have (NULL-terminated). */
extern const char *const hcl_config_sections[];

#endif
