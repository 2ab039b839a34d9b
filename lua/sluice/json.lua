-- lua/sluice/json.lua: sluice.json, JSON (RFC 8259) in plain Lua.
--
-- Why not lua-cjson: it is a C module that each plugin VM would load from
-- package.cpath (a new runtime dependency, and the sandbox hands out no C
-- modules); its loops never pass a budget check, so a plugin decoding a
-- huge body could not be stopped at its timeout; and its settings
-- (encode_max_depth, ...) are global switches a plugin could flip. This
-- module JIT-compiles, checks the CPU budget as it goes and has per-call
-- limits. cjson is faster on big documents; bodies are bounded by
-- limits.max_body_buffer, and this is fast enough for the sizes plugins
-- handle (a few hundred MB/s of decoding on a current x86 core for
-- typical API payloads, less for string-heavy ones).
--
--   json.encode(value) -> text, or nil and a message (a function value,
--     NaN, nesting deeper than 100, a key that is not a string or number)
--   json.decode(text, max_depth) -> value, or nil and a message
--   json.null: decodes from and encodes to null (also sluice.null)
--   json.array(t) -> t, marked so that it encodes as an array even when
--     empty (decoded arrays are marked already); json.empty_array is "[]"
--
-- Encoding: a table whose keys are exactly 1..n is an array, an empty
-- table is {} unless marked, other tables are objects (number keys become
-- strings). Integers up to 2^53 print without a fraction, other numbers
-- with 17 significant digits. Strings are copied byte for byte (UTF-8 is
-- not checked), with ", \ and control bytes escaped.
--
-- Decoding: \u escapes (surrogate pairs too) become UTF-8; numbers are Lua
-- numbers (doubles); a repeated object key keeps its last value.

local budget = require "sluice.budget"

local type, error, tostring, tonumber, next = type, error, tostring, tonumber, next
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local byte, sub, find, gsub, char, format = string.byte, string.sub, string.find,
  string.gsub, string.char, string.format
local concat = table.concat
local floor, huge = math.floor, math.huge
local newproxy = newproxy
local debug_getmetatable = debug.getmetatable
local check = budget.check

local ok_sb, sandbox = pcall(require, "sluice.sandbox")
local is_readonly = ok_sb and sandbox.is_readonly or function() return false end

local M = {}

M.null = newproxy(false)
M.empty_array = newproxy(false)

local ARRAY = "sluice.json.array"
local array_mt = { __metatable = ARRAY }

local DEFAULT_DEPTH = 100

--- array(t) -> t, marked to encode as an array (even when empty).
function M.array(t)
  if type(t) ~= "table" then
    error("sluice.json.array: bad argument #1 (table expected, got " .. type(t) .. ")", 2)
  end
  if getmetatable(t) ~= nil and getmetatable(t) ~= ARRAY then
    error("sluice.json.array: bad argument #1 (the table already has a metatable)", 2)
  end
  return setmetatable(t, array_mt)
end

---------------------------------------------------------------------------
-- Encoding.

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
for i = 0, 31 do
  local c = char(i)
  if not ESC[c] then ESC[c] = format("\\u%04x", i) end
end
ESC["\127"] = "\\u007f"

local function encode_string(s)
  if find(s, '[%c"\\]') then
    return '"' .. gsub(s, '[%c"\\]', ESC) .. '"'
  end
  return '"' .. s .. '"'
end

local function encode_number(v)
  if v ~= v or v == huge or v == -huge then
    return nil, "cannot encode " .. tostring(v)
  end
  if floor(v) == v and v >= -9007199254740992 and v <= 9007199254740992 then
    return format("%d", v)
  end
  return format("%.17g", v)
end

-- The table a read-only view (sluice.sandbox) reads from, or t itself.
local function contents(t)
  if is_readonly(t) then
    local mt = debug_getmetatable(t)
    return mt and rawget(mt, "__index") or t
  end
  return t
end

local encode_value

