-- One playback event per request, with a varying user so records spread over partitions.
local users = {}
for i = 1, 64 do
  users[i] = string.format("%08x-0000-4000-8000-%012x", i, i)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "bench-key"
request = function()
  n = n + 1
  local user = users[(n % 64) + 1]
  local body = '{"user_id":"' .. user .. '","movie_id":"0b8d2f64-5d9e-4a36-a4f3-3f8e3a2b9c77","event_type":"play","position_ms":' .. n .. '}'
  return wrk.format(nil, nil, nil, body)
end
