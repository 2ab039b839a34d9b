-- lua/sluice/budget.lua: per-call CPU and memory budgets for plugin code,
-- holding with the JIT on.
--
-- LuaJIT does not run debug hooks inside compiled traces, so a hook cannot
-- stop `while true do end`. Instead, instrument() rewrites plugin source at
-- load time (a real Lua lexer, no parser) and inserts a call to a budget
-- check at the start of every loop body (`while`/`for` ... `do`, `repeat`),
-- at every function entry and before every `goto` statement. Every way to
-- run forever in Lua goes through one of those points, and the check is an
-- ordinary Lua function that the JIT inlines into the trace: a counter
-- decrement and a compare. When the counter runs out, the slow path reads the
-- clock and the VM's memory; the period adapts so that the clock is read
-- about once per millisecond whatever a check costs.
--
-- run() calls a hook under a fresh deadline, counted from the first slow
-- path (a few checks into the call: short hooks never read the clock).
-- When a limit is crossed the budget "trips": the check raises a kill error
-- and keeps raising it on every later check until run() returns, and the
-- sandbox's pcall, xpcall and coroutine.resume rethrow it, so plugin code
-- cannot swallow the kill.
--
-- Memory is the whole VM's (collectgarbage "count"): the host runs one VM
-- per plugin per worker, so VM memory is plugin memory. After a memory
-- kill the host closes the VM (what filled it is likely kept) and opens a
-- fresh one; after a timeout it keeps it (src/lua_plugin.c).
--
-- The check reaches instrumented code through the shared string method
-- table (see PREFIX): the sandbox installs it there, read-only. A plugin that
-- reads it only gets a function that spends its own budget.

local M = {}

local type, error, tostring, select = type, error, tostring, select
local xpcall, collectgarbage = xpcall, collectgarbage
local floor, huge = math.floor, math.huge
-- gcinfo: the heap in whole KB, cheaper than collectgarbage("count").
local gcinfo = gcinfo or function() return floor(collectgarbage("count")) end
local byte, char, sub, find, rep = string.byte, string.char, string.sub, string.find, string.rep
local concat = table.concat
local debug_getinfo, debug_traceback = debug.getinfo, debug.traceback

-- The name of the check inside instrumented code. Plugin source that
-- mentions it is refused, so it cannot be shadowed or reassigned.
M.NAME = "__sl_budget"

-- Prepended to line 1 of every instrumented chunk (no newline, so line
-- numbers do not move). `("").__sl_budget` reads the check from the string
-- method table, which plugins cannot write; an env global would not do,
-- since a plugin could replace it before load()ing more code.
M.PREFIX = 'local __sl_budget = ("").__sl_budget; '

local CALL = " __sl_budget();"

local IDLE_PERIOD = 2 ^ 30   -- checks between slow paths when no run() is active
local FIRST_PERIOD = 16
local MAX_PERIOD = 16384      -- bounds the overshoot when iterations get dearer
local TARGET_S = 0.001        -- aim at one clock read per millisecond

-- The default clock: CLOCK_MONOTONIC through FFI (about 30 ns when
-- compiled), os.clock when that is not available. os.clock is process CPU
-- time, a syscall, and counts every thread: the host replaces the clock
-- (set_clock) with its own per-worker one.
local function default_clock()
  local ok, ffi = pcall(require, "ffi")
  if not ok then return os.clock end
  -- Under a name of its own (redirected to the libc symbol): FFI
  -- declarations are global to the VM, and other code in the same VM
  -- (tests) may declare clock_gettime with a timespec of its own.
  pcall(ffi.cdef, [[
    struct sl_budget_timespec { int64_t tv_sec; int64_t tv_nsec; };
    int sl_budget_clock_gettime(int clk_id, struct sl_budget_timespec *tp)
      __asm__("clock_gettime");
  ]])
  local made, ts = pcall(ffi.new, "struct sl_budget_timespec")
  if not made then return os.clock end
  local C, tonumber = ffi.C, tonumber
  local function monotonic()
    C.sl_budget_clock_gettime(1, ts)     -- CLOCK_MONOTONIC (Linux)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  if pcall(monotonic) then return monotonic end
  return os.clock
