/* test_cpu_device.c: unit tests for the cpu device (src/devices/cpu.c).
 *
 * Open and close with several pool sizes; cpu_device_parallel runs every
 * index exactly once, on pinned pool threads, repeatedly and from several
 * submitters at once; ping succeeds, times out on a stalled thread or an
 * injected hang, fails with -EIO on an injected wrong answer, ignores late
 * answers of an abandoned ping, and the pool is usable again afterwards;
 * closing a wedged device returns after its bounded wait. Meant to run
 * clean under valgrind and ThreadSanitizer as well. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "devices/cpu.h"
#include "faults.h"
#include "log.h"
#include "util.h"

#define BIG_TIMEOUT 10.0

static void expect_err(const char *err, const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

static void open_dev(struct mediad_device *dev, int threads)
{
	char err[256] = "";
	int r;

	memset(dev, 0, sizeof(*dev));
	dev->ops = &device_cpu_ops;
	snprintf(dev->ids, sizeof(dev->ids), "0");
	dev->threads = threads;
	r = dev->ops->open(dev, err, sizeof(err));
	if (r)
		fail_msg("open with %d threads: %d %s", threads, r, err);
	assert_non_null(dev->priv);
}

static int ping(struct mediad_device *dev, double timeout_s, char *err, size_t errlen)
{
	err[0] = '\0';
	return dev->ops->ping(dev, timeout_s, err, errlen);
}

static void assert_ping_ok(struct mediad_device *dev)
{
	char err[256];
	int r = ping(dev, BIG_TIMEOUT, err, sizeof(err));

	if (r)
		fail_msg("ping: %d %s", r, err);
}

static int teardown(void **state)
{
	faults_clear();
	return 0;
}

/* --- open / close ------------------------------------------------------ */

static void test_open_close(void **state)
{
	static const int sizes[] = {1, 2, 4};
	struct mediad_device dev;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		open_dev(&dev, sizes[i]);
		assert_int_equal(cpu_device_threads(&dev), sizes[i]);
		assert_ping_ok(&dev);
		dev.ops->close(&dev);
		assert_null(dev.priv);
		dev.ops->close(&dev); /* a second close is harmless */
	}
	assert_non_null(device_cpu_ops.reset);
}

static void test_open_bad_threads(void **state)
{
	struct mediad_device dev = {.ops = &device_cpu_ops, .ids = "3", .threads = 0};
	char err[256] = "";

	assert_int_equal(dev.ops->open(&dev, err, sizeof(err)), -EINVAL);
	expect_err(err, "cpu device 3: threads must be");
	assert_null(dev.priv);
	dev.threads = -2;
	assert_int_equal(dev.ops->open(&dev, err, sizeof(err)), -EINVAL);
}

/* --- parallel ---------------------------------------------------------- */

struct hits {
	int count;
	_Atomic int *hits;
	_Atomic int bad_args;
	_Atomic int on_caller;
	pthread_t caller;
};

static void count_hit(void *arg, int index, int count)
{
	struct hits *h = arg;

	if (index < 0 || index >= h->count || count != h->count) {
		atomic_fetch_add(&h->bad_args, 1);
		return;
	}
	if (pthread_equal(pthread_self(), h->caller))
		atomic_fetch_add(&h->on_caller, 1);
	atomic_fetch_add(&h->hits[index], 1);
}

static void test_parallel_exactly_once(void **state)
{
	static const int sizes[] = {1, 2, 4};
	static const int counts[] = {1, 7, 1000};
	struct mediad_device dev;

	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		open_dev(&dev, sizes[s]);
		for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
			struct hits h = {.count = counts[c], .caller = pthread_self()};

			h.hits = xcalloc((size_t)h.count, sizeof(*h.hits));
			assert_int_equal(cpu_device_parallel(&dev, count_hit, &h, h.count), 0);
			for (int i = 0; i < h.count; i++)
				if (h.hits[i] != 1)
					fail_msg("threads %d count %d: index %d ran %d times",
						 sizes[s], h.count, i, (int)h.hits[i]);
			assert_int_equal(h.bad_args, 0);
			assert_int_equal(h.on_caller, 0); /* kernels run on the pool */
			free(h.hits);
		}
		dev.ops->close(&dev);
	}
}

struct repeat {
	int *hits; /* plain ints: TSan checks the pool's happens-before edges */
	int count;
};

