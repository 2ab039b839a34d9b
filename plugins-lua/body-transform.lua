-- plugins-lua/body-transform.lua: removes, renames and adds fields of JSON
-- bodies, on the request sent to the origin and on the response sent to
-- the client.
--
-- Only bodies whose Content-Type is JSON (application/json, or any
-- application/...+json, parameters allowed) and whose text is a JSON
-- object are changed; the top-level fields are. Anything else goes through
-- untouched: an empty body, another content type, a JSON array or scalar,
-- and invalid JSON, which is logged at debug level rather than refused.
-- A proxy that rewrites bodies should not also become their validator:
-- the origin answers invalid JSON as it always does, and the client sees
-- the origin's response as it is.
--
-- On each side the operations run in this order: remove, rename, add.
-- Renames happen at once ({a: b, b: a} swaps) and replace a field of the
-- new name; add sets the field, replacing any value the body had (so a
-- client cannot supply its own). An add value is JSON text when it parses
-- as JSON ('2', 'true', '["a"]', '"2"' for the string "2"), and a plain
-- string otherwise ('sluice').
--
-- A body is re-encoded only when an operation applied. Re-encoding does
-- not keep the order of the object's keys or its whitespace, and numbers
-- are doubles (integers beyond 2^53 lose precision), as with any Lua JSON.
--
-- The plugin buffers only the bodies of the sides it has operations for:
-- its body declaration depends on its configuration.
--
-- Priority 801 (Kong's request-transformer): after authentication.

local sluice = require "sluice"

local request, response, json, log = sluice.request, sluice.response, sluice.json, sluice.log

local lower, match, find = string.lower, string.match, string.find
local sort = table.sort
local pairs, ipairs, next, type, getmetatable = pairs, ipairs, next, type, getmetatable

local FIELD = { type = "string", len_min = 1 }

local function side_schema(what)
  return {
    type = "record",
    description = "changes to the JSON body of the " .. what,
    fields = {
      { remove = { type = "array", elements = FIELD, default = {} } },
      { rename = { type = "map", keys = FIELD, values = FIELD, default = {} } },
      { add = { type = "map", keys = FIELD, values = { type = "string" }, default = {} } },
    },
  }
end

-- Per side, the operations as sorted lists, built once at load.
local plans = {}

local function sorted_pairs(map)
  local list = {}
  for k, v in pairs(map) do list[#list + 1] = { k, v } end
  sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function plan(side)
  local p = { remove = {}, rename = sorted_pairs(side.rename), add = sorted_pairs(side.add) }
  for i, name in ipairs(side.remove) do p.remove[i] = name end
  for _, a in ipairs(p.add) do
    local v = json.decode(a[2])
    if v ~= nil then a[2] = v end
  end
  p.empty = #p.remove == 0 and #p.rename == 0 and #p.add == 0
  return p
end

local function has_ops(side)
  return #side.remove > 0 or next(side.rename) ~= nil or next(side.add) ~= nil
end

-- application/json and the +json types (RFC 6839), any parameters.
local function is_json(content_type)
  if content_type == nil then return false end
  local mt = match(lower(content_type), "^%s*([^;%s]+)")
  return mt == "application/json" or (mt ~= nil and find(mt, "^application/[^/]+%+json$") ~= nil)
end

-- Applies plan p to the object doc; returns whether anything changed.
local function apply(doc, p)
  local changed = false
  for _, name in ipairs(p.remove) do
    if doc[name] ~= nil then
      doc[name] = nil
      changed = true
    end
  end
  if #p.rename > 0 then
    local moved, n = {}, 0
    for _, r in ipairs(p.rename) do
      local v = doc[r[1]]
      if v ~= nil then
        doc[r[1]] = nil
        n = n + 1
        moved[n] = { r[2], v }
      end
    end
    for i = 1, n do doc[moved[i][1]] = moved[i][2] end
    changed = changed or n > 0
  end
  for _, a in ipairs(p.add) do
    doc[a[1]] = a[2]
    changed = true
  end
  return changed
end

-- Transforms the body of one side through api (sluice.request or
-- sluice.response).
local function transform(p, api, what)
  if not is_json(api.get_header("content-type")) then return end
  local body = api.get_body()
  if body == nil or body == "" then return end
  local doc, err = json.decode(body)
  if doc == nil then
    log.debug("the ", what, " body is not valid JSON, left as it is: ", err)
    return
  end
  -- Decoded arrays carry json.array's mark; objects have no metatable.
  if type(doc) ~= "table" or getmetatable(doc) ~= nil then
    log.debug("the ", what, " body is not a JSON object, left as it is")
    return
  end
  if not apply(doc, p) then return end
  local text
  text, err = json.encode(doc)
  if text == nil then
    log.err("cannot encode the transformed ", what, " body, left as it is: ", err)
    return
  end
  api.set_body(text)
end

local plugin = {
  name = "body-transform",
  version = "1.0.0",
  priority = 801,
  schema = {
    type = "record",
    fields = {
      { request = side_schema("request sent to the origin") },
      { response = side_schema("response sent to the client") },
    },
  },
}

-- Only the sides with operations are buffered.
function plugin.body(conf)
  return { request = has_ops(conf.request), response = has_ops(conf.response) }
end

function plugin.init(conf)
  plans.request = plan(conf.request)
  plans.response = plan(conf.response)
end

function plugin.request_body()
  local p = plans.request
  if not p.empty then transform(p, request, "request") end
end

function plugin.response_body()
  local p = plans.response
  if not p.empty then transform(p, response, "response") end
end

return plugin
