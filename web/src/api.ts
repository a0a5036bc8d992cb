// Calls to shoal: the Docker API on the same origin (the browser's client
// certificate, if any, is the identity) and the console's own /ui/api.

export class APIError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

async function check(r: Response): Promise<Response> {
  if (r.ok) return r;
  let msg = r.statusText;
  try {
    const j = await r.json();
    if (j && j.message) msg = j.message;
  } catch {
    /* not JSON */
  }
  throw new APIError(r.status, msg);
}

export async function getJSON<T = any>(path: string, signal?: AbortSignal): Promise<T> {
  const r = await check(await fetch(path, { signal, headers: { Accept: "application/json" } }));
  return r.json();
}

export async function postJSON<T = any>(path: string, body?: unknown): Promise<T | null> {
  const r = await check(
    await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// lines reads a streaming answer (events) line by line until signal aborts.
export async function lines(path: string, signal: AbortSignal, each: (line: string) => void): Promise<void> {
  const r = await check(await fetch(path, { signal }));
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (l) each(l);
    }
  }
}

// logStream reads a container's logs as they come: a TTY's raw bytes, or
// Docker's multiplexed frames (8-byte header: stream, 0, 0, 0, size).
export async function logStream(
  path: string,
  tty: boolean,
  signal: AbortSignal,
  each: (text: string, stderr: boolean) => void,
): Promise<void> {
  const r = await check(await fetch(path, { signal }));
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  const muxed = !tty || (r.headers.get("Content-Type") || "").includes("multiplexed");
  let pending = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    if (!muxed) {
      each(dec.decode(value, { stream: true }), false);
      continue;
    }
    const all = new Uint8Array(pending.length + value.length);
    all.set(pending);
    all.set(value, pending.length);
    let off = 0;
    while (all.length - off >= 8) {
      const size = ((all[off + 4] << 24) >>> 0) + (all[off + 5] << 16) + (all[off + 6] << 8) + all[off + 7];
      if (all.length - off - 8 < size) break;
      each(dec.decode(all.subarray(off + 8, off + 8 + size)), all[off] === 2);
      off += 8 + size;
    }
    pending = all.slice(off);
  }
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export function shortID(id: string): string {
  return id.length > 12 ? id.slice(0, 12) : id;
}
