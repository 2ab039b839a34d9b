-- The access log's fields (docs/CONFIG.md, "log"): request id, route,
-- upstream backend and name, upstream times and the fields plugins set
-- with sluice.log.set_field, in both formats; and JSON lines that stay
-- one valid JSON object of valid UTF-8 per line whatever bytes a plugin
-- copies from the request into a field.
--
-- Run: busted --lua=luajit spec/e2e/accesslog_spec.lua
local h = require "spec.helpers"
local json = require "dkjson"

-- Copies a request header into a field, as a plugin logging a user agent
-- or a user name would; sets, replaces and removes others.
local FIELDER = [[
local sluice = require "sluice"
return {
  name = "fielder", version = "1.0", priority = 10,
  request_headers = function()
    sluice.log.set_field("early", "set in request_headers")
    sluice.log.set_field("gone", "removed later")
  end,
  log = function()
    sluice.log.set_field("user", sluice.request.get_header("X-User") or "")
    sluice.log.set_field("n", 42)
    sluice.log.set_field("early", "replaced in log")
    sluice.log.set_field("gone", nil)
  end,
}
]]

-- Bytes a header value may carry (obs-text included) that a naive logger
-- would write raw: quote, backslash, tab, lone 0x80, 0xff, and a valid é.
local HOSTILE = 'q"\\\tx\128y\255z\195\169'
-- What a JSON decoder must read back: each invalid byte is U+FFFD.
local HOSTILE_DECODED = 'q"\\\tx\239\191\189y\239\191\189z\195\169'

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- True when s is well-formed UTF-8 (RFC 3629).
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len, min = 1, 0
    if c >= 0xf0 and c <= 0xf4 then len, min = 4, 0x10000
    elseif c >= 0xe0 then len, min = 3, 0x800
    elseif c >= 0xc2 and c < 0xe0 then len, min = 2, 0x80
    elseif c >= 0x80 then return false end
    if len > 1 then
      if i + len - 1 > n then return false end
      local cp = c % (2 ^ (7 - len))
      for k = 1, len - 1 do
        local b = s:byte(i + k)
        if b < 0x80 or b > 0xbf then return false end
        cp = cp * 64 + (b - 0x80)
      end
      if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then return false end
    end
    i = i + len
  end
  return true
end

local function lines_of(path)
  local lines = {}
  for line in (h.read_file(path) or ""):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

