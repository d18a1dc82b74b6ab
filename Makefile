# mediad build. One Makefile, out-of-tree objects in build/, pkg-config for
# every library. `make` builds, `make check` runs all tests, `make run` starts
# the server on port 8000. DEVELOPER=1 turns warnings into errors;
# SANITIZE=address,undefined builds with sanitizers into build-san/,
# SANITIZE=thread into build-tsan/.

PKGS := libmicrohttpd jansson sqlite3 libsystemd libsodium spng libturbojpeg \
        sndfile soxr libavcodec libavformat libavutil libswscale libxxhash
CC ?= gcc
ifeq ($(CC),cc)
CC := gcc
endif

BUILD ?= build
ifneq ($(SANITIZE),)
ifeq ($(SANITIZE),thread)
BUILD := build-tsan
else
BUILD := build-san
endif
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
ifneq ($(findstring undefined,$(SANITIZE)),)
SANFLAGS += -fno-sanitize-recover=undefined
endif
# sanitizer builds also check caches against a fresh computation (api_health.c)
SELFCHECK := -DMEDIAD_SELF_CHECK
endif

OPT ?= -O2
CFLAGS_BASE := -std=gnu17 $(OPT) -g -pthread -MMD -MP -iquote src -iquote include -D_GNU_SOURCE $(SELFCHECK)
ifeq ($(DEVELOPER),1)
CFLAGS_BASE += -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -Wformat=2 -Wvla
else
CFLAGS_BASE += -Wall -Wextra -Wno-unused-parameter
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = $(CFLAGS_BASE) $(PKG_CFLAGS) $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(SANFLAGS) $(LDFLAGS)

