// The Drover console: plain JavaScript modules, talking only to /v1 with the key the user signs
// in with (kept in this tab's session storage, never in a URL).
import { traceSVG } from "./trace.js";

const main = document.getElementById("main");
const store = window.sessionStorage;

// ---- API ---------------------------------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.type = body?.error?.type;
  }
}

async function api(method, path, body) {
  const headers = { "x-api-key": store.getItem("drover.key") || "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await response.json().catch(() => null);
  if (!response.ok) throw new APIError(response.status, json);
  return json;
}

/// Every item of a list, following next_page.
async function all(path) {
  const items = [];
  let page = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const result = await api("GET", path + separator + "limit=1000" + (page ? "&page=" + encodeURIComponent(page) : ""));
    items.push(...result.data);
    page = result.next_page;
  } while (page);
  return items;
}

/// Server-sent events over fetch (EventSource cannot send a key): calls onEvent for each event,
/// resuming after a dropped connection from the last event seen, so nothing is missed or repeated.
function follow(sessionID, lastEventID, onEvent, onState) {
  const controller = new AbortController();
  let last = lastEventID;
  (async () => {
    let delay = 250;
    while (!controller.signal.aborted) {
      try {
        const headers = { "x-api-key": store.getItem("drover.key") || "" };
        if (last) headers["last-event-id"] = last;
        const response = await fetch(`/v1/sessions/${sessionID}/events/stream`, { headers, signal: controller.signal });
        if (!response.ok) throw new APIError(response.status, await response.json().catch(() => null));
        onState("live");
        delay = 250;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = "message";
            let data = "";
            for (const line of message.split("\n")) {
              if (line.startsWith("event: ")) type = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (type === "ping" || type === "error" || !data) continue;
            const event = JSON.parse(data);
            last = event.id;
            onEvent(event);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof APIError && error.status < 500) { onState("error: " + error.message); return; }
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return () => controller.abort();
}

// ---- Helpers -----------------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "onclick" || name === "onsubmit" || name === "onchange") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value != null) element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function age(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function text(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((block) => block.text ?? JSON.stringify(block)).join("\n");
  return content == null ? "" : JSON.stringify(content);
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  main.focus();
}

function failure(error) {
  if (error instanceof APIError && error.status === 401) { signOut(); return; }
  show(h("h1", {}, error instanceof APIError && error.status === 404 ? "Not found" : "Something went wrong"),
       h("p", { class: "error", role: "alert" }, error.message));
}

// ---- Pages -------------------------------------------------------------------------------------

let stopPage = () => {};

function signIn() {
  const input = h("input", { type: "password", id: "key", name: "key", autocomplete: "off", required: true, "aria-label": "API key" });
  const status = h("p", { class: "error", role: "alert" });
  show(
    h("h1", {}, "Sign in"),
    h("form", { class: "inline", id: "sign-in", onsubmit: async (event) => {
      event.preventDefault();
      store.setItem("drover.key", input.value.trim());
      let me;
      try {
        me = await api("GET", "/v1/me");
      } catch (error) {
        store.removeItem("drover.key");
        status.textContent = error.message;
        return;
      }
      if (me.operator) store.setItem("drover.operator", "1");
      else store.removeItem("drover.operator");
      location.hash = "#/sessions";
    } }, h("label", {}, "API key", input), h("button", { type: "submit" }, "Sign in")),
    status,
    h("p", { class: "muted" }, "Make a key with drover api-key create --org NAME. It stays in this tab only."));
  input.focus();
}

function signOut() {
  store.removeItem("drover.key");
  store.removeItem("drover.operator");
  location.hash = "#/signin";
}

async function sessionsPage(query) {
  const agents = await all("/v1/agents");
  const environments = await all("/v1/environments");
  const agentFilter = query.get("agent") || "";
  const statusFilter = query.get("status") || "";
  const page = query.get("page");
  const list = await api("GET", "/v1/sessions?limit=25" + (agentFilter ? "&agent_id=" + encodeURIComponent(agentFilter) : "") +
                        (statusFilter ? "&status=" + encodeURIComponent(statusFilter) : "") + (page ? "&page=" + encodeURIComponent(page) : ""));
  const sessions = list.data;
  const names = Object.fromEntries(agents.map((agent) => [agent.id, agent.name]));
  const search = h("input", { name: "id", placeholder: "sesn_…", "aria-label": "Session id" });
  const agentSelect = h("select", { name: "agent", "aria-label": "Agent" }, h("option", { value: "" }, "all agents"),
                        agents.map((agent) => h("option", { value: agent.id, selected: agent.id === agentFilter }, agent.name)));
  const statusSelect = h("select", { name: "status", "aria-label": "Status" }, h("option", { value: "" }, "any status"),
                         ["idle", "running", "terminated"].map((status) => h("option", { value: status, selected: status === statusFilter }, status)));
  const message = h("textarea", { name: "message", required: true, placeholder: "What should the agent do?" });
  const newAgent = h("select", { name: "new-agent", "aria-label": "Agent for the new session" }, agents.map((agent) => h("option", { value: agent.id }, agent.name)));
  const newEnvironment = h("select", { name: "new-environment", "aria-label": "Environment" }, environments.map((env) => h("option", { value: env.id }, env.name)));
  show(
    h("h1", {}, "Sessions"),
    h("form", { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      if (search.value.trim()) { location.hash = "#/sessions/" + search.value.trim(); return; }
      const params = new URLSearchParams();
      if (agentSelect.value) params.set("agent", agentSelect.value);
      if (statusSelect.value) params.set("status", statusSelect.value);
      location.hash = "#/sessions?" + params;
    } }, h("label", {}, "Agent", agentSelect), h("label", {}, "Status", statusSelect), h("label", {}, "Find by id", search),
         h("button", { type: "submit" }, "Show")),
    h("div", { class: "table-wrap" }, h("table", { id: "sessions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Session"), h("th", {}, "Title"), h("th", {}, "Status"), h("th", {}, "Agent"), h("th", {}, "Age"), h("th", {}, "Last update"))),
      h("tbody", {}, sessions.map((session) => h("tr", {},
        h("td", {}, h("a", { href: "#/sessions/" + session.id }, session.id)), h("td", {}, session.title ?? ""),
        h("td", {}, h("span", { class: "badge " + session.status }, session.status)), h("td", {}, names[session.agent?.id] ?? session.agent?.id),
        h("td", {}, age(session.created_at)), h("td", {}, age(session.updated_at) + " ago")))))),
    list.next_page ? h("p", {}, h("a", { href: "#/sessions?" + new URLSearchParams({ ...(agentFilter && { agent: agentFilter }),
      ...(statusFilter && { status: statusFilter }), page: list.next_page }) }, "Older sessions →")) : null,
    h("h2", {}, "New session"),
    agents.length && environments.length
      ? h("form", { class: "inline", id: "new-session", onsubmit: async (event) => {
          event.preventDefault();
          try {
            const session = await api("POST", "/v1/sessions", { agent: newAgent.value, environment_id: newEnvironment.value,
              initial_events: [{ type: "user.message", content: [{ type: "text", text: message.value }] }] });
            location.hash = "#/sessions/" + session.id;
          } catch (error) { failure(error); }
        } }, h("label", {}, "Agent", newAgent), h("label", {}, "Environment", newEnvironment), h("label", {}, "First message", message),
             h("button", { type: "submit" }, "Start"))
      : h("p", { class: "muted" }, "Create an agent and an environment first (drover agent create, or the API)."));
}

