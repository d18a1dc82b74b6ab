/* datafile.c: locate the data files mediad ships. See datafile.h. */
#include "datafile.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "banned.h"

/* Directory of the running binary, without a trailing slash; "" if unknown. */
static void exe_dir(char *dir, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", dir, len - 1);
	char *slash;

	if (n <= 0) {
		dir[0] = 0;
		return;
	}
	dir[n] = 0;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		dir[0] = 0;
}

int datafile_find(const char *name, char *out, size_t outlen)
{
	char exe[PATH_MAX];
	const char *env = getenv("MEDIAD_DATA_DIR");
	char cand[4][PATH_MAX];
	int n = 0;
	struct buf tried;

	exe_dir(exe, sizeof(exe));
	if (env && env[0])
		snprintf(cand[n++], PATH_MAX, "%s/%s", env, name);
	if (exe[0]) {
		snprintf(cand[n++], PATH_MAX, "%s/../data/%s", exe, name);
		snprintf(cand[n++], PATH_MAX, "%s/data/%s", exe, name);
	}
	snprintf(cand[n++], PATH_MAX, "%s/%s", MEDIAD_DATA_DIR_DEFAULT, name);
	for (int i = 0; i < n; i++) {
		if (access(cand[i], R_OK) == 0) {
			char *real = realpath(cand[i], NULL);
			const char *p = real ? real : cand[i];
			int fits = (size_t)snprintf(out, outlen, "%s", p) < outlen;

			free(real);
			return fits ? 0 : -ENAMETOOLONG;
		}
	}
	buf_init(&tried, outlen ? outlen - 1 : 0);
	for (int i = 0; i < n; i++)
		if (buf_printf(&tried, "%s%s", i ? ", " : "", cand[i]) < 0)
			break;
	snprintf(out, outlen, "%s", tried.data ? tried.data : "");
	buf_release(&tried);
	return -ENOENT;
}
