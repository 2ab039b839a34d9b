-- plugins-lua/key-auth.lua: lets a request through only with one of the
-- configured API keys, in a header and/or a query argument. Anything else
-- is answered 401 by the proxy, with a JSON body saying why and a
-- WWW-Authenticate field (RFC 9110 §11.6.1), and never reaches the origin.
--
-- A request carrying more than one key (the header twice, the argument
-- twice, or both places) is refused: the proxy and the origin could
-- otherwise disagree about which one counts.
--
-- Priority 1250: after cors (preflights carry no credentials) and
-- maintenance, before basic-auth, rate limiting and transformations.

local sluice = require "sluice"

local request = sluice.request
local get_headers, clear_header = request.get_headers, request.clear_header
local get_raw_query, set_raw_query = request.get_raw_query, request.set_raw_query
local unescape = request.unescape
local exit = sluice.response.exit

local lower, find, sub = string.lower, string.find, string.sub
local concat = table.concat
local ipairs, type = ipairs, type

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local function check_header(name)
  if name == "" or find(name, TOKEN) then return true end
  return nil, "expected a header name, or \"\" to not read keys from a header"
end

local function check_arg(name)
  if find(name, "[&=#%s%c]") then
    return nil, "a query argument name cannot contain '&', '=', '#', spaces or control bytes"
  end
  return true
end

local function check_conf(conf)
  if conf.header == "" and conf.query_arg == "" then
    return nil, "header and query_arg are both \"\": there is nowhere to read a key from"
  end
  return true
end

local function check_realm(r)
  if find(r, "[\"\\%c]") then return nil, "a realm cannot contain '\"', '\\' or control bytes" end
  return true
end

-- What init derives from the configuration.
local keys = {}         -- key -> true
local header_lc         -- lower-case header name, nil when keys are not read from a header
local challenge         -- the WWW-Authenticate value

local plugin = {
  name = "key-auth",
  version = "1.0.0",
  priority = 1250,
  schema = {
    type = "record",
    custom_validator = check_conf,
    fields = {
      { keys = { type = "array", required = true, len_min = 1,
                 elements = { type = "string", len_min = 1, custom_validator = function(k)
                   if find(k, "[%c]") then return nil, "a key cannot contain control bytes" end
                   return true
                 end } } },
      { header = { type = "string", default = "X-Api-Key", custom_validator = check_header,
                   description = "the header holding the key; \"\" for none" } },
      { query_arg = { type = "string", default = "", custom_validator = check_arg,
                      description = "the query argument holding the key; \"\" for none" } },
      { hide_credentials = { type = "boolean", default = false,
                             description = "remove the key from the request sent to the origin" } },
      { realm = { type = "string", default = "sluice", custom_validator = check_realm } },
    },
  },
}

function plugin.init(conf)
  for _, k in ipairs(conf.keys) do keys[k] = true end
  header_lc = conf.header ~= "" and lower(conf.header) or nil
  challenge = 'Key realm="' .. conf.realm .. '"'
end

local function deny(message)
  return exit(401, { message = message }, { ["WWW-Authenticate"] = challenge })
end

-- Scans the raw query for argument name. Returns the decoded values found
-- (a list) and the query without those arguments and without empty ones
-- ("a=1&&b" -> "a=1&b"); the other arguments are kept byte for byte.
local function scan_query(q, name)
  local found, kept = {}, {}
  local pos, len = 1, #q
  while pos <= len do
    local amp = find(q, "&", pos, true) or len + 1
    local part = sub(q, pos, amp - 1)
    local eq = find(part, "=", 1, true)
    local k = eq and sub(part, 1, eq - 1) or part
    if part ~= "" and (k == name or unescape(k) == name) then
      found[#found + 1] = eq and unescape(sub(part, eq + 1)) or ""
    elseif part ~= "" then
      kept[#kept + 1] = part
    end
    pos = amp + 1
  end
  return found, concat(kept, "&")
end

function plugin.request_headers(conf)
  local candidates, n = {}, 0
  if header_lc then
    local v = get_headers(1000)[header_lc]
    if type(v) == "table" then
      return deny("More than one API key in the request")
    elseif v and v ~= "" then
      n = n + 1
      candidates[n] = v
    end
  end
  local rest
  if conf.query_arg ~= "" then
    local q = get_raw_query()
    if q ~= "" then
      local found
      found, rest = scan_query(q, conf.query_arg)
      for _, v in ipairs(found) do
        if v ~= "" then
          n = n + 1
          candidates[n] = v
        end
      end
      if #found == 0 then rest = nil end
    end
  end
  if n == 0 then return deny("No API key found in the request") end
  if n > 1 then return deny("More than one API key in the request") end
  if not keys[candidates[1]] then return deny("Invalid API key") end
  if conf.hide_credentials then
    if header_lc then clear_header(conf.header) end
    if rest then set_raw_query(rest) end
  end
end

return plugin