// Workflow phases' names by id, from the runs' `workflow_run.created` events (rendered first).
const workflowPhases = new Map();

function eventItem(event, actions) {
  const when = new Date(event.processed_at).toLocaleTimeString();
  const head = h("div", { class: "type" }, h("span", {}, event.type), h("time", { datetime: event.processed_at }, when));
  const item = h("li", { "data-type": event.type, id: "event-" + event.id }, head);
  switch (event.type) {
    case "user.message":
    case "agent.message":
      item.append(h("div", { class: "message" }, text(event.content)));
      break;
    case "agent.tool_use":
    case "agent.custom_tool_use":
      item.append(h("pre", {}, `${event.name}(${JSON.stringify(event.input, null, 2)})`));
      break;
    case "agent.tool_result":
    case "user.tool_result": {
      const output = text(event.content);
      if (event.is_error) item.classList.add("error");
      item.append(output.length > 600 ? h("details", {}, h("summary", {}, `output, ${output.length} characters`), h("pre", {}, output)) : h("pre", {}, output));
      break;
    }
    case "session.error":
    case "workflow_run.error":
      item.classList.add("error");
      item.append(h("div", { class: "message", role: "alert" }, `${event.error?.type}: ${event.error?.message}`));
      break;
    case "session.status_idle":
      item.append(h("div", { class: "muted" }, "stop reason: " + (event.stop_reason?.drover_reason || event.stop_reason?.type)));
      break;
    case "user.custom_tool_result":
      item.append(h("pre", {}, text(event.content)));
      break;
    case "session.thread_created":
      item.append(h("div", { class: "muted" }, `thread ${event.session_thread_id} started: ${event.agent_name}`));
      break;
    case "agent.thread_message_sent":
      item.append(h("div", { class: "message" }, `to ${event.to_agent_name ?? event.to_session_thread_id}: ${text(event.content)}`));
      break;
    case "agent.thread_message_received":
      item.append(h("div", { class: "message" }, `from ${event.from_agent_name ?? event.from_session_thread_id}: ${text(event.content)}`));
      break;
    case "workflow_run.created":
      for (const phase of event.phases ?? []) workflowPhases.set(phase.id, phase.name);
      item.append(h("div", { class: "message" }, `Workflow run ${event.name}: ${(event.phases ?? []).map((phase) => phase.name).join(" → ")}`),
        h("div", { class: "muted" }, event.workflow_run_id));
      break;
    case "workflow_run.phase_started":
    case "workflow_run.phase_ended":
      item.append(h("div", { class: "muted" }, `phase ${workflowPhases.get(event.workflow_run_phase_id) ?? event.workflow_run_phase_id} ${event.type.endsWith("started") ? "started" : "ended"}`));
      break;
    case "workflow_run.status_ended":
      if (event.result?.type === "error") item.classList.add("error");
      item.append(h("div", { class: "message" }, `run ${event.result?.type}` + (event.result?.error ? `: ${event.result.error.message}` : "")));
      break;
    case "user.define_outcome":
      item.append(h("div", { class: "message" }, `Outcome ${event.outcome_id}: ${event.description}`),
        h("div", { class: "muted" }, `rubric: ${event.rubric?.content ?? event.rubric?.file_id ?? ""} · at most ${event.max_iterations} evaluations`));
      break;
    case "span.outcome_evaluation_start":
      item.append(h("div", { class: "muted" }, `evaluation ${event.iteration + 1} started`));
      break;
    case "span.outcome_evaluation_end":
      if (!["satisfied", "needs_revision"].includes(event.result)) item.classList.add("error");
      item.append(h("div", { class: "message verdict" }, `verdict (evaluation ${event.iteration + 1}): ${event.result}`),
        h("div", { class: "muted" }, event.explanation ?? ""));
      break;
    case "session.usage": {
      const cost = event.usage?.list_cost ? ` · list cost ${(Number(event.usage.list_cost.amount) / 100).toFixed(2)} USD` : "";
      const cap = event.budget ? ` of ${(Number(event.budget.max_list_cost.amount) / 100).toFixed(2)}` : "";
      item.append(h("div", { class: "muted" }, `${event.usage?.input_tokens ?? 0} in · ${event.usage?.output_tokens ?? 0} out${cost}${cap}`));
      break;
    }
    default:
      break;
  }
  return item;
}

