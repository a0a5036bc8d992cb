// The console's live model of the cluster: loaded once from /ui/api/map,
// then kept current from the one /events stream (no polling of engines).
import { getJSON, lines, shortID } from "./api";

export interface Node {
  name: string;
  addr: string;
  id: string;
  status: string;
  containers: string;
  cpus: string;
  memory: string;
  labels: string[];
  error: string;
  version: string;
  member: boolean;
  kind?: string;
}

export interface Container {
  id: string; // 12 characters
  name: string; // under its node (member/inner nodes keep "inner/name")
  node: number; // index in nodes, -1 unknown
  state: string;
  image: string;
  service: string;
}

export interface DockerEvent {
  Type: string;
  Action: string;
  id?: string;
  time: number;
  timeNano: number;
  Actor: { ID: string; Attributes: Record<string, string> };
}

interface MapReply {
  role: string;
  name: string;
  version: string;
  totals: Record<string, number>;
  nodes: Node[];
  images: string[];
  containers: [string, string, number, string, number, string][];
  warnings: string[];
}

const stateOf: Record<string, string> = {
  create: "created",
  start: "running",
  restart: "running",
  unpause: "running",
  pause: "paused",
  die: "exited",
  stop: "exited",
  oom: "exited",
};

export class Model {
  role = "viewer";
  version = "";
  nodes: Node[] = [];
  byNode: Container[][] = [];
  containers = new Map<string, Container>();
  events: DockerEvent[] = []; // newest last, at most maxEvents
  maxEvents = 2000;
  live = false;
  loadedAt = 0;
  private listeners = new Set<() => void>();
  private eventListeners = new Set<(e: DockerEvent) => void>();
  private scheduled = false;
  private reloadTimer = 0;

  onChange(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  onEvent(f: (e: DockerEvent) => void): () => void {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  // changed coalesces re-renders to one per animation frame.
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.listeners.forEach((f) => f());
    });
  }

  async load(): Promise<void> {
    const m = await getJSON<MapReply>("/ui/api/map");
    this.role = m.role;
    this.version = m.version;
    this.nodes = m.nodes;
    this.byNode = m.nodes.map(() => []);
    this.containers.clear();
    for (const [id, name, node, state, img, service] of m.containers) {
      const c: Container = { id, name, node, state, image: m.images[img] ?? "", service };
      this.containers.set(id, c);
      if (node >= 0) this.byNode[node].push(c);
    }
    this.loadedAt = Date.now();
    this.changed();
  }

  nodeIndex(name: string): number {
    return this.nodes.findIndex((n) => n.name === name);
  }

  can(role: "operator" | "admin"): boolean {
    const order = ["none", "viewer", "operator", "admin"];
    return order.indexOf(this.role) >= order.indexOf(role);
  }

  // follow keeps the model current from /events, reconnecting (with a
  // reload, since events were missed) when the stream ends. It asks for
  // no past (since=): shoal would ask every engine for it, and the map
  // already holds the present.
  async follow(): Promise<void> {
    for (;;) {
      const ctl = new AbortController();
      try {
        this.live = true;
        this.changed();
        await lines("/events", ctl.signal, (l) => {
          try {
            const e = JSON.parse(l) as DockerEvent;
            this.apply(e);
          } catch {
            /* not an event */
          }
        });
      } catch {
        /* broken off: reconnect */
      }
      this.live = false;
      this.changed();
      await new Promise((r) => setTimeout(r, 1000));
      await this.load().catch(() => undefined);
    }
  }

  // apply takes one event into the model and the timeline.
  apply(e: DockerEvent): void {
    this.events.push(e);
    if (this.events.length > this.maxEvents) this.events.splice(0, this.events.length - this.maxEvents);
    this.eventListeners.forEach((f) => f(e));
    const attrs = e.Actor?.Attributes ?? {};
    if (e.Type === "node") {
      const i = this.nodeIndex(attrs["node.name"] ?? attrs["name"]);
      if (i < 0) {
        this.reloadSoon();
        return;
      }
      this.nodes[i].status = e.Action === "engine_disconnect" ? "Unhealthy" : "Healthy";
      this.changed();
      return;
    }
    if (e.Type !== "container") return;
    this.applyContainer(e, attrs);
  }

  private applyContainer(e: DockerEvent, attrs: Record<string, string>): void {
    const id = shortID(e.Actor.ID || e.id || "");
    let c = this.containers.get(id);
    if (e.Action === "destroy") {
      if (c) {
        this.containers.delete(id);
        if (c.node >= 0) this.byNode[c.node] = this.byNode[c.node].filter((x) => x.id !== id);
        this.changed();
      }
      return;
    }
    const state = stateOf[e.Action.split(":")[0]];
    if (!c) {
      const node = this.nodeIndex(attrs["node.name"] ?? "");
      if (node < 0) {
        this.reloadSoon();
        return;
      }
      c = {
        id,
        name: attrs["name"] ?? id,
        node,
        state: state ?? "created",
        image: attrs["image"] ?? "",
        service: attrs["com.docker.swarm.service.name"] ?? "",
      };
      this.containers.set(id, c);
      this.byNode[node].push(c);
      this.changed();
      return;
    }
    if (e.Action === "rename" && attrs["name"]) c.name = attrs["name"];
    if (state) c.state = state;
    this.changed();
  }

  // reloadSoon reloads the map once for a burst of events it cannot
  // apply (a node it does not know yet).
  private reloadSoon(): void {
    if (this.reloadTimer) return;
    this.reloadTimer = window.setTimeout(() => {
      this.reloadTimer = 0;
      this.load().catch(() => undefined);
    }, 500);
  }

  totals() {
    let healthy = 0;
    for (const n of this.nodes) if (n.status === "Healthy") healthy++;
    let running = 0;
    const services = new Set<string>();
    for (const c of this.containers.values()) {
      if (c.state === "running") running++;
      if (c.service) services.add(c.service);
    }
    return { nodes: this.nodes.length, healthy, containers: this.containers.size, running, services: services.size };
  }
}
