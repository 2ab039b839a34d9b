-- spec/unit/header_bytes_spec.lua: which bytes the header-changing API
-- takes (src/headers.c, src/api.c). Names and values are tested 16 bytes
-- at a time on the fast paths, by the table otherwise; both must answer
-- as the byte rule always has: a name is 1 or more tchar (RFC 9110
-- §5.6.2), a value has no byte below 0x20 but HTAB and no 0x7f. Every
-- byte value goes in every position of names of 1..20 bytes and values of
-- 0..20, through set and add, with and without a known name, and through
-- sl_is_token and sl_is_field_value; a field taken must come back byte
-- for byte. Through spec/plugin_harness.lua (build/libsluice.so).
--
-- Run: busted --lua=luajit spec/unit/header_bytes_spec.lua

local ffi = require "ffi"
local harness = require "spec.plugin_harness"

pcall(ffi.cdef, [[
  int sl_api_header_set(struct sl_conn *c, int side, const char *name, size_t nlen,
                        const char *value, size_t vlen);
  int sl_api_header_add(struct sl_conn *c, int side, const char *name, size_t nlen,
                        const char *value, size_t vlen);
  int sl_api_header_set_known(struct sl_conn *c, int side, const char *name, size_t nlen,
                              const char *value, size_t vlen);
  int sl_api_header_add_known(struct sl_conn *c, int side, const char *name, size_t nlen,
                              const char *value, size_t vlen);
  int sl_api_header_remove(struct sl_conn *c, int side, const char *name, size_t nlen);
  bool sl_is_token(const char *s, size_t n);
  bool sl_is_field_value(const char *s, size_t n);
]])
local C = ffi.C

local OK, EINVAL = 0, -1
local REQUEST, RESPONSE = 0, 1
local GET = "GET /a HTTP/1.1\r\nHost: a.example\r\nUser-Agent: spec\r\n\r\n"

-- The rule, byte by byte, as headers.c had it before the word tests.
local TCHAR = {}
for b in ("!#$%&'*+-.^_`|~"):gmatch(".") do TCHAR[b:byte()] = true end
for b = ("0"):byte(), ("9"):byte() do TCHAR[b] = true end
for b = ("A"):byte(), ("Z"):byte() do TCHAR[b] = true end
for b = ("a"):byte(), ("z"):byte() do TCHAR[b] = true end

local function is_token(s)
  if #s == 0 then return false end
  for i = 1, #s do
    if not TCHAR[s:byte(i)] then return false end
  end
  return true
end

local function is_value(s)
  for i = 1, #s do
    local b = s:byte(i)
    if (b < 0x20 and b ~= 0x09) or b == 0x7f then return false end
  end
  return true
end

-- Strings that pass the fast tests as they are, cut to n bytes: names of
-- letters, digits and '-'; values with spaces and bytes of 0x80 and more.
local NAME_BASE = "X-Bench-Field-09azAZ-Long"
local VALUE_BASES = { "value 1, q=0.5; ok xyz", "\xc3\xa9t\xc3\xa9 \x80\xff~ \x7e\x20abcdef" }

local function with_byte(base, n, pos, b)
  local s = base:sub(1, n)
  return s:sub(1, pos - 1) .. string.char(b) .. s:sub(pos + 1)
end

local pp, pn = ffi.new("const char *[1]"), ffi.new("size_t[1]")
local pp2, pn2 = ffi.new("const char *[1]"), ffi.new("size_t[1]")

local function last_field(c, side)
  local n = tonumber(C.sl_api_header_count(c, side))
  assert(C.sl_api_header_at(c, side, n - 1, pp, pn, pp2, pn2) == OK)
  return ffi.string(pp[0], pn[0]), ffi.string(pp2[0], pn2[0])
end

