/* ipc.c: see ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct ipc_out_frame {
	struct ipc_out_frame *next;
	size_t len; /* header + payload */
	int fd;     /* sent with the first byte, then closed */
	char data[];
};

static const char *type_names[IPC_TYPE_MAX] = {
	[IPC_HELLO] = "hello", [IPC_READY] = "ready", [IPC_TASK] = "task",
	[IPC_RESULT] = "result", [IPC_CHUNK] = "chunk", [IPC_END] = "end",
	[IPC_PROBE] = "probe", [IPC_PROBE_RESULT] = "probe_result", [IPC_FAULT] = "fault",
	[IPC_CANCEL] = "cancel", [IPC_SHUTDOWN] = "shutdown",
};

const char *ipc_type_name(unsigned type)
{
	if (type < IPC_TYPE_MAX && type_names[type])
		return type_names[type];
	return "unknown";
}

void ipc_reader_init(struct ipc_reader *r)
{
	buf_init(&r->in, sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD + 4096);
	r->off = 0;
	r->n_fds = 0;
}

void ipc_reader_release(struct ipc_reader *r)
{
	for (int i = 0; i < r->n_fds; i++)
		close(r->fds[i]);
	r->n_fds = 0;
	buf_release(&r->in);
	r->off = 0;
}

static void reader_compact(struct ipc_reader *r)
{
	if (r->off == 0)
		return;
	if (r->off < r->in.len)
		memmove(r->in.data, r->in.data + r->off, r->in.len - r->off);
	r->in.len -= r->off;
	r->off = 0;
}

static void reader_take_fds(struct ipc_reader *r, struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)(void *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			if (r->n_fds < IPC_MAX_FDS)
				r->fds[r->n_fds++] = fds[i];
			else
				close(fds[i]);
		}
	}
}

ssize_t ipc_reader_fill(struct ipc_reader *r, int sock)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;

	reader_compact(r);
	if (buf_reserve(&r->in, 65536)) {
		/* a frame larger than the cap never completes: corrupt stream */
		if (r->in.max - r->in.len == 0)
			return -EPROTO;
		if (buf_reserve(&r->in, r->in.max - r->in.len))
			return -EPROTO;
	}
	iov.iov_base = r->in.data + r->in.len;
	iov.iov_len = r->in.cap - r->in.len - 1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	reader_take_fds(r, &msg);
	r->in.len += (size_t)n;
	r->in.data[r->in.len] = 0;
	return n;
}

int ipc_reader_feed(struct ipc_reader *r, const void *data, size_t len)
{
	reader_compact(r);
	return buf_append(&r->in, data, len) ? -EPROTO : 0;
}

int ipc_reader_next(struct ipc_reader *r, struct ipc_frame *f)
{
	size_t avail = r->in.len - r->off;
	struct ipc_hdr h;

	if (avail < sizeof(h))
		return 0;
	memcpy(&h, r->in.data + r->off, sizeof(h));
	if (h.magic != IPC_MAGIC || h.type == 0 || h.type >= IPC_TYPE_MAX ||
	    h.len > IPC_MAX_PAYLOAD)
		return -EPROTO;
	if (avail < sizeof(h) + h.len)
		return 0;
	f->fd = -1;
	if (h.flags & IPC_F_FD) {
		if (r->n_fds == 0)
			return -EPROTO;
		f->fd = r->fds[0];
		memmove(r->fds, r->fds + 1, sizeof(int) * (size_t)(r->n_fds - 1));
		r->n_fds--;
	}
	f->hdr = h;
	f->payload = r->in.data + r->off + sizeof(h);
	r->off += sizeof(h) + h.len;
	return 1;
}

void ipc_out_init(struct ipc_out *o)
{
	memset(o, 0, sizeof(*o));
}

void ipc_out_release(struct ipc_out *o)
{
	struct ipc_out_frame *f = o->head;

	while (f) {
		struct ipc_out_frame *next = f->next;
		if (f->fd >= 0)
			close(f->fd);
		free(f);
		f = next;
	}
	ipc_out_init(o);
}