end

local clock = default_clock()

-- The state of the current run(). One VM runs one hook at a time.
--
-- The limits (timeout_ms to target) mean something only while active:
-- everything that reads them looks at active first. A runner() leaves its
-- limits in place when its call ends and notes them in `installed`, so that
-- calling the same runner again (a hook per request) installs nothing.
-- dirty says that the run went past the fast path (a slow path, a kill, an
-- error's traceback): only then does its end have state to reset.
local active = false
local timeout_ms, memory_mb = nil, nil
local installed = nil           -- the id of the runner whose limits are in place, or nil
local dirty = false
local started = false          -- the clock was read: deadline is set
local deadline = huge           -- clock() value
local limit_kb = huge           -- collectgarbage("count") units
local target = TARGET_S
local tripped = false           -- false, "timeout" or "memory"
local kill_msg = nil
local count = IDLE_PERIOD       -- checks left before the slow path
local period = FIRST_PERIOD
local last_time, last_mem = 0, 0
local last_tb = nil

-- Frames of these sources are skipped when naming where a kill happened.
local trusted_sources = {}
trusted_sources[debug_getinfo(1, "S").source] = true

-- trust_source(source) marks a chunk (debug.getinfo(...).source) as host
-- code: a kill is then reported at the first frame outside it.
function M.trust_source(source)
  trusted_sources[source] = true
end

-- Returns "chunk:line: " of the innermost plugin frame, or "".
local function where()
  for level = 3, 60 do
    local info = debug_getinfo(level, "Sl")
    if not info then break end
    if info.what ~= "C" and info.currentline > 0
        and not trusted_sources[info.source] then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

local function trip(kind)
  local what
  if kind == "timeout" then
    what = ("timeout (%g ms)"):format(timeout_ms)
  elseif memory_mb then
    what = ("memory (%g MB)"):format(memory_mb)
  else
    what = "memory (not enough memory)"
  end
  kill_msg = where() .. "budget exceeded: " .. what
  tripped = kind
  dirty = true
  count = 0     -- every later check takes the slow path, which raises again
  error(kill_msg, 0)
end

-- Over the limit on the counter, which includes garbage: only what survives
-- a full collection counts against the budget.
local function over_memory(extra_kb)
  local mem = collectgarbage("count")
  if mem + extra_kb <= limit_kb then return mem end
  if extra_kb < limit_kb then
    collectgarbage("collect")
    mem = collectgarbage("count")
    if mem + extra_kb <= limit_kb then return mem end
  end
  trip("memory")
end

local function slow()
  if tripped then error(kill_msg, 0) end
  if not active then
    count = IDLE_PERIOD
    return
  end
  dirty = true
  local now = clock()
  if not started then
    -- The deadline counts from the first slow path, FIRST_PERIOD checks
    -- into the call: a hook that stays below that never reads the clock.
    started = true
    deadline = timeout_ms and now + timeout_ms / 1000 or huge
    last_time, last_mem, count = now, over_memory(0), period
    return
  end
  if now >= deadline then trip("timeout") end
  local mem = over_memory(0)
  -- Adapt the period: about one clock read per `target`, fewer checks
  -- between reads when memory grows fast compared with the headroom left.
  local p = period
  local dt = now - last_time
  if dt < target * 0.5 then
    p = p * 2
    if p > MAX_PERIOD then p = MAX_PERIOD end
  elseif dt > target then
    p = floor(p * target / dt)
  end
  local dm = mem - last_mem
  if dm > 0 and limit_kb < huge then
    -- Fast growth (a quarter of the headroom since the last look): look at
    -- every check; growth can be geometric (s = s .. s).
    if dm * 4 > limit_kb - mem then p = 1 end
  end
  if p < 1 then p = 1 end
  last_time, last_mem, period, count = now, mem, p, p
end

-- check() is the function instrumented code calls. It is cheap enough to
-- sit in every loop iteration: the JIT inlines it.
local function check()
  local c = count - 1
  count = c
  if c <= 0 then slow() end
end
M.check = check

-- charge(units) spends `units` checks at once; host wrappers of C library
-- functions use it so that a loop over an expensive builtin reaches the
-- slow path as often as its cost warrants. One unit is about one cheap loop
-- iteration; charge_bytes() converts a byte count (8 bytes a unit).
local function charge(units)
  local c = count - units
  count = c
  if c <= 0 then slow() end
end
M.charge = charge

function M.charge_bytes(n)
  local c = count - n * 0.125
  count = c
  if c <= 0 then slow() end
end

-- reserve(bytes) raises the memory kill when the VM could not grow by
-- `bytes` within memory_limit_mb (after a full collection). Wrappers of
-- functions that build big results call it before they allocate.
function M.reserve(bytes)
  if tripped then error(kill_msg, 0) end
  if active and limit_kb < huge then over_memory(bytes / 1024) end
end

-- headroom() returns the bytes left under memory_limit_mb, math.huge when
-- there is no memory limit. The counter includes garbage: this is a lower
-- bound.
function M.headroom()
  if not active or limit_kb == huge then return huge end
  return (limit_kb - collectgarbage("count")) * 1024
end

function M.is_active()
  return active
end

function M.is_tripped()
  return tripped ~= false
end

-- rethrow() raises the kill error again; the sandbox's pcall wrappers call
-- it when the budget is tripped.
function M.rethrow()
  error(kill_msg, 0)
end

-- is_memory_error(e) tells whether e is LuaJIT's own allocation failure:
-- "not enough memory" (from the allocator; the host's allocator returns NULL
-- past its cap) or "string length overflow" (a string over 2 GB).
local function is_memory_error(e)
  return e == "not enough memory"
    or (type(e) == "string" and sub(e, -22) == "string length overflow")
end
M.is_memory_error = is_memory_error

-- trip_memory(e) turns the memory error e into the memory kill when a run()
-- with a memory limit is active (any run() for "not enough memory") and
-- raises it; otherwise raises e again.
function M.trip_memory(e)
  if tripped then error(kill_msg, 0) end
  if active and (memory_mb or e == "not enough memory") then trip("memory") end
  error(e, 0)
end

-- set_clock(fn) replaces the clock; fn() returns seconds as a number
-- (monotonic; the host supplies a per-thread clock through FFI). Returns the
-- previous one.
function M.set_clock(fn)
  if type(fn) ~= "function" then
    error("budget.set_clock: function expected, got " .. type(fn), 2)
  end
  local old = clock
  clock = fn
  return old
end

local function handler(e)
  if not tripped and not is_memory_error(e) then
    -- Cut the frames from the outermost xpcall (run's) outwards.
    local tb = debug_traceback("", 2)
    local cut, from = nil, 1
    while true do
      local s = find(tb, "\n\t[C]: in function 'xpcall'", from, true)
      if not s then break end
      cut, from = s, s + 1
    end
    last_tb = sub(tb, 2, cut and cut - 1 or -1)
    dirty = true
  end
  return e
end

local function set_idle()
  active, tripped, kill_msg, dirty, installed = false, false, nil, false, nil
  timeout_ms, memory_mb = nil, nil
  started, deadline, limit_kb, target = false, huge, huge, TARGET_S
  count, period = IDLE_PERIOD, FIRST_PERIOD
end

-- end_call() puts the VM back to idle after a run that was not nested.
-- Only a dirty run changed the per-call state; the limits stay, since
-- nothing reads them while idle.
local function end_call()
  active, count = false, IDLE_PERIOD
  if dirty then
    dirty, tripped, kill_msg, last_tb = false, false, nil, nil
    started, deadline, period = false, huge, FIRST_PERIOD
  end
end

local function save()
  return { active, timeout_ms, memory_mb, deadline, limit_kb, target,
           tripped, kill_msg, count, period, last_time, last_mem, last_tb, started,
           installed, dirty }
end

local function restore(s)
  active, timeout_ms, memory_mb, deadline, limit_kb, target = s[1], s[2], s[3], s[4], s[5], s[6]
  tripped, kill_msg, count, period, last_time, last_mem, last_tb, started =
    s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14]
  installed, dirty = s[15], s[16]
end

local function finish(saved, ok, ...)
  local kind, msg, tb, mb = tripped, kill_msg, last_tb, memory_mb
  if ok and not kind and limit_kb < huge then
    -- Straight-line code allocates without passing a check: look once more.
    local fine = collectgarbage("count") <= limit_kb
    if not fine then
      collectgarbage("collect")
      fine = collectgarbage("count") <= limit_kb
    end
    if not fine then
      kind = "memory"
      msg = ("budget exceeded: memory (%g MB) at return"):format(memory_mb)
    end
  end
  if saved then restore(saved) else end_call() end
  if ok and not kind then return true, ... end
  if kind then return false, kind, msg end
  local e = ...
  if e == "not enough memory" or (mb and is_memory_error(e)) then
    return false, "memory", e
  end
  local te = type(e)
  if te ~= "string" and te ~= "number" then
    -- Never call a plugin's __tostring here: its budget is over.
    e = "(error object is a " .. te .. " value)"
  end
  return false, "error", tostring(e), tb
end

local function positive(v, what)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v <= 0 then
    error("budget.run: " .. what .. " must be a positive number", 3)
  end
  return v
end

-- run(fn, limits, ...) calls fn(...) under limits = { timeout_ms = N,
-- memory_limit_mb = N } (either may be nil: no limit of that kind).
-- Returns true, fn's results; or false, kind, message[, traceback] where
-- kind is "timeout", "memory" or "error" (an ordinary error, message is
-- its text; traceback only for those). Never calls plugin code once the
-- budget is over. Nested calls keep their own budgets.
function M.run(fn, limits, ...)
  if type(fn) ~= "function" then
    error("budget.run: function expected, got " .. type(fn), 2)
  end
  if limits ~= nil and type(limits) ~= "table" then
    error("budget.run: limits must be a table", 2)
  end
  local t_ms = positive(limits and limits.timeout_ms, "timeout_ms")
  local m_mb = positive(limits and limits.memory_limit_mb, "memory_limit_mb")
  local saved = nil
  if active then
    -- Nested: save the outer run's state and start afresh. Otherwise
    -- idle: the per-call state is as end_call() left it.
    saved = save()
    tripped, kill_msg, last_tb, dirty = false, nil, nil, false
    started, deadline, period = false, huge, FIRST_PERIOD
  end
  active, installed, timeout_ms, memory_mb = true, nil, t_ms, m_mb
  limit_kb = m_mb and m_mb * 1024 or huge
  target = TARGET_S
  if t_ms and t_ms / 20000 < target then target = t_ms / 20000 end
  count = FIRST_PERIOD
  return finish(saved, xpcall(fn, handler, ...))
end

-- memory_over(mb) returns the kill message when the VM's heap holds more
-- than mb MB after a full collection, nil when it fits. The check a run()
-- makes when its function returns, for hosts that make it themselves
-- (runner() with check_return = false).
local function memory_over(mb)
  local lkb = mb * 1024
  if collectgarbage("count") <= lkb then return nil end
  collectgarbage("collect")
  if collectgarbage("count") <= lkb then return nil end
  return ("budget exceeded: memory (%g MB) at return"):format(mb)
end
M.memory_over = memory_over

-- The end of a runner() call that did not return cleanly, was nested in
-- another run, or must look at the heap: finish() with one error value
-- instead of fn's results (the runner drops them), and fixed arity (run()'s
-- VARG is NYI in a trace). The runner's limits stay installed.
local function finish_hook_slow(saved, ok, e, check_return)
  local kind, msg, tb, mb = tripped, kill_msg, last_tb, memory_mb
  -- gcinfo() is the heap in whole KB, without collectgarbage's option
  -- parsing; the exact count is read when it is at the limit.
  if ok and not kind and check_return and limit_kb < huge and gcinfo() >= limit_kb then
    msg = memory_over(memory_mb)
    if msg then kind = "memory" end
  end
  if saved then restore(saved) else end_call() end
  if ok and not kind then return true end
  if kind then return false, kind, msg end
  if e == "not enough memory" or (mb and is_memory_error(e)) then
    return false, "memory", e
  end
  local te = type(e)
  if te ~= "string" and te ~= "number" then
    -- Never call a plugin's __tostring here: its budget is over.
    e = "(error object is a " .. te .. " value)"
  end
  return false, "error", tostring(e), tb
