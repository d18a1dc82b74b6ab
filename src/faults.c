/* faults.c: see faults.h. */
#include "faults.h"

#include <pthread.h>
#include <string.h>

static const char *names[FAULT_COUNT] = {
	"hang_ping", "hang_deep", "hang_run", "error_ping", "error_deep", "corrupt_deep",
	"crash", "slow_ms",
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cleared;
	uint64_t epoch; /* bumped on every clear */
	int active[FAULT_COUNT];
	int64_t value[FAULT_COUNT];
	int64_t count[FAULT_COUNT];
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}, {0}};

int fault_parse(const char *name)
{
	for (int i = 0; i < FAULT_COUNT; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *fault_name(enum fault_kind k)
{
	return k < FAULT_COUNT ? names[k] : "unknown";
}

const char *fault_names_joined(void)
{
	return "hang_ping, hang_deep, hang_run, error_ping, error_deep, corrupt_deep, crash, slow_ms";
}

void faults_set(enum fault_kind k, int64_t value, int64_t count)
{
	pthread_mutex_lock(&g.lock);
	g.active[k] = 1;
	g.value[k] = value;
	g.count[k] = count > 0 ? count : 0;
	pthread_mutex_unlock(&g.lock);
}

void faults_clear(void)
{
	pthread_mutex_lock(&g.lock);
	memset(g.active, 0, sizeof(g.active));
	g.epoch++;
	pthread_cond_broadcast(&g.cleared);
	pthread_mutex_unlock(&g.lock);
}

int faults_take(enum fault_kind k, int64_t *value)
{
	int on;

	pthread_mutex_lock(&g.lock);
	on = g.active[k];
	if (on) {
		if (value)
			*value = g.value[k];
		if (g.count[k] > 0 && --g.count[k] == 0)
			g.active[k] = 0;
	}
	pthread_mutex_unlock(&g.lock);
	return on;
}

void faults_hang(void)
{
	pthread_mutex_lock(&g.lock);
	uint64_t epoch = g.epoch;
	while (g.epoch == epoch)
		pthread_cond_wait(&g.cleared, &g.lock);
	pthread_mutex_unlock(&g.lock);
}
