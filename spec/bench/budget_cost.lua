-- spec/bench/budget_cost.lua: what the budget instrumentation costs, JIT on.
--
--   luajit spec/bench/budget_cost.lua
--
-- Runs each workload as plain Lua (load(), the VM's own string metatable)
-- and as a sandboxed plugin (sandbox.load(): budget checks inserted, the
-- hardened string methods) under budget.run, and prints the best of several
-- runs and the ratio instrumented / plain. A measurement, not a test.

package.path = "./lua/?.lua;" .. package.path

local budget = require "sluice.budget"

jit.on()

local REPEAT = 11

local workloads = {
  { "sum 1..1e7 in a for loop", 1e7, [[
    return function(n)
      local s = 0
      for i = 1, n do s = s + i end
      return s
    end]] },
  { "while loop, 1e7 iterations", 1e7, [[
    return function(n)
      local i, s = 0, 0
      while i < n do i = i + 1 s = s + i % 3 end
      return s
    end]] },
  { "a small function called 1e7 times", 1e7, [[
    local function clamp(x, lo, hi) if x < lo then return lo elseif x > hi then return hi end return x end
    return function(n)
      local s = 0
      for i = 1, n do s = s + clamp(i % 100, 10, 90) end
      return s
    end]] },
  { "recursive fib(30) (function entries; noisy)", 30, [[
    local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
    return fib]] },
  { "string methods: byte/sub/find over 1e5 bytes x20", 20, [[
    local s = ("abcdefghij"):rep(10000)
    return function(n)
      local c = 0
      for _ = 1, n do
        for i = 1, #s do
          if s:byte(i) == 97 then c = c + #s:sub(i, i + 3) end
        end
        c = c + (s:find("j", 1, true) or 0)
      end
      return c
    end]] },
  { "table inserts and concat, 1e6 items", 1e6, [[
    return function(n)
      local t = {}
      for i = 1, n do t[#t + 1] = "k" .. (i % 100) end
      local parts = {}
      for i = 1, 1000 do parts[i] = t[i] end
      return #table.concat(parts, ",")
    end]] },
}

local function best_time(fn, arg, limits)
  local best = math.huge
  for _ = 1, REPEAT do
    collectgarbage("collect")
    local t0 = os.clock()
    local ok, kind, msg = budget.run(fn, limits, arg)
    local dt = os.clock() - t0
    assert(ok, msg or kind)
    if dt < best then best = dt end
  end
  return best
end

local limits = { timeout_ms = 60000, memory_limit_mb = 1024 }

-- Plain first, while the string metatable is still the VM's own.
local plain = {}
for i, w in ipairs(workloads) do
  local f = assert(load(w[3], "=plain"))()
  best_time(f, w[2], limits)          -- warm up the JIT
  plain[i] = best_time(f, w[2], limits)
end

local sandbox = require "sluice.sandbox"
print(("%-50s %10s %12s %7s"):format("workload (JIT on, best of " .. REPEAT .. ")",
                                      "plain ms", "sandbox ms", "ratio"))
for i, w in ipairs(workloads) do
  local chunk = assert(sandbox.load(w[3], "bench.lua"))
  local _, f = budget.run(chunk)
  best_time(f, w[2], limits)
  local t = best_time(f, w[2], limits)
  print(("%-50s %10.2f %12.2f %7.2f"):format(w[1], plain[i] * 1000, t * 1000, t / plain[i]))
end

-- The fixed cost of budget.run around a hook: one that does nothing, and a
-- sandboxed one with a 10-iteration loop (below the first slow path: no
-- clock read).
local N = 1e6
local nop = function(x) return x end
local chunk = assert(sandbox.load(
  "return function(n) local s = 0 for i = 1, n do s = s + i end return s end", "hook.lua"))
local _, hook = budget.run(chunk)
local t0 = os.clock()
for i = 1, N do budget.run(nop, limits, i) end
local t_nop = (os.clock() - t0) / N
t0 = os.clock()
for _ = 1, N do budget.run(hook, limits, 10) end
local t_hook = (os.clock() - t0) / N
print(("budget.run: %.0f ns around an empty hook, %.0f ns for a 10-iteration sandboxed hook")
  :format(t_nop * 1e9, t_hook * 1e9))
