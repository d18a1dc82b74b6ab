/* runners/flite/flite.h: what the flite runner (text to speech) gives the
 * registry. */
#ifndef MEDIAD_RUNNERS_FLITE_H
#define MEDIAD_RUNNERS_FLITE_H

extern const struct runner_ops runner_flite_ops;

#endif