end

-- The end of a runner() call. A call that stayed on the fast path (no
-- slow path, no error, not nested) changed only active and count: putting
-- those back is all there is to do, and the JIT compiles it into the
-- host's trace.
local function finish_hook(saved, ok, e, check_return)
  if ok and not dirty and saved == nil
      and not (check_return and limit_kb < huge and gcinfo() >= limit_kb) then
    active, count = false, IDLE_PERIOD
    return true
  end
  return finish_hook_slow(saved, ok, e, check_return)
end

local nrunners = 0              -- runners made: their ids for `installed`

-- runner(limits[, check_return]) returns a function run2(fn, a, b) that
-- does what run(fn, limits, a, b) does, except that fn's results are
-- dropped: it returns true, or false, kind, message[, traceback] as run()
-- does. For a host that calls hooks under the same limits again and
-- again: the limits are checked once, here, and installed by the first
-- call (again only after another run changed them); a call takes no
-- varargs, allocates nothing and stores two values on its way in and two
-- on its way out, so the JIT compiles the host's dispatch, this and a
-- short hook into one trace. check_return = false leaves the memory check
-- at return to the caller (memory_over()), which may know the heap's size
-- more cheaply than the VM does.
function M.runner(limits, check_return)
  if limits ~= nil and type(limits) ~= "table" then
    error("budget.runner: limits must be a table", 2)
  end
  local t_ms = positive(limits and limits.timeout_ms, "timeout_ms")
  local m_mb = positive(limits and limits.memory_limit_mb, "memory_limit_mb")
  local l_kb = m_mb and m_mb * 1024 or huge
  local tgt = TARGET_S
  if t_ms and t_ms / 20000 < tgt then tgt = t_ms / 20000 end
  -- A local never assigned again: the JIT takes it as a constant.
  local check_ret = check_return ~= false
  nrunners = nrunners + 1
  local id = nrunners
  return function(fn, a, b)
    if type(fn) ~= "function" then
      error("budget.run: function expected, got " .. type(fn), 2)
    end
    local saved = nil
    if active then
      -- Nested: save the outer run's state and start afresh.
      saved = save()
      tripped, kill_msg, last_tb, dirty, installed = false, nil, nil, false, nil
      started, deadline, period = false, huge, FIRST_PERIOD
    end
    -- Otherwise idle: the per-call state is as end_call() left it.
    if installed ~= id then
      timeout_ms, memory_mb, limit_kb, target, installed = t_ms, m_mb, l_kb, tgt, id
    end
    active, count = true, FIRST_PERIOD
    local ok, e = xpcall(fn, handler, a, b)
    return finish_hook(saved, ok, e, check_ret)
  end
