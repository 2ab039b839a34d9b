-- spec/unit/schema_spec.lua: sluice.schema, the declarative config schemas
-- of Lua plugins. Pure Lua: no proxy, no FFI.

if package.path:sub(1, 10) ~= "lua/?.lua;" then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local schema = require "sluice.schema"
local null = require("sluice.json").null

local function record(fields) return { type = "record", fields = fields } end

local function compile(def)
  local s, err = schema.compile(def)
  assert(s, err)
  return s
end

-- Errors as { [path] = message } for comparisons.
local function by_path(errs)
  local t = {}
  for _, e in ipairs(errs or {}) do t[e.path] = e.message end
  return t
end

describe("sluice.schema", function()
  describe("accepts valid values and fills in defaults", function()
    local cases = {
      { "a string", { { s = { type = "string" } } }, { s = "x" }, { s = "x" } },
      { "a default for an absent field", { { s = { type = "string", default = "d" } } }, {}, { s = "d" } },
      { "a default for a null field", { { s = { type = "string", default = "d" } } }, { s = null }, { s = "d" } },
      { "an integer written as a number", { { n = { type = "integer" } } }, { n = 3 }, { n = 3 } },
      { "an integer as a number", { { n = { type = "number" } } }, { n = 3 }, { n = 3 } },
      { "a boolean false", { { b = { type = "boolean", default = true } } }, { b = false }, { b = false } },
      { "a value inside between", { { n = { type = "integer", between = { 1, 10 } } } }, { n = 10 }, { n = 10 } },
      { "one_of", { { m = { type = "string", one_of = { "a", "b" } } } }, { m = "b" }, { m = "b" } },
      { "len bounds", { { s = { type = "string", len_min = 1, len_max = 2 } } }, { s = "ab" }, { s = "ab" } },
      { "match", { { s = { type = "string", match = "^%d+$" } } }, { s = "123" }, { s = "123" } },
      { "an array", { { a = { type = "array", elements = { type = "string" } } } },
        { a = { "x", "y" } }, { a = { "x", "y" } } },
      { "an empty array", { { a = { type = "array", elements = { type = "string" } } } },
        { a = {} }, { a = {} } },
      { "a map", { { m = { type = "map", values = { type = "integer" } } } },
        { m = { a = 1, b = 2 } }, { m = { a = 1, b = 2 } } },
      { "a nested record with defaults", {
          { r = record({ { x = { type = "integer", default = 5 } }, { y = { type = "string" } } }) } },
        { r = { y = "z" } }, { r = { x = 5, y = "z" } } },
      { "an absent optional record as its defaults", {
          { r = record({ { x = { type = "integer", default = 5 } } }) } },
        {}, { r = { x = 5 } } },
      { "records inside an array", {
          { a = { type = "array", elements = record({ { k = { type = "string", default = "v" } } }) } } },
        { a = { {}, { k = "w" } } }, { a = { { k = "v" }, { k = "w" } } } },
      { "a table default, copied", { { a = { type = "array", elements = { type = "string" },
                                              default = { "x" } } } }, {}, { a = { "x" } } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local value, errs = schema.validate(compile(record(c[2])), c[3])
        assert.is_nil(errs)
        assert.same(c[4], value)
      end)
    end
  end)

  describe("reports each problem with its path", function()
    local cases = {
      { "a missing required field", { { s = { type = "string", required = true } } }, {},
        { ["config.s"] = "required field missing" } },
      { "a required field that is null", { { s = { type = "string", required = true } } }, { s = null },
        { ["config.s"] = "required field missing" } },
      { "a wrong type", { { s = { type = "string" } } }, { s = 5 },
        { ["config.s"] = "expected a string, got 5" } },
      { "a fraction for an integer", { { n = { type = "integer" } } }, { n = 1.5 },
        { ["config.n"] = "expected an integer, got 1.5" } },
      { "nan for a number", { { n = { type = "number" } } }, { n = 0 / 0 },
        { ["config.n"] = "expected a number, got nan" } },
      { "a string for a boolean", { { b = { type = "boolean" } } }, { b = "yes" },
        { ["config.b"] = 'expected a boolean, got "yes"' } },
      { "outside between", { { n = { type = "integer", between = { 1, 10 } } } }, { n = 11 },
        { ["config.n"] = "value should be between 1 and 10, got 11" } },
      { "not one_of", { { m = { type = "string", one_of = { "a", "b" } } } }, { m = "c" },
        { ["config.m"] = 'expected one of: a, b; got "c"' } },
      { "too short", { { s = { type = "string", len_min = 2 } } }, { s = "a" },
        { ["config.s"] = "length must be at least 2" } },
      { "too long", { { s = { type = "string", len_max = 2 } } }, { s = "abc" },
        { ["config.s"] = "length must be at most 2" } },
      { "no match", { { s = { type = "string", match = "^%d+$" } } }, { s = "1a" },
        { ["config.s"] = [[invalid value "1a": must match the pattern '^%d+$']] } },
      { "an unknown field", { { s = { type = "string" } } }, { s = "x", t = 1 },
        { ["config.t"] = "unknown field" } },
      { "a bad array item, 0-based", { { a = { type = "array", elements = { type = "integer" } } } },
        { a = { 1, "x", 3 } }, { ["config.a[1]"] = 'expected an integer, got "x"' } },
      { "a null array item", { { a = { type = "array", elements = { type = "string" } } } },
        { a = { "x", null } }, { ["config.a[1]"] = "expected a string, got null" } },
      { "a map instead of an array", { { a = { type = "array", elements = { type = "string" } } } },
        { a = { k = "v" } }, { ["config.a"] = "expected an array, got a map" } },
      { "an array instead of a record", { { r = record({}) } }, { r = { 1 } },
        { ["config.r"] = "expected a record (a map), got an array" } },
      { "too few items", { { a = { type = "array", elements = { type = "string" }, len_min = 1 } } },
        { a = {} }, { ["config.a"] = "number of items must be at least 1" } },
      { "a bad map key", { { m = { type = "map", keys = { type = "string", match = "^x%-" },
                                    values = { type = "string" } } } },
        { m = { ["y-1"] = "v" } }, { ["config.m.y-1"] = [[invalid key: invalid value "y-1": must match the pattern '^x%-']] } },
      { "a map key its custom validator refuses", { { m = { type = "map",
          keys = { type = "string", custom_validator = function(k)
            if k:lower() ~= k then return nil, "must be lower case" end
            return true
          end },
          values = { type = "string" } } } },
        { m = { ok = "v", Bad = "w" } }, { ["config.m.Bad"] = "invalid key: must be lower case" } },
      { "a map key whose custom validator raises", { { m = { type = "map",
          keys = { type = "string", custom_validator = function() error("boom", 0) end },
          values = { type = "string" } } } },
        { m = { k = "v" } }, { ["config.m.k"] = "invalid key: custom validator failed: boom" } },
      { "a bad map value", { { m = { type = "map", values = { type = "integer" } } } },
        { m = { a = "1" } }, { ["config.m.a"] = 'expected an integer, got "1"' } },
      { "deep paths", { { r = record({ { a = { type = "array", elements = record({
          { b = { type = "boolean", required = true } } }) } } }) } },
        { r = { a = { { b = true }, {} } } }, { ["config.r.a[1].b"] = "required field missing" } },
      { "an optional record with required fields, when given",
        { { r = record({ { x = { type = "string", required = true } } }) } }, { r = {} },
        { ["config.r.x"] = "required field missing" } },
      { "a custom validator", { { n = { type = "integer",
          custom_validator = function(v) if v % 2 == 1 then return nil, "must be even" end return true end } } },
        { n = 3 }, { ["config.n"] = "must be even" } },
      { "several problems at once", { { a = { type = "string" } }, { b = { type = "integer" } } },
        { a = 1, b = "x", c = true },
        { ["config.a"] = "expected a string, got 1", ["config.b"] = 'expected an integer, got "x"',
          ["config.c"] = "unknown field" } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local value, errs = schema.validate(compile(record(c[2])), c[3])
        assert.is_nil(value)
        assert.same(c[4], by_path(errs))
      end)
    end

    it("keeps the keys of each error for finding its position", function()
      local s = compile(record({ { a = { type = "array", elements = { type = "integer" } } } }))
      local _, errs = schema.validate(s, { a = { 1, "x" } })
      assert.same({ "a", 2 }, errs[1].keys)
    end)

    it("names the root as asked", function()
      local s = compile(record({ { a = { type = "string", required = true } } }))
      local _, errs = schema.validate(s, {}, "conf")
      assert.equal("conf.a", errs[1].path)
    end)

    it("does not change its input", function()
      local s = compile(record({ { a = { type = "string", default = "d" } } }))
      local input = {}
      schema.validate(s, input)
      assert.is_nil(input.a)
    end)
  end)

  describe("refuses bad schemas", function()
    local cases = {
      { "an unknown type", { { a = { type = "strng" } } }, 'schema.a: unknown type "strng"' },
      { "a missing type", { { a = {} } }, "schema.a: missing 'type'" },
      { "a misspelt attribute", { { a = { type = "string", requried = true } } },
        'schema.a: unknown attribute "requried" for type string' },
      { "an attribute of another type", { { a = { type = "string", between = { 1, 2 } } } },
        'schema.a: unknown attribute "between" for type string' },
      { "a bad default", { { a = { type = "integer", default = "x" } } },
        'schema.a: bad default: default: expected an integer, got "x"' },
      { "a default on a required field", { { a = { type = "integer", required = true, default = 1 } } },
        "schema.a: a required field cannot have a default" },
      { "an array without elements", { { a = { type = "array" } } }, "schema.a: an array needs 'elements'" },
      { "a map without values", { { a = { type = "map" } } }, "schema.a: a map needs 'values'" },
      { "non-string map keys", { { a = { type = "map", keys = { type = "integer" }, values = { type = "string" } } } },
        "schema.a: map keys must be of type string" },
      { "a bad pattern", { { a = { type = "string", match = "[a" } } }, "schema.a: 'match' is not a valid Lua pattern" },
      { "between the wrong way round", { { a = { type = "number", between = { 2, 1 } } } },
        "schema.a: 'between' must be { min, max } with min <= max" },
      { "one_of of the wrong type", { { a = { type = "string", one_of = { 1 } } } },
        "schema.a: one_of[1] must be a string" },
      { "len_min over len_max", { { a = { type = "string", len_min = 3, len_max = 2 } } },
        "schema.a: 'len_min' is greater than 'len_max'" },
      { "a field declared twice", { { a = { type = "string" } }, { a = { type = "string" } } },
        "schema: field 'a' is declared twice" },
      { "a fields entry with two names", { { a = { type = "string" }, b = { type = "string" } } },
        "schema: fields[1] must hold exactly one name = schema pair" },
      { "nested problems with their path", { { r = record({ { x = { type = "array", elements = { type = "nope" } } } }) } },
        'schema.r.x.elements: unknown type "nope"' },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local s, err = schema.compile(record(c[2]))
        assert.is_nil(s)
        assert.is_truthy(err:find(c[3], 1, true), "got: " .. tostring(err))
      end)
    end

    it("takes a missing schema as an empty record", function()
      local s = compile(nil)
      assert.same({}, schema.validate(s, {}))
      local _, errs = schema.validate(s, { x = 1 })
      assert.same({ ["config.x"] = "unknown field" }, by_path(errs))
    end)

    it("takes a top level without a type as a record", function()
      local s = compile({ fields = { { a = { type = "string", default = "v" } } } })
      assert.same({ a = "v" }, schema.validate(s, {}))
    end)
  end)
end)
