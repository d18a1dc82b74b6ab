/* devices/mock.c: the mock device, for tests and drills.
 *
 * Its ping is a real (tiny) computation on the calling thread whose result
 * is checked, and it obeys fault injection: hang_ping blocks the worker's
 * execution thread until faults are cleared, error_ping fails the check.
 * Its execution context is the calling thread: parallel runs the indices
 * inline, one after the other, and its width is 1. */
#include <errno.h>
#include <stdio.h>

#include "device.h"
#include "faults.h"
#include "util.h"

static int mock_open(struct mediad_device *dev, char *err, size_t errlen)
{
	return 0;
}

static int mock_ping(struct mediad_device *dev, double timeout_s, char *err, size_t errlen)
{
	volatile unsigned sum = 0;

	if (faults_take(FAULT_HANG_PING, NULL))
		faults_hang();
	if (faults_take(FAULT_ERROR_PING, NULL)) {
		snprintf(err, errlen, "fault injection: error_ping");
		return -EIO;
	}
	for (unsigned i = 1; i <= 64; i++)
		sum += i * i;
	if (sum != 89440) {
		snprintf(err, errlen, "mock device computed %u, expected 89440", sum);
		return -EIO;
	}
	return 0;
}

static int mock_reset(struct mediad_device *dev)
{
	return 0;
}

static void mock_close(struct mediad_device *dev)
{
}

static int mock_parallel(struct mediad_device *dev, void (*fn)(void *arg, int index, int count),
			 void *arg, int count)
{
	if (!fn || count < 0)
		return -EINVAL;
	for (int i = 0; i < count; i++)
		fn(arg, i, count);
	return 0;
}

static int mock_threads(struct mediad_device *dev)
{
	return 1;
}

const struct mediad_device_ops device_mock_ops = {
	.name = "mock",
	.open = mock_open,
	.ping = mock_ping,
	.reset = mock_reset,
	.close = mock_close,
	.parallel = mock_parallel,
	.threads = mock_threads,
};
