/* test_ipc.c: unit tests of the supervisor <-> worker framing (src/ipc.c).
 *
 * Frames go through real AF_UNIX socketpairs: the non-blocking supervisor
 * side (ipc_out_push / ipc_out_flush, ipc_reader_fill / ipc_reader_next) and
 * the blocking worker side (ipc_send from a thread or a forked child), with
 * payloads of 0, 1, 64 KiB and 1 MiB (more than the socket buffer, so the
 * queue drains over several EAGAIN rounds). Frames carrying a memfd are
 * interleaved with frames without one and each fd is checked by reading the
 * content back through it. The same byte stream fed one byte at a time gives
 * the same frames; corrupt headers give -EPROTO; EOF gives 0; queued and
 * unclaimed fds are closed on release, and an ipc_send cut short by a
 * signal resumes. Every test that opens descriptors counts /proc/self/fd
 * before and after, so a leaked descriptor fails it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc.h"
#include "banned.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define HDR sizeof(struct ipc_hdr)

/* Open descriptors of this process (without the one used to count them). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* sv[0] is the supervisor side (non-blocking); sv[1] stays blocking unless
 * nb1. A small send buffer on both makes 1 MiB certainly not fit at once. */
static void make_pair(int sv[2], int nb1)
{
	int sz = 64 * KIB;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	set_nonblock(sv[0]);
	if (nb1)
		set_nonblock(sv[1]);
}

static void close_pair(int sv[2])
{
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	sv[0] = sv[1] = -1;
}

static uint8_t pattern(size_t i, unsigned seed)
{
	return (uint8_t)(i * 131u + seed * 71u + (i >> 9));
}

/* Helpers named raw_ use no cmocka assertion: a forked child calls them. */
static uint8_t *raw_payload(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);

	for (size_t i = 0; p && i < n; i++)
		p[i] = pattern(i, seed);
	return p;
}

static uint8_t *make_payload(size_t n, unsigned seed)
{
	uint8_t *p = raw_payload(n, seed);

	assert_non_null(p);
	return p;
}

static int payload_ok(const void *p, size_t n, unsigned seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(i, seed))
			return 0;
	return 1;
}

/* A memfd holding `n` pattern bytes (seed), or -1. */
static int raw_memfd(size_t n, unsigned seed)
{
	int fd = memfd_create("test-ipc", MFD_CLOEXEC);
	uint8_t *p = raw_payload(n, seed);
	size_t off = 0;

	while (fd >= 0 && p && off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w <= 0) {
			close(fd);
			fd = -1;
			break;
		}
		off += (size_t)w;
	}
	if (!p && fd >= 0) {
		close(fd);
		fd = -1;
	}
	free(p);
	return fd;
}

static int make_memfd(size_t n, unsigned seed)
{
	int fd = raw_memfd(n, seed);

	assert_true(fd >= 0);
	return fd;
}

/* The content behind a received fd is the pattern (n, seed). */
static void check_fd_content(int fd, size_t n, unsigned seed)
{
	struct stat st;
	uint8_t *p;
	size_t off = 0;

	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* never inherited by exec */
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((size_t)st.st_size, n);
	p = malloc(n ? n : 1);
	assert_non_null(p);
	while (off < n) {
		ssize_t r = pread(fd, p + off, n - off, (off_t)off);
		assert_true(r > 0);
		off += (size_t)r;
	}
	assert_true(payload_ok(p, n, seed));
	free(p);
}

/* What a frame should look like. fd_len < 0: no fd. */
struct want {
	uint16_t type;
	uint32_t flags;
	uint32_t aux;
	uint64_t id;
	size_t len;
	unsigned seed;
	long fd_len;
	unsigned fd_seed;
};

struct rx {
	struct ipc_reader rd;
	const struct want *want;
	int n_want;
	int got;
	int eagain;
};

static void check_frame(const struct want *w, const struct ipc_frame *f)
{
	assert_int_equal(f->hdr.magic, IPC_MAGIC);
	assert_int_equal(f->hdr.type, w->type);
	assert_int_equal(f->hdr.aux, w->aux);
	assert_int_equal(f->hdr.id, w->id);
	assert_int_equal(f->hdr.len, w->len);
	assert_int_equal(f->hdr.flags, w->flags | (w->fd_len >= 0 ? IPC_F_FD : 0));
	assert_non_null(f->payload);
	assert_true(payload_ok(f->payload, w->len, w->seed));
	if (w->fd_len < 0) {
		assert_int_equal(f->fd, -1);
	} else {
		check_fd_content(f->fd, (size_t)w->fd_len, w->fd_seed);
		close(f->fd);
	}
}

