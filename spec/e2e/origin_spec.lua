-- The harness and the bundled origin, checked against each other without a
-- proxy: if these fail, no other spec's verdict means anything.
local h = require "spec.helpers"

local X = string.rep

describe("sluice-origin", function()
  local origin

  lazy_setup(function()
    origin = h.start_origin { name = "o1" }
  end)

  lazy_teardown(function()
    if origin then
      local code = origin:stop()
      assert.equals(0, code)
    end
  end)

  it("answers unknown paths with hello from its name", function()
    local resp = assert(h.get(origin.port, "/anything?x=1"))
    assert.equals(200, resp.status)
    assert.equals("text/plain", resp.headers["content-type"])
    assert.equals("hello from o1\n", resp.body)
  end)

  it("echoes the exact bytes of the request, chunked framing included", function()
    local raw = "POST /echo/x?q=1 HTTP/1.1\r\nHost: a\r\nX-Case: MiXeD\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n"
    local resp = assert(h.request(origin.port, raw))
    assert.equals(200, resp.status)
    assert.equals(raw, resp.body)
    assert.equals("o1", resp.headers["x-origin-name"])
  end)

  it("echoes a large body byte for byte", function()
    local body = X("0123456789", 100000)
    local raw = h.build_request("PUT", "/echo", nil, body)
    local resp = assert(h.request(origin.port, raw))
    assert.equals(#raw, #resp.body)
    assert.is_true(resp.body == raw)
  end)

  it("decodes chunked responses and keeps the raw framing", function()
    local resp = assert(h.get(origin.port, "/chunked/10000"))
    assert.equals("chunked", resp.headers["transfer-encoding"])
    assert.is_nil(resp.headers["content-length"])
    assert.equals(X("x", 10000), resp.body)
    assert.equals("1000\r\n" .. X("x", 4096) .. "\r\n", resp.raw_body:sub(1, 4096 + 8))
    assert.equals("0\r\n\r\n", resp.raw_body:sub(-5))
  end)

  local bodies = {
    { path = "/size/0", len = 0, cl = "0" },
    { path = "/size/1", len = 1, cl = "1" },
    { path = "/size/300000", len = 300000, cl = "300000" },
    { path = "/chunked/0", len = 0, te = "chunked" },
    { path = "/chunked/4097", len = 4097, te = "chunked" },
  }
  for _, case in ipairs(bodies) do
    it("serves " .. case.path .. " with the right length and framing", function()
      local resp = assert(h.get(origin.port, case.path))
      assert.equals(200, resp.status)
      assert.equals(case.len, #resp.body)
      assert.equals(X("x", case.len), resp.body)
      assert.equals(case.cl, resp.headers["content-length"])
      assert.equals(case.te, resp.headers["transfer-encoding"])
    end)
  end

  it("serves /eof/N close-delimited", function()
    local resp = assert(h.get(origin.port, "/eof/70000"))
    assert.is_nil(resp.headers["content-length"])
    assert.is_nil(resp.headers["transfer-encoding"])
    assert.equals("close", resp.headers["connection"])
    assert.is_true(resp.closed)
    assert.equals(70000, #resp.body)
  end)

  local statuses = {
    { code = 204, body_headers = false },
    { code = 304, body_headers = false },
    { code = 404, body_headers = true },
    { code = 503, body_headers = true },
  }
  for _, case in ipairs(statuses) do
    it("answers /status/" .. case.code .. " with that status and no body", function()
      local conn = assert(h.connect(origin.port))
      assert(conn:send(h.build_request("GET", "/status/" .. case.code)))
      local resp = assert(conn:read_response())
      assert.equals(case.code, resp.status)
      assert.equals("", resp.body)
      assert.equals(case.body_headers and "0" or nil, resp.headers["content-length"])
      -- the connection is still in sync: nothing stray was sent
      assert(conn:send(h.build_request("GET", "/name")))
      assert.equals("o1", assert(conn:read_response()).body)
      conn:close()
    end)
  end

  it("answers HEAD with the GET headers and no body", function()
    local conn = assert(h.connect(origin.port))
    for _, path in ipairs { "/size/1000", "/chunked/1000", "/" } do
      assert(conn:send(h.build_request("GET", path)))
      local get = assert(conn:read_response())
      assert(conn:send(h.build_request("HEAD", path)))
      local head = assert(conn:read_response { head = true })
      assert.equals(get.status, head.status)
      assert.same(get.header_list, head.header_list)
      assert.equals("", head.body)
    end
    -- a body after the HEAD responses would show up here
    assert(conn:send(h.build_request("GET", "/name")))
    assert.equals("o1", assert(conn:read_response()).body)
    conn:close()
  end)

  it("keeps the connection alive across requests", function()
    local o = h.start_origin { name = "ka" }
    local conn = assert(h.connect(o.port))
    for i = 1, 3 do
      assert(conn:send(h.build_request("GET", "/r" .. i)))
      assert.equals("hello from ka\n", assert(conn:read_response()).body)
    end
    conn:close()
    assert.equals(3, #o:requests(3))
    assert.equals(1, o:connections())
    o:stop()
  end)

  it("answers pipelined requests in order", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/delay/50")
      .. h.build_request("GET", "/size/3")
      .. h.build_request("POST", "/echo", nil, "body")
      .. h.build_request("GET", "/name")))
    assert.equals("delayed\n", assert(conn:read_response()).body)
    assert.equals("xxx", assert(conn:read_response()).body)
    assert.matches("^POST /echo HTTP/1.1\r\n.*\r\n\r\nbody$", assert(conn:read_response()).body)
    assert.equals("o1", assert(conn:read_response()).body)
    conn:close()
  end)

  it("logs every request as received, and every connection", function()
    local o = h.start_origin { name = "log" }
    local r1 = h.build_request("GET", "/a", { { "X-One", "1" } })
    local r2 = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    assert(h.request(o.port, r1))
    assert(h.request(o.port, r2))
    assert.same({ r1, r2 }, o:requests(2))
    assert.equals(2, o:connections())
    assert.same({}, o:partials())
    o:stop()
  end)

  it("answers a malformed request with 400, closes, and logs it as partial", function()
    local o = h.start_origin { name = "bad" }
    local conn = assert(h.connect(o.port))
    assert(conn:send("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"))
    local resp = assert(conn:read_response())
    assert.equals(400, resp.status)
    assert.equals("close", resp.headers["connection"])
    assert.is_true(conn:is_closed())
    conn:close()
    assert.same({ "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n" }, o:partials(1))
    assert.same({}, o:requests())
    o:stop()
  end)

  it("logs bytes that never became a request as partial", function()
    local o = h.start_origin { name = "part" }
    local conn = assert(h.connect(o.port))
    assert(conn:send("GET /x HTTP/1.1\r\nHost: y\r\n"))
    h.sleep(0.05)
    conn:close()
    assert.same({ "GET /x HTTP/1.1\r\nHost: y\r\n" }, o:partials(1))
    o:stop()
  end)

  it("gives a short body and closes on /close-mid", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/close-mid/1000")))
    local resp, err, partial = conn:read_response()
    assert.is_nil(resp)
    assert.equals("closed", err)
    assert.equals(200, partial.status)
    assert.equals("1000", partial.headers["content-length"])
    assert.equals(500, #partial.body)
    conn:close()
  end)

  it("ends /close-mid-chunked without the last chunk", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/close-mid-chunked/5000")))
    local resp, err, partial = conn:read_response()
    assert.is_nil(resp)
    assert.equals("closed", err)
    assert.equals(2500, #partial.body)
    assert.is_nil(partial.raw:find("\r\n0\r\n\r\n", 1, true))
    conn:close()
  end)

  it("closes without answering on /close-before-response", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/close-before-response")))
    assert.equals("", conn:read_all())
    conn:close()
  end)

  it("honours Connection: close and HTTP/1.0", function()
    for _, raw in ipairs {
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
    } do
      local conn = assert(h.connect(origin.port))
      assert(conn:send(raw))
      local resp = assert(conn:read_response())
      assert.equals("1.1", resp.version)
      assert.equals("close", resp.headers["connection"])
      assert.is_true(conn:is_closed())
      conn:close()
    end
    local conn = assert(h.connect(origin.port))
    assert(conn:send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /name HTTP/1.0\r\n\r\n"))
    assert.equals("keep-alive", assert(conn:read_response()).headers["connection"])
    assert.equals("o1", assert(conn:read_response()).body)
    assert.is_true(conn:is_closed())
    conn:close()
  end)

  it("sends interim responses separately: 100 Continue and 103 Early Hints", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/100")))
    assert.equals(100, assert(conn:read_response()).status)
    local final = assert(conn:read_response())
    assert.equals(200, final.status)
    assert.equals("after continue\n", final.body)
    assert(conn:send(h.build_request("GET", "/103")))
    local hints = assert(conn:read_response())
    assert.equals(103, hints.status)
    assert.equals("</x>; rel=preload", hints.headers["link"])
    assert.equals(200, assert(conn:read_response()).status)
    conn:close()
    -- h.request skips interim responses
    assert.equals(200, assert(h.get(origin.port, "/100")).status)
  end)

  it("sends 100 Continue before the body arrives on /100", function()
    local conn = assert(h.connect(origin.port))
    assert(conn:send("POST /100 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"))
    assert.equals(100, assert(conn:read_response()).status)
    assert(conn:send("abc"))
    assert.equals(200, assert(conn:read_response()).status)
    conn:close()
  end)

  it("waits on /delay/MS and /delay/MS/size/N", function()
    local t = h.now()
    local resp = assert(h.get(origin.port, "/delay/200"))
    assert.equals("delayed\n", resp.body)
    assert.is_true(h.now() - t >= 0.19)
    assert.equals(10, #assert(h.get(origin.port, "/delay/10/size/10")).body)
  end)

  it("trickles /slow/N/MS", function()
    local t = h.now()
    local resp = assert(h.get(origin.port, "/slow/3000/100"))
    assert.equals(3000, #resp.body)
    assert.is_true(h.now() - t >= 0.19)
  end)

  it("lists the request headers as received on /headers", function()
    local resp = assert(h.get(origin.port, "/headers", { { "X-CamelCase", "Value 1" }, { "x-dup", "a" }, { "X-Dup", "b" } }))
    assert.equals("Host: localhost\nX-CamelCase: Value 1\nx-dup: a\nX-Dup: b\n", resp.body)
  end)

  it("tunnels /ws after 101 and refuses it without Upgrade", function()
    assert.equals(400, assert(h.get(origin.port, "/ws")).status)
    local conn = assert(h.connect(origin.port))
    assert(conn:send(h.build_request("GET", "/ws", { { "Connection", "Upgrade" }, { "Upgrade", "websocket" } })
      .. "early bytes"))
    local resp = assert(conn:read_response())
    assert.equals(101, resp.status)
    assert.equals("websocket", resp.headers["upgrade"])
    local got = ""
    while #got < #"early bytes" do got = got .. assert(conn:read_some()) end
    assert.equals("early bytes", got)
    assert(conn:send("ping"))
    assert.equals("ping", assert(conn:read_some()))
    conn:close()
  end)

  local bad = {
    { path = "/bad/status-line", starts = "HTTP/1.1 2OO OK\r\n" },
    { path = "/bad/cl-te", starts = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n" },
    { path = "/bad/two-cl", starts = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n" },
    { path = "/bad/garbage", starts = "\1\2 nonsense\r\n\r\n" },
    { path = "/bad/header-space", starts = "HTTP/1.1 200 OK\r\nFoo : bar\r\n" },
    { path = "/bad/chunk-size", starts = "HTTP/1.1 200 OK\r\nX-Origin-Field: leaked\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" },
  }
  for _, case in ipairs(bad) do
    it("writes the broken response of " .. case.path .. " and closes", function()
      local conn = assert(h.connect(origin.port))
      assert(conn:send(h.build_request("GET", case.path)))
      local all = assert(conn:read_all())
      assert.equals(case.starts, all:sub(1, #case.starts))
      conn:close()
    end)
  end

  it("exits 0 on SIGTERM and SIGINT", function()
    for _, sig in ipairs { "TERM", "INT" } do
      local o = h.start_origin { log = false }
      local conn = assert(h.connect(o.port))
      local code, text = o:stop(sig)
      assert.equals(0, code)
      assert.equals("", text)
      conn:close()
    end
  end)
end)

describe("sluice-origin under awkward clients", function()
  it("parses requests split at every byte and at random places", function()
    local o = h.start_origin { name = "s" }
    local reqs = {
      h.build_request("POST", "/echo/a", { { "X-A", "1" } }, string.rep("b", 5000)),
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "5\r\nhello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
      h.build_request("GET", "/headers", { { "Empty", "" }, { "Y", "z" } }),
      h.build_request("POST", "/size/10", nil, string.rep("q", 100000)),
      h.build_request("GET", "/chunked/9000"),
    }
    local all = table.concat(reqs)
    local small = #reqs[1] + #reqs[2] + #reqs[3]
    math.randomseed(42)
    for round = 1, 10 do
      local conn = assert(h.connect(o.port))
      local i = 1
      while i <= #all do
        local n = (round == 1 and i <= small) and 1 or math.random(1, 3000)
        assert(conn:send(all:sub(i, i + n - 1)))
        i = i + n
      end
      assert.equals(reqs[1], assert(conn:read_response()).body)
      assert.equals(reqs[2], assert(conn:read_response()).body)
      assert.equals("Host: localhost\nEmpty: \nY: z\n", assert(conn:read_response()).body)
      assert.equals(10, #assert(conn:read_response()).body)
      assert.equals(9000, #assert(conn:read_response()).body)
      conn:close()
    end
    local got = o:requests(50)
    assert.equals(50, #got)
    for k = 1, 5 do assert.equals(reqs[k], got[k]) end
    assert.equals(10, o:connections())
    assert.same({}, o:partials())
    o:stop()
  end)

  it("drops large bodies it does not need when not logging", function()
    local o = h.start_origin { log = false }
    local conn = assert(h.connect(o.port))
    assert(conn:send(h.build_request("POST", "/size/10", nil, string.rep("q", 3000000))
      .. h.build_request("POST", "/echo", nil, "tail")))
    assert.equals(10, #assert(conn:read_response()).body)
    assert.matches("tail$", assert(conn:read_response()).body)
    conn:close()
    o:stop()
  end)

  it("survives clients vanishing mid-response", function()
    local o = h.start_origin { name = "v" }
    local upgrade = { { "Upgrade", "websocket" }, { "Connection", "upgrade" } }
    for _, path in ipairs { "/size/50000000", "/slow/100000/10", "/delay/100", "/chunked/50000000", "/ws" } do
      local conn = assert(h.connect(o.port))
      local ws = path == "/ws"
      assert(conn:send(h.build_request("GET", path, ws and upgrade or nil) .. (ws and string.rep("z", 1000000) or "")))
      h.sleep(0.05)
      conn:close()
    end
    h.sleep(0.2)
    assert.equals(200, assert(h.get(o.port, "/")).status)
    assert.equals(0, o:stop())
  end)

  it("serves hundreds of concurrent connections", function()
    local o = h.start_origin { log = false }
    local conns = {}
    for i = 1, 300 do conns[i] = assert(h.connect(o.port)) end
    for i = 1, 300 do assert(conns[i]:send(h.build_request("GET", "/delay/200"))) end
    for i = 1, 300 do
      assert.equals("delayed\n", assert(conns[i]:read_response()).body)
      conns[i]:close()
    end
    o:stop()
  end)
end)

describe("the harness", function()
  it("round-trips through a mock origin", function()
    local mock = h.mock_origin()
    local client = assert(h.connect(mock.port))
    assert(client:send("POST /up HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "2\r\nhi\r\n0\r\n\r\n"))
    local up = assert(mock:accept())
    local req = assert(up:read_request())
    assert.equals("POST", req.method)
    assert.equals("/up", req.target)
    assert.equals("m", req.headers["host"])
    assert.equals("hi", req.body)
    assert.equals("2\r\nhi\r\n0\r\n\r\n", req.raw_body)
    assert(up:send("HTTP/1.1 201 Created\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 2\r\n\r\nok"))
    local resp = assert(client:read_response())
    assert.equals(201, resp.status)
    assert.equals("Created", resp.reason)
    assert.equals("1, 2", resp.headers["x-a"])
    assert.equals("X-A", resp.header_list[1].name)
    assert.equals("ok", resp.body)
    up:close()
    assert.is_true(client:is_closed())
    client:close()
    mock:close()
  end)

  it("reports timeouts and closes", function()
    local mock = h.mock_origin()
    local client = assert(h.connect(mock.port))
    local up = assert(mock:accept())
    local resp, err = client:read_response { timeout = 0.1 }
    assert.is_nil(resp)
    assert.equals("timeout", err)
    assert.is_false(client:is_closed(0.1))
    up:close()
    resp, err = client:read_response()
    assert.is_nil(resp)
    assert.equals("closed", err)
    client:close()
    mock:close()
  end)

  it("starts a proxy stand-in, waits for its port, and stops it", function()
    local port = h.free_port()
    local saved = h.bin
    h.bin = h.origin_bin
    local ok, p = pcall(h.start_proxy, { args = { "--listen", "127.0.0.1:" .. port }, port = port })
    h.bin = saved
    assert(ok, p)
    assert.is_true(p:alive())
    assert.equals(200, assert(h.get(port, "/")).status)
    local code, text = p:stop()
    assert.equals(0, code)
    assert.equals("", text)
    assert.is_false(p:alive())
  end)

  it("fails start_proxy with the process output when it exits", function()
    local saved = h.bin
    h.bin = h.origin_bin
    local ok, err = pcall(h.start_proxy, { config = "listen: 127.0.0.1:1\n" })
    h.bin = saved
    assert.is_false(ok)
    assert.matches("exited with code 2", err)
    assert.matches("unknown argument %-c", err)
  end)

  it("raises from stop() when the output holds a sanitizer report", function()
    local saved = h.bin
    h.bin = "sh"
    local p = h.start_proxy { args = { "-c", "echo '==1==ERROR: AddressSanitizer: heap-use-after-free' >&2; exec sleep 30" } }
    h.bin = saved
    local ok, err = pcall(p.stop, p)
    assert.is_false(ok)
    assert.matches("AddressSanitizer", err)
    assert.is_false(p:alive())
  end)

  it("runs commands and returns their status and output", function()
    local code, out = h.run("echo out; echo err >&2; exit 3")
    assert.equals(3, code)
    assert.equals("out\nerr\n", out)
  end)

  it("hands out distinct free ports", function()
    local seen = {}
    for _ = 1, 20 do
      local p = h.free_port()
      assert.is_nil(seen[p])
      seen[p] = true
      assert.is_false(h.is_listening(p))
    end
  end)
end)
