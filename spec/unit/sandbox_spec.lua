-- spec/unit/sandbox_spec.lua: plugin code loaded by sluice.sandbox cannot
-- leave its environment, and ordinary code still works.

if not package.path:find("./lua/?.lua", 1, true) then
  package.path = "./lua/?.lua;" .. package.path
end

local sandbox = require "sluice.sandbox"
local budget = require "sluice.budget"

-- load + run one chunk under a generous budget: ok, results... | false, kind, msg.
local function run(src, opts, name)
  local fn, err = sandbox.load(src, name or "plugin.lua", opts)
  if not fn then return false, "load", err end
  return budget.run(fn, { timeout_ms = 2000, memory_limit_mb = 4096 })
end

describe("The plugin sandbox", function()
  -- The string metatable is shared by the whole VM, busted included:
  -- put it back as it was when this file is done.
  local string_mt = debug.getmetatable("")
  local saved_index, saved_protect = string_mt.__index, string_mt.__metatable
  teardown(function()
    string_mt.__index, string_mt.__metatable = saved_index, saved_protect
  end)

  describe("hides what could reach outside the sandbox:", function()
    local absent = {
      "ffi", "debug", "io", "jit", "package", "os.execute", "os.exit", "os.getenv",
      "os.remove", "os.rename", "os.tmpname", "dofile", "loadfile", "getfenv",
      "setfenv", "string.dump", "('').dump", "newproxy", "module", "gcinfo",
      "print", "require and package", "_G.debug", "_G._G.io",
    }
    for _, expr in ipairs(absent) do
      it(expr .. " is nil", function()
        local ok, v = run("return " .. expr)
        assert.is_true(ok)
        assert.is_nil(v)
      end)
    end

    local refused = {
      { "require of ffi", "return require('ffi')" },
      { "require of debug", "return require('debug')" },
      { "require of io", "return require('io')" },
      { "require of jit.util", "return require('jit.util')" },
      { "require of a module outside the allow-list", "return require('sluice.budget')" },
      { "collectgarbage('stop')", "collectgarbage('stop')" },
      { "collectgarbage('setpause')", "collectgarbage('setpause', 1000)" },
      { "string.dump through a method", "return (function() end):dump()" },
      { "reading the string metatable", "return getmetatable('').__index" },
      { "writing the string metatable", "getmetatable('').__index.upper = nil" },
      { "setting fields on a string", "local s = 'x' s.upper = 1" },
      { "getfenv through the environment", "return _G.getfenv(1)" },
    }
    for _, case in ipairs(refused) do
      it(case[1] .. " fails", function()
        local ok, kind, msg = run(case[2])
        assert.is_false(ok)
        assert.equal("error", kind)
        assert.is_string(msg)
      end)
    end
  end)

  describe("loads text only:", function()
    local bytecode = string.dump(function() return "compiled outside" end)

    it("sandbox.load refuses bytecode", function()
      local fn, err = sandbox.load(bytecode, "evil.luac")
      assert.is_nil(fn)
      assert.matches("mode", err)
    end)

    it("load() and loadstring() inside the sandbox refuse bytecode", function()
      for _, call in ipairs({ "load(bc)", "load(bc, 'x', 'b')", "load(bc, 'x', 'bt')",
                              "loadstring(bc)" }) do
        local ok, fn, err = run("return " .. call, { globals = { bc = bytecode } })
        assert.is_true(ok, call)
        assert.is_nil(fn, call)
        assert.is_string(err, call)
      end
    end)

    it("load() of text runs inside the same sandbox environment", function()
      local ok, x, io_, ffi_, s = run([[
        x = 42
        local f = assert(load("return x, io, ffi, string.dump ~= nil"))
        return f()
      ]])
      assert.is_true(ok)
      assert.equal(42, x)
      assert.is_nil(io_)
      assert.is_nil(ffi_)
      assert.is_false(s)
    end)

    it("load() reports syntax errors with its chunk name and line", function()
      local ok, fn, err = run([[return load("local a =\n\n  = 1", "=inner")]])
      assert.is_true(ok)
      assert.is_nil(fn)
      assert.matches("^inner:3:", err)
    end)

    it("sandbox.load reports syntax errors as chunkname:line:", function()
      local fn, err = sandbox.load("local a = 1\n\nlocal b = = 2\n", "plugins/auth.lua")
      assert.is_nil(fn)
      assert.matches("^plugins/auth.lua:3:", err)
    end)

    it("runtime errors carry chunkname:line:", function()
      local ok, kind, msg = run("local t = nil\n\nreturn t.x\n", nil, "plugins/auth.lua")
      assert.is_false(ok)
      assert.equal("error", kind)
      assert.matches("^plugins/auth.lua:3:", msg)
    end)
  end)

  describe("keeps plugins apart:", function()
    it("changing string methods through the string table affects only the plugin's copy", function()
      local ok, a, b = run([[
        string.upper = function() return "pwned" end
        return ("a"):upper(), string.upper("a")
      ]])
      assert.is_true(ok)
      assert.equal("A", a)
      assert.equal("pwned", b)
      local ok2, c, d = run([[return ("b"):upper(), string.upper("b")]])
      assert.is_true(ok2)
      assert.equal("B", c)
      assert.equal("B", d)
      assert.equal("C", ("c"):upper())
    end)

    it("the string metatable cannot be reached or modified", function()
      local ok, kind = run([[getmetatable("").__index.upper = function() return "pwned" end]])
      assert.is_false(ok)
      assert.equal("error", kind)
      ok = run([[
        local mt = getmetatable("")
        assert(mt == nil or mt == false, "got the string metatable")
        assert(not pcall(setmetatable, "", {}))
        assert(not pcall(rawset, getmetatable(""), "__index", {}))
      ]])
      assert.is_true(ok)
      assert.equal("X", ("x"):upper())
    end)

    it("a plugin cannot read or write another plugin's globals", function()
      local fa, env_a = sandbox.load("secret = 'a-only' function get() return secret end", "a.lua")
      assert.is_true((budget.run(fa)))
      local ok, v1, v2, v3 = run([[
        secret = "b"
        return rawget(_G, "get"), _G.secret, getfenv
      ]], nil, "b.lua")
      assert.is_true(ok)
      assert.is_nil(v1)
      assert.equal("b", v2)
      assert.is_nil(v3)
      assert.equal("a-only", env_a.secret)
      assert.equal("a-only", env_a.get())
    end)

    it("each load gets a fresh environment", function()
      local _, env1 = sandbox.load("x = 1", "one.lua")
      local _, env2 = sandbox.load("x = 1", "one.lua")
      assert.are_not.equal(env1, env2)
      assert.are_not.equal(env1.string, env2.string)
      assert.are_not.equal(env1.table, env2.table)
    end)
  end)

  describe("read-only tables:", function()
    local function api()
      return sandbox.readonly({
        version = "1.0",
        list = { "a", "b", "c" },
        req = { get_header = function(name) return "v:" .. name end },
      })
    end

    local writes = {
      { "assigning a new field", "px.new = 1" },
      { "assigning an existing field", "px.version = '2'" },
      { "assigning in a nested table", "px.req.get_header = nil" },
      { "rawset", "rawset(px, 'version', '2')" },
      { "rawset on a nested table", "rawset(px.req, 'x', 1)" },
      { "setmetatable", "setmetatable(px, {})", "protected metatable" },
      { "table.insert", "table.insert(px.list, 'd')" },
      { "table.insert at a position", "table.insert(px.list, 1, 'z')" },
      { "table.remove", "table.remove(px.list)" },
      { "table.sort", "table.sort(px.list)" },
      { "table.move into it", "table.move({ 1 }, 1, 1, 1, px.list)" },
      { "writing through the state pairs returns", "local _, st = pairs(px) st.version = '2'" },
      { "loading code with it as the environment", "load('version = 2', 'x', 't', px)()" },
    }
    for _, case in ipairs(writes) do
      it(case[1] .. " fails", function()
        local ok, kind, msg = run(case[2], { globals = { px = api() } })
        assert.is_false(ok)
        assert.equal("error", kind)
        assert.matches(case[3] or "read%-only", msg)
      end)
    end

    it("reads, iteration and the table functions see the contents", function()
      local ok, v, h, n, keys, cat, u, mt = run([[
        local n = 0
        for i, v in ipairs(px.list) do n = n + i end
        local keys = {}
        for k in pairs(px) do keys[#keys + 1] = k end
        table.sort(keys)
        return px.version, px.req.get_header("host"), n, table.concat(keys, ","),
               table.concat(px.list, "-"), select(3, unpack(px.list)), getmetatable(px)
      ]], { globals = { px = api() } })
      assert.is_true(ok)
      assert.equal("1.0", v)
      assert.equal("v:host", h)
      assert.equal(6, n)
      assert.equal("list,req,version", keys)
      assert.equal("a-b-c", cat)
      assert.equal("c", u)
      assert.is_false(mt)
    end)

    it("the host's writes after readonly() do not leak into the view", function()
      local t = { a = 1 }
      local ro = sandbox.readonly(t)
      t.a = 2
      assert.equal(1, ro.a)
      assert.is_true(sandbox.is_readonly(ro))
      assert.equal(ro, sandbox.readonly(ro))
    end)
  end)

  describe("require:", function()
    local opts = { require = { "bit" }, modules = { util = { add = function(a, b) return a + b end } } }

    it("loads allow-listed modules, read-only and the same each time", function()
      local ok, x, same, y = run([[
        local bit = require("bit")
        local ok = pcall(function() bit.band = nil end)
        return bit.band(6, 3), require("bit") == bit and not ok, require("util").add(1, 2)
      ]], opts)
      assert.is_true(ok)
      assert.equal(2, x)
      assert.is_true(same)
      assert.equal(3, y)
    end)

    it("refuses modules outside the allow-list", function()
      for _, name in ipairs({ "os", "io", "ffi", "string.buffer", "table.new", "sluice.sandbox" }) do
        local ok, kind, msg = run("return require('" .. name .. "')", opts)
        assert.is_false(ok, name)
        assert.equal("error", kind)
        assert.matches("not allowed", msg)
      end
    end)

    it("writing to a module handed out through modules fails", function()
      local ok, kind, msg = run("require('util').add = print", opts)
      assert.is_false(ok)
      assert.equal("error", kind)
      assert.matches("read%-only", msg)
    end)
  end)

  describe("ordinary code works:", function()
    local controls = {
      { "string methods", [[return ("x"):upper() .. ("%d-%s"):format(3, "y") .. ("abc"):sub(2)]], "X3-ybc" },
      { "string library", [[return string.rep("ab", 3, ",") .. string.gsub("a.b", "%.", "/")]], "ab,ab,aba/b" },
      { "gsub with a function and a table",
        [[return (("a b"):gsub("%w", function(c) return c:upper() end)) .. (("a b"):gsub("%w", { a = 1 }))]],
        "A B1 b" },
      { "table.sort with a comparator",
        [[local t = { 3, 1, 2 } table.sort(t, function(a, b) return a > b end) return table.concat(t)]],
        "321" },
      { "pcall of an ordinary error returns the message",
        [[local ok, err = pcall(error, "boom") return tostring(ok) .. ":" .. err]], "false:boom" },
      { "pcall of a runtime error carries the plugin's position",
        [[local ok, err = pcall(function() local t return t.x end) return err:match("^plugin.lua:%d+:") and "pos" or err]],
        "pos" },
      { "xpcall with a handler and arguments",
        [[return select(2, xpcall(function(a) error(a, 0) end, function(e) return "h:" .. e end, "x"))]], "h:x" },
      { "coroutines", [[
          local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
          local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
          local _, x = coroutine.resume(co, 1)
          local _, y = coroutine.resume(co, 5)
          return gen() + gen() + gen() + x + y + (coroutine.status(co) == "dead" and 100 or 0)]], 118 },
      { "metatables on the plugin's own tables", [[
          local t = setmetatable({}, { __index = function(_, k) return k .. "!" end })
          return t.hi .. tostring(getmetatable(t) ~= nil)]], "hi!true" },
      { "math, bit and os", [[
          return math.floor(2.5) + bit.band(7, 2) + (type(os.time()) == "number" and 1 or 0)
            + (type(os.clock()) == "number" and 1 or 0) + (os.date("!%Y", 0) == "1970" and 1 or 0)]], 7 },
      { "collectgarbage('count')", [[return type(collectgarbage("count"))]], "number" },
      { "goto continue", [[
          local s = 0
          for i = 1, 5 do
            if i % 2 == 0 then goto continue end
            local x = i
            s = s + x
            ::continue::
          end
          return s]], 9 },
      { "varargs and the main chunk's ...", [[return select("#", ...)]], 0 },
    }
    for _, case in ipairs(controls) do
      it(case[1], function()
        local ok, v = run(case[2])
        assert.is_true(ok, tostring(v))
        assert.equal(case[3], v)
      end)
    end
  end)
end)
