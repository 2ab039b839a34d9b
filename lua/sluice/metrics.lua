-- lua/sluice/metrics.lua: sluice.metrics, a plugin's own Prometheus
-- metrics (src/metrics.c). Defined while the plugin loads (its main chunk
-- or init), updated from hooks:
--
--   local hits = sluice.metrics.counter("hits", "Requests the plugin saw.")
--   local size = sluice.metrics.histogram("body_bytes", "Body sizes.", { 100, 1000, 10000 })
--   function plugin.request_headers() hits:inc() end
--   function plugin.log() size:observe(n) end
--
-- A metric is exposed as sluice_plugin_<plugin>_<name> (a counter gets
-- _total appended unless its name ends with it; '-' in a plugin's name
-- becomes '_'), summed over the workers. No labels in this version:
-- every label set is one more series per plugin, and a series per
-- request value (a path, a user) would grow without bound. Each VM of the
-- plugin (one per worker) runs the definition again and gets the same
-- metric; a reload keeps its value.
--
-- Updates are one FFI call with a number: inc/observe compile into the
-- hook's trace and allocate nothing.

local base = require "sluice.base"

local C = base.C
local fail = base.fail
local type, error = type, error
local huge = math.huge

local M = {}

local ERRLEN = 256
local errbuf = base.new("char[?]", ERRLEN)
local MAX_BUCKETS = 32
local bucketbuf = base.new("double[?]", MAX_BUCKETS)

local COUNTER, HISTOGRAM = 0, 1

-- define runs under counter()/histogram(): its errors name the plugin's
-- line, two levels up.
local function define_arg_error(fname, n, expected, v)
  error(fname .. ": bad argument #" .. n .. " (" .. expected .. " expected, got "
        .. type(v) .. ")", 4)
end

local function define(fname, kind, name, help, buckets)
  local ph = base.get_phase()
  if ph ~= nil and ph ~= base.INIT then
    error(fname .. ": only while the plugin loads (its main chunk or init)", 3)
  end
  if type(name) ~= "string" then define_arg_error(fname, 1, "string", name) end
  if help == nil then help = "" end
  if type(help) ~= "string" then define_arg_error(fname, 2, "string or nil", help) end
  if name:find("%z") or help:find("%z") then
    error(fname .. ": names and help text cannot hold a NUL byte", 3)
  end
  local bp, nb = nil, 0
  if buckets ~= nil then
    if type(buckets) ~= "table" then define_arg_error(fname, 3, "table or nil", buckets) end
    nb = #buckets
    if nb < 1 or nb > MAX_BUCKETS then
      error(fname .. ": a histogram has 1 to " .. MAX_BUCKETS .. " buckets", 3)
    end
    for i = 1, nb do
      local b = buckets[i]
      if type(b) ~= "number" then
        error(fname .. ": bucket " .. i .. " is not a number", 3)
      end
      bucketbuf[i - 1] = b
    end
    bp = bucketbuf
  end
  local h = C.sl_ffi_metric_define(base.plugin_name, kind, name, help, bp, nb, errbuf, ERRLEN)
  if h < 0 then
    if h == base.EPHASE then
      error(fname .. ": only while the plugin loads (its main chunk or init)", 3)
    end
    error(fname .. ": " .. base.string(errbuf), 3)
  end
  return h
end

--- counter(name, help) -> a counter, with :inc(n) (n a number >= 0,
--- default 1). Only while the plugin loads; inc only during a request.
function M.counter(name, help)
  local h = define("sluice.metrics.counter", COUNTER, name, help, nil)
  local function inc(_, n, labels)
    if labels ~= nil then
      error("counter:inc: labels are not supported", 2)
    end
    if n == nil then
      n = 1
    elseif type(n) ~= "number" or not (n >= 0) or n == huge then
      error("counter:inc: bad argument #1 (a finite number >= 0 expected, got "
            .. (type(n) == "number" and tostring(n) or type(n)) .. ")", 2)
    end
    local rc = C.sl_ffi_metric_add(h, n)
    if rc ~= 0 then return fail("counter:inc", rc, "value") end
  end
  return { inc = inc }
end

--- histogram(name, help, buckets) -> a histogram, with :observe(v) (v a
--- finite number). buckets: 1 to 32 strictly increasing upper bounds;
--- default { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 } (seconds).
function M.histogram(name, help, buckets)
  local h = define("sluice.metrics.histogram", HISTOGRAM, name, help, buckets)
  local function observe(_, v, labels)
    if labels ~= nil then
      error("histogram:observe: labels are not supported", 2)
    end
    if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
      error("histogram:observe: bad argument #1 (a finite number expected, got "
            .. (type(v) == "number" and tostring(v) or type(v)) .. ")", 2)
    end
    local rc = C.sl_ffi_metric_observe(h, v)
    if rc ~= 0 then return fail("histogram:observe", rc, "value") end
  end
  return { observe = observe }
end

return M
