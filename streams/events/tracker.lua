-- The event rules on Redis: one atomic call per result. Loaded by streams/events/tracker.py
-- (EventTracker registers it with redis-py: EVALSHA with automatic reload). The rules in
-- prose are in that module's docstring; streams/events/reference.py (ReferenceTracker) is
-- the Python model of the same rules that must behave identically (tests compare them).
-- Key layout: streams/events/state.py.
-- KEYS: meta, seqs, dec, falls, outbox, outbox_t
-- ARGV: stream, seq, label, p_fall, decided_by, capture_end_ns, model_versions_json,
--       snapshot_b64, now_ms, resolve_after, cooldown, retention, ttl_s, gen_token,
--       alert_namespace_bytes(16), restart_gap_ms
-- now_ms is the worker's receive time: the only clock trusted for staleness and restarts.
-- capture_end_ns comes from the gateway and is only the window's identity.
-- Returns: {status, late_cloud(0/1), outcome, alert_id1, facts1, alert_id2, facts2, ...}

local meta, seqs, dec, falls, outbox, outbox_t = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local sid, seq_s = ARGV[1], ARGV[2]
local seq, label = tonumber(ARGV[2]), tonumber(ARGV[3])
local p, by, cap, models, snap, now = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local R, C, keep, ttl = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local NS = ARGV[15]
local gap = tonumber(ARGV[16])

local function fmt(n) return string.format('%.0f', n) end

local function uuid5(name)
  local h = redis.sha1hex(NS .. name)
  local variant = string.format('%x', bit.bor(bit.band(tonumber(string.sub(h, 17, 17), 16), 3), 8))
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16)
    .. '-' .. variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end

-- Only a result that changed the state refreshes the TTL: stale results and duplicates
-- must not keep a stream's state (and whatever silenced it) alive.
local function refresh_ttl()
  redis.call('EXPIRE', meta, ttl); redis.call('EXPIRE', seqs, ttl)
  redis.call('EXPIRE', dec, ttl); redis.call('EXPIRE', falls, ttl)
end

local gen = redis.call('HGET', meta, 'gen')
if not gen then
  gen = ARGV[14]
  redis.call('HSET', meta, 'gen', gen)
end
local max_seq = tonumber(redis.call('HGET', meta, 'max_seq'))
local top_ms = tonumber(redis.call('HGET', meta, 'top_ms'))
local prev = redis.call('HGET', dec, seq_s)
local prev_cap = prev and select(3, string.match(prev, '^(%d)|([^|]*)|(.*)$'))
local status, late = 'applied', 0

-- A seq outside [max_seq - keep, max_seq + keep], or a decided seq with another capture
-- time (another window), while the top of the stream advanced less than `gap` ago is
-- stale (outside) or a duplicate (collision). Once the top has been silent that long,
-- the producer restarted its numbering: a new state generation.
local outside = max_seq and (seq < max_seq - keep or seq > max_seq + keep)
local collides = prev and prev_cap ~= cap
if outside or collides then
  if (not top_ms) or tonumber(now) - top_ms >= gap then
    redis.call('DEL', meta, seqs, dec, falls)
    gen = ARGV[14]
    redis.call('HSET', meta, 'gen', gen)
    max_seq, prev, prev_cap, status = nil, nil, nil, 'restarted'
  elseif outside then
    redis.call('HINCRBY', meta, 'stale', 1)
    return {'stale', 0, 'none'}
  end
end

if prev then
  local plabel, pby = string.match(prev, '^(%d)|([^|]*)|')
  local same = prev_cap == cap
  if same and by == 'cloud' and pby == 'edge-fallback' then late = 1 end
  if not (same and label == 1 and plabel == '0' and by == 'cloud' and pby == 'edge-fallback') then
    redis.call('HINCRBY', meta, 'duplicates', 1)
    return {'duplicate', late, 'none'}
  end
  status = 'upgraded'
end
redis.call('HSET', dec, seq_s, label .. '|' .. by .. '|' .. cap)
if label == 1 then
  redis.call('HSET', falls, seq_s,
    cjson.encode({p = p, by = by, cap = cap, models = models, snap = snap}))
