/* test_monitor.c: unit tests of the warmup watchdog's pure parts: the
 * deadline of a worker that has not sent READY (src/monitor.c) and the
 * startup phases a worker records in its progress page (src/progress.c).
 *
 * monitor_warmup_deadline reads only the worker, so these cases build
 * workers by hand with made-up monotonic times: which states have a
 * deadline, that it counts from the current process's start (a respawn is
 * a new warmup with a new deadline), that it fires once per process, and
 * that 0 switches it off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "monitor.h"
#include "progress.h"
#include "server.h"
#include "banned.h"

static void worker_at(struct worker *w, enum worker_state st, double spawn_mono)
{
	memset(w, 0, sizeof(*w));
	w->state = st;
	w->pid = 1234;
	w->spawn_mono = spawn_mono;
}

static void test_deadline_while_starting_or_warming(void **state)
{
	struct worker w;

	worker_at(&w, W_SPAWNING, 100.0);
	assert_true(monitor_warmup_deadline(&w, 600) == 700.0);
	worker_at(&w, W_WARMING, 100.0);
	assert_true(monitor_warmup_deadline(&w, 600) == 700.0);
	assert_true(monitor_warmup_deadline(&w, 1.5) == 101.5);
}

static void test_no_deadline_outside_warmup(void **state)
{
	static const enum worker_state others[] = {W_READY, W_DOWN, W_FAILED, W_STOPPED};
	struct worker w;

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		worker_at(&w, others[i], 100.0);
		assert_true(monitor_warmup_deadline(&w, 600) == 0);
	}
	/* no process (spawn failed, or reaped) */
	worker_at(&w, W_WARMING, 100.0);
	w.pid = 0;
	assert_true(monitor_warmup_deadline(&w, 600) == 0);
}

static void test_zero_timeout_is_off(void **state)
{
	struct worker w;

	worker_at(&w, W_WARMING, 100.0);
	assert_true(monitor_warmup_deadline(&w, 0) == 0);
}

static void test_fires_once_per_process(void **state)
{
	struct worker w;

	worker_at(&w, W_WARMING, 100.0);
	w.warmup_overdue = 1; /* acted on (gate: it keeps warming, no second alarm) */
	assert_true(monitor_warmup_deadline(&w, 600) == 0);
	worker_at(&w, W_WARMING, 100.0);
	snprintf(w.kill_label, sizeof(w.kill_label), "manual"); /* being killed already: its death decides */
	assert_true(monitor_warmup_deadline(&w, 600) == 0);
}

static void test_respawn_is_a_new_warmup(void **state)
{
	struct worker w;

	/* a worker ready since t=100 dies and is respawned at t=5000: the
	 * re-warmup's deadline counts from the respawn */
	worker_at(&w, W_READY, 100.0);
	assert_true(monitor_warmup_deadline(&w, 600) == 0);
	worker_at(&w, W_SPAWNING, 5000.0);
	assert_true(monitor_warmup_deadline(&w, 600) == 5600.0);
}

static void test_phases(void **state)
{
	struct progress_page *p;
	int fd = progress_create(&p);

	assert_true(fd >= 0);
	assert_int_equal(progress_phase(p), PHASE_STARTING); /* a zeroed page */
	assert_string_equal(progress_phase_name(progress_phase(p)), "starting");
	progress_set_phase(p, PHASE_DEVICE_OPEN);
	assert_string_equal(progress_phase_name(progress_phase(p)), "device_open");
	progress_set_phase(p, PHASE_MODEL_LOAD);
	assert_string_equal(progress_phase_name(progress_phase(p)), "model_load");
	progress_set_phase(p, PHASE_WARMUP);
	assert_string_equal(progress_phase_name(progress_phase(p)), "warmup");
	progress_set_phase(p, PHASE_GOLDEN);
	assert_string_equal(progress_phase_name(progress_phase(p)), "golden_digest");
	progress_set_phase(p, PHASE_READY);
	assert_string_equal(progress_phase_name(progress_phase(p)), "ready");
	/* a garbage value (a worker scribbling on the page) reads as starting */
	atomic_store(&p->phase, 77);
	assert_int_equal(progress_phase(p), PHASE_STARTING);
	assert_string_equal(progress_phase_name((enum worker_phase)77), "unknown");
	progress_unmap(p);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deadline_while_starting_or_warming),
	    cmocka_unit_test(test_no_deadline_outside_warmup),
	    cmocka_unit_test(test_zero_timeout_is_off),
	    cmocka_unit_test(test_fires_once_per_process),
	    cmocka_unit_test(test_respawn_is_a_new_warmup),
	    cmocka_unit_test(test_phases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
