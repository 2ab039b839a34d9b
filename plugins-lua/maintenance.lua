-- plugins-lua/maintenance.lua: answers every request with a maintenance
-- page (503 by default) generated from a template, except for clients on
-- an allow-list, whose requests go to the origin as usual.
--
-- The page is rendered once, when the plugin loads: ${status},
-- ${retry_after} and ${message} in the template are replaced, the message
-- escaped for the content type (HTML/XML entities for an HTML or XML type,
-- JSON string escapes for a JSON type, as is otherwise). Responses carry
-- Cache-Control: no-store, so no cache keeps the page after maintenance.
-- Turn maintenance on and off with the entry's `enabled` and a reload.
--
-- Priority 1500: after cors (a preflight still gets its answer, and the
-- page gets CORS fields so a script can read it), before authentication
-- (there is nothing to authenticate for).

local sluice = require "sluice"

local get_client_ip = sluice.request.get_client_ip
local exit = sluice.response.exit

local find, match, gsub, format, lower, sub = string.find, string.match, string.gsub,
  string.format, string.lower, string.sub
local floor = math.floor
local ipairs, tonumber, tostring = ipairs, tonumber, tostring

---------------------------------------------------------------------------
-- Addresses and networks. parse(s) -> { v4 = n } | { v6 = { 8 hextets } }

local function parse_v4(s)
  local a, b, c, d = match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function parse_v6(s)
  if not find(s, ":", 1, true) or find(s, "[^%x:%.]") then return nil end
  local tail4
  local last = match(s, "([^:]*)$")
  if find(last, ".", 1, true) then
    tail4 = parse_v4(last)
    if not tail4 then return nil end
    s = sub(s, 1, #s - #last) .. "0:0"
  end
  local head, rest = s, nil
  local dc = find(s, "::", 1, true)
  if dc then
    head, rest = sub(s, 1, dc - 1), sub(s, dc + 2)
    if find(rest, "::", 1, true) then return nil end
  end
  local function groups(part)
    local g = {}
    if part == "" then return g end
    for x in (part .. ":"):gmatch("([^:]*):") do
      if #x < 1 or #x > 4 then return nil end
      g[#g + 1] = tonumber(x, 16)
    end
    return g
  end
  local hg, rg = groups(head), dc and groups(rest) or {}
  if not hg or not rg then return nil end
  local n = #hg + #rg
  if (dc and n > 7) or (not dc and n ~= 8) then return nil end
  local out = {}
  for i = 1, #hg do out[i] = hg[i] end
  for i = #hg + 1, 8 - #rg do out[i] = 0 end
  for i = 1, #rg do out[8 - #rg + i] = rg[i] end
  if tail4 then
    out[7], out[8] = floor(tail4 / 65536), tail4 % 65536
  end
  return out
end

local function parse(s)
  local v4 = parse_v4(s)
  if v4 then return { v4 = v4 } end
  local v6 = parse_v6(s)
  if not v6 then return nil end
  -- An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
  if v6[1] == 0 and v6[2] == 0 and v6[3] == 0 and v6[4] == 0 and v6[5] == 0
     and v6[6] == 0xffff then
    return { v4 = v6[7] * 65536 + v6[8] }
  end
  return { v6 = v6 }
end

-- A rule: an address and a prefix length.
local function parse_rule(s)
  local addr, bits = match(s, "^([^/]+)/(%d+)$")
  if not addr then addr = s end
  local a = parse(addr)
  if not a then return nil end
  local max = a.v4 and 32 or 128
  bits = bits and tonumber(bits) or max
  if bits > max then return nil end
  a.bits = bits
  return a
end

local function rule_matches(r, a)
  if r.v4 then
    if not a.v4 then return false end
    local d = 2 ^ (32 - r.bits)
    return floor(r.v4 / d) == floor(a.v4 / d)
  end
  if not a.v6 then return false end
  local left = r.bits
  for i = 1, 8 do
    if left <= 0 then return true end
    local take = left < 16 and left or 16
    local d = 2 ^ (16 - take)
    if floor(r.v6[i] / d) ~= floor(a.v6[i] / d) then return false end
    left = left - take
  end
  return true
end

---------------------------------------------------------------------------
-- The page.

local PLACEHOLDERS = { status = true, retry_after = true, message = true }

local function check_template(t)
  local pos = 1
  while true do
    local s = find(t, "${", pos, true)
    if not s then return true end
    local name = match(t, "^%${([%w_]*)}", s)
    if not name or not PLACEHOLDERS[name] then
      return nil, "unknown placeholder at byte " .. s .. " (" .. sub(t, s, s + 20)
                  .. "): use ${status}, ${retry_after} or ${message}"
    end
    pos = s + 2
  end
end

local function check_no_crlf(v)
  if find(v, "[%z\r\n]") then return nil, "cannot contain CR, LF or NUL" end
  return true
end

local function check_rule(s)
  if parse_rule(s) then return true end
  return nil, "expected an IP address or a network (192.0.2.7, 192.0.2.0/24, 2001:db8::/32)"
end

local HTML = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

local function json_char(c)
  if c == '"' then return '\\"' end
  if c == "\\" then return "\\\\" end
  return format("\\u%04x", c:byte())
end

local function escape(s, content_type)
  local ct = lower(content_type)
  if find(ct, "html", 1, true) or find(ct, "xml", 1, true) then
    return (gsub(s, "[&<>\"']", HTML))
  elseif find(ct, "json", 1, true) then
    return (gsub(s, "[%c\"\\]", json_char))
  end
  return s
end

local DEFAULT_TEMPLATE = [[
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Down for maintenance</title></head>
<body>
<h1>Down for maintenance</h1>
<p>${message}</p>
</body>
</html>
]]

-- What init derives from the configuration.
local rules = {}
local body, headers

local plugin = {
  name = "maintenance",
  version = "1.0.0",
  priority = 1500,
  schema = {
    type = "record",
    fields = {
      { status = { type = "integer", between = { 200, 599 }, default = 503 } },
      { message = { type = "string",
                    default = "The service is down for maintenance. Please try again later." } },
      { retry_after = { type = "integer", between = { 0, 31536000 },
                        description = "seconds, sent as Retry-After; absent: no Retry-After" } },
      { content_type = { type = "string", default = "text/html; charset=utf-8", len_min = 1,
                         custom_validator = check_no_crlf } },
      { template = { type = "string", default = DEFAULT_TEMPLATE,
                     custom_validator = check_template } },
      { allow = { type = "array", default = {},
                  elements = { type = "string", custom_validator = check_rule },
                  description = "clients whose requests go through" } },
    },
  },
}

function plugin.init(conf)
  for i, s in ipairs(conf.allow) do rules[i] = parse_rule(s) end
  local values = {
    status = tostring(conf.status),
    retry_after = conf.retry_after and tostring(conf.retry_after) or "",
    message = escape(conf.message, conf.content_type),
  }
  body = gsub(conf.template, "%${([%w_]*)}", values)
  headers = { ["Content-Type"] = conf.content_type, ["Cache-Control"] = "no-store" }
  if conf.retry_after then headers["Retry-After"] = tostring(conf.retry_after) end
end

function plugin.request_headers(conf)
  if #rules > 0 then
    local a = parse(get_client_ip())
    if a then
      for i = 1, #rules do
        if rule_matches(rules[i], a) then return end
      end
    end
  end
  return exit(conf.status, body, headers)
end

return plugin
