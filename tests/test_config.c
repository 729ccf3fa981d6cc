/* Config files and declared parameters: the good fixtures resolve with
 * defaults filled and typed values right; every bad fixture fails with a
 * message that names the file (and line), the section, the key and what was
 * expected. No device needed: everything runs with a NULL ctx. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"

#include <math.h>
#include <string.h>

#define INI(dir, name) HCL_TEST_DATA "/fixtures/ini/" dir "/" name ".ini"

/* ---- the schemas of the test: a small [run], a model with every type ---- */
static const char *const acts[] = {"relu", "tanh", "quadratic", NULL};
static const hcl_param_desc run_schema[] = {
    {"steps", HCL_PARAM_INT, "1000", 1, 1e9, NULL, "optimizer steps"},
    {"seed", HCL_PARAM_INT, "0", 1, 0, NULL, "base seed"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const hcl_param_desc model_schema[] = {
    {"width", HCL_PARAM_INT, "64", 1, 4096, NULL, "hidden width"},
    {"depth", HCL_PARAM_INT, NULL, 1, 16, NULL, "number of hidden layers"},
    {"lr", HCL_PARAM_DOUBLE, "0.1", 1e-9, 10, NULL, "learning rate"},
    {"act", HCL_PARAM_ENUM, "relu", 1, 0, acts, "activation"},
    {"bias", HCL_PARAM_BOOL, "true", 1, 0, NULL, "use biases"},
    {"widths", HCL_PARAM_LIST, "1, 2", 1, 4096, NULL, "widths per layer"},
    {"name", HCL_PARAM_STRING, "net", 1, 0, NULL, "a label"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const hcl_param_desc target_schema[] = {
    {"n", HCL_PARAM_INT, "10", 1, 1000, NULL, "input dimension"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const char *const plugin_key[] = {"plugin", NULL};
static const char *const known_sections[] = {"run",  "runtime", "target", "model", "train",
                                             "eval", "sweep",   "probe",  NULL};

typedef struct resolved {
  hcl_params run, model, target;
} resolved;

static void resolved_free(resolved *r) {
  hcl_params_free(&r->run);
  hcl_params_free(&r->model);
  hcl_params_free(&r->target);
}

/* What the runtime does with a config: sections, then each schema. */
static hcl_status resolve_all(const hcl_config *cfg, resolved *r) {
  memset(r, 0, sizeof *r);
  HCL_TRY(hcl_config_check_sections(NULL, cfg, known_sections));
  HCL_TRY(hcl_params_resolve(NULL, cfg, "run", run_schema, NULL, &r->run));
  HCL_TRY(hcl_params_resolve(NULL, cfg, "model", model_schema, plugin_key, &r->model));
  return hcl_params_resolve(NULL, cfg, "target", target_schema, plugin_key, &r->target);
}

static const hcl_kv *kv_of(const hcl_params *p, const char *key) {
  for (size_t i = 0; i < p->n; i++)
    if (!strcmp(p->kv[i].key, key)) return &p->kv[i];
  return NULL;
}

/* Assert that msg contains frag, printing both when it does not. */
#define assert_contains(msg, frag)                                                                 \
  do {                                                                                             \
    if (!strstr((msg), (frag))) fail_msg("message '%s'\n  lacks '%s'", (msg), (frag));             \
  } while (0)

/* ---- good files ---------------------------------------------------------- */

static void test_minimal_fills_defaults(void **state) {
  (void)state;
  hcl_config cfg;
  resolved r;
  assert_int_equal(hcl_config_load(NULL, INI("good", "minimal"), &cfg), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_OK);
  /* Every schema key is present; only depth and plugin came from the file. */
  assert_int_equal(r.model.n, 8); /* 7 schema keys + plugin */
  assert_int_equal(kv_of(&r.model, "depth")->from_default, 0);
  assert_int_equal(kv_of(&r.model, "width")->from_default, 1);
  assert_int_equal(hcl_param_int(&r.model, "width"), 64);
  assert_int_equal(hcl_param_int(&r.model, "depth"), 3);
  assert_true(hcl_param_double(&r.model, "lr") == 0.1);
  assert_string_equal(hcl_param_str(&r.model, "act"), "relu");
  assert_int_equal(hcl_param_bool(&r.model, "bias"), 1);
  assert_string_equal(hcl_param_str(&r.model, "plugin"), "net");
  double w[4] = {0};
  assert_int_equal(hcl_param_list(&r.model, "widths", w, 4), 2);
  assert_true(w[0] == 1 && w[1] == 2);
  /* Sections absent from the file resolve to their defaults. */
  assert_int_equal(hcl_param_int(&r.run, "steps"), 1000);
  assert_int_equal(hcl_param_int(&r.target, "n"), 10);
  assert_string_equal(r.model.section, "model");
  assert_ptr_equal(r.model.schema, model_schema);
  /* The schema order comes first, extras after: a stable manifest. */
  assert_string_equal(r.model.kv[0].key, "width");
  assert_string_equal(r.model.kv[r.model.n - 1].key, "plugin");
  assert_non_null(cfg.text);
  assert_non_null(strstr(cfg.text, "depth = 3"));
  resolved_free(&r);
  hcl_config_free(&cfg);
}

static void test_full_every_form(void **state) {
  (void)state;
  hcl_config cfg;
  resolved r;
  assert_int_equal(hcl_config_load(NULL, INI("good", "full"), &cfg), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_OK);
  /* Section and key names are case-insensitive ([RUN], Steps). */
  assert_string_equal(hcl_config_get(&cfg, "run", "steps"), "1e4");
  assert_string_equal(hcl_config_get(&cfg, "RUN", "STEPS"), "1e4");
  assert_int_equal(hcl_param_int(&r.run, "steps"), 10000);
  assert_int_equal(hcl_param_int(&r.run, "seed"), 7);
  assert_int_equal(hcl_param_int(&r.model, "depth"), 2); /* inline comment dropped */
  assert_int_equal(hcl_param_int(&r.model, "width"), 256);
  assert_true(hcl_param_double(&r.model, "lr") == 2.5e-3);
  assert_string_equal(hcl_param_str(&r.model, "act"), "tanh");
  assert_int_equal(hcl_param_bool(&r.model, "bias"), 0);
  assert_string_equal(hcl_param_str(&r.model, "name"), "quoted ; value");
  double w[8];
  assert_int_equal(hcl_param_list(&r.model, "widths", w, 8), 4);
  assert_true(w[0] == 8 && w[1] == 16 && w[2] == 32 && w[3] == 64);
  /* max bounds what is written, not what is counted. */
  w[1] = -1;
  assert_int_equal(hcl_param_list(&r.model, "widths", w, 1), 4);
  assert_true(w[0] == 8 && w[1] == -1);
  assert_int_equal(hcl_param_int(&r.target, "n"), 30);
  assert_string_equal(hcl_param_str(&r.target, "plugin"), "staircase");
  assert_null(hcl_config_get(&cfg, "model", "nosuch"));
  assert_null(hcl_config_get(&cfg, "nosuch", "depth"));
  resolved_free(&r);
  hcl_config_free(&cfg);
}

static void test_crlf_and_empty_values(void **state) {
  (void)state;
  hcl_config cfg;
  resolved r;
  assert_int_equal(hcl_config_load(NULL, INI("good", "crlf"), &cfg), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_OK);
  assert_int_equal(hcl_param_int(&r.model, "depth"), 4);
  assert_string_equal(hcl_param_str(&r.model, "name"), "crlf");
  resolved_free(&r);
  hcl_config_free(&cfg);

  assert_int_equal(hcl_config_load(NULL, INI("good", "empty_values"), &cfg), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_OK);
  assert_string_equal(hcl_param_str(&r.model, "name"), "");
  assert_int_equal(hcl_param_list(&r.model, "widths", NULL, 0), 0); /* "" = empty list */
  assert_int_equal(kv_of(&r.model, "widths")->from_default, 0);
  resolved_free(&r);
  hcl_config_free(&cfg);
}

/* ---- bad files ----------------------------------------------------------- */

typedef struct bad_case {
  const char *file;
  const char *frag[4]; /* every one must appear in the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"unknown_key",
     {"unknown_key.ini:4: [model] unknown key 'widht'", "did you mean 'width'",
      "(known: width, depth, lr, act, bias, widths, name, plugin)"}},
    {"no_equals", {"no_equals.ini:3: expected 'key = value' or '[section]'", "width 12"}},
    {"unterminated_section", {"unterminated_section.ini:3: unterminated '['", "[model"}},
    {"text_after_section", {"text_after_section.ini:1: unexpected text after ']'"}},
    {"bad_section_name", {"bad_section_name.ini:1: bad section name 'my model'"}},
    {"key_outside_section", {"key_outside_section.ini:1: key 'depth' outside any section"}},
    {"bad_int", {"bad_int.ini:3: [model] width = '12abc'", "expected an integer in [1, 4096]"}},
    {"fractional_int",
     {"fractional_int.ini:2: [model] depth = '2.5'", "expected an integer in [1, 16]"}},
    {"out_of_range", {"out_of_range.ini:3: [model] width = '0'", "out of range", "in [1, 4096]"}},
    {"bad_double", {"bad_double.ini:3: [model] lr = '0.1.2'", "expected a finite number in"}},
    {"nan_double", {"nan_double.ini:3: [model] lr = 'nan'", "finite number"}},
    {"bad_enum",
     {"bad_enum.ini:3: [model] act = 'sigmoid'", "expected one of: relu, tanh, quadratic"}},
    {"bad_bool", {"bad_bool.ini:3: [model] bias = 'maybe'", "expected a boolean"}},
    {"bad_list",
     {"bad_list.ini:3: [model] widths = '1, x, 3'", "element 2 'x' is not a number",
      "in [1, 4096]"}},
    {"list_range", {"list_range.ini:3: [model] widths", "element 3 (0) out of range"}},
    {"list_empty_element", {"list_empty_element.ini:3:", "element 2 '' is not a number"}},
    {"missing_required",
     {"missing_required.ini: [model] missing required key 'depth'", "number of hidden layers"}},
    {"unknown_section",
     {"unknown_section.ini:4: unknown section [modle]",
      "known: run, runtime, target, model, train, eval, sweep, probe"}},
    {"duplicate_key", {"duplicate_key.ini:4: [model] key 'width' given twice (first at line 3)"}},
    {"unterminated_quote", {"unterminated_quote.ini:3: unterminated quote", "'name'"}},
    {"continuation", {"continuation.ini:3: line continuation"}},
};

static void test_bad_files(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/ini/bad/%s.ini", HCL_TEST_DATA, c->file);
    hcl_config cfg;
    resolved r;
    hcl_status rc = hcl_config_load(NULL, path, &cfg);
    if (rc == HCL_OK) {
      rc = resolve_all(&cfg, &r);
      resolved_free(&r);
    }
    if (rc == HCL_OK) fail_msg("%s: accepted", c->file);
    assert_int_equal(rc, HCL_ERR_CONFIG);
    const char *msg = hcl_errmsg(NULL);
    assert_contains(msg, path); /* the whole path, as given */
    for (size_t k = 0; k < 4 && c->frag[k]; k++) assert_contains(msg, c->frag[k]);
    /* A failed load leaves nothing to free but is safe to free. */
    hcl_config_free(&cfg);
  }
}

static void test_missing_file(void **state) {
  (void)state;
  hcl_config cfg;
  const char *path = HCL_TEST_DATA "/fixtures/ini/no/such/file.ini";
  assert_int_equal(hcl_config_load(NULL, path, &cfg), HCL_ERR_IO);
  assert_contains(hcl_errmsg(NULL), path);
  assert_contains(hcl_errmsg(NULL), "No such file or directory");
  assert_null(cfg.text);
  assert_int_equal(cfg.n_sections, 0);
  hcl_config_free(&cfg);
}

/* Errors go into the ctx when there is one (hcl_fail is the lead's; a zeroed
 * ctx struct is enough for it). */
static void test_error_into_ctx(void **state) {
  (void)state;
  static hcl_ctx ctx; /* zeroed: no device needed to hold a message */
  hcl_config cfg;
  assert_int_equal(hcl_config_load(&ctx, INI("bad", "no_equals"), &cfg), HCL_ERR_CONFIG);
  assert_contains(hcl_errmsg(&ctx), "no_equals.ini:3:");
  hcl_config_free(&cfg);
}

/* ---- --set ---------------------------------------------------------------- */

static void test_set_overrides(void **state) {
  (void)state;
  hcl_config cfg;
  resolved r;
  assert_int_equal(hcl_config_load(NULL, INI("good", "minimal"), &cfg), HCL_OK);
  assert_int_equal(hcl_config_set(NULL, &cfg, "model.depth=5"), HCL_OK);       /* replace */
  assert_int_equal(hcl_config_set(NULL, &cfg, " Model.Width = 128 "), HCL_OK); /* add */
  assert_int_equal(hcl_config_set(NULL, &cfg, "run.seed='42'"), HCL_OK);       /* new section */
  assert_int_equal(hcl_config_set(NULL, &cfg, "model.name=a=b"), HCL_OK);      /* '=' in value */
  assert_string_equal(hcl_config_get(&cfg, "model", "depth"), "5");
  assert_string_equal(hcl_config_get(&cfg, "run", "seed"), "42");
  assert_int_equal(resolve_all(&cfg, &r), HCL_OK);
  assert_int_equal(hcl_param_int(&r.model, "depth"), 5);
  assert_int_equal(hcl_param_int(&r.model, "width"), 128);
  assert_int_equal(kv_of(&r.model, "width")->from_default, 0);
  assert_int_equal(hcl_param_int(&r.run, "seed"), 42);
  assert_string_equal(hcl_param_str(&r.model, "name"), "a=b");
  resolved_free(&r);

  /* A bad value from --set says so instead of pointing at a file line. */
  assert_int_equal(hcl_config_set(NULL, &cfg, "model.depth=99"), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_ERR_CONFIG);
  assert_contains(hcl_errmsg(NULL), "minimal.ini (--set model.depth): [model] depth = '99'");
  assert_contains(hcl_errmsg(NULL), "in [1, 16]");
  resolved_free(&r);
  assert_int_equal(hcl_config_set(NULL, &cfg, "model.depth=3"), HCL_OK);
  assert_int_equal(hcl_config_set(NULL, &cfg, "model.dpeth=3"), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_ERR_CONFIG);
  assert_contains(hcl_errmsg(NULL), "[model] unknown key 'dpeth'; did you mean 'depth'?");
  resolved_free(&r);
  hcl_config_free(&cfg);

  assert_int_equal(hcl_config_load(NULL, INI("good", "minimal"), &cfg), HCL_OK);
  assert_int_equal(hcl_config_set(NULL, &cfg, "trian.steps=3"), HCL_OK);
  assert_int_equal(resolve_all(&cfg, &r), HCL_ERR_CONFIG);
  assert_contains(hcl_errmsg(NULL), "minimal.ini (--set): unknown section [trian]");
  resolved_free(&r);
  hcl_config_free(&cfg);
}

static void test_set_malformed(void **state) {
  (void)state;
  static const char *const bad[] = {"model.width",      "width=3",        ".width=3", "model.=3",
                                    "my model.width=3", "model.wi dth=3", "",         "=3"};
  hcl_config cfg;
  assert_int_equal(hcl_config_load(NULL, INI("good", "minimal"), &cfg), HCL_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(hcl_config_set(NULL, &cfg, bad[i]), HCL_ERR_CONFIG);
    char want[128];
    snprintf(want, sizeof want, "bad --set assignment '%s'", bad[i]);
    assert_contains(hcl_errmsg(NULL), want);
    assert_contains(hcl_errmsg(NULL), "section.key=value");
  }
  /* Nothing was added by the failures. */
  assert_int_equal(cfg.n_sections, 1);
  assert_int_equal(cfg.sections[0].n, 2);
  hcl_config_free(&cfg);
}

/* ---- single values --------------------------------------------------------- */

static void test_check_value(void **state) {
  (void)state;
  char why[256];
  const hcl_param_desc *width = &model_schema[0], *lr = &model_schema[2], *act = &model_schema[3],
                       *bias = &model_schema[4], *widths = &model_schema[5],
                       *name = &model_schema[6], *seed = &run_schema[1];
  static const struct {
    int which;
    const char *value;
    int ok;
  } cases[] = {
      {0, "1", 1},
      {0, "4096", 1},
      {0, "4097", 0},
      {0, "0", 0},
      {0, "+12", 1},
      {0, "1e3", 1},
      {0, "1.5", 0},
      {0, "", 0},
      {0, "0x10", 0},
      {0, "12 13", 0},
      {1, "1e-3", 1},
      {1, "10", 1},
      {1, "10.5", 0},
      {1, "0", 0},
      {1, "inf", 0},
      {1, "1e999", 0},
      {1, "-nan", 0},
      {1, "0.1x", 0},
      {2, "relu", 1},
      {2, "RELU", 0},
      {2, "", 0},
      {3, "TRUE", 1},
      {3, "on", 1},
      {3, "0", 1},
      {3, "No", 1},
      {3, "2", 0},
      {3, "", 0},
      {4, "", 1},
      {4, " 3 ", 1},
      {4, "1,2,3", 1},
      {4, "1,", 0},
      {4, ",1", 0},
      {4, "5000", 0},
      {4, "1;2", 0},
      {5, "", 1},
      {5, "any = thing", 1},
      {6, "-9223372036854775808", 1},
      {6, "99999999999999999999", 0},
  };
  const hcl_param_desc *descs[] = {width, lr, act, bias, widths, name, seed};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = hcl_param_check_value(descs[cases[i].which], cases[i].value, why, sizeof why);
    if (got != cases[i].ok)
      fail_msg("%s = '%s': got %d (%s), want %d", descs[cases[i].which]->key, cases[i].value, got,
               why, cases[i].ok);
    if (!got) assert_true(why[0] != 0);
  }
  assert_int_equal(hcl_param_check_value(act, "x", why, sizeof why), 0);
  assert_string_equal(why, "expected one of: relu, tanh, quadratic");
  /* Unbounded ranges are not mentioned. */
  assert_int_equal(hcl_param_check_value(seed, "x", why, sizeof why), 0);
  assert_string_equal(why, "expected an integer");
}

/* A declared default that fails its own check is the plugin's fault. */
static void test_bad_default_is_plugin_error(void **state) {
  (void)state;
  static const hcl_param_desc broken[] = {{"k", HCL_PARAM_INT, "abc", 1, 0, NULL, "k"},
                                          {NULL, 0, NULL, 0, 0, NULL, NULL}};
  hcl_config cfg;
  hcl_params p;
  assert_int_equal(hcl_config_load(NULL, INI("good", "minimal"), &cfg), HCL_OK);
  assert_int_equal(hcl_params_resolve(NULL, &cfg, "target", broken, NULL, &p), HCL_ERR_PLUGIN);
  assert_contains(hcl_errmsg(NULL), "[target] k: the declared default 'abc' is invalid");
  assert_int_equal(p.n, 0);
  hcl_params_free(&p);
  hcl_config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_minimal_fills_defaults),
      cmocka_unit_test(test_full_every_form),
      cmocka_unit_test(test_crlf_and_empty_values),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_error_into_ctx),
      cmocka_unit_test(test_set_overrides),
      cmocka_unit_test(test_set_malformed),
      cmocka_unit_test(test_check_value),
      cmocka_unit_test(test_bad_default_is_plugin_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