static void fill_hdr(struct ipc_hdr *h, uint16_t type, uint32_t flags, uint32_t aux, uint64_t id,
		     size_t len, int fd)
{
	memset(h, 0, sizeof(*h));
	h->magic = IPC_MAGIC;
	h->type = type;
	h->len = (uint32_t)len;
	h->flags = flags | (fd >= 0 ? IPC_F_FD : 0);
	h->aux = aux;
	h->id = id;
}

void ipc_out_push(struct ipc_out *o, uint16_t type, uint32_t flags, uint32_t aux, uint64_t id,
		  const void *payload, size_t len, int fd)
{
	struct ipc_out_frame *f;
	struct ipc_hdr h;

	if (len > IPC_MAX_PAYLOAD) {
		/* a programming error: payloads this large travel through a memfd */
		log_error("ipc: %zu-byte %s frame exceeds the inline limit", len, ipc_type_name(type));
		abort();
	}
	f = xmalloc(sizeof(*f) + sizeof(struct ipc_hdr) + len);

	fill_hdr(&h, type, flags, aux, id, len, fd);
	memcpy(f->data, &h, sizeof(h));
	if (len)
		memcpy(f->data + sizeof(h), payload, len);
	f->len = sizeof(h) + len;
	f->fd = fd;
	f->next = NULL;
	if (o->tail)
		o->tail->next = f;
	else
		o->head = f;
	o->tail = f;
	o->pending += f->len;
	o->frames++;
}

int ipc_out_flush(struct ipc_out *o, int sock)
{
	while (o->head) {
		struct ipc_out_frame *f = o->head;
		struct iovec iov[16];
		int n_iov = 0;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct msghdr msg;
		ssize_t n;

		/* gather frames up to the next one that carries an fd */
		for (struct ipc_out_frame *g = f; g && n_iov < 16; g = g->next) {
			if (g != f && g->fd >= 0)
				break;
			size_t skip = g == f ? o->off : 0;
			iov[n_iov].iov_base = g->data + skip;
			iov[n_iov].iov_len = g->len - skip;
			n_iov++;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)n_iov;
		if (f->fd >= 0 && o->off == 0) {
			struct cmsghdr *c;
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &f->fd, sizeof(int));
		}
		do {
			n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (f->fd >= 0 && o->off == 0 && n > 0) {
			close(f->fd);
			f->fd = -1;
		}
		size_t sent = (size_t)n;
		o->pending -= sent;
		while (sent && o->head) {
			struct ipc_out_frame *h = o->head;
			size_t left = h->len - o->off;
			if (sent < left) {
				o->off += sent;
				sent = 0;
				break;
			}
			sent -= left;
			o->off = 0;
			o->head = h->next;
			if (!o->head)
				o->tail = NULL;
			if (h->fd >= 0)
				close(h->fd);
			free(h);
			o->frames--;
		}
	}
	return 0;
}

int ipc_send(int sock, uint16_t type, uint32_t flags, uint32_t aux, uint64_t id,
	     const void *p1, size_t n1, const void *p2, size_t n2, int fd)
{
	struct ipc_hdr h;
	struct iovec iov[3];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg;
	size_t total = sizeof(h) + n1 + n2;
	size_t done = 0;

	if (n1 + n2 > IPC_MAX_PAYLOAD)
		return -EMSGSIZE;
	fill_hdr(&h, type, flags, aux, id, n1 + n2, fd);
	while (done < total) {
		int k = 0;
		size_t skip = done;
		const struct {
			const void *p;
			size_t n;
		} parts[3] = {{&h, sizeof(h)}, {p1, n1}, {p2, n2}};
		for (int i = 0; i < 3; i++) {
			if (skip >= parts[i].n) {
				skip -= parts[i].n;
				continue;
			}
			iov[k].iov_base = (char *)parts[i].p + skip;
			iov[k].iov_len = parts[i].n - skip;
			skip = 0;
			k++;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)k;
		if (fd >= 0 && done == 0) {
			struct cmsghdr *c;
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}