end

---------------------------------------------------------------------------
-- The instrumenting lexer.

-- What a token leaves behind for the `goto` decision: in LuaJIT (5.1 mode)
-- `goto` is a statement only at the start of a statement and followed by a
-- name; elsewhere it is an ordinary identifier.
local STMT_BEFORE = { K = true, n = true, v = true, [")"] = true, ["]"] = true,
                      ["}"] = true, [";"] = true, L = true }

local KEYWORD = {
  ["and"] = "o", ["break"] = "K", ["do"] = "K", ["else"] = "K",
  ["elseif"] = "o", ["end"] = "K", ["false"] = "v", ["for"] = "o",
  ["function"] = "o", ["if"] = "o", ["in"] = "o", ["local"] = "o",
  ["nil"] = "v", ["not"] = "o", ["or"] = "o", ["repeat"] = "K",
  ["return"] = "o", ["then"] = "K", ["true"] = "v", ["until"] = "o",
  ["while"] = "o",
}

local function line_of(src, pos)
  local line, p = 1, 1
  while true do
    local nl = find(src, "\n", p, true)
    if not nl or nl >= pos then return line end
    line, p = line + 1, nl + 1
  end
end

local function display_name(chunkname)
  chunkname = tostring(chunkname or "?")
  local c = byte(chunkname)
  if c == 64 or c == 61 then return sub(chunkname, 2) end  -- '@', '='
  return chunkname
