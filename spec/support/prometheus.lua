-- spec/support/prometheus.lua: a strict parser for the Prometheus text
-- exposition format 0.0.4, for the metrics specs (promtool is not
-- installed here; this checks what `promtool check metrics` would, and the
-- histogram rules besides).
--
--   local prom = require "spec.support.prometheus"
--   local fams = prom.parse(text)          -- raises on the first violation
--   prom.value(fams, "sluice_requests_total", { route = "/", method = "GET", status = "2xx" })
--   prom.sum(fams, "sluice_requests_total", { status = "4xx" })
--
-- Checked: every line ends in "\n"; comments are "# HELP name text" and
-- "# TYPE name type" (or free text); HELP and TYPE at most once per name,
-- before the family's first sample; a family's samples form one group;
-- metric and label names are valid, no label name starts with "__" or is
-- given twice; label values use only the escapes \\, \" and \n; values
-- are Go floats (NaN, +Inf, -Inf included) and timestamps integers; no
-- series appears twice. Counters are >= 0. A histogram family holds only
-- name_bucket (with le), name_sum and name_count; per label set the le
-- bounds increase, end at +Inf, the counts are cumulative
-- (non-decreasing), the +Inf count equals _count, and _sum and _count are
-- there.

local M = {}

local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function fail(lineno, line, msg)
  error(string.format("metrics line %d: %s: %q", lineno, msg, line), 0)
end

local function is_metric_name(s) return s:match("^[%a_:][%w_:]*$") ~= nil end
local function is_label_name(s) return s:match("^[%a_][%w_]*$") ~= nil end

-- Go's strconv.ParseFloat, as far as the format uses it.
local function parse_float(s)
  if s == "NaN" then return 0 / 0 end
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if not s:match("^[+-]?%d*%.?%d*[eE]?[+-]?%d*$") or not s:match("%d") then return nil end
  return tonumber(s)
end

-- Reads a HELP docstring: only \\ and \n are escapes.
local function unescape_help(s, lineno, line)
  return (s:gsub("\\(.?)", function(c)
    if c == "\\" then return "\\" end
    if c == "n" then return "\n" end
    fail(lineno, line, "bad escape in HELP: \\" .. c)
  end))
end

