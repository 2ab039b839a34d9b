-- spec/unit/clock_spec.lua: the clock that times plugin hooks (src/clock.c)
-- agrees with CLOCK_MONOTONIC, whether it reads the CPU's time-stamp
-- counter (scaled by the rate measured at start) or the kernel's clock.

local ffi = require "ffi"
local harness = require "spec.plugin_harness"   -- loads the library globally

-- One declaration per cdef, and a clock_gettime of its own name: other
-- spec files and lua/sluice may have declared some of these already.
for _, decl in ipairs {
  "bool sl_test_clock_init(void);",
  "int64_t sl_test_clock_ns(void);",
  "struct clock_spec_timespec { int64_t tv_sec, tv_nsec; };",
  [[int clock_spec_gettime(int clk, struct clock_spec_timespec *ts) __asm__("clock_gettime");]],
  "int setenv(const char *name, const char *value, int overwrite);",
  "int unsetenv(const char *name);",
  "int usleep(unsigned usec);",
} do
  pcall(ffi.cdef, decl)
end

local C = ffi.C
local lib = ffi.load(harness.lib_path, true)
local CLOCK_MONOTONIC = 1

local function monotonic_ns()
  local ts = ffi.new("struct clock_spec_timespec")
  C.clock_spec_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

-- How far the hook clock and CLOCK_MONOTONIC disagree over a 100 ms sleep.
local function drift()
  local h0, m0 = tonumber(lib.sl_test_clock_ns()), monotonic_ns()
  C.usleep(100000)
  local h1, m1 = tonumber(lib.sl_test_clock_ns()), monotonic_ns()
  return (h1 - h0) - (m1 - m0), m1 - m0
end

describe("the plugin hook clock", function()
  after_each(function()
    C.unsetenv("SLUICE_HOOK_CLOCK")
    lib.sl_test_clock_init()
  end)

  it("measures what CLOCK_MONOTONIC measures, within 1%, with the source sluice picks", function()
    local tsc = lib.sl_test_clock_init()
    local d, span = drift()
    assert.is_true(span >= 100e6)
    assert.is_true(math.abs(d) < span / 100,
      ("hook clock (tsc=%s) off by %d ns over %d ns"):format(tostring(tsc), d, span))
  end)

  it("never goes back on one thread", function()
    lib.sl_test_clock_init()
    local last = lib.sl_test_clock_ns()
    for _ = 1, 100000 do
      local now = lib.sl_test_clock_ns()
      assert(now >= last, "the hook clock went back")
      last = now
    end
  end)

  it("is CLOCK_MONOTONIC itself with SLUICE_HOOK_CLOCK=monotonic", function()
    C.setenv("SLUICE_HOOK_CLOCK", "monotonic", 1)
    assert.is_false(lib.sl_test_clock_init())
    local m0 = monotonic_ns()
    local h = tonumber(lib.sl_test_clock_ns())
    local m1 = monotonic_ns()
    assert.is_true(h >= m0 and h <= m1)
  end)

  it("reads the time-stamp counter on an x86-64 CPU that says it is invariant", function()
    local f = io.open("/proc/cpuinfo")
    local info = f and f:read("*a") or ""
    if f then f:close() end
    local invariant = ffi.arch == "x64" and info:find(" constant_tsc") and info:find(" nonstop_tsc")
    assert.equals(invariant and true or false, lib.sl_test_clock_init())
  end)
end)