end

-- Returns the position after a long bracket opening at pos ("[", "=" * n,
-- "[") and the closing delimiter, or nil when there is none at pos.
local function long_open(src, pos)
  local s, e = find(src, "^%[=*%[", pos)
  if not s then return nil end
  return e + 1, "]" .. rep("=", e - s - 1) .. "]"
end

local function skip_long(src, pos, close)
  local _, e = find(src, close, pos, true)
  return e and e + 1
end

local function skip_string(src, pos, q)
  local set = q == 34 and '[\\"\n\r]' or "[\\'\n\r]"
  local p = pos + 1
  while true do
    local s = find(src, set, p)
    if not s then return nil end
    local ch = byte(src, s)
    if ch == 92 then                      -- backslash: skip the escaped char
      local a, b = byte(src, s + 1, s + 2)
      if (a == 13 and b == 10) or (a == 10 and b == 13) then
        p = s + 3
      else
        p = s + 2
      end
    elseif ch == q then
      return s + 1
    else
      return nil                          -- unfinished string
    end
  end
end

local function is_ident(c)
  return c and (c >= 48 and c <= 57 or c >= 65 and c <= 90
    or c >= 97 and c <= 122 or c == 95 or c >= 128)
end

-- As lj_lex_number: identifier characters and dots, and a sign right after
-- the exponent letter ('e', or 'p' for hex).
local function skip_number(src, pos)
  local p = pos
  local xp = 101
  local c = byte(src, p)
  if c == 48 then
    local n = byte(src, p + 1)
    if n and (n == 120 or n == 88) then xp = 112 end
  end
  while true do
    local ch = byte(src, p)
    if is_ident(ch) or ch == 46 or ((ch == 43 or ch == 45) and c and (c == xp or c == xp - 32)) then
      c = ch
      p = p + 1
    else
      return p
    end
  end
