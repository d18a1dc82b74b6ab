/* devices/cpu.c: the cpu device, a pinned pool of worker threads.
 *
 * The pool is the device's execution context. One job runs on it at a time:
 * either a parallel kernel (cpu_device_parallel) or a ping. Posting a job
 * bumps the pool's generation; idle threads spin briefly on it, then sleep on
 * a condition variable. Every piece of state a pool thread touches lives in
 * the pool struct, and every answer a thread gives is checked against the
 * generation it was computed for, so a thread that comes back late (stalled,
 * or hung in an injected fault) can neither be counted for a newer job nor
 * write into memory that was freed under it.
 *
 * Parallel kernels hand out indices through one atomic word holding the
 * generation (high 32 bits) and the next index (low 32 bits): a thread
 * claims an index only with a compare-and-swap that also checks the
 * generation, so a thread holding a stale job can never claim an index of a
 * newer one. A job cannot finish while a claimed index is running, so the
 * job's fn and arg stay valid for every successful claim.
 *
 * A ping posts a small checked sum to every pool thread and waits for all of
 * them on a CLOCK_MONOTONIC deadline. Locking: pool->lock guards everything
 * but the atomics gen, claim and finished. */
#include "devices/cpu.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "faults.h"
#include "log.h"
#include "util.h"

#define CPU_MAX_THREADS 1024
/* Pause iterations an idle thread (or a waiting caller) spins before it
 * sleeps: about 20 us here, enough for back-to-back kernels. */
#define CPU_SPIN 1000
/* Terms of the ping's sum on every thread. */
#define CPU_PING_TERMS 256
/* How long close waits for the threads before it gives up on them. */
#define CPU_CLOSE_WAIT_S 1.0
/* How long reset's checking ping may take. */
#define CPU_RESET_WAIT_S 1.0

enum cpu_job_kind { CPU_JOB_NONE, CPU_JOB_PARALLEL, CPU_JOB_PING };

/* What a pool thread copies (under the lock) when it takes a job. */
struct cpu_job {
	enum cpu_job_kind kind;
	uint64_t gen;
	/* CPU_JOB_PARALLEL */
	void (*fn)(void *arg, int index, int count);
	void *arg;
	int count;
	/* CPU_JOB_PING */
	int hang;    /* block in faults_hang() inside the kernel */
	int corrupt; /* index of the thread that answers wrong, -1 for none */
};

/* One thread's ping answer, stamped with the generation it answers. */
struct cpu_answer {
	uint64_t gen;
	uint64_t value;
};

struct cpu_pool;

struct cpu_thread {
	struct cpu_pool *pool;
	pthread_t tid;
	int index;
	int cpu;     /* CPU to pin to, -1 when the affinity set is unknown */
	int stalled; /* cpu_device_test_stall() */
};

struct cpu_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;  /* pool threads: a job was posted, or stop */
	pthread_cond_t stall; /* stalled pool threads wait here */
	pthread_cond_t done;  /* submitter: job progress, thread exit (monotonic) */
	pthread_cond_t idle;  /* submitters waiting for a busy pool (monotonic) */
	_Atomic uint64_t gen; /* generation of job, written under the lock */
	struct cpu_job job;
	int busy; /* a submitter owns the pool */
	int stop;
	/* parallel */
	_Atomic uint64_t claim; /* (gen << 32) | next index */
	_Atomic int finished;   /* indices whose call returned */
	/* ping */
	uint64_t ping_gen; /* generation of the open ping, 0 when none is open */
	int answered;
	struct cpu_answer *answers;
	/* threads */
	int nthreads;
	int nstarted;
	int nexited;
	struct cpu_thread *threads;
	char ids[64];
	struct cpu_pool *next_leaked;
};

/* The pool whose thread this is (NULL on other threads). */
static __thread struct cpu_pool *cpu_self;

/* Pools of wedged devices that close gave up on: kept reachable on purpose,
 * since their stuck threads may still wake up and touch them. */
static pthread_mutex_t cpu_leaked_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cpu_pool *cpu_leaked;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Absolute CLOCK_MONOTONIC time seconds from now (NaN and negatives = now). */
static void cpu_deadline(struct timespec *ts, double seconds)
{
	uint64_t ns;

	if (!(seconds > 0))
		seconds = 0;
	if (seconds > 1e6)
		seconds = 1e6;
	ns = (uint64_t)(seconds * 1e9);
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ns / 1000000000u);
	ts->tv_nsec += (long)(ns % 1000000000u);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* The ping's kernel: what thread index answers for a ping of generation gen.
 * Never 0, so a zeroed slot can never pass for an answer. */
