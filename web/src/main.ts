// shoal's web console: a hash router over a few views, one live model.
import "./style.css";
import { Model } from "./model";
import { mapView } from "./map";
import { nodeView } from "./node";
import { serviceView, servicesView } from "./services";
import { containerView } from "./container";
import { eventsView } from "./events";
import { errorBox, h } from "./dom";

const model = new Model();
(window as any).shoal = model; // for the browser tests and the curious
const view = document.getElementById("view")!;
const totalsEl = document.getElementById("totals")!;
const liveEl = document.getElementById("live")!;
let current: { stop: () => void } | null = null;

function route() {
  current?.stop();
  const [, kind, arg] = (location.hash.replace(/^#/, "") || "/").split("/");
  const a = decodeURIComponent(arg ?? "");
  let v;
  switch (kind) {
    case "node": v = nodeView(model, a); break;
    case "services": v = servicesView(); break;
    case "service": v = serviceView(model, a); break;
    case "container": v = containerView(model, a); break;
    case "events": v = eventsView(model); break;
    default: v = mapView(model);
  }
  current = v;
  view.replaceChildren(v.el);
  document.querySelectorAll("nav a").forEach((n) => n.classList.toggle("on", (n as HTMLAnchorElement).hash === "#/" + (kind ?? "")));
}

function renderTotals() {
  const t = model.totals();
  const down = t.nodes - t.healthy;
  totalsEl.replaceChildren(
    stat("nodes", `${t.healthy}/${t.nodes}`, down > 0 ? "bad" : ""),
    stat("containers", String(t.containers)),
    stat("running", String(t.running)),
    stat("services", String(t.services)),
  );
  liveEl.className = "live " + (model.live ? "on" : "off");
  liveEl.title = model.live ? "following the event stream" : "event stream disconnected";
  document.getElementById("who")!.textContent = `${model.version} · ${model.role}`;
}

function stat(name: string, value: string, cls = ""): HTMLElement {
  return h("div", { class: `stat ${cls}`, id: `total-${name}` }, h("b", {}, value), h("span", {}, name));
}

model.onChange(renderTotals);
window.addEventListener("hashchange", route);
model
  .load()
  .then(() => {
    route();
    model.follow();
  })
  .catch((e) => view.replaceChildren(errorBox(e)));
