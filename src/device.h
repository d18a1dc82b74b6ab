/* device.h: the device interface a worker drives.
 *
 * A device is what one worker owns: a group of ids from DEVICE_IDS. On this
 * hardware that is a set of CPU threads; a GPU or accelerator backend is
 * another implementation of these operations. `ping` is the shallow health
 * check: a real round trip through the device's execution context with a
 * checked result, bounded by a timeout. */
#ifndef MEDIAD_DEVICE_H
#define MEDIAD_DEVICE_H

#include <stddef.h>

struct device;

struct device_ops {
	const char *name;
	/* ids: "0" or "0,1"; threads: compute threads for this device (>= 1).
	 * 0 or -errno (with err filled). */
	int (*open)(struct device *dev, char *err, size_t errlen);
	/* 0 when the device answered correctly within timeout_s; -ETIMEDOUT,
	 * -EIO (wrong answer) or another -errno with err filled. */
	int (*ping)(struct device *dev, double timeout_s, char *err, size_t errlen);
	/* Optional (NULL): reset the device in place. */
	int (*reset)(struct device *dev);
	void (*close)(struct device *dev);
};

struct device {
	const struct device_ops *ops;
	char ids[64];
	int threads;
	int incarnation; /* workers started on this device before this one (0 = first) */
	void *priv;
};

extern const struct device_ops device_mock_ops;
extern const struct device_ops device_cpu_ops;

#endif
