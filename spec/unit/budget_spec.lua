-- spec/unit/budget_spec.lua: CPU and memory budgets stop runaway plugin
-- code with the JIT on, and the instrumenting lexer leaves code as it was.
-- The cost of the instrumentation is measured by spec/bench/budget_cost.lua.

if not package.path:find("./lua/?.lua", 1, true) then
  package.path = "./lua/?.lua;" .. package.path
end

local sandbox = require "sluice.sandbox"
local budget = require "sluice.budget"
local socket = require "socket"

local TIMEOUT_MS = 50
local SLACK_S = 0.25      -- a 50 ms budget must stop the plugin within this

local function load_plugin(src, name)
  local fn, err = sandbox.load(src, name or "plugin.lua")
  assert(fn, err)
  return fn
end

-- run(src, limits) -> elapsed wall seconds, budget.run's results...
local function run(src, limits)
  local fn = load_plugin(src)
  local t0 = socket.gettime()
  return (function(...) return socket.gettime() - t0, ... end)(budget.run(fn, limits))
end

-- A memory limit this many MB above what the VM (busted included) holds now.
local function limit_above(mb)
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") / 1024 + mb
end

describe("Plugin budgets", function()
  local string_mt = debug.getmetatable("")
  local saved_index, saved_protect = string_mt.__index, string_mt.__metatable
  teardown(function()
    string_mt.__index, string_mt.__metatable = saved_index, saved_protect
  end)

  before_each(function()
    jit.on()
    assert.is_true((jit.status()))
  end)

  describe("stop runaway CPU with the JIT on (timeout " .. TIMEOUT_MS .. " ms):", function()
    local runaway = {
      { "while true do end", "while true do end" },
      { "repeat until false", "repeat until false" },
      { "for i = 1, math.huge", "for i = 1, math.huge do end" },
      { "a for loop with a body", "local s = 0 for i = 1, math.huge do s = s + i % 7 end return s" },
      { "a generic for over an endless iterator", "for _ in function() return 1 end do end" },
      { "a goto loop", "::top:: goto top" },
      { "a goto loop in a nested block", "local i = 0 do ::again:: i = i + 1 if i > 0 then goto again end end" },
      { "tail recursion", "local function f(n) return f(n + 1) end return f(1)" },
      { "mutual recursion", "local g local function f() return g() end g = function() return f() end return f()" },
      { "deep recursion caught and retried",
        "local function f(n) return 1 + f(n + 1) end while true do pcall(f, 1) end" },
      { "pcall around the loop", "pcall(function() while true do end end) return 'survived'" },
      { "pcall in a loop", "while true do pcall(function() while true do end end) end" },
      { "xpcall whose handler loops",
        "xpcall(function() error('x') end, function(e) while true do end end) return 'survived'" },
      { "xpcall in a loop whose handler loops",
        "while true do xpcall(function() while true do end end, function() while true do end end) end" },
      { "error handler that retries",
        "local function f() while true do end end while true do xpcall(f, f) end" },
      { "coroutine.wrap", "coroutine.wrap(function() while true do end end)() return 'survived'" },
      { "coroutine.resume in a loop",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end" },
      { "a loop inside string.gsub's callback",
        "return (('x'):rep(10):gsub('.', function() while true do end end))" },
      { "pcall inside a gsub callback",
        "return (('x'):rep(1000000):gsub('.', function() pcall(function() while true do end end) end))" },
      { "a looping table.sort comparator",
        "local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)" },
      { "a looping __index", "local t = setmetatable({}, { __index = function() while true do end end }) return t.x" },
      { "a looping __tostring", "return tostring(setmetatable({}, { __tostring = function() while true do end end }))" },
      { "a loop in text given to load()", "load('while true do end')()" },
      { "a loop in load()'s reader", "load(function() while true do end end)" },
      { "a tight loop of string work", "local s = 'abc' while true do s = ('abc'):upper():lower() end" },
      { "a loop over big C string operations",
        "local s = ('x'):rep(2^20) local n = 0 while true do n = n + #s:upper() end" },
    }
    for _, case in ipairs(runaway) do
      it(case[1], function()
        local elapsed, ok, kind, msg = run(case[2], { timeout_ms = TIMEOUT_MS })
        assert.is_false(ok)
        assert.equal("timeout", kind, msg)
        assert.matches("budget exceeded: timeout", msg)
        assert.is_true(elapsed < SLACK_S, ("stopped after %.3f s"):format(elapsed))
      end)
    end

    it("report where the plugin was stopped", function()
      local _, ok, kind, msg = run("local x = 0\n\nwhile true do x = x + 1 end\n", { timeout_ms = TIMEOUT_MS })
      assert.is_false(ok)
      assert.equal("timeout", kind)
      assert.matches("^plugin.lua:3: budget exceeded", msg)
    end)

    it("deep recursion is an ordinary error, not a hang", function()
      local elapsed, ok, kind, msg = run("local function f(n) return 1 + f(n + 1) end return f(1)",
                                         { timeout_ms = TIMEOUT_MS })
      assert.is_false(ok)
      assert.is_true(kind == "error" or kind == "timeout", kind)
      assert.is_string(msg)
      assert.is_true(elapsed < SLACK_S)
    end)

    it("an error object whose __tostring loops is not called once the budget is over", function()
      local elapsed, ok, kind, msg = run(
        "error(setmetatable({}, { __tostring = function() while true do end end }))",
        { timeout_ms = TIMEOUT_MS })
      assert.is_false(ok)
      assert.equal("error", kind)
      assert.equal("(error object is a table value)", msg)
      assert.is_true(elapsed < SLACK_S)
    end)

    it("a plugin cannot yield out of the budget", function()
      local fn = load_plugin("coroutine.yield('escaped') while true do end")
      local co = coroutine.create(function() return budget.run(fn, { timeout_ms = TIMEOUT_MS }) end)
      local resumed, ok, kind, msg = coroutine.resume(co)
      assert.is_true(resumed)
      assert.is_false(ok)
      assert.equal("error", kind)
      assert.matches("outside a coroutine", msg)
      assert.is_false(budget.is_active())
    end)

    it("the budget is reset for the next call", function()
      local fn = load_plugin("return function(n) local s = 0 for i = 1, n do s = s + i end return s end")
      local _, f = budget.run(fn)
      assert.is_false((budget.run(function() while true do f(10) end end, { timeout_ms = 20 })))
      local ok, s = budget.run(f, { timeout_ms = 1000 }, 1000)
      assert.is_true(ok)
      assert.equal(500500, s)
      assert.is_false(budget.is_tripped())
      assert.is_false(budget.is_active())
    end)

    it("nested runs keep their own budgets", function()
      local inner = load_plugin("while true do end")
      local ok, a, b = budget.run(function()
        local ok2, kind = budget.run(inner, { timeout_ms = 20 })
        return ok2, kind
      end, { timeout_ms = 5000 })
      assert.is_true(ok)
      assert.is_false(a)
      assert.equal("timeout", b)
    end)

    it("an injected clock decides the deadline", function()
      local fake = 0
      local old = budget.set_clock(function() fake = fake + 1 return fake end)
      local ok, kind = budget.run(load_plugin("while true do end"), { timeout_ms = 5000 })
      budget.set_clock(old)
      assert.is_false(ok)
      assert.equal("timeout", kind)
      assert.is_true(fake >= 5 and fake < 100, tostring(fake))
    end)
  end)

  describe("stop runaway memory:", function()
    local cases = {
      { "string.rep('x', 2^40) is refused", "return #string.rep('x', 2^40)" },
      { "('x'):rep(2^40) is refused", "return #('x'):rep(2^40)" },
      { "a big rep caught by pcall is still the kill",
        "pcall(string.rep, 'x', 2^31) return 'survived'" },
      { "a table-growing loop", "local t, i = {}, 0 while true do i = i + 1 t[i] = { i } end" },
      { "a string-growing loop", "local t, i = {}, 0 while true do i = i + 1 t[i] = 'item ' .. i end" },
      { "gsub amplification", "local s = ('x'):rep(1e5) return #s:gsub('.', ('y'):rep(1e4))" },
      { "gsub amplification with a capture",
        "local s = ('x'):rep(1e6) return #s:gsub('(.)', ('%1'):rep(40))" },
      { "gsub amplification through a function",
        "local big = ('y'):rep(1e5) return #(('x'):rep(1e5):gsub('.', function() return big end))" },
      { "table.concat amplification",
        "local big, t = ('x'):rep(1e6), {} for i = 1, 1e3 do t[i] = big end return #table.concat(t)" },
      { "string.format amplification",
        "local big = ('x'):rep(1e6) local f = ('%s'):rep(200) return #f:format(unpack((function() local t = {} for i = 1, 200 do t[i] = big end return t end)()))" },
      { "table.move over a huge range", "table.move({}, 1, 2^26, 2) return 'survived'" },
      { "coroutines piling up", "local t = {} while true do t[#t + 1] = coroutine.create(function() end) end" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local elapsed, ok, kind, msg = run(case[2], { timeout_ms = 5000, memory_limit_mb = limit_above(32) })
        assert.is_false(ok, tostring(kind))
        assert.equal("memory", kind, msg)
        assert.matches("budget exceeded: memory", msg)
        assert.is_true(elapsed < 2, ("stopped after %.3f s"):format(elapsed))
        collectgarbage("collect")
      end)
    end

    it("an allocation failure caught by the plugin's pcall is the memory kill", function()
      -- Stands in for LuaJIT's own "not enough memory" (the host's allocator
      -- refusing to grow the VM).
      local _, ok, kind = run("pcall(error, 'not enough memory', 0) return 'survived'",
                              { timeout_ms = 5000, memory_limit_mb = limit_above(32) })
      assert.is_false(ok)
      assert.equal("memory", kind)
    end)

    it("leaves ordinary allocation alone", function()
      local _, ok, n = run([[
        local t = {}
        for i = 1, 10000 do t[i] = ("x"):rep(100) .. i end
        return #table.concat(t)
      ]], { timeout_ms = 5000, memory_limit_mb = limit_above(32) })
      assert.is_true(ok)
      assert.equal(10000 * 100 + 38894, n)
    end)

    it("counts garbage only after a full collection", function()
      local _, ok = run([[
        for i = 1, 200 do local s = ("x"):rep(1e6) .. i end
        return true
      ]], { timeout_ms = 5000, memory_limit_mb = limit_above(16) })
      assert.is_true(ok)
    end)
  end)

  describe("the instrumenting lexer", function()
    local function instrumented(src)
      local out, err = budget.instrument(src, "@lex.lua")
      assert(out, err)
      return out:sub(#budget.PREFIX + 1)
    end

    local untouched = {
      { "double-quoted strings", [[local s = "while true do for x do repeat function() goto l"]] },
      { "single-quoted strings with escapes", [[local s = 'it\'s a while do \\' local t = "\"for do\""]] },
      { "a backslash-newline in a string", "local s = \"a\\\nwhile x do\"" },
      { "long strings", "local s = [[while true do end]] .. [==[ for ]] do ]=] repeat ]==]" },
      { "long strings over lines", "local s = [=[\nwhile true do\nend\n]=]" },
      { "line comments", "local x = 1 -- while true do end\n-- for i = 1, 2 do" },
      { "long comments", "--[[ while true do\nend ]] local x = 1 --[==[ repeat ]] until ]==]" },
      { "a long-comment lookalike", "--[ while true do\nlocal x = 1" },
      { "numbers", "local a, b, c, d = 0x1f, 1e+5, 3.5e-2, 0x1p4" },
      { "goto used as a name", "local goto = 1 local t = { goto = goto } t.goto = goto + 1" },
      { "a plain do block", "do local x = 1 end" },
      { "if blocks", "if a then b() elseif c then d() else e() end" },
      { "keywords as parts of names", "local whiled, fortune, done, repeated, functions = 1, 2, 3, 4, 5" },
    }
    for _, case in ipairs(untouched) do
      it("leaves " .. case[1] .. " alone", function()
        assert(load(case[2]), "the case itself must compile")
        assert.equal(case[2], instrumented(case[2]))
      end)
    end

    local inserted = {
      { "while loops", "while a do b() end", "while a do __sl_budget(); b() end" },
      { "numeric for", "for i = 1, 2 do end", "for i = 1, 2 do __sl_budget(); end" },
      { "generic for", "for k, v in pairs(t) do end", "for k, v in pairs(t) do __sl_budget(); end" },
      { "repeat", "repeat x() until y", "repeat __sl_budget(); x() until y" },
      { "functions", "local function f(a, ...) return a end",
        "local function f(a, ...) __sl_budget(); return a end" },
      { "methods", "function a.b:c() end", "function a.b:c() __sl_budget(); end" },
      { "anonymous functions", "f(function() end)", "f(function() __sl_budget(); end)" },
      { "a function in a loop header",
        "while f(function() for i = 1, 2 do end end) do end",
        "while f(function() __sl_budget(); for i = 1, 2 do __sl_budget(); end end) do __sl_budget(); end" },
      { "goto statements", "::a:: goto a", "::a::  __sl_budget(); goto a" },
      { "goto after a label at the end of a block (continue)",
        "for i = 1, 2 do if x then goto continue end local y = i ::continue:: end",
        "for i = 1, 2 do __sl_budget(); if x then  __sl_budget(); goto continue end local y = i ::continue:: end" },
      { "code right after a string", [[local s = "do" while s do end]],
        [[local s = "do" while s do __sl_budget(); end]] },
      { "code after a #! line", "#![[ while true do\nwhile x do end",
        "-- ![[ while true do\nwhile x do __sl_budget(); end" },
    }
    for _, case in ipairs(inserted) do
      it("instruments " .. case[1], function()
        assert.equal(case[3], instrumented(case[2]))
        assert(load(budget.PREFIX .. case[3]), "the result must compile")
      end)
    end

    it("refuses code that names the budget check", function()
      for _, src in ipairs({ "local __sl_budget = function() end\nwhile true do end",
                             "\n\n__sl_budget = nil", "local t = x.__sl_budget" }) do
        local out, err = budget.instrument(src, "@evil.lua")
        assert.is_nil(out)
        assert.matches("^evil.lua:%d+: identifier '__sl_budget' is reserved", err)
      end
      local fn, err = sandbox.load("\n\nlocal function __sl_budget() end", "evil.lua")
      assert.is_nil(fn)
      assert.matches("^evil.lua:3:", err)
    end)

    it("cannot be defeated through the environment or the string methods", function()
      local elapsed, ok, kind = run([[
        _G["__sl_" .. "budget"] = function() end
        local check = ("")["__sl_" .. "budget"]
        assert(type(check) == "function")
        assert(not pcall(function() local s = "" s["__sl_" .. "budget"] = function() end end))
        load("while true do end")()
      ]], { timeout_ms = TIMEOUT_MS })
      assert.is_false(ok)
      assert.equal("timeout", kind)
      assert.is_true(elapsed < SLACK_S)
    end)

    it("keeps the line numbers of runtime errors", function()
      local src = table.concat({
        "local function f(t)",
        "  for i = 1, 3 do",
        "    while false do end",
        "  end",
        "  return t.x  -- line 5",
        "end",
        "repeat local s = [[",
        "]] until true",
        "return f(nil) -- line 9",
      }, "\n")
      local _, ok, kind, msg = run(src)
      assert.is_false(ok)
      assert.equal("error", kind)
      assert.matches("^plugin.lua:5:", msg)
    end)

    it("keeps every line of real Lua files and their meaning", function()
      local files = { "lua/sluice/budget.lua", "lua/sluice/sandbox.lua",
                      "spec/unit/budget_spec.lua", "spec/unit/sandbox_spec.lua",
                      "spec/support/summary.lua" }
      for _, path in ipairs(files) do
        local f = assert(io.open(path, "rb"))
        local src = f:read("*a")
        f:close()
        local out = assert(budget.instrument(src, "@" .. path))
        local _, lines_in = src:gsub("\n", "")
        local _, lines_out = out:gsub("\n", "")
        assert.equal(lines_in, lines_out, path)
        assert(load(out, "@" .. path), path)
        -- Only insertions: removing them gives the source back (when the
        -- source does not spell the inserted text itself).
        if not src:find("__sl_budget", 1, true) then
          local stripped = out:sub(#budget.PREFIX + 1)
            :gsub(" __sl_budget%(%); goto", "goto"):gsub(" __sl_budget%(%);", "")
          assert.equal(src, stripped, path)
        end
      end
    end)

    it("gives instrumented code the same results", function()
      local src = [[
        local out = {}
        local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
        for i = 1, 10 do out[#out + 1] = fib(i) end
        local i = 0
        repeat i = i + 1 until i >= 5
        local j = 0
        ::again:: j = j + 1 if j < 3 then goto again end
        for k, v in pairs({ a = 1 }) do out[#out + 1] = k .. v end
        while #out < 15 do out[#out + 1] = "w" end
        return table.concat(out, ",") .. i .. j
      ]]
      local plain = assert(load(src))()
      local _, ok, v = run(src, { timeout_ms = 1000 })
      assert.is_true(ok)
      assert.equal(plain, v)
    end)
  end)
end)
