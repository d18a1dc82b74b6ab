/* progress.c: see progress.h. */
#include "progress.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

int progress_create(struct progress_page **out)
{
	int fd = memfd_create("mediad-progress", 0);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 4096) < 0 || progress_map(fd, out) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int progress_map(int fd, struct progress_page **out)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

void progress_unmap(struct progress_page *p)
{
	if (p)
		munmap(p, 4096);
}

void progress_step(struct progress_page *p)
{
	uint64_t now = now_ns();
	uint64_t last = atomic_load_explicit(&p->last_ns, memory_order_relaxed);

	atomic_store_explicit(&p->last_step_ns, last ? now - last : 0, memory_order_relaxed);
	atomic_store_explicit(&p->last_ns, now, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->steps, 1, memory_order_release);
}

void progress_begin(struct progress_page *p, uint64_t request_id)
{
	uint64_t now = now_ns();

	atomic_store_explicit(&p->started_ns, now, memory_order_relaxed);
	atomic_store_explicit(&p->last_ns, now, memory_order_relaxed);
	atomic_store_explicit(&p->request_id, request_id, memory_order_release);
}

void progress_end(struct progress_page *p)
{
	atomic_store_explicit(&p->request_id, 0, memory_order_release);
}

void progress_set_phase(struct progress_page *p, enum worker_phase phase)
{
	atomic_store_explicit(&p->phase, (uint32_t)phase, memory_order_release);
}

enum worker_phase progress_phase(const struct progress_page *p)
{
	uint32_t v = atomic_load_explicit(&p->phase, memory_order_acquire);

	return v <= PHASE_READY ? (enum worker_phase)v : PHASE_STARTING;
}

const char *progress_phase_name(enum worker_phase phase)
{
	static const char *const names[] = {"starting", "device_open",   "model_load",
					    "warmup",   "golden_digest", "ready"};

	return phase <= PHASE_READY ? names[phase] : "unknown";
}
