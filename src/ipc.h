/* ipc.h: framed messages between the supervisor and a worker.
 *
 * A worker talks to the supervisor over one AF_UNIX stream socketpair. Every
 * message is a fixed 24-byte header followed by `len` payload bytes. A frame
 * with IPC_F_FD carries one file descriptor (SCM_RIGHTS, sent with the first
 * byte of the header): large payloads (images, audio, video, uploads) travel
 * as a memfd instead of being copied through the socket.
 *
 * The supervisor side is non-blocking (ipc_reader_fill / ipc_out_flush from
 * the event loop); the worker side may use the blocking ipc_send. A corrupt
 * stream (bad magic, oversized length, fd flag without an fd) is reported as
 * -EPROTO and the caller drops the peer; nothing is trusted blindly. */
#ifndef MEDIAD_IPC_H
#define MEDIAD_IPC_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "buf.h"

#define IPC_MAGIC 0x4d44u      /* "MD" */
#define IPC_MAX_PAYLOAD (8u << 20) /* inline payload cap; larger goes through a memfd */
#define IPC_INLINE_MAX (64u << 10) /* results up to this size are sent inline */

enum ipc_type {
	IPC_HELLO = 1,     /* W->S: process started; payload JSON {"pid":N} */
	IPC_READY,         /* W->S: warmup done; payload JSON runner info */
	IPC_TASK,          /* S->W: id = request, aux = task kind, payload = params JSON, optional fd = input */
	IPC_RESULT,        /* W->S: id, aux = HTTP status, payload = "content-type\0body" (body in fd if IPC_F_FD) */
	IPC_CHUNK,         /* W->S: id, payload = stream bytes (or job event JSON) */
	IPC_END,           /* W->S: id, aux = status; end of a streamed result; payload = error JSON if status != 200 */
	IPC_PROBE,         /* S->W: id = generation, aux = tier */
	IPC_PROBE_RESULT,  /* W->S: id = generation, aux = tier, payload JSON {"outcome","digest","error","latency_s"} */
	IPC_FAULT,         /* S->W: payload JSON {"fault","value","count"}; empty payload clears all faults */
	IPC_CANCEL,        /* S->W: id; abandon the request if not started, stop it if the runner can */
	IPC_SHUTDOWN,      /* S->W: finish what is running and exit 0 */
	IPC_TYPE_MAX
};

enum ipc_flags {
	IPC_F_FD = 1 << 0,        /* one fd attached */
	IPC_F_BATCH_MORE = 1 << 1, /* IPC_TASK: more tasks of the same batch follow */
};

struct ipc_hdr {
	uint16_t magic;
	uint16_t type;
	uint32_t len;
	uint32_t flags;
	uint32_t aux;
	uint64_t id;
};

/* A received frame; payload points into the reader's buffer and is valid
 * until the next ipc_reader_fill or ipc_reader_feed call. fd is -1 or owned
 * by the caller. */
struct ipc_frame {
	struct ipc_hdr hdr;
	const char *payload;
	int fd;
};

#define IPC_MAX_FDS 32

struct ipc_reader {
	struct buf in;
	size_t off;              /* start of the first unconsumed byte */
	int fds[IPC_MAX_FDS];    /* fds received but not yet claimed by a frame, FIFO */
	int n_fds;
};

void ipc_reader_init(struct ipc_reader *r);
void ipc_reader_release(struct ipc_reader *r); /* closes unclaimed fds */
/* Read what is available from a non-blocking socket. Returns bytes read (>0),
 * 0 on EOF, -EAGAIN when nothing is available, other -errno on error. */
ssize_t ipc_reader_fill(struct ipc_reader *r, int sock);
/* Next complete frame: 1 and *f filled, 0 when incomplete, -EPROTO on a
 * corrupt stream. */
int ipc_reader_next(struct ipc_reader *r, struct ipc_frame *f);
/* Feed bytes directly (tests, fuzzing). */
int ipc_reader_feed(struct ipc_reader *r, const void *data, size_t len);

/* Outgoing queue for a non-blocking socket. */
struct ipc_out_frame;
struct ipc_out {
	struct ipc_out_frame *head, *tail;
	size_t off;     /* bytes of head already sent */
	size_t pending; /* bytes queued in all */
	int frames;
};

void ipc_out_init(struct ipc_out *o);
void ipc_out_release(struct ipc_out *o); /* frees frames and closes their fds */
/* Queue a frame; copies payload; takes ownership of fd (>= 0 sets IPC_F_FD). */
void ipc_out_push(struct ipc_out *o, uint16_t type, uint32_t flags, uint32_t aux, uint64_t id,
		  const void *payload, size_t len, int fd);
/* Send as much as the socket takes. 0 when the queue is empty, -EAGAIN when
 * bytes remain (wait for EPOLLOUT), other -errno on a broken peer. */
int ipc_out_flush(struct ipc_out *o, int sock);

/* Blocking send of one frame (worker side; callers serialize with a lock).
 * fd < 0 for none. Two payload parts are concatenated (either may be empty).
 * 0 or -errno. */
int ipc_send(int sock, uint16_t type, uint32_t flags, uint32_t aux, uint64_t id,
	     const void *p1, size_t n1, const void *p2, size_t n2, int fd);

const char *ipc_type_name(unsigned type);

#endif