static void repeat_hit(void *arg, int index, int count)
{
	struct repeat *r = arg;

	r->hits[index]++;
}

static void test_parallel_repeated(void **state)
{
	enum { RUNS = 10000, COUNT = 5 };
	int hits[COUNT] = {0};
	struct repeat r = {.hits = hits, .count = COUNT};
	struct mediad_device dev;

	open_dev(&dev, 2);
	for (int run = 0; run < RUNS; run++)
		assert_int_equal(cpu_device_parallel(&dev, repeat_hit, &r, COUNT), 0);
	for (int i = 0; i < COUNT; i++)
		assert_int_equal(hits[i], RUNS);
	dev.ops->close(&dev);
}

struct pinning {
	_Atomic int unpinned;
	_Atomic int outside;
	cpu_set_t allowed;
};

static void check_pinned(void *arg, int index, int count)
{
	struct pinning *p = arg;
	cpu_set_t set;

	usleep(1000); /* let every pool thread take some indices */
	if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) || CPU_COUNT(&set) != 1) {
		atomic_fetch_add(&p->unpinned, 1);
		return;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && !CPU_ISSET(c, &p->allowed))
			atomic_fetch_add(&p->outside, 1);
}

static void test_parallel_pinned(void **state)
{
	struct pinning p = {0};
	struct mediad_device dev;

	assert_int_equal(sched_getaffinity(0, sizeof(p.allowed), &p.allowed), 0);
	open_dev(&dev, 4);
	assert_int_equal(cpu_device_parallel(&dev, check_pinned, &p, 40), 0);
	assert_int_equal(p.unpinned, 0);
	assert_int_equal(p.outside, 0);
	dev.ops->close(&dev);
}

struct nested {
	struct mediad_device *dev;
	_Atomic int inner;
	_Atomic int failed;
};

static void inner_hit(void *arg, int index, int count)
{
	struct nested *n = arg;

	atomic_fetch_add(&n->inner, 1);
}

static void outer_hit(void *arg, int index, int count)
{
	struct nested *n = arg;

	if (cpu_device_parallel(n->dev, inner_hit, n, 3))
		atomic_fetch_add(&n->failed, 1);
}

static void test_parallel_nested_runs_inline(void **state)
{
	struct mediad_device dev;
	struct nested n = {.dev = &dev};

	open_dev(&dev, 2);
	assert_int_equal(cpu_device_parallel(&dev, outer_hit, &n, 4), 0);
	assert_int_equal(n.failed, 0);
	assert_int_equal(n.inner, 12);
	dev.ops->close(&dev);
}

static void never_called(void *arg, int index, int count)
{
	fail_msg("kernel called for index %d of %d", index, count);
}

static void test_parallel_errors(void **state)
{
	struct mediad_device dev;
	struct mediad_device mock = {.ops = &device_mock_ops, .ids = "0", .threads = 1};
	char err[256];

	open_dev(&dev, 2);
	assert_int_equal(cpu_device_parallel(&dev, never_called, NULL, 0), 0);
	assert_int_equal(cpu_device_parallel(&dev, NULL, NULL, 3), -EINVAL);
	assert_int_equal(cpu_device_parallel(&dev, never_called, NULL, -1), -EINVAL);
	assert_int_equal(cpu_device_parallel(&mock, never_called, NULL, 1), -EINVAL);
	assert_int_equal(cpu_device_parallel(NULL, never_called, NULL, 1), -EINVAL);
	assert_int_equal(cpu_device_threads(&mock), -EINVAL);
	assert_int_equal(cpu_device_test_stall(&dev, 2, 1), -EINVAL);
	assert_int_equal(cpu_device_test_stall(&dev, -1, 1), -EINVAL);
	dev.ops->close(&dev);
	assert_int_equal(cpu_device_parallel(&dev, never_called, NULL, 1), -ENODEV);
	assert_int_equal(cpu_device_threads(&dev), -ENODEV);
	assert_int_equal(cpu_device_test_stall(&dev, 0, 1), -ENODEV);
	assert_int_equal(ping(&dev, 1.0, err, sizeof(err)), -ENODEV);
	expect_err(err, "not open");
}