async function sessionPage(id) {
  // Looked up through the list (no 404 to log when it is not there, or is another organisation's).
  const [session] = (await api("GET", "/v1/sessions?include_archived=true&id=" + encodeURIComponent(id))).data;
  if (!session) {
    show(h("h1", { id: "not-found" }, "Session not found"), h("p", {}, `There is no session ${id} in this organisation.`), h("a", { href: "#/sessions" }, "All sessions"));
    return;
  }
  const events = await all("/v1/sessions/" + id + "/events");
  const seen = new Set(events.map((event) => event.id));
  const list = h("ol", { class: "events", id: "events", "aria-live": "polite" }, events.map((event) => eventItem(event)));
  const trace = h("div", { class: "trace panel", id: "trace", "aria-label": "Trace" });
  const status = h("span", { class: "badge", id: "stream-state" }, "connecting");
  const pending = h("div", { id: "pending" });
  const message = h("textarea", { name: "message", "aria-label": "Message" });
  // Threads are lanes of the trace: their events are read when the session's log names one new.
  let lanes = [];
  let lanesFor = 0;
  const loadLanes = async () => {
    const created = events.filter((event) => event.type === "session.thread_created" || event.type === "session.thread_status_idle").length;
    if (created === lanesFor) return;
    lanesFor = created;
    const threads = (await api("GET", "/v1/sessions/" + id + "/threads")).data;
    lanes = await Promise.all(threads.map(async (thread) => ({
      id: thread.id, name: thread.agent?.name ?? thread.id,
      events: await all("/v1/sessions/" + id + "/threads/" + thread.id + "/events"),
    })));
    trace.innerHTML = traceSVG(events, lanes);
  };
  const redraw = () => {
    trace.innerHTML = traceSVG(events, lanes);
    renderPending();
    loadLanes().catch(() => {});
  };
  function renderPending() {
    pending.replaceChildren();
    const idle = [...events].reverse().find((event) => event.type === "session.status_idle" || event.type === "session.status_running");
    if (!idle || idle.type !== "session.status_idle" || idle.stop_reason?.type !== "requires_action") return;
    const answered = new Set(events.filter((e) => e.type === "user.custom_tool_result" || e.type === "user.tool_confirmation")
                                   .map((e) => e.custom_tool_use_id || e.tool_use_id));
    for (const eventID of idle.stop_reason.event_ids || []) {
      if (answered.has(eventID)) continue;
      const use = events.find((event) => event.id === eventID);
      if (!use) continue;
      if (use.type === "agent.custom_tool_use") {
        const result = h("textarea", { name: "result", "aria-label": `Result of ${use.name}` });
        pending.append(h("form", { class: "panel custom-tool", onsubmit: async (submit) => {
          submit.preventDefault();
          await send([{ type: "user.custom_tool_result", custom_tool_use_id: eventID, content: [{ type: "text", text: result.value }] }]);
        } }, h("p", {}, `The agent called ${use.name}. Your answer:`), result, h("button", { type: "submit" }, "Send result")));
      } else {
        const deny = h("input", { name: "deny-message", "aria-label": "Why not", placeholder: "why not (optional)" });
        pending.append(h("div", { class: "panel confirmation" }, h("p", {}, `Allow ${use.name}(${JSON.stringify(use.input)})?`),
          h("div", { class: "row" },
            h("button", { type: "button", onclick: () => send([{ type: "user.tool_confirmation", tool_use_id: eventID, result: "allow" }]) }, "Allow"),
            deny,
            h("button", { type: "button", class: "secondary", onclick: () => send([{ type: "user.tool_confirmation", tool_use_id: eventID, result: "deny", deny_message: deny.value }]) }, "Deny"))));
      }
    }
  }
  async function send(batch) {
    try {
      await api("POST", `/v1/sessions/${id}/events`, { events: batch });
    } catch (error) {
      pending.prepend(h("p", { class: "error", role: "alert" }, error.message));
    }
  }
  show(
    h("h1", {}, session.title || session.id, " ", h("span", { class: "badge " + session.status, id: "session-status" }, session.status)),
    h("p", { class: "muted" }, `${session.id} · agent ${session.agent?.name} v${session.agent?.version} · created ${age(session.created_at)} ago · stream `, status),
    h("div", { class: "session-layout" },
      h("section", { "aria-label": "Events" }, list),
      h("section", { "aria-label": "Trace and actions" }, trace, pending,
        h("div", { class: "panel actions" },
          h("form", { id: "send", onsubmit: async (event) => {
            event.preventDefault();
            if (!message.value.trim()) return;
            await send([{ type: "user.message", content: [{ type: "text", text: message.value }] }]);
            message.value = "";
          } }, message, h("div", { class: "row" }, h("button", { type: "submit" }, "Send"),
              h("button", { type: "button", class: "secondary", id: "interrupt", onclick: () => send([{ type: "user.interrupt" }]) }, "Interrupt"),
              h("button", { type: "button", class: "secondary", id: "archive", onclick: async () => {
                try { await api("POST", `/v1/sessions/${id}/archive`); location.hash = "#/sessions"; } catch (error) { failure(error); }
              } }, "Archive")))))));
  redraw();
  stopPage = follow(id, events.length ? events[events.length - 1].id : null, (event) => {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    events.push(event);
    list.append(eventItem(event));
    if (event.type === "session.status_idle" || event.type === "session.status_running") {
      const badge = document.getElementById("session-status");
      const now = event.type === "session.status_idle" ? "idle" : "running";
      badge.textContent = now;
      badge.className = "badge " + now;
    }
    redraw();
  }, (state) => { status.textContent = state; });
}

