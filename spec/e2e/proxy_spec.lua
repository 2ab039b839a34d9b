-- HTTP semantics through the proxy: bodies streamed both ways, keep-alive,
-- pipelining, bodiless responses, 1xx, Expect, hop-by-hop fields, the
-- forwarding fields, HTTP/1.0 clients, close-delimited bodies, upgrades and
-- back-pressure. Every case checks what the client got and what the origin
-- received (its /echo answer, or its request log found by a unique marker).
local h = require "spec.helpers"

local X = string.rep

-- Splits raw request bytes (an /echo body or an origin log record) into
-- { line, headers (lowercase name -> values joined with ", "), names (list
-- of lowercase names as sent), body }.
local function parse_request(raw)
  local head_end = assert(raw:find("\r\n\r\n", 1, true), "no end of head in: " .. raw:sub(1, 200))
  local req = { headers = {}, names = {}, body = raw:sub(head_end + 4) }
  for line in (raw:sub(1, head_end - 1) .. "\r\n"):gmatch("(.-)\r\n") do
    if not req.line then
      req.line = line
    else
      local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      local k = assert(name, "bad header line: " .. line):lower()
      req.names[#req.names + 1] = k
      req.headers[k] = req.headers[k] and (req.headers[k] .. ", " .. value) or value
    end
  end
  return req
end

-- Decodes a complete chunked body (RFC 9112 §7.1), extensions ignored.
local function dechunk(s)
  local out, pos = {}, 1
  while true do
    local e = assert(s:find("\r\n", pos, true), "chunk size line not ended")
    local size = assert(tonumber(s:sub(pos, e - 1):match("^%x+"), 16), "bad chunk size")
    if size == 0 then return table.concat(out) end
    out[#out + 1] = s:sub(e + 2, e + 1 + size)
    assert(s:sub(e + 2 + size, e + 3 + size) == "\r\n", "chunk data not followed by CRLF")
    pos = e + 4 + size
  end
end

local function chunk(data, size)
  local parts = {}
  for i = 1, #data, size do
    local piece = data:sub(i, i + size - 1)
    parts[#parts + 1] = string.format("%x\r\n%s\r\n", #piece, piece)
  end
  parts[#parts + 1] = "0\r\n\r\n"
  return table.concat(parts)
end

-- n bytes that differ along the way, so a reordered or shifted body shows.
local function pattern(n)
  local parts = {}
  for i = 1, math.ceil(n / 8) do parts[i] = string.format("%07d\n", i % 10000000) end
  return table.concat(parts):sub(1, n)
end

local marker_seq = 0
local function marker(what)
  marker_seq = marker_seq + 1
  return string.format("%s-%d-%d", what, marker_seq, math.random(1e9))
end

-- The request the origin logged with header "X-Case: <id>", parsed; waits
-- up to 5 s for it, nil if it never came.
local function received(origin, id)
  local needle = "\r\nX-Case: " .. id .. "\r\n"
  local raw = h.wait_until(function()
    for _, r in ipairs(origin:requests()) do
      if r:find(needle, 1, true) then return r end
    end
  end)
  return raw and parse_request(raw)
end

local function count_received(origin, id)
  local needle = "\r\nX-Case: " .. id .. "\r\n"
  local n = 0
  for _, r in ipairs(origin:requests()) do
    if r:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

local function quick_proxy(origin_port)
  local port = h.free_port()
  return h.start_proxy {
    args = { "--listen", "127.0.0.1:" .. port, "--to", "127.0.0.1:" .. origin_port, "--workers", "1" },
    port = port,
  }
end

local function yaml_proxy(backend_port, extra)
  local port = h.free_port()
  return h.start_proxy { config = string.format([[
workers: 1
listen: ["127.0.0.1:%d"]
upstreams:
  app:
    backends: ["127.0.0.1:%d"]
%s]], port, backend_port, extra or "") }
end

local function vm_rss_kb(pid)
  local s = h.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

describe("the proxy", function()
  local origin, proxy

  lazy_setup(function()
    math.randomseed(os.time())
    origin = h.start_origin { name = "o1" }
    proxy = quick_proxy(origin.port)
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if origin then origin:stop() end
  end)

  describe("streaming bodies", function()
    local big = 5000000

    local request_bodies = {
      { name = "a Content-Length body", chunked = false },
      { name = "a chunked body", chunked = true },
    }
    for _, case in ipairs(request_bodies) do
      it("forwards a 5 MB request with " .. case.name .. " intact", function()
        local body = pattern(big)
        local id = marker("reqbody")
        local raw
        if case.chunked then
          raw = "POST /echo HTTP/1.1\r\nHost: localhost\r\nX-Case: " .. id
            .. "\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk(body, 100000)
        else
          raw = h.build_request("POST", "/echo", { { "X-Case", id } }, body)
        end
        local conn = assert(h.connect(proxy.port))
        finally(function() conn:close() end)
        assert(conn:send(raw, 20))
        local resp = assert(conn:read_response { timeout = 20 })
        assert.equals(200, resp.status)
        -- the /echo body is the request exactly as the origin received it
        local got = parse_request(resp.body)
        assert.equals("POST /echo HTTP/1.1", got.line)
        if case.chunked then
          assert.equals("chunked", got.headers["transfer-encoding"])
          assert.is_nil(got.headers["content-length"])
          assert.is_true(dechunk(got.body) == body, "chunked body differs after proxying")
        else
          assert.equals(tostring(big), got.headers["content-length"])
          assert.is_nil(got.headers["transfer-encoding"])
          assert.equals(big, #got.body)
          assert.is_true(got.body == body, "body differs after proxying")
        end
      end)
    end

    local response_bodies = {
      { path = "/size/" .. big, cl = tostring(big) },
      { path = "/chunked/" .. big, te = "chunked" },
    }
    for _, case in ipairs(response_bodies) do
      it("streams the 5 MB response of " .. case.path .. " intact", function()
        local id = marker("respbody")
        local resp = assert(h.get(proxy.port, case.path, { { "X-Case", id } }, { timeout = 20 }))
        assert.equals(200, resp.status)
        assert.equals(case.cl, resp.headers["content-length"])
        assert.equals(case.te, resp.headers["transfer-encoding"])
        assert.equals(big, #resp.body)
        assert.is_true(resp.body == X("x", big), "response body differs")
        assert.equals("GET " .. case.path .. " HTTP/1.1", assert(received(origin, id)).line)
      end)
    end
  end)

  it("serves many requests on one keep-alive client connection", function()
    local id = marker("keepalive")
    local conn = assert(h.connect(proxy.port))
    finally(function() conn:close() end)
    for i = 1, 50 do
      local path = ({ "/name", "/size/100", "/chunked/5000", "/status/204" })[i % 4 + 1]
      assert(conn:send(h.build_request("GET", path, { { "X-Case", id } })))
      local resp = assert(conn:read_response())
      assert.is_true(resp.status == 200 or resp.status == 204, "request " .. i)
      assert.is_nil(resp.headers["connection"])
    end
    assert.is_false(conn:is_closed(0.1))
    assert.equals(50, h.wait_until(function()
      local n = count_received(origin, id)
      return n >= 50 and n
    end))
  end)

  it("answers three pipelined requests sent in one write in order", function()
    local ids = { marker("pipe"), marker("pipe"), marker("pipe") }
    local conn = assert(h.connect(proxy.port))
    finally(function() conn:close() end)
    assert(conn:send(h.build_request("GET", "/delay/100", { { "X-Case", ids[1] } })
      .. h.build_request("GET", "/size/3", { { "X-Case", ids[2] } })
      .. h.build_request("POST", "/echo", { { "X-Case", ids[3] } }, "hello")))
    assert.equals("delayed\n", assert(conn:read_response()).body)
    assert.equals("xxx", assert(conn:read_response()).body)
    local echo = parse_request(assert(conn:read_response()).body)
    assert.equals("POST /echo HTTP/1.1", echo.line)
    assert.equals(ids[3], echo.headers["x-case"])
    assert.equals("hello", echo.body)
    assert.equals("GET /delay/100 HTTP/1.1", assert(received(origin, ids[1])).line)
    assert.equals("GET /size/3 HTTP/1.1", assert(received(origin, ids[2])).line)
  end)

  describe("responses without a body", function()
    local cases = {
      { method = "HEAD", path = "/size/1000", status = 200, cl = "1000" },
      { method = "GET", path = "/status/204", status = 204 },
      { method = "GET", path = "/status/304", status = 304 },
    }
    for _, case in ipairs(cases) do
      it("relays " .. case.method .. " " .. case.path .. " without a body and stays in sync", function()
        local id = marker("nobody")
        local conn = assert(h.connect(proxy.port))
        finally(function() conn:close() end)
        assert(conn:send(h.build_request(case.method, case.path, { { "X-Case", id } })))
        local resp = assert(conn:read_response { head = case.method == "HEAD" })
        assert.equals(case.status, resp.status)
        assert.equals(case.cl, resp.headers["content-length"])
        assert.is_nil(resp.headers["transfer-encoding"])
        -- a stray body would be read as the next response's status line
        assert(conn:send(h.build_request("GET", "/name")))
        local next_resp = assert(conn:read_response())
        assert.equals(200, next_resp.status)
        assert.equals("o1", next_resp.body)
        assert.equals(case.method .. " " .. case.path .. " HTTP/1.1", assert(received(origin, id)).line)
      end)
    end
  end)

  describe("interim responses", function()
    local cases = {
      { version = "1.1", relayed = true },
      { version = "1.0", relayed = false },
    }
    for _, case in ipairs(cases) do
      it((case.relayed and "relays" or "does not relay") .. " a 103 to an HTTP/" .. case.version
        .. " client before the final response", function()
        local id = marker("early")
        local conn = assert(h.connect(proxy.port))
        finally(function() conn:close() end)
        assert(conn:send("GET /103 HTTP/" .. case.version .. "\r\nHost: localhost\r\nX-Case: " .. id .. "\r\n\r\n"))
        local first = assert(conn:read_response())
        if case.relayed then
          assert.equals(103, first.status)
          assert.equals("</x>; rel=preload", first.headers["link"])
          first = assert(conn:read_response())
        end
        assert.equals(200, first.status)
        assert.equals("after early hints\n", first.body)
        assert.equals("GET /103 HTTP/1.1", assert(received(origin, id)).line)
      end)
    end

    it("answers Expect: 100-continue itself and does not forward Expect", function()
      local id = marker("expect")
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send("POST /echo HTTP/1.1\r\nHost: localhost\r\nX-Case: " .. id
        .. "\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"))
      local interim = assert(conn:read_response())
      assert.equals("HTTP/1.1 100 Continue", interim.status_line)
      assert(conn:send("hello world"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      local echo = parse_request(resp.body)
      assert.is_nil(echo.headers["expect"])
      assert.equals("11", echo.headers["content-length"])
      assert.equals("hello world", echo.body)
    end)
  end)

  describe("hop-by-hop fields", function()
    local request_fields = {
      { "Connection", "keep-alive" },
      { "Keep-Alive", "timeout=5, max=100" },
      { "TE", "trailers" },
      { "Trailer", "X-Checksum" },
      { "Upgrade", "h2c" },
      { "Proxy-Connection", "keep-alive" },
    }
    for _, field in ipairs(request_fields) do
      it("removes the request's " .. field[1] .. " field", function()
        local id = marker("hop")
        local resp = assert(h.get(proxy.port, "/echo", { { "X-Case", id }, field, { "X-Kept", "yes" } }))
        assert.equals(200, resp.status)
        local echo = parse_request(resp.body)
        assert.is_nil(echo.headers[field[1]:lower()])
        assert.equals("yes", echo.headers["x-kept"])
        assert.equals(id, echo.headers["x-case"])
      end)
    end

    it("removes a request field named in Connection", function()
      local resp = assert(h.get(proxy.port, "/echo", {
        { "Connection", "X-Secret, x-other" }, { "X-Secret", "s" }, { "X-Other", "o" }, { "X-Kept", "yes" },
      }))
      assert.equals(200, resp.status)
      local echo = parse_request(resp.body)
      assert.is_nil(echo.headers["x-secret"])
      assert.is_nil(echo.headers["x-other"])
      assert.is_nil(echo.headers["connection"])
      assert.equals("yes", echo.headers["x-kept"])
    end)

    describe("on the response side", function()
      local mock, mproxy

      lazy_setup(function()
        mock = h.mock_origin()
        -- no pooling: every request reaches the mock on a connection of its own
        mproxy = yaml_proxy(mock.port, "    keepalive: {max_idle: 0}\n")
      end)

      lazy_teardown(function()
        if mproxy then mproxy:stop() end
        if mock then mock:close() end
      end)

      -- Sends a request through the proxy, answers it with `response` from
      -- the mock; returns the request the mock got and the client's response.
      local function exchange(path, response)
        local conn = assert(h.connect(mproxy.port))
        assert(conn:send(h.build_request("GET", path)))
        local up = assert(mock:accept())
        local req = assert(up:read_request())
        assert(up:send(response))
        local resp = assert(conn:read_response())
        conn:close()
        up:close()
        return req, resp
      end

      it("removes hop-by-hop fields and the fields named in Connection", function()
        local req, resp = exchange("/resp-hop", "HTTP/1.1 200 OK\r\n"
          .. "Connection: X-Secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
          .. "TE: trailers\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\nX-Secret: s\r\nX-Kept: yes\r\n"
          .. "Content-Length: 2\r\n\r\nok")
        assert.equals("GET /resp-hop HTTP/1.1", req.request_line)
        assert.equals(200, resp.status)
        assert.equals("ok", resp.body)
        assert.equals("yes", resp.headers["x-kept"])
        for _, name in ipairs { "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-secret" } do
          assert.is_nil(resp.headers[name], name .. " reached the client")
        end
      end)

      it("appends its Via to the origin's Via", function()
        local req, resp = exchange("/resp-via",
          "HTTP/1.1 200 OK\r\nVia: 1.1 origin-cache\r\nContent-Length: 2\r\n\r\nok")
        assert.equals("1.1 sluice", req.headers["via"])
        assert.equals("1.1 origin-cache, 1.1 sluice", resp.headers["via"])
        assert.equals("ok", resp.body)
      end)
    end)
  end)

  describe("forwarding fields", function()
    -- The client sends its own values; "on" is what the origin must see
    -- with the option on, "off" with it off (the client's value untouched).
    local fields = {
      { key = "x_forwarded_for", header = "x-forwarded-for", on = "10.0.0.1, 127.0.0.1", off = "10.0.0.1" },
      { key = "x_forwarded_proto", header = "x-forwarded-proto", on = "http", off = "https" },
      { key = "x_forwarded_host", header = "x-forwarded-host", on = "app.example", off = "spoofed.example" },
      { key = "via", header = "via", on = "1.0 fred, 1.1 sluice", off = "1.0 fred",
        resp_on = "1.1 sluice" },
    }
    local client_fields = {
      { "Host", "app.example" }, { "X-Forwarded-For", "10.0.0.1" }, { "X-Forwarded-Proto", "https" },
      { "X-Forwarded-Host", "spoofed.example" }, { "Via", "1.0 fred" },
    }

    it("are added by default, appending to X-Forwarded-For and Via", function()
      local resp = assert(h.get(proxy.port, "/echo", client_fields))
      assert.equals(200, resp.status)
      local echo = parse_request(resp.body)
      for _, f in ipairs(fields) do
        assert.equals(f.on, echo.headers[f.header], f.header)
        assert.equals(f.resp_on, resp.headers[f.header], f.header .. " on the response")
      end
      assert.equals("app.example", echo.headers["host"])
    end)

    it("start X-Forwarded-For with the client address when the client sent none", function()
      local resp = assert(h.get(proxy.port, "/echo"))
      assert.equals("127.0.0.1", parse_request(resp.body).headers["x-forwarded-for"])
    end)

    for _, field in ipairs(fields) do
      it("leave " .. field.header .. " alone with proxy." .. field.key .. ": false", function()
        local p = yaml_proxy(origin.port, "proxy:\n  " .. field.key .. ": false\n")
        finally(function() p:stop() end)
        local resp = assert(h.get(p.port, "/echo", client_fields))
        assert.equals(200, resp.status)
        local echo = parse_request(resp.body)
        for _, f in ipairs(fields) do
          local off = f.key == field.key
          assert.equals(off and f.off or f.on, echo.headers[f.header], f.header)
          assert.equals((not off) and f.resp_on or nil, resp.headers[f.header], f.header .. " on the response")
        end
      end)
    end
  end)

  describe("an HTTP/1.0 client", function()
    it("gets the connection closed after the response", function()
      local id = marker("http10")
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send("GET /size/10 HTTP/1.0\r\nHost: localhost\r\nX-Case: " .. id .. "\r\n\r\n"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.equals("xxxxxxxxxx", resp.body)
      assert.is_true(conn:is_closed(2))
      local got = assert(received(origin, id))
      assert.equals("GET /size/10 HTTP/1.1", got.line)
      assert.equals("1.0 sluice", got.headers["via"])
    end)

    it("keeps the connection with Connection: keep-alive", function()
      local id = marker("http10ka")
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      for i = 1, 2 do
        assert(conn:send("GET /size/" .. i .. " HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\nX-Case: "
          .. id .. "\r\n\r\n"))
        local resp = assert(conn:read_response())
        assert.equals(200, resp.status)
        assert.equals("keep-alive", resp.headers["connection"])
        assert.equals(X("x", i), resp.body)
      end
      assert.is_false(conn:is_closed(0.2))
      assert.equals(2, h.wait_until(function()
        local n = count_received(origin, id)
        return n >= 2 and n
      end))
    end)
  end)

  describe("a close-delimited origin body", function()
    it("reaches an HTTP/1.1 client chunked, on a connection that stays usable", function()
      local id = marker("eof11")
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send(h.build_request("GET", "/eof/70000", { { "X-Case", id } })))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.equals("chunked", resp.headers["transfer-encoding"])
      assert.is_nil(resp.headers["content-length"])
      assert.equals(X("x", 70000), resp.body)
      assert(conn:send(h.build_request("GET", "/name")))
      assert.equals("o1", assert(conn:read_response()).body)
      assert.equals("GET /eof/70000 HTTP/1.1", assert(received(origin, id)).line)
    end)

    it("reaches an HTTP/1.0 client close-delimited", function()
      local id = marker("eof10")
      local conn = assert(h.connect(proxy.port))
      finally(function() conn:close() end)
      assert(conn:send("GET /eof/70000 HTTP/1.0\r\nHost: localhost\r\nX-Case: " .. id .. "\r\n\r\n"))
      local resp = assert(conn:read_response())
      assert.equals(200, resp.status)
      assert.is_nil(resp.headers["transfer-encoding"])
      assert.is_nil(resp.headers["content-length"])
      assert.is_true(resp.closed)
      assert.equals(X("x", 70000), resp.body)
      assert.equals("GET /eof/70000 HTTP/1.1", assert(received(origin, id)).line)
    end)
  end)

  it("relays a WebSocket upgrade and then bytes both ways", function()
    local id = marker("ws")
    local conn = assert(h.connect(proxy.port))
    finally(function() conn:close() end)
    assert(conn:send(h.build_request("GET", "/ws", {
      { "X-Case", id }, { "Connection", "Upgrade" }, { "Upgrade", "websocket" },
      { "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==" }, { "Sec-WebSocket-Version", "13" },
    })))
    local resp = assert(conn:read_response())
    assert.equals(101, resp.status)
    assert.equals("websocket", resp.headers["upgrade"]:lower())
    assert.matches("[Uu]pgrade", resp.headers["connection"])
    for _, payload in ipairs { "ping", pattern(300000) } do
      assert(conn:send(payload))
      local parts, have = {}, 0
      while have < #payload do
        local got = assert(conn:read_some())
        parts[#parts + 1] = got
        have = have + #got
      end
      assert.is_true(table.concat(parts) == payload, "echo differs")
    end
    local got = assert(received(origin, id))
    assert.equals("GET /ws HTTP/1.1", got.line)
    assert.equals("websocket", got.headers["upgrade"])
    assert.matches("[Uu]pgrade", got.headers["connection"])
  end)

  it("holds bounded memory for a client that does not read a big response", function()
    local size = 50000000
    local o = h.start_origin { name = "big" }
    local p = quick_proxy(o.port)
    finally(function()
      p:stop()
      o:stop()
    end)
    assert.equals(200, assert(h.get(p.port, "/size/100")).status)
    local base = assert(vm_rss_kb(p.pid))
    local conn = assert(h.connect(p.port))
    finally(function() conn:close() end)
    local id = marker("slowreader")
    assert(conn:send(h.build_request("GET", "/size/" .. size, { { "X-Case", id } })))
    local peak = base
    local deadline = h.now() + 2
    while h.now() < deadline do
      peak = math.max(peak, vm_rss_kb(p.pid) or 0)
      h.sleep(0.1)
    end
    assert.is_true(peak - base < 64 * 1024,
      string.format("proxy RSS grew by %d kB while the client did not read", peak - base))
    local resp = assert(conn:read_response { timeout = 60 })
    assert.equals(200, resp.status)
    assert.equals(tostring(size), resp.headers["content-length"])
    assert.equals(size, #resp.body)
    assert.equals("GET /size/" .. size .. " HTTP/1.1", assert(received(o, id)).line)
  end)
end)