local function encode_table(t, out, n, depth)
  if depth > DEFAULT_DEPTH then
    return nil, "cannot encode: nested deeper than " .. DEFAULT_DEPTH .. " levels (a cycle?)"
  end
  t = contents(t)
  local len = #t
  local is_array = getmetatable(t) == ARRAY
  if not is_array and len > 0 then
    local count = 0
    for _ in next, t do
      count = count + 1
      if count > len then break end
    end
    is_array = count == len
  end
  local err
  if is_array then
    n = n + 1; out[n] = "["
    for i = 1, len do
      if i > 1 then n = n + 1; out[n] = "," end
      n, err = encode_value(rawget(t, i), out, n, depth + 1)
      if not n then return nil, err end
    end
    n = n + 1; out[n] = "]"
    return n
  end
  n = n + 1; out[n] = "{"
  local first = true
  for k, v in next, t do
    local tk = type(k)
    if tk == "number" then
      k = tostring(k)
    elseif tk ~= "string" then
      return nil, "cannot encode a table with a " .. tk .. " key"
    end
    if not first then n = n + 1; out[n] = "," end
    first = false
    n = n + 1; out[n] = encode_string(k)
    n = n + 1; out[n] = ":"
    n, err = encode_value(v, out, n, depth + 1)
    if not n then return nil, err end
  end
  n = n + 1; out[n] = "}"
  return n
end

encode_value = function(v, out, n, depth)
  check()
  local tv = type(v)
  local s, err
  if tv == "string" then
    s = encode_string(v)
  elseif tv == "number" then
    s, err = encode_number(v)
    if not s then return nil, err end
  elseif tv == "boolean" then
    s = v and "true" or "false"
  elseif v == nil or v == M.null then
    s = "null"
  elseif v == M.empty_array then
    s = "[]"
  elseif tv == "table" then
    return encode_table(v, out, n, depth)
  else
    return nil, "cannot encode a " .. tv .. " value"
  end
  n = n + 1
  out[n] = s
  return n
end

--- encode(value) -> JSON text, or nil and a message.
function M.encode(v)
  local tv = type(v)
  if tv == "string" then return encode_string(v) end
  if tv == "number" then return encode_number(v) end
  local out = {}
  local n, err = encode_value(v, out, 0, 1)
  if not n then return nil, err end
  return concat(out, "", 1, n)
end

---------------------------------------------------------------------------
-- Decoding.

local UNESC = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
  [110] = "\n", [114] = "\r", [116] = "\t",
}

local function utf8(cp)
  if cp < 0x80 then
    return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
              0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function fail(s, pos, what)
  if pos > #s then
    return nil, "json: unexpected end of text (" .. what .. ")"
  end
  local c = sub(s, pos, pos)
  if find(c, "%c") or byte(c) > 126 then c = format("\\x%02x", byte(c)) end
  return nil, "json: " .. what .. " at position " .. pos .. " (near '" .. c .. "')"
end

