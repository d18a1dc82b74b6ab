/* devices/mock.c: the mock device, for tests and drills.
 *
 * Its ping is a real (tiny) computation on the calling thread whose result
 * is checked, and it obeys fault injection: hang_ping blocks the worker's
 * execution thread until faults are cleared, error_ping fails the check. */
#include <errno.h>
#include <stdio.h>

#include "device.h"
#include "faults.h"

static int mock_open(struct device *dev, char *err, size_t errlen)
{
	return 0;
}

static int mock_ping(struct device *dev, double timeout_s, char *err, size_t errlen)
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

static void mock_close(struct device *dev)
{
}

const struct device_ops device_mock_ops = {
	.name = "mock",
	.open = mock_open,
	.ping = mock_ping,
	.reset = NULL,
	.close = mock_close,
};
