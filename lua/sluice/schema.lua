-- lua/sluice/schema.lua: declarative configuration schemas, checked once
-- when a plugin loads (never per request).
--
--   schema = { type = "record", fields = {
--     { header = { type = "string", default = "X-Api-Key", len_min = 1 } },
--     { keys = { type = "array", required = true, elements = { type = "string" } } },
--     { mode = { type = "string", one_of = { "strict", "lax" }, default = "strict" } },
--     { limits = { type = "record", fields = {
--         { per_second = { type = "integer", between = { 1, 100000 }, default = 10 } },
--     } } },
--   } }
--
-- Types: string, number, integer, boolean, array (elements = schema), map
-- (keys = string schema, values = schema) and record (fields = ordered
-- list of { name = schema }). Attributes: required, default, one_of
-- (string, number, integer), len_min / len_max (string length in bytes;
-- entries of an array or map), between = { min, max } (inclusive; number,
-- integer), match (a Lua pattern the string must contain; anchor it with ^
-- and $ to match the whole string), custom_validator (a function(value)
-- returning true, or nil and a message; called when everything else about
-- the value is valid), description (documentation only).
--
-- Fields are optional unless required = true. An absent (or null) field
-- takes its default; an absent optional record with no required field of
-- its own becomes a table of its fields' defaults. Unknown keys in a
-- record are errors, and so are unknown attributes in a schema (a typo
-- such as `requried` must not pass silently).
--
--   local s, err = schema.compile(def)            -- checks the schema itself
--   local value, errs = schema.validate(s, input, "config")
--
-- validate() does not change input: value is a copy with defaults filled
-- in. errs is nil or a list of { path = "config.a[0].b", keys = { "a", 1,
-- "b" }, message = "..." } in schema order; path indices are 0-based like
-- the rest of sluice's configuration messages, keys are Lua's (1-based).

local json = require "sluice.json"
local budget = require "sluice.budget"

local type, error, tostring, pairs, next, ipairs = type, error, tostring, pairs, next, ipairs
local pcall = pcall
local floor, huge = math.floor, math.huge
local find, format = string.find, string.format
local concat, sort = table.concat, table.sort

local null = json.null
local is_tripped, rethrow = budget.is_tripped, budget.rethrow

local M = {}

local TYPES = {
  string = true, number = true, integer = true, boolean = true,
  array = true, map = true, record = true,
}

local COMMON = { type = true, required = true, default = true, description = true,
                 custom_validator = true }
local ATTRS = {
  string = { one_of = true, len_min = true, len_max = true, match = true },
  number = { one_of = true, between = true },
  integer = { one_of = true, between = true },
  boolean = {},
  array = { elements = true, len_min = true, len_max = true },
  map = { keys = true, values = true, len_min = true, len_max = true },
  record = { fields = true },
}

