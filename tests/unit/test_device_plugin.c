/* test_device_plugin.c: unit tests of the device plugin loader
 * (src/devices/plugin.c) with the cpu backend built as a plugin
 * (build/mediad-device-cpu.so) and the refused test plugins of
 * tests/plugins/ (build/tests/plugins/): load, open, ping, parallel, reset
 * and close work through the plugin's own ops; an ABI version mismatch, a
 * missing entry symbol and a missing file are refused with one line naming
 * the file (and the versions or the symbol). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "util.h"

/* build/tests/../<rel> (the test binary lives in build/tests/). */
static void build_path(const char *rel, char *out, size_t n)
{
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(len > 0);
	self[len] = 0;
	snprintf(out, n, "%s/../%s", dirname(self), rel);
}

static void expect_in(const char *err, const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

struct hits {
	atomic_int n;
	atomic_int seen[64];
};

static void count_hit(void *arg, int index, int count)
{
	struct hits *h = arg;

	atomic_fetch_add(&h->n, 1);
	atomic_fetch_add(&h->seen[index], 1);
}

static void test_cpu_plugin_works(void **state)
{
	struct device_plugin p;
	struct mediad_device dev = {.ids = "0", .threads = 2};
	struct hits h = {0};
	char path[4200], err[512] = "";

	build_path("mediad-device-cpu.so", path, sizeof(path));
	assert_int_equal(device_plugin_open(&p, path, err, sizeof(err)), 0);
	assert_non_null(p.handle);
	assert_string_equal(p.ops->name, "cpu");
	/* the plugin's own copy of the backend, not the one linked in here */
	assert_ptr_not_equal(p.ops, &device_cpu_ops);
	assert_non_null(p.ops->reset);

	dev.ops = p.ops;
	assert_int_equal(dev.ops->open(&dev, err, sizeof(err)), 0);
	assert_int_equal(device_threads(&dev), 2);
	assert_int_equal(dev.ops->ping(&dev, 2.0, err, sizeof(err)), 0);
	assert_int_equal(device_parallel(&dev, count_hit, &h, 40), 0);
	assert_int_equal(atomic_load(&h.n), 40);
	for (int i = 0; i < 40; i++)
		assert_int_equal(atomic_load(&h.seen[i]), 1);
	assert_int_equal(dev.ops->reset(&dev), 0);
	assert_int_equal(dev.ops->ping(&dev, 2.0, err, sizeof(err)), 0);
	dev.ops->close(&dev);
	assert_null(dev.priv);
	assert_int_equal(device_threads(&dev), -ENODEV);
	device_plugin_close(&p);
	assert_null(p.handle);
	assert_null(p.ops);
}

static void test_abi_mismatch_refused(void **state)
{
	struct device_plugin p;
	char path[4200], err[512] = "", want[64];

	build_path("tests/plugins/device_badabi.so", path, sizeof(path));
	assert_int_equal(device_plugin_open(&p, path, err, sizeof(err)), -EPROTO);
	assert_null(p.handle);
	assert_null(p.ops);
	expect_in(err, path);
	snprintf(want, sizeof(want), "ABI version %u, expected %u",
		 MEDIAD_DEVICE_ABI_VERSION + 998, MEDIAD_DEVICE_ABI_VERSION);
	expect_in(err, want);
	assert_null(strchr(err, '\n'));
}

static void test_missing_entry_refused(void **state)
{
	struct device_plugin p;
	char path[4200], err[512] = "";

	build_path("tests/plugins/device_noentry.so", path, sizeof(path));
	assert_int_equal(device_plugin_open(&p, path, err, sizeof(err)), -ENOENT);
	assert_null(p.handle);
	expect_in(err, path);
	expect_in(err, "no entry symbol " MEDIAD_DEVICE_PLUGIN_ENTRY);
	assert_null(strchr(err, '\n'));
}

static void test_missing_file_refused(void **state)
{
	struct device_plugin p;
	char err[512] = "";

	assert_int_equal(device_plugin_open(&p, "/nonexistent/mediad-x.so", err, sizeof(err)),
			 -ENOENT);
	assert_null(p.handle);
	expect_in(err, "device plugin /nonexistent/mediad-x.so: cannot load");
	assert_int_equal(device_plugin_open(&p, "", err, sizeof(err)), -EINVAL);
	device_plugin_close(&p); /* closing a refused plugin is harmless */
}

static void test_mock_device_ops(void **state)
{
	struct mediad_device dev = {.ops = &device_mock_ops, .ids = "0", .threads = 4};
	struct hits h = {0};
	char err[128];

	assert_int_equal(dev.ops->open(&dev, err, sizeof(err)), 0);
	assert_int_equal(device_threads(&dev), 1);
	assert_int_equal(device_parallel(&dev, count_hit, &h, 5), 0);
	assert_int_equal(atomic_load(&h.n), 5);
	assert_int_equal(device_parallel(&dev, NULL, NULL, 1), -EINVAL);
	assert_int_equal(dev.ops->reset(&dev), 0);
	dev.ops->close(&dev);
	assert_int_equal(device_parallel(NULL, count_hit, &h, 1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cpu_plugin_works),
	    cmocka_unit_test(test_abi_mismatch_refused),
	    cmocka_unit_test(test_missing_entry_refused),
	    cmocka_unit_test(test_missing_file_refused),
	    cmocka_unit_test(test_mock_device_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
