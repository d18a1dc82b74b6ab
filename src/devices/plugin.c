/* devices/plugin.c: loading a device backend from a shared object.
 *
 * DEVICE_PLUGIN=/path/x.so names a plugin built against the public ABI
 * header include/mediad/device.h. The loader checks everything it can
 * before mediad uses the ops: the file loads, it exports
 * MEDIAD_DEVICE_PLUGIN_ENTRY, the descriptor carries this build's
 * MEDIAD_DEVICE_ABI_VERSION, and the mandatory ops are there. The
 * supervisor runs the same check at startup (so a bad plugin is a startup
 * error, exit 2), the worker again when it opens its device. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "util.h"

typedef const struct mediad_device_plugin *(*plugin_entry_fn)(void);

static int refuse(void *handle, int rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int refuse(void *handle, int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (handle)
		dlclose(handle);
	return rc;
}

/* The first mandatory op the table lacks, or NULL. */
static const char *missing_op(const struct mediad_device_ops *ops)
{
	if (!ops->name)
		return "name";
	if (!ops->open)
		return "open";
	if (!ops->ping)
		return "ping";
	if (!ops->close)
		return "close";
	if (!ops->parallel)
		return "parallel";
	if (!ops->threads)
		return "threads";
	return NULL;
}

int device_plugin_open(struct device_plugin *p, const char *path, char *err, size_t errlen)
{
	const struct mediad_device_plugin *desc;
	plugin_entry_fn entry;
	const char *what;
	void *handle;

	p->handle = NULL;
	p->ops = NULL;
	if (!path || !*path)
		return refuse(NULL, -EINVAL, err, errlen, "device plugin: empty path");
	/* RTLD_LOCAL: a plugin's symbols never interpose mediad's own */
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle)
		return refuse(NULL, -ENOENT, err, errlen, "device plugin %s: cannot load: %s", path,
			      dlerror());
	*(void **)&entry = dlsym(handle, MEDIAD_DEVICE_PLUGIN_ENTRY);
	if (!entry)
		return refuse(handle, -ENOENT, err, errlen,
			      "device plugin %s: no entry symbol %s (not a mediad device plugin)",
			      path, MEDIAD_DEVICE_PLUGIN_ENTRY);
	desc = entry();
	if (!desc)
		return refuse(handle, -EINVAL, err, errlen,
			      "device plugin %s: %s returned no descriptor", path,
			      MEDIAD_DEVICE_PLUGIN_ENTRY);
	if (desc->abi_version != MEDIAD_DEVICE_ABI_VERSION)
		return refuse(handle, -EPROTO, err, errlen,
			      "device plugin %s: ABI version %u, expected %u (rebuild it against "
			      "this mediad's include/mediad/device.h)",
			      path, desc->abi_version, (unsigned)MEDIAD_DEVICE_ABI_VERSION);
	if (!desc->ops || (what = missing_op(desc->ops)))
		return refuse(handle, -EINVAL, err, errlen, "device plugin %s: ops lack %s", path,
			      desc->ops ? what : "everything (ops is NULL)");
	p->handle = handle;
	p->ops = desc->ops;
	return 0;
}

void device_plugin_close(struct device_plugin *p)
{
	if (p->handle)
		dlclose(p->handle);
	p->handle = NULL;
	p->ops = NULL;
}
