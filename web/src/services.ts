// Services: the list, and a service's page with its tasks by state (a
// pending task shows the scheduler's explanation, Status.Err), update and
// rollback progress, and scale and rollback buttons for operators. Both
// read shoal's store (services, tasks), never the engines, every 2 s.
import { getJSON, postJSON } from "./api";
import { Model } from "./model";
import { ago, errorBox, h, stateClass } from "./dom";

const every = 2000;

function poll(f: () => Promise<void>): () => void {
  let stopped = false;
  let timer = 0;
  const run = async () => {
    await f().catch(() => undefined);
    if (!stopped) timer = window.setTimeout(run, every);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function replicasOf(s: any): string {
  const st = s.ServiceStatus;
  if (st) return `${st.RunningTasks}/${st.DesiredTasks}`;
  const r = s.Spec?.Mode?.Replicated?.Replicas;
  return r === undefined ? "global" : `?/${r}`;
}

export function servicesView(): { el: HTMLElement; stop: () => void } {
  const body = h("tbody");
  const msg = h("div");
  const el = h(
    "section",
    { class: "page" },
    h("h2", {}, "Services"),
    msg,
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ...["name", "mode", "replicas", "image", "update"].map((t) => h("th", {}, t)))), body),
  );
  const stop = poll(async () => {
    try {
      const list: any[] = await getJSON("/services?status=true");
      msg.replaceChildren(list.length ? "" : h("p", { class: "muted" }, "No services."));
      list.sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name));
      body.replaceChildren(
        ...list.map((s) =>
          h(
            "tr",
            { "data-service": s.Spec.Name },
            h("td", {}, h("a", { href: `#/service/${s.ID}` }, s.Spec.Name)),
            h("td", {}, s.Spec.Mode?.Replicated ? "replicated" : s.Spec.Mode?.Global ? "global" : "job"),
            h("td", { class: "replicas" }, replicasOf(s)),
            h("td", { class: "muted ellip" }, (s.Spec.TaskTemplate?.ContainerSpec?.Image ?? "").split("@")[0]),
            h("td", {}, s.UpdateStatus?.State ?? ""),
          ),
        ),
      );
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  });
  return { el, stop };
}

