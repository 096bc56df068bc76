// The script editor: a textarea over a highlighted copy of its text, with line numbers
// and error marks at the lines the daemon's check reported.

import { h, clear } from "./dom.js";
import { tokenize } from "./tick.js";

export class ScriptEditor {
  constructor(id, { onChange = () => {}, value = "" } = {}) {
    this.onChange = onChange;
    this.gutter = h("div", { class: "gutter", "aria-hidden": "true" });
    this.highlight = h("pre", { class: "highlight", "aria-hidden": "true" });
    this.textarea = h("textarea", { id, class: "code", spellcheck: "false", autocapitalize: "off",
      autocomplete: "off", wrap: "off", "aria-label": "TICKscript", rows: 14 });
    this.textarea.value = value;
    this.textarea.addEventListener("input", () => { this.render(); this.onChange(this.value); });
    this.textarea.addEventListener("scroll", () => this.syncScroll());
    this.textarea.addEventListener("keydown", (ev) => {
      if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        document.execCommand("insertText", false, "    ");
      }
    });
    this.errors = [];
    this.el = h("div", { class: "editor" }, this.gutter,
      h("div", { class: "code-area" }, this.highlight, this.textarea));
    this.render();
  }

  get value() { return this.textarea.value; }
  set value(text) { this.textarea.value = text; this.render(); }
  set readOnly(flag) { this.textarea.readOnly = flag; this.el.classList.toggle("readonly", flag); }

  setErrors(errors) {
    this.errors = errors || [];
    this.render();
  }

  syncScroll() {
    this.highlight.scrollTop = this.textarea.scrollTop;
    this.highlight.scrollLeft = this.textarea.scrollLeft;
    this.gutter.scrollTop = this.textarea.scrollTop;
  }

  render() {
    const text = this.textarea.value;
    const errorLines = new Map();
    for (const e of this.errors) if (e.line) errorLines.set(e.line, e);
    clear(this.highlight);
    // one span per line, so an error line can be marked as a whole
    let line = h("span", { class: "line" }), lineNo = 1;
    const lines = [line];
    for (const token of tokenize(text)) {
      const parts = token.value.split("\n");
      parts.forEach((part, i) => {
        if (i > 0) {
          line.append("\n");
          line = h("span", { class: "line" });
          lines.push(line);
          lineNo++;
        }
        if (part) line.append(token.kind === "space" || token.kind === "other" ? part
          : h("span", { class: "tok-" + token.kind }, part));
      });
    }
    lines.forEach((el, i) => {
      const err = errorLines.get(i + 1);
      if (err) {
        el.classList.add("error-line");
        el.setAttribute("data-error", err.message);
      }
    });
    this.highlight.append(...lines, "\n");
    clear(this.gutter);
    for (let i = 1; i <= lines.length; i++) {
      const err = errorLines.get(i);
      this.gutter.append(h("div", { class: err ? "ln error" : "ln", "data-line": i,
                                    title: err ? err.message : null }, String(i)));
    }
    this.syncScroll();
  }
}