-- Returns the string, the position after its closing quote.
local function decode_string(s, pos)
  local parts, np = nil, 0
  local start = pos + 1
  while true do
    local q = find(s, '["\\%z\1-\31]', start)
    if not q then return fail(s, #s + 1, "unfinished string") end
    local c = byte(s, q)
    if c == 34 then
      if not parts then return sub(s, pos + 1, q - 1), q + 1 end
      np = np + 1; parts[np] = sub(s, start, q - 1)
      return concat(parts, "", 1, np), q + 1
    elseif c ~= 92 then
      return fail(s, q, "control character in a string")
    end
    parts = parts or {}
    np = np + 1; parts[np] = sub(s, start, q - 1)
    local e = byte(s, q + 1)
    local u = UNESC[e]
    if u then
      np = np + 1; parts[np] = u
      start = q + 2
    elseif e == 117 then                              -- \uXXXX
      local hex = sub(s, q + 2, q + 5)
      if not find(hex, "^%x%x%x%x$") then return fail(s, q, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      start = q + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = find(s, "^\\u[dD][c-fC-F]%x%x", start)
        if lo then
          cp = 0x10000 + (cp - 0xD800) * 1024 + (tonumber(sub(s, start + 2, start + 5), 16) - 0xDC00)
          start = start + 6
        else
          cp = 0xFFFD                                 -- a lone surrogate
        end
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        cp = 0xFFFD
      end
      np = np + 1; parts[np] = utf8(cp)
    else
      return fail(s, q, "bad escape")
    end
  end
end

local function decode_number(s, pos)
  local _, e = find(s, "^-?%d+", pos)
  if not e then return fail(s, pos, "bad number") end
  local d = byte(s, pos) == 45 and pos + 1 or pos
  if byte(s, d) == 48 and e > d then return fail(s, pos, "bad number (leading zero)") end
  local _, fe = find(s, "^%.%d+", e + 1)
  if fe then e = fe elseif byte(s, e + 1) == 46 then return fail(s, e + 1, "bad number") end
  local _, ee = find(s, "^[eE][-+]?%d+", e + 1)
  if ee then
    e = ee
  elseif byte(s, e + 1) == 101 or byte(s, e + 1) == 69 then
    return fail(s, e + 1, "bad number")
  end
  return tonumber(sub(s, pos, e)), e + 1
end

local decode_value

local function skip(s, pos)
  return find(s, "[^ \t\r\n]", pos) or #s + 1
end

local function decode_array(s, pos, depth, max_depth)
  if depth > max_depth then return fail(s, pos, "nested deeper than " .. max_depth .. " levels") end
  local t, n = setmetatable({}, array_mt), 0
  pos = skip(s, pos + 1)
  if byte(s, pos) == 93 then return t, pos + 1 end
  while true do
    local v
    v, pos = decode_value(s, pos, depth, max_depth)
    if pos == nil then return nil, v end
    n = n + 1
    t[n] = v
    pos = skip(s, pos)
    local c = byte(s, pos)
    if c == 93 then return t, pos + 1 end
    if c ~= 44 then return fail(s, pos, "expected ',' or ']'") end
    pos = skip(s, pos + 1)
  end
end

local function decode_object(s, pos, depth, max_depth)
  if depth > max_depth then return fail(s, pos, "nested deeper than " .. max_depth .. " levels") end
  local t = {}
  pos = skip(s, pos + 1)
  if byte(s, pos) == 125 then return t, pos + 1 end
  while true do
    if byte(s, pos) ~= 34 then return fail(s, pos, "expected a string key") end
    local k, v
    k, pos = decode_string(s, pos)
    if pos == nil then return nil, k end
    pos = skip(s, pos)
    if byte(s, pos) ~= 58 then return fail(s, pos, "expected ':'") end
    v, pos = decode_value(s, skip(s, pos + 1), depth, max_depth)
    if pos == nil then return nil, v end
    t[k] = v
    pos = skip(s, pos)
    local c = byte(s, pos)
    if c == 125 then return t, pos + 1 end
    if c ~= 44 then return fail(s, pos, "expected ',' or '}'") end
    pos = skip(s, pos + 1)
  end
end

-- Returns the value and the position after it, or nil and a message (the
-- message first: callers test the second result).
decode_value = function(s, pos, depth, max_depth)
  check()
  local c = byte(s, pos)
  local v, e
  if c == 34 then
    v, e = decode_string(s, pos)
  elseif c == 123 then
    v, e = decode_object(s, pos, depth + 1, max_depth)
  elseif c == 91 then
    v, e = decode_array(s, pos, depth + 1, max_depth)
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    v, e = decode_number(s, pos)
  elseif c == 116 and sub(s, pos, pos + 3) == "true" then
    return true, pos + 4
  elseif c == 102 and sub(s, pos, pos + 4) == "false" then
    return false, pos + 5
  elseif c == 110 and sub(s, pos, pos + 3) == "null" then
    return M.null, pos + 4
  else
    v, e = fail(s, pos, "unexpected character")
  end
  if v == nil then return e, nil end
  return v, e
end

--- decode(text, max_depth) -> the value, or nil and a message. max_depth
--- (default 100) bounds the nesting of arrays and objects.
function M.decode(s, max_depth)
  if type(s) ~= "string" then
    error("sluice.json.decode: bad argument #1 (string expected, got " .. type(s) .. ")", 2)
  end
  if max_depth == nil then
    max_depth = DEFAULT_DEPTH
  elseif type(max_depth) ~= "number" or max_depth < 1 then
    error("sluice.json.decode: bad argument #2 (positive number expected)", 2)
  end
  if #s > 4096 then budget.charge_bytes(#s) end
  local v, pos = decode_value(s, skip(s, 1), 0, max_depth)
  if pos == nil then return nil, v end
  pos = skip(s, pos)
  if pos <= #s then return fail(s, pos, "trailing characters") end
  return v
end

return M