export function serviceView(model: Model, id: string): { el: HTMLElement; stop: () => void } {
  const head = h("div");
  const tasksEl = h("div");
  const msg = h("div", { id: "service-msg" });
  const replicas = h("input", { type: "number", min: "0", id: "replicas", class: "num" }) as HTMLInputElement;
  let edited = false;
  replicas.addEventListener("input", () => (edited = true));
  const scaleBtn = h("button", { id: "scale", onclick: () => scale() }, "Scale");
  const rollbackBtn = h("button", { id: "rollback", onclick: () => rollback() }, "Roll back");
  const actions = model.can("operator")
    ? h("div", { class: "actions" }, "replicas ", replicas, scaleBtn, rollbackBtn)
    : h("p", { class: "muted" }, "Scale and rollback need the operator role.");
  const el = h("section", { class: "page" }, head, actions, msg, tasksEl);
  let nodes = new Map<string, string>();
  let current: any = null;

  async function refresh() {
    try {
      const [svc, tasks, ns] = await Promise.all([
        getJSON(`/services/${id}`),
        getJSON<any[]>(`/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [id] }))}`),
        nodes.size ? Promise.resolve(null) : getJSON<any[]>("/nodes").catch(() => []),
      ]);
      if (ns) nodes = new Map(ns.map((n: any) => [n.ID, n.Description?.Hostname ?? n.ID]));
      current = svc;
      renderHead(svc, tasks);
      renderTasks(tasks);
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  }

  function renderHead(svc: any, tasks: any[]) {
    const want = svc.Spec.Mode?.Replicated?.Replicas;
    const running = tasks.filter((t) => t.Status?.State === "running" && t.DesiredState === "running").length;
    if (!edited && want !== undefined) replicas.value = String(want);
    const up = svc.UpdateStatus;
    head.replaceChildren(
      h("h2", { "data-service": svc.Spec.Name }, svc.Spec.Name),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "ID"), h("dd", { class: "mono" }, svc.ID),
        h("dt", {}, "image"), h("dd", {}, svc.Spec.TaskTemplate?.ContainerSpec?.Image ?? ""),
        h("dt", {}, "replicas"), h("dd", { id: "replica-count" }, want === undefined ? `global (${running} running)` : `${running}/${want}`),
        h("dt", {}, "update"),
        h("dd", {}, up ? `${up.State}${up.Message ? ": " + up.Message : ""}${up.StartedAt ? " (started " + ago(Date.parse(up.StartedAt) / 1000) + ")" : ""}` : "none"),
        h("dt", {}, "version"), h("dd", {}, String(svc.Version?.Index ?? "")),
      ),
    );
  }

  function renderTasks(tasks: any[]) {
    const byState = new Map<string, any[]>();
    for (const t of tasks) {
      const s = t.Status?.State ?? "unknown";
      if (!byState.has(s)) byState.set(s, []);
      byState.get(s)!.push(t);
    }
    const order = ["pending", "assigned", "preparing", "starting", "running", "failed", "rejected", "complete", "shutdown", "orphaned"];
    const states = [...byState.keys()].sort((a, b) => (order.indexOf(a) + 100) % 100 - (order.indexOf(b) + 100) % 100);
    tasksEl.replaceChildren(
      h("h3", {}, `Tasks (${tasks.length})`),
      h("div", { class: "counts" }, ...states.map((s) => h("span", { class: `badge ${stateClass(s)}`, "data-task-state": s }, `${s} ${byState.get(s)!.length}`))),
      h(
        "table",
        { class: "grid" },
        h("thead", {}, h("tr", {}, ...["slot", "task", "node", "state", "desired", "since", "explanation"].map((x) => h("th", {}, x)))),
        h(
          "tbody",
          {},
          ...tasks
            .slice()
            .sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0) || Date.parse(b.Status?.Timestamp) - Date.parse(a.Status?.Timestamp))
            .slice(0, 500)
            .map((t) => {
              const cid = t.Status?.ContainerStatus?.ContainerID;
              return h(
                "tr",
                { "data-task": t.ID, "data-state": t.Status?.State },
                h("td", {}, String(t.Slot ?? "")),
                h("td", { class: "mono" }, cid ? h("a", { href: `#/container/${cid.slice(0, 12)}` }, t.ID.slice(0, 12)) : t.ID.slice(0, 12)),
                h("td", {}, nodes.get(t.NodeID) ?? (t.NodeID ? t.NodeID.slice(0, 12) : "")),
                h("td", {}, h("span", { class: `badge ${stateClass(t.Status?.State)}` }, t.Status?.State ?? "")),
                h("td", {}, t.DesiredState ?? ""),
                h("td", { class: "muted" }, t.Status?.Timestamp ? ago(Date.parse(t.Status.Timestamp) / 1000) : ""),
                t.Status?.Err ? h("td", { class: "explain" }, t.Status.Err) : h("td", { class: "muted" }, t.Status?.Message ?? ""),
              );
            }),
        ),
      ),
    );
  }

  async function update(query: string, change: (spec: any) => void, what: string) {
    msg.replaceChildren(h("p", { class: "muted" }, `${what}…`));
    try {
      const svc = await getJSON(`/services/${id}`);
      const spec = svc.Spec;
      change(spec);
      await postJSON(`/services/${id}/update?version=${svc.Version.Index}${query}`, spec);
      msg.replaceChildren(h("p", { class: "ok-text" }, `${what}: accepted`));
      edited = false;
      await refresh();
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  }

  function scale() {
    const n = parseInt(replicas.value, 10);
    if (!(n >= 0) || !current?.Spec?.Mode?.Replicated) {
      msg.replaceChildren(errorBox("only a replicated service scales, to a number ≥ 0"));
      return;
    }
    update("", (spec) => (spec.Mode.Replicated.Replicas = n), `scale to ${n}`);
  }

  function rollback() {
    update("&rollback=previous", () => undefined, "roll back");
  }

  const stop = poll(refresh);
  return { el, stop };
}
