/* datafile.h: finding the data files mediad ships (e.g. data/canary.wav).
 *
 * Files that the repository ships under data/ are looked up, in order, in:
 *   1. $MEDIAD_DATA_DIR, when set (an override for installs and tests);
 *   2. <directory of the running binary>/../data (build/mediad and
 *      build-san/mediad in a work tree find the tree's data/);
 *   3. <directory of the running binary>/data;
 *   4. MEDIAD_DATA_DIR_DEFAULT, compiled in ("/usr/share/mediad" unless the
 *      build defines it).
 * The first candidate that exists and is readable wins. */
#ifndef MEDIAD_DATAFILE_H
#define MEDIAD_DATAFILE_H

#include <stddef.h>

#ifndef MEDIAD_DATA_DIR_DEFAULT
#define MEDIAD_DATA_DIR_DEFAULT "/usr/share/mediad"
#endif

/* Find data file `name` (a relative path such as "canary.wav"). Returns 0
 * with its path in out, or -ENOENT with out holding the candidates tried
 * (for the error message), or -ENAMETOOLONG. */
int datafile_find(const char *name, char *out, size_t outlen);

#endif
