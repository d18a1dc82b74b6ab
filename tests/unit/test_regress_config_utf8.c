/* test_regress_config_utf8.c: regression test for a fuzz finding in config.c.
 *
 * fuzz_config found that a string setting holding bytes that are not UTF-8
 * (MODEL_NAME=$'caf\xe9', a Latin-1 MODEL_WEIGHTS_PATH, a .env saved in the
 * wrong encoding) was accepted as is. Every string setting ends up in JSON:
 * config_dump_json (the startup log line and GET /v1/config) then wrote
 * invalid JSON, and the worker's ready message (json_pack of the model name)
 * came out NULL and the worker crashed on strlen(NULL) in a restart loop.
 * Either refusal at load time (an error naming the variable) or a dump that
 * stays valid JSON is acceptable here; the black-box case in
 * tests/blackbox/test_hostile.py checks the server end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "banned.h"

static void check_setting(const char *name, const char *value)
{
	char *argv[] = {"mediad", NULL};
	struct config cfg;
	struct buf err, out;
	json_error_t jerr;
	json_t *j;
	int r;

	assert_int_equal(setenv(name, value, 1), 0);
	buf_init(&err, BUF_UNLIMITED);
	r = config_load(&cfg, 1, argv, 0, NULL, NULL, &err);
	unsetenv(name);
	if (r) {
		/* refused: the message names the variable */
		assert_non_null(err.data);
		if (!strstr(err.data, name))
			fail_msg("%s refused without naming it: %s", name, err.data);
		buf_release(&err);
		return;
	}
	buf_release(&err);
	buf_init(&out, BUF_UNLIMITED);
	config_dump_json(&cfg, &out);
	j = json_loadb(out.data, out.len, 0, &jerr);
	if (!j)
		fail_msg("%s accepted but the config dump is not JSON: %s", name, jerr.text);
	assert_true(json_is_object(j));
	json_decref(j);
	buf_release(&out);
	config_release(&cfg);
}

static void test_model_name_latin1(void **state)
{
	(void)state;
	check_setting("MODEL_NAME", "caf\xe9");
}

static void test_other_strings(void **state)
{
	(void)state;
	check_setting("MODEL_WEIGHTS_PATH", "/models/\xff\xfe.safetensors");
	check_setting("RESET_DEVICE_COMMAND", "reset \xc3(");
	check_setting("MODEL_NAME", "truncated \xe2\x82");
}

static void test_valid_utf8_still_accepted(void **state)
{
	char *argv[] = {"mediad", NULL};
	struct config cfg;
	struct buf err;

	(void)state;
	assert_int_equal(setenv("MODEL_NAME", "caf\xc3\xa9-\xe6\x97\xa5", 1), 0);
	buf_init(&err, BUF_UNLIMITED);
	assert_int_equal(config_load(&cfg, 1, argv, 0, NULL, NULL, &err), 0);
	unsetenv("MODEL_NAME");
	assert_string_equal(cfg.model_name, "caf\xc3\xa9-\xe6\x97\xa5");
	config_release(&cfg);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_name_latin1),
		cmocka_unit_test(test_other_strings),
		cmocka_unit_test(test_valid_utf8_still_accepted),
	};

	/* settings from the caller's environment must not interfere */
	unsetenv("MODEL_NAME");
	unsetenv("MODEL_WEIGHTS_PATH");
	unsetenv("RESET_DEVICE_COMMAND");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