# Runners: every folder src/runners/<name>/ is one runner, built from all its
# .c files. Its runner.mk (optional) declares what only it needs:
#   RUNNER_CFLAGS_<name>  compile flags for the folder's files only
#   RUNNER_LIBS_<name>    libraries the binary links for it
# Adding a runner never edits this Makefile.
RUNNERS := $(notdir $(patsubst %/,%,$(dir $(wildcard src/runners/*/*.c))))
RUNNERS := $(sort $(RUNNERS))
include $(wildcard src/runners/*/runner.mk)
$(foreach r,$(RUNNERS),$(eval $(BUILD)/src/runners/$(r)/%.o: ALL_CFLAGS += $$(RUNNER_CFLAGS_$(r))))
RUNNER_LIBS := $(foreach r,$(RUNNERS),$(RUNNER_LIBS_$(r)))
LIBS = $(PKG_LIBS) $(RUNNER_LIBS) -lm

SRC := $(wildcard src/*.c src/worker/*.c src/devices/*.c src/runners/*.c src/runners/*/*.c)
MAIN_SRC := src/main.c
LIB_SRC := $(filter-out $(MAIN_SRC),$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check unit blackbox check-san check-valgrind check-tsan clean lint bench soak
all: $(BUILD)/mediad $(BUILD)/mediad-mkweights $(BUILD)/mediad-mkgguf $(BUILD)/mediad-device-cpu.so

deps:
	@bash scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libmediad.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mediad: $(MAIN_OBJ) $(BUILD)/libmediad.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(MAIN_OBJ) $(BUILD)/libmediad.a $(LIBS)

# Device plugins (include/mediad/device.h). The cpu backend again, as a
# shared object: src/devices/cpu.c and the helpers it calls, compiled -fPIC
# with hidden visibility, plus the entry in src/plugins/device_cpu.c (the one
# exported symbol). Test-only plugins the loader must refuse:
# tests/plugins/X.c -> $(BUILD)/tests/plugins/X.so.
PLUGIN_CPU_SRC := src/devices/cpu.c src/faults.c src/log.c src/util.c src/buf.c \
                  src/plugins/device_cpu.c
PLUGIN_CPU_OBJ := $(PLUGIN_CPU_SRC:%.c=$(BUILD)/pic/%.o)
PLUGIN_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden
TEST_PLUGINS := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,$(wildcard tests/plugins/*.c))

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -c $< -o $@

$(BUILD)/mediad-device-cpu.so: $(PLUGIN_CPU_OBJ)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-z,defs -o $@ $^ -lm

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -shared -o $@ $<

# tools/X.c -> $(BUILD)/mediad-X (mkweights; ditbench for bench/dit.sh)
$(BUILD)/mediad-%: tools/%.c $(BUILD)/libmediad.a
	$(CC) $(ALL_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmediad.a $(LIBS)

# A script may name a product by its absolute path (bench/run.sh exports
# MEDIAD_BIN=$PWD/build/mediad): build it under its relative name.
# (.PRECIOUS: built that way, a tool is not an intermediate file to delete)
$(abspath $(BUILD))/%: $(BUILD)/% ;
.PRECIOUS: $(BUILD)/mediad-%

# --as-needed: a test records only the libraries it calls (most never load
# libavcodec and the dozens of codec libraries behind it; see check-valgrind).
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmediad.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmediad.a \
	  -Wl,--as-needed $(LIBS) -lcmocka

run: deps
	@$(MAKE) --no-print-directory all
	MODEL_RUNNER=$${MODEL_RUNNER:-dit} DIT_PRESET=$${DIT_PRESET:-small} \
	  ./$(BUILD)/mediad --port $${SERVICE_PORT:-8000}

unit: $(UNIT_BIN) $(BUILD)/mediad-device-cpu.so $(TEST_PLUGINS)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; MEDIAD_SRC=$(CURDIR) ./$$t; done

# tools the black-box tests run (beside MEDIAD_BIN)
TEST_TOOLS := $(BUILD)/mediad-mkgguf $(BUILD)/mediad-llamarun $(BUILD)/mediad-tokdump \
              $(BUILD)/mediad-tokvocab $(BUILD)/mediad-mkweights
blackbox: $(BUILD)/mediad $(BUILD)/mediad-device-cpu.so $(TEST_PLUGINS) $(TEST_TOOLS)
	MEDIAD_BIN=$(CURDIR)/$(BUILD)/mediad /usr/bin/python3 -m pytest -q -x tests/blackbox $(PYTEST_ARGS)

check: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 all unit
	@$(MAKE) --no-print-directory DEVELOPER=1 blackbox

check-san: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 SANITIZE=address,undefined all unit
	@$(MAKE) --no-print-directory DEVELOPER=1 SANITIZE=address,undefined blackbox

# Every unit test under valgrind memcheck, one per core (valgrind runs a
# program's threads one at a time): any memory error, or any definite,
# indirect or possible leak, fails the run; blocks still reachable at exit
# (libraries' one-time state) do not. Uses the test binaries of make check
# ($(BUILD)/tests); logs in $(BUILD)/valgrind/. Suppressions: third-party
# internals only, each justified in tests/unit/valgrind/memcheck.supp.
# libhwy stub: valgrind 3.19 (Debian 12's newest) cannot run libhwy's load
# constructor on this CPU (RDTSCP, SIGILL before main), and libavcodec loads
# libhwy through libjxl; so the tests run with a stub libhwy from
# $(BUILD)/valgrind on their library path (it only matters to the three that
# link libavcodec: media, audio_in, regress_base64; nothing calls it, mediad
# does no JPEG XL). See tests/unit/valgrind/hwy_stub.c.
# The dit tests dominate (80-105 s each); ~2.5 min on 2 cores.
VALGRIND ?= valgrind
VG_DIR := $(BUILD)/valgrind
VG_LOGS := $(UNIT_BIN:$(BUILD)/tests/%=$(VG_DIR)/%.log)
VALGRIND_FLAGS := --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --num-callers=30 \
  --suppressions=$(CURDIR)/tests/unit/valgrind/memcheck.supp
# one job per core unless make was already given -j
PAR = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))

check-valgrind: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 $(PAR) $(UNIT_BIN) $(VG_DIR)/libhwy.so.1 \
	  $(BUILD)/mediad-device-cpu.so $(TEST_PLUGINS)
	@rm -f $(VG_DIR)/*.log $(VG_DIR)/*.failed
	@$(MAKE) --no-print-directory DEVELOPER=1 $(PAR) valgrind-unit

.PHONY: valgrind-unit FORCE
valgrind-unit: $(VG_LOGS)
	@failed=$$(cd $(VG_DIR) && ls *.failed 2>/dev/null | sed 's/\.failed$$//' | tr '\n' ' '); \
	n_failed=$$(echo $$failed | wc -w); \
	echo "valgrind: $$(( $(words $(VG_LOGS)) - n_failed )) passed, $$n_failed failed"; \
	[ -z "$$failed" ] || { echo "valgrind failures: $$failed(logs in $(VG_DIR))"; exit 1; }

$(VG_DIR)/%.log: $(BUILD)/tests/% $(VG_DIR)/libhwy.so.1 FORCE
	@rm -f $(VG_DIR)/$*.failed; start=$$(date +%s); \
	if LD_LIBRARY_PATH=$(CURDIR)/$(VG_DIR) MEDIAD_SRC=$(CURDIR) \
	   $(VALGRIND) $(VALGRIND_FLAGS) ./$< >$@ 2>&1; then \
	  echo "== valgrind $*: ok ($$(( $$(date +%s) - start )) s)"; \
	else \
	  rc=$$?; echo $$rc >$(VG_DIR)/$*.failed; \
	  grep -v -e '^\[ *RUN *\]' -e '^\[ *OK *\]' $@ | tail -80; \
	  echo "== valgrind $*: FAILED (exit $$rc; 99 = memcheck errors), full log $@"; \
	fi

$(VG_DIR)/libhwy.so.1: tests/unit/valgrind/hwy_stub.c tests/unit/valgrind/hwy_stub.map
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -Wl,-soname,libhwy.so.1 \
	  -Wl,--version-script=tests/unit/valgrind/hwy_stub.map -o $@ $<

FORCE:

# ThreadSanitizer (gcc -fsanitize=thread, build-tsan/): every unit test (the
# cpu device pool, the dit kernels and sampler on 1-3 pool threads, ipc's
# sender thread), then black-box suites (TSAN_BLACKBOX) whose worker
# processes (reader thread, execution thread, device pool) run the TSan
# binary. Reports go to files (log_path), one per process, because a worker
# that halts with exit 66 is just restarted by the supervisor: any report
# file fails the run. No suppression is needed: BLIS (called single-threaded
# from our pool threads) locks its pools with pthread mutexes, which TSan
# intercepts, and no run has reported anything in BLIS or libgomp.
# ~4-5 min on 2 cores from a clean build-tsan/.
TSAN_BUILD := build-tsan
TSAN_LOGS := $(CURDIR)/$(TSAN_BUILD)/tsan-logs
TSAN_OPTS := halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$(TSAN_LOGS)/tsan
TSAN_BLACKBOX ?= tests/blackbox/test_api.py tests/blackbox/test_canary.py \
  tests/blackbox/test_dit.py
TSAN_UNIT := $(UNIT_SRC:tests/unit/%.c=$(TSAN_BUILD)/tests/%)

check-tsan: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 SANITIZE=thread BUILD=$(TSAN_BUILD) $(PAR) \
	  all $(TSAN_UNIT) $(TEST_PLUGINS:$(BUILD)/%=$(TSAN_BUILD)/%)
	@readelf -d $(TSAN_BUILD)/mediad | grep -q libtsan || \
	  { echo "$(TSAN_BUILD)/mediad is not built with ThreadSanitizer"; exit 1; }
	@rm -rf $(TSAN_LOGS); mkdir -p $(TSAN_LOGS); fail=; \
	for t in $(TSAN_UNIT); do \
	  if MEDIAD_SRC=$(CURDIR) TSAN_OPTIONS="$(TSAN_OPTS)" ./$$t >$(TSAN_LOGS)/$${t##*/}.out 2>&1; \
	  then echo "== tsan $${t##*/}: ok"; \
	  else tail -40 $(TSAN_LOGS)/$${t##*/}.out; echo "== tsan $${t##*/}: FAILED"; fail=1; fi; \
	done; \
	MEDIAD_BIN=$(CURDIR)/$(TSAN_BUILD)/mediad TSAN_OPTIONS="$(TSAN_OPTS)" \
	  /usr/bin/python3 -m pytest -q $(TSAN_BLACKBOX) $(PYTEST_ARGS) || fail=1; \
	reports=$$(ls $(TSAN_LOGS)/tsan.* 2>/dev/null); \
	for f in $$(echo $$reports | tr ' ' '\n' | head -3); do echo "== $$f"; head -100 $$f; done; \
	if [ -n "$$reports" ]; then \
	  echo "check-tsan: $$(echo $$reports | wc -w) ThreadSanitizer report(s) in $(TSAN_LOGS)"; fail=1; fi; \
	[ -z "$$fail" ]

# format (clang-format, report only), layering (scripts/layering.py against
# docs/architecture.md, on the objects of $(BUILD)), the checker's tests,
# cppcheck: see scripts/lint.sh.
lint: all
	BUILD=$(BUILD) bash scripts/lint.sh

soak: all
	MEDIAD_BIN=$(CURDIR)/$(BUILD)/mediad /usr/bin/python3 tests/soak/soak.py --seconds $${SOAK_SECONDS:-60}

bench: all
	bash scripts/install-deps.sh --bench
	bash bench/run.sh

# libFuzzer drivers (issue 8): tests/fuzz/fuzz_X.c is built with clang against
# FUZZ_SRC_X plus buf/util/log and run for FUZZ_SECONDS on a scratch copy of
# tests/fuzz/corpus/X in /tmp (with tests/fuzz/X.dict when there is one). A
# finding leaves its input and log in that scratch directory and fails the run.
FUZZ_SECONDS ?= 10
FUZZ_CC ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -iquote src -iquote include -D_GNU_SOURCE $(PKG_CFLAGS)
FUZZ_COMMON := src/buf.c src/util.c src/log.c
FUZZ_SRC_ipc := src/ipc.c
FUZZ_SRC_router := src/router.c
FUZZ_SRC_validate := src/validate.c src/apierr.c
FUZZ_SRC_base64 := src/media.c
FUZZ_SRC_safetensors := src/safetensors.c
FUZZ_SRC_audio_in := src/runners/sphinx/audio_in.c
# config.c parses MODEL_RUNNER and DEVICE against the real registries; the
# runners' ops are stubs (tests/fuzz/runner_ops_stub.c)
FUZZ_SRC_config := src/config.c src/runners/registry.c tests/fuzz/runner_ops_stub.c \
                   src/devices/registry.c src/devices/cpu.c src/devices/mock.c src/faults.c
FUZZ_SRC_multipart := src/multipart.c src/form.c
FUZZ_SRC_gguf := src/runners/llama/gguf.c
FUZZ_SRC_template := src/runners/llama/template.c
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz
fuzz:
	@mkdir -p $(FUZZ_DIR)
	$(foreach n,$(FUZZ_NAMES),$(FUZZ_CC) $(FUZZ_CFLAGS) -o $(FUZZ_DIR)/fuzz_$(n) \
	  tests/fuzz/fuzz_$(n).c $(FUZZ_SRC_$(n)) $(FUZZ_COMMON) $(LIBS) &&) true
	@fail=; for n in $(FUZZ_NAMES); do \
	  tmp=$$(mktemp -d /tmp/mediad-fuzz-$$n.XXXXXX); mkdir -p $$tmp/corpus; \
	  if [ -d tests/fuzz/corpus/$$n ]; then cp -r tests/fuzz/corpus/$$n/. $$tmp/corpus/; fi; \
	  dict=; if [ -f tests/fuzz/$$n.dict ]; then dict=-dict=$(CURDIR)/tests/fuzz/$$n.dict; fi; \
	  echo "== fuzz_$$n for $(FUZZ_SECONDS) s"; \
	  if LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp $(FUZZ_DIR)/fuzz_$$n $$dict \
	     -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 \
	     -artifact_prefix=$$tmp/ $$tmp/corpus >$$tmp/log 2>&1; then \
	    grep -h 'stat::number_of_executed_units' $$tmp/log; rm -rf $$tmp; \
	  else \
	    grep -v '^#' $$tmp/log | tail -30; echo "fuzz_$$n FOUND SOMETHING: see $$tmp"; \
	    fail="$$fail $$n"; \
	  fi; \
	done; [ -z "$$fail" ] || { echo "fuzz findings in:$$fail"; exit 1; }

clean:
	rm -rf build build-san build-tsan

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d) $(wildcard $(BUILD)/mediad-*.d) \
  $(PLUGIN_CPU_OBJ:.o=.d) $(TEST_PLUGINS:=.d)
