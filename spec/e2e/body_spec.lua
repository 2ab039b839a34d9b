-- Body phases end to end (docs/PLUGINS.md "Bodies"): when a plugin of the
-- chain needs a body whole, the proxy buffers it up to
-- limits.max_body_buffer, runs request_body / response_body, and sends the
-- body the plugins left with its own Content-Length. Over the limit: 413
-- for a request (the origin gets nothing), 502 for a response. Without
-- such a plugin bodies stream as before.
--
-- Two probe plugins of our own, in a temp directory: reqprobe (declares
-- body = { request = true }) and respprobe (declares nothing, but has a
-- response_body hook, which implies the declaration). Their `mode` config
-- says what the hook does. The bundled origin's /echo answers with the raw
-- request it received, so a case sees exactly what went upstream.
--
-- Run: busted --lua=luajit spec/e2e/body_spec.lua
local h = require "spec.helpers"
local E = require "spec.e2e.support"

local X = string.rep

local REQPROBE = [[
local sluice = require "sluice"
local request, response = sluice.request, sluice.response
return {
  name = "reqprobe", version = "1", priority = 20,
  body = { request = true },
  schema = { fields = { { mode = { type = "string", required = true } } } },
  request_body = function(conf)
    local body = request.get_body()
    request.set_header("X-Seen-Length", tostring(#body))
    if conf.mode == "wrap" then
      request.set_body("[" .. body .. "]")
    elseif conf.mode == "exit" then
      return response.exit(403, "refused: " .. body)
    elseif conf.mode == "error" then
      error("request body boom")
    end
  end,
  request_headers = function(conf)
    if conf.mode == "early" then
      -- before its phase the body cannot be read
      local ok, err = pcall(request.get_body)
      request.set_header("X-Early", ok and "read" or (err:match("not available") and "refused" or err))
    end
  end,
}
]]

local RESPPROBE = [[
local sluice = require "sluice"
local response = sluice.response
return {
  name = "respprobe", version = "1", priority = 10,
  schema = { fields = { { mode = { type = "string", required = true } } } },
  response_body = function(conf)
    local body = response.get_body()
    if conf.mode == "wrap" then
      response.set_body("<" .. body .. ">")
    elseif conf.mode == "mark" then
      -- the status says what the phase saw: 260 an empty body, 261 not
      response.set_status(#body == 0 and 260 or 261)
    elseif conf.mode == "error" then
      error("response body boom")
    end
  end,
}
]]

local pdir

local function write(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

-- opts: plugins (YAML lines of the plugins list), buffer (max_body_buffer).
local function config(port, origin_port, opts)
  return table.concat({
    "workers: 1",
    "listen: [127.0.0.1:" .. port .. "]",
    "upstreams:",
    "  app:",
    "    backends: [127.0.0.1:" .. origin_port .. "]",
    "limits: {max_body_buffer: " .. (opts.buffer or "1m") .. "}",
    "plugin_paths: [" .. pdir .. ", " .. os.getenv("PWD") .. "/plugins-lua]",
    "plugins:",
    opts.plugins or "  []",
  }, "\n") .. "\n"
end

local function start(origin, opts)
  local port = h.free_port()
  return h.start_proxy { config = config(port, origin.port, opts), port = port }
end

local function probes(req_mode, resp_mode)
  local l = {}
  if req_mode then l[#l + 1] = "  - {name: reqprobe, config: {mode: " .. req_mode .. "}}" end
  if resp_mode then l[#l + 1] = "  - {name: respprobe, config: {mode: " .. resp_mode .. "}}" end
  return table.concat(l, "\n")
end

-- The request /echo sent back: its head fields (lower-case name -> value)
-- and its body.
local function echoed(resp)
  local head, body = resp.body:match("^(.-\r\n)\r\n(.*)$")
  assert(head, "not an echoed request: " .. resp.body)
  local fields = {}
  for name, value in head:gmatch("\n([^:\r\n]+): ([^\r\n]*)") do fields[name:lower()] = value end
  return { line = head:match("^[^\r\n]*"), fields = fields, body = body }
end

local function assert_origin_untouched(proxy, origin)
  local seen = E.origin_record(proxy, origin)
  assert.same({}, seen.requests)
  assert.same({}, seen.partials)
end

describe("body phases", function()
  local origin

  lazy_setup(function()
    pdir = os.tmpname()
    os.remove(pdir)
    assert(os.execute("mkdir -p " .. h.quote(pdir)))
    write(pdir .. "/reqprobe.lua", REQPROBE)
    write(pdir .. "/respprobe.lua", RESPPROBE)
    origin = h.start_origin()
  end)

  lazy_teardown(function()
    if origin then origin:stop() end
    os.remove(pdir .. "/reqprobe.lua")
    os.remove(pdir .. "/respprobe.lua")
    os.remove(pdir)
  end)

  describe("request_body", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, { plugins = probes("wrap"), buffer = "1k" })
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("reads a Content-Length body and replaces it, with the new length upstream", function()
      local resp = assert(h.request(proxy.port, h.build_request("POST", "/echo", nil, "hello")))
      assert.equal(200, resp.status)
      local got = echoed(resp)
      assert.equal("[hello]", got.body)
      assert.equal("7", got.fields["content-length"])
      assert.equal("5", got.fields["x-seen-length"])
    end)

    it("decodes a chunked body and sends it with a Content-Length instead", function()
      local raw = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  .. "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
      local resp = assert(h.request(proxy.port, raw))
      local got = echoed(resp)
      assert.equal("[hello world]", got.body)
      assert.equal("13", got.fields["content-length"])
      assert.is_nil(got.fields["transfer-encoding"])
    end)

    it("runs on a request without a body, which can then get one", function()
      local resp = assert(h.get(proxy.port, "/echo"))
      local got = echoed(resp)
      assert.equal("0", got.fields["x-seen-length"])
      assert.equal("[]", got.body)
      assert.equal("2", got.fields["content-length"])
    end)

    it("takes a body of exactly max_body_buffer", function()
      local resp = assert(h.request(proxy.port, h.build_request("POST", "/echo", nil, X("b", 1024))))
      assert.equal(200, resp.status)
      assert.equal("[" .. X("b", 1024) .. "]", echoed(resp).body)
    end)

    it("answers 100 Continue itself, then buffers the body", function()
      local conn = assert(h.connect(proxy.port))
      assert(conn:send("POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                       .. "Content-Length: 3\r\n\r\n"))
      local interim = assert(conn:read_response())
      assert.equal(100, interim.status)
      assert(conn:send("abc"))
      local resp = assert(conn:read_response())
      conn:close()
      local got = echoed(resp)
      assert.equal("[abc]", got.body)
      assert.is_nil(got.fields.expect)
    end)

    it("keeps the connection for the next request (pipelined)", function()
      local conn = assert(h.connect(proxy.port))
      assert(conn:send(h.build_request("POST", "/echo", nil, "one")
                       .. h.build_request("POST", "/echo", nil, "two")))
      local a = assert(conn:read_response())
      local b = assert(conn:read_response())
      conn:close()
      assert.equal("[one]", echoed(a).body)
      assert.equal("[two]", echoed(b).body)
    end)
  end)

  describe("over max_body_buffer", function()
    local o, proxy

    before_each(function()
      o = h.start_origin()
      proxy = start(o, { plugins = probes("wrap"), buffer = "1k" })
    end)

    after_each(function()
      proxy:stop()
      o:stop()
    end)

    it("a declared Content-Length is refused with 413 before any byte is read", function()
      local conn = assert(h.connect(proxy.port))
      assert(conn:send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n"))
      E.expect_refusal(conn, 413)
      assert_origin_untouched(proxy, o)
    end)

    it("with Expect: 100-continue, gets 413 and no 100", function()
      local conn = assert(h.connect(proxy.port))
      assert(conn:send("POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                       .. "Content-Length: 5000\r\n\r\n"))
      E.expect_refusal(conn, 413)
      assert_origin_untouched(proxy, o)
    end)

    it("a chunked body is refused with 413 when it grows past the limit", function()
      local conn = assert(h.connect(proxy.port))
      assert(conn:send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       .. "400\r\n" .. X("c", 1024) .. "\r\n1\r\nd\r\n0\r\n\r\n"))
      E.expect_refusal(conn, 413)
      assert_origin_untouched(proxy, o)
    end)
  end)

  describe("request_body replies and errors", function()
    local cases = {
      { name = "a local reply goes to the client, the request never upstream",
        mode = "exit", status = 403, body = "refused: data" },
      { name = "an error answers 500 (on_error: fail)",
        mode = "error", status = 500, body = "500 Internal Server Error\n" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local o = h.start_origin()
        local proxy = start(o, { plugins = probes(c.mode) })
        local conn = assert(h.connect(proxy.port))
        assert(conn:send(h.build_request("POST", "/echo", nil, "data")))
        local resp = assert(conn:read_response())
        assert.equal(c.status, resp.status)
        assert.equal(c.body, resp.body)
        -- the body was read whole: the connection stays usable
        assert(conn:send(h.build_request("GET", "/name")))
        assert.equal(c.status, assert(conn:read_response()).status)
        conn:close()
        assert_origin_untouched(proxy, o)
        o:stop()
      end)
    end

    it("an error with on_error: continue lets the body through unchanged", function()
      local proxy = start(origin, {
        plugins = "  - {name: reqprobe, on_error: continue, config: {mode: error}}" })
      finally(function() proxy:stop() end)
      local resp = assert(h.request(proxy.port, h.build_request("POST", "/echo", nil, "data")))
      assert.equal(200, resp.status)
      assert.equal("data", echoed(resp).body)
      assert.matches("request body boom", proxy:log())
    end)

    it("the body cannot be read before its phase", function()
      local proxy = start(origin, { plugins = probes("early") })
      finally(function() proxy:stop() end)
      local resp = assert(h.request(proxy.port, h.build_request("POST", "/echo", nil, "data")))
      assert.equal("refused", echoed(resp).fields["x-early"])
    end)
  end)

  describe("response_body", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, { plugins = probes(nil, "wrap"), buffer = "8k" })
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    -- path: what the origin answers; n: its body size.
    local cases = {
      { name = "Content-Length", path = "/size/100", n = 100 },
      { name = "chunked", path = "/chunked/5000", n = 5000 },
      { name = "close-delimited", path = "/eof/3000", n = 3000 },
    }
    for _, c in ipairs(cases) do
      it("replaces a " .. c.name .. " body, sent with its new Content-Length", function()
        local conn = assert(h.connect(proxy.port))
        assert(conn:send(h.build_request("GET", c.path)))
        local resp = assert(conn:read_response())
        assert.equal(200, resp.status)
        assert.equal("<" .. X("x", c.n) .. ">", resp.body)
        assert.equal(tostring(c.n + 2), resp.headers["content-length"])
        assert.is_nil(resp.headers["transfer-encoding"])
        assert.equal("origin", resp.headers["x-origin-name"])
        -- the client's connection goes on, even after a close-delimited body
        assert(conn:send(h.build_request("GET", "/size/1")))
        assert.equal("<x>", assert(conn:read_response()).body)
        conn:close()
      end)
    end

    it("gives an HTTP/1.0 client the body with a Content-Length", function()
      local resp = assert(h.request(proxy.port, "GET /chunked/10 HTTP/1.0\r\n\r\n"))
      assert.equal("<" .. X("x", 10) .. ">", resp.body)
      assert.equal("12", resp.headers["content-length"])
    end)

    it("sends no body for HEAD, and leaves its Content-Length alone", function()
      local resp = assert(h.request(proxy.port, "HEAD /size/100 HTTP/1.1\r\nHost: a\r\n\r\n"))
      assert.equal(200, resp.status)
      assert.equal("100", resp.headers["content-length"])
      assert.equal("", resp.raw_body)
    end)

    for _, status in ipairs { 204, 304 } do
      it("sends no body for " .. status .. " and adds no framing", function()
        local conn = assert(h.connect(proxy.port))
        assert(conn:send(h.build_request("GET", "/status/" .. status)))
        local resp = assert(conn:read_response())
        assert.equal(status, resp.status)
        assert.is_nil(resp.headers["content-length"])
        assert.is_nil(resp.headers["transfer-encoding"])
        -- nothing stray follows: the next response parses
        assert(conn:send(h.build_request("GET", "/size/1")))
        assert.equal("<x>", assert(conn:read_response()).body)
        conn:close()
      end)
    end

    it("answers 502 for an origin that closes mid-body: nothing was sent yet", function()
      local resp = assert(h.get(proxy.port, "/close-mid/2000"))
      assert.equal(502, resp.status)
      assert.is_nil(resp.headers["x-origin-name"])
    end)

    it("also runs on a local reply of a request phase (as Kong's body_filter)", function()
      local p = start(origin, { plugins = probes("exit", "wrap") })
      finally(function() p:stop() end)
      local resp = assert(h.request(p.port, h.build_request("POST", "/echo", nil, "x")))
      assert.equal(403, resp.status)
      assert.equal("<refused: x>", resp.body)
      assert.equal("12", resp.headers["content-length"])
    end)
  end)

  describe("response_body sees", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, { plugins = probes(nil, "mark") })
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("an empty body for HEAD (the phase still runs)", function()
      local resp = assert(h.request(proxy.port, "HEAD /size/100 HTTP/1.1\r\nHost: a\r\n\r\n"))
      assert.equal(260, resp.status)
      assert.equal("100", resp.headers["content-length"])
    end)

    it("the body for GET", function()
      local resp = assert(h.get(proxy.port, "/size/100"))
      assert.equal(261, resp.status)
      assert.equal(X("x", 100), resp.body)
    end)
  end)

  describe("a response body over max_body_buffer", function()
    local proxy

    lazy_setup(function()
      proxy = start(origin, { plugins = probes(nil, "wrap"), buffer = "1k" })
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    for _, path in ipairs { "/size/1025", "/chunked/5000", "/eof/5000" } do
      it("gets 502, none of the origin's fields, and a log line (" .. path .. ")", function()
        local resp = assert(h.get(proxy.port, path))
        assert.equal(502, resp.status)
        assert.is_nil(resp.headers["x-origin-name"])
        -- the local reply's body phase ran on the 502
        assert.equal("<502 Bad Gateway\n>", resp.body)
        assert.truthy(proxy:wait_log("response body[^\n]*over limits.max_body_buffer"))
      end)
    end

    it("passes one of exactly max_body_buffer", function()
      local resp = assert(h.get(proxy.port, "/size/1024"))
      assert.equal(200, resp.status)
      assert.equal(1026, #resp.body)
    end)
  end)

  it("an error in response_body answers 500", function()
    local proxy = start(origin, { plugins = probes(nil, "error") })
    finally(function() proxy:stop() end)
    local conn = assert(h.connect(proxy.port))
    assert(conn:send(h.build_request("GET", "/size/10")))
    local resp = assert(conn:read_response())
    assert.equal(500, resp.status)
    assert.equal("500 Internal Server Error\n", resp.body)
    assert.is_nil(resp.headers["x-origin-name"])
    conn:close()
    assert.matches("plugin respprobe: response_body phase failed", proxy:log())
  end)

  describe("when no plugin needs a body", function()
    local proxy

    lazy_setup(function()
      -- a small max_body_buffer, which must not matter; body-transform
      -- without operations declares no body
      proxy = start(origin, { buffer = "1k", plugins = "  - body-transform" })
    end)

    lazy_teardown(function()
      if proxy then proxy:stop() end
    end)

    it("streams a 5 MB request body", function()
      local body = X("u", 5 * 1024 * 1024)
      local resp = assert(h.request(proxy.port, h.build_request("POST", "/size/2", nil, body),
                                    { timeout = 20 }))
      assert.equal(200, resp.status)
      assert.equal("xx", resp.body)
      local got = origin:requests()
      assert.equal(5 * 1024 * 1024, #got[#got]:match("\r\n\r\n(.*)$"))
    end)

    it("streams a 5 MB response, chunked stays chunked", function()
      local resp = assert(h.get(proxy.port, "/chunked/" .. 5 * 1024 * 1024, nil, { timeout = 20 }))
      assert.equal(200, resp.status)
      assert.equal("chunked", resp.headers["transfer-encoding"])
      assert.equal(5 * 1024 * 1024, #resp.body)
    end)
  end)
end)