async function fleetPage() {
  const leases = h("tbody");
  const harnesses = h("tbody");
  const pools = h("tbody");
  const work = h("tbody");
  const workQueues = h("tbody");
  const queue = h("div", { class: "chart panel", id: "queue-chart" });
  const verify = h("div", { class: "panel", id: "verify" }, "checking…");
  const history = [];
  show(
    h("h1", {}, "Fleet"),
    h("h2", {}, "Leases"),
    h("div", { class: "table-wrap" }, h("table", { id: "leases" }, h("thead", {}, h("tr", {},
      ["Session", "Owner", "Epoch", "Held for", "Heartbeat age", "Expires in"].map((name) => h("th", {}, name)))), leases)),
    h("h2", {}, "Queue"), queue,
    h("h2", {}, "Harnesses"),
    h("div", { class: "table-wrap" }, h("table", { id: "harnesses" }, h("thead", {}, h("tr", {},
      ["Harness", "Host", "Sessions", "Heartbeat age", "State"].map((name) => h("th", {}, name)))), harnesses)),
    h("h2", {}, "Sandbox pools"),
    h("div", { class: "table-wrap" }, h("table", { id: "pools" }, h("thead", {}, h("tr", {},
      ["Pool", "Address", "Status", "Sandboxes", "Running calls", "Heartbeat age"].map((name) => h("th", {}, name)))), pools)),
    h("h2", {}, "Self-hosted work"),
    h("div", { class: "table-wrap" }, h("table", { id: "work-queues" }, h("thead", {}, h("tr", {},
      ["Environment", "Name", "Depth", "Pending", "Leased", "Stopping", "Workers polling"].map((name) => h("th", {}, name)))), workQueues)),
    h("div", { class: "table-wrap" }, h("table", { id: "work" }, h("thead", {}, h("tr", {},
      ["Work item", "Session", "State", "Worker", "Lease age", "Expires in", "Reclaims"].map((name) => h("th", {}, name)))), work)),
    h("h2", {}, "Invariants (drover verify)"), verify);
  const seconds = (value) => (value == null ? "" : `${Number(value).toFixed(1)} s`);
  async function refresh() {
    const [l, hs, ps, q, past, w] = await Promise.all(
      ["leases", "harnesses", "pools", "queue", "queue_history", "work"].map((view) => api("GET", "/v1/fleet/" + view)));
    workQueues.replaceChildren(...w.queues.map((q) => h("tr", {}, h("td", {}, q.environment_id), h("td", {}, q.name), h("td", {}, q.depth),
      h("td", {}, q.pending), h("td", {}, q.leased), h("td", {}, q.stopping), h("td", {}, q.workers_polling))));
    work.replaceChildren(...w.data.map((item) => h("tr", { class: item.expires_in_s < 0 ? "expired" : "" }, h("td", {}, item.id),
      h("td", {}, h("a", { href: "#/sessions/" + item.session_id }, item.session_id)), h("td", {}, item.pending ? "queued (pending)" : item.state),
      h("td", {}, item.worker_id || ""), h("td", {}, seconds(item.lease_age_s)), h("td", {}, seconds(item.expires_in_s)), h("td", {}, item.reclaims))));
    leases.replaceChildren(...l.data.map((lease) => h("tr", { class: lease.expires_in_s < 0 ? "expired" : "" },
      h("td", {}, h("a", { href: "#/sessions/" + lease.session_id }, lease.session_id)), h("td", {}, lease.owner), h("td", {}, lease.epoch),
      h("td", {}, seconds(lease.held_for_s)), h("td", {}, seconds(lease.heartbeat_age_s)),
      h("td", {}, lease.expires_in_s < 0 ? `expired ${seconds(-lease.expires_in_s)} ago` : seconds(lease.expires_in_s)))));
    harnesses.replaceChildren(...hs.data.map((harness) => h("tr", {}, h("td", {}, harness.id), h("td", {}, harness.host),
      h("td", {}, harness.sessions_held), h("td", {}, seconds(harness.heartbeat_age_s)), h("td", {}, harness.state))));
    pools.replaceChildren(...ps.data.map((pool) => h("tr", {}, h("td", {}, pool.id), h("td", {}, pool.address), h("td", {}, pool.status),
      h("td", {}, `${pool.sandboxes}/${pool.capacity}`), h("td", {}, pool.running_calls), h("td", {}, seconds(pool.heartbeat_age_s)))));
    // The last hour as the API processes sampled it (every 15 s), then now.
    const stats = q.data[0] || {};
    const points = past.data.map((s) => ({ at: Date.parse(s.at), queued: s.queued, running: s.running, idle: s.idle }))
      .sort((a, b) => a.at - b.at);
    points.push({ at: Date.now(), queued: stats.queued || 0, running: stats.running || 0, idle: stats.idle || 0 });
    history.splice(0, history.length, ...points);
    queue.innerHTML = queueChart(history);
  }
  async function check() {
    const report = await api("GET", "/v1/fleet/verify");
    verify.replaceChildren(report.breaches.length
      ? h("div", { class: "error", role: "alert" }, `${report.breaches.length} breach(es)`, h("ul", {}, report.breaches.map((b) => h("li", {}, `${b.check} ${b.session} ${b.detail}`))))
      : h("span", {}, `All invariants hold over ${report.sessions} sessions and ${report.events} events.`));
  }
  await refresh();
  await check();
  const timers = [setInterval(() => refresh().catch(() => {}), 2000), setInterval(() => check().catch(() => {}), 15000)];
  stopPage = () => timers.forEach(clearInterval);
}

