-- Configuration checking end to end: `sluice -t -c FILE` on configs written
-- by each case, checking the exit code and the exact error lines
-- ("file:line:col: message", in file order) that docs/CONFIG.md promises.
--
-- Run: busted --lua=luajit spec/e2e/config_spec.lua
-- The binary is SLUICE_BIN, or build/sluice.

local BIN = os.getenv("SLUICE_BIN") or "build/sluice"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write_file(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

-- Runs the binary in check mode on path; returns the exit code and the
-- lines it printed (stdout and stderr together).
local function check(path)
  local cmd = string.format("%s -t -c %s 2>&1; echo EXIT:$?", shell_quote(BIN), shell_quote(path))
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local lines, code = {}, nil
  for line in out:gmatch("([^\n]*)\n") do
    local c = line:match("^EXIT:(%d+)$")
    if c then
      code = tonumber(c)
    else
      lines[#lines + 1] = line
    end
  end
  return code, lines
end

-- Writes yaml to a fresh temp file, checks it, and removes the file.
local function check_yaml(yaml)
  local path = os.tmpname()
  finally(function() os.remove(path) end)
  write_file(path, yaml)
  local code, lines = check(path)
  return path, code, lines
end

-- Expected lines are written without the file name; prefix them with it.
local function with_file(path, expected)
  local out = {}
  for i, e in ipairs(expected) do
    out[i] = path .. ":" .. e
  end
  return out
end

-- A minimal valid config; cases below break one thing each.
local BASE = [[
listen:
  - 127.0.0.1:8080
upstreams:
  app:
    backends:
      - 127.0.0.1:9001
]]

local invalid_cases = {
  {
    name = "an unknown key inside an upstream, naming its key path",
    yaml = BASE .. [[
    colour: blue
]],
    errors = { "7:5: unknown key 'colour' in upstreams.app" },
  },
  {
    name = "an unknown key at the top level",
    yaml = "wokers: 2\n" .. BASE,
    errors = { "1:1: unknown key 'wokers' at top level" },
  },
  {
    name = "a string where an integer is expected",
    yaml = BASE .. [[
    keepalive:
      max_idle: abc
]],
    errors = { "8:17: upstreams.app.keepalive.max_idle: expected an integer, got 'abc'" },
  },
  {
    name = "a list where a mapping is expected",
    yaml = BASE .. [[
limits: [1, 2]
]],
    errors = { "7:9: limits: expected a mapping, got a list" },
  },
  {
    name = "a listen address without a port",
    yaml = [[
listen:
  - nohost
upstreams:
  app:
    backends: [127.0.0.1:9001]
]],
    errors = { "2:5: listen[0]: invalid address 'nohost': missing port" },
  },
  {
    name = "a backend address with a port out of range",
    yaml = [[
listen: [127.0.0.1:8080]
upstreams:
  app:
    backends:
      - address: 127.0.0.1:70000
]],
    errors = {
      "5:18: upstreams.app.backends[0].address: invalid address '127.0.0.1:70000': port out of range 1..65535",
    },
  },
  {
    name = "a route naming an upstream that does not exist",
    yaml = BASE .. [[
routes:
  - path: /
    upstream: app
  - path: /api
    upstream: foo
]],
    errors = { "11:15: routes[1].upstream: unknown upstream 'foo'" },
  },
  {
    name = "a duration with an unknown unit",
    yaml = BASE .. [[
timeouts:
  client_header: 10 seconds
]],
    errors = { "8:18: timeouts.client_header: expected a duration, got '10 seconds'" },
  },
  {
    name = "a negative duration",
    yaml = BASE .. [[
    timeouts:
      connect: -5s
]],
    errors = { "8:16: upstreams.app.timeouts.connect: expected a duration in 1ms..24h, got '-5s'" },
  },
  {
    name = "a backend weight out of range",
    yaml = [[
listen: [127.0.0.1:8080]
upstreams:
  app:
    backends:
      - address: 127.0.0.1:9001
        weight: 1001
]],
    errors = { "6:17: upstreams.app.backends[0].weight: expected an integer in 1..1000, got '1001'" },
  },
  {
    name = "a config without upstreams",
    yaml = "listen: [127.0.0.1:8080]\n",
    errors = { "1:1: no upstreams defined" },
  },
  {
    name = "malformed YAML, with libyaml's problem and context",
    yaml = [[
listen:
  - 127.0.0.1:8080
 upstreams: {}
]],
    errors = {
      "3:2: did not find expected key (while parsing a block mapping at line 1, column 1)",
    },
  },
  {
    name = "an unterminated flow list",
    yaml = "listen: [127.0.0.1:8080\n",
    errors = {
      "2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 9)",
    },
  },
  {
    name = "several problems at once, all reported in file order",
    yaml = [[
routes:
  - path: api
    upstream: nowhere
listen:
  - 127.0.0.1:8080
upstreams:
  app:
    backends: [127.0.0.1:9001]
    balance: random
]],
    errors = {
      "2:11: routes[0].path: must start with '/', got 'api'",
      "3:15: routes[0].upstream: unknown upstream 'nowhere'",
      "9:14: upstreams.app.balance: expected one of round_robin, got 'random'",
    },
  },
}

-- Plugin sections: plugin_paths, the global and per-route plugins lists,
-- limits.max_body_buffer. Plugins are not loaded by -t (yet), so only the
-- syntax is checked: any valid name passes.
local plugin_cases = {
  {
    name = "a duplicate plugin in the global list, naming the first one",
    yaml = BASE .. [[
plugins:
  - cors
  - request-id
  - name: cors
]],
    errors = { "10:5: plugins[2]: duplicate plugin 'cors' (also plugins[0])" },
  },
  {
    name = "a duplicate plugin in a route's list",
    yaml = BASE .. [[
routes:
  - upstream: app
    plugins: [cors, {name: cors, enabled: false}]
]],
    errors = { "9:21: routes[0].plugins[1]: duplicate plugin 'cors' (also routes[0].plugins[0])" },
  },
  {
    name = "an invalid plugin name, as a string and as a key",
    yaml = BASE .. [[
plugins:
  - key auth
  - name: a.b
]],
    errors = {
      "8:5: plugins[0]: invalid plugin name 'key auth': use 1 to 64 letters, digits, '-' or '_'",
      "9:11: plugins[1].name: invalid plugin name 'a.b': use 1 to 64 letters, digits, '-' or '_'",
    },
  },
  {
    name = "a plugin item that is neither a name nor a mapping",
    yaml = BASE .. [[
plugins:
  - [cors]
  -
]],
    errors = {
      "8:5: plugins[0]: expected a plugin name or a mapping, got a list",
      "9:4: plugins[1]: expected a plugin name or a mapping, got an empty value",
    },
  },
  {
    name = "a plugin mapping without a name",
    yaml = BASE .. [[
plugins:
  - enabled: true
]],
    errors = { "8:5: plugins[0]: missing required key 'name'" },
  },
  {
    name = "every plugin setting out of range or of the wrong kind",
    yaml = BASE .. [[
plugins:
  - name: cors
    enabled: maybe
    priority: 1000001
    on_error: ignore
    timeout_ms: 0
    memory_limit_mb: 4097
    config: [1, 2]
    colour: red
]],
    errors = {
      "9:14: plugins[0].enabled: expected a boolean, got 'maybe'",
      "10:15: plugins[0].priority: expected an integer in -1000000..1000000, got '1000001'",
      "11:15: plugins[0].on_error: expected one of fail, continue, got 'ignore'",
      "12:17: plugins[0].timeout_ms: expected an integer in 1..60000, got '0'",
      "13:22: plugins[0].memory_limit_mb: expected an integer in 1..4096, got '4097'",
      "14:13: plugins[0].config: expected a mapping, got a list",
      "15:5: unknown key 'colour' in plugins[0]",
    },
  },
  {
    name = "a timeout written as a duration instead of milliseconds",
    yaml = BASE .. [[
plugins:
  - {name: cors, timeout_ms: 50ms}
]],
    errors = { "8:30: plugins[0].timeout_ms: expected an integer, got '50ms'" },
  },
  {
    name = "a duplicate key inside a plugin's config, with its key path",
    yaml = BASE .. [[
plugins:
  - name: cors
    config:
      origins: [a.example]
      headers:
        allow: x
        allow: y
]],
    errors = { "13:9: duplicate key 'allow' in plugins[0].config.headers" },
  },
  {
    name = "a plugin config that contains itself through an alias",
    yaml = BASE .. [[
plugins:
  - name: cors
    config: &loop
      again: *loop
]],
    errors = { "9:13: plugins[0].config: nested deeper than 64 levels" },
  },
  {
    name = "plugins and plugin_paths that are not lists",
    yaml = BASE .. [[
plugins: cors
plugin_paths: plugins
routes:
  - upstream: app
    plugins: {cors: {}}
]],
    errors = {
      "7:10: plugins: expected a list, got 'cors'",
      "8:15: plugin_paths: expected a list, got 'plugins'",
      "11:14: routes[0].plugins: expected a list, got a mapping",
    },
  },
  {
    name = "an empty and a repeated plugin path",
    yaml = BASE .. [[
plugin_paths: [plugins, "", [x], plugins]
]],
    errors = {
      "7:25: plugin_paths[1]: expected a directory path, got ''",
      "7:29: plugin_paths[2]: expected a directory path, got a list",
      "7:34: plugin_paths[3]: duplicate of plugin_paths[0]",
    },
  },
  {
    name = "a body buffer limit out of range",
    yaml = BASE .. [[
limits: {max_body_buffer: 0}
]],
    errors = { "7:27: limits.max_body_buffer: expected a size in 1..1g, got '0'" },
  },
  {
    name = "a body buffer limit above 1g",
    yaml = BASE .. [[
limits:
  max_body_buffer: 2g
]],
    errors = { "8:20: limits.max_body_buffer: expected a size in 1..1g, got '2g'" },
  },
}

describe("sluice -t on the plugin sections", function()
  for _, case in ipairs(plugin_cases) do
    it("reports " .. case.name .. " and exits 1", function()
      local path, code, lines = check_yaml(case.yaml)
      assert.are.same(with_file(path, case.errors), lines)
      assert.are.equal(1, code)
    end)
  end

  -- -t loads every plugin named, so this uses the fixture plugins.
  it("accepts global plugins, route plugins and overrides and exits 0", function()
    local fixtures = os.getenv("PWD") .. "/spec/fixtures/plugins"
    local path, code, lines = check_yaml((BASE .. [=[
  api:
    backends: [127.0.0.1:9002]
plugin_paths: [FIXTURES, /opt/sluice/plugins, ./more]
limits: {max_body_buffer: 64k}
plugins:
  - request-id
  - name: key-auth
    priority: 1000
    on_error: continue
    timeout_ms: 100
    memory_limit_mb: 32
    config:
      header: X-Api-Key
      keys: [k1, "k2", "3"]
      ids: [1, 2, 3]
      hide: true
      ratio: 0.5
      nothing: ~
      nested: {list: [{a: 1}, {a: 2}]}
  - {name: cors, enabled: false}
routes:
  - path: /public
    upstream: app
    plugins:
      - {name: key-auth, enabled: false}
      - cors
  - path: /api
    upstream: api
    plugins:
      - name: key-auth
        config: {header: Authorization}
      - name: rate_limit
        priority: -1000000
        config: {}
  - path: /
    upstream: app
    plugins: []
]=]):gsub("FIXTURES", fixtures))
    assert.are.same({ "sluice: configuration " .. path .. " is valid" }, lines)
    assert.are.equal(0, code)
  end)

  it("accepts an empty plugins list and plugin_paths list and exits 0", function()
    local path, code, lines = check_yaml(BASE .. "plugins: []\nplugin_paths: []\n")
    assert.are.same({ "sluice: configuration " .. path .. " is valid" }, lines)
    assert.are.equal(0, code)
  end)
end)

describe("sluice -t on a configuration file", function()
  for _, case in ipairs(invalid_cases) do
    it("reports " .. case.name .. " and exits 1", function()
      local path, code, lines = check_yaml(case.yaml)
      assert.are.same(with_file(path, case.errors), lines)
      assert.are.equal(1, code)
    end)
  end

  it("reports a missing file without a position and exits 1", function()
    local path = os.tmpname()
    os.remove(path)
    local code, lines = check(path)
    assert.are.same({ path .. ": cannot read: No such file or directory" }, lines)
    assert.are.equal(1, code)
  end)

  it("accepts a complete valid configuration and exits 0", function()
    local path, code, lines = check_yaml([[
workers: auto
listen:
  - 127.0.0.1:8080
  - address: "[::1]:8443"
    backlog: 1024
upstreams:
  app:
    backends:
      - 127.0.0.1:9001
      - address: 127.0.0.1:9002
        weight: 3
    keepalive: {max_idle: 16, idle_timeout: 30s}
    timeouts: {connect: 500ms, send: 1m, response: 1h}
    fail_cooldown: 5s
  static:
    backends: [127.0.0.1:9003]
routes:
  - host: api.example.com
    path: /v1
    upstream: app
  - host: "*.example.com"
    upstream: static
  - path: /
    upstream: app
limits: {max_request_line: 8k, max_header_size: 32k, max_headers: 100, max_body_size: 10m}
timeouts: {client_header: 10s, client_body: 60, keepalive: 75s, send: 1m, drain: 0}
proxy: {x_forwarded_for: yes, x_forwarded_proto: on, x_forwarded_host: true, via: false, preserve_host: true}
log: {level: debug, access_log: stderr, access_log_format: json}
]])
    assert.are.same({ "sluice: configuration " .. path .. " is valid" }, lines)
    assert.are.equal(0, code)
  end)

  it("accepts a single upstream without routes and exits 0", function()
    local path, code, lines = check_yaml(BASE)
    assert.are.same({ "sluice: configuration " .. path .. " is valid" }, lines)
    assert.are.equal(0, code)
  end)
end)
