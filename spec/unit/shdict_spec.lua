-- spec/unit/shdict_spec.lua: shared dictionaries (src/shdict.c) through
-- build/libsluice.so: the C API directly (values, TTL expiry, add, incr,
-- cas, update, LRU eviction under byte pressure, a value bigger than the
-- dictionary, resizing, the registry's lifetime rules, exact totals from
-- concurrent threads), then sluice.shared as plugins use it (through
-- spec/plugin_harness.lua: the real sandbox, FFI and C).
--
-- Run: busted --lua=luajit spec/unit/shdict_spec.lua
-- ($SLUICE_LIB names another build of the library.)

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local harness = require "spec.plugin_harness"   -- loads the library globally
local json = require "sluice.json"
local ffi = require "ffi"
local socket = require "socket"

pcall(ffi.cdef, [[
  struct sl_shdict;
  struct sl_shdict_set;
  struct sl_shdict_value { int type; double num; const char *str; size_t len; };
  struct sl_shdict_stats { size_t capacity, used, count; uint64_t evictions, expired; };
  struct sl_shdict_conf { char *name; size_t size; int line, col; };
  typedef int (*sl_shdict_update_fn)(void *arg, const struct sl_shdict_value *cur,
                                     struct sl_shdict_value *next, int64_t *ttl_ms);
  struct sl_shdict *sl_shdict_acquire(const char *name, size_t capacity);
  void sl_shdict_release(struct sl_shdict *d);
  struct sl_shdict *sl_shdict_open(const struct sl_shdict_set *scope, const char *name,
                                   size_t len);
  void sl_shdict_unref(struct sl_shdict *d);
  const char *sl_shdict_name(const struct sl_shdict *d);
  struct sl_shdict_set *sl_shdict_set_new(const struct sl_shdict_conf *confs, size_t n,
                                          char *err, size_t errlen);
  void sl_shdict_set_free(struct sl_shdict_set *s);
  void sl_shdict_set_publish(const struct sl_shdict_set *s);
  size_t sl_shdict_set_count(const struct sl_shdict_set *s);
  struct sl_shdict *sl_shdict_set_at(const struct sl_shdict_set *s, size_t i);
  int sl_shdict_get(struct sl_shdict *d, const char *key, size_t klen,
                    struct sl_shdict_value *out, char *buf, size_t buflen);
  int sl_shdict_set(struct sl_shdict *d, const char *key, size_t klen,
                    const struct sl_shdict_value *v, int64_t ttl_ms);
  int sl_shdict_add(struct sl_shdict *d, const char *key, size_t klen,
                    const struct sl_shdict_value *v, int64_t ttl_ms);
  int sl_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                     const double *init, int64_t init_ttl_ms, double *result);
  int sl_shdict_cas(struct sl_shdict *d, const char *key, size_t klen,
                    const struct sl_shdict_value *expected,
                    const struct sl_shdict_value *desired, int64_t ttl_ms);
  int sl_shdict_update(struct sl_shdict *d, const char *key, size_t klen,
                       sl_shdict_update_fn fn, void *arg);
  int sl_shdict_delete(struct sl_shdict *d, const char *key, size_t klen);
  int sl_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, int64_t *ttl_ms);
  void sl_shdict_flush_all(struct sl_shdict *d);
  void sl_shdict_stats(struct sl_shdict *d, struct sl_shdict_stats *out);
  int sl_shdict_check(struct sl_shdict *d, char *err, size_t errlen);
  double sl_test_shdict_count_threads(struct sl_shdict *d, const char *key, int nthreads,
                                      int iters, int use_cas);
  int sl_test_shdict_stress(struct sl_shdict *d, int nthreads, int iters, int nkeys,
                            size_t maxlen, char *err, size_t errlen);
]])

local lib = ffi.load(harness.lib_path, true)