static void rx_next_all(struct rx *x)
{
	struct ipc_frame f;
	int r;

	while ((r = ipc_reader_next(&x->rd, &f)) == 1) {
		assert_true(x->got < x->n_want);
		check_frame(&x->want[x->got], &f);
		x->got++;
	}
	assert_int_equal(r, 0);
}

/* Read and check every frame available now; returns the last fill result
 * (-EAGAIN normally, 0 on EOF). */
static ssize_t rx_drain(struct rx *x, int sock)
{
	ssize_t n;

	while ((n = ipc_reader_fill(&x->rd, sock)) > 0)
		rx_next_all(x);
	if (n == -EAGAIN)
		x->eagain++;
	return n;
}

static void push_want(struct ipc_out *o, const struct want *w)
{
	uint8_t *p = make_payload(w->len, w->seed);
	int fd = w->fd_len >= 0 ? make_memfd((size_t)w->fd_len, w->fd_seed) : -1;

	ipc_out_push(o, w->type, w->flags, w->aux, w->id, p, w->len, fd);
	free(p);
}

/* Flush o into sv[0] and read on sv[1] until every frame arrived. Returns
 * how many times the flush had to wait for the reader. */
static int pump(struct ipc_out *o, int sv[2], struct rx *x)
{
	int waits = 0;

	for (int round = 0; round < 100000; round++) {
		int r = ipc_out_flush(o, sv[0]);

		if (r == -EAGAIN)
			waits++;
		else
			assert_int_equal(r, 0);
		assert_int_equal(rx_drain(x, sv[1]), -EAGAIN);
		if (r == 0 && x->got == x->n_want)
			return waits;
	}
	fail_msg("frames never arrived: %d of %d", x->got, x->n_want);
	return -1;
}