end

-- instrument(src, chunkname) returns src with budget checks inserted, or
-- nil and "name:line: message". Expects source that already compiles (the
-- sandbox compiles it first, for the exact syntax errors); refuses source
-- that names the check. Inserts text only, never a newline.
function M.instrument(src, chunkname)
  if type(src) ~= "string" then
    error("budget.instrument: string expected, got " .. type(src), 2)
  end
  local out, nout, copied = { M.PREFIX }, 1, 1
  local function insert(pos, text)
    out[nout + 1] = sub(src, copied, pos - 1)
    out[nout + 2] = text
    nout, copied = nout + 2, pos
  end
  local function fail(pos, msg)
    return nil, display_name(chunkname) .. ":" .. line_of(src, pos) .. ": " .. msg
  end

  -- Open blocks: "f" function, "h" while/for header (its `do` opens the
  -- loop body), "l" loop body, "d" plain do, "r" repeat, "i" if.
  local stack, sp = {}, 0
  local want_paren = false   -- after `function`: the next `)` closes its parameters
  local prev = "K"           -- see STMT_BEFORE
  local goto_pos = nil       -- a `goto` that is a statement if a name follows
  local label_open = false
  local pos, len, ntok = 1, #src, 0
  if byte(src, 1) == 35 then
    -- LuaJIT skips a first line starting with '#' (#!/usr/bin/luajit);
    -- after the prefix it must become a comment ("-- ": never a long one).
    out[2], nout, copied = "-- ", 2, 2
    pos = find(src, "\n", 1, true) or len + 1
  end

  while true do
    pos = find(src, "[^ \t\n\r\f\v]", pos)
    if not pos then break end
    ntok = ntok + 1
    if ntok % 4096 == 0 then charge(4096) end   -- a plugin may load() big text
    local c = byte(src, pos)
    local tok, word, start = "o", nil, pos

    if c == 45 and byte(src, pos + 1) == 45 then           -- comment
      local p, close = long_open(src, pos + 2)
      if p then
        pos = skip_long(src, p, close)
        if not pos then return fail(start, "unfinished long comment") end
      else
        pos = find(src, "[\n\r]", pos + 2) or len + 1
      end
      tok = nil
    elseif c == 91 then                                       -- [ or long string
      local p, close = long_open(src, pos)
      if p then
        pos = skip_long(src, p, close)
        if not pos then return fail(start, "unfinished long string") end
        tok = "v"
      else
        pos = pos + 1
      end
    elseif c == 34 or c == 39 then                            -- quoted string
      pos = skip_string(src, pos, c)
      if not pos then return fail(start, "unfinished string") end
      tok = "v"
    elseif c >= 48 and c <= 57 or (c == 46 and (byte(src, pos + 1) or 0) >= 48
        and (byte(src, pos + 1) or 0) <= 57) then            -- number
      pos = skip_number(src, pos)
      tok = "v"
    elseif is_ident(c) then                                   -- name or keyword
      local _, e = find(src, "^[%w_\128-\255]+", pos)
      word = sub(src, pos, e)
      pos = e + 1
      tok = KEYWORD[word] or "n"
    elseif c == 58 and byte(src, pos + 1) == 58 then         -- :: label ::
      pos = pos + 2
      if label_open then tok = "L" end
      label_open = not label_open
    elseif c == 46 and byte(src, pos + 1) == 46 and byte(src, pos + 2) == 46 then
      pos = pos + 3
      tok = "v"
    else
      if c == 41 then                                         -- )
        tok = ")"
        if want_paren then
          insert(pos + 1, CALL)
          want_paren = false
        end
      elseif c == 93 or c == 125 or c == 59 then             -- ] } ;
        tok = char(c)
      end
      pos = pos + 1
    end

    if tok then
      if goto_pos then
        if tok == "n" then insert(goto_pos, CALL .. " ") end
        goto_pos = nil
      end
      if word then
        if tok == "n" then
          if word == M.NAME then
            return fail(start, "identifier '" .. M.NAME .. "' is reserved")
          elseif word == "goto" and STMT_BEFORE[prev] then
            goto_pos = start
          end
        elseif word == "function" then
          sp = sp + 1; stack[sp] = "f"
          want_paren = true
        elseif word == "while" or word == "for" then
          sp = sp + 1; stack[sp] = "h"
        elseif word == "do" then
          if stack[sp] == "h" then
            stack[sp] = "l"
            insert(pos, CALL)
          else
            sp = sp + 1; stack[sp] = "d"
          end
        elseif word == "repeat" then
          sp = sp + 1; stack[sp] = "r"
          insert(pos, CALL)
        elseif word == "if" then
          sp = sp + 1; stack[sp] = "i"
        elseif word == "end" or word == "until" then
          if sp == 0 then return fail(start, "'" .. word .. "' without a block") end
          stack[sp] = nil; sp = sp - 1
        end
      end
      prev = tok
    end
  end
  if sp ~= 0 then return fail(len + 1, "unfinished block") end
  out[nout + 1] = sub(src, copied)
  return concat(out)
end

set_idle()

return M
