// A session's trace as SVG, from its events alone: lease epochs as shaded bands (a takeover after a
// crash is a new band), each model request, tool call and outcome evaluation as a bar on its row
// (an evaluation's colour is its verdict), and each session thread as a lane of its own with its
// model requests and tool calls.

const escape = (value) => String(value).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

export function traceSVG(events, threads = []) {
  const width = 640, left = 70, right = 10, rowHeight = 26, top = 22;
  const rows = ["epochs", "model", "tools", "grading", ...threads.map((thread) => thread.id)];
  const height = top + rows.length * rowHeight + 24;
  if (events.length === 0) return `<p class="muted">No events yet.</p>`;
  const time = (event) => Date.parse(event.processed_at);
  const everything = [events, ...threads.map((thread) => thread.events)].flat();
  const t0 = Math.min(...everything.map(time));
  const t1 = Math.max(t0 + 1, ...everything.map(time));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (row) => top + rows.indexOf(row) * rowHeight;
  const parts = [];

  // Lease epochs: from the first to the last event each epoch wrote.
  const epochs = new Map();
  for (const event of events) {
    const epoch = event.drover_lease_epoch;
    if (epoch == null) continue;
    const span = epochs.get(epoch) || { from: time(event), to: time(event) };
    span.to = time(event);
    epochs.set(epoch, span);
  }
  let shade = 0;
  for (const [epoch, span] of [...epochs.entries()].sort((a, b) => a[0] - b[0])) {
    const x0 = x(span.from), x1 = Math.max(x(span.to), x0 + 3);
    const fill = shade++ % 2 ? "#e6ecfb" : "#d4def8";
    parts.push(`<g class="epoch" data-epoch="${epoch}"><rect x="${x0.toFixed(1)}" y="${top - 6}" width="${(x1 - x0).toFixed(1)}" height="${rows.length * rowHeight}" fill="${fill}" opacity="0.7"><title>lease epoch ${epoch}</title></rect>` +
      `<text x="${(x0 + 3).toFixed(1)}" y="${y("epochs") + 12}" font-size="11" fill="#2f3b5c">epoch ${epoch}</text></g>`);
  }

  // Model requests: each start to its end.
  const starts = new Map(events.filter((e) => e.type === "span.model_request_start").map((e) => [e.id, e]));
  let previousStart = null;
  for (const event of events) {
    if (event.type === "span.model_request_start") previousStart = event;
    if (event.type !== "span.model_request_end") continue;
    const start = starts.get(event.model_request_start_id) || previousStart;
    if (!start) continue;
    const x0 = x(time(start)), x1 = Math.max(x(time(event)), x0 + 3);
    const usage = event.model_usage || event.usage || {};
    const label = `model request: ${event.duration_ms ?? "?"} ms, first token ${event.ttft_ms ?? "?"} ms, ${usage.input_tokens ?? 0} tokens in, ${usage.output_tokens ?? 0} out`;
    parts.push(`<rect class="model" x="${x0.toFixed(1)}" y="${y("model")}" width="${(x1 - x0).toFixed(1)}" height="16" rx="2" fill="#2f5fd0"><title>${escape(label)}</title></rect>`);
  }

  // Tool calls: each use to its result.
  const uses = new Map();
  for (const event of events) {
    if (event.type === "agent.tool_use" || event.type === "agent.custom_tool_use") uses.set(event.drover_tool_use_id || event.id, event);
    if (event.type !== "agent.tool_result" && event.type !== "user.custom_tool_result" && event.type !== "user.tool_result") continue;
    // The harness's results name the model's id; a client's (and a self-hosted worker's) the use's event.
    const use = uses.get(event.tool_use_id) || [...uses.values()].find((u) => u.id === (event.custom_tool_use_id || event.tool_use_id));
    if (!use) continue;
    const x0 = x(time(use)), x1 = Math.max(x(time(event)), x0 + 3);
    const color = event.is_error ? "#b3261e" : use.type === "agent.custom_tool_use" ? "#9a6700" : "#1e7a3c";
    const label = `${use.name}: ${time(event) - time(use)} ms${event.is_error ? " (error)" : ""}`;
    parts.push(`<rect class="tool" x="${x0.toFixed(1)}" y="${y("tools")}" width="${(x1 - x0).toFixed(1)}" height="16" rx="2" fill="${color}"><title>${escape(label)}</title></rect>`);
  }

  // Outcome evaluations: each start to its end, coloured by the verdict (still open: grey).
  const evaluations = new Map(events.filter((e) => e.type === "span.outcome_evaluation_start").map((e) => [e.id, { start: e }]));
  for (const event of events) {
    if (event.type === "span.outcome_evaluation_end" && evaluations.has(event.outcome_evaluation_start_id)) {
      evaluations.get(event.outcome_evaluation_start_id).end = event;
    }
  }
  const verdictColors = { satisfied: "#1e7a3c", needs_revision: "#9a6700", max_iterations_reached: "#b3261e", failed: "#b3261e", interrupted: "#5d6470" };
  for (const { start, end } of evaluations.values()) {
    const x0 = x(time(start)), x1 = Math.max(x(end ? time(end) : t1), x0 + 3);
    const verdict = end ? end.result : "evaluating";
    const label = `evaluation ${start.iteration + 1}: ${verdict}${end?.explanation ? " — " + end.explanation : ""}`;
    parts.push(`<rect class="evaluation" data-verdict="${escape(verdict)}" x="${x0.toFixed(1)}" y="${y("grading")}" width="${(x1 - x0).toFixed(1)}" height="16" rx="2" fill="${verdictColors[verdict] ?? "#8a8f98"}"><title>${escape(label)}</title></rect>`);
  }

  // Threads: one lane each, its model requests (blue) and tool calls (green) from its own log.
  for (const thread of threads) {
    const open = new Map();
    for (const event of thread.events) {
      if (event.type === "span.model_request_start") open.set("model", event);
      if (event.type === "agent.tool_use") open.set(event.drover_tool_use_id || event.id, event);
      const start = event.type === "span.model_request_end" ? open.get("model") : event.type === "agent.tool_result" ? open.get(event.tool_use_id) : null;
      if (!start) continue;
      const x0 = x(time(start)), x1 = Math.max(x(time(event)), x0 + 3);
      const kind = event.type === "span.model_request_end" ? "model" : "tool";
      parts.push(`<rect class="thread-${kind}" data-thread="${escape(thread.id)}" x="${x0.toFixed(1)}" y="${y(thread.id)}" width="${(x1 - x0).toFixed(1)}" height="16" rx="2" fill="${kind === "model" ? "#2f5fd0" : "#1e7a3c"}"><title>${escape(`${thread.name}: ${kind === "model" ? "model request" : start.name}`)}</title></rect>`);
    }
  }

  const named = new Map(threads.map((thread) => [thread.id, "↳ " + thread.name]));
  const labels = rows.map((row) => `<text x="4" y="${y(row) + 12}" font-size="12" fill="#5d6470">${escape(named.get(row) ?? row)}</text>`).join("");
  const seconds = ((t1 - t0) / 1000).toFixed(1);
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="Trace: ${epochs.size} lease epoch(s) over ${seconds} s">` +
    labels + parts.join("") +
    `<text x="${left}" y="${height - 6}" font-size="11" fill="#5d6470">0 s</text>` +
    `<text x="${width - right}" y="${height - 6}" font-size="11" fill="#5d6470" text-anchor="end">${seconds} s</text></svg>`;
}
