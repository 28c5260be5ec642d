-- Argo CD health check for aiguillage.dev/AIProvider, from the operator's status:
-- Healthy when its credentials resolve (Ready=True for the current generation), saying which
-- routes use it; Degraded when they do not (a missing Secret or key); Progressing until then.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the aiguillage operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the aiguillage operator to process generation " .. tostring(obj.metadata.generation)
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    hs.message = condition.message or ""
    if condition.status == "True" then
      hs.status = "Healthy"
      local routes = 0
      if obj.status.usedBy ~= nil then
        routes = #obj.status.usedBy
      end
      hs.message = hs.message .. "; used by " .. tostring(routes) .. " route(s)"
    elseif condition.status == "False" then
      hs.status = "Degraded"
    else
      hs.status = "Progressing"
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "No Ready condition yet"
return hs
