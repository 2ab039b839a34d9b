-- One spec, two plugins: plugins-lua/request-id.lua and
-- plugins-native/request-id.c run the same cases, unchanged, through
-- spec/plugin_harness.lua: the ids they keep or make, where they put them,
-- and the messages a bad config gets.
local harness = require "spec.plugin_harness"

local KINDS = {
  { kind = "lua", path = "plugins-lua/request-id.lua" },
  { kind = "native", path = harness.native_dir .. "/request-id.so" },
}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function request(ids, header)
  local lines = { "GET / HTTP/1.1", "Host: a" }
  for _, id in ipairs(ids) do lines[#lines + 1] = (header or "X-Request-Id") .. ": " .. id end
  return assert(harness.request(table.concat(lines, "\r\n") .. "\r\n\r\n"))
end

-- Runs both hooks; returns the id fields the origin got, the client's value
-- and the shared ctx value.
local function run(p, req, header)
  header = (header or "X-Request-Id"):lower()
  assert.equal("continue", p:call("request_headers", req))
  local up = harness.parse_head(req:upstream_head())
  local sent = {}
  for _, f in ipairs(up.fields) do
    if f[1]:lower() == header then sent[#sent + 1] = f[2] end
  end
  req:respond_from_origin(204)
  assert.equal("continue", p:call("response_headers", req))
  return sent, harness.parse_head(req:response_head()).headers[header], req:ctx("request_id")
end

for _, k in ipairs(KINDS) do
  describe("the request-id plugin (" .. k.kind .. ")", function()
    local function plugin(config)
      local p, err = harness.load(k.path, config)
      assert(p, err)
      return p
    end

    local cases = {
      { name = "generates a UUID when the client sends none", sent = {}, want = "uuid" },
      { name = "keeps a well-formed id the client sent", sent = { "abc-123.XYZ_9" }, want = "abc-123.XYZ_9" },
      { name = "replaces an id with a space in it", sent = { "abc 123" }, want = "uuid" },
      { name = "replaces an id longer than max_length (200)", sent = { ("x"):rep(201) }, want = "uuid" },
      { name = "keeps an id of exactly max_length", sent = { ("y"):rep(200) }, want = ("y"):rep(200) },
      { name = "replaces an id with a non-ASCII byte", sent = { "caf\195\169" }, want = "uuid" },
      { name = "sends one field upstream when the client sent two", sent = { "first", "second" },
        want = "first" },
      { name = "with trust_incoming: false, replaces the client's id", sent = { "mine" },
        config = { trust_incoming = false }, want = "uuid" },
      { name = "with max_length: 5, replaces a longer id", sent = { "abcdef" },
        config = { max_length = 5 }, want = "uuid" },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", upstream, downstream and in the shared ctx", function()
        local sent, echoed, shared = run(plugin(c.config), request(c.sent))
        assert.equal(1, #sent)
        if c.want == "uuid" then assert.matches(UUID, sent[1]) else assert.equal(c.want, sent[1]) end
        assert.equal(sent[1], echoed)
        assert.equal(sent[1], shared)
      end)
    end

    it("gives every request a different UUID", function()
      local p, seen = plugin(), {}
      for _ = 1, 50 do
        local sent = run(p, request({}))
        assert.is_nil(seen[sent[1]])
        seen[sent[1]] = true
      end
    end)

    it("uses sluice's own id with generator: sluice, in another header", function()
      local req = request({ "client-id" })
      local sent, echoed = run(plugin({ header = "X-Correlation-Id", generator = "sluice" }), req,
                               "X-Correlation-Id")
      assert.same({ req:id() }, sent)
      assert.equal(req:id(), echoed)
    end)

    it("sets the id upstream only with echo_downstream: false", function()
      local sent, echoed = run(plugin({ echo_downstream = false }), request({}))
      assert.matches(UUID, sent[1])
      assert.is_nil(echoed)
    end)

    it("puts the id on another plugin's local reply", function()
      local deny = assert(harness.load_source("deny", [[
        local sluice = require "sluice"
        return { name = "deny", priority = 1,
                 request_headers = function() return sluice.response.exit(503, "down") end }
      ]]))
      local p, req = plugin(), request({ "from-client" })
      assert.equal("continue", p:call("request_headers", req))
      assert.equal("respond", deny:call("request_headers", req))
      assert.equal("continue", p:call("response_headers", req))
      local status, headers = req:reply()
      assert.equal(503, status)
      assert.equal("from-client", headers["x-request-id"])
    end)

    describe("refuses a bad configuration", function()
      local cases = {
        { config = "header: X Request Id",
          error = "config:1:9: plugin request-id: config.header: invalid value \"X Request Id\": must "
                  .. "match the pattern '^[%w!#$%%&'*+%-.^_`|~]+$'" },
        { config = "generator: uuid4",
          error = "config:1:12: plugin request-id: config.generator: expected one of: uuid, sluice; "
                  .. "got \"uuid4\"" },
        { config = "max_length: 0",
          error = "config:1:13: plugin request-id: config.max_length: value should be between 1 and "
                  .. "1024, got 0" },
        { config = "max_length: 2.5",
          error = "config:1:13: plugin request-id: config.max_length: expected an integer, got 2.5" },
        { config = "trust_incoming: yes",
          error = "config:1:17: plugin request-id: config.trust_incoming: expected a boolean, got \"yes\"" },
        { config = "headr: X-Id\nzz: 1\naa: 2",
          error = "config:3:5: plugin request-id: config.aa: unknown field\n"   -- key order
                  .. "config:1:8: plugin request-id: config.headr: unknown field\n"
                  .. "config:2:5: plugin request-id: config.zz: unknown field" },
      }
      for _, c in ipairs(cases) do
        it((c.error:match("config%.%S+: [^\n]*")), function()
          local p, err = harness.load(k.path, c.config)
          assert.is_nil(p)
          assert.equal(c.error, err)
        end)
      end
    end)
  end)
end
