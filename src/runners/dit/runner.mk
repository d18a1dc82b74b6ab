# dit runner: diffusion transformer on BLIS. The dit bench tool
# (tools/ditbench.c) calls BLIS directly too.
RUNNER_CFLAGS_dit := -I/usr/include/blis
RUNNER_LIBS_dit := -lblis
$(BUILD)/mediad-ditbench: ALL_CFLAGS += $(RUNNER_CFLAGS_dit)