static void test_out_to_reader_sizes(void **state)
{
	static const struct want w[] = {
	    {IPC_TASK, 0, 7, 1000, 0, 1, -1, 0},
	    {IPC_TASK, IPC_F_BATCH_MORE, 8, 1001, 1, 2, -1, 0},
	    {IPC_RESULT, 0, 200, 1002, 64 * KIB, 3, -1, 0},
	    {IPC_CHUNK, 0, 0, UINT64_MAX, MIB, 4, -1, 0},
	    {IPC_SHUTDOWN, 0, UINT32_MAX, 0, 0, 5, -1, 0},
	};
	const int n = (int)(sizeof(w) / sizeof(w[0]));
	int fds0 = count_fds();
	struct ipc_out o;
	struct rx x = {.want = w, .n_want = n};
	int sv[2];
	size_t total = 0;

	make_pair(sv, 1);
	ipc_out_init(&o);
	ipc_reader_init(&x.rd);
	for (int i = 0; i < n; i++) {
		push_want(&o, &w[i]);
		total += HDR + w[i].len;
	}
	assert_int_equal(o.frames, n);
	assert_int_equal(o.pending, total);
	/* 1 MiB through a 64 KiB socket: several rounds of EAGAIN */
	assert_true(pump(&o, sv, &x) >= 2);
	assert_int_equal(x.got, n);
	assert_int_equal(o.frames, 0);
	assert_int_equal(o.pending, 0);
	assert_null(o.head);
	/* nothing more to send or read */
	assert_int_equal(ipc_out_flush(&o, sv[0]), 0);
	assert_int_equal(ipc_reader_fill(&x.rd, sv[1]), -EAGAIN);
	ipc_out_release(&o);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

/* The worker side: blocking ipc_send of every frame in `want`, payload split
 * in two parts at a different place each time. */
struct sender {
	int sock;
	const struct want *want;
	int n;
	int rc;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->rc = 0;
	for (int i = 0; i < s->n && !s->rc; i++) {
		const struct want *w = &s->want[i];
		uint8_t *p = raw_payload(w->len, w->seed);
		size_t cut = w->len * (size_t)(i % 3) / 2;
		int fd = w->fd_len >= 0 ? raw_memfd((size_t)w->fd_len, w->fd_seed) : -1;

		if (cut > w->len)
			cut = w->len;
		if (!p || (w->fd_len >= 0 && fd < 0))
			s->rc = -ENOMEM;
		else
			s->rc = ipc_send(s->sock, w->type, w->flags, w->aux, w->id, p, cut, p + cut,
			                 w->len - cut, fd);
		if (fd >= 0)
			close(fd); /* ipc_send does not take it */
		free(p);
	}
	return NULL;
}

/* Receive on the non-blocking side until `n` frames or EOF. */
static void receive_all(struct rx *x, int sock, int until_eof)
{
	for (;;) {
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		ssize_t r = rx_drain(x, sock);

		if (r == 0)
			break;
		assert_int_equal(r, -EAGAIN);
		if (!until_eof && x->got == x->n_want)
			break;
		/* generous safety net against a hang, not a timing assertion */
		if (poll(&pfd, 1, 30000) != 1)
			fail_msg("no data after 30 s: %d of %d frames", x->got, x->n_want);
	}
}

static void test_send_blocking_thread(void **state)
{
	static const struct want w[] = {
	    {IPC_HELLO, 0, 0, 0, 0, 11, -1, 0},           {IPC_READY, 0, 1, 2, 1, 12, -1, 0},
	    {IPC_RESULT, 0, 200, 3, 64 * KIB, 13, -1, 0}, {IPC_RESULT, 0, 201, 4, MIB, 14, -1, 0},
	    {IPC_PROBE_RESULT, 0, 2, 5, 3, 15, -1, 0},
	};
	const int n = (int)(sizeof(w) / sizeof(w[0]));
	int fds0 = count_fds();
	struct rx x = {.want = w, .n_want = n};
	struct sender s;
	pthread_t th;
	int sv[2];

	make_pair(sv, 0);
	ipc_reader_init(&x.rd);
	s = (struct sender){.sock = sv[1], .want = w, .n = n, .rc = -1};
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	receive_all(&x, sv[0], 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(x.got, n);
	/* the peer closes: EOF */
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(ipc_reader_fill(&x.rd, sv[0]), 0);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_send_too_big(void **state)
{
	static char one;
	int sv[2];
	char b;

	make_pair(sv, 0);
	/* rejected before anything is read or sent */
	assert_int_equal(ipc_send(sv[1], IPC_RESULT, 0, 0, 1, &one, IPC_MAX_PAYLOAD, &one, 1, -1),
	                 -EMSGSIZE);
	assert_int_equal(recv(sv[0], &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close_pair(sv);
}

/* Interleaved frames with and without fds; the fd frames are not all
 * adjacent and one follows an inline frame larger than the socket buffer. */
static const struct want fd_frames[] = {
    {IPC_TASK, 0, 1, 1, 10, 21, 5, 31},
    {IPC_TASK, 0, 1, 2, MIB, 22, -1, 0},
    {IPC_TASK, IPC_F_BATCH_MORE, 1, 3, 0, 23, 4096, 33},
    {IPC_CANCEL, 0, 0, 4, 0, 24, -1, 0},
    {IPC_TASK, 0, 1, 5, 100, 25, 0, 35}, /* an empty memfd is still an fd */
    {IPC_TASK, 0, 1, 6, 7, 26, MIB, 36},
    {IPC_FAULT, 0, 0, 7, 20, 27, -1, 0},
    {IPC_RESULT, 0, 200, 8, 64 * KIB, 28, 100, 38},
};
#define N_FD_FRAMES ((int)(sizeof(fd_frames) / sizeof(fd_frames[0])))

static void test_fd_frames_out_queue(void **state)
{
	int fds0 = count_fds();
	struct ipc_out o;
	struct rx x = {.want = fd_frames, .n_want = N_FD_FRAMES};
	int sv[2];

	make_pair(sv, 1);
	ipc_out_init(&o);
	ipc_reader_init(&x.rd);
	for (int i = 0; i < N_FD_FRAMES; i++)
		push_want(&o, &fd_frames[i]);
	assert_true(pump(&o, sv, &x) >= 1);
	assert_int_equal(x.got, N_FD_FRAMES);
	assert_int_equal(x.rd.n_fds, 0);
	ipc_out_release(&o);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	/* the queue closed every fd it sent, the test closed every one received */
	assert_int_equal(count_fds(), fds0);
}

/* Several fds waiting in the reader at once are handed out in send order. */
static void test_fd_queue_fifo(void **state)
{
	static const struct want w[] = {
	    {IPC_TASK, 0, 1, 1, 3, 81, 11, 91}, {IPC_CANCEL, 0, 0, 2, 0, 82, -1, 0},
	    {IPC_TASK, 0, 1, 3, 5, 83, 22, 93}, {IPC_TASK, 0, 1, 4, 0, 84, 33, 94},
	    {IPC_FAULT, 0, 0, 5, 9, 85, -1, 0}, {IPC_TASK, 0, 1, 6, 1, 86, 44, 96},
	};
	const int n = (int)(sizeof(w) / sizeof(w[0]));
	int fds0 = count_fds();
	struct rx x = {.want = w, .n_want = n};
	struct ipc_out o;
	int sv[2];
	ssize_t r;

	make_pair(sv, 1);
	ipc_out_init(&o);
	ipc_reader_init(&x.rd);
	for (int i = 0; i < n; i++)
		push_want(&o, &w[i]);
	assert_int_equal(ipc_out_flush(&o, sv[0]), 0);
	/* read everything before claiming anything */
	while ((r = ipc_reader_fill(&x.rd, sv[1])) > 0)
		;
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(x.rd.n_fds, 4);
	rx_next_all(&x);
	assert_int_equal(x.got, n);
	assert_int_equal(x.rd.n_fds, 0);
	ipc_out_release(&o);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

/* A blocking ipc_send interrupted by a signal after part of the frame went
 * out resumes where it stopped. */
struct slow_sender {
	int sock;
	size_t len;
	int rc;
	int tid;
};

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void *slow_main(void *arg)
{
	struct slow_sender *s = arg;
	uint8_t *p = raw_payload(s->len, 61);

	__atomic_store_n(&s->tid, (int)gettid(), __ATOMIC_RELEASE);
	s->rc = p ? ipc_send(s->sock, IPC_RESULT, 0, 200, 77, p, s->len / 3, p + s->len / 3,
	                     s->len - s->len / 3, -1)
	          : -ENOMEM;
	free(p);
	return NULL;
}

/* Scheduler state letter of a thread of this process ('S': sleeping). */
static char thread_state(int tid)
{
	char path[64], line[512];
	FILE *f;
	char st = '?';

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return st;
	if (fgets(line, sizeof(line), f)) {
		char *e = strrchr(line, ')');
		if (e && e[1] == ' ')
			st = e[2];
	}
	fclose(f);
	return st;
}

static void test_send_interrupted_resumes(void **state)
{
	static const struct want w[] = {{IPC_RESULT, 0, 200, 77, MIB, 61, -1, 0}};
	int fds0 = count_fds();
	struct rx x = {.want = w, .n_want = 1};
	struct slow_sender s = {.len = MIB, .rc = -1};
	struct sigaction sa, old;
	pthread_t th;
	int sv[2], tid = 0, queued = 0;
	long spins;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1; /* no SA_RESTART: the send is cut short */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	make_pair(sv, 0);
	ipc_reader_init(&x.rd);
	s.sock = sv[1];
	assert_int_equal(pthread_create(&th, NULL, slow_main, &s), 0);
	/* wait until the sender has filled the socket and sleeps in sendmsg */
	for (spins = 0; spins < 100000000L; spins++) {
		tid = __atomic_load_n(&s.tid, __ATOMIC_ACQUIRE);
		if (tid && ioctl(sv[0], FIONREAD, &queued) == 0 && queued > 0 &&
		    thread_state(tid) == 'S')
			break;
		sched_yield();
	}
	assert_true(queued > 0);
	assert_int_equal(pthread_kill(th, SIGUSR1), 0);
	receive_all(&x, sv[0], 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(x.got, 1);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_fd_frames_forked_child(void **state)
{
	int fds0 = count_fds();
	struct rx x = {.want = fd_frames, .n_want = N_FD_FRAMES};
	int sv[2], status;
	pid_t pid;

	make_pair(sv, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sender s = {.sock = sv[1], .want = fd_frames, .n = N_FD_FRAMES};
		close(sv[0]);
		sender_main(&s);
		close(sv[1]);
		_exit(s.rc == 0 ? 0 : 10);
	}
	close(sv[1]);
	sv[1] = -1;
	ipc_reader_init(&x.rd);
	receive_all(&x, sv[0], 1);
	assert_int_equal(x.got, N_FD_FRAMES);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	ipc_reader_release(&x.rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

/* The byte stream of several frames as a worker writes it. */
static const struct want stream_frames[] = {
    {IPC_HELLO, 0, 0, 0, 11, 41, -1, 0},
    {IPC_CHUNK, 0, 0, 9, 0, 42, -1, 0},
    {IPC_CHUNK, 0, 0, 9, 1, 43, -1, 0},
    {IPC_END, 0, 200, 9, 300, 44, -1, 0},
    {IPC_RESULT, 0, 200, 10, 70 * KIB, 45, -1, 0},
    {IPC_PROBE_RESULT, 0, 1, 3, 57, 46, -1, 0},
};
#define N_STREAM ((int)(sizeof(stream_frames) / sizeof(stream_frames[0])))

static uint8_t *wire_bytes(size_t *len)
{
	struct sender s = {.want = stream_frames, .n = N_STREAM};
	size_t cap = 0, n = 0;
	uint8_t *out;
	pthread_t th;
	int sv[2];

	for (int i = 0; i < N_STREAM; i++)
		cap += HDR + stream_frames[i].len;
	out = malloc(cap);
	assert_non_null(out);
	make_pair(sv, 0);
	s.sock = sv[1];
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	while (n < cap) {
		struct pollfd pfd = {.fd = sv[0], .events = POLLIN};
		ssize_t r = recv(sv[0], out + n, cap - n, MSG_DONTWAIT);
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		assert_int_equal(poll(&pfd, 1, 30000), 1);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(s.rc, 0);
	close_pair(sv);
	*len = cap;
	return out;
}

static void test_partial_feed_bytewise(void **state)
{
	size_t len;
	uint8_t *wire = wire_bytes(&len);
	struct rx whole = {.want = stream_frames, .n_want = N_STREAM};
	struct rx bytes = {.want = stream_frames, .n_want = N_STREAM};
	size_t frame_end = 0;

	/* all at once */
	ipc_reader_init(&whole.rd);
	assert_int_equal(ipc_reader_feed(&whole.rd, wire, len), 0);
	rx_next_all(&whole);
	assert_int_equal(whole.got, N_STREAM);
	ipc_reader_release(&whole.rd);

	/* one byte at a time: each frame appears exactly with its last byte */
	ipc_reader_init(&bytes.rd);
	for (size_t i = 0; i < len; i++) {
		int before = bytes.got;
		if (bytes.got < N_STREAM && frame_end == 0)
			frame_end = HDR + stream_frames[bytes.got].len;
		assert_int_equal(ipc_reader_feed(&bytes.rd, wire + i, 1), 0);
		rx_next_all(&bytes);
		frame_end--;
		if (frame_end == 0)
			assert_int_equal(bytes.got, before + 1);
		else
			assert_int_equal(bytes.got, before);
	}
	assert_int_equal(bytes.got, N_STREAM);
	/* empty feeds change nothing */
	assert_int_equal(ipc_reader_feed(&bytes.rd, wire, 0), 0);
	rx_next_all(&bytes);
	ipc_reader_release(&bytes.rd);

	/* in uneven chunks through a socket too */
	struct rx chunks = {.want = stream_frames, .n_want = N_STREAM};
	int sv[2];
	size_t off = 0, step = 1;
	make_pair(sv, 1);
	ipc_reader_init(&chunks.rd);
	while (off < len) {
		size_t k = step < len - off ? step : len - off;
		assert_int_equal(send(sv[1], wire + off, k, 0), (ssize_t)k);
		off += k;
		step = step * 3 + 1;
		if (step > 20000)
			step = 7;
		assert_int_equal(rx_drain(&chunks, sv[0]), -EAGAIN);
	}
	assert_int_equal(chunks.got, N_STREAM);
	ipc_reader_release(&chunks.rd);
	close_pair(sv);
	free(wire);
}

static struct ipc_hdr hdr(uint16_t magic, uint16_t type, uint32_t len, uint32_t flags)
{
	struct ipc_hdr h;

	memset(&h, 0, sizeof(h));
	h.magic = magic;
	h.type = type;
	h.len = len;
	h.flags = flags;
	h.id = 42;
	return h;
}

static int next_after_feed(const struct ipc_hdr *h, const void *tail, size_t n)
{
	struct ipc_reader rd;
	struct ipc_frame f;
	int r;

	ipc_reader_init(&rd);
	assert_int_equal(ipc_reader_feed(&rd, h, sizeof(*h)), 0);
	if (n)
		assert_int_equal(ipc_reader_feed(&rd, tail, n), 0);
	r = ipc_reader_next(&rd, &f);
	if (r == 1 && f.fd >= 0)
		close(f.fd);
	ipc_reader_release(&rd);
	return r;
}

static void test_corrupt_streams(void **state)
{
	char pad[16] = "0123456789abcdef";
	struct ipc_hdr h;

	/* a sane header is accepted (control) */
	h = hdr(IPC_MAGIC, IPC_RESULT, 16, 0);
	assert_int_equal(next_after_feed(&h, pad, 16), 1);
	h = hdr(IPC_MAGIC, IPC_TYPE_MAX - 1, 0, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), 1);

	h = hdr(0x444d, IPC_RESULT, 16, 0); /* byte-swapped magic */
	assert_int_equal(next_after_feed(&h, pad, 16), -EPROTO);
	h = hdr(0, IPC_RESULT, 0, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	h = hdr(IPC_MAGIC, 0, 0, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	h = hdr(IPC_MAGIC, IPC_TYPE_MAX, 0, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	h = hdr(IPC_MAGIC, 0xffff, 0, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	/* an oversized length is refused from the header alone, not waited for */
	h = hdr(IPC_MAGIC, IPC_RESULT, IPC_MAX_PAYLOAD + 1, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	h = hdr(IPC_MAGIC, IPC_RESULT, UINT32_MAX, 0);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);
	/* the largest legal length just waits for its payload */
	h = hdr(IPC_MAGIC, IPC_RESULT, IPC_MAX_PAYLOAD, 0);
	assert_int_equal(next_after_feed(&h, pad, 16), 0);
	/* an fd flag with no fd received */
	h = hdr(IPC_MAGIC, IPC_RESULT, 16, IPC_F_FD);
	assert_int_equal(next_after_feed(&h, pad, 16), -EPROTO);
	h = hdr(IPC_MAGIC, IPC_TASK, 0, IPC_F_FD | IPC_F_BATCH_MORE);
	assert_int_equal(next_after_feed(&h, NULL, 0), -EPROTO);

	/* a good frame, then garbage: the good one is delivered first; the
	 * garbage is undecided while shorter than a header, then an error that
	 * sticks */
	struct ipc_reader rd;
	struct ipc_frame f;
	h = hdr(IPC_MAGIC, IPC_CHUNK, 4, 0);
	ipc_reader_init(&rd);
	assert_int_equal(ipc_reader_feed(&rd, &h, sizeof(h)), 0);
	assert_int_equal(ipc_reader_feed(&rd, "abcd", 4), 0);
	assert_int_equal(ipc_reader_feed(&rd, pad, sizeof(pad)), 0);
	assert_int_equal(ipc_reader_next(&rd, &f), 1);
	assert_int_equal(f.hdr.type, IPC_CHUNK);
	assert_int_equal(f.hdr.len, 4);
	assert_int_equal(f.hdr.id, 42);
	assert_int_equal(f.fd, -1);
	assert_memory_equal(f.payload, "abcd", 4);
	assert_int_equal(ipc_reader_next(&rd, &f), 0);
	assert_int_equal(ipc_reader_feed(&rd, pad, sizeof(pad)), 0);
	assert_int_equal(ipc_reader_next(&rd, &f), -EPROTO);
	assert_int_equal(ipc_reader_next(&rd, &f), -EPROTO);
	ipc_reader_release(&rd);
}

static void test_corrupt_from_socket(void **state)
{
	int fds0 = count_fds();
	struct ipc_reader rd;
	struct ipc_frame f;
	struct ipc_hdr h = hdr(IPC_MAGIC, IPC_RESULT, 0, IPC_F_FD);
	int sv[2];

	/* an fd flag whose fd never came: the reader must not invent one */
	make_pair(sv, 1);
	ipc_reader_init(&rd);
	assert_int_equal(write(sv[1], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(ipc_reader_fill(&rd, sv[0]), (ssize_t)sizeof(h));
	assert_int_equal(ipc_reader_next(&rd, &f), -EPROTO);
	ipc_reader_release(&rd);

	/* bad magic after a valid frame sent by ipc_send */
	ipc_reader_init(&rd);
	assert_int_equal(ipc_send(sv[1], IPC_HELLO, 0, 0, 1, "{}", 2, NULL, 0, -1), 0);
	h = hdr(0x1234, IPC_HELLO, 0, 0);
	assert_int_equal(write(sv[1], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_true(ipc_reader_fill(&rd, sv[0]) > 0);
	assert_int_equal(ipc_reader_next(&rd, &f), 1);
	assert_int_equal(f.hdr.type, IPC_HELLO);
	assert_memory_equal(f.payload, "{}", 2);
	assert_int_equal(ipc_reader_next(&rd, &f), -EPROTO);
	ipc_reader_release(&rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_max_payload_and_ceiling(void **state)
{
	struct ipc_hdr h = hdr(IPC_MAGIC, IPC_RESULT, IPC_MAX_PAYLOAD, 0);
	uint8_t *p = make_payload(IPC_MAX_PAYLOAD, 51);
	static char slack[4096];
	struct ipc_reader rd;
	struct ipc_frame f;

	ipc_reader_init(&rd);
	assert_int_equal(ipc_reader_feed(&rd, &h, sizeof(h)), 0);
	assert_int_equal(ipc_reader_feed(&rd, p, IPC_MAX_PAYLOAD), 0);
	/* the buffer has room for one more header-and-change, then no more */
	assert_int_equal(ipc_reader_feed(&rd, slack, sizeof(slack)), 0);
	assert_int_equal(ipc_reader_feed(&rd, "x", 1), -EPROTO);
	assert_int_equal(ipc_reader_next(&rd, &f), 1);
	assert_int_equal(f.hdr.len, IPC_MAX_PAYLOAD);
	assert_true(payload_ok(f.payload, IPC_MAX_PAYLOAD, 51));
	ipc_reader_release(&rd);
	free(p);
}

static void test_eof(void **state)
{
	int fds0 = count_fds();
	struct ipc_reader rd;
	struct ipc_frame f;
	int sv[2];

	make_pair(sv, 1);
	ipc_reader_init(&rd);
	assert_int_equal(ipc_reader_fill(&rd, sv[0]), -EAGAIN);
	/* a partial header, then the peer goes away */
	assert_int_equal(write(sv[1], "MD\x03\x00\x00\x00\x00\x00\x00\x00", 10), 10);
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(ipc_reader_fill(&rd, sv[0]), 10);
	assert_int_equal(ipc_reader_next(&rd, &f), 0);
	assert_int_equal(ipc_reader_fill(&rd, sv[0]), 0);
	assert_int_equal(ipc_reader_fill(&rd, sv[0]), 0);
	ipc_reader_release(&rd);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_out_release_closes_fds(void **state)
{
	int fds0 = count_fds();
	struct ipc_out o;
	int sv[2];

	/* never flushed */
	ipc_out_init(&o);
	for (int i = 0; i < 3; i++)
		ipc_out_push(&o, IPC_TASK, 0, 0, (uint64_t)i, "p", 1, make_memfd(3, 1));
	ipc_out_push(&o, IPC_CANCEL, 0, 0, 9, NULL, 0, -1);
	assert_int_equal(count_fds(), fds0 + 3);
	assert_int_equal(o.frames, 4);
	ipc_out_release(&o);
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(o.frames, 0);
	assert_int_equal(o.pending, 0);
	assert_null(o.head);
	assert_null(o.tail);

	/* stuck behind a frame larger than the socket buffer */
	make_pair(sv, 1);
	int base = count_fds();
	uint8_t *big = make_payload(MIB, 2);
	ipc_out_push(&o, IPC_TASK, 0, 0, 1, big, MIB, make_memfd(10, 3)); /* fd goes first */
	ipc_out_push(&o, IPC_TASK, 0, 0, 2, big, MIB, -1);
	ipc_out_push(&o, IPC_TASK, 0, 0, 3, "q", 1, make_memfd(10, 4));
	ipc_out_push(&o, IPC_TASK, 0, 0, 4, "r", 1, make_memfd(10, 5));
	assert_int_equal(count_fds(), base + 3);
	assert_int_equal(ipc_out_flush(&o, sv[0]), -EAGAIN);
	/* the first fd went with the first bytes and the queue let go of it */
	assert_int_equal(count_fds(), base + 2);
	assert_true(o.frames >= 3);
	ipc_out_release(&o);
	assert_int_equal(count_fds(), base);

	/* a broken peer: -EPIPE, no SIGPIPE, fds still owned by the queue */
	close(sv[1]);
	sv[1] = -1;
	ipc_out_push(&o, IPC_TASK, 0, 0, 5, "s", 1, make_memfd(10, 6));
	assert_int_equal(ipc_out_flush(&o, sv[0]), -EPIPE);
	assert_int_equal(o.frames, 1);
	ipc_out_release(&o);
	free(big);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_reader_release_closes_unclaimed_fds(void **state)
{
	int fds0 = count_fds();
	struct ipc_reader rd;
	struct ipc_out o;
	int sv[2];
	ssize_t n;

	make_pair(sv, 1);
	ipc_out_init(&o);
	ipc_reader_init(&rd);
	for (int i = 0; i < 3; i++)
		ipc_out_push(&o, IPC_RESULT, 0, 200, (uint64_t)i, "x", 1, make_memfd(5, 7));
	assert_int_equal(ipc_out_flush(&o, sv[0]), 0);
	assert_int_equal(count_fds(), fds0 + 2); /* just the pair: in flight in the kernel */
	/* read everything but claim no frame */
	while ((n = ipc_reader_fill(&rd, sv[1])) > 0)
		;
	assert_int_equal(n, -EAGAIN);
	assert_int_equal(rd.n_fds, 3);
	assert_int_equal(count_fds(), fds0 + 2 + 3);
	ipc_reader_release(&rd);
	assert_int_equal(count_fds(), fds0 + 2);
	ipc_out_release(&o);
	close_pair(sv);
	assert_int_equal(count_fds(), fds0);
}

static void test_type_names(void **state)
{
	assert_string_equal(ipc_type_name(IPC_HELLO), "hello");
	assert_string_equal(ipc_type_name(IPC_TASK), "task");
	assert_string_equal(ipc_type_name(IPC_PROBE_RESULT), "probe_result");
	assert_string_equal(ipc_type_name(IPC_SHUTDOWN), "shutdown");
	assert_string_equal(ipc_type_name(0), "unknown");
	assert_string_equal(ipc_type_name(IPC_TYPE_MAX), "unknown");
	assert_string_equal(ipc_type_name(0xffffffffu), "unknown");
	for (unsigned t = 1; t < IPC_TYPE_MAX; t++)
		assert_string_not_equal(ipc_type_name(t), "unknown");
	/* the header is 24 bytes on the wire, as documented */
	assert_int_equal(sizeof(struct ipc_hdr), 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_out_to_reader_sizes),
	    cmocka_unit_test(test_send_blocking_thread),
	    cmocka_unit_test(test_send_too_big),
	    cmocka_unit_test(test_fd_frames_out_queue),
	    cmocka_unit_test(test_fd_queue_fifo),
	    cmocka_unit_test(test_send_interrupted_resumes),
	    cmocka_unit_test(test_fd_frames_forked_child),
	    cmocka_unit_test(test_partial_feed_bytewise),
	    cmocka_unit_test(test_corrupt_streams),
	    cmocka_unit_test(test_corrupt_from_socket),
	    cmocka_unit_test(test_max_payload_and_ceiling),
	    cmocka_unit_test(test_eof),
	    cmocka_unit_test(test_out_release_closes_fds),
	    cmocka_unit_test(test_reader_release_closes_unclaimed_fds),
	    cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
