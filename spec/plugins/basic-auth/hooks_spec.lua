-- The basic-auth plugin's hooks, run by the plugin harness against
-- requests written here (the real core, no proxy): how it reads the
-- Authorization field, what the origin and the later plugins get for a
-- valid user, the 401 for each refusal, and the configurations it refuses,
-- message for message. The integration spec checks the same plugin
-- through the running proxy (and the padding edges of its SHA-256).
--
-- Run: make build/libsluice.so && busted --lua=luajit spec/plugins/basic-auth/
local harness = require "spec.plugin_harness"
local mime = require "mime"

local PATH = "plugins-lua/basic-auth.lua"

local REQUIRED = '{"message":"Authentication required"}'
local NOT_BASIC = '{"message":"Authentication required (Basic)"}'
local MALFORMED = '{"message":"Malformed Basic credentials"}'
local INVALID = '{"message":"Invalid user name or password"}'
local TWO = '{"message":"More than one Authorization header"}'

-- printf '%s' hunter2 | sha256sum; printf '%s' peppers3cret | sha256sum
local HUNTER2 = "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
local PEPPER_S3CRET = "ed94ab2a21f16d3f74de0539de726c74ea6f9e73ddd37feb6c1ebdb90bbb31e2"

-- Plain and hashed users.
local USERS = {
  alice = { password = "wonder land" },
  bob = { sha256 = HUNTER2 },
  carol = { sha256 = PEPPER_S3CRET, salt = "pepper" },
  dora = { sha256 = HUNTER2:upper() },
  ["zoë"] = { password = "a:b:c" },
}

local function basic(user_pass)
  return "Basic " .. (mime.b64(user_pass))
end

local function plugin(config)
  local p, err = harness.load(PATH, config)
  assert(p, err)
  return p
end