static void test_parallel_survives_stalled_thread(void **state)
{
	struct hits h = {.count = 100, .caller = pthread_self()};
	struct mediad_device dev;

	h.hits = xcalloc((size_t)h.count, sizeof(*h.hits));
	open_dev(&dev, 2);
	assert_int_equal(cpu_device_test_stall(&dev, 1, 1), 0);
	assert_int_equal(cpu_device_parallel(&dev, count_hit, &h, h.count), 0);
	for (int i = 0; i < h.count; i++)
		assert_int_equal(h.hits[i], 1);
	assert_int_equal(cpu_device_test_stall(&dev, 1, 0), 0);
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
	free(h.hits);
}

struct submitter {
	struct mediad_device *dev;
	_Atomic int *hits;
	int count;
	int runs;
	int pings;
	int failures;
};

static void *submit_main(void *p)
{
	struct submitter *s = p;
	struct hits h = {.count = s->count, .hits = s->hits};
	char err[256];

	for (int i = 0; i < s->runs; i++) {
		if (cpu_device_parallel(s->dev, count_hit, &h, s->count))
			s->failures++;
		if (s->pings && ping(s->dev, BIG_TIMEOUT, err, sizeof(err)))
			s->failures++;
	}
	return NULL;
}

static void test_parallel_concurrent_submitters(void **state)
{
	enum { SUBMITTERS = 3, RUNS = 300, COUNT = 9 };
	struct submitter s[SUBMITTERS];
	pthread_t tid[SUBMITTERS];
	struct mediad_device dev;

	open_dev(&dev, 2);
	for (int i = 0; i < SUBMITTERS; i++) {
		s[i] = (struct submitter){.dev = &dev, .count = COUNT, .runs = RUNS, .pings = i == 0};
		s[i].hits = xcalloc(COUNT, sizeof(*s[i].hits));
		assert_int_equal(pthread_create(&tid[i], NULL, submit_main, &s[i]), 0);
	}
	for (int i = 0; i < SUBMITTERS; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(s[i].failures, 0);
		for (int k = 0; k < COUNT; k++)
			assert_int_equal(s[i].hits[k], RUNS);
		free(s[i].hits);
	}
	dev.ops->close(&dev);
}

/* --- ping -------------------------------------------------------------- */

