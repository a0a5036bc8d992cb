// The events timeline: the events of the one stream the model follows
// since the console opened, newest on top, with filters.
import { DockerEvent, Model } from "./model";
import { VList } from "./vlist";
import { h } from "./dom";

export function eventsView(model: Model): { el: HTMLElement; stop: () => void } {
  const f = { type: "", node: "", text: "" };
  const typeSel = h(
    "select",
    { id: "ev-type", onchange: (e: Event) => ((f.type = (e.target as HTMLSelectElement).value), render()) },
    ...["", "container", "image", "network", "volume", "node", "service", "daemon"].map((t) => h("option", { value: t }, t || "all types")),
  );
  const nodeIn = h("input", { id: "ev-node", placeholder: "node", oninput: (e: Event) => ((f.node = (e.target as HTMLInputElement).value.trim()), render()) });
  const textIn = h("input", { id: "ev-text", placeholder: "action, name, image…", oninput: (e: Event) => ((f.text = (e.target as HTMLInputElement).value.trim().toLowerCase()), render()) });
  const count = h("span", { class: "muted" });
  const list = new VList<DockerEvent>(26, (e) => row(e), "table events");
  const el = h("section", { class: "page" }, h("h2", {}, "Events"), h("div", { class: "toolbar" }, typeSel, nodeIn, textIn, count), list.el);

  function match(e: DockerEvent): boolean {
    const a = e.Actor?.Attributes ?? {};
    if (f.type && e.Type !== f.type) return false;
    if (f.node && !(a["node.name"] ?? "").includes(f.node)) return false;
    if (f.text) {
      const hay = `${e.Action} ${a.name ?? ""} ${a.image ?? ""} ${e.Actor?.ID ?? ""}`.toLowerCase();
      if (!hay.includes(f.text)) return false;
    }
    return true;
  }
  function render() {
    const shown = model.events.filter(match).reverse();
    count.textContent = `${shown.length} events`;
    list.set(shown);
  }
  render();
  const stops = [model.onEvent(() => requestAnimationFrame(render))];
  return { el, stop: () => stops.forEach((s) => s()) };
}

function row(e: DockerEvent): HTMLElement {
  const a = e.Actor?.Attributes ?? {};
  const t = new Date(e.timeNano ? e.timeNano / 1e6 : e.time * 1000);
  return h(
    "div",
    { class: "trow", "data-event": `${e.Type} ${e.Action}` },
    h("span", { class: "mono muted" }, t.toLocaleTimeString()),
    h("span", { class: `badge ev-${e.Type}` }, e.Type),
    h("span", { class: "act" }, e.Action),
    h("span", {}, a["node.name"] ?? ""),
    h("span", { class: "grow ellip" }, a.name ?? (e.Actor?.ID ?? "").slice(0, 12)),
    h("span", { class: "muted ellip" }, a.image ?? ""),
  );
}
