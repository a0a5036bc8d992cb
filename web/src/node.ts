// A node's page: its labels, reserved resources and containers; for a
// member shoal (federation) its containers grouped by the member's nodes.
import { Container, Model } from "./model";
import { VList } from "./vlist";
import { h, stateClass } from "./dom";
import { getJSON } from "./api";

// Leaf is a node of GET /_shoal/nodes: this shoal's engines and, under
// "member/", the nodes of its member shoals.
interface Leaf {
  Name: string;
  State: string;
  NCPU: number;
  MemTotal: number;
  Containers: number;
  Reserved: { NanoCPUs: number; Memory: number };
  Labels?: Record<string, string>;
}

export function nodeView(model: Model, name: string): { el: HTMLElement; stop: () => void } {
  const el = h("section", { class: "page" });
  const list = new VList<Container>(28, (c) => containerRow(c), "table");
  let leaves: Leaf[] | null = null;
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
        n.kind ? h("dt", {}, "kind") : null, n.kind ? h("dd", {}, n.kind) : null,
        h("dt", {}, "containers"), h("dd", {}, n.containers),
        h("dt", {}, "reserved CPUs"), h("dd", {}, n.cpus),
        h("dt", {}, "reserved memory"), h("dd", {}, n.memory),
        h("dt", {}, "labels"), h("dd", {}, ...(n.labels.length ? n.labels.map((l) => h("span", { class: "label" }, l)) : ["none"])),
        n.error ? h("dt", {}, "error") : null, n.error ? h("dd", { class: "bad-text" }, n.error) : null,
      ),
    ];
    if (n.member) {
      if (leaves === null) {
        leaves = [];
        getJSON<{ Nodes: Leaf[] }>("/_shoal/nodes")
          .then((v) => {
            leaves = v.Nodes.filter((l) => l.Name.startsWith(n.name + "/"));
            render();
          })
          .catch(() => undefined);
      }
      parts.push(memberNodes(cs, leaves, n.name));
    }
    parts.push(h("h3", {}, `Containers (${cs.length})`), list.el);
    el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    list.set(cs);
  }
  render();
  return { el, stop: model.onChange(render) };
}

// memberNodes drills into a member shoal: its nodes as this shoal's
// /_shoal/nodes lists them (state, resources, labels), and its containers
// grouped by the member's node, which their names start with ("inner/name").
function memberNodes(cs: Container[], leaves: Leaf[] | null, member: string): HTMLElement {
  const groups = new Map<string, Container[]>();
  for (const l of leaves ?? []) groups.set(l.Name.slice(member.length + 1), []);
  for (const c of cs) {
    const inner = c.name.includes("/") ? c.name.split("/")[0] : "(unknown)";
    if (!groups.has(inner)) groups.set(inner, []);
    groups.get(inner)!.push(c);
  }
  const leafOf = new Map((leaves ?? []).map((l) => [l.Name.slice(member.length + 1), l]));
  const gib = (b: number) => (b / (1 << 30)).toFixed(1) + " GiB";
  const rows = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([inner, list]) => {
    const running = list.filter((c) => c.state === "running").length;
    const l = leafOf.get(inner);
    const down = l && l.State !== "healthy";
    return h(
      "tr",
      { "data-member-node": inner, class: down ? "down" : "" },
      h("td", {}, inner),
      h("td", {}, l ? h("span", { class: `badge ${down ? "bad" : "good"}` }, l.State) : ""),
      h("td", {}, String(list.length)),
      h("td", {}, String(running)),
      h("td", {}, l ? `${(l.Reserved.NanoCPUs / 1e9).toFixed(2)} / ${l.NCPU}` : ""),
      h("td", {}, l ? `${gib(l.Reserved.Memory)} / ${gib(l.MemTotal)}` : ""),
      h("td", { class: "muted" }, l?.Labels ? Object.entries(l.Labels).map(([k, v]) => `${k}=${v}`).join(", ") : ""),
    );
  });
  return h(
    "div",
    {},
    h("h3", {}, "Member's nodes"),
    h(
      "table",
      { class: "grid" },
      h("tr", {}, ...["node", "state", "containers", "running", "reserved CPUs", "reserved memory", "labels"].map((x) => h("th", {}, x))),
      ...rows,
    ),
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
