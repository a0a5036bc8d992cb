// A container's page: what inspect says, its logs streamed as they are
// written, and a terminal (xterm.js) on `docker exec` for operators.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { getJSON, logStream, postJSON } from "./api";
import { Model } from "./model";
import { errorBox, h, stateClass } from "./dom";

const maxLogChars = 400_000;

export function containerView(model: Model, ref: string): { el: HTMLElement; stop: () => void } {
  const ctl = new AbortController();
  const head = h("div");
  const logs = h("pre", { id: "logs", class: "logs" });
  const logState = h("span", { class: "muted", id: "logs-state" }, "connecting…");
  const termBox = h("div", { id: "terminal", class: "terminal" });
  const execCmd = h("input", { id: "exec-cmd", value: "sh", class: "cmd" }) as HTMLInputElement;
  const execBtn = h("button", { id: "exec", onclick: () => openExec() }, "Open terminal");
  const execArea = model.can("operator")
    ? h("div", {}, h("h3", {}, "Terminal"), h("div", { class: "actions" }, "command ", execCmd, execBtn), termBox)
    : h("p", { class: "muted" }, "A terminal needs the operator role.");
  const el = h("section", { class: "page" }, head, h("h3", {}, "Logs ", logState), logs, execArea);
  let cleanup: (() => void)[] = [];

  (async () => {
    try {
      const c = await getJSON(`/containers/${encodeURIComponent(ref)}/json`, ctl.signal);
      head.replaceChildren(
        h("h2", { "data-container": c.Name }, c.Name.replace(/^\//, ""), " ", h("span", { class: `badge ${stateClass(c.State?.Status)}` }, c.State?.Status ?? "")),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "ID"), h("dd", { class: "mono" }, c.Id),
          h("dt", {}, "image"), h("dd", {}, c.Config?.Image ?? ""),
          h("dt", {}, "command"), h("dd", { class: "mono" }, [c.Path, ...(c.Args ?? [])].join(" ")),
          h("dt", {}, "node"), h("dd", {}, c.Node?.Name ? h("a", { href: `#/node/${encodeURIComponent(c.Node.Name)}` }, c.Node.Name) : ""),
          h("dt", {}, "started"), h("dd", {}, c.State?.StartedAt ?? ""),
        ),
      );
      followLogs(c.Id, !!c.Config?.Tty);
    } catch (e) {
      head.replaceChildren(errorBox(e));
      logState.textContent = "";
    }
  })();

  function followLogs(id: string, tty: boolean) {
    logState.textContent = "following";
    logStream(`/containers/${id}/logs?follow=1&stdout=1&stderr=1&tail=500`, tty, ctl.signal, (text, stderr) => {
      const span = document.createElement("span");
      if (stderr) span.className = "stderr";
      span.textContent = text;
      const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.appendChild(span);
      while ((logs.textContent?.length ?? 0) > maxLogChars && logs.firstChild) logs.removeChild(logs.firstChild);
      if (atEnd) logs.scrollTop = logs.scrollHeight;
    })
      .then(() => (logState.textContent = "ended"))
      .catch((e) => {
        if (!ctl.signal.aborted) logState.textContent = `broken off: ${e.message ?? e}`;
      });
  }

  async function openExec() {
    cleanup.forEach((f) => f());
    cleanup = [];
    termBox.replaceChildren();
    const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(termBox);
    // xterm.js pauses rendering while the terminal is out of view.
    termBox.scrollIntoView({ block: "end" });
    fit.fit();
    (window as any).shoalTerminal = term;
    cleanup.push(() => term.dispose());
    try {
      const cmd = execCmd.value.trim().split(/\s+/).filter(Boolean);
      const ex = await postJSON<{ Id: string }>(`/containers/${encodeURIComponent(ref)}/exec`, {
        AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true,
        Cmd: cmd.length ? cmd : ["sh"],
        Env: ["TERM=xterm-256color"],
      });
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${proto}//${location.host}/ui/api/exec/${ex!.Id}`);
      ws.binaryType = "arraybuffer";
      const resize = () => {
        fit.fit();
        postJSON(`/exec/${ex!.Id}/resize?h=${term.rows}&w=${term.cols}`).catch(() => undefined);
      };
      ws.onopen = () => {
        term.focus();
        setTimeout(resize, 100);
      };
      ws.onmessage = (m) => term.write(new Uint8Array(m.data as ArrayBuffer));
      ws.onclose = () => term.write("\r\n\x1b[2m[session ended]\x1b[0m\r\n");
      const sub = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(new TextEncoder().encode(d)));
      window.addEventListener("resize", resize);
      cleanup.push(() => {
        sub.dispose();
        window.removeEventListener("resize", resize);
        ws.close();
      });
    } catch (e) {
      term.write(`\x1b[31m${(e as Error).message ?? e}\x1b[0m\r\n`);
    }
  }

  return {
    el,
    stop: () => {
      ctl.abort();
      cleanup.forEach((f) => f());
    },
  };
}
