/* device_noentry.c: a test shared object that is no device plugin: it
 * exports a function, but not MEDIAD_DEVICE_PLUGIN_ENTRY (the loader must
 * refuse it, naming the file and the symbol). */
#include "util.h"

int mediad_device_plugin_v0(void);

__attribute__((visibility("default"))) int mediad_device_plugin_v0(void)
{
	return 0;
}
