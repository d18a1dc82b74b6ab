/* devices/registry.c: the device backends built into mediad, one row each.
 *
 * DEVICE names a row (config.c checks the name here); a runner's registry
 * row names its default. A backend loaded from a shared object
 * (DEVICE_PLUGIN) is not a row: see devices/plugin.c. */
#include <string.h>

#include "buf.h"
#include "device.h"
#include "util.h"

static const struct mediad_device_ops *const devices[] = {
	&device_cpu_ops,
	&device_mock_ops,
};

const struct mediad_device_ops *device_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(devices); i++)
		if (name && !strcmp(devices[i]->name, name))
			return devices[i];
	return NULL;
}

void device_names(const char *sep, struct buf *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(devices); i++)
		buf_printf(out, "%s%s", i ? sep : "", devices[i]->name);
}
