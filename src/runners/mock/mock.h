/* runners/mock/mock.h: what the mock runner gives the registry. */
#ifndef MEDIAD_RUNNERS_MOCK_H
#define MEDIAD_RUNNERS_MOCK_H

extern const struct runner_ops runner_mock_ops;

#endif