local function sorted_keys(t)
  local ks, n = {}, 0
  for k in pairs(t) do
    n = n + 1
    ks[n] = k
  end
  sort(ks, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "string" or ta == "number" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return ks
end

local function describe(v)
  if v == null then return "null" end
  local tv = type(v)
  if tv == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return format("%q", v)
  end
  if tv == "number" then
    if v ~= v then return "nan" end
    return tostring(v)
  end
  if tv == "boolean" then return tostring(v) end
  return "a " .. tv
end

local function article(t)
  if t == "integer" or t == "array" then return "an " .. t end
  return "a " .. t
end

local function is_integer(v)
  return floor(v) == v and v > -huge and v < huge
end

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

-- A table whose keys are exactly 1..n (or empty).
local function is_sequence(t)
  local n = #t
  return count(t) == n
end

local function all_string_keys(t)
  for k in next, t do
    if type(k) ~= "string" then return false end
  end
  return true
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in next, v do c[k] = deep_copy(x) end
  return c
end

---------------------------------------------------------------------------
-- Paths.

--- path_of(root, keys) -> "root.a[0].b" (number keys are Lua indices and
--- print 0-based).
function M.path_of(root, keys)
  local parts = { root }
  for i = 1, #keys do
    local k = keys[i]
    if type(k) == "number" then
      parts[i + 1] = "[" .. format("%d", k - 1) .. "]"
    else
      parts[i + 1] = "." .. tostring(k)
    end
  end
  return concat(parts)
end
local path_of = M.path_of

local function push(keys, k)
  local c = {}
  for i = 1, #keys do c[i] = keys[i] end
  c[#keys + 1] = k
  return c
end

---------------------------------------------------------------------------
-- Checking a value against a compiled schema.

local validate_value

local function add_error(st, keys, msg)
  local n = #st.errs + 1
  st.errs[n] = { path = path_of(st.root, keys), keys = keys, message = msg }
end

local function check_len(st, fs, v, n, keys, what)
  if fs.len_min and n < fs.len_min then
    add_error(st, keys, format("%s must be at least %d", what, fs.len_min))
    return false
  end
  if fs.len_max and n > fs.len_max then
    add_error(st, keys, format("%s must be at most %d", what, fs.len_max))
    return false
  end
  return true
end

local function check_scalar(st, fs, v, keys)
  local t = fs.type
  local tv = type(v)
  if t == "string" then
    if tv ~= "string" then
      add_error(st, keys, "expected a string, got " .. describe(v))
      return false
    end
    if not check_len(st, fs, v, #v, keys, "length") then return false end
    if fs.match and not find(v, fs.match) then
      add_error(st, keys, format("invalid value %s: must match the pattern '%s'", describe(v), fs.match))
      return false
    end
  elseif t == "number" or t == "integer" then
    if tv ~= "number" or v ~= v then
      add_error(st, keys, "expected " .. article(t) .. ", got " .. describe(v))
      return false
    end
    if t == "integer" and not is_integer(v) then
      add_error(st, keys, "expected an integer, got " .. describe(v))
      return false
    end
    local b = fs.between
    if b and (v < b[1] or v > b[2]) then
      add_error(st, keys, format("value should be between %s and %s, got %s",
                                 describe(b[1]), describe(b[2]), describe(v)))
      return false
    end
  elseif t == "boolean" then
    if tv ~= "boolean" then
      add_error(st, keys, "expected a boolean, got " .. describe(v))
      return false
    end
  end
  if fs.one_of_set and not fs.one_of_set[v] then
    local names = {}
    for i, o in ipairs(fs.one_of) do names[i] = tostring(o) end
    add_error(st, keys, "expected one of: " .. concat(names, ", ") .. "; got " .. describe(v))
    return false
  end
  return true
end

local function validate_array(st, fs, v, keys)
  if type(v) ~= "table" or not is_sequence(v) then
    add_error(st, keys, "expected an array, got " .. (type(v) == "table" and "a map" or describe(v)))
    return nil
  end
  if not check_len(st, fs, v, #v, keys, "number of items") then return nil end
  local out = {}
  for i = 1, #v do
    out[i] = validate_value(st, fs.elements, v[i], push(keys, i), true)
  end
  return out
end

local function validate_map(st, fs, v, keys)
  if type(v) ~= "table" or not all_string_keys(v) then
    add_error(st, keys, "expected a map, got " .. (type(v) == "table" and "an array" or describe(v)))
    return nil
  end
  if not check_len(st, fs, v, count(v), keys, "number of entries") then return nil end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    local kk = push(keys, k)
    local before = #st.errs
    if fs.keys then
      local kst = { errs = {}, root = st.root }
      -- validate_value, not check_scalar alone: a key schema's
      -- custom_validator runs too.
      validate_value(kst, fs.keys, k, kk, true)
      if #kst.errs > 0 then add_error(st, kk, "invalid key: " .. kst.errs[1].message) end
    end
    if #st.errs == before then
      out[k] = validate_value(st, fs.values, v[k], kk, true)
    end
  end
  return out
end

local function validate_record(st, fs, v, keys)
  if type(v) ~= "table" or not all_string_keys(v) then
    add_error(st, keys, "expected a record (a map), got "
              .. (type(v) == "table" and "an array" or describe(v)))
    return nil
  end
  local out = {}
  for _, f in ipairs(fs.fields) do
    out[f.name] = validate_value(st, f.schema, v[f.name], push(keys, f.name), false)
  end
  for _, k in ipairs(sorted_keys(v)) do
    if not fs.field_set[k] then add_error(st, push(keys, k), "unknown field") end
  end
  return out
end

-- Returns the checked copy of v (nil when v is absent or has errors).
-- in_container: v is an array item or a map value, where null is an error.
validate_value = function(st, fs, v, keys, in_container)
  if v == nil or (v == null and not in_container) then
    if fs.default ~= nil then return deep_copy(fs.default) end
    if fs.required then
      add_error(st, keys, "required field missing")
      return nil
    end
    if fs.type == "record" and not fs.has_required then
      return validate_record(st, fs, {}, keys)
    end
    return nil
  end
  local before = #st.errs
  local out
  local t = fs.type
  if t == "array" then
    out = validate_array(st, fs, v, keys)
  elseif t == "map" then
    out = validate_map(st, fs, v, keys)
  elseif t == "record" then
    out = validate_record(st, fs, v, keys)
  elseif check_scalar(st, fs, v, keys) then
    out = v
  end
  if #st.errs == before and fs.custom_validator then
    local ok, res, msg = pcall(fs.custom_validator, out)
    if is_tripped() then rethrow() end      -- a budget kill is not a validation error
    if not ok then
      add_error(st, keys, "custom validator failed: " .. tostring(res))
    elseif not res then
      add_error(st, keys, msg and tostring(msg) or "invalid value")
    end
  end
  if #st.errs > before then return nil end
  return out
end

--- validate(compiled, value, root) -> the checked copy with defaults, or
--- nil and the list of errors. root names the value in paths ("config").
function M.validate(s, value, root)
  if type(s) ~= "table" or not s.compiled then
    error("schema.validate: bad argument #1 (a compiled schema expected)", 2)
  end
  local st = { errs = {}, root = root or "config" }
  local out = validate_value(st, s, value, {}, false)
  if #st.errs > 0 then return nil, st.errs end
  return out
end

---------------------------------------------------------------------------
-- Checking a schema.

local compile_field

local function cerr(where, msg)
  error({ schema_error = where .. ": " .. msg }, 0)
end

local function check_count(where, def, name)
  local v = def[name]
  if v ~= nil and (type(v) ~= "number" or not is_integer(v) or v < 0) then
    cerr(where, "'" .. name .. "' must be a non-negative integer")
  end
  return v
end

local function compile_record_fields(where, def, out)
  local fields = def.fields
  if fields == nil then fields = {} end
  if type(fields) ~= "table" or not is_sequence(fields) then
    cerr(where, "'fields' must be a list of { name = schema } tables")
  end
  out.fields, out.field_set = {}, {}
  out.has_required = false
  for i, entry in ipairs(fields) do
    if type(entry) ~= "table" then
      cerr(where, "fields[" .. i .. "] must be a { name = schema } table")
    end
    local name, fdef = next(entry)
    if type(name) ~= "string" or next(entry, name) ~= nil then
      cerr(where, "fields[" .. i .. "] must hold exactly one name = schema pair")
    end
    if out.field_set[name] then cerr(where, "field '" .. name .. "' is declared twice") end
    local fs = compile_field(where .. "." .. name, fdef)
    out.fields[i] = { name = name, schema = fs }
    out.field_set[name] = true
    if fs.required then out.has_required = true end
  end
end

-- The value constraints of def (len_min/len_max, between, match, one_of)
-- into out.
local function compile_constraints(where, def, out)
  out.len_min = check_count(where, def, "len_min")
  out.len_max = check_count(where, def, "len_max")
  if out.len_min and out.len_max and out.len_min > out.len_max then
    cerr(where, "'len_min' is greater than 'len_max'")
  end
  if def.between ~= nil then
    local b = def.between
    if type(b) ~= "table" or type(b[1]) ~= "number" or type(b[2]) ~= "number" or b[1] > b[2] then
      cerr(where, "'between' must be { min, max } with min <= max")
    end
    out.between = { b[1], b[2] }
  end
  if def.match ~= nil then
    if type(def.match) ~= "string" then cerr(where, "'match' must be a Lua pattern (a string)") end
    local ok, e = pcall(find, "", def.match)
    if not ok then cerr(where, "'match' is not a valid Lua pattern: " .. tostring(e)) end
    out.match = def.match
  end
  if def.one_of ~= nil then
    local o = def.one_of
    if type(o) ~= "table" or #o == 0 or not is_sequence(o) then
      cerr(where, "'one_of' must be a non-empty list")
    end
    out.one_of, out.one_of_set = {}, {}
    local want = out.type == "string" and "string" or "number"
    for i, v in ipairs(o) do
      if type(v) ~= want then
        cerr(where, "one_of[" .. i .. "] must be " .. article(want))
      end
      out.one_of[i] = v
      out.one_of_set[v] = true
    end
  end
end

compile_field = function(where, def, default_type)
  if type(def) ~= "table" then cerr(where, "a schema must be a table, got " .. describe(def)) end
  local t = def.type
  if t == nil then t = default_type end
  if t == nil then
    cerr(where, "missing 'type' (string, number, integer, boolean, array, map or record)")
  end
  if type(t) ~= "string" or not TYPES[t] then
    cerr(where, "unknown type " .. describe(t)
         .. " (string, number, integer, boolean, array, map or record)")
  end
  for _, k in ipairs(sorted_keys(def)) do
    if type(k) ~= "string" or not (COMMON[k] or ATTRS[t][k]) then
      cerr(where, "unknown attribute " .. describe(k) .. " for type " .. t)
    end
  end
  local out = { type = t, compiled = true, description = def.description }
  if def.required ~= nil and type(def.required) ~= "boolean" then
    cerr(where, "'required' must be a boolean")
  end
  out.required = def.required == true
  if def.custom_validator ~= nil and type(def.custom_validator) ~= "function" then
    cerr(where, "'custom_validator' must be a function")
  end
  out.custom_validator = def.custom_validator
  compile_constraints(where, def, out)
  if t == "array" then
    if def.elements == nil then cerr(where, "an array needs 'elements'") end
    out.elements = compile_field(where .. ".elements", def.elements)
  elseif t == "map" then
    if def.values == nil then cerr(where, "a map needs 'values'") end
    if def.keys ~= nil then
      out.keys = compile_field(where .. ".keys", def.keys, "string")
      if out.keys.type ~= "string" then cerr(where, "map keys must be of type string") end
    end
    out.values = compile_field(where .. ".values", def.values)
  elseif t == "record" then
    compile_record_fields(where, def, out)
  end
  if def.default ~= nil then
    if out.required then cerr(where, "a required field cannot have a default") end
    local st = { errs = {}, root = "default" }
    local v = validate_value(st, out, def.default, {}, false)
    if #st.errs > 0 then
      cerr(where, "bad default: " .. st.errs[1].path .. ": " .. st.errs[1].message)
    end
    out.default = v
  end
  return out
end

--- compile(def, where) -> a compiled schema, or nil and a message naming
--- the bad part ("schema.limits.per_second: unknown type \"int\"..."). A
--- nil def is an empty record; a top level without a type is a record.
function M.compile(def, where)
  where = where or "schema"
  if def == nil then def = { type = "record", fields = {} } end
  local ok, res = pcall(compile_field, where, def, "record")
  if ok then return res end
  if type(res) == "table" and res.schema_error then return nil, res.schema_error end
  error(res, 0)
end

return M
