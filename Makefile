# sluice — one plain GNU Makefile.
#
#   make            build build/sluice and build/sluice-origin
#   make build/libsluice.so
#                   the core as a shared library, for specs that load it through
#                   LuaJIT FFI (spec/plugin_harness.lua)
#   make run        install what is missing, build, start sluice on conf/sluice.yaml
#                   in front of the bundled demo origin
#   make test       install, build (release, ASan+UBSan, libsluice.so) and run every spec
#   make bench      wrk + callgrind: sluice against nginx, then plugin costs against
#                   nginx+Lua and HAProxy+Lua (see docs/BENCHMARKS.md)
#   make install PREFIX=/usr/local
#                   also installs sluice_plugin.h and sluice-plugin.pc, for
#                   native plugins built out of tree (docs/PLUGINS.md)
#   make plugin SRC=path/to/x.c
#                   builds a native plugin path/to/x.so against this tree
#   make clean

PREFIX     ?= /usr/local
CC         ?= cc
BUILD      ?= build
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

# Debian 12 packages, installed by `make deps` only when absent.
DEB_BUILD := gcc make pkg-config libevent-dev libyaml-dev libluajit2-5.1-dev node-llhttp libssl-dev
DEB_TEST  := lua-busted luajit2 lua-socket
DEB_BENCH := nginx-light libnginx-mod-http-lua haproxy wrk valgrind strace python3 util-linux

PKGS      := libevent yaml-0.1 libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LUA_CFLAGS = $(shell pkg-config --cflags luajit 2>/dev/null)
LUA_LIBS   = $(shell pkg-config --libs luajit 2>/dev/null)
# Lua plugins reach the core through LuaJIT FFI: the binary exports exactly
# the sl_ffi_* functions (quoted so the shell does not glob the pattern).
LUA_LDFLAGS := '-Wl,--export-dynamic-symbol=sl_ffi_*'

WARN      := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Wvla
BASEFLAGS  = -std=c11 -D_GNU_SOURCE -DLLHTTP_STRICT_MODE=1 -pthread -MMD -MP -Isrc -Iplugins-native/include -I$(LLHTTP_INC) $(PKG_CFLAGS) $(LUA_CFLAGS)
OPT_REL   := -O2 -g
OPT_ASAN  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LIBS       = $(PKG_LIBS) -lpthread

