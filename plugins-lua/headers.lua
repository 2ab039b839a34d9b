-- plugins-lua/headers.lua: adds, sets, removes and renames header fields
-- on the request sent to the origin and on the response sent to the client.
--
-- On each side the operations run in this order: remove, rename, set, add.
-- Within one operation, fields go in name order, so the result does not
-- depend on how the YAML mapping happened to be written. rename replaces
-- fields of the new name; set replaces every field of its name; add
-- appends one.
--
-- Priority 800: after authentication (a credential cannot be added by
-- this plugin to get past key-auth or basic-auth) and after the plugins
-- that add response fields (request-id, cors), so its response changes
-- have the last word.

local sluice = require "sluice"

local request, response = sluice.request, sluice.response

local lower, find = string.lower, string.find
local sort = table.sort
local pairs, ipairs = pairs, ipairs

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

-- Fields the proxy writes itself: on the way out it drops or rewrites
-- them, so a change here would be silently lost (or, for framing fields,
-- would be dangerous). Refused when the plugin loads.
local OWNED = {
  host = true, ["content-length"] = true, ["transfer-encoding"] = true,
  connection = true, ["keep-alive"] = true, te = true, trailer = true,
  upgrade = true, ["proxy-connection"] = true, expect = true,
}

local function check_name(name)
  if OWNED[lower(name)] then
    return nil, "'" .. name .. "' is managed by the proxy and cannot be changed by a plugin"
  end
  return true
end

local NAME = { type = "string", match = TOKEN, custom_validator = check_name }

-- schema.lua checks a map's keys with `match` but does not run a keys
-- schema's custom_validator: the map checks its own keys.
local KEY = { type = "string", match = TOKEN }

local function check_keys(map)
  for name in pairs(map) do
    local ok, err = check_name(name)
    if not ok then return nil, err end
  end
  return true
end

local function check_value(v)
  if find(v, "[%z\r\n]") then return nil, "a header value cannot contain CR, LF or NUL" end
  return true
end

local VALUE = { type = "string", custom_validator = check_value }

local function side_schema(what)
  return {
    type = "record",
    description = "changes to the " .. what,
    fields = {
      { remove = { type = "array", elements = NAME, default = {} } },
      { rename = { type = "map", keys = KEY, values = NAME, default = {},
                   custom_validator = check_keys } },
      { set = { type = "map", keys = KEY, values = VALUE, default = {},
                custom_validator = check_keys } },
      { add = { type = "map", keys = KEY, values = VALUE, default = {},
                custom_validator = check_keys } },
    },
  }
end

-- Per side, the operations as sorted lists, built once at load.
local plans = {}

local function sorted_pairs(map)
  local list = {}
  for k, v in pairs(map) do list[#list + 1] = { k, v } end
  sort(list, function(a, b) return lower(a[1]) < lower(b[1]) end)
  return list
end

local function plan(side)
  local p = {
    remove = {},
    rename = sorted_pairs(side.rename),
    set = sorted_pairs(side.set),
    add = sorted_pairs(side.add),
  }
  for i, name in ipairs(side.remove) do p.remove[i] = name end
  p.empty = #p.remove == 0 and #p.rename == 0 and #p.set == 0 and #p.add == 0
  return p
end

-- Applies plan p through api (sluice.request or sluice.response).
local function apply(p, api)
  local clear, set, add = api.clear_header, api.set_header, api.add_header
  for _, name in ipairs(p.remove) do clear(name) end
  if #p.rename > 0 then
    -- Renames happen at once, from one snapshot: {a: b, b: c} moves a to b
    -- and the old b to c. Every field of a name moves, in order
    -- (get_header would give only the first one).
    local all = api.get_headers(1000)
    local moved, n = {}, 0
    for _, r in ipairs(p.rename) do
      local values = all[lower(r[1])]
      if values ~= nil then
        clear(r[1])
        n = n + 1
        moved[n] = { r[2], values }   -- values: a string or an array of them
      end
    end
    local filled = {}
    for i = 1, n do
      local name, values = moved[i][1], moved[i][2]
      if filled[lower(name)] then
        add(name, values)             -- two old names renamed to one new name
      else
        set(name, values)
        filled[lower(name)] = true
      end
    end
  end
  for _, f in ipairs(p.set) do set(f[1], f[2]) end
  for _, f in ipairs(p.add) do add(f[1], f[2]) end
end

local plugin = {
  name = "headers",
  version = "1.0.0",
  priority = 800,
  schema = {
    type = "record",
    fields = {
      { request = side_schema("request sent to the origin") },
      { response = side_schema("response sent to the client") },
    },
  },
}

function plugin.init(conf)
  plans.request = plan(conf.request)
  plans.response = plan(conf.response)
end

function plugin.request_headers()
  local p = plans.request
  if not p.empty then apply(p, request) end
end

function plugin.response_headers()
  local p = plans.response
  if not p.empty then apply(p, response) end
end

return plugin