-- Parses `{a="x",b="y"}` starting at i (the '{'); returns labels, the
-- canonical text of the set and the index after '}'.
local function parse_labels(line, i, lineno)
  local labels, names = {}, {}
  i = i + 1
  while true do
    if line:sub(i, i) == "}" then i = i + 1; break end
    local name, j = line:match("^([%a_][%w_]*)=\"()", i)
    if not name then fail(lineno, line, "bad label at column " .. i) end
    if name:sub(1, 2) == "__" then fail(lineno, line, "reserved label name " .. name) end
    if labels[name] ~= nil then fail(lineno, line, "label " .. name .. " given twice") end
    local buf = {}
    while true do
      local c = line:sub(j, j)
      if c == "" then fail(lineno, line, "unterminated label value") end
      if c == "\"" then j = j + 1; break end
      if c == "\\" then
        local e = line:sub(j + 1, j + 1)
        if e == "\\" then buf[#buf + 1] = "\\"
        elseif e == "\"" then buf[#buf + 1] = "\""
        elseif e == "n" then buf[#buf + 1] = "\n"
        else fail(lineno, line, "bad escape in label value: \\" .. e) end
        j = j + 2
      else
        buf[#buf + 1] = c
        j = j + 1
      end
    end
    labels[name] = table.concat(buf)
    names[#names + 1] = name
    local sep = line:sub(j, j)
    if sep == "," then
      i = j + 1
      if line:sub(i, i) == "}" then i = i + 1; break end  -- a trailing comma is allowed
    elseif sep == "}" then
      i = j + 1
      break
    else
      fail(lineno, line, "expected ',' or '}' after a label value")
    end
  end
  table.sort(names)
  local parts = {}
  for _, n in ipairs(names) do parts[#parts + 1] = n .. "=" .. string.format("%q", labels[n]) end
  return labels, table.concat(parts, ","), i
end

-- The family a sample name belongs to, given the TYPEs seen so far.
local function family_of(fams, name)
  for _, suffix in ipairs { "_bucket", "_sum", "_count" } do
    if name:sub(-#suffix) == suffix then
      local base = name:sub(1, -#suffix - 1)
      local f = fams[base]
      if f and (f.type == "histogram" or (f.type == "summary" and suffix ~= "_bucket")) then
        return base
      end
    end
  end
  return name
end

local function check_histogram(f)
  local sets = {}
  for _, s in ipairs(f.samples) do
    local key_labels = {}
    for k, v in pairs(s.labels) do if k ~= "le" then key_labels[k] = v end end
    local names = {}
    for k in pairs(key_labels) do names[#names + 1] = k end
    table.sort(names)
    local parts = {}
    for _, n in ipairs(names) do parts[#parts + 1] = n .. "=" .. string.format("%q", key_labels[n]) end
    local key = table.concat(parts, ",")
    local set = sets[key] or { buckets = {} }
    sets[key] = set
    local suffix = s.name:sub(#f.name + 1)
    if suffix == "_bucket" then
      local le = s.labels.le
      if le == nil then error("histogram " .. f.name .. ": a bucket without le", 0) end
      local bound = parse_float(le)
      if bound == nil or bound ~= bound then error("histogram " .. f.name .. ": bad le " .. le, 0) end
      set.buckets[#set.buckets + 1] = { le = bound, count = s.value }
    elseif suffix == "_sum" then
      if s.labels.le then error("histogram " .. f.name .. ": _sum with le", 0) end
      set.sum = s.value
    elseif suffix == "_count" then
      if s.labels.le then error("histogram " .. f.name .. ": _count with le", 0) end
      set.count = s.value
    else
      error("histogram " .. f.name .. ": unexpected sample " .. s.name, 0)
    end
  end
  for key, set in pairs(sets) do
    local where = "histogram " .. f.name .. "{" .. key .. "}"
    local b = set.buckets
    if #b == 0 then error(where .. ": no buckets", 0) end
    for i = 2, #b do
      if not (b[i].le > b[i - 1].le) then error(where .. ": le bounds not increasing", 0) end
      if b[i].count < b[i - 1].count then error(where .. ": bucket counts not cumulative", 0) end
    end
    if b[#b].le ~= math.huge then error(where .. ": the last bucket is not +Inf", 0) end
    if set.count == nil or set.sum == nil then error(where .. ": _sum or _count missing", 0) end
    if b[#b].count ~= set.count then
      error(where .. ": +Inf bucket " .. b[#b].count .. " ~= _count " .. set.count, 0)
    end
    if set.count < 0 or math.floor(set.count) ~= set.count then
      error(where .. ": _count is not a count", 0)
    end
  end
end

--- prom.parse(text) -> families: name -> { name, type, help, samples =
--- { { name, labels, value } ... } }, in the order given (families.order
--- lists the names). Raises with the line at fault.
function M.parse(text)
  assert(type(text) == "string", "prom.parse: text expected")
  if text ~= "" and text:sub(-1) ~= "\n" then error("metrics: the last line does not end in \\n", 0) end
  local fams, order, series = {}, {}, {}
  local current, closed = nil, {}
  local function family(name, lineno, line)
    local f = fams[name]
    if not f then
      if closed[name] then fail(lineno, line, "family " .. name .. " appears in two groups") end
      f = { name = name, samples = {} }
      fams[name] = f
      order[#order + 1] = name
    end
    if current ~= name then
      if current then closed[current] = true end
      if closed[name] then fail(lineno, line, "family " .. name .. " appears in two groups") end
      current = name
    end
    return f
  end
  local lineno = 0
  for line in text:gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    if line == "" then
      -- blank lines are allowed
    elseif line:sub(1, 1) == "#" then
      local kw, name, rest = line:match("^#%s+(%u+)%s+(%S+)%s?(.*)$")
      if kw == "HELP" then
        if not is_metric_name(name) then fail(lineno, line, "bad metric name in HELP") end
        local f = family(name, lineno, line)
        if f.help ~= nil then fail(lineno, line, "second HELP for " .. name) end
        if #f.samples > 0 then fail(lineno, line, "HELP after samples of " .. name) end
        f.help = unescape_help(rest, lineno, line)
      elseif kw == "TYPE" then
        if not is_metric_name(name) then fail(lineno, line, "bad metric name in TYPE") end
        if not TYPES[rest] then fail(lineno, line, "unknown type " .. tostring(rest)) end
        local f = family(name, lineno, line)
        if f.type ~= nil then fail(lineno, line, "second TYPE for " .. name) end
        if #f.samples > 0 then fail(lineno, line, "TYPE after samples of " .. name) end
        f.type = rest
      end
      -- any other comment is free text
    else
      local name, i = line:match("^([%a_:][%w_:]*)()")
      if not name then fail(lineno, line, "bad metric name") end
      local labels, key = {}, ""
      if line:sub(i, i) == "{" then labels, key, i = parse_labels(line, i, lineno) end
      local rest = line:sub(i)
      local v, ts = rest:match("^ (%S+)$")
      if not v then v, ts = rest:match("^ (%S+) (%S+)$") end
      if not v then fail(lineno, line, "expected ' value [timestamp]'") end
      local value = parse_float(v)
      if value == nil then fail(lineno, line, "bad value " .. v) end
      if ts and not ts:match("^-?%d+$") then fail(lineno, line, "bad timestamp " .. ts) end
      local fname = family_of(fams, name)
      local f = family(fname, lineno, line)
      local id = name .. "{" .. key .. "}"
      if series[id] then fail(lineno, line, "series given twice") end
      series[id] = true
      if f.type == "counter" and (value < 0 or value ~= value) then
        fail(lineno, line, "negative counter")
      end
      if f.type == "histogram" and name == fname then
        fail(lineno, line, "a histogram's samples are _bucket, _sum and _count")
      end
      f.samples[#f.samples + 1] = { name = name, labels = labels, value = value }
    end
  end
  for _, name in ipairs(order) do
    if fams[name].type == "histogram" then check_histogram(fams[name]) end
  end
  fams.order = order
  return fams
end

local function matches(labels, want, exact)
  for k, v in pairs(want) do if labels[k] ~= v then return false end end
  if exact then
    for k in pairs(labels) do if want[k] == nil then return false end end
  end
  return true
end

local function samples_named(fams, sample)
  local f = fams[family_of(fams, sample)]
  return f and f.samples or {}
end

--- prom.value(fams, sample, labels) -> the value of the sample with
--- exactly these labels, or nil.
function M.value(fams, sample, labels)
  for _, s in ipairs(samples_named(fams, sample)) do
    if s.name == sample and matches(s.labels, labels or {}, true) then return s.value end
  end
  return nil
end

--- prom.sum(fams, sample, labels) -> the sum of the samples whose labels
--- include these (0 when none).
function M.sum(fams, sample, labels)
  local total = 0
  for _, s in ipairs(samples_named(fams, sample)) do
    if s.name == sample and matches(s.labels, labels or {}, false) then total = total + s.value end
  end
  return total
end

return M