# testing.c (the sl_test_* functions specs call) goes into the shared
# library only, never into the binaries.
TEST_SRCS   := src/testing.c src/testing_shdict.c
CORE_SRCS   := $(filter-out src/main.c $(TEST_SRCS),$(wildcard src/*.c))
ORIGIN_SRCS := $(wildcard src/origin/*.c)
LLHTTP_C    := api.c http.c llhttp.c

REL_OBJS    := $(CORE_SRCS:src/%.c=$(BUILD)/rel/%.o) $(BUILD)/rel/main.o
ASAN_OBJS   := $(CORE_SRCS:src/%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/main.o
ORIGIN_OBJS := $(ORIGIN_SRCS:src/origin/%.c=$(BUILD)/origin/%.o)
LLHTTP_REL  := $(LLHTTP_C:%.c=$(BUILD)/rel/llhttp/%.o)
LLHTTP_ASAN := $(LLHTTP_C:%.c=$(BUILD)/asan/llhttp/%.o)
PIC_OBJS    := $(CORE_SRCS:src/%.c=$(BUILD)/pic/%.o) $(TEST_SRCS:src/%.c=$(BUILD)/pic/%.o)
LLHTTP_PIC  := $(LLHTTP_C:%.c=$(BUILD)/pic/llhttp/%.o)

.PHONY: all asan run test bench install clean deps deps-build deps-test deps-bench

all: $(BUILD)/sluice $(BUILD)/sluice-origin native

asan: $(BUILD)/asan/sluice

$(BUILD)/sluice: $(REL_OBJS) $(LLHTTP_REL)
	$(CC) $(OPT_REL) -pthread $(LUA_LDFLAGS) -o $@ $^ $(LIBS) $(LUA_LIBS)

$(BUILD)/asan/sluice: $(ASAN_OBJS) $(LLHTTP_ASAN)
	$(CC) $(OPT_ASAN) -pthread $(LUA_LDFLAGS) -o $@ $^ $(LIBS) $(LUA_LIBS)

$(BUILD)/sluice-origin: $(ORIGIN_OBJS) $(BUILD)/rel/status.o $(LLHTTP_REL)
	$(CC) $(OPT_REL) -pthread -o $@ $^ $(LIBS)

# The core (every object but main.c, plus testing.c) as a shared library:
# busted specs load it with ffi.load(path, true) and drive real requests
# and plugins without starting the proxy. Loaded globally, it also provides
# the sl_ffi_* functions the plugin VMs reach through ffi.C. -z defs: every
# symbol must resolve now, not when a spec first calls it.
$(BUILD)/libsluice.so: $(PIC_OBJS) $(LLHTTP_PIC)
	$(CC) $(OPT_REL) -pthread -shared -Wl,-z,defs -o $@ $^ $(LIBS) $(LUA_LIBS)

$(BUILD)/rel/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(WARN) $(OPT_REL) -c -o $@ $<

$(BUILD)/asan/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(WARN) $(OPT_ASAN) -c -o $@ $<

$(BUILD)/pic/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(WARN) $(OPT_REL) -fPIC -c -o $@ $<

$(BUILD)/origin/%.o: src/origin/%.c
	@mkdir -p $(@D)
	$(CC) $(BASEFLAGS) $(WARN) $(OPT_REL) -c -o $@ $<

# llhttp's generated C comes from the node-llhttp package; it is not ours, so
# it is built without our warning set, in llhttp's strict mode (the lenient
# mode skips any two bytes after chunk data, a request smuggling vector).
$(BUILD)/rel/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) $(OPT_REL) -c -o $@ $<

$(BUILD)/asan/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) $(OPT_ASAN) -c -o $@ $<

$(BUILD)/pic/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) $(OPT_REL) -fPIC -c -o $@ $<

# --- native plugins ---------------------------------------------------------
# plugins-native/NAME.c -> $(BUILD)/plugins-native/NAME.so, built exactly as
# a third-party plugin is (docs/PLUGINS.md): only sluice_plugin.h (plus
# libcrypto for jwt), -fPIC -shared, and -z defs, so a plugin that would
# need a symbol of sluice fails to link here rather than to load. The spec
# fixtures (spec/fixtures/native/, bad plugins on purpose) go to
# $(BUILD)/fixtures-native/, out of every default plugin path.
PLUGIN_CFLAGS  := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -fvisibility=hidden \
                  -Iplugins-native/include $(WARN)
PLUGIN_LDFLAGS := -shared -Wl,-z,defs
CRYPTO_LIBS     = $(shell pkg-config --libs libcrypto 2>/dev/null)
NATIVE_SOS     := $(patsubst plugins-native/%.c,$(BUILD)/plugins-native/%.so,$(wildcard plugins-native/*.c))
FIXTURE_SOS    := $(patsubst spec/fixtures/native/%.c,$(BUILD)/fixtures-native/%.so,$(wildcard spec/fixtures/native/*.c))

.PHONY: native plugin
native: $(NATIVE_SOS) $(FIXTURE_SOS)

$(BUILD)/plugins-native/%.so: plugins-native/%.c
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -MMD -MP $(PLUGIN_LDFLAGS) -o $@ $< $(PLUGIN_EXTRA)

$(BUILD)/plugins-native/jwt.so: PLUGIN_EXTRA = $(CRYPTO_LIBS)

$(BUILD)/fixtures-native/%.so: spec/fixtures/native/%.c
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -MMD -MP $(PLUGIN_LDFLAGS) -o $@ $<

# One source built once per version: builds of "vtag" that differ as a
# rebuilt plugin does, for the reload specs (spec/e2e/reload_native_spec.lua);
# version 3 is linked NODELETE, a copy dlclose cannot unmap.
VTAG_SOS       := $(patsubst %,$(BUILD)/fixtures-native/vtag-%.so,1 2 3)
native: $(VTAG_SOS)

$(BUILD)/fixtures-native/vtag-3.so: VTAG_EXTRA = -Wl,-z,nodelete

$(BUILD)/fixtures-native/vtag-%.so: spec/fixtures/native/versioned/vtag.c
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -DVERSION=$* -MMD -MP $(PLUGIN_LDFLAGS) $(VTAG_EXTRA) -o $@ $<

# The native benchmark plugin of spec/bench/plugins.sh (variant sluice-native).
BENCH_SO       := $(BUILD)/bench-native/bench.so

$(BENCH_SO): spec/bench/bench-native.c
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -MMD -MP $(PLUGIN_LDFLAGS) -o $@ $<

# Out of tree: make plugin SRC=path/to/x.c [PLUGIN_LIBS=-lfoo] builds
# path/to/x.so against this tree's sluice_plugin.h.
plugin:
	@test -n "$(SRC)" || { echo "usage: make plugin SRC=path/to/plugin.c [PLUGIN_LIBS=...]"; exit 2; }
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $(basename $(SRC)).so $(SRC) $(PLUGIN_LIBS)

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/*/*/*.d)

# --- dependencies ---------------------------------------------------------

define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps-build:
	$(call install_missing,$(DEB_BUILD))

deps-test: deps-build
	$(call install_missing,$(DEB_TEST))

deps-bench: deps-build
	$(call install_missing,$(DEB_BENCH))

deps: deps-test

# --- running --------------------------------------------------------------

run: deps-build
	@$(MAKE) --no-print-directory all
	@$(BUILD)/sluice-origin --listen 127.0.0.1:9001 --name demo-1 & o1=$$!; \
	 $(BUILD)/sluice-origin --listen 127.0.0.1:9002 --name demo-2 & o2=$$!; \
	 trap 'kill $$o1 $$o2 2>/dev/null' EXIT INT TERM; \
	 echo "sluice: try  curl http://localhost:8080/"; \
	 $(BUILD)/sluice -c conf/sluice.yaml

test: deps-test
	@$(MAKE) --no-print-directory all asan $(BUILD)/libsluice.so
	@spec/run.sh

bench: deps-bench $(BENCH_SO)
	@$(MAKE) --no-print-directory all
	@rc=0; spec/bench/run.sh || rc=1; spec/bench/plugins.sh || rc=1; exit $$rc

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/sluice/conf
	install -m 755 $(BUILD)/sluice $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 755 $(BUILD)/sluice-origin $(DESTDIR)$(PREFIX)/bin/sluice-origin
	install -m 644 conf/sluice.yaml $(DESTDIR)$(PREFIX)/share/sluice/conf/sluice.yaml
	install -d $(DESTDIR)$(PREFIX)/share/sluice/lua/sluice $(DESTDIR)$(PREFIX)/share/sluice/plugins-lua
	install -m 644 lua/sluice/*.lua $(DESTDIR)$(PREFIX)/share/sluice/lua/sluice/
	cp -R plugins-lua/. $(DESTDIR)$(PREFIX)/share/sluice/plugins-lua/
	install -d $(DESTDIR)$(PREFIX)/share/sluice/plugins-native $(DESTDIR)$(PREFIX)/include/sluice \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(NATIVE_SOS) $(DESTDIR)$(PREFIX)/share/sluice/plugins-native/
	install -m 644 plugins-native/include/sluice_plugin.h $(DESTDIR)$(PREFIX)/include/sluice/
	sed -e 's|@PREFIX@|$(PREFIX)|' plugins-native/sluice-plugin.pc.in \
	  >$(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice-plugin.pc

clean:
	rm -rf $(BUILD) spec/.results
