// A virtualized list: only the rows in view (and a few around) are in the
// DOM, so a thousand nodes or thirty thousand containers scroll smoothly.

export class VList<T> {
  el: HTMLElement;
  private inner: HTMLElement;
  private items: T[] = [];
  private frame = 0;

  constructor(
    private rowHeight: number,
    private row: (item: T, index: number) => HTMLElement,
    className = "",
  ) {
    this.el = document.createElement("div");
    this.el.className = "vlist " + className;
    this.inner = document.createElement("div");
    this.inner.className = "vlist-inner";
    this.el.appendChild(this.inner);
    this.el.addEventListener("scroll", () => this.schedule());
    window.addEventListener("resize", () => this.schedule());
  }

  set(items: T[]): void {
    this.items = items;
    this.render();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render(): void {
    const h = this.el.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.el.scrollTop / this.rowHeight) - 5);
    const last = Math.min(this.items.length, Math.ceil((this.el.scrollTop + h) / this.rowHeight) + 5);
    this.inner.style.height = `${this.items.length * this.rowHeight}px`;
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const r = this.row(this.items[i], i);
      r.style.position = "absolute";
      r.style.top = `${i * this.rowHeight}px`;
      r.style.height = `${this.rowHeight}px`;
      r.style.left = "0";
      r.style.right = "0";
      frag.appendChild(r);
    }
    this.inner.replaceChildren(frag);
  }
}
