# mediad build. One Makefile, out-of-tree objects in build/, pkg-config for
# every library. `make` builds, `make check` runs all tests, `make run` starts
# the server on port 8000. DEVELOPER=1 turns warnings into errors;
# SANITIZE=address,undefined builds with sanitizers into build-san/.

PKGS := libmicrohttpd jansson sqlite3 libsystemd libsodium spng libturbojpeg \
        sndfile soxr libavcodec libavformat libavutil libswscale libxxhash
CC ?= gcc
ifeq ($(CC),cc)
CC := gcc
endif

BUILD ?= build
ifneq ($(SANITIZE),)
BUILD := build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

OPT ?= -O2
CFLAGS_BASE := -std=gnu17 $(OPT) -g -pthread -MMD -MP -iquote src -D_GNU_SOURCE
ifeq ($(DEVELOPER),1)
CFLAGS_BASE += -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -Wformat=2 -Wvla
else
CFLAGS_BASE += -Wall -Wextra -Wno-unused-parameter
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = $(CFLAGS_BASE) $(PKG_CFLAGS) -I/usr/include/blis $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(SANFLAGS) $(LDFLAGS)
FLITE_LIBS := -lflite_cmu_us_slt -lflite_cmu_us_rms -lflite_cmu_us_awb -lflite_cmu_us_kal16 \
              -lflite_cmu_us_kal -lflite_usenglish -lflite_cmulex -lflite
# pocketsphinx's include path carries its own err.h/heap.h that would shadow
# glibc's: only the sphinx runner gets it.
PS_CFLAGS = $(shell pkg-config --cflags pocketsphinx 2>/dev/null)
PS_LIBS = $(shell pkg-config --libs pocketsphinx 2>/dev/null)
LIBS = $(PKG_LIBS) $(PS_LIBS) $(FLITE_LIBS) -lblis -lm

SRC := $(wildcard src/*.c src/devices/*.c src/runners/*.c)
MAIN_SRC := src/main.c
LIB_SRC := $(filter-out $(MAIN_SRC),$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check unit blackbox check-san clean lint bench soak
all: $(BUILD)/mediad $(BUILD)/mediad-mkweights

deps:
	@bash scripts/install-deps.sh

$(BUILD)/src/runners/sphinx.o: ALL_CFLAGS += $(PS_CFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libmediad.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mediad: $(MAIN_OBJ) $(BUILD)/libmediad.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(MAIN_OBJ) $(BUILD)/libmediad.a $(LIBS)

# tools/X.c -> $(BUILD)/mediad-X (mkweights; ditbench for bench/dit.sh)
$(BUILD)/mediad-%: tools/%.c $(BUILD)/libmediad.a
	$(CC) $(ALL_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmediad.a $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmediad.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmediad.a $(LIBS) -lcmocka

run: deps
	@$(MAKE) --no-print-directory all
	MODEL_RUNNER=$${MODEL_RUNNER:-dit} DIT_PRESET=$${DIT_PRESET:-small} \
	  ./$(BUILD)/mediad --port $${SERVICE_PORT:-8000}

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; MEDIAD_SRC=$(CURDIR) ./$$t; done

blackbox: $(BUILD)/mediad
	MEDIAD_BIN=$(CURDIR)/$(BUILD)/mediad /usr/bin/python3 -m pytest -q -x tests/blackbox $(PYTEST_ARGS)

check: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 all unit
	@$(MAKE) --no-print-directory DEVELOPER=1 blackbox

check-san: deps
	@$(MAKE) --no-print-directory DEVELOPER=1 SANITIZE=address,undefined all unit
	@$(MAKE) --no-print-directory DEVELOPER=1 SANITIZE=address,undefined blackbox

lint:
	clang-format --dry-run --Werror $(SRC) $(wildcard src/*.h src/*/*.h)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance -Isrc $(SRC)

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
              -iquote src -D_GNU_SOURCE $(PKG_CFLAGS)
FUZZ_COMMON := src/buf.c src/util.c src/log.c
FUZZ_SRC_ipc := src/ipc.c
FUZZ_SRC_router := src/router.c
FUZZ_SRC_validate := src/validate.c src/apierr.c
FUZZ_SRC_base64 := src/media.c
FUZZ_SRC_safetensors := src/safetensors.c
FUZZ_SRC_audio_in := src/audio_in.c
FUZZ_SRC_config := src/config.c
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
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d) $(wildcard $(BUILD)/mediad-*.d)