-- GET /private with the fields in sent (a list of pairs).
local function request(sent)
  local lines = { "GET /private HTTP/1.1", "Host: api.example" }
  for _, f in ipairs(sent) do lines[#lines + 1] = f[1] .. ": " .. f[2] end
  return assert(harness.request(table.concat(lines, "\r\n") .. "\r\n\r\n"))
end

-- The values of the field called name (any case) in a list of fields.
local function values(fields, name)
  local t = {}
  for _, f in ipairs(fields) do
    if f[1]:lower() == name:lower() then t[#t + 1] = f[2] end
  end
  return t
end

describe("basic-auth", function()
  describe("lets a valid user through", function()
    -- auth: the Authorization value; user: who it names. The origin gets
    -- Authorization as sent, and sluice.ctx authenticated_user the name.
    local cases = {
      { name = "with a plain password", auth = basic("alice:wonder land"), user = "alice" },
      { name = "with a SHA-256 password", auth = basic("bob:hunter2"), user = "bob" },
      { name = "with a salted SHA-256 password", auth = basic("carol:s3cret"), user = "carol" },
      { name = "with a SHA-256 configured in upper-case hex", auth = basic("dora:hunter2"), user = "dora" },
      { name = "with a UTF-8 name and a password holding colons (split at the first)",
        auth = basic("zoë:a:b:c"), user = "zoë" },
      { name = "with the scheme in capitals", auth = "BASIC " .. mime.b64("bob:hunter2"), user = "bob" },
      { name = "with several spaces after the scheme", auth = "Basic   " .. mime.b64("bob:hunter2"),
        user = "bob" },
      { name = "with base64 without its padding", auth = "Basic YWxpY2U6d29uZGVyIGxhbmQ",
        user = "alice" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p = plugin({ users = USERS })
        local req = request({ { "Authorization", c.auth }, { "X-User", "client" } })
        assert.equal("continue", p:call("request_headers", req))
        assert.is_nil(req:reply())
        assert.equal(c.user, req:ctx("authenticated_user"))
        local head = harness.parse_head(assert(req:upstream_head()))
        assert.same({ c.auth }, values(head.fields, "Authorization"))
        assert.same({ "client" }, values(head.fields, "X-User"))
      end)
    end

    it("without Authorization for the origin, with hide_credentials", function()
      local p = plugin({ users = USERS, hide_credentials = true })
      local req = request({ { "Authorization", basic("carol:s3cret") }, { "X-Other", "o" } })
      assert.equal("continue", p:call("request_headers", req))
      local head = harness.parse_head(assert(req:upstream_head()))
      assert.same({}, values(head.fields, "Authorization"))
      assert.same({ "o" }, values(head.fields, "X-Other"))
      assert.equal("carol", req:ctx("authenticated_user"))
    end)

    it("naming the user to the origin in user_header, replacing the client's fields", function()
      local p = plugin({ users = USERS, user_header = "X-User" })
      local req = request({ { "X-User", "admin" }, { "Authorization", basic("bob:hunter2") },
                            { "x-user", "root" } })
      assert.equal("continue", p:call("request_headers", req))
      local head = harness.parse_head(assert(req:upstream_head()))
      assert.same({ "bob" }, values(head.fields, "X-User"))
      assert.same({ basic("bob:hunter2") }, values(head.fields, "Authorization"))
    end)
  end)

  describe("answers 401 itself", function()
    -- sent: the request's Authorization fields; body: the reply's body.
    local cases = {
      { name = "to a request without Authorization", sent = {}, body = REQUIRED },
      { name = "to another scheme", sent = { "Bearer " .. mime.b64("alice:wonder land") }, body = NOT_BASIC },
      { name = "to a scheme that only starts with Basic", sent = { "Basically " .. mime.b64("a:b") },
        body = NOT_BASIC },
      { name = "to \"Basic\" without credentials", sent = { "Basic" }, body = NOT_BASIC },
      { name = "to a tab after the scheme", sent = { "Basic\t" .. mime.b64("alice:wonder land") },
        body = NOT_BASIC },
      -- YWxpY2U6eA== is "alice:x"; each case spoils one of a group's four places
      { name = "to credentials outside the base64 alphabet (1st of 4)", sent = { "Basic YWxp*2U6eA==" },
        body = MALFORMED },
      { name = "to credentials outside the base64 alphabet (2nd of 4)", sent = { "Basic YWxpY*U6eA==" },
        body = MALFORMED },
      { name = "to credentials outside the base64 alphabet (3rd of 4)", sent = { "Basic YW*pY2U6eA==" },
        body = MALFORMED },
      { name = "to credentials outside the base64 alphabet (4th of 4)", sent = { "Basic YWx*Y2U6eA==" },
        body = MALFORMED },
      -- "a?>:b" is YT8+OmI= in base64
      { name = "to base64url instead of base64", sent = { "Basic YT8-OmI=" }, body = MALFORMED },
      { name = "to base64 of an impossible length", sent = { "Basic YWxpY" }, body = MALFORMED },
      { name = "to base64 with a space inside", sent = { "Basic YWxp Y2U6eA==" }, body = MALFORMED },
      { name = "to credentials without a colon", sent = { basic("alice") }, body = MALFORMED },
      { name = "to a wrong password", sent = { basic("alice:wonderland") }, body = INVALID },
      { name = "to an empty password", sent = { basic("alice:") }, body = INVALID },
      { name = "to a password with more after it", sent = { basic("alice:wonder land!") }, body = INVALID },
      { name = "to a user name in another case", sent = { basic("Alice:wonder land") }, body = INVALID },
      { name = "to an unknown user", sent = { basic("mallory:hunter2") }, body = INVALID },
      { name = "to an empty user name", sent = { basic(":wonder land") }, body = INVALID },
      { name = "to the stored hash given as the password", sent = { basic("bob:" .. HUNTER2) },
        body = INVALID },
      { name = "to a salted user's password without the salt applied by the client",
        sent = { basic("carol:peppers3cret") }, body = INVALID },
      { name = "to two Authorization fields, even both valid",
        sent = { basic("alice:wonder land"), basic("bob:hunter2") }, body = TWO },
    }
    for _, c in ipairs(cases) do
      it(c.name .. ", and nothing goes upstream", function()
        local p = plugin({ users = USERS })
        local fields = {}
        for i, a in ipairs(c.sent) do fields[i] = { "Authorization", a } end
        local req = request(fields)
        assert.equal("respond", p:call("request_headers", req))
        local status, headers, body = req:reply()
        assert.equal(401, status)
        assert.equal('Basic realm="sluice"', headers["www-authenticate"])
        assert.equal("application/json", headers["content-type"])
        assert.equal(c.body, body)
        assert.is_nil(req:ctx("authenticated_user"))
        assert.is_nil(req:upstream_head())
      end)
    end

    it("to an unknown user when every user has a plain password", function()
      local p = plugin({ users = { alice = { password = "pw" } } })
      local req = request({ { "Authorization", basic("bob:pw") } })
      assert.equal("respond", p:call("request_headers", req))
      local status, _, body = req:reply()
      assert.equal(401, status)
      assert.equal(INVALID, body)
    end)

    it("naming the configured realm", function()
      local p = plugin({ users = USERS, realm = "staff only", user_header = "X-User" })
      local req = request({ { "Authorization", basic("alice:nope") } })
      assert.equal("respond", p:call("request_headers", req))
      local status, headers = req:reply()
      assert.equal(401, status)
      assert.equal('Basic realm="staff only"', headers["www-authenticate"])
      assert.is_nil(headers["x-user"])
    end)
  end)

  describe("refuses a bad configuration", function()
    -- config: a table, or YAML text; error: the whole message.
    local cases = {
      { name = "no users", config = { realm = "x" },
        error = "plugin basic-auth: config.users: required field missing" },
      { name = "users given as a list", config = { users = { { password = "x" } } },
        error = "plugin basic-auth: config.users: expected a map, got an array" },
      { name = "a user with neither password nor sha256", config = { users = { a = { salt = "x" } } },
        error = "plugin basic-auth: config.users.a: needs a password or a sha256" },
      { name = "a user with both", config = { users = { a = { password = "x", sha256 = HUNTER2 } } },
        error = "plugin basic-auth: config.users.a: has both a password and a sha256: keep one" },
      { name = "a salt with a plain password", config = { users = { a = { password = "x", salt = "s" } } },
        error = "plugin basic-auth: config.users.a: a salt goes with a sha256" },
      { name = "a sha256 one digit short", config = { users = { a = { sha256 = HUNTER2:sub(2) } } },
        error = "plugin basic-auth: config.users.a.sha256: length must be at least 64" },
      { name = "a sha256 one digit long", config = { users = { a = { sha256 = HUNTER2 .. "0" } } },
        error = "plugin basic-auth: config.users.a.sha256: length must be at most 64" },
      { name = "an empty password", config = { users = { a = { password = "" } } },
        error = "plugin basic-auth: config.users.a.password: length must be at least 1" },
      { name = "an unknown user attribute", config = { users = { a = { password = "x", hash = "y" } } },
        error = "plugin basic-auth: config.users.a.hash: unknown field" },
      { name = "a realm with a quote", config = { users = USERS, realm = 'a"b' },
        error = "plugin basic-auth: config.realm: a realm cannot contain '\"', '\\' or control bytes" },
      { name = "a user_header that is not a token", config = { users = USERS, user_header = "X:User" },
        error = "plugin basic-auth: config.user_header: invalid value \"X:User\": must match the "
                .. "pattern '^[%w!#$%%&'*+%-.^_`|~]+$'" },
      { name = "an unquoted number as a password", config = "users:\n  a: {password: 1234}",
        error = "config:2:17: plugin basic-auth: config.users.a.password: expected a string, got 1234" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local p, err = harness.load(PATH, c.config)
        assert.is_nil(p)
        assert.equal(c.error, err)
      end)
    end

    it("a user name with a colon, naming the key", function()
      local p, err = harness.load(PATH, { users = { ["a:b"] = { password = "x" } } })
      assert.is_nil(p)
      assert.matches("^plugin basic%-auth: config%.users%.a:b: invalid key", err)
    end)
  end)
end)
