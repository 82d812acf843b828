-- wrk script for tests/load/run: a mix of valid and invalid Redox
-- requests, each on its own connection (Connection: close), with the
-- expected answer checked on every response.
--
-- Environment (set by tests/load/run):
--   RVL_STEADY, RVL_OLD, RVL_NEW  the tokens (steady is configured in every
--                                 generation; old and new are rotated)
--   RVL_PHASE                     file holding the current phase, re-read
--                                 before every request
--
-- Phases say which rotated tokens are configured in every generation that
-- may serve a request sent now, so a request's expected answer depends
-- only on what it carries:
--   pre        old valid, new not yet configured (sent, must be denied)
--   quiet-new  old valid, nothing with new (a graceful restart adds it)
--   both       old and new valid
--   quiet-old  new valid, nothing with old (a graceful restart removes it)
--   post       new valid, old removed (sent, must be denied)
--
-- Every response names its category (X-Rv-Cat, set by the server from the
-- path; a handshake answer, which bypasses mod_headers, echoes a challenge
-- that starts with the category).

local steady = os.getenv("RVL_STEADY")
local old = os.getenv("RVL_OLD")
local new = os.getenv("RVL_NEW")
local phase_file = os.getenv("RVL_PHASE")

local VALID = {
  ["steady-both"] = true, ["steady-lower"] = true, ["health"] = true,
  ["hs-post"] = true, ["hs-get"] = true, ["old-both"] = true,
  ["new-both"] = true,
}

local COMMON = {
  "steady-both", "wrong", "steady-both", "missing", "steady-lower",
  "mismatch", "health", "malformed", "hs-post", "half", "hs-get",
  "hs-wrong", "steady-both", "wrong",
}
local ROTATED = {
  ["pre"] = {"old-both", "new-before", "old-both"},
  ["quiet-new"] = {"old-both", "old-both", "old-both"},
  ["both"] = {"old-both", "new-both", "new-both", "old-both"},
  ["quiet-old"] = {"new-both", "new-both", "new-both"},
  ["post"] = {"new-both", "old-after", "new-both"},
}

local threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

local n = 0
-- globals, read by done() through thread:get()
counts = {}
examples = ""

local function read_phase()
  local f = io.open(phase_file, "r")
  if not f then return "pre" end
  local p = f:read("*l")
  f:close()
  if p and ROTATED[p] then return p end
  return "pre"
end

local function both_headers(token, h)
  h["Authorization"] = "Bearer " .. token
  h["verification-token"] = token
  return h
end

function request()
  n = n + 1
  local phase = read_phase()
  local rot = ROTATED[phase]
  local cat
  if n % 3 == 0 then
    cat = rot[(n / 3) % #rot + 1]
  else
    cat = COMMON[n % #COMMON + 1]
  end
  local id = tid .. "-" .. n
  local path = "/redox/" .. cat .. "/" .. id
  local h = {["Connection"] = "close"}
  local method, body = "GET", nil

  if cat == "steady-both" then both_headers(steady, h)
  elseif cat == "steady-lower" then
    h["Authorization"] = "bearer   " .. steady
    h["verification-token"] = steady
  elseif cat == "old-both" or cat == "old-after" then both_headers(old, h)
  elseif cat == "new-both" or cat == "new-before" then both_headers(new, h)
  elseif cat == "health" then path = "/health/health/" .. id
  elseif cat == "hs-post" then
    method = "POST"
    h["Content-Type"] = "application/json"
    body = '{"verification-token":"' .. steady .. '","challenge":"hs-post-'
           .. id .. '"}'
  elseif cat == "hs-get" then
    path = path .. "?challenge=hs-get-" .. id .. "&verification-token=" .. steady
  elseif cat == "hs-wrong" then
    path = path .. "?challenge=hs-wrong-" .. id
           .. "&verification-token=wrong-" .. id
  elseif cat == "wrong" then both_headers("wrong-token-" .. id, h)
  elseif cat == "mismatch" then
    h["Authorization"] = "Bearer " .. steady
    h["verification-token"] = new .. "x"
  elseif cat == "malformed" then
    h["Authorization"] = "Bearer " .. steady .. " extra"
    h["verification-token"] = steady
  elseif cat == "half" then h["Authorization"] = "Bearer " .. steady
  end
  -- "missing": no token header at all
  return wrk.format(method, path, h, body)
end

function response(status, headers, body)
  local cat = headers["X-Rv-Cat"]
  if cat == nil or cat == "" or cat == "(null)" then
    cat = body and string.match(body, "^(hs%-[a-z]+)%-") or "unknown"
  end
  local want = VALID[cat] and 200 or 401
  local key = cat .. " " .. status
  counts[key] = (counts[key] or 0) + 1
  if status ~= want or cat == "unknown" then
    counts["UNEXPECTED"] = (counts["UNEXPECTED"] or 0) + 1
    if #examples < 2000 then
      examples = examples .. cat .. " got " .. status .. " want " .. want
                 .. "; "
    end
  elseif (cat == "hs-post" or cat == "hs-get")
         and not string.match(body or "",
                              "^" .. cat:gsub("%-", "%%-") .. "%-%d+%-%d+$") then
    counts["UNEXPECTED"] = (counts["UNEXPECTED"] or 0) + 1
    examples = examples .. cat .. " body not the challenge; "
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    "RVLOAD summary requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
  io.write(string.format("RVLOAD latency p50_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do
      io.write("RVLOAD count " .. k .. " " .. v .. "\n")
    end
    local ex = t:get("examples")
    if ex and ex ~= "" then io.write("RVLOAD examples " .. ex .. "\n") end
  end
end
