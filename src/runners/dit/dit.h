/* runners/dit/dit.h: what the dit runner gives the registry. */
#ifndef MEDIAD_RUNNERS_DIT_H
#define MEDIAD_RUNNERS_DIT_H

struct config;

extern const struct runner_ops runner_dit_ops;

/* Worker setup before any thread: BLIS reads its environment once, so the
 * kernel choice (which may setenv BLIS_ARCH_TYPE) is settled while the
 * process is single-threaded. Always 0. */
int dit_runner_setup(const struct config *cfg);

#endif
