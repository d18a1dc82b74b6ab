/* plugins/device_cpu.c: the entry of the cpu device built as a plugin.
 *
 * build/mediad-device-cpu.so is src/devices/cpu.c (and the helpers it calls:
 * faults, log, util, buf) compiled with -fPIC -fvisibility=hidden plus this
 * file, the only symbol it exports. It is the reference for plugin authors
 * and the proof that a backend works behind include/mediad/device.h alone:
 * DEVICE_PLUGIN=build/mediad-device-cpu.so serves like DEVICE=cpu. The
 * plugin keeps its own copies of those helpers, so the host's fault
 * injection (hang_ping, error_ping) does not reach a plugin's ping, and its
 * log lines carry no worker role. */
#include "device.h"
#include "util.h"

static const struct mediad_device_plugin cpu_plugin = {
	.abi_version = MEDIAD_DEVICE_ABI_VERSION,
	.ops = &device_cpu_ops,
};

__attribute__((visibility("default"))) const struct mediad_device_plugin *
mediad_device_plugin_v1(void)
{
	return &cpu_plugin;
}
