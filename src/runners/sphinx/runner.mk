# sphinx runner: pocketsphinx with the Debian en-us model.
# pocketsphinx's include path carries its own err.h/heap.h that would shadow
# glibc's: only this folder's files get it.
RUNNER_CFLAGS_sphinx = $(shell pkg-config --cflags pocketsphinx 2>/dev/null)
RUNNER_LIBS_sphinx = $(shell pkg-config --libs pocketsphinx 2>/dev/null)
