-- wrk script for the SCIM benchmark.
--   wrk ... -s scim.lua URL -- get PATHS_FILE TOKEN      GET a random path of the file
--   wrk ... -s scim.lua URL -- post PATH TOKEN PREFIX    POST a user with a new userName
--   wrk ... -s scim.lua URL -- send FILE TOKEN           send a random line of FILE, each
--                                                        "METHOD PATH BODY" (BODY: one line)
--   wrk ... -s scim.lua URL -- cookie FILE TOKEN PATH    GET PATH with a random line of FILE
--                                                        as the Cookie header
-- done() prints one line "BENCH_RESULT {json}" (and "BENCH_ERROR ..." for the first non-2xx)
-- that bench/load.py reads.

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

local BODY = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],'
  .. '"userName":"%s@load.example","name":{"givenName":"Load","familyName":"%s"},'
  .. '"displayName":"Load %s","active":true,'
  .. '"emails":[{"value":"%s@mail.load.example","type":"work","primary":true}]}'

function init(args)
  mode = args[1]
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  non2xx = 0
  first_error = ""
  math.randomseed(os.time() * 1000 + thread_id)
  if mode == "get" then
    paths = {}
    for line in io.lines(args[2]) do
      paths[#paths + 1] = line
    end
  elseif mode == "send" then
    sends = {}
    for line in io.lines(args[2]) do
      local method, target, body = string.match(line, "^(%S+) (%S+) ?(.*)$")
      sends[#sends + 1] = {method, target, body ~= "" and body or nil}
    end
    wrk.headers["Content-Type"] = "application/scim+json"
  elseif mode == "cookie" then
    path = args[4]
    requests = {}
    for line in io.lines(args[2]) do
      local headers = {}
      for k, v in pairs(wrk.headers) do
        headers[k] = v
      end
      headers["Cookie"] = line
      requests[#requests + 1] = wrk.format("GET", path, headers)
    end
  else
    path = args[2]
    prefix = args[4] .. "-" .. thread_id .. "-"
    counter = 0
    wrk.headers["Content-Type"] = "application/scim+json"
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", paths[math.random(#paths)])
  end
  if mode == "cookie" then
    return requests[math.random(#requests)]
  end
  if mode == "send" then
    local pick = sends[math.random(#sends)]
    return wrk.format(pick[1], pick[2], nil, pick[3])
  end
  counter = counter + 1
  local name = prefix .. counter
  return wrk.format("POST", path, nil, string.format(BODY, name, name, name, name))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_error == "" then
      first_error = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    local sample = thread:get("first_error")
    if sample ~= "" then
      io.write("BENCH_ERROR " .. string.gsub(sample, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
