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
LIBS = $(PKG_LIBS) -lblis -lm

SRC := $(wildcard src/*.c src/devices/*.c src/runners/*.c)
MAIN_SRC := src/main.c
LIB_SRC := $(filter-out $(MAIN_SRC),$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check unit blackbox check-san clean lint bench
all: $(BUILD)/mediad

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

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmediad.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MF $@.d $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libmediad.a $(LIBS) -lcmocka

run: deps
	@$(MAKE) --no-print-directory all
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

bench: all
	bash scripts/install-deps.sh --bench
	bash bench/run.sh

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d)
