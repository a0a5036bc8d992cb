// The map: one row per node (red when down) with its containers as chips,
// virtualized, filtered as you type; kept live by the model.
import { Container, Model, Node } from "./model";
import { VList } from "./vlist";
import { h, stateClass } from "./dom";

const rowHeight = 58;
const maxChips = 40;

export function mapView(model: Model): { el: HTMLElement; stop: () => void } {
  let filter = "";
  const input = h("input", {
    type: "search",
    id: "map-filter",
    placeholder: "filter nodes, containers, services, images…",
    oninput: (e: Event) => {
      filter = (e.target as HTMLInputElement).value.trim().toLowerCase();
      render();
    },
  }) as HTMLInputElement;
  const count = h("span", { class: "muted" });
  const list = new VList<[Node, Container[]]>(rowHeight, ([n, cs]) => nodeRow(n, cs), "map");
  const el = h("section", { class: "map-view" }, h("div", { class: "toolbar" }, input, count), list.el);

  function render() {
    const rows: [Node, Container[]][] = [];
    model.nodes.forEach((n, i) => {
      let cs = model.byNode[i] ?? [];
      if (filter && !n.name.toLowerCase().includes(filter) && !n.addr.includes(filter)) {
        cs = cs.filter(
          (c) => c.name.toLowerCase().includes(filter) || c.service.toLowerCase().includes(filter) || c.image.toLowerCase().includes(filter),
        );
        if (cs.length === 0) return;
      }
      rows.push([n, cs]);
    });
    count.textContent = `${rows.length} of ${model.nodes.length} nodes`;
    list.set(rows);
  }
  render();
  return { el, stop: model.onChange(render) };
}

function nodeRow(n: Node, cs: Container[]): HTMLElement {
  const down = n.status !== "Healthy";
  const sorted = cs.slice(0, maxChips);
  const chips = sorted.map((c) =>
    h(
      "a",
      {
        class: `chip ${stateClass(c.state)}${c.service ? " svc" : ""}`,
        href: `#/container/${c.id}`,
        title: `${c.name} (${c.state}) ${c.image}`,
        "data-container": c.name,
        "data-state": c.state,
      },
      c.name,
    ),
  );
  if (cs.length > maxChips) chips.push(h("a", { class: "chip more", href: `#/node/${encodeURIComponent(n.name)}` }, `+${cs.length - maxChips}`));
  return h(
    "div",
    { class: `node-row${down ? " down" : ""}`, "data-node": n.name, "data-status": n.status },
    h(
      "div",
      { class: "node-head" },
      h("a", { class: "node-name", href: `#/node/${encodeURIComponent(n.name)}` }, n.name),
      h("span", { class: `badge ${down ? "bad" : "good"}` }, n.status || "?"),
      n.member ? h("span", { class: "badge member", title: n.version }, n.kind || "shoal member") : null,
      h("span", { class: "muted small" }, `${n.addr} · ${cs.length} containers · CPU ${n.cpus} · mem ${n.memory}`),
    ),
    h("div", { class: "chips" }, ...chips),
  );
}
