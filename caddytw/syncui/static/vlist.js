// A list that only builds the rows in view (plus a few), so a folder of 10,000 entries
// costs as much as one of 30. Rows have one fixed height (the CSS --row variable).
// Keyboard: the list itself is focusable and points at its active row with
// aria-activedescendant, so arrow keys work without a tab stop per row.

const OVERSCAN = 8;

export class VirtualList {
  constructor(container, spacer, renderRow, isMarked) {
    this.container = container;
    this.spacer = spacer;
    this.renderRow = renderRow; // (element, item, index, active) -> void
    this.isMarked = isMarked; // item -> bool: part of the selection
    this.items = [];
    this.active = -1;
    this.rows = new Map(); // index -> element
    this.rowHeight = 44;
    this.pending = false;
    container.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => {
      this.measure();
      this.schedule();
    }).observe(container);
    this.measure();
  }

  measure() {
    const value = parseFloat(getComputedStyle(this.container).getPropertyValue("--row"));
    if (value > 0 && value !== this.rowHeight) {
      this.rowHeight = value;
      this.refresh();
    }
  }

  setItems(items, keepActiveKey = null) {
    this.items = items;
    if (keepActiveKey !== null) this.active = items.findIndex((item) => item.path === keepActiveKey);
    if (this.active >= items.length) this.active = items.length - 1;
    this.refresh();
  }

  refresh() {
    for (const element of this.rows.values()) element.remove();
    this.rows.clear();
    this.spacer.style.height = `${this.items.length * this.rowHeight}px`;
    this.render();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const height = this.rowHeight;
    const first = Math.max(0, Math.floor(this.container.scrollTop / height) - OVERSCAN);
    const visible = Math.ceil(this.container.clientHeight / height) + 2 * OVERSCAN;
    const last = Math.min(this.items.length, first + visible);
    for (const [index, element] of this.rows) {
      if (index < first || index >= last) {
        element.remove();
        this.rows.delete(index);
      }
    }
    for (let index = first; index < last; index += 1) {
      let element = this.rows.get(index);
      if (!element) {
        element = document.createElement("div");
        element.className = "row";
        element.setAttribute("role", "option");
        element.id = `row-${index}`;
        element.dataset.index = String(index);
        element.style.transform = `translateY(${index * height}px)`;
        this.rows.set(index, element);
        this.container.appendChild(element);
        this.renderRow(element, this.items[index], index, index === this.active);
      }
      const marked = this.isMarked(this.items[index]);
      element.setAttribute("aria-selected", String(marked));
      element.classList.toggle("marked", marked);
      element.classList.toggle("active", index === this.active);
    }
    if (this.active >= 0) this.container.setAttribute("aria-activedescendant", `row-${this.active}`);
    else this.container.removeAttribute("aria-activedescendant");
  }

  setActive(index) {
    if (this.items.length === 0) {
      this.active = -1;
      this.render();
      return;
    }
    this.active = Math.max(0, Math.min(this.items.length - 1, index));
    const top = this.active * this.rowHeight;
    const view = this.container;
    if (top < view.scrollTop) view.scrollTop = top;
    else if (top + this.rowHeight > view.scrollTop + view.clientHeight)
      view.scrollTop = top + this.rowHeight - view.clientHeight;
    this.render();
  }

  get current() {
    return this.active >= 0 ? this.items[this.active] : null;
  }

  get pageSize() {
    return Math.max(1, Math.floor(this.container.clientHeight / this.rowHeight) - 1);
  }
}
