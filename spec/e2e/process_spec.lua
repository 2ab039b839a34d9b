-- The process: command line, quick mode, configuration check, SIGTERM
-- draining and the access log.
local h = require "spec.helpers"
local json = require "dkjson"

-- Runs the binary with `args`; returns exit code, stdout, stderr.
local function run(args)
  local words = { h.quote(h.bin) }
  for _, a in ipairs(args) do words[#words + 1] = h.quote(a) end
  local cmd = table.concat(words, " ")
  local err_path = h.write_tmp("")
  local code, out = h.run(cmd .. " 2>" .. h.quote(err_path))
  local err = h.read_file(err_path) or ""
  for _, m in ipairs { "AddressSanitizer", "LeakSanitizer", "runtime error:" } do
    if err:find(m, 1, true) then error(cmd .. " printed a sanitizer report:\n" .. err, 2) end
  end
  return code, out, err
end

local function config(port, origin_port, extra)
  return string.format([[
workers: 1
listen: ["127.0.0.1:%d"]
upstreams:
  app:
    backends: ["127.0.0.1:%d"]
%s]], port, origin_port, extra or "")
end

local function lines_of(path)
  local lines = {}
  for line in (h.read_file(path) or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

describe("the command line", function()
  it("prints the version with --version and exits 0", function()
    local code, out, err = run { "--version" }
    assert.equals(0, code)
    assert.matches("^sluice %d+%.%d+%.%d+\n$", out)
    assert.equals("", err)
  end)

  it("prints the usage with --help and exits 0", function()
    local code, out, err = run { "--help" }
    assert.equals(0, code)
    assert.matches("^usage: sluice", out)
    for _, word in ipairs { "-c FILE", "-t", "--listen", "--to", "--workers", "--version" } do
      assert.is_truthy(out:find(word, 1, true), word .. " is not in the usage")
    end
    assert.equals("", err)
  end)

  local bad = {
    { why = "an unknown option", args = { "--bogus" }, msg = "bogus" },
    { why = "no arguments at all", args = {}, msg = "-c FILE" },
    { why = "--listen without --to", args = { "--listen", "127.0.0.1:1" }, msg = "--to" },
    { why = "-c without its file", args = { "-c" }, msg = "'c'" },
    { why = "a stray argument", args = { "-c", "/nonexistent.yaml", "extra" }, msg = "'extra'" },
    { why = "-c together with --listen and --to",
      args = { "-c", "/nonexistent.yaml", "--listen", "127.0.0.1:1", "--to", "127.0.0.1:2" },
      msg = "cannot be combined" },
    { why = "a worker count out of range",
      args = { "--listen", "127.0.0.1:1", "--to", "127.0.0.1:2", "--workers", "0" }, msg = "--workers" },
    { why = "an invalid --listen address", args = { "--listen", "nope", "--to", "127.0.0.1:2" },
      msg = "'nope'" },
    { why = "a configuration file that cannot be read", args = { "-c", "/nonexistent.yaml" },
      msg = "/nonexistent.yaml: cannot read" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case.why .. " with a message on stderr and a non-zero exit", function()
      local code, out, err = run(case.args)
      assert.is_true(code ~= 0, "exit code " .. tostring(code))
      assert.is_truthy(err:find(case.msg, 1, true), "stderr lacks '" .. case.msg .. "': " .. err)
      assert.equals("", out)
    end)
  end

  local checks = {
    { why = "a valid configuration", extra = "", code = 0, msg = "is valid" },
    { why = "an invalid configuration", extra = "bogus_key: 1\n", code = 1, msg = ":6:1: unknown key 'bogus_key'" },
  }
  for _, case in ipairs(checks) do
    it("checks " .. case.why .. " with -t -c, exits " .. case.code .. " and does not listen", function()
      local port = h.free_port()
      local path = h.write_tmp(config(port, 9, case.extra))
      local code, _, err = run { "-t", "-c", path }
      assert.equals(case.code, code)
      assert.is_truthy(err:find(case.msg, 1, true), err)
      assert.is_false(h.is_listening(port))
    end)
  end
end)

describe("quick mode", function()
  it("proxies from --listen to a single --to", function()
    local o = h.start_origin { name = "quick" }
    local port = h.free_port()
    local p = h.start_proxy {
      args = { "--listen", "127.0.0.1:" .. port, "--to", "127.0.0.1:" .. o.port, "--workers", "1" },
      port = port,
    }
    finally(function() p:stop(); o:stop() end)
    local resp = assert(h.request(port, h.build_request("POST", "/echo", { { "X-Case", "quick" } }, "hi")))
    assert.equals(200, resp.status)
    assert.equals("quick", resp.headers["x-origin-name"])
    local raw = o:requests(1)[1]
    assert.equals(resp.body, raw)
    assert.matches("^POST /echo HTTP/1.1\r\n.*X%-Case: quick\r\n.*\r\n\r\nhi$", raw)
  end)

  it("balances over several --to", function()
    local a = h.start_origin { name = "a" }
    local b = h.start_origin { name = "b" }
    local port = h.free_port()
    local p = h.start_proxy {
      args = { "--listen", "127.0.0.1:" .. port, "--to", "127.0.0.1:" .. a.port,
               "--to", "127.0.0.1:" .. b.port, "--workers", "1" },
      port = port,
    }
    finally(function() p:stop(); a:stop(); b:stop() end)
    local got = {}
    for i = 1, 4 do got[i] = assert(h.get(port, "/name")).body end
    assert.equals("abab", table.concat(got))
    assert.equals(2, #a:requests(2))
    assert.equals(2, #b:requests(2))
  end)
end)

describe("stopping", function()
  it("on SIGTERM finishes an in-flight request, refuses new connections and exits 0", function()
    local o = h.start_origin { name = "drain" }
    local port = h.free_port()
    local p = h.start_proxy { config = config(port, o.port, "timeouts: {drain: 5s}\n") }
    finally(function() p:stop(); o:stop() end)
    local conn = assert(h.connect(port))
    finally(function() conn:close() end)
    assert(conn:send(h.build_request("GET", "/delay/1500")))
    assert.equals(1, #o:requests(1))
    local t0 = h.now()
    p:signal("TERM")
    assert.is_true(h.wait_until(function() return not h.is_listening(port) end, 1) or false,
      "still listening after SIGTERM")
    local late, err = h.connect(port)
    if late then late:close() end
    assert.is_nil(late, "a new connection was accepted while draining")
    assert.equals("connection refused", err)
    local resp = assert(conn:read_response())
    assert.equals(200, resp.status)
    assert.equals("delayed\n", resp.body)
    assert.equals(0, p:wait(5))
    assert.is_true(h.now() - t0 < 5, "exit took longer than the drain time")
    assert.equals(1, #o:requests())
  end)

  local signals = { "TERM", "INT" }
  for _, sig in ipairs(signals) do
    it("on SIG" .. sig .. " with only idle keep-alive connections exits 0 promptly", function()
      local o = h.start_origin { name = "idle" }
      local port = h.free_port()
      local p = h.start_proxy { config = config(port, o.port) }
      finally(function() p:stop(); o:stop() end)
      local conns = {}
      for i = 1, 3 do
        conns[i] = assert(h.connect(port))
        assert(conns[i]:send(h.build_request("GET", "/name")))
        assert.equals("idle", assert(conns[i]:read_response()).body)
      end
      finally(function() for _, c in ipairs(conns) do c:close() end end)
      local t0 = h.now()
      p:signal(sig)
      assert.equals(0, p:wait(2))
      assert.is_true(h.now() - t0 < 1, string.format("exit took %.2f s", h.now() - t0))
      for _, c in ipairs(conns) do assert.is_true(c:is_closed(1)) end
      assert.equals(3, #o:requests(3))
    end)
  end

  it("on SIGTERM closes what still runs once the drain time is over, and exits 0", function()
    local o = h.start_origin { name = "late" }
    local port = h.free_port()
    local p = h.start_proxy { config = config(port, o.port, "timeouts: {drain: 300ms}\n") }
    finally(function() p:stop(); o:stop() end)
    local conn = assert(h.connect(port))
    finally(function() conn:close() end)
    assert(conn:send(h.build_request("GET", "/delay/3000")))
    assert.equals(1, #o:requests(1))
    local t0 = h.now()
    p:signal("TERM")
    assert.equals(0, p:wait(3))
    local took = h.now() - t0
    assert.is_true(took >= 0.25 and took < 1.5, string.format("exit took %.2f s", took))
    local resp, err = conn:read_response { timeout = 1 }
    assert.is_nil(resp)
    assert.equals("closed", err)
  end)
end)

describe("the access log", function()
  -- Sent in this order; each must appear as one line.
  local requests = {
    { method = "GET", target = "/name", status = 200 },
    { method = "POST", target = "/echo?x=1", status = 200, body = "hello" },
    { method = "HEAD", target = "/size/10", status = 200 },
    { method = "GET", target = "/status/404", status = 404 },
  }

  local parsers = {
    text = function(line)
      local method, target, status = line:match('"(%u+) (%S+) HTTP/1%.1" (%d+) ')
      assert(method, "not a text access log line: " .. line)
      return { method = method, target = target, status = tonumber(status) }
    end,
    json = function(line)
      local obj, _, err = json.decode(line)
      assert(type(obj) == "table", "not a JSON object: " .. line .. " (" .. tostring(err) .. ")")
      return obj
    end,
  }

  for _, format in ipairs { "text", "json" } do
    it("writes one " .. format .. " line per request with method, target and status", function()
      local o = h.start_origin { name = "logged" }
      local port = h.free_port()
      local path = h.write_tmp("")
      local p = h.start_proxy { config = config(port, o.port, string.format(
        "log: {access_log: %s, access_log_format: %s}\n", path, format)) }
      finally(function() p:stop(); o:stop() end)
      for _, r in ipairs(requests) do
        local resp = assert(h.request(port, h.build_request(r.method, r.target, nil, r.body)))
        assert.equals(r.status, resp.status)
      end
      local lines = h.wait_until(function()
        local l = lines_of(path)
        return #l >= #requests and l
      end, 3)
      assert.is_truthy(lines, "access log lines: " .. (h.read_file(path) or ""))
      assert.equals(#requests, #lines)
      for i, r in ipairs(requests) do
        local entry = parsers[format](lines[i])
        assert.equals(r.method, entry.method)
        assert.equals(r.target, entry.target)
        assert.equals(r.status, entry.status)
      end
      local got = o:requests(#requests)
      assert.equals(#requests, #got)
      for i, r in ipairs(requests) do
        assert.equals(r.method .. " " .. r.target .. " HTTP/1.1\r\n", got[i]:match("^[^\n]*\n"))
      end
    end)
  end
end)