/// Queue depth by status over the last hour, as an SVG line chart.
function queueChart(history) {
  const width = 1200, height = 150, pad = 30;
  if (history.length < 2) return `<p class="muted">queued ${history[0]?.queued ?? 0}, running ${history[0]?.running ?? 0}, idle ${history[0]?.idle ?? 0}</p>`;
  const t0 = history[0].at, t1 = history[history.length - 1].at;
  const max = Math.max(1, ...history.flatMap((point) => [point.queued, point.running]));
  const x = (at) => pad + ((at - t0) / Math.max(1, t1 - t0)) * (width - 2 * pad);
  const y = (value) => height - pad - (value / max) * (height - 2 * pad);
  const line = (key, color) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${history.map((p) => `${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ")}"><title>${key}</title></polyline>`;
  const last = history[history.length - 1];
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="Queue depth: ${last.queued} queued, ${last.running} running">
    <line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" stroke="#d9dde3"/>
    <text x="${pad}" y="${pad - 8}" font-size="12" fill="#5d6470">max ${max} · queued (blue) · running (green) · ${last.idle} idle</text>
    ${line("queued", "#2f5fd0")}${line("running", "#1e7a3c")}</svg>`;
}

// ---- Memory ------------------------------------------------------------------------------------

async function memoryStoresPage() {
  const stores = await all("/v1/memory_stores?include_archived=true");
  show(
    h("h1", {}, "Memory"),
    stores.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "memory-stores" },
          h("thead", {}, h("tr", {}, h("th", {}, "Store"), h("th", {}, "Name"), h("th", {}, "Description"), h("th", {}, "Updated"))),
          h("tbody", {}, stores.map((memoryStore) => h("tr", {},
            h("td", {}, h("a", { href: "#/memory/" + memoryStore.id }, memoryStore.id)),
            h("td", {}, memoryStore.name + (memoryStore.archived_at ? " (archived)" : "")), h("td", {}, memoryStore.description),
            h("td", {}, age(memoryStore.updated_at) + " ago"))))))
      : h("p", { class: "muted" }, "No memory stores yet (client.beta.memory_stores.create)."));
}

async function memoryStorePage(id) {
  const memoryStore = await api("GET", "/v1/memory_stores/" + encodeURIComponent(id));
  const memories = await (async () => {
    const items = [];
    let page = null;
    do {
      const result = await api("GET", `/v1/memory_stores/${encodeURIComponent(id)}/memories?limit=100` + (page ? "&page=" + encodeURIComponent(page) : ""));
      items.push(...result.data);
      page = result.next_page;
    } while (page);
    return items;
  })();
  const bytes = memories.reduce((sum, memory) => sum + (memory.content_size_bytes || 0), 0);
  show(
    h("h1", {}, memoryStore.name),
    h("p", { class: "muted" }, `${memoryStore.id} · ${memories.length} memories · ${bytes} bytes` + (memoryStore.description ? " · " + memoryStore.description : "")),
    h("div", { class: "table-wrap" }, h("table", { id: "memories" },
      h("thead", {}, h("tr", {}, h("th", {}, "Path"), h("th", {}, "Bytes"), h("th", {}, "Updated"))),
      h("tbody", {}, memories.map((memory) => h("tr", {},
        h("td", {}, h("a", { href: `#/memory/${memoryStore.id}/${memory.id}` }, memory.path)), h("td", {}, memory.content_size_bytes),
        h("td", {}, age(memory.updated_at) + " ago")))))),
    h("p", {}, h("a", { href: "#/memory" }, "All stores")));
}