static uint64_t cpu_ping_sum(int index, uint64_t gen)
{
	uint64_t salt = gen & 0xffff, sum = 0;

	for (uint64_t k = 1; k <= CPU_PING_TERMS; k++)
		sum += (uint64_t)(index + 1) * k + salt;
	return sum;
}

static uint64_t cpu_ping_expected(int index, uint64_t gen)
{
	uint64_t n = CPU_PING_TERMS;

	return (uint64_t)(index + 1) * (n * (n + 1) / 2) + n * (gen & 0xffff);
}

static void cpu_run_ping(struct cpu_thread *t, const struct cpu_job *job)
{
	struct cpu_pool *pool = t->pool;
	uint64_t sum;

	if (job->hang)
		faults_hang();
	sum = cpu_ping_sum(t->index, job->gen);
	if (job->corrupt == t->index)
		sum ^= 1;
	pthread_mutex_lock(&pool->lock);
	/* A late answer to a ping that already gave up is dropped here. */
	if (pool->ping_gen == job->gen && pool->answers[t->index].gen != job->gen) {
		pool->answers[t->index].gen = job->gen;
		pool->answers[t->index].value = sum;
		pool->answered++;
		pthread_cond_broadcast(&pool->done);
	}
	pthread_mutex_unlock(&pool->lock);
}

static void cpu_run_parallel(struct cpu_pool *pool, const struct cpu_job *job)
{
	const uint64_t tag = (job->gen & 0xffffffffu) << 32;
	uint64_t v = atomic_load_explicit(&pool->claim, memory_order_acquire);

	for (;;) {
		int index = (int)(v & 0xffffffffu);

		if ((v & ~(uint64_t)0xffffffffu) != tag || index >= job->count)
			return;
		if (!atomic_compare_exchange_weak_explicit(&pool->claim, &v, v + 1,
							   memory_order_acq_rel,
							   memory_order_acquire))
			continue;
		job->fn(job->arg, index, job->count);
		if (atomic_fetch_add_explicit(&pool->finished, 1, memory_order_acq_rel) + 1 ==
		    job->count) {
			pthread_mutex_lock(&pool->lock);
			pthread_cond_broadcast(&pool->done);
			pthread_mutex_unlock(&pool->lock);
		}
		v = atomic_load_explicit(&pool->claim, memory_order_acquire);
	}
}

static void cpu_pin_self(struct cpu_thread *t)
{
	cpu_set_t set;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "mediad-cpu/%d", t->index);
	pthread_setname_np(pthread_self(), name);
	if (t->cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(t->cpu, &set);
	r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (r)
		log_debug("cpu device %s: thread %d not pinned to CPU %d: %s", t->pool->ids,
			  t->index, t->cpu, strerror(r));
}

/* Called and returns with the lock held: wait for a job newer than seen. */
static void cpu_wait_work(struct cpu_pool *pool, uint64_t seen)
{
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < CPU_SPIN; i++) {
		if (atomic_load_explicit(&pool->gen, memory_order_acquire) != seen)
			break;
		cpu_relax();
	}
	pthread_mutex_lock(&pool->lock);
	if (atomic_load_explicit(&pool->gen, memory_order_relaxed) == seen && !pool->stop)
		pthread_cond_wait(&pool->work, &pool->lock);
}

