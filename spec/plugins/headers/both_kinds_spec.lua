-- One spec, two plugins: plugins-lua/headers.lua and plugins-native/headers.c
-- run the same cases, unchanged, through spec/plugin_harness.lua (the
-- proxy's own loader and request code, via build/libsluice.so). What one
-- kind does, the other must do byte for byte: the fields the origin and the
-- client get, and the messages a bad config gets.
--
-- Run: busted --lua=luajit spec/plugins/headers/both_kinds_spec.lua
-- (after `make`, which builds the native plugin next to the library).
local harness = require "spec.plugin_harness"

local KINDS = {
  { kind = "lua", path = "plugins-lua/headers.lua" },
  { kind = "native", path = harness.native_dir .. "/headers.so" },
}

local function raw_request(fields)
  local lines = { "GET /echo HTTP/1.1", "Host: a.example" }
  for _, f in ipairs(fields) do lines[#lines + 1] = f[1] .. ": " .. f[2] end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- The values of the field called name (any case) in a head's field list.
local function values(fields, name)
  local t = {}
  for _, f in ipairs(fields) do
    if f[1]:lower() == name:lower() then t[#t + 1] = f[2] end
  end
  return t
end

for _, k in ipairs(KINDS) do
  describe("the headers plugin (" .. k.kind .. ")", function()
    local function plugin(config)
      local p, err = harness.load(k.path, config)
      assert(p, err)
      assert.equal(k.kind, p.kind)
      return p
    end

    describe("on the request to the origin", function()
      -- config: the plugin's config (YAML); sent: the client's fields;
      -- want: lower-case name -> the values the origin must get ({}: none).
      local cases = {
        { name = "add appends a field, after the client's",
          config = "{request: {add: {X-Tag: two}}}",
          sent = { { "X-Tag", "one" } }, want = { ["x-tag"] = { "one", "two" } } },
        { name = "set replaces every field of the name",
          config = "{request: {set: {X-Tag: mine}}}",
          sent = { { "X-Tag", "one" }, { "x-tag", "two" } }, want = { ["x-tag"] = { "mine" } } },
        { name = "set adds the field when the client sent none",
          config = "{request: {set: {X-Tag: mine}}}",
          sent = {}, want = { ["x-tag"] = { "mine" } } },
        { name = "remove drops every field of the name, in any case",
          config = "{request: {remove: [x-secret, X-Other]}}",
          sent = { { "X-Secret", "1" }, { "X-SECRET", "2" }, { "X-Keep", "k" } },
          want = { ["x-secret"] = {}, ["x-other"] = {}, ["x-keep"] = { "k" } } },
        { name = "rename moves every field, in order",
          config = "{request: {rename: {X-Old: X-New}}}",
          sent = { { "X-Old", "a" }, { "X-Mid", "m" }, { "x-old", "b" } },
          want = { ["x-old"] = {}, ["x-new"] = { "a", "b" }, ["x-mid"] = { "m" } } },
        { name = "rename replaces fields of the new name",
          config = "{request: {rename: {X-Old: X-New}}}",
          sent = { { "X-New", "client" }, { "X-Old", "a" } },
          want = { ["x-old"] = {}, ["x-new"] = { "a" } } },
        { name = "rename of an absent field changes nothing",
          config = "{request: {rename: {X-Old: X-New}}}",
          sent = { { "X-New", "client" } }, want = { ["x-new"] = { "client" } } },
        { name = "renames happen at once: {a: b, b: a} swaps",
          config = "{request: {rename: {X-A: X-B, X-B: X-A}}}",
          sent = { { "X-A", "was-a" }, { "X-B", "was-b" } },
          want = { ["x-a"] = { "was-b" }, ["x-b"] = { "was-a" } } },
        { name = "two names renamed to one keep both values",
          config = "{request: {rename: {X-A: X-C, X-B: X-C}}}",
          sent = { { "X-A", "a" }, { "X-B", "b" } },
          want = { ["x-a"] = {}, ["x-b"] = {}, ["x-c"] = { "a", "b" } } },
        { name = "operations run as remove, rename, set, add",
          config = "{request: {remove: [X-A], rename: {X-B: X-A}, set: {X-C: set}, add: {X-C: added}}}",
          sent = { { "X-A", "client-a" }, { "X-B", "client-b" }, { "X-C", "client-c" } },
          want = { ["x-a"] = { "client-b" }, ["x-b"] = {}, ["x-c"] = { "set", "added" } } },
        { name = "operations of one kind go in name order, whatever the YAML order",
          config = "{request: {add: {X-Z: z, x-b: b, X-A: a}}}",
          sent = {}, order = { "X-A", "x-b", "X-Z" } },
        { name = "values are sent byte for byte (quoted numbers, spaces, UTF-8)",
          config = "{request: {set: {X-Num: \"42\", X-Text: \"a  b, c\", X-Utf: \"é\"}}}",
          sent = {}, want = { ["x-num"] = { "42" }, ["x-text"] = { "a  b, c" }, ["x-utf"] = { "é" } } },
        { name = "response changes leave the request alone",
          config = "{response: {remove: [X-Tag], add: {X-Tag: resp}}}",
          sent = { { "X-Tag", "client" } }, want = { ["x-tag"] = { "client" } } },
        { name = "no config changes nothing",
          config = nil,
          sent = { { "X-Tag", "client" } }, want = { ["x-tag"] = { "client" } } },
      }
      for _, c in ipairs(cases) do
        it(c.name, function()
          local p = plugin(c.config)
          local req = assert(harness.request(raw_request(c.sent)))
          assert.equal("continue", p:call("request_headers", req))
          local head = harness.parse_head(assert(req:upstream_head()))
          for name, want in pairs(c.want or {}) do
            assert.same(want, values(head.fields, name), name)
          end
          if c.order then
            local got = {}
            for _, f in ipairs(head.fields) do
              if f[1]:match("^[Xx]%-%a$") then got[#got + 1] = f[1] end
            end
            assert.same(c.order, got)
          end
        end)
      end
    end)

    describe("on the response to the client", function()
      local ORIGIN = { { "Content-Type", "text/plain" }, { "X-Origin-Name", "origin" },
                       { "Cache-Control", "no-store" }, { "Content-Length", "2" } }
      local cases = {
        { name = "add, set and remove",
          config = "{response: {add: {X-Frame-Options: DENY}, set: {Content-Type: text/x-echo}, "
                   .. "remove: [X-Origin-Name]}}",
          want = { ["x-frame-options"] = { "DENY" }, ["content-type"] = { "text/x-echo" },
                   ["x-origin-name"] = {} } },
        { name = "rename of a field the origin sent",
          config = "{response: {rename: {X-Origin-Name: X-Backend}}}",
          want = { ["x-backend"] = { "origin" }, ["x-origin-name"] = {} } },
        { name = "add keeps the origin's field and appends one",
          config = "{response: {add: {X-Origin-Name: proxy}}}",
          want = { ["x-origin-name"] = { "origin", "proxy" } } },
        { name = "request changes leave the response alone",
          config = "{request: {remove: [X-Origin-Name], set: {X-Frame-Options: x}}}",
          want = { ["x-origin-name"] = { "origin" }, ["x-frame-options"] = {} } },
      }
      for _, c in ipairs(cases) do
        it(c.name, function()
          local p = plugin(c.config)
          local req = assert(harness.request(raw_request({})))
          assert.equal("continue", p:call("request_headers", req))
          req:respond_from_origin(200, ORIGIN)
          assert.equal("continue", p:call("response_headers", req))
          local head = harness.parse_head(assert(req:response_head()))
          for name, want in pairs(c.want) do
            assert.same(want, values(head.fields, name), name)
          end
          assert.same({ "2" }, values(head.fields, "Content-Length"))
        end)
      end

      it("also changes another plugin's local reply", function()
        local deny = assert(harness.load_source("deny", [[
          local sluice = require "sluice"
          return { name = "deny", priority = 900,
                   request_headers = function()
                     return sluice.response.exit(503, "down\n", { ["Cache-Control"] = "no-store" })
                   end }
        ]]))
        local p = plugin("{response: {set: {X-Frame-Options: DENY}, remove: [Cache-Control]}}")
        local req = assert(harness.request(raw_request({})))
        assert.equal("respond", deny:call("request_headers", req))
        assert.equal("continue", p:call("response_headers", req))
        local status, headers, body = req:reply()
        assert.equal(503, status)
        assert.equal("DENY", headers["x-frame-options"])
        assert.is_nil(headers["cache-control"])
        assert.equal("down\n", body)
      end)
    end)

    describe("refuses a bad configuration", function()
      -- config: YAML text; error: the whole message ("config:LINE:COL: ...").
      local cases = {
        { name = "a field the proxy manages (Host)",
          config = "request:\n  set: {Host: example.com}",
          error = "config:2:8: plugin headers: config.request.set: 'Host' is managed by the "
                  .. "proxy and cannot be changed by a plugin" },
        { name = "a framing field (Content-Length) in remove",
          config = "response:\n  remove: [X-A, content-length]",
          error = "config:2:17: plugin headers: config.response.remove[1]: 'content-length' is "
                  .. "managed by the proxy and cannot be changed by a plugin" },
        { name = "a framing field as a rename target",
          config = "request:\n  rename: {X-A: Transfer-Encoding}",
          error = "config:2:17: plugin headers: config.request.rename.X-A: 'Transfer-Encoding' is "
                  .. "managed by the proxy and cannot be changed by a plugin" },
        { name = "a name that is not a token",
          config = "request:\n  add: {\"X Tag\": v}",
          error = "config:2:18: plugin headers: config.request.add.X Tag: invalid key: invalid "
                  .. "value \"X Tag\": must match the pattern '^[%w!#$%%&'*+%-.^_`|~]+$'" },
        { name = "an unquoted number as a value",
          config = "request:\n  set: {X-Version: 2}",
          error = "config:2:20: plugin headers: config.request.set.X-Version: expected a string, got 2" },
        { name = "a value with a line break",
          config = "response:\n  add: {X-A: \"a\\r\\nInjected: 1\"}",
          error = "config:2:14: plugin headers: config.response.add.X-A: a header value cannot "
                  .. "contain CR, LF or NUL" },
        { name = "an unknown operation",
          config = "request:\n  append: {X-A: b}",
          error = "config:2:11: plugin headers: config.request.append: unknown field" },
        { name = "remove given as a mapping",
          config = "request:\n  remove: {X-A: b}",
          error = "config:2:11: plugin headers: config.request.remove: expected an array, got a map" },
        { name = "a side given as a string",
          config = "response: none",
          error = "config:1:11: plugin headers: config.response: expected a record (a map), "
                  .. "got \"none\"" },
        { name = "an unknown side",
          config = "requests: {}",
          error = "config:1:11: plugin headers: config.requests: unknown field" },
        { name = "several problems, each on its own line, in the schema's order",
          config = "request:\n  remove: [7]\n  set: {Host: h}\nzzz: 1\naaa: 2",
          error = table.concat({
            "config:2:12: plugin headers: config.request.remove[0]: expected a string, got 7",
            "config:3:8: plugin headers: config.request.set: 'Host' is managed by the proxy and "
              .. "cannot be changed by a plugin",
            "config:5:6: plugin headers: config.aaa: unknown field",
            "config:4:6: plugin headers: config.zzz: unknown field",
          }, "\n") },
      }
      for _, c in ipairs(cases) do
        it(c.name .. ", naming line:col, plugin and key path", function()
          local p, err = harness.load(k.path, c.config)
          assert.is_nil(p)
          assert.equal(c.error, err)
        end)
      end
    end)
  end)
end
