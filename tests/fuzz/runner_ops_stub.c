/* runner_ops_stub.c: empty runner ops for fuzz drivers that link the real
 * runner registry (src/runners/registry.c) without the runners themselves
 * (BLIS, pocketsphinx, flite): config.c parses MODEL_RUNNER against the
 * registry's rows, and only their names and services matter there. */
#include "config.h"
#include "runner.h"
#include "runners/dit/dit.h"
#include "runners/flite/flite.h"
#include "runners/mock/mock.h"
#include "runners/sphinx/sphinx.h"
#include "util.h"

const struct runner_ops runner_mock_ops = {.name = "mock"};
const struct runner_ops runner_dit_ops = {.name = "dit"};
const struct runner_ops runner_sphinx_ops = {.name = "sphinx"};
const struct runner_ops runner_flite_ops = {.name = "flite"};

int dit_runner_setup(const struct config *cfg)
{
	return 0;
}