end
if not prev then
  redis.call('ZADD', seqs, seq, seq_s)
  if (not max_seq) or seq > max_seq then
    max_seq = seq
    redis.call('HSET', meta, 'max_seq', seq_s, 'top_ms', now)
    local floor = '(' .. fmt(max_seq - keep)
    local old = redis.call('ZRANGEBYSCORE', seqs, '-inf', floor)
    for i = 1, #old, 1000 do
      redis.call('HDEL', dec, unpack(old, i, math.min(i + 999, #old)))
      redis.call('HDEL', falls, unpack(old, i, math.min(i + 999, #old)))
    end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', seqs, '-inf', floor) end
  end
end

local result = {status, late, 'none'}
local extra = ''

local function emit(state, facts)
  facts.alert_id = uuid5(sid .. ':' .. facts.event_id .. ':' .. state)
  facts.state = state
  facts.stream_id = sid
  facts.created_ms = now
  local body = cjson.encode(facts)
  redis.call('HSET', outbox, facts.alert_id, body)
  redis.call('ZADD', outbox_t, tonumber(now), facts.alert_id)
  table.insert(result, facts.alert_id)
  table.insert(result, body)
end

local function fall_details(s_str)
  local raw = redis.call('HGET', falls, s_str)
  if raw then return cjson.decode(raw) end
  return {p = '0', by = '', cap = '0', models = '{}', snap = ''}
end

local function open_event(s_str)
  local d = fall_details(s_str)
  local ev_id = gen .. '-' .. redis.call('HINCRBY', meta, 'n_events', 1)
  redis.call('HSET', meta, 'open', '1', 'ev_id', ev_id, 'ev_first', s_str, 'ev_last', s_str,
    'ev_by', d.by, 'ev_models', d.models)
  emit('detected', {event_id = ev_id, first = s_str, last = s_str, confidence = d.p,
    decided_by = d.by, model_versions = d.models, capture_end_ns = d.cap, snapshot_b64 = d.snap,
    windows = {s_str}})
end

-- Re-derive the open event from the retained decisions from its first fall on: its falls
-- until the first run of R consecutive decided no_falls after the last of them. A complete
-- run resolves it; a fall after the run beyond the cooldown opens the next event.
local function settle()
  while redis.call('HGET', meta, 'open') == '1' do
    local first_s = redis.call('HGET', meta, 'ev_first')
    local members = redis.call('ZRANGEBYSCORE', seqs, first_s, '+inf')
    local labels = {}
    for i = 1, #members, 1000 do
      local chunk = redis.call('HMGET', dec, unpack(members, i, math.min(i + 999, #members)))
      for j = 1, #chunk do labels[i + j - 1] = chunk[j] end
    end
    local last_s, run, prev_s, ev_falls, stop = nil, 0, nil, {}, nil
    for j = 1, #members do
      local s, v = tonumber(members[j]), labels[j]
      if v and string.sub(v, 1, 1) == '1' then
        last_s, run = members[j], 0
        table.insert(ev_falls, members[j])
      elseif v then
        if prev_s ~= nil and s == prev_s + 1 and run > 0 then run = run + 1 else run = 1 end
        if run >= R then stop = j; break end
      end
      prev_s = s
    end
    last_s = last_s or first_s
    redis.call('HSET', meta, 'ev_last', last_s)
    if not stop then return end
    local peak_s, peak = '0', nil
    for _, fs in ipairs(ev_falls) do
      local d = fall_details(fs)
      if peak == nil or tonumber(d.p) > peak then peak, peak_s = tonumber(d.p), d.p end
    end
    local f = redis.call('HMGET', meta, 'ev_id', 'ev_by', 'ev_models')
    emit('resolved', {event_id = f[1], first = first_s, last = last_s, confidence = peak_s,
      decided_by = f[2], model_versions = f[3], capture_end_ns = fall_details(first_s).cap,
      snapshot_b64 = '', windows = ev_falls})
    local cooldown = tonumber(last_s) + C
    redis.call('HSET', meta, 'open', '0', 'cooldown', fmt(cooldown))
    extra = extra .. '+resolved'
    for j = stop + 1, #members do
      local v = labels[j]
      if v and string.sub(v, 1, 1) == '1' and tonumber(members[j]) > cooldown then
        open_event(members[j])
        extra = extra .. '+opened'
        break
      end
    end
  end
end

if label == 1 then
  local cd = redis.call('HGET', meta, 'cooldown')
  if cd and seq <= tonumber(cd) then
    redis.call('HINCRBY', meta, 'cooldown_ignored', 1)
    result[3] = 'in_cooldown'
  elseif redis.call('HGET', meta, 'open') == '1' then
    if seq < tonumber(redis.call('HGET', meta, 'ev_first')) then
      redis.call('HSET', meta, 'ev_first', seq_s)
    end
    result[3] = 'extended'
  else
    open_event(seq_s)
    result[3] = 'opened'
  end
end
settle()
result[3] = result[3] .. extra
refresh_ttl()
return result