describe("the access log", function()
  local origin, dir, dead_port

  lazy_setup(function()
    origin = h.start_origin { name = "al" }
    dead_port = h.free_port()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.quote(dir)))
    write(dir .. "/fielder.lua", FIELDER)
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
    os.remove(dir .. "/fielder.lua")
    os.remove(dir)
  end)

  -- Starts a proxy logging in format, sends the requests, returns the log
  -- lines (one per request, waited for).
  local function run(format, requests)
    local port = h.free_port()
    local log = h.write_tmp("")
    local p = h.start_proxy { config = table.concat({
      "workers: 1",
      "listen: [127.0.0.1:" .. port .. "]",
      "upstreams:",
      "  app: {backends: [127.0.0.1:" .. origin.port .. "]}",
      "  dead: {backends: [127.0.0.1:" .. dead_port .. "], fail_cooldown: 0}",
      "routes:",
      "  - {path: /app, upstream: app}",
      "  - {host: api.example.com, path: '/q\"uote', upstream: app}",
      "  - {path: /dead, upstream: dead}",
      "plugin_paths: [" .. dir .. "]",
      "plugins: [fielder]",
      "log: {access_log: " .. log .. ", access_log_format: " .. format .. "}",
    }, "\n") .. "\n" }
    for _, r in ipairs(requests) do
      local resp = assert(h.request(port, h.build_request("GET", r.target, r.headers)))
      assert.equals(r.status, resp.status, r.target)
    end
    local lines = h.wait_until(function()
      local l = lines_of(log)
      return #l >= #requests and l
    end, 3)
    p:stop()
    assert.is_truthy(lines, "access log: " .. (h.read_file(log) or ""))
    assert.equals(#requests, #lines)
    return lines
  end

  local requests = {
    { target = "/app/name", status = 200, headers = { { "X-User", HOSTILE } } },
    { target = "/nowhere", status = 404 },
    { target = "/dead/x", status = 502 },
    { target = '/q"uote/x', status = 200, headers = { { "Host", "api.example.com" } } },
  }

  it("writes JSON lines of valid UTF-8 with route, upstream, times and plugin fields", function()
    local lines = run("json", requests)
    local recs = {}
    for i, line in ipairs(lines) do
      assert.is_true(is_utf8(line), "line " .. i .. " is not UTF-8: " .. line)
      assert.is_nil(line:find("[%z\1-\31\127]"), "a raw control byte in line " .. i)
      local obj, _, err = json.decode(line)
      assert(type(obj) == "table", "line " .. i .. " is not a JSON object (" .. tostring(err) .. "): " .. line)
      recs[i] = obj
    end
    local ok = recs[1]
    assert.matches("^%x+$", ok.request_id)
    assert.equals(16, #ok.request_id)
    assert.equals("/app", ok.route)
    assert.equals("app", ok.upstream_name)
    assert.equals("127.0.0.1:" .. origin.port, ok.upstream)
    assert.is_number(ok.upstream_time_ms)
    assert.is_number(ok.upstream_header_time_ms)
    assert.is_true(ok.upstream_header_time_ms <= ok.upstream_time_ms)
    assert.is_true(ok.upstream_time_ms <= ok.duration_ms)
    assert.same({ early = "replaced in log", user = HOSTILE_DECODED, n = "42" }, ok.fields)
    -- fields keep the order they were first set in
    assert.truthy(lines[1]:find('"fields":{"early":.*"user":.*"n":"42"}'), lines[1])

    local nf = recs[2]
    assert.equals(404, nf.status)
    assert.truthy(lines[2]:find('"upstream":null,"route":null,"upstream_name":null,'
                                .. '"upstream_time_ms":null,"upstream_header_time_ms":null', 1, true),
                  lines[2])
    -- no request_headers phase for a request no route takes
    assert.same({ user = "", n = "42", early = "replaced in log" }, nf.fields)

    local dead = recs[3]
    assert.equals(502, dead.status)
    assert.equals("/dead", dead.route)
    assert.equals("dead", dead.upstream_name)
    assert.equals("127.0.0.1:" .. dead_port, dead.upstream)
    -- the attempt took its time, but no response byte ever came
    assert.is_number(dead.upstream_time_ms)
    assert.truthy(lines[3]:find('"upstream_header_time_ms":null', 1, true), lines[3])

    assert.equals('api.example.com/q"uote', recs[4].route)
    assert.equals('/q"uote/x', recs[4].target)
    assert.truthy(lines[4]:find([["route":"api.example.com/q\"uote"]], 1, true), lines[4])
  end)

  it("writes text lines with the same fields as key=value pairs, escaped", function()
    local lines = run("text", requests)
    assert.matches(' rid=%x+ upstream=127%.0%.0%.1:%d+ rt=[%d.]+ route=/app upstream_name=app '
                   .. 'ut=[%d.]+ uht=[%d.]+ early="replaced in log" user=".*" n="42"$', lines[1])
    -- quote and backslash escaped, the tab as \x09; no raw control byte
    assert.truthy(lines[1]:find([[user="q\"\\\x09x]], 1, true), lines[1])
    for i, line in ipairs(lines) do
      assert.is_nil(line:find("[%z\1-\31\127]"), "a raw control byte in line " .. i)
    end
    assert.matches(' upstream=%- rt=[%d.]+ route=%- upstream_name=%- ut=%- uht=%- '
                   .. 'user="" n="42" early="replaced in log"$', lines[2])
    assert.matches(' route=/dead upstream_name=dead ut=[%d.]+ uht=%- ', lines[3])
    assert.truthy(lines[4]:find([[route=api.example.com/q\"uote ]], 1, true), lines[4])
  end)
end)
