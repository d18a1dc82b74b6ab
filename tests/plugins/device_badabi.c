/* device_badabi.c: a test plugin built for another device ABI version
 * (the loader must refuse it, naming the file and both versions). */
#include "device.h"
#include "util.h"

static const struct mediad_device_plugin badabi_plugin = {
	.abi_version = MEDIAD_DEVICE_ABI_VERSION + 998,
	.ops = NULL,
};

__attribute__((visibility("default"))) const struct mediad_device_plugin *
mediad_device_plugin_v1(void)
{
	return &badabi_plugin;
}
