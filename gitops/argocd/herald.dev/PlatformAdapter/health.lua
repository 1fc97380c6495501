-- Argo CD health check for herald.dev/PlatformAdapter (see docs/gitops.md).
-- Reads the kstatus conditions the Herald operator writes (Ready, Reconciling, Stalled, each with
-- observedGeneration). Uses only Lua's base library, which Argo CD always opens.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Herald operator to report a status"
  return hs
end

-- A status written for an older spec says nothing about the current one.
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Herald operator to observe generation " .. tostring(generation)
  if status.observedGeneration ~= nil then
    hs.message = hs.message .. " (the status is for generation " .. tostring(status.observedGeneration) .. ")"
  end
  return hs
end

-- The condition of this type, unless it was written for another generation.
local function condition(wanted)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration ~= generation then
        return nil
      end
      return c
    end
  end
  return nil
end

local function explain(c, default)
  if c == nil then
    return default
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return default
end

local ready = condition("Ready")
local stalled = condition("Stalled")

-- Stalled: only a user can help (credentials refused, the Secret missing, a spec it cannot use).
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = explain(stalled, "Stalled")
  return hs
end

-- Ready: attempts may start (circuit closed, or half-open for one probe).
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = explain(ready, "Ready")
  return hs
end

-- spec.paused: no new attempt starts until it is unpaused.
if ready ~= nil and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = explain(ready, "spec.paused is true")
  return hs
end

-- Circuit open, rate-limited by the platform: it recovers by itself.
hs.status = "Progressing"
hs.message = explain(ready, "Waiting for the Ready condition")
return hs