local OK, NOT_FOUND, EXISTS, CHANGED, TRUNCATED = 0, 1, 2, 3, 4
local EINVAL, ENOMEM, ENOTNUM = -1, -2, -4
local NIL, BOOL, NUMBER, STRING = 0, 1, 2, 3
local KEEP, STORE, REMOVE = 0, 1, 2

local errbuf = ffi.new("char[4096]")
local readbuf = ffi.new("char[?]", 1048576)

-- Dictionaries get names of their own, so that no test sees another's.
local serial = 0
local function fresh(capacity)
  serial = serial + 1
  local name = "unit-" .. serial
  local d = lib.sl_shdict_acquire(name, capacity or 1024 * 1024)
  assert(d ~= nil)
  return ffi.gc(d, lib.sl_shdict_release), name
end

-- A struct sl_shdict_value for a Lua value (strings stay referenced by
-- the caller's argument while the call runs).
local function value(v)
  local t = type(v)
  if t == "string" then return ffi.new("struct sl_shdict_value", STRING, 0, v, #v) end
  if t == "number" then return ffi.new("struct sl_shdict_value", NUMBER, v, nil, 0) end
  if t == "boolean" then return ffi.new("struct sl_shdict_value", BOOL, v and 1 or 0, nil, 0) end
  return ffi.new("struct sl_shdict_value", NIL, 0, nil, 0)
end

local function set(d, k, v, ttl) return lib.sl_shdict_set(d, k, #k, value(v), ttl or 0) end
local function add(d, k, v, ttl) return lib.sl_shdict_add(d, k, #k, value(v), ttl or 0) end

-- get(d, k) -> the Lua value (nil when absent), the return code.
local function get(d, k)
  local out = ffi.new("struct sl_shdict_value")
  local rc = lib.sl_shdict_get(d, k, #k, out, readbuf, 1048576)
  if rc ~= OK then return nil, rc end
  if out.type == STRING then return ffi.string(out.str, out.len), rc end
  if out.type == NUMBER then return out.num, rc end
  return out.num ~= 0, rc
end

local function incr(d, k, by, init, ttl)
  local res = ffi.new("double[1]")
  local ip = init and ffi.new("double[1]", init) or nil
  local rc = lib.sl_shdict_incr(d, k, #k, by, ip, ttl or 0, res)
  return rc == OK and res[0] or nil, rc
end

local function ttl(d, k)
  local out = ffi.new("int64_t[1]")
  local rc = lib.sl_shdict_ttl(d, k, #k, out)
  return rc == OK and tonumber(out[0]) or nil, rc
end

local function stats(d)
  local st = ffi.new("struct sl_shdict_stats")
  lib.sl_shdict_stats(d, st)
  return { capacity = tonumber(st.capacity), used = tonumber(st.used), count = tonumber(st.count),
           evictions = tonumber(st.evictions), expired = tonumber(st.expired) }
end

local function check(d)
  if lib.sl_shdict_check(d, errbuf, 4096) ~= 0 then error(ffi.string(errbuf), 2) end
end

-- Sleeps until the monotonic clock passed ms more (generous: a loaded
-- machine only sleeps longer, which never makes an expiry test fail).
local function sleep_ms(ms) socket.sleep(ms / 1000) end

describe("shared dictionaries (C API)", function()
  it("stores strings, numbers and booleans, and set nil deletes", function()
    local d = fresh()
    assert.equal(OK, set(d, "s", "hello"))
    assert.equal(OK, set(d, "empty", ""))
    assert.equal(OK, set(d, "n", 1.5))
    assert.equal(OK, set(d, "t", true))
    assert.equal(OK, set(d, "f", false))
    assert.equal("hello", get(d, "s"))
    assert.equal("", get(d, "empty"))
    assert.equal(1.5, get(d, "n"))
    assert.is_true(get(d, "t"))
    assert.is_false(get(d, "f"))
    assert.equal(OK, set(d, "s", "replaced"))
    assert.equal("replaced", get(d, "s"))
    assert.equal(OK, set(d, "s", nil))
    assert.same({ nil, NOT_FOUND }, { get(d, "s") })
    assert.equal(OK, set(d, "never-there", nil))
    assert.equal(4, stats(d).count)
    check(d)
  end)

  it("refuses empty and oversized keys, bad types and negative TTLs", function()
    local d = fresh()
    assert.equal(EINVAL, set(d, "", "v"))
    assert.equal(EINVAL, set(d, ("k"):rep(65536), "v"))
    assert.equal(OK, set(d, ("k"):rep(65535), "v"))
    assert.equal(EINVAL, set(d, "k", "v", -1))
    assert.equal(EINVAL, lib.sl_shdict_set(d, "k", 1, ffi.new("struct sl_shdict_value", 9), 0))
    assert.equal(EINVAL, add(d, "k", nil))
  end)

  it("reports a string longer than the buffer without copying it", function()
    local d = fresh()
    set(d, "big", ("x"):rep(100))
    local out = ffi.new("struct sl_shdict_value")
    local small = ffi.new("char[10]")
    assert.equal(TRUNCATED, lib.sl_shdict_get(d, "big", 3, out, small, 10))
    assert.equal(100, tonumber(out.len))
    assert.equal(("x"):rep(100), (get(d, "big")))
  end)

  describe("time to live", function()
    it("never returns an expired entry, and removes it", function()
      local d = fresh()
      set(d, "short", "v", 30)
      set(d, "long", "v", 60000)
      set(d, "forever", "v")
      sleep_ms(80)
      assert.same({ nil, NOT_FOUND }, { get(d, "short") })
      assert.equal("v", get(d, "long"))
      assert.equal("v", get(d, "forever"))
      assert.equal(1, stats(d).expired)
      assert.equal(2, stats(d).count)
    end)

    it("tells the time left, 0 for no expiry", function()
      local d = fresh()
      set(d, "long", "v", 60000)
      set(d, "forever", "v")
      local left = ttl(d, "long")
      assert.is_true(left > 50000 and left <= 60000, tostring(left))
      assert.equal(0, ttl(d, "forever"))
      assert.same({ nil, NOT_FOUND }, { ttl(d, "absent") })
    end)

    it("treats an expired key as absent for add and incr", function()
      local d = fresh()
      set(d, "a", "old", 20)
      set(d, "n", 5, 20)
      sleep_ms(60)
      assert.equal(OK, add(d, "a", "new"))
      assert.equal("new", get(d, "a"))
      assert.same({ nil, NOT_FOUND }, { incr(d, "n", 1) })
      assert.equal(11, incr(d, "n", 1, 10))
    end)
  end)

  it("adds only when the key has no live value", function()
    local d = fresh()
    assert.equal(OK, add(d, "k", "first"))
    assert.equal(EXISTS, add(d, "k", "second"))
    assert.equal("first", get(d, "k"))
  end)

  describe("incr", function()
    it("adds to a number and keeps its TTL", function()
      local d = fresh()
      set(d, "n", 10, 60000)
      assert.equal(12.5, incr(d, "n", 2.5))
      assert.equal(2.5, incr(d, "n", -10))
      assert.is_true(ttl(d, "n") > 50000)
    end)

    it("creates the key from init, with the init TTL, only when asked", function()
      local d = fresh()
      assert.same({ nil, NOT_FOUND }, { incr(d, "n", 1) })
      assert.equal(101, incr(d, "n", 1, 100, 60000))
      assert.is_true(ttl(d, "n") > 50000)
      assert.equal(102, incr(d, "n", 1, 100, 5))
    end)

    it("refuses a value that is not a number", function()
      local d = fresh()
      set(d, "s", "7")
      assert.same({ nil, ENOTNUM }, { incr(d, "s", 1, 0) })
      assert.equal("7", get(d, "s"))
    end)
  end)

  describe("cas", function()
    it("stores only over the expected value", function()
      local d = fresh()
      assert.equal(OK, lib.sl_shdict_cas(d, "k", 1, value(nil), value(1), 0))
      assert.equal(CHANGED, lib.sl_shdict_cas(d, "k", 1, value(nil), value(2), 0))
      assert.equal(CHANGED, lib.sl_shdict_cas(d, "k", 1, value("1"), value(2), 0))
      assert.equal(OK, lib.sl_shdict_cas(d, "k", 1, value(1), value("two"), 0))
      assert.equal(CHANGED, lib.sl_shdict_cas(d, "k", 1, value("tw"), value(3), 0))
      assert.equal(OK, lib.sl_shdict_cas(d, "k", 1, value("two"), value(true), 0))
      assert.equal(OK, lib.sl_shdict_cas(d, "k", 1, value(true), value(nil), 0))
      assert.same({ nil, NOT_FOUND }, { get(d, "k") })
    end)
  end)

  describe("update", function()
    it("runs a C callback atomically and applies its verdict", function()
      local d = fresh()
      local cb = ffi.cast("sl_shdict_update_fn", function(_, cur, nxt, ttl_ms)
        if cur.type == NIL then
          nxt.type, nxt.num = NUMBER, 1
          ttl_ms[0] = 60000
          return STORE
        end
        if cur.num >= 3 then return REMOVE end
        nxt.num = cur.num + 1
        return STORE
      end)
      for _ = 1, 3 do assert.equal(OK, lib.sl_shdict_update(d, "u", 1, cb, nil)) end
      assert.equal(3, get(d, "u"))
      assert.is_true(ttl(d, "u") > 50000)
      assert.equal(OK, lib.sl_shdict_update(d, "u", 1, cb, nil))
      assert.same({ nil, NOT_FOUND }, { get(d, "u") })
      local keep = ffi.cast("sl_shdict_update_fn", function() return KEEP end)
      assert.equal(OK, lib.sl_shdict_update(d, "absent", 6, keep, nil))
      assert.same({ nil, NOT_FOUND }, { get(d, "absent") })
      cb:free()
      keep:free()
      check(d)
    end)

    it("grows a string past its allocation", function()
      local d = fresh()
      set(d, "s", "ab")
      local long = ("z"):rep(500)
      local cb = ffi.cast("sl_shdict_update_fn", function(_, _, nxt)
        nxt.type, nxt.str, nxt.len = STRING, long, #long
        return STORE
      end)
      assert.equal(OK, lib.sl_shdict_update(d, "s", 1, cb, nil))
      cb:free()
      assert.equal(long, get(d, "s"))
      check(d)
    end)
  end)

  describe("a full dictionary", function()
    it("evicts the least recently used entries to make room", function()
      local d = fresh(16 * 1024)
      local v = ("v"):rep(500)
      for i = 1, 20 do assert.equal(OK, set(d, "k" .. i, v)) end
      -- k1 is used again: it becomes the most recent.
      assert.equal(v, get(d, "k1"))
      for i = 21, 60 do assert.equal(OK, set(d, "k" .. i, v)) end
      local st = stats(d)
      assert.is_true(st.used <= st.capacity)
      assert.is_true(st.evictions > 0)
      assert.is_nil(get(d, "k2"))              -- least recently used: gone
      assert.equal(v, get(d, "k60"))           -- just written: there
      check(d)
    end)

    it("evicts for add and incr too", function()
      local d = fresh(8 * 1024)
      for i = 1, 200 do
        assert.equal(OK, add(d, "a" .. i, ("x"):rep(100)))
        assert.equal(1, (incr(d, "n" .. i, 1, 0)))
      end
      local st = stats(d)
      assert.is_true(st.used <= st.capacity and st.evictions > 0)
      check(d)
    end)

    it("refuses a value bigger than the dictionary and keeps the old one", function()
      local d = fresh(8 * 1024)
      set(d, "k", "old")
      set(d, "other", "x")
      assert.equal(ENOMEM, set(d, "k", ("x"):rep(8 * 1024)))
      assert.equal("old", get(d, "k"))
      assert.equal("x", get(d, "other"))
      assert.equal(ENOMEM, add(d, "new", ("x"):rep(9000)))
      assert.equal(0, stats(d).evictions)
    end)
  end)

  it("flush_all empties it", function()
    local d = fresh()
    for i = 1, 100 do set(d, "k" .. i, i) end
    lib.sl_shdict_flush_all(d)
    local st = stats(d)
    assert.same({ 0, 0 }, { st.count, st.used })
    assert.is_nil(get(d, "k1"))
    set(d, "k1", 1)
    assert.equal(1, get(d, "k1"))
    check(d)
  end)

  describe("lifetime", function()
    local function conf(list)
      local confs = ffi.new("struct sl_shdict_conf[?]", #list)
      local keep = {}
      for i, c in ipairs(list) do
        keep[i] = ffi.new("char[?]", #c[1] + 1, c[1])
        confs[i - 1].name = keep[i]
        confs[i - 1].size = c[2]
      end
      local s = lib.sl_shdict_set_new(confs, #list, errbuf, 4096)
      assert(s ~= nil, ffi.string(errbuf))
      return s
    end

    it("keeps a dictionary's contents while a generation declares it", function()
      serial = serial + 1
      local name = "life-" .. serial
      local old = conf({ { name, 64 * 1024 } })
      set(lib.sl_shdict_set_at(old, 0), "k", "kept")
      local new = conf({ { name, 64 * 1024 } })        -- a reload declaring it again
      assert.equal(lib.sl_shdict_set_at(old, 0), lib.sl_shdict_set_at(new, 0))
      lib.sl_shdict_set_free(old)                       -- the old generation goes
      assert.equal("kept", get(lib.sl_shdict_set_at(new, 0), "k"))
      lib.sl_shdict_set_free(new)
      local again = conf({ { name, 64 * 1024 } })       -- declared by nobody in between
      assert.is_nil(get(lib.sl_shdict_set_at(again, 0), "k"))
      lib.sl_shdict_set_free(again)
    end)

    it("finds only declared dictionaries, and a handle outlives the declaration", function()
      serial = serial + 1
      local name = "open-" .. serial
      local s = conf({ { name, 64 * 1024 } })
      local h = lib.sl_shdict_open(nil, name, #name)
      assert(h ~= nil)
      assert.is_true(lib.sl_shdict_open(s, "other", 5) == nil)
      local scoped = lib.sl_shdict_open(s, name, #name)
      assert.equal(h, scoped)
      lib.sl_shdict_unref(scoped)
      set(h, "k", "v")
      lib.sl_shdict_set_free(s)
      assert.is_true(lib.sl_shdict_open(nil, name, #name) == nil)
      assert.equal("v", get(h, "k"))                   -- still alive through the handle
      lib.sl_shdict_unref(h)
    end)

    it("takes a new size when the generation declaring it is published", function()
      serial = serial + 1
      local name = "size-" .. serial
      local s1 = conf({ { name, 64 * 1024 } })
      local d = lib.sl_shdict_set_at(s1, 0)
      for i = 1, 100 do set(d, "k" .. i, ("v"):rep(400)) end
      local s2 = conf({ { name, 16 * 1024 } })
      assert.equal(64 * 1024, stats(d).capacity)       -- not before publishing
      harness.log_level("error")                        -- the resize is logged as a warning
      lib.sl_shdict_set_publish(s2)
      harness.log_level("warn")
      local st = stats(d)
      assert.equal(16 * 1024, st.capacity)
      assert.is_true(st.used <= st.capacity and st.count > 0)
      assert.equal(("v"):rep(400), get(d, "k100"))     -- the most recent stay
      lib.sl_shdict_set_free(s1)
      lib.sl_shdict_set_free(s2)
    end)
  end)

  describe("from several threads at once", function()
    it("incr never loses an increment", function()
      local d = fresh()
      assert.equal(8 * 20000, lib.sl_test_shdict_count_threads(d, "hits", 8, 20000, 0))
    end)

    it("a get + cas loop never loses an increment", function()
      local d = fresh()
      assert.equal(8 * 5000, lib.sl_test_shdict_count_threads(d, "hits", 8, 5000, 1))
    end)

    it("stays consistent while eviction and expiry race with every operation", function()
      local d = fresh(16 * 1024)
      local rc = lib.sl_test_shdict_stress(d, 8, 20000, 256, 400, errbuf, 4096)
      assert.equal(0, rc, ffi.string(errbuf))
      local st = stats(d)
      assert.is_true(st.evictions > 0)
    end)
  end)
end)

-- --- sluice.shared, as a plugin sees it -----------------------------------------------

-- A plugin whose request_headers runs body (Lua code) and answers 200 with
-- its results as a JSON array (nil as null). init runs init_body.
local function plugin(body, init_body, dicts)
  local src = [[
local sluice = require "sluice"
local shared = sluice.shared
local function pack(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = sluice.null end
    t[i] = v
  end
  return t
end
local function run() ]] .. body .. [[ end
return {
  name = "dict-user", version = "1", priority = 1,
  init = function() ]] .. (init_body or "") .. [[ end,
  request_headers = function()
    local t = pack(run())
    for i = 1, #t do if type(t[i]) == "cdata" then t[i] = "cdata!" end end
    return sluice.response.exit(200, sluice.json.encode(t))
  end,
}
]]
  return harness.load_source("dict-user", src, nil, { shared_dicts = dicts or { lua = "1m" } })
end

-- Runs the plugin's hook once; returns the decoded results, or raises
-- with the hook's error.
local function run(p)
  local req = assert(harness.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
  local action, err = p:call("request_headers", req)
  if action ~= "respond" then error(err or action, 2) end
  local _, _, body = req:reply()
  req:free()
  return json.decode(body)
end

local null = json.null

describe("sluice.shared (Lua API)", function()
  it("gets, sets, adds, increments, compares and deletes", function()
    local p = assert(plugin([[
      local d = shared.dict("lua")
      d:flush_all()
      local r = {}
      r[1] = d:set("s", "text")
      r[2] = d:get("s")
      r[3], r[4] = d:add("s", "other")
      r[5] = d:add("n", 41)
      r[6] = d:incr("n", 1)
      r[7], r[8] = d:incr("missing", 1)
      r[9] = d:incr("counter", 5, 10, 60)
      r[10], r[11] = d:incr("s", 1)
      r[12] = d:set("b", false)
      r[13] = d:get("b")
      r[14] = d:get("absent")
      r[15] = d:cas("n", 42, 43)
      r[16], r[17] = d:cas("n", 42, 44)
      r[18] = d:get("n")
      r[19] = d:delete("n")
      r[20] = d:get("n")
      r[21] = d:set("s", nil)
      r[22] = d:get("s")
      for i = 1, 22 do if r[i] == nil then r[i] = sluice.null end end
      return unpack(r, 1, 22)
    ]]))
    assert.same({ true, "text", false, "exists", true, 42, null, "not found", 15,
                  null, "not a number", true, false, null, true, false, "changed", 43,
                  true, null, true, null }, run(p))
  end)

  it("counts TTLs in seconds", function()
    local p = assert(plugin([[
      local d = shared.dict("lua")
      d:set("t", 1, 60)
      d:set("f", 1)
      local missing, err = d:ttl("nope")
      return d:ttl("t") > 59 and d:ttl("t") <= 60, d:ttl("f"), missing, err
    ]]))
    assert.same({ true, 0, null, "not found" }, run(p))
    local q = assert(plugin([[
      local d = shared.dict("lua")
      d:set("gone", "v", 0.02)
      return d:get("gone")
    ]]))
    assert.same({ "v" }, run(q))
    sleep_ms(60)
    local r = assert(plugin([[ return shared.dict("lua"):get("gone") ]]))
    assert.same({ null }, run(r))
  end)

  it("round-trips long strings", function()
    local p = assert(plugin([[
      local d = shared.dict("lua")
      local a, b = string.rep("a", 5000), string.rep("b", 200000)
      d:set("a", a)
      d:set("b", b)
      return d:get("a") == a, d:get("b") == b, d:get("a") == a
    ]]))
    assert.same({ true, true, true }, run(p))
  end)

  it("says no memory for a value bigger than the dictionary", function()
    local p = assert(plugin([[
      local d = shared.dict("tiny")
      return d:set("k", string.rep("x", 9000))
    ]], nil, { tiny = "8k" }))
    assert.same({ null, "no memory" }, run(p))
  end)

  it("reports capacity and free space", function()
    local p = assert(plugin([[
      local d = shared.dict("sized")
      d:flush_all()
      local before = d:free_space()
      d:set("k", string.rep("x", 1000))
      return d:capacity(), before, before - d:free_space() > 1000
    ]], nil, { sized = "64k" }))
    assert.same({ 65536, 65536, true }, run(p))
  end)

  it("hands plugins only plain values and a read-only table", function()
    local p = assert(plugin([[
      local d = shared.dict("lua")
      d:set("k", 1)
      local ok = pcall(function() d.get = nil end)
      return type(d), getmetatable(d), ok, d:get("k"), d:incr("k", 1), d:ttl("k"),
             d:capacity()
    ]]))
    assert.same({ "table", false, false, 1, 2, 0, 1048576 }, run(p))
  end)

  local misuse = {
    { "a key that is not a string", [[shared.dict("lua"):get(1)]], "bad argument #1 (string expected, got number)" },
    { "an empty key", [[shared.dict("lua"):set("", 1)]], "a key of 1 to 65535 bytes expected" },
    { "a table value", [[shared.dict("lua"):set("k", {})]], "bad argument #2 (string, number, boolean or nil expected, got table)" },
    { "a negative TTL", [[shared.dict("lua"):set("k", 1, -1)]], "bad argument #3 (a TTL in seconds >= 0 expected" },
    { "incr by a string", [[shared.dict("lua"):incr("k", "1")]], "bad argument #2 (number expected, got string)" },
    { "a call with a dot", [[shared.dict("lua").get("k")]], "call it as a method" },
    { "an unknown dictionary", [[shared.dict("nope")]], "no shared dict named 'nope'" },
    { "a name that is not a string", [[shared.dict(nil)]], "bad argument #1 (string expected, got nil)" },
  }
  for _, c in ipairs(misuse) do
    it("raises at the plugin's line for " .. c[1], function()
      local p = assert(plugin(c[2]))
      local ok, err = pcall(run, p)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[3], 1, true), tostring(err))
      assert.truthy(tostring(err):find("dict-user.lua:", 1, true), tostring(err))
    end)
  end

  it("works in init, before any request", function()
    local p = assert(plugin([[ return shared.dict("lua"):get("init-ran") ]],
                            [[ shared.dict("lua"):set("init-ran", "yes") ]]))
    assert.same({ "yes" }, run(p))
  end)

  it("refuses to load a plugin whose init names an undeclared dictionary", function()
    local p, err = plugin("return 1", [[ shared.dict("undeclared") ]])
    assert.is_nil(p)
    assert.truthy(err:find("no shared dict named 'undeclared'", 1, true), err)
  end)

  it("shares one dictionary between plugin instances", function()
    local a = assert(plugin([[ return shared.dict("lua"):incr("shared-count", 1, 0) ]]))
    local b = assert(plugin([[ return shared.dict("lua"):incr("shared-count", 1, 0) ]]))
    local first = run(a)[1]
    assert.equal(first + 1, run(b)[1])
    assert.equal(first + 2, run(a)[1])
  end)
end)