static void test_ping_ok(void **state)
{
	struct mediad_device dev;

	open_dev(&dev, 2);
	for (int i = 0; i < 100; i++)
		assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void test_ping_stalled_thread_times_out(void **state)
{
	struct mediad_device dev;
	char err[256];
	double t0, took;

	open_dev(&dev, 2);
	assert_int_equal(cpu_device_test_stall(&dev, 1, 1), 0);
	t0 = now_s();
	assert_int_equal(ping(&dev, 0.2, err, sizeof(err)), -ETIMEDOUT);
	took = now_s() - t0;
	expect_err(err, "cpu device 0: 1 of 2 threads did not answer within 0.200 s");
	expect_err(err, "thread 1");
	assert_true(took >= 0.19);
	assert_true(took < 5.0);
	/* still stalled: the next ping fails the same way */
	assert_int_equal(ping(&dev, 0.05, err, sizeof(err)), -ETIMEDOUT);
	assert_int_equal(cpu_device_test_stall(&dev, 1, 0), 0);
	assert_ping_ok(&dev);
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void test_ping_single_thread_stalled(void **state)
{
	struct mediad_device dev;
	char err[256];

	open_dev(&dev, 1);
	assert_int_equal(cpu_device_test_stall(&dev, 0, 1), 0);
	assert_int_equal(ping(&dev, 0.1, err, sizeof(err)), -ETIMEDOUT);
	expect_err(err, "1 of 1 threads did not answer within 0.100 s");
	assert_int_equal(cpu_device_test_stall(&dev, 0, 0), 0);
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void test_ping_close_releases_stalled_thread(void **state)
{
	struct mediad_device dev;
	char err[256];
	double t0;

	open_dev(&dev, 2);
	assert_int_equal(cpu_device_test_stall(&dev, 0, 1), 0);
	assert_int_equal(ping(&dev, 0.05, err, sizeof(err)), -ETIMEDOUT);
	t0 = now_s();
	dev.ops->close(&dev); /* joins: a stall does not outlive close */
	assert_true(now_s() - t0 < 0.9);
	assert_null(dev.priv);
}

static void test_fault_error_ping(void **state)
{
	struct mediad_device dev;
	char err[256];

	open_dev(&dev, 2);
	faults_set(FAULT_ERROR_PING, 0, 1);
	assert_int_equal(ping(&dev, BIG_TIMEOUT, err, sizeof(err)), -EIO);
	expect_err(err, "cpu device 0: thread 1 answered");
	expect_err(err, "fault injection: error_ping");
	assert_ping_ok(&dev); /* the count of 1 is used up */
	faults_set(FAULT_ERROR_PING, 0, 0);
	assert_int_equal(ping(&dev, BIG_TIMEOUT, err, sizeof(err)), -EIO);
	assert_int_equal(ping(&dev, BIG_TIMEOUT, err, sizeof(err)), -EIO);
	faults_clear();
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void test_fault_hang_ping(void **state)
{
	struct mediad_device dev;
	char err[256];

	open_dev(&dev, 2);
	faults_set(FAULT_HANG_PING, 0, 1);
	assert_int_equal(ping(&dev, 0.2, err, sizeof(err)), -ETIMEDOUT);
	expect_err(err, "2 of 2 threads did not answer within 0.200 s");
	/* the threads are still hung: the next ping times out too */
	assert_int_equal(ping(&dev, 0.05, err, sizeof(err)), -ETIMEDOUT);
	faults_clear();
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void *clear_later(void *arg)
{
	usleep(100 * 1000);
	faults_clear();
	return NULL;
}

/* An abandoned ping's threads come back (with a wrong answer, injected)
 * while a new ping is open: their answers must be dropped, not counted. */
static void test_late_answer_is_dropped(void **state)
{
	struct mediad_device dev;
	pthread_t tid;
	char err[256];
	int r;

	open_dev(&dev, 2);
	faults_set(FAULT_HANG_PING, 0, 1);
	faults_set(FAULT_ERROR_PING, 0, 1);
	assert_int_equal(ping(&dev, 0.2, err, sizeof(err)), -ETIMEDOUT);
	assert_int_equal(pthread_create(&tid, NULL, clear_later, NULL), 0);
	r = ping(&dev, BIG_TIMEOUT, err, sizeof(err));
	assert_int_equal(pthread_join(tid, NULL), 0);
	if (r)
		fail_msg("ping after a late answer: %d %s", r, err);
	assert_ping_ok(&dev);
	dev.ops->close(&dev);
}

static void test_close_wedged_device(void **state)
{
	struct mediad_device dev;
	char err[256];
	double t0, took;

	open_dev(&dev, 2);
	faults_set(FAULT_HANG_PING, 0, 0);
	assert_int_equal(ping(&dev, 0.1, err, sizeof(err)), -ETIMEDOUT);
	t0 = now_s();
	dev.ops->close(&dev);
	took = now_s() - t0;
	assert_null(dev.priv);
	assert_true(took >= 0.95);
	assert_true(took < 5.0);
	/* the detached threads wake up on the leaked pool and exit */
	faults_clear();
	usleep(200 * 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_open_close, teardown),
		cmocka_unit_test_teardown(test_open_bad_threads, teardown),
		cmocka_unit_test_teardown(test_parallel_exactly_once, teardown),
		cmocka_unit_test_teardown(test_parallel_repeated, teardown),
		cmocka_unit_test_teardown(test_parallel_pinned, teardown),
		cmocka_unit_test_teardown(test_parallel_nested_runs_inline, teardown),
		cmocka_unit_test_teardown(test_parallel_errors, teardown),
		cmocka_unit_test_teardown(test_parallel_survives_stalled_thread, teardown),
		cmocka_unit_test_teardown(test_parallel_concurrent_submitters, teardown),
		cmocka_unit_test_teardown(test_ping_ok, teardown),
		cmocka_unit_test_teardown(test_ping_stalled_thread_times_out, teardown),
		cmocka_unit_test_teardown(test_ping_single_thread_stalled, teardown),
		cmocka_unit_test_teardown(test_ping_close_releases_stalled_thread, teardown),
		cmocka_unit_test_teardown(test_fault_error_ping, teardown),
		cmocka_unit_test_teardown(test_fault_hang_ping, teardown),
		cmocka_unit_test_teardown(test_late_answer_is_dropped, teardown),
		cmocka_unit_test_teardown(test_close_wedged_device, teardown),
	};

	log_init("worker", "0", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
