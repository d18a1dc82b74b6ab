/* device.h: the device interface a worker drives and runners compute on.
 *
 * A device is what one worker owns: a group of ids from DEVICE_IDS. The ops
 * (struct mediad_device_ops) are defined once, in the public plugin ABI
 * include/mediad/device.h; this header adds what mediad itself keeps: the
 * built-in backends, the registry that names them (DEVICE), the plugin
 * loader (DEVICE_PLUGIN), and the wrappers runners call so that they reach
 * compute only through the device they were given. `ping` is the shallow
 * health check: a real round trip through the device's execution context
 * with a checked result, bounded by a timeout. */
#ifndef MEDIAD_DEVICE_H
#define MEDIAD_DEVICE_H

#include <errno.h>
#include <stddef.h>

#include "mediad/device.h"

struct buf;

/* Built-in backends (devices/cpu.c, devices/mock.c). */
extern const struct mediad_device_ops device_mock_ops;
extern const struct mediad_device_ops device_cpu_ops;

/* Run fn(arg, i, count) for i in 0..count-1 on dev's execution context (see
 * mediad_device_ops.parallel). -EINVAL when dev has no parallel op. */
static inline int device_parallel(struct mediad_device *dev,
				  void (*fn)(void *arg, int index, int count), void *arg, int count)
{
	if (!dev || !dev->ops || !dev->ops->parallel)
		return -EINVAL;
	return dev->ops->parallel(dev, fn, arg, count);
}

/* Parallel width of an open device (>= 1), or -errno. */
static inline int device_threads(struct mediad_device *dev)
{
	if (!dev || !dev->ops || !dev->ops->threads)
		return -EINVAL;
	return dev->ops->threads(dev);
}

/* --- registry (devices/registry.c): one row per built-in backend --- */

/* The backend called name ("cpu", "mock"), or NULL. */
const struct mediad_device_ops *device_find(const char *name);
/* The backends' names joined by sep, appended to out. */
void device_names(const char *sep, struct buf *out);

/* --- plugins (devices/plugin.c) --- */

struct device_plugin {
	void *handle; /* dlopen handle */
	const struct mediad_device_ops *ops;
};

/* dlopen path and take its ops through MEDIAD_DEVICE_PLUGIN_ENTRY. Refuses a
 * file that cannot be loaded, lacks the entry symbol, was built for another
 * MEDIAD_DEVICE_ABI_VERSION or has no open/ping/close/parallel/threads op:
 * then -errno with one line in err naming the file (and the symbol or the
 * found and expected versions) and nothing to close. 0 on success; the
 * caller closes p with device_plugin_close after the device is closed. */
int device_plugin_open(struct device_plugin *p, const char *path, char *err, size_t errlen);
void device_plugin_close(struct device_plugin *p);

#endif
