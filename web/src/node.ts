// A node's page: its labels, reserved resources and containers; for a
// member shoal (federation) its containers grouped by the member's nodes.
import { Container, Model } from "./model";
import { VList } from "./vlist";
import { h, stateClass } from "./dom";

export function nodeView(model: Model, name: string): { el: HTMLElement; stop: () => void } {
  const el = h("section", { class: "page" });
  const list = new VList<Container>(28, (c) => containerRow(c), "table");
  function render() {
    const i = model.nodeIndex(name);
    if (i < 0) {
      el.replaceChildren(h("h2", {}, name), h("p", { class: "muted" }, "No such node (yet)."));
      return;
    }
    const n = model.nodes[i];
    const cs = (model.byNode[i] ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
    const down = n.status !== "Healthy";
    const parts: (HTMLElement | null)[] = [
      h("h2", { "data-node": n.name }, n.name, " ", h("span", { class: `badge ${down ? "bad" : "good"}` }, n.status)),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "address"), h("dd", {}, n.addr),
        h("dt", {}, "ID"), h("dd", {}, n.id),
        h("dt", {}, "engine"), h("dd", {}, n.version || "?"),
        h("dt", {}, "containers"), h("dd", {}, n.containers),
        h("dt", {}, "reserved CPUs"), h("dd", {}, n.cpus),
        h("dt", {}, "reserved memory"), h("dd", {}, n.memory),
        h("dt", {}, "labels"), h("dd", {}, ...(n.labels.length ? n.labels.map((l) => h("span", { class: "label" }, l)) : ["none"])),
        n.error ? h("dt", {}, "error") : null, n.error ? h("dd", { class: "bad-text" }, n.error) : null,
      ),
    ];
    if (n.member) parts.push(memberNodes(cs));
    parts.push(h("h3", {}, `Containers (${cs.length})`), list.el);
    el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    list.set(cs);
  }
  render();
  return { el, stop: model.onChange(render) };
}

// memberNodes drills into a member shoal: its containers' names start with
// the member's own node ("inner/name"), which is enough to group them.
function memberNodes(cs: Container[]): HTMLElement {
  const groups = new Map<string, Container[]>();
  for (const c of cs) {
    const inner = c.name.includes("/") ? c.name.split("/")[0] : "(unknown)";
    if (!groups.has(inner)) groups.set(inner, []);
    groups.get(inner)!.push(c);
  }
  const rows = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([inner, list]) => {
    const running = list.filter((c) => c.state === "running").length;
    return h("tr", { "data-member-node": inner }, h("td", {}, inner), h("td", {}, String(list.length)), h("td", {}, String(running)));
  });
  return h(
    "div",
    {},
    h("h3", {}, "Member's nodes"),
    h("table", { class: "grid" }, h("tr", {}, h("th", {}, "node"), h("th", {}, "containers"), h("th", {}, "running")), ...rows),
  );
}

function containerRow(c: Container): HTMLElement {
  return h(
    "div",
    { class: "trow", "data-container": c.name },
    h("a", { href: `#/container/${c.id}`, class: "mono" }, c.id),
    h("span", { class: "grow" }, c.name),
    h("span", { class: `badge ${stateClass(c.state)}` }, c.state),
    h("span", { class: "muted ellip" }, c.image),
    h("span", { class: "muted" }, c.service),
  );
}
