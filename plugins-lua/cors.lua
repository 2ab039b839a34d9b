-- plugins-lua/cors.lua: Cross-Origin Resource Sharing (Fetch standard,
-- "CORS protocol").
--
-- A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
-- answered by the proxy with 204 and never reaches the origin, unless
-- preflight_continue is set. Any other request goes to the origin as is;
-- when its Origin is allowed, the response gets Access-Control-Allow-Origin
-- and the related fields. Local replies of other plugins (a 401 from
-- key-auth, a 503 from maintenance) get them too, so a page can read them.
--
-- When the answer depends on the Origin (any list but a plain "*"), every
-- response carries Vary: Origin, also those to requests without an Origin,
-- so a cache never serves one origin's answer to another.
--
-- Priority 2000: before authentication, since browsers send preflights
-- without credentials.

local sluice = require "sluice"

local request, response = sluice.request, sluice.response
local get_header, get_method = request.get_header, request.get_method
local resp_get, resp_set, resp_add = response.get_header, response.set_header, response.add_header
local exit = response.exit

local lower, find, gsub = string.lower, string.find, string.gsub
local concat = table.concat
local ipairs, tostring = ipairs, tostring

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function check_origin(o)
  if o == "*" or o == "null" then return true end
  if find(o, "^%a[%w+.-]*://[^/?#%s]+$") then return true end
  return nil, "expected \"*\", \"null\" or scheme://host[:port] without a path "
              .. "(an Origin header never has one)"
end

local DEFAULT_METHODS = { "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS" }

-- What init derives from the configuration.
local any_origin        -- "*" is in origins
local allowed = {}      -- lower-case origin -> true
local vary              -- responses depend on Origin
local methods_value, headers_value, exposed_value, max_age_value

local plugin = {
  name = "cors",
  version = "1.0.0",
  priority = 2000,
  schema = {
    type = "record",
    fields = {
      { origins = { type = "array", len_min = 1, default = { "*" },
                    elements = { type = "string", custom_validator = check_origin } } },
      { methods = { type = "array", len_min = 1, default = DEFAULT_METHODS,
                    elements = { type = "string", match = TOKEN } } },
      { headers = { type = "array", elements = { type = "string", match = TOKEN },
                    description = "allowed request headers; absent: those the preflight asks for" } },
      { exposed_headers = { type = "array", default = {},
                            elements = { type = "string", match = TOKEN } } },
      { credentials = { type = "boolean", default = false } },
      { max_age = { type = "integer", between = { 0, 86400 } } },
      { preflight_continue = { type = "boolean", default = false } },
    },
  },
}

local function join(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  return concat(t, ", ")
end

function plugin.init(conf)
  any_origin = false
  for _, o in ipairs(conf.origins) do
    if o == "*" then any_origin = true end
    allowed[lower(o)] = true
  end
  -- "*" cannot go with credentials (the browser refuses it), so the
  -- request's Origin is sent back instead, which depends on the Origin.
  vary = not any_origin or conf.credentials
  methods_value = join(conf.methods)
  headers_value = conf.headers and join(conf.headers) or nil
  exposed_value = #conf.exposed_headers > 0 and join(conf.exposed_headers) or nil
  max_age_value = conf.max_age and tostring(conf.max_age) or nil
end

-- The Access-Control-Allow-Origin value for origin, or nil when it is not
-- allowed.
local function allow_origin(conf, origin)
  if any_origin then
    if conf.credentials then return origin end
    return "*"
  end
  if allowed[lower(origin)] then return origin end
  return nil
end

-- Adds token to the response's Vary unless it is listed there already, in
-- any of its Vary fields (an origin may send several).
local function add_vary(token)
  local item = "," .. lower(token) .. ","
  local i = 1
  local v = resp_get("Vary", 1)
  while v do
    local lv = lower(v)
    if find(lv, "*", 1, true) then return end
    -- a whole list item, not a part of one
    if find("," .. gsub(lv, "%s", "") .. ",", item, 1, true) then return end
    i = i + 1
    v = resp_get("Vary", i)
  end
  resp_add("Vary", token)
end

function plugin.request_headers(conf, ctx)
  local origin = get_header("Origin")
  if not origin then return end
  local allow = allow_origin(conf, origin)
  ctx.allow = allow
  if get_method() ~= "OPTIONS" or not get_header("Access-Control-Request-Method") then
    return
  end
  if conf.preflight_continue then return end

  -- A preflight: answered here.
  ctx.answered = true
  local h = {}
  local vary_list = {}
  if vary then vary_list[1] = "Origin" end
  if not allow then
    if vary then h["Vary"] = "Origin" end
    return exit(403, { message = "CORS: origin not allowed" }, h)
  end
  h["Access-Control-Allow-Origin"] = allow
  h["Access-Control-Allow-Methods"] = methods_value
  local req_headers = headers_value
  if not req_headers then
    -- No list configured: allow what the browser asks for.
    req_headers = get_header("Access-Control-Request-Headers")
    if req_headers then vary_list[#vary_list + 1] = "Access-Control-Request-Headers" end
  end
  if req_headers then h["Access-Control-Allow-Headers"] = req_headers end
  if conf.credentials then h["Access-Control-Allow-Credentials"] = "true" end
  if max_age_value then h["Access-Control-Max-Age"] = max_age_value end
  if #vary_list > 0 then h["Vary"] = concat(vary_list, ", ") end
  return exit(204, nil, h)
end

function plugin.response_headers(conf, ctx)
  if ctx.answered then return end   -- our own preflight reply: complete already
  if vary then add_vary("Origin") end
  local allow = ctx.allow
  if not allow then return end
  resp_set("Access-Control-Allow-Origin", allow)
  if conf.credentials then resp_set("Access-Control-Allow-Credentials", "true") end
  if exposed_value then resp_set("Access-Control-Expose-Headers", exposed_value) end
end

return plugin