/// Lines of `after` against `before`: each kept (" "), added ("+") or removed ("-"), by longest
/// common subsequence (memories are at most 100 kB).
function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const lengths = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lengths[i][j] = a[i] === b[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { lines.push([" ", a[i]]); i++; j++; }
    else if (j < b.length && (i === a.length || lengths[i][j + 1] >= lengths[i + 1][j])) { lines.push(["+", b[j]]); j++; }
    else { lines.push(["-", a[i]]); i++; }
  }
  return lines;
}

function actor(createdBy) {
  if (!createdBy) return "";
  if (createdBy.type === "session_actor") return h("a", { href: "#/sessions/" + createdBy.session_id }, createdBy.session_id);
  return createdBy.api_key_id || createdBy.user_id || createdBy.service_account_id || createdBy.type;
}

async function memoryPage(storeID, memoryID) {
  const base = `/v1/memory_stores/${encodeURIComponent(storeID)}`;
  const memory = await api("GET", `${base}/memories/${encodeURIComponent(memoryID)}`);
  const versions = (await api("GET", `${base}/memory_versions?memory_id=${encodeURIComponent(memoryID)}&view=full&limit=20`)).data;
  // Oldest first, each shown as its change from the one before.
  const history = versions.slice().reverse();
  show(
    h("h1", {}, memory.path),
    h("p", { class: "muted" }, `${memory.id} · ${memory.content_size_bytes} bytes · sha256 ${memory.content_sha256.slice(0, 12)}…`),
    h("pre", { id: "memory-content" }, memory.content ?? ""),
    h("h2", {}, "History"),
    h("ol", { id: "memory-versions", class: "events" }, history.map((version, index) => {
      const previous = history.slice(0, index).reverse().find((v) => v.content != null)?.content ?? "";
      const body = version.redacted_at
        ? h("div", { class: "muted" }, "redacted " + age(version.redacted_at) + " ago")
        : version.operation === "deleted"
          ? h("div", { class: "muted" }, "deleted")
          : h("pre", { class: "diff" }, lineDiff(previous, version.content ?? "").map(([mark, line]) =>
              h("span", { class: mark === "+" ? "added" : mark === "-" ? "removed" : "" }, mark + " " + line + "\n")));
      return h("li", { "data-operation": version.operation },
        h("div", { class: "type" }, h("span", {}, version.operation + " · " + (version.path ?? "")), h("time", { datetime: version.created_at }, age(version.created_at) + " ago")),
        h("div", { class: "muted" }, "by ", actor(version.created_by)), body);
    })),
    h("p", {}, h("a", { href: "#/memory/" + storeID }, "The store")));
}

