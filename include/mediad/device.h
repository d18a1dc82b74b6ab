/* mediad/device.h: the device ABI of mediad, for device plugins (public).
 *
 * A device is what one mediad worker process owns: a group of device ids
 * and the execution context that computes on them. mediad's own backends
 * (cpu, mock) and device plugins implement the same struct
 * mediad_device_ops; a runner reaches compute only through these ops.
 *
 * A plugin is a shared object loaded with dlopen (DEVICE_PLUGIN=/path/x.so).
 * It exports one function, MEDIAD_DEVICE_PLUGIN_ENTRY, returning a
 * descriptor whose abi_version must equal the MEDIAD_DEVICE_ABI_VERSION
 * mediad was built with; any other version is refused. The version changes
 * whenever a struct in this file changes layout or meaning. The plugin owns
 * the descriptor and the ops (static storage, valid until dlclose).
 *
 * Threading: mediad calls open, reset and close from one thread; ping,
 * parallel and threads may come from the worker's execution thread while
 * another call is in progress only as documented per op. Every op that
 * returns int returns 0 or a negative errno value. */
#ifndef MEDIAD_PUBLIC_DEVICE_H
#define MEDIAD_PUBLIC_DEVICE_H

#include <stddef.h>

#define MEDIAD_DEVICE_ABI_VERSION 1
#define MEDIAD_DEVICE_PLUGIN_ENTRY "mediad_device_plugin_v1"

struct mediad_device_ops;

/* One device as mediad holds it; mediad fills ops, ids, threads and
 * incarnation before open; priv is the backend's own. */
struct mediad_device {
	const struct mediad_device_ops *ops;
	char ids[64];    /* the worker's device ids: "0" or "0,1" */
	int threads;     /* compute threads mediad asks for (>= 1) */
	int incarnation; /* workers started on this device before this one (0 = first) */
	void *priv;
};

struct mediad_device_ops {
	const char *name; /* "cpu", "mock", a plugin's own name */
	/* 0 or -errno with err filled. */
	int (*open)(struct mediad_device *dev, char *err, size_t errlen);
	/* A real round trip through the device's execution context with a
	 * checked result: 0 within timeout_s; -ETIMEDOUT, -EIO (wrong answer)
	 * or another -errno with err filled. */
	int (*ping)(struct mediad_device *dev, double timeout_s, char *err, size_t errlen);
	/* Optional (NULL): bring an open device back to a clean state in place.
	 * Called by a restarted worker after open (incarnation > 0). */
	int (*reset)(struct mediad_device *dev);
	void (*close)(struct mediad_device *dev);
	/* Run fn(arg, i, count) once for every i in 0..count-1 on the device's
	 * execution context and return when all calls returned. 0 (also for
	 * count 0), -EINVAL (count < 0, fn NULL), -ENODEV (not open). */
	int (*parallel)(struct mediad_device *dev, void (*fn)(void *arg, int index, int count),
			void *arg, int count);
	/* Parallel width of an open device (>= 1), for placing work; -ENODEV
	 * when not open. */
	int (*threads)(struct mediad_device *dev);
};

struct mediad_device_plugin {
	unsigned abi_version; /* MEDIAD_DEVICE_ABI_VERSION of the plugin's build */
	const struct mediad_device_ops *ops;
};

/* The entry a plugin exports (C linkage, default visibility). */
const struct mediad_device_plugin *mediad_device_plugin_v1(void);

#endif
