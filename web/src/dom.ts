// h builds an element: h("div", {class: "x", onclick: f}, "text", child).
export function h(tag: string, props: Record<string, any> = {}, ...children: (Node | string | null | undefined)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.append(c);
  }
  return el;
}

export function stateClass(state: string): string {
  return "st-" + (state || "unknown").replace(/[^a-z]/g, "");
}

export function ago(unixSeconds: number): string {
  const d = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (d < 60) return `${Math.floor(d)}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
  return `${Math.floor(d / 86400)}d ago`;
}

export function errorBox(e: unknown): HTMLElement {
  return h("div", { class: "error" }, String((e as Error)?.message ?? e));
}