// ---- Webhooks ----------------------------------------------------------------------------------

async function webhooksPage() {
  const endpoints = (await api("GET", "/v1/webhooks?limit=100")).data;
  show(h("section", {},
    h("h1", {}, "Webhooks"),
    endpoints.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "webhooks" },
          h("thead", {}, h("tr", {}, ["Endpoint", "URL", "State", "Events"].map((t) => h("th", {}, t)))),
          h("tbody", {}, endpoints.map((endpoint) => h("tr", {},
            h("td", {}, h("a", { href: "#/webhooks/" + endpoint.id }, endpoint.name || endpoint.id)), h("td", {}, endpoint.url),
            h("td", {}, endpoint.state + (endpoint.disabled_reason ? ": " + endpoint.disabled_reason : "")),
            h("td", {}, endpoint.enabled_events.join(", ")))))))
      : h("p", { class: "muted" }, "No webhook endpoints yet (POST /v1/webhooks or drover webhook create).")));
}

async function webhookPage(id) {
  const endpoint = await api("GET", "/v1/webhooks/" + encodeURIComponent(id));
  const deliveries = (await api("GET", `/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=200`)).data;
  show(h("section", {},
    h("h1", {}, endpoint.name || endpoint.id),
    h("p", { class: "muted" }, `${endpoint.id} · ${endpoint.url} · ${endpoint.state}` + (endpoint.disabled_reason ? " · " + endpoint.disabled_reason : "")),
    h("div", { class: "table-wrap" }, h("table", { id: "deliveries" },
      h("thead", {}, h("tr", {}, ["Event", "Type", "Object", "Status", "Attempts", "Last answer", "When"].map((t) => h("th", {}, t)))),
      h("tbody", {}, deliveries.map((delivery) => h("tr", { "data-status": delivery.status },
        h("td", {}, delivery.event_id), h("td", {}, delivery.event_type), h("td", {}, delivery.object_id), h("td", {}, delivery.status),
        h("td", {}, String(delivery.attempts)),
        h("td", {}, delivery.last_error || (delivery.last_status ? "HTTP " + delivery.last_status : "")),
        h("td", {}, age(delivery.created_at) + " ago")))))),
    h("p", {}, h("a", { href: "#/webhooks" }, "All endpoints"))));
}

// ---- Routing -----------------------------------------------------------------------------------

async function route() {
  stopPage();
  stopPage = () => {};
  const [path, search] = location.hash.slice(1).split("?");
  const query = new URLSearchParams(search || "");
  const signedIn = !!store.getItem("drover.key");
  document.getElementById("sign-out").hidden = !signedIn;
  document.querySelector('[data-nav="fleet"]').hidden = !store.getItem("drover.operator");
  if (!signedIn || path === "/signin") { signIn(); return; }
  try {
    const parts = (path || "/sessions").split("/").filter(Boolean);
    if (parts[0] === "sessions" && parts[1]) await sessionPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "fleet") await fleetPage();
    else if (parts[0] === "memory" && parts[2]) await memoryPage(decodeURIComponent(parts[1]), decodeURIComponent(parts[2]));
    else if (parts[0] === "memory" && parts[1]) await memoryStorePage(decodeURIComponent(parts[1]));
    else if (parts[0] === "memory") await memoryStoresPage();
    else if (parts[0] === "webhooks" && parts[1]) await webhookPage(decodeURIComponent(parts[1]));
    else if (parts[0] === "webhooks") await webhooksPage();
    else await sessionsPage(query);
  } catch (error) {
    failure(error);
  }
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
