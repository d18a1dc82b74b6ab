/* runners/sphinx/sphinx.h: what the sphinx runner (pocketsphinx, speech to
 * text) gives the registry. */
#ifndef MEDIAD_RUNNERS_SPHINX_H
#define MEDIAD_RUNNERS_SPHINX_H

extern const struct runner_ops runner_sphinx_ops;

#endif