-- Runs change(c, side, name, value) for one field on a request that has
-- none called name, and checks the answer and the field left behind
-- against the rule (want_ok). Returns what went wrong, or nil.
local function try(c, side, change, name, value, want_ok)
  local before = tonumber(C.sl_api_header_count(c, side))
  local rc = change(c, side, name, #name, value, #value)
  local after = tonumber(C.sl_api_header_count(c, side))
  if want_ok then
    if rc ~= OK then return ("refused (%d)"):format(rc) end
    if after ~= before + 1 then return "not appended" end
    local n, v = last_field(c, side)
    if n ~= name or v ~= value then return "stored as " .. ("%q: %q"):format(n, v) end
    -- out again, so that set finds nothing to replace next time and the
    -- list stays short
    if C.sl_api_header_remove(c, side, name, #name) ~= OK then
      return "cannot remove"
    end
  else
    if rc ~= EINVAL then return ("answered %d, not EINVAL"):format(rc) end
    if after ~= before then return "changed the list" end
  end
end

local CHANGES = {
  { "set", C.sl_api_header_set, false },
  { "add", C.sl_api_header_add, false },
  { "set_known", C.sl_api_header_set_known, true },
  { "add_known", C.sl_api_header_add_known, true },
}

local function fresh()
  return assert(harness.request(GET))
end

describe("the header API's byte rule", function()
  it("refuses and takes name bytes as the table does, in every position of 1..20 bytes", function()
    local bad = {}
    for _, ch in ipairs({ CHANGES[1], CHANGES[2] }) do
      for _, value in ipairs({ "1", "", "twelve bytes", "a value of seventeen" }) do
        local req = fresh()
        for n = 1, 20 do
          for pos = 1, n do
            for b = 0, 255 do
              local name = with_byte(NAME_BASE, n, pos, b)
              local want = is_token(name)
              local side = (b % 2 == 0) and REQUEST or RESPONSE
              local err = try(req.c, side, ch[2], name, value, want)
              if err and #bad < 10 then
                bad[#bad + 1] = ("%s %q = %q: %s"):format(ch[1], name, value, err)
              end
              if C.sl_is_token(name, #name) ~= want and #bad < 10 then
                bad[#bad + 1] = ("sl_is_token(%q) ~= %s"):format(name, tostring(want))
              end
            end
          end
        end
        req:free()
      end
    end
    assert.same({}, bad)
  end)

  it("refuses and takes value bytes as the table does, in every position of 0..20 bytes", function()
    local bad = {}
    for _, ch in ipairs(CHANGES) do
      for _, name in ipairs({ "X-Bench", "X-Test-Field-1", "X-A-Name-Over-16-Bytes" }) do
        local req = fresh()
        for _, base in ipairs(VALUE_BASES) do
          for n = 0, 20 do
            for pos = 1, math.max(n, 1) do
              for b = 0, 255 do
                local value = n == 0 and "" or with_byte(base, n, pos, b)
                local want = is_value(value)
                local side = (b % 2 == 0) and REQUEST or RESPONSE
                local err = try(req.c, side, ch[2], name, value, want)
                if err and #bad < 10 then
                  bad[#bad + 1] = ("%s %q = %q: %s"):format(ch[1], name, value, err)
                end
                if C.sl_is_field_value(value, #value) ~= want and #bad < 10 then
                  bad[#bad + 1] = ("sl_is_field_value(%q) ~= %s"):format(value, tostring(want))
                end
                if n == 0 then break end
              end
            end
          end
        end
        req:free()
      end
    end
    assert.same({}, bad)
  end)

  it("checks long names and values in all their 16-byte blocks and in the tail", function()
    local bad = {}
    local req = fresh()
    local long_name = ("X-Long-Name-"):rep(10)
    local long_value = ("long value \xe2\x82\xac "):rep(10)
    for n = 17, 100, 7 do
      for pos = 1, n do
        for _, b in ipairs({ 0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x2f, 0x5f, 0x7f, 0x80, 0xff }) do
          local name = with_byte(long_name, n, pos, b)
          local value = with_byte(long_value, n, pos, b)
          for _, case in ipairs({
            { C.sl_api_header_add, name, "v", is_token(name) },
            { C.sl_api_header_add, "X-V", value, is_value(value) },
          }) do
            local err = try(req.c, REQUEST, case[1], case[2], case[3], case[4])
            if err and #bad < 10 then
              bad[#bad + 1] = ("%q = %q: %s"):format(case[2], case[3], err)
            end
          end
          if C.sl_is_token(name, #name) ~= is_token(name) and #bad < 10 then
            bad[#bad + 1] = ("sl_is_token(%q)"):format(name)
          end
          if C.sl_is_field_value(value, #value) ~= is_value(value) and #bad < 10 then
            bad[#bad + 1] = ("sl_is_field_value(%q)"):format(value)
          end
        end
      end
    end
    req:free()
    assert.same({}, bad)
  end)

  it("refuses an empty name, and takes an empty value", function()
    local req = fresh()
    for _, ch in ipairs(CHANGES) do
      if not ch[3] then
        assert.equal(EINVAL, ch[2](req.c, REQUEST, "", 0, "v", 1))
      end
      assert.equal(OK, ch[2](req.c, REQUEST, "X-Empty", 7, "", 0))
      local n, v = last_field(req.c, REQUEST)
      assert.same({ "X-Empty", "" }, { n, v })
    end
    assert.is_false(C.sl_is_token("", 0))
    assert.is_true(C.sl_is_field_value("", 0))
    req:free()
  end)

  it("replaces every field of the name, whatever its case, with one at the end", function()
    local req = fresh()
    assert.equal(OK, C.sl_api_header_add(req.c, REQUEST, "X-Rep", 5, "1", 1))
    assert.equal(OK, C.sl_api_header_add(req.c, REQUEST, "x-other", 7, "2", 1))
    assert.equal(OK, C.sl_api_header_add(req.c, REQUEST, "x-REP", 5, "3", 1))
    -- same length and last byte, another name: kept
    assert.equal(OK, C.sl_api_header_add(req.c, REQUEST, "Y-reP", 5, "4", 1))
    assert.equal(OK, C.sl_api_header_set(req.c, REQUEST, "x-rep", 5, "5", 1))
    assert.same({
      { "Host", "a.example" }, { "User-Agent", "spec" }, { "x-other", "2" }, { "Y-reP", "4" },
      { "x-rep", "5" },
    }, req:headers("request"))
    -- a refused value replaces nothing
    assert.equal(EINVAL, C.sl_api_header_set(req.c, REQUEST, "Y-reP", 5, "a\r\nb", 4))
    assert.equal(EINVAL, C.sl_api_header_set_known(req.c, REQUEST, "Y-reP", 5, "a\0b", 3))
    assert.equal(5, #req:headers("request"))
    req:free()
  end)

  it("grows the list past its free slots", function()
    local req = fresh()
    for i = 1, 100 do
      local name = "X-N-" .. i
      local value = "v" .. i
      local change = (i % 2 == 0) and C.sl_api_header_add or C.sl_api_header_set_known
      assert.equal(OK, change(req.c, RESPONSE, name, #name, value, #value))
    end
    local list = req:headers("response")
    assert.equal(100, #list)
    for i = 1, 100 do assert.same({ "X-N-" .. i, "v" .. i }, list[i]) end
    req:free()
  end)
end)