static void *cpu_thread_main(void *p)
{
	struct cpu_thread *t = p;
	struct cpu_pool *pool = t->pool;
	struct cpu_job job;
	uint64_t seen = 0;

	cpu_self = pool;
	cpu_pin_self(t);
	pthread_mutex_lock(&pool->lock);
	while (!pool->stop) {
		if (t->stalled) {
			pthread_cond_wait(&pool->stall, &pool->lock);
			continue;
		}
		if (atomic_load_explicit(&pool->gen, memory_order_relaxed) == seen) {
			cpu_wait_work(pool, seen);
			continue;
		}
		job = pool->job;
		seen = job.gen;
		pthread_mutex_unlock(&pool->lock);
		if (job.kind == CPU_JOB_PARALLEL)
			cpu_run_parallel(pool, &job);
		else if (job.kind == CPU_JOB_PING)
			cpu_run_ping(t, &job);
		pthread_mutex_lock(&pool->lock);
	}
	pool->nexited++;
	pthread_cond_broadcast(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Make the caller the pool's only submitter, waiting until deadline (NULL =
 * no limit). Called and returns with the lock held. 0 or -ETIMEDOUT. */
static int cpu_acquire(struct cpu_pool *pool, const struct timespec *deadline)
{
	while (pool->busy) {
		if (!deadline)
			pthread_cond_wait(&pool->idle, &pool->lock);
		else if (pthread_cond_timedwait(&pool->idle, &pool->lock, deadline) == ETIMEDOUT &&
			 pool->busy)
			return -ETIMEDOUT;
	}
	pool->busy = 1;
	return 0;
}

static void cpu_release(struct cpu_pool *pool)
{
	pool->busy = 0;
	/* Broadcast: a waiter whose deadline passed may have eaten a signal. */
	pthread_cond_broadcast(&pool->idle);
}

/* With the lock held and the pool acquired: publish job under a new
 * generation and wake the threads. Returns the generation. */
static uint64_t cpu_post(struct cpu_pool *pool, struct cpu_job *job)
{
	uint64_t gen = atomic_load_explicit(&pool->gen, memory_order_relaxed) + 1;

	job->gen = gen;
	pool->job = *job;
	if (job->kind == CPU_JOB_PARALLEL) {
		atomic_store_explicit(&pool->finished, 0, memory_order_relaxed);
		atomic_store_explicit(&pool->claim, (gen & 0xffffffffu) << 32,
				      memory_order_release);
	}
	atomic_store_explicit(&pool->gen, gen, memory_order_release);
	pthread_cond_broadcast(&pool->work);
	return gen;
}

/* dev's pool, or NULL with *rc set. */
static struct cpu_pool *cpu_pool_of(struct mediad_device *dev, int *rc)
{
	if (!dev || dev->ops != &device_cpu_ops) {
		*rc = -EINVAL;
		return NULL;
	}
	if (!dev->priv) {
		*rc = -ENODEV;
		return NULL;
	}
	return dev->priv;
}

int cpu_device_parallel(struct mediad_device *dev, void (*fn)(void *arg, int index, int count),
			void *arg, int count)
{
	struct cpu_job job = {.kind = CPU_JOB_PARALLEL, .fn = fn, .arg = arg, .count = count};
	struct cpu_pool *pool;
	int rc;

	pool = cpu_pool_of(dev, &rc);
	if (!pool)
		return rc;
	if (!fn || count < 0)
		return -EINVAL;
	if (count == 0)
		return 0;
	if (cpu_self == pool) {
		for (int i = 0; i < count; i++)
			fn(arg, i, count);
		return 0;
	}
	pthread_mutex_lock(&pool->lock);
	cpu_acquire(pool, NULL);
	cpu_post(pool, &job);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < CPU_SPIN; i++) {
		if (atomic_load_explicit(&pool->finished, memory_order_acquire) == count)
			break;
		cpu_relax();
	}
	pthread_mutex_lock(&pool->lock);
	while (atomic_load_explicit(&pool->finished, memory_order_acquire) < count)
		pthread_cond_wait(&pool->done, &pool->lock);
	cpu_release(pool);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

int cpu_device_threads(struct mediad_device *dev)
{
	struct cpu_pool *pool;
	int rc;

	pool = cpu_pool_of(dev, &rc);
	return pool ? pool->nthreads : rc;
}

int cpu_device_test_stall(struct mediad_device *dev, int thread_index, int on)
{
	struct cpu_pool *pool;
	int rc;

	pool = cpu_pool_of(dev, &rc);
	if (!pool)
		return rc;
	if (thread_index < 0 || thread_index >= pool->nthreads)
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	pool->threads[thread_index].stalled = on != 0;
	if (!on)
		pthread_cond_broadcast(&pool->stall);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

/* Stop and join the threads and free the pool. When a thread has not
 * stopped within CPU_CLOSE_WAIT_S (hung in a kernel or an injected fault),
 * detach them all and leak the pool: a stuck thread may wake up later and
 * still touch it. */
static void cpu_pool_free(struct cpu_pool *pool)
{
	struct timespec deadline;
	int stuck;

	cpu_deadline(&deadline, CPU_CLOSE_WAIT_S);
	pthread_mutex_lock(&pool->lock);
	pool->stop = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_cond_broadcast(&pool->stall);
	while (pool->nexited < pool->nstarted) {
		if (pthread_cond_timedwait(&pool->done, &pool->lock, &deadline) == ETIMEDOUT)
			break;
	}
	stuck = pool->nstarted - pool->nexited;
	pthread_mutex_unlock(&pool->lock);
	if (stuck) {
		log_warn("cpu device %s: %d of %d threads did not stop within %.3f s; "
			 "detaching them and leaking the device state",
			 pool->ids, stuck, pool->nstarted, CPU_CLOSE_WAIT_S);
		for (int i = 0; i < pool->nstarted; i++)
			pthread_detach(pool->threads[i].tid);
		pthread_mutex_lock(&cpu_leaked_lock);
		pool->next_leaked = cpu_leaked;
		cpu_leaked = pool;
		pthread_mutex_unlock(&cpu_leaked_lock);
		return;
	}
	for (int i = 0; i < pool->nstarted; i++)
		pthread_join(pool->threads[i].tid, NULL);
	pthread_cond_destroy(&pool->work);
	pthread_cond_destroy(&pool->stall);
	pthread_cond_destroy(&pool->done);
	pthread_cond_destroy(&pool->idle);
	pthread_mutex_destroy(&pool->lock);
	free(pool->answers);
	free(pool->threads);
	free(pool);
}

static struct cpu_pool *cpu_pool_new(const struct mediad_device *dev)
{
	struct cpu_pool *pool = xcalloc(1, sizeof(*pool));
	pthread_condattr_t ca;

	pthread_mutex_init(&pool->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->work, &ca);
	pthread_cond_init(&pool->stall, &ca);
	pthread_cond_init(&pool->done, &ca);
	pthread_cond_init(&pool->idle, &ca);
	pthread_condattr_destroy(&ca);
	pool->nthreads = dev->threads;
	pool->threads = xcalloc((size_t)dev->threads, sizeof(*pool->threads));
	pool->answers = xcalloc((size_t)dev->threads, sizeof(*pool->answers));
	snprintf(pool->ids, sizeof(pool->ids), "%s", dev->ids);
	return pool;
}

/* Assign CPUs round-robin over the process's affinity set; -1 (no pinning)
 * when it cannot be read. */
static void cpu_assign(struct cpu_pool *pool)
{
	cpu_set_t set;
	int cpus[CPU_SETSIZE], n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpus[n++] = c;
	} else {
		log_debug("cpu device %s: sched_getaffinity: %s; threads not pinned", pool->ids,
			  strerror(errno));
	}
	for (int i = 0; i < pool->nthreads; i++)
		pool->threads[i].cpu = n ? cpus[i % n] : -1;
}

static int cpu_open(struct mediad_device *dev, char *err, size_t errlen)
{
	struct cpu_pool *pool;
	sigset_t all, old;
	int r = 0;

	if (dev->threads < 1 || dev->threads > CPU_MAX_THREADS) {
		snprintf(err, errlen, "cpu device %s: threads must be 1..%d, got %d", dev->ids,
			 CPU_MAX_THREADS, dev->threads);
		return -EINVAL;
	}
	pool = cpu_pool_new(dev);
	cpu_assign(pool);
	/* Pool threads take no signals: they belong to the worker's main loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < pool->nthreads; i++) {
		struct cpu_thread *t = &pool->threads[i];

		t->pool = pool;
		t->index = i;
		r = pthread_create(&t->tid, NULL, cpu_thread_main, t);
		if (r)
			break;
		pool->nstarted++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		snprintf(err, errlen, "cpu device %s: cannot start thread %d of %d: %s", dev->ids,
			 pool->nstarted + 1, pool->nthreads, strerror(r));
		cpu_pool_free(pool);
		return -r;
	}
	dev->priv = pool;
	log_debug("cpu device %s: %d threads started", dev->ids, pool->nthreads);
	return 0;
}

/* Judge the answers of ping gen; called with the lock held. */
static int cpu_ping_check(struct cpu_pool *pool, uint64_t gen, double timeout_s, int corrupt,
			  char *err, size_t errlen)
{
	int missing = 0, first_missing = -1;

	for (int i = 0; i < pool->nthreads; i++) {
		const struct cpu_answer *a = &pool->answers[i];
		uint64_t want = cpu_ping_expected(i, gen);

		if (a->gen != gen) {
			if (first_missing < 0)
				first_missing = i;
			missing++;
		} else if (a->value != want) {
			snprintf(err, errlen, "cpu device %s: thread %d answered %llu, expected %llu%s",
				 pool->ids, i, (unsigned long long)a->value,
				 (unsigned long long)want,
				 corrupt ? " (fault injection: error_ping)" : "");
			return -EIO;
		}
	}
	if (missing) {
		snprintf(err, errlen,
			 "cpu device %s: %d of %d threads did not answer within %.3f s "
			 "(first: thread %d)",
			 pool->ids, missing, pool->nthreads, timeout_s, first_missing);
		return -ETIMEDOUT;
	}
	return 0;
}

/* A wrong answer is reported (-EIO) even when other threads also timed out:
 * it is the stronger evidence. */
static int cpu_ping(struct mediad_device *dev, double timeout_s, char *err, size_t errlen)
{
	struct cpu_job job = {.kind = CPU_JOB_PING, .corrupt = -1};
	struct cpu_pool *pool;
	struct timespec deadline;
	uint64_t gen;
	int rc;

	pool = cpu_pool_of(dev, &rc);
	if (!pool) {
		snprintf(err, errlen, "cpu device %s is not open", dev ? dev->ids : "?");
		return rc;
	}
	if (cpu_self == pool) {
		snprintf(err, errlen, "cpu device %s: ping from its own pool thread", pool->ids);
		return -EDEADLK;
	}
	if (isnan(timeout_s) || timeout_s < 0)
		timeout_s = 0;
	cpu_deadline(&deadline, timeout_s);
	pthread_mutex_lock(&pool->lock);
	if (cpu_acquire(pool, &deadline) < 0) {
		pthread_mutex_unlock(&pool->lock);
		snprintf(err, errlen, "cpu device %s: pool still busy after %.3f s", pool->ids,
			 timeout_s);
		return -ETIMEDOUT;
	}
	/* Taken once the pool is ours, so a busy pool does not eat a counted fault. */
	job.hang = faults_take(FAULT_HANG_PING, NULL);
	if (faults_take(FAULT_ERROR_PING, NULL))
		job.corrupt = pool->nthreads - 1;
	pool->answered = 0;
	gen = cpu_post(pool, &job);
	pool->ping_gen = gen;
	while (pool->answered < pool->nthreads) {
		if (pthread_cond_timedwait(&pool->done, &pool->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pool->ping_gen = 0;
	rc = cpu_ping_check(pool, gen, timeout_s, job.corrupt >= 0, err, errlen);
	cpu_release(pool);
	pthread_mutex_unlock(&pool->lock);
	return rc;
}

/* The caller's struct mediad_device stays the caller's; only dev->priv (the pool) is
 * ever leaked, and pool threads never touch *dev. */
static void cpu_close(struct mediad_device *dev)
{
	struct cpu_pool *pool = dev->priv;

	if (!pool)
		return;
	dev->priv = NULL;
	cpu_pool_free(pool);
}

/* Reset in place: release every stalled pool thread, then check with a ping
 * that every thread answers again. A restarted worker's pool is new, so
 * this mostly proves the fresh pool; on a pool that a drill stalled it is
 * the recovery. 0, or the ping's -errno. */
static int cpu_reset(struct mediad_device *dev)
{
	struct cpu_pool *pool;
	char err[160];
	int rc;

	pool = cpu_pool_of(dev, &rc);
	if (!pool)
		return rc;
	pthread_mutex_lock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pool->threads[i].stalled = 0;
	pthread_cond_broadcast(&pool->stall);
	pthread_mutex_unlock(&pool->lock);
	rc = cpu_ping(dev, CPU_RESET_WAIT_S, err, sizeof(err));
	if (rc < 0)
		log_warn("cpu device %s: reset: %s", pool->ids, err);
	return rc;
}

const struct mediad_device_ops device_cpu_ops = {
	.name = "cpu",
	.open = cpu_open,
	.ping = cpu_ping,
	.reset = cpu_reset,
	.close = cpu_close,
	.parallel = cpu_device_parallel,
	.threads = cpu_device_threads,
};
