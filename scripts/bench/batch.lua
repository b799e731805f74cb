-- A batch of BATCH_SIZE playback events per request (JSON array).
local size = tonumber(os.getenv("BATCH_SIZE") or "1000")
local items = {}
for i = 1, size do
  items[i] = string.format('{"type":"playback_event","user_id":"%08x-0000-4000-8000-%012x","movie_id":"0b8d2f64-5d9e-4a36-a4f3-3f8e3a2b9c77","event_type":"pause","position_ms":%d}', i % 64, i % 64, i)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "bench-key"
wrk.body = "[" .. table.concat(items, ",") .. "]"
